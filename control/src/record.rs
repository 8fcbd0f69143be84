//! A local media recorder: the relay forks a leg's packets to a UDP address
//! owned by a [`Recorder`], which writes every datagram to a pcap file and
//! the G.711 audio to a WAV file.
//!
//! The recorder runs on its own thread so that file IO never touches the
//! forwarding workers: a worker only sends one more datagram per packet (the
//! flow's fixed extra output), and a slow disk costs at most datagrams in
//! the recorder socket's receive buffer.
//!
//! Run loop (one thread, [`mio`]): wait for readable recording sockets, the
//! control [`Waker`](mio::Waker) or the once-a-second tick; then handle every
//! queued command, drain each readable socket (a bounded number of datagrams
//! per socket per turn, the rest next turn, so one flooded recording cannot
//! starve the others), and on the tick flush the pcap files and rewrite the
//! WAV headers so that a crash leaves playable files.
//!
//! Whom a recording hears: only the node's own media socket that sends the
//! copies (see [`RecordingSpec::source`]). The recording socket is bound on
//! that socket's address (loopback when it is the unspecified address) and
//! `connect`ed to it, so the kernel drops datagrams from anyone else before
//! they are queued: a stranger who finds the port can neither fill the
//! files nor crowd the copies out of the receive buffer. Datagrams that
//! were queued before the `connect` are checked and counted
//! ([`RecordingStats::foreign`]), never recorded.
//!
//! Ports: the OS picks the recording socket's port from its ephemeral range,
//! which may overlap the node's media range (Linux: 32768-60999; rtpmesh's
//! default range is 30000-39999); a port inside the media range is refused
//! and another asked for, so a recording never takes a port a call needs.
//!
//! Files: `<dir>/<call-id>-<tag>-<stream>.pcap` and `.wav`, the call id and
//! tag sanitized (see [`file_stem`]). The WAV file exists only once a
//! PCMU (0) or PCMA (8) packet arrived; its format follows the first one.

mod name;
mod pcap;
mod run;
mod session;
mod wav;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use thiserror::Error;

pub use name::file_stem;

/// Why a recorder request failed.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum RecordError {
    /// No open recording has this id (never opened, or already closed).
    #[error("no recording {0}")]
    UnknownRecording(RecordingId),
    /// Every port the OS offered lay inside the media range: its ephemeral
    /// range (`net.ipv4.ip_local_port_range`) must reach beyond it.
    #[error("no port outside the media range {}-{} on {addr} (widen net.ipv4.ip_local_port_range beyond it)", range.start(), range.end())]
    NoPortOutsideRange {
        /// The address asked for.
        addr: IpAddr,
        /// The media range.
        range: RangeInclusive<u16>,
    },
    /// The copies' source is not a bound socket (port 0).
    #[error("no media socket sends this stream's copies")]
    NoSource,
    /// The recording socket could not be bound or registered.
    #[error("cannot bind a recording socket on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: IpAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// A recording file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Flushing or finalizing a file at close failed; the recording is gone
    /// and the file may be incomplete.
    #[error("cannot finalize {}: {source}", path.display())]
    Finalize {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The recorder thread is no longer running.
    #[error("the recorder thread has stopped")]
    Stopped,
}

/// Identifies one open recording of a [`Recorder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(u64);

impl RecordingId {
    /// The id as a number (for callers that keep plain ids).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// An id from [`RecordingId::as_u64`]; an id this recorder never gave
    /// out is refused by [`Recorder::close`] and [`Recorder::stats`].
    pub fn from_u64(v: u64) -> Self {
        Self(v)
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What to record: one stream of one leg of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSpec {
    /// The call's Call-ID (sanitized for the file name).
    pub call_id: String,
    /// The leg's tag (sanitized for the file name).
    pub tag: String,
    /// The stream's index in the SDP (m= line).
    pub stream: usize,
    /// The local address of the node's media socket that sends the copies
    /// (the relay's fork sends from a socket of the call). The recording
    /// socket is bound on its IP (on loopback when that is the unspecified
    /// address: a wildcard socket then sends from loopback) and hears no one
    /// but this socket.
    pub source: SocketAddr,
}

impl RecordingSpec {
    /// Where the recording socket binds (port aside) and the one source it
    /// accepts: the media socket's own address, or loopback of its family
    /// for a wildcard socket (which sends to loopback from loopback).
    pub fn addresses(&self) -> (IpAddr, SocketAddr) {
        let ip = match self.source.ip() {
            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        (ip, SocketAddr::new(ip, self.source.port()))
    }
}

/// An open recording: the relay sends the leg's copy to `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recording {
    /// For [`Recorder::close`] and [`Recorder::stats`].
    pub id: RecordingId,
    /// The recording socket's address.
    pub addr: SocketAddr,
}

/// Counters of one recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordingStats {
    /// Datagrams recorded (every one from the expected source goes to the
    /// pcap).
    pub packets: u64,
    /// Their bytes (UDP payload).
    pub bytes: u64,
    /// Valid RTP packets among them.
    pub rtp: u64,
    /// Valid RTCP packets among them.
    pub rtcp: u64,
    /// Datagrams that are neither (still in the pcap).
    pub malformed: u64,
    /// RTP packets whose payload went into the WAV file.
    pub wav_packets: u64,
    /// RTP packets left out of the WAV because of their payload type.
    pub wav_skipped: u64,
    /// RTP packets left out of the WAV because they came too late for the
    /// reorder window or twice.
    pub wav_dropped: u64,
    /// Samples in the WAV file, silence fill included.
    pub wav_samples: u64,
    /// Datagrams (or WAV writes) lost to a file write error.
    pub write_errors: u64,
    /// Datagrams from anyone but the expected media socket: dropped, not
    /// in any counter above. Only those queued before the socket was
    /// connected can arrive; the kernel drops the rest.
    pub foreign: u64,
}

/// An open recording as [`Recorder::list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    /// Its id.
    pub id: RecordingId,
    /// The recording socket's address.
    pub addr: SocketAddr,
    /// The pcap file.
    pub pcap: PathBuf,
    /// Its counters so far.
    pub stats: RecordingStats,
}

/// What a closed recording left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFiles {
    /// The pcap file (always written, possibly with no packets).
    pub pcap: PathBuf,
    /// The WAV file, if any G.711 packet arrived.
    pub wav: Option<PathBuf>,
    /// Datagrams recorded.
    pub packets: u64,
    /// All counters.
    pub stats: RecordingStats,
}

/// A request to the recorder thread, with the channel its answer goes to.
enum Command {
    Open(RecordingSpec, Sender<Result<Recording, RecordError>>),
    Close(RecordingId, Sender<Result<RecordingFiles, RecordError>>),
    Stats(RecordingId, Sender<Result<RecordingStats, RecordError>>),
    List(Sender<Vec<RecordingInfo>>),
}

/// The recorder thread's handle. Dropping it stops the thread and finalizes
/// every open recording.
pub struct Recorder {
    dir: PathBuf,
    media_ports: RangeInclusive<u16>,
    commands: Option<Sender<Command>>,
    waker: Arc<mio::Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Creates `dir` if needed and starts the recorder thread; recording
    /// sockets never take a port in `media_ports` (the node's media range).
    pub fn start(dir: PathBuf, media_ports: RangeInclusive<u16>) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), run::WAKER)?);
        let (commands, rx) = crossbeam_channel::unbounded();
        let thread_dir = dir.clone();
        let ports = media_ports.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run::Loop::new(poll, rx, thread_dir, ports).run())?;
        Ok(Self {
            dir,
            media_ports,
            commands: Some(commands),
            waker,
            thread: Some(thread),
        })
    }

    /// The directory the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The media range recording sockets stay out of.
    pub fn media_ports(&self) -> &RangeInclusive<u16> {
        &self.media_ports
    }

    /// Binds a recording socket that hears only `spec.source` and opens
    /// its pcap file.
    pub fn open(&self, spec: RecordingSpec) -> Result<Recording, RecordError> {
        self.ask(|reply| Command::Open(spec, reply))?
    }

    /// Records whatever is still queued on the socket, closes it and
    /// finalizes the files.
    pub fn close(&self, id: RecordingId) -> Result<RecordingFiles, RecordError> {
        self.ask(|reply| Command::Close(id, reply))?
    }

    /// The counters of an open recording.
    pub fn stats(&self, id: RecordingId) -> Result<RecordingStats, RecordError> {
        self.ask(|reply| Command::Stats(id, reply))?
    }

    /// Every open recording.
    pub fn list(&self) -> Result<Vec<RecordingInfo>, RecordError> {
        self.ask(Command::List)
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, RecordError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let commands = self.commands.as_ref().ok_or(RecordError::Stopped)?;
        commands
            .send(make(reply))
            .map_err(|_| RecordError::Stopped)?;
        self.waker.wake().map_err(|_| RecordError::Stopped)?;
        answer.recv().map_err(|_| RecordError::Stopped)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // A closed channel is the stop signal: the thread finalizes every
        // recording when it sees the disconnect.
        self.commands.take();
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
