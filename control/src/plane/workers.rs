//! The media plane backed by relay workers: worker threads, the port
//! pool, socket binding, flow ids.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::pool::PortPool;
use crossbeam_channel::Receiver;
use rtpmesh_fastpath::FastPath;
use rtpmesh_flow::counters::CounterSnapshot;
use rtpmesh_flow::flow::{FlowId, FlowSpec};
use rtpmesh_relay::worker::{self, Command, Event, Ticker, WorkerHandle};
use socket2::{Domain, Protocol, Socket, Type};

use super::fastpath;
use super::ids::FlowIds;
use super::tunnels::{open_tunnels, TunnelSocket};
use super::{MediaPlane, PlaneError};
use crate::call::{self, Local};
use crate::config::{Config, Interface};

/// How long a reply waits for the workers to take streams out of the
/// kernel or fold in its counters.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// The plane backed by relay workers: workers, ports and the sockets
/// waiting to be handed to a worker.
pub struct WorkerPlane {
    workers: Vec<WorkerHandle>,
    pool: PortPool,
    v4: Option<Interface>,
    v6: Option<Interface>,
    ids: FlowIds,
    /// Sockets (or `None` for socketless tunnel-leg flows) waiting for
    /// their flow specs.
    pending: HashMap<FlowId, Option<UdpSocket>>,
    /// Each worker's tunnel socket, by worker index.
    tunnels: Vec<TunnelSocket>,
    /// Local recordings, when a recording directory is configured.
    recorder: Option<crate::record::Recorder>,
    /// Removed flows whose sockets a worker has yet to close, by the even
    /// port of their pair; a pair goes back to the pool when both are
    /// closed, so a new call never trips over a socket still bound.
    closing: HashMap<FlowId, u16>,
    closing_pairs: HashMap<u16, u8>,
    events: Receiver<Event>,
    /// Events read while waiting for closures, kept for the node.
    held: Vec<Event>,
    /// The kernel fast path, when it loaded.
    fast_path: Option<Arc<FastPath>>,
    /// Ticks every worker: fast path counters and entries, DTLS timers,
    /// ICE consent.
    _ticker: Ticker,
    /// The certificate every DTLS-SRTP leg presents, made at start.
    certificate: Option<rtpmesh_dtls::Certificate>,
}

impl WorkerPlane {
    /// Starts the workers.
    pub fn start(config: &Config) -> io::Result<Self> {
        // Bounded: a worker never blocks on a latch notice (it drops it), and
        // the control thread drains the queue every loop.
        let (events, events_rx) = crossbeam_channel::bounded(65536);
        // One worker per CPU this process may use, each pinned to its own.
        let cores = worker::allowed_cores();
        let n = match config.workers {
            0 => cores.len().max(1),
            n => n,
        };
        let fp = fastpath::load(config);
        // One certificate per process (RFC 5763 lets every leg share it:
        // the fingerprint in each SDP is what the peer checks).
        let certificate = match rtpmesh_dtls::Certificate::generate() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "no DTLS certificate: DTLS-SRTP legs are refused");
                None
            }
        };
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            workers.push(worker::spawn(
                i,
                config.backend,
                core,
                events.clone(),
                fp.clone(),
                certificate.clone(),
            )?);
        }
        let ticker = Ticker::start(&workers, fastpath::SYNC_EVERY)?;
        let pool = PortPool::new(config.port_min, config.port_max)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let tunnels = match config.tunnel_address {
            Some(base) => open_tunnels(base, config.tunnel_secret.as_deref(), &workers)?,
            None => Vec::new(),
        };
        let recorder = match &config.recording_dir {
            Some(dir) => Some(crate::record::Recorder::start(
                dir.clone(),
                config.port_min..=config.port_max,
            )?),
            None => None,
        };
        Ok(Self {
            workers,
            pool,
            v4: config.interface(false),
            v6: config.interface(true),
            // Tunnel sockets took the first ids.
            ids: FlowIds::new(tunnels.last().map_or(0, |t| t.id.0)),
            pending: HashMap::new(),
            tunnels,
            recorder,
            closing: HashMap::new(),
            closing_pairs: HashMap::new(),
            events: events_rx,
            held: Vec::new(),
            fast_path: fp,
            _ticker: ticker,
            certificate,
        })
    }

    /// The kernel fast path, when it is on.
    pub fn fast_path(&self) -> Option<&FastPath> {
        self.fast_path.as_deref()
    }

    /// The backend name the workers use.
    pub fn backend(&self) -> &'static str {
        self.workers.first().map(|w| w.backend()).unwrap_or("none")
    }

    /// The tunnel sockets' counters, summed over workers.
    fn sum_tunnels(&self) -> CounterSnapshot {
        let mut t = CounterSnapshot::default();
        for tunnel in &self.tunnels {
            let s = tunnel.counters.snapshot();
            t.rtp_packets += s.rtp_packets;
            t.rtcp_packets += s.rtcp_packets;
            t.malformed += s.malformed;
            t.tunnel_auth_failures += s.tunnel_auth_failures;
            t.tunnel_replays += s.tunnel_replays;
            t.tunnel_unknown_flow += s.tunnel_unknown_flow;
        }
        t
    }

    /// SHA-256 fingerprint of the certificate DTLS-SRTP legs present
    /// (`a=fingerprint`), if the node has one.
    pub fn dtls_fingerprint(&self) -> Option<[u8; 32]> {
        self.certificate
            .as_ref()
            .map(rtpmesh_dtls::Certificate::fingerprint_sha256)
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Stops every worker.
    pub fn stop(&mut self) {
        for w in &mut self.workers {
            w.stop();
        }
    }

    /// Worker events for the control core (latching, failures); socket
    /// closures are handled here.
    pub fn events(&mut self) -> Vec<Event> {
        let mut out = std::mem::take(&mut self.held);
        while let Ok(ev) = self.events.try_recv() {
            match ev {
                Event::Closed { flow } => self.on_closed(flow),
                ev => out.push(ev),
            }
        }
        out
    }

    /// Waits briefly for sockets being closed to finish, so that their
    /// ports can be reused; true if any pair came back.
    fn wait_for_closures(&mut self) -> bool {
        // Bounded and short: the control thread answers nobody meanwhile.
        // A worker closes sockets within microseconds of the command.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
        let before = self.pool.in_use();
        while !self.closing_pairs.is_empty() && self.pool.in_use() == before {
            match self.events.recv_deadline(deadline) {
                Ok(Event::Closed { flow }) => self.on_closed(flow),
                Ok(ev) => self.held.push(ev),
                Err(_) => break,
            }
        }
        self.pool.in_use() < before
    }

    /// A worker closed a removed flow's socket.
    fn on_closed(&mut self, flow: FlowId) {
        self.ids.release(flow);
        let Some(port) = self.closing.remove(&flow) else {
            return;
        };
        if let Some(n) = self.closing_pairs.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                self.closing_pairs.remove(&port);
                self.pool.release(port);
            }
        }
    }

    /// The RTP and RTCP sockets of a new stream (`port` 0: socketless),
    /// under fresh flow ids.
    fn socket_pair(&mut self, port: u16) -> Result<(call::Socket, call::Socket), PlaneError> {
        let rtp = self.ids.take()?;
        let rtcp = match self.ids.take() {
            Ok(id) => id,
            Err(e) => {
                self.ids.release(rtp);
                return Err(e);
            }
        };
        let rtcp_port = if port == 0 { 0 } else { port + 1 };
        Ok((
            call::Socket::new(rtp, port),
            call::Socket::new(rtcp, rtcp_port),
        ))
    }
}

/// A UDP socket bound to `addr`, non-blocking (and IPv6 only for an IPv6
/// address).
pub(super) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

impl WorkerPlane {
    /// Waits (at most [`FLUSH_WAIT`]) until `workers` have applied every
    /// command sent so far and folded the kernel's counters: the kernel
    /// forwards without the worker, so an update or removal must have taken
    /// its streams out of the kernel before the reply says it is done (and
    /// a reply's counters must include the kernel's). Nothing to wait for
    /// while the kernel holds no entry.
    fn sync_workers(&self, workers: impl Iterator<Item = usize>) {
        if self.fast_path.as_ref().is_none_or(|fp| fp.installed() == 0) {
            return;
        }
        self.barrier(workers);
    }

    /// Waits (at most [`FLUSH_WAIT`]) until `workers` have finished the
    /// receive batch they are in and applied every command sent so far.
    fn barrier(&self, workers: impl Iterator<Item = usize>) {
        let (tx, rx) = crossbeam_channel::bounded(self.workers.len());
        let mut asked = 0;
        for i in workers {
            if let Some(w) = self.workers.get(i) {
                w.send(Command::Sync(Some(tx.clone())));
                asked += 1;
            }
        }
        // Bounded: a worker deep in a batch must not hold the ng thread.
        let deadline = std::time::Instant::now() + FLUSH_WAIT;
        for _ in 0..asked {
            if rx.recv_deadline(deadline).is_err() {
                tracing::debug!("fast path: a worker did not sync in time");
                break;
            }
        }
    }

    /// See [`WorkerPlane::sync_workers`], for one worker.
    fn settle(&self, worker: usize) {
        self.sync_workers(std::iter::once(worker));
    }
}

impl MediaPlane for WorkerPlane {
    fn flush_counters(&mut self) {
        self.sync_workers(0..self.workers.len());
    }

    fn fast_path_entries(&self) -> Option<u32> {
        self.fast_path().map(FastPath::installed)
    }

    fn pick_worker(&mut self) -> usize {
        self.workers
            .iter()
            .min_by_key(|w| w.load().load(Ordering::Relaxed))
            .map(|w| w.index())
            .unwrap_or(0)
    }

    fn open(&mut self, worker: usize, ipv6: bool) -> Result<Local, PlaneError> {
        let iface = if ipv6 { self.v6 } else { self.v4 }
            .ok_or(PlaneError::NoInterface(if ipv6 { 6 } else { 4 }))?;
        // A pair another process holds is skipped for now (it goes back to
        // the pool and is tried again on a later round). Any other bind
        // error, such as running out of file descriptors, is not about the
        // port: trying the rest of the range would only fail the same way.
        for _ in 0..self.pool.capacity() {
            let port = match self.pool.allocate() {
                Ok(p) => p,
                // Ports of just-deleted calls come back within microseconds.
                Err(_) if self.wait_for_closures() => continue,
                Err(e) => {
                    tracing::warn!(range = %e, pairs = self.pool.capacity(), "media port range exhausted: offer refused");
                    return Err(PlaneError::Exhausted);
                }
            };
            let pair = bind(SocketAddr::new(iface.local, port))
                .and_then(|rtp| Ok((rtp, bind(SocketAddr::new(iface.local, port + 1))?)));
            match pair {
                Ok((rtp, rtcp)) => {
                    let (r, c) = match self.socket_pair(port) {
                        Ok(pair) => pair,
                        Err(e) => {
                            self.pool.release(port);
                            return Err(e);
                        }
                    };
                    self.pending.insert(r.flow, Some(rtp));
                    self.pending.insert(c.flow, Some(rtcp));
                    if let Some(w) = self.workers.get(worker) {
                        w.load().fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(Local {
                        ip: iface.local,
                        advertised: iface.advertised,
                        rtp: r,
                        rtcp: c,
                        socketless: false,
                    });
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
                    ) =>
                {
                    tracing::debug!(port, error = %e, "media port pair taken, skipping it");
                    self.pool.release(port);
                }
                Err(e) => {
                    self.pool.release(port);
                    tracing::error!(port, error = %e, "cannot open media sockets");
                    return Err(PlaneError::Socket(e.to_string()));
                }
            }
        }
        Err(PlaneError::Exhausted)
    }

    fn install(&mut self, worker: usize, specs: Vec<FlowSpec>) {
        let Some(w) = self.workers.get(worker) else {
            return;
        };
        let mut adds = Vec::new();
        let mut updates = Vec::new();
        for spec in specs {
            match self.pending.remove(&spec.id) {
                Some(sock) => adds.push((spec, sock)),
                None => updates.push(spec),
            }
        }
        // Adds first: updated flows may route to the new ones.
        if !adds.is_empty() {
            w.send(Command::Add(adds));
        }
        if !updates.is_empty() {
            w.send(Command::Update(updates));
            self.settle(worker);
        }
    }

    fn close(&mut self, worker: usize, locals: Vec<Local>) {
        let mut ids = Vec::new();
        let bound = locals.iter().filter(|l| !l.socketless).count();
        for l in &locals {
            if l.socketless {
                for s in [&l.rtp, &l.rtcp] {
                    if self.pending.remove(&s.flow).is_none() {
                        ids.push(s.flow);
                    } else {
                        self.ids.release(s.flow);
                    }
                }
                continue;
            }
            let mut open = 0;
            for s in [&l.rtp, &l.rtcp] {
                // A socket never handed to a worker closes right here.
                if self.pending.remove(&s.flow).is_some() {
                    self.ids.release(s.flow);
                } else {
                    ids.push(s.flow);
                    self.closing.insert(s.flow, l.rtp.port);
                    open += 1;
                }
            }
            if open == 0 {
                self.pool.release(l.rtp.port);
            } else {
                self.closing_pairs.insert(l.rtp.port, open);
            }
        }
        if let Some(w) = self.workers.get(worker) {
            // Only this thread changes the count; saturate rather than wrap.
            let load = w.load().load(Ordering::Relaxed);
            w.load()
                .store(load.saturating_sub(bound), Ordering::Relaxed);
            if !ids.is_empty() {
                w.send(Command::Remove(ids));
                self.settle(worker);
            }
        }
    }

    fn open_socketless(&mut self, _worker: usize) -> Result<Local, PlaneError> {
        let (r, c) = self.socket_pair(0)?;
        self.pending.insert(r.flow, None);
        self.pending.insert(c.flow, None);
        let ip = self
            .v4
            .or(self.v6)
            .map(|i| i.local)
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        Ok(Local {
            ip,
            advertised: ip,
            rtp: r,
            rtcp: c,
            socketless: true,
        })
    }

    fn reopen(
        &mut self,
        worker: usize,
        ip: std::net::IpAddr,
        advertised: std::net::IpAddr,
        port: Option<u16>,
        flows: (FlowId, FlowId),
    ) -> Result<Local, PlaneError> {
        // A record from a run with more workers names one this run lacks:
        // its flows would never be installed.
        if worker >= self.workers.len() {
            return Err(PlaneError::Socket(format!(
                "worker {worker} does not exist ({} workers)",
                self.workers.len()
            )));
        }
        // Tunnel sockets took the first ids at start; a restored flow must
        // not shadow one of them or a flow already handed out.
        if flows.0 == flows.1 || !self.ids.claim(flows.0) {
            return Err(PlaneError::Socket(format!(
                "flow id {} already in use",
                flows.0 .0
            )));
        }
        if !self.ids.claim(flows.1) {
            self.ids.release(flows.0);
            return Err(PlaneError::Socket(format!(
                "flow id {} already in use",
                flows.1 .0
            )));
        }
        let mk = call::Socket::new;
        let Some(port) = port else {
            self.pending.insert(flows.0, None);
            self.pending.insert(flows.1, None);
            return Ok(Local {
                ip,
                advertised,
                rtp: mk(flows.0, 0),
                rtcp: mk(flows.1, 0),
                socketless: true,
            });
        };
        if !self.pool.take(port) {
            self.ids.release(flows.0);
            self.ids.release(flows.1);
            return Err(PlaneError::Socket(format!(
                "port {port} is outside the range or in use"
            )));
        }
        let pair = bind(SocketAddr::new(ip, port))
            .and_then(|rtp| Ok((rtp, bind(SocketAddr::new(ip, port + 1))?)));
        match pair {
            Ok((rtp, rtcp)) => {
                self.pending.insert(flows.0, Some(rtp));
                self.pending.insert(flows.1, Some(rtcp));
                if let Some(w) = self.workers.get(worker) {
                    w.load().fetch_add(1, Ordering::Relaxed);
                }
                Ok(Local {
                    ip,
                    advertised,
                    rtp: mk(flows.0, port),
                    rtcp: mk(flows.1, port + 1),
                    socketless: false,
                })
            }
            Err(e) => {
                self.pool.release(port);
                self.ids.release(flows.0);
                self.ids.release(flows.1);
                Err(PlaneError::Socket(format!("cannot bind {ip}:{port}: {e}")))
            }
        }
    }

    fn tunnel(&self, worker: usize) -> Result<(FlowId, SocketAddr), PlaneError> {
        self.tunnels
            .get(worker)
            .map(|t| (t.id, t.addr))
            .ok_or(PlaneError::NoTunnel)
    }

    fn record(
        &mut self,
        call_id: &str,
        tag: &str,
        stream: usize,
        source: SocketAddr,
    ) -> Result<(u64, SocketAddr), PlaneError> {
        let rec = self.recorder.as_ref().ok_or(PlaneError::NoRecorder)?;
        let r = rec
            .open(crate::record::RecordingSpec {
                call_id: call_id.to_owned(),
                tag: tag.to_owned(),
                stream,
                source,
            })
            .map_err(|e| PlaneError::Socket(e.to_string()))?;
        Ok((r.id.as_u64(), r.addr))
    }

    fn tunnel_totals(&self) -> CounterSnapshot {
        self.sum_tunnels()
    }

    fn stop_recording(&mut self, id: u64) {
        if let Some(rec) = &self.recorder {
            // A worker may be between the two sends of one packet: its
            // copy to the party already out, the recording's copy not yet.
            // Once every worker is past its batch, that copy is in the
            // recording socket's queue, which closing drains.
            self.barrier(0..self.workers.len());
            match rec.close(crate::record::RecordingId::from_u64(id)) {
                Ok(files) => tracing::info!(?files, "recording finished"),
                Err(e) => tracing::warn!(id, error = %e, "cannot finish recording"),
            }
        }
    }
}
