//! One recording: its socket, its files and its counters.

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rtpmesh_flow::rtp::{classify, PacketKind, RtcpHeader, RtpHeader};

use super::pcap::PcapWriter;
use super::wav::{Pushed, Track, WavWriter, G711};
use super::{RecordError, RecordingFiles, RecordingStats};

/// File buffers: a second of a few streams' packets fits, and a write
/// reaches the disk in large pieces.
const FILE_BUFFER: usize = 64 * 1024;

/// A file that stops being written after its first error: a torn record
/// would garble everything after it anyway.
struct Output<T> {
    path: PathBuf,
    writer: Option<T>,
}

impl<T> Output<T> {
    /// Notes a failed write: logged once, then the file is given up.
    fn failed(&mut self, stats: &mut RecordingStats, e: &io::Error) {
        stats.write_errors += 1;
        if self.writer.take().is_some() {
            tracing::warn!(path = %self.path.display(), error = %e, "recording write failed; file abandoned");
        }
    }
}

struct Wav {
    out: Output<WavWriter<BufWriter<File>>>,
    track: Track,
}

/// One open recording's state, owned by the recorder thread.
pub(super) struct Session {
    pub(super) socket: mio::net::UdpSocket,
    pub(super) addr: SocketAddr,
    /// The media socket whose copies this recording takes.
    pub(super) source: SocketAddr,
    stem: PathBuf,
    pcap: Output<PcapWriter<BufWriter<File>>>,
    /// Created by the first G.711 packet; `None` inside after a failure.
    wav: Option<Wav>,
    pub(super) stats: RecordingStats,
    samples: Vec<u8>,
}

impl Session {
    /// Creates the pcap file `<stem>.pcap` (`stem` is the path without
    /// extension); the WAV comes with the first G.711 packet.
    pub(super) fn new(
        socket: mio::net::UdpSocket,
        addr: SocketAddr,
        source: SocketAddr,
        stem: PathBuf,
    ) -> Result<Self, RecordError> {
        let path = suffixed(&stem, "pcap");
        let pcap =
            create(&path)
                .and_then(PcapWriter::new)
                .map_err(|source| RecordError::Create {
                    path: path.clone(),
                    source,
                })?;
        Ok(Self {
            socket,
            addr,
            source,
            stem,
            pcap: Output {
                path,
                writer: Some(pcap),
            },
            wav: None,
            stats: RecordingStats::default(),
            samples: Vec::new(),
        })
    }

    /// The pcap file's path.
    pub(super) fn pcap_path(&self) -> &Path {
        &self.pcap.path
    }

    /// Drops a datagram from anyone but [`Session::source`]: counted, and
    /// logged once per recording.
    pub(super) fn on_foreign(&mut self, from: SocketAddr) {
        if self.stats.foreign == 0 {
            tracing::warn!(addr = %self.addr, %from, expected = %self.source, "recording socket got a datagram from a stranger: dropped");
        }
        self.stats.foreign += 1;
    }

    /// Records one datagram.
    pub(super) fn on_datagram(&mut self, data: &[u8], from: SocketAddr, at: SystemTime) {
        let stats = &mut self.stats;
        stats.packets += 1;
        stats.bytes += data.len() as u64;
        if let Some(w) = &mut self.pcap.writer {
            if let Err(e) = w.write(at, from, self.addr, data) {
                self.pcap.failed(stats, &e);
            }
        } else {
            stats.write_errors += 1;
        }
        match classify(data) {
            Ok(PacketKind::Rtcp) if RtcpHeader::parse(data).is_ok() => stats.rtcp += 1,
            Ok(PacketKind::Rtp) => match RtpHeader::parse(data) {
                Ok(rtp) => {
                    stats.rtp += 1;
                    self.on_rtp(&rtp);
                }
                Err(_) => stats.malformed += 1,
            },
            _ => stats.malformed += 1,
        }
    }

    fn on_rtp(&mut self, rtp: &RtpHeader<'_>) {
        let pt = rtp.payload_type();
        if self.wav.is_none() {
            let Some(law) = G711::from_payload_type(pt) else {
                self.stats.wav_skipped += 1;
                return;
            };
            self.open_wav(law);
        }
        let Some(wav) = &mut self.wav else { return };
        self.samples.clear();
        let pushed = wav.track.push(
            rtp.ssrc(),
            rtp.sequence(),
            pt,
            rtp.timestamp(),
            rtp.payload(),
            &mut self.samples,
        );
        match pushed {
            Pushed::Accepted => self.stats.wav_packets += 1,
            Pushed::Skipped => self.stats.wav_skipped += 1,
            Pushed::Dropped => self.stats.wav_dropped += 1,
        }
        write_samples(wav, &self.samples, &mut self.stats);
    }

    fn open_wav(&mut self, law: G711) {
        let path = suffixed(&self.stem, "wav");
        let writer = match create(&path).and_then(|f| WavWriter::new(f, law)) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot create WAV file");
                self.stats.write_errors += 1;
                None
            }
        };
        // Kept even when creation failed, so it is not retried per packet.
        self.wav = Some(Wav {
            out: Output { path, writer },
            track: Track::new(law),
        });
    }

    /// Once a second: buffered records to the pcap file, current sizes into
    /// the WAV header, so that a crash leaves files that open.
    pub(super) fn tick(&mut self) {
        if let Some(w) = &mut self.pcap.writer {
            if let Err(e) = w.flush() {
                self.pcap.failed(&mut self.stats, &e);
            }
        }
        if let Some(wav) = &mut self.wav {
            if let Some(w) = &mut wav.out.writer {
                if let Err(e) = w.update_header() {
                    wav.out.failed(&mut self.stats, &e);
                }
            }
        }
    }

    /// Writes what the reorder window still holds and finalizes both files.
    pub(super) fn finish(mut self) -> Result<RecordingFiles, RecordError> {
        let mut first_error = None;
        if let Some(mut w) = self.pcap.writer.take() {
            if let Err(source) = w.flush() {
                first_error = Some(RecordError::Finalize {
                    path: self.pcap.path.clone(),
                    source,
                });
            }
        }
        let mut wav_path = None;
        if let Some(mut wav) = self.wav.take() {
            self.samples.clear();
            wav.track.flush(&mut self.samples);
            write_samples(&mut wav, &self.samples, &mut self.stats);
            if let Some(w) = wav.out.writer.take() {
                match w.finish() {
                    Ok(_) => wav_path = Some(wav.out.path),
                    Err(source) => {
                        first_error.get_or_insert(RecordError::Finalize {
                            path: wav.out.path,
                            source,
                        });
                    }
                }
            }
        }
        if let Some(e) = first_error {
            tracing::warn!(error = %e, "recording finalized with an error");
            return Err(e);
        }
        Ok(RecordingFiles {
            pcap: self.pcap.path,
            wav: wav_path,
            packets: self.stats.packets,
            stats: self.stats,
        })
    }
}

fn write_samples(wav: &mut Wav, samples: &[u8], stats: &mut RecordingStats) {
    if samples.is_empty() {
        return;
    }
    let Some(w) = &mut wav.out.writer else {
        stats.write_errors += 1;
        return;
    };
    match w.write(samples) {
        Ok(n) => stats.wav_samples += n as u64,
        Err(e) => wav.out.failed(stats, &e),
    }
}

/// `<base>.<ext>`; not `Path::with_extension`, which would cut a stem at
/// a dot that the call id brought.
pub(super) fn suffixed(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    s.into()
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(FILE_BUFFER, File::create(path)?))
}
