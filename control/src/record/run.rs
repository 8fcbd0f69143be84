//! The recorder thread: one mio poll over every recording socket and the
//! control waker.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, TryRecvError};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::name::file_stem;
use super::session::{suffixed, Session};
use super::{
    Command, RecordError, Recording, RecordingFiles, RecordingId, RecordingInfo, RecordingSpec,
};

/// The control waker's token; recordings use their id, which starts at 1.
pub(super) const WAKER: Token = Token(0);
/// How often files are flushed and WAV headers rewritten.
const TICK: Duration = Duration::from_secs(1);
/// Datagrams read from one socket per turn before the others get theirs.
const BUDGET: usize = 64;
/// Most datagrams read at close; a sender that never stops cannot keep a
/// close from returning.
const CLOSE_BUDGET: usize = 100_000;
/// Receive buffer asked for each recording socket: room for a burst while
/// the thread waits on the disk.
const RECV_BUFFER: usize = 1 << 20;
/// Numbered alternatives tried when a recording's files already exist.
const MAX_SUFFIX: u32 = 1000;
/// Ports asked of the OS before giving up on finding one outside the media
/// range. With Linux's and rtpmesh's defaults a quarter of the ephemeral
/// range lies inside it, so 64 refusals in a row mean the ranges are
/// misconfigured, not bad luck.
const PORT_TRIES: usize = 64;

pub(super) struct Loop {
    poll: Poll,
    commands: Receiver<Command>,
    dir: PathBuf,
    /// The node's media range: recording sockets stay out of it.
    media_ports: RangeInclusive<u16>,
    sessions: HashMap<u64, Session>,
    next_id: u64,
    /// Sockets with datagrams possibly still queued (edge-triggered: a
    /// socket left before `WouldBlock` gets no new event).
    ready: BTreeSet<u64>,
    buf: Vec<u8>,
}

impl Loop {
    pub(super) fn new(
        poll: Poll,
        commands: Receiver<Command>,
        dir: PathBuf,
        media_ports: RangeInclusive<u16>,
    ) -> Self {
        Self {
            poll,
            commands,
            dir,
            media_ports,
            sessions: HashMap::new(),
            next_id: 1,
            ready: BTreeSet::new(),
            buf: vec![0; 65536],
        }
    }

    /// Serves until the [`Recorder`](super::Recorder) is dropped, then
    /// finalizes every recording.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut next_tick = Instant::now() + TICK;
        loop {
            let timeout = if self.ready.is_empty() {
                next_tick.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::error!(error = %e, "recorder poll failed; stopping");
                    break;
                }
            }
            for ev in events.iter() {
                if ev.token() != WAKER {
                    self.ready.insert(ev.token().0 as u64);
                }
            }
            if !self.serve_commands() {
                break;
            }
            self.serve_sockets();
            if Instant::now() >= next_tick {
                for s in self.sessions.values_mut() {
                    s.tick();
                }
                next_tick = Instant::now() + TICK;
            }
        }
        for (_, s) in self.sessions.drain() {
            if let Err(e) = finish(s) {
                tracing::warn!(error = %e, "recording not finalized at stop");
            }
        }
    }

    /// Handles every queued command; false once the handle is gone.
    fn serve_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => self.handle(cmd),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    // A caller that gave up waiting leaves a closed reply channel: nothing
    // to do about it, hence the ignored sends.
    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Open(spec, reply) => {
                let _ = reply.send(self.open(&spec));
            }
            Command::Close(id, reply) => {
                let r = match self.sessions.remove(&id.0) {
                    Some(s) => {
                        self.ready.remove(&id.0);
                        finish(s)
                    }
                    None => Err(RecordError::UnknownRecording(id)),
                };
                let _ = reply.send(r);
            }
            Command::Stats(id, reply) => {
                let r = self
                    .sessions
                    .get(&id.0)
                    .map(|s| s.stats)
                    .ok_or(RecordError::UnknownRecording(id));
                let _ = reply.send(r);
            }
            Command::List(reply) => {
                let mut all: Vec<_> = self
                    .sessions
                    .iter()
                    .map(|(&id, s)| RecordingInfo {
                        id: RecordingId(id),
                        addr: s.addr,
                        pcap: s.pcap_path().to_owned(),
                        stats: s.stats,
                    })
                    .collect();
                all.sort_by_key(|i| i.id);
                let _ = reply.send(all);
            }
        }
    }

    fn open(&mut self, spec: &RecordingSpec) -> Result<Recording, RecordError> {
        let (ip, source) = spec.addresses();
        if source.port() == 0 {
            return Err(RecordError::NoSource);
        }
        let bind_err = |source| RecordError::Bind { addr: ip, source };
        let std_socket = bind_outside(ip, &self.media_ports)?;
        // The kernel now drops every datagram from anyone else.
        std_socket.connect(source).map_err(bind_err)?;
        let addr = std_socket.local_addr().map_err(bind_err)?;
        let mut socket = mio::net::UdpSocket::from_std(std_socket);
        let stem = self.free_stem(&file_stem(&spec.call_id, &spec.tag, spec.stream));
        let id = self.next_id;
        self.poll
            .registry()
            .register(&mut socket, Token(id as usize), Interest::READABLE)
            .map_err(bind_err)?;
        let session = Session::new(socket, addr, source, stem)?;
        self.next_id += 1;
        tracing::info!(
            id, %addr, %source, call_id = %spec.call_id, tag = %spec.tag, stream = spec.stream,
            pcap = %session.pcap_path().display(), "recording opened"
        );
        self.sessions.insert(id, session);
        Ok(Recording {
            id: RecordingId(id),
            addr,
        })
    }

    /// `<dir>/<stem>`, or `<dir>/<stem>.<n>` when an open recording or an
    /// earlier one already uses that name (a re-INVITE recording the same
    /// leg again must not overwrite the first part).
    fn free_stem(&self, stem: &str) -> PathBuf {
        let taken = |p: &Path| {
            suffixed(p, "pcap").exists()
                || suffixed(p, "wav").exists()
                || self
                    .sessions
                    .values()
                    .any(|s| s.pcap_path() == suffixed(p, "pcap"))
        };
        let base = self.dir.join(stem);
        if !taken(&base) {
            return base;
        }
        (1..MAX_SUFFIX)
            .map(|n| self.dir.join(format!("{stem}.{n}")))
            .find(|p| !taken(p))
            // All taken: overwrite the last rather than refuse to record.
            .unwrap_or_else(|| self.dir.join(format!("{stem}.{MAX_SUFFIX}")))
    }

    fn serve_sockets(&mut self) {
        let ready = std::mem::take(&mut self.ready);
        for id in ready {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            if drain(s, &mut self.buf, BUDGET) {
                self.ready.insert(id);
            }
        }
    }
}

/// Records up to `budget` queued datagrams; true if more may be queued.
pub(super) fn drain(s: &mut Session, buf: &mut [u8], budget: usize) -> bool {
    for _ in 0..budget {
        match s.socket.recv_from(buf) {
            Ok((n, from)) if from == s.source => {
                s.on_datagram(&buf[..n], from, SystemTime::now());
            }
            // Queued before the connect: not the node's copy.
            Ok((_, from)) => s.on_foreign(from),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                // Not retried this turn: a repeating error must not spin.
                tracing::debug!(addr = %s.addr, error = %e, "recording receive failed");
                return false;
            }
        }
    }
    true
}

/// Records what is still queued, then finalizes the files.
fn finish(mut s: Session) -> Result<RecordingFiles, RecordError> {
    let mut buf = vec![0; 65536];
    drain(&mut s, &mut buf, CLOSE_BUDGET);
    s.finish()
}

/// A socket on `ip` whose port (the OS's pick) lies outside `avoid`. The
/// refused ones stay bound until the end, so the OS offers others.
fn bind_outside(ip: IpAddr, avoid: &RangeInclusive<u16>) -> Result<UdpSocket, RecordError> {
    let mut refused = Vec::new();
    for _ in 0..PORT_TRIES {
        let socket = bind(SocketAddr::new(ip, 0))
            .and_then(|s| Ok((s.local_addr()?.port(), s)))
            .map_err(|source| RecordError::Bind { addr: ip, source })?;
        match socket {
            (port, s) if avoid.contains(&port) => refused.push(s),
            (_, s) => return Ok(s),
        }
    }
    tracing::error!(%ip, range = ?avoid, "every port offered for a recording lies in the media range");
    Err(RecordError::NoPortOutsideRange {
        addr: ip,
        range: avoid.clone(),
    })
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: the system cap may be lower, and the default still works.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
