//! G.711 to WAV without decoding: the RTP payload bytes are the samples of
//! a WAV file with format tag 7 (mu-law) or 6 (A-law), put in sequence
//! order by a small reorder window, with silence where packets were lost.

use std::collections::BTreeMap;
use std::io::{self, Seek, SeekFrom, Write};

/// Packets held back waiting for a missing sequence number; at 20 ms
/// packets this is 160 ms, beyond which the missing one counts as lost.
pub(super) const REORDER_WINDOW: usize = 8;
/// Most silence one gap may add: a timestamp jump must not write hours of
/// silence.
pub(super) const MAX_FILL: u32 = 5 * 8000;
/// A packet this far behind the next expected one is a restart, not a late
/// packet (RFC 3550 A.1's MAX_MISORDER); this far ahead, too (MAX_DROPOUT).
const MAX_MISORDER: u64 = 100;
const MAX_DROPOUT: u64 = 3000;

/// Bytes before the samples: RIFF, fmt (18 bytes, as non-PCM formats
/// want), fact, data chunk headers.
pub(super) const HEADER_LEN: u64 = 58;
const RIFF_SIZE_AT: u64 = 4;
const FACT_SAMPLES_AT: u64 = 46;
const DATA_SIZE_AT: u64 = 54;

/// The two G.711 laws, by their static RTP payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum G711 {
    /// PCMU, payload type 0.
    Mulaw,
    /// PCMA, payload type 8.
    Alaw,
}

impl G711 {
    pub(super) fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Mulaw),
            8 => Some(Self::Alaw),
            _ => None,
        }
    }

    fn payload_type(self) -> u8 {
        match self {
            Self::Mulaw => 0,
            Self::Alaw => 8,
        }
    }

    fn format_tag(self) -> u16 {
        match self {
            Self::Mulaw => 7,
            Self::Alaw => 6,
        }
    }

    /// The code of a zero sample.
    pub(super) fn silence(self) -> u8 {
        match self {
            Self::Mulaw => 0xff,
            Self::Alaw => 0xd5,
        }
    }
}

/// A WAV file being written; the sizes in its header are rewritten by
/// [`WavWriter::update_header`] and [`WavWriter::finish`].
pub(super) struct WavWriter<W: Write + Seek> {
    out: W,
    data_len: u32,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes a header for an empty file.
    pub(super) fn new(mut out: W, law: G711) -> io::Result<Self> {
        let mut h = Vec::with_capacity(HEADER_LEN as usize);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&(HEADER_LEN as u32 - 8).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&18u32.to_le_bytes());
        h.extend_from_slice(&law.format_tag().to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // mono
        h.extend_from_slice(&8000u32.to_le_bytes()); // sample rate
        h.extend_from_slice(&8000u32.to_le_bytes()); // bytes per second
        h.extend_from_slice(&1u16.to_le_bytes()); // block align
        h.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
        h.extend_from_slice(&0u16.to_le_bytes()); // no extra format bytes
        h.extend_from_slice(b"fact");
        h.extend_from_slice(&4u32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&0u32.to_le_bytes());
        debug_assert_eq!(h.len() as u64, HEADER_LEN);
        out.write_all(&h)?;
        Ok(Self { out, data_len: 0 })
    }

    /// Appends samples; returns how many were written (fewer only when the
    /// 4 GiB RIFF limit is reached).
    pub(super) fn write(&mut self, samples: &[u8]) -> io::Result<usize> {
        let room = (u32::MAX - HEADER_LEN as u32 - 1 - self.data_len) as usize;
        let n = samples.len().min(room);
        self.out.write_all(&samples[..n])?;
        self.data_len += n as u32;
        Ok(n)
    }

    /// Rewrites the sizes so the file as it is now plays to its end.
    pub(super) fn update_header(&mut self) -> io::Result<()> {
        self.write_sizes(0)?;
        self.out.flush()
    }

    /// Pads the data chunk to an even length (RIFF wants it) and writes the
    /// final sizes.
    pub(super) fn finish(mut self) -> io::Result<W> {
        let pad = self.data_len % 2;
        if pad == 1 {
            self.out.write_all(&[0])?;
        }
        self.write_sizes(pad)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn write_sizes(&mut self, pad: u32) -> io::Result<()> {
        let riff = HEADER_LEN as u32 - 8 + self.data_len + pad;
        self.out.seek(SeekFrom::Start(RIFF_SIZE_AT))?;
        self.out.write_all(&riff.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(FACT_SAMPLES_AT))?;
        self.out.write_all(&self.data_len.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(DATA_SIZE_AT))?;
        self.out.write_all(&self.data_len.to_le_bytes())?;
        self.out
            .seek(SeekFrom::Start(HEADER_LEN + u64::from(self.data_len + pad)))?;
        Ok(())
    }
}

/// What [`Track::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pushed {
    /// Held or written; its samples count once written.
    Accepted,
    /// Another payload type: it only takes its place in the sequence.
    Skipped,
    /// Too late for the window, or a duplicate.
    Dropped,
}

/// A packet held in the reorder window.
enum Held {
    Audio {
        timestamp: u32,
        payload: Vec<u8>,
    },
    /// Another payload type of the same source (telephone-event, comfort
    /// noise): it holds a sequence number, so its absence is no loss, and
    /// the time it covers becomes silence through the timestamp gap.
    Other,
}

/// Puts one stream's G.711 packets in sequence order and turns them into
/// samples, filling gaps with silence. Sans-IO: samples are appended to
/// a caller's buffer.
pub(super) struct Track {
    law: G711,
    ssrc: Option<u32>,
    /// Extended sequence number of the next packet to write.
    next: u64,
    /// Whether anything was written since the last (re)start.
    started: bool,
    /// RTP timestamp just after the last written sample.
    end: Option<u32>,
    held: BTreeMap<u64, Held>,
}

/// Extended sequence numbers start here so that stepping back over a wrap
/// never underflows.
const SEQ_BASE: u64 = 1 << 32;

impl Track {
    pub(super) fn new(law: G711) -> Self {
        Self {
            law,
            ssrc: None,
            next: SEQ_BASE,
            started: false,
            end: None,
            held: BTreeMap::new(),
        }
    }

    /// Offers one RTP packet; samples that became ready are appended to
    /// `out`.
    pub(super) fn push(
        &mut self,
        ssrc: u32,
        seq: u16,
        pt: u8,
        timestamp: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Pushed {
        let audio = pt == self.law.payload_type();
        if self.ssrc != Some(ssrc) {
            if !audio {
                // Another source's events say nothing about our sequence.
                return Pushed::Skipped;
            }
            // A new source (re-INVITE, transfer): its sequence and clock
            // are unrelated to the old one's.
            self.flush(out);
            self.restart(ssrc, seq);
        }
        let mut ext = self.extend(seq);
        if ext < self.next {
            let behind = self.next - ext;
            if !self.started && behind <= REORDER_WINDOW as u64 {
                // The stream's first packet came after its successor.
                self.next = ext;
            } else if behind > MAX_MISORDER {
                self.flush(out);
                self.restart(ssrc, seq);
                ext = self.next;
            } else {
                return Pushed::Dropped;
            }
        } else if ext - self.next > MAX_DROPOUT {
            self.flush(out);
            self.restart(ssrc, seq);
            ext = self.next;
        }
        if self.held.contains_key(&ext) {
            return Pushed::Dropped;
        }
        let held = if audio {
            Held::Audio {
                timestamp,
                payload: payload.to_vec(),
            }
        } else {
            Held::Other
        };
        self.held.insert(ext, held);
        self.drain(out, false);
        if audio {
            Pushed::Accepted
        } else {
            Pushed::Skipped
        }
    }

    /// Writes everything held, as at the end of the stream.
    pub(super) fn flush(&mut self, out: &mut Vec<u8>) {
        self.drain(out, true);
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        self.ssrc = Some(ssrc);
        self.next = SEQ_BASE + u64::from(seq);
        self.started = false;
        self.end = None;
    }

    /// The extended sequence number nearest to `next` with these low bits.
    fn extend(&self, seq: u16) -> u64 {
        let mut ext = (self.next & !0xffff) | u64::from(seq);
        if ext + 0x8000 < self.next {
            ext += 0x1_0000;
        } else if ext > self.next + 0x8000 {
            ext -= 0x1_0000;
        }
        ext
    }

    /// Writes held packets in order: while the next one is there, or, when
    /// the window overflowed (or `all`), giving up on the missing one.
    fn drain(&mut self, out: &mut Vec<u8>, all: bool) {
        while let Some(&seq) = self.held.keys().next() {
            if seq != self.next && !all && self.held.len() <= REORDER_WINDOW {
                break;
            }
            let Some(held) = self.held.remove(&seq) else {
                break;
            };
            self.next = seq + 1;
            self.started = true;
            if let Held::Audio { timestamp, payload } = held {
                self.emit(timestamp, &payload, out);
            }
        }
    }

    fn emit(&mut self, timestamp: u32, payload: &[u8], out: &mut Vec<u8>) {
        if let Some(end) = self.end {
            // Signed: a timestamp slightly behind (overlap) adds nothing.
            let gap = timestamp.wrapping_sub(end) as i32;
            if gap > 0 {
                let fill = (gap as u32).min(MAX_FILL) as usize;
                out.resize(out.len() + fill, self.law.silence());
            }
        }
        out.extend_from_slice(payload);
        self.end = Some(timestamp.wrapping_add(payload.len() as u32));
    }
}
