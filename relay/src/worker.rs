//! Workers: one thread per core, each owning its sockets and its flows.
//!
//! # Run loop
//! A worker repeats three steps until told to stop:
//! 1. `backend.wait()`: sleep until datagrams arrive or the control plane
//!    signals the worker's eventfd;
//! 2. reset the eventfd, then apply every pending [`Command`] (in that
//!    order, so a command sent meanwhile signals the next wait);
//! 3. `backend.process(forwarder)`: hand every ready datagram to the
//!    [`Forwarder`] and send the copies it returns.
//!
//! The contract with the flow core is str0m's: after every input, drain
//! the outputs. Each datagram is one input to the core's forward step
//! ([`FlowTable::forward`]); before the next datagram the [`Forwarder`]
//! hands the step's transmits to the backend and its events to the control
//! plane's channel. The channel is bounded and the packet path only
//! `try_send`s: a full queue loses a latch notice, it never blocks a
//! worker. Time enters as the `now` the backend took for the batch; the
//! core reads no clock.
//!
//! Commands are applied only between receive batches, so the flow table is
//! never seen half-changed and needs no lock: the worker is its only user.
//! They are applied before the batch that woke the worker, because the
//! control plane sends a command before it answers the SIP proxy: media
//! that the answer made possible can only arrive after the command.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::RawFd;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use rtpmesh_fastpath::FastPath;

use crate::backend::sys::EventFd;
use crate::backend::{self, Backend, BackendKind, PacketSink, Transmit};
use crate::clock;
use crate::handshake::Handshakes;
use crate::offload::Offloads;
use rtpmesh_flow::counters::{bump, FlowCounters};
pub use rtpmesh_flow::flow::Event;
use rtpmesh_flow::flow::{FlowId, FlowKind, FlowSpec, FlowTable, Forwarded, Slot};

/// A change the control plane asks a worker to make.
#[derive(Debug)]
pub enum Command {
    /// Take over these sockets and create their flows. Routes may name any
    /// flow of the batch, so all flows are inserted before any is routed.
    /// A flow without a socket (`None`) is socketless: only a tunnel feeds
    /// it ([`FlowKind::Socketless`]).
    Add(Vec<(FlowSpec, Option<UdpSocket>)>),
    /// Take over a tunnel socket. Keys for its peers (one per direction)
    /// are derived from `secret` and the socket's local address, which must therefore be
    /// the specific address the peers send to, not a wildcard. Removed
    /// with [`Command::Remove`] like any flow.
    AddTunnel {
        /// The tunnel flow's id.
        id: FlowId,
        /// The bound tunnel socket.
        socket: UdpSocket,
        /// The cluster secret the per-peer keys derive from.
        secret: Arc<[u8]>,
        /// The tunnel socket's counters (received datagrams, auth
        /// failures, replays, unknown flows, send errors).
        counters: Arc<FlowCounters>,
    },
    /// Change existing flows (peer, policy, outputs).
    Update(Vec<FlowSpec>),
    /// Remove flows and close their sockets.
    Remove(Vec<FlowId>),
    /// The worker's tick (a [`Ticker`] sends one every 100 ms): fold the
    /// kernel fast path's counters into the flows and bring its entries up
    /// to date, retransmit DTLS flights that are due, and notice ICE peers
    /// whose consent expired. With a sender: only fold the counters, then
    /// signal (a reply about to report them waits).
    Sync(Option<Sender<()>>),
    /// Finish the loop and end the thread.
    Stop,
}

/// A worker's adapter between its backend and the flow core: the flow
/// table as a [`PacketSink`], and the commands applied to it.
pub struct Forwarder {
    table: FlowTable,
    /// The forward step's output, reused for every datagram.
    out: Forwarded,
    events: Sender<Event>,
    /// Removed flows whose sockets the backend closes later.
    closing: HashMap<Slot, FlowId>,
    /// The kernel fast path's entries for this worker's flows, when it is on.
    offload: Option<Offloads>,
    /// DTLS-SRTP handshakes on this worker's sockets.
    handshakes: Handshakes,
    /// ICE flows whose consent expired at the last tick (reused).
    expired: Vec<FlowId>,
}

impl Forwarder {
    /// A forwarder with an empty table that reports to `events` and hands
    /// latched streams to `offload` when given.
    pub fn new(events: Sender<Event>, offload: Option<Offloads>) -> Self {
        Self::with_certificate(events, offload, None)
    }

    /// [`Forwarder::new`], with the certificate DTLS handshakes present.
    pub fn with_certificate(
        events: Sender<Event>,
        offload: Option<Offloads>,
        cert: Option<rtpmesh_dtls::Certificate>,
    ) -> Self {
        Self {
            table: FlowTable::new(clock::media_clock()),
            out: Forwarded::new(),
            events,
            closing: HashMap::new(),
            offload,
            handshakes: Handshakes::new(cert),
            expired: Vec::new(),
        }
    }

    /// Sends what the DTLS handshakes queued; the run loop calls it after
    /// every batch and command.
    pub fn flush_handshakes(&mut self, backend: &dyn Backend) {
        if self.handshakes.has_outgoing() {
            self.handshakes.flush(&self.table, backend);
        }
    }

    /// The tick's work besides the fast path: DTLS timers, ICE consent.
    fn tick(&mut self, now: Instant) {
        self.handshakes.tick(&mut self.table, now, &self.events);
        self.table.expire_consent(now, &mut self.expired);
        for flow in self.expired.drain(..) {
            tracing::info!(?flow, "ICE consent expired; no more media to this peer");
            let _ = self.events.try_send(Event::ConsentExpired { flow });
        }
    }

    /// Takes `id`'s kernel entries out before the flow changes or goes.
    fn unshortcut(&mut self, id: FlowId) {
        if let (Some(o), Some(slot)) = (self.offload.as_mut(), self.table.slot(id)) {
            o.forget(slot, &mut self.table);
        }
    }

    /// The flow table.
    pub fn table(&self) -> &FlowTable {
        &self.table
    }

    /// Applies a command; sockets are handed to / taken from `backend`.
    pub fn apply(&mut self, cmd: Command, backend: &mut dyn Backend) {
        match cmd {
            Command::Add(batch) => {
                let mut specs = Vec::with_capacity(batch.len());
                for (spec, socket) in batch {
                    // Ids are never reused, but a repeated one must not leak
                    // the socket (or the handshake) it had.
                    self.unshortcut(spec.id);
                    if let Some(old) = self.table.slot(spec.id) {
                        self.handshakes.remove(old);
                    }
                    if let Some(old) = self.table.remove(spec.id) {
                        backend.remove_socket(old);
                    }
                    let Some(socket) = socket else {
                        self.table.insert_socketless(&spec);
                        specs.push(spec);
                        continue;
                    };
                    let slot = self.table.insert(&spec);
                    if let (Some(o), Ok(local)) = (self.offload.as_mut(), socket.local_addr()) {
                        o.add_socket(slot, local);
                    }
                    if let Err(e) = backend.add_socket(slot, socket) {
                        self.table.remove(spec.id);
                        self.report(spec.id, format!("cannot watch socket: {e}"));
                        continue;
                    }
                    specs.push(spec);
                }
                self.update(&specs);
            }
            Command::AddTunnel {
                id,
                socket,
                secret,
                counters,
            } => {
                let local = match socket.local_addr() {
                    Ok(a) if !a.ip().is_unspecified() && a.port() != 0 => a,
                    Ok(a) => {
                        // A wildcard is not what the peers derive the key
                        // from: nothing could ever verify.
                        self.report(id, format!("tunnel socket bound to {a}, not one address"));
                        return;
                    }
                    Err(e) => {
                        self.report(id, format!("tunnel socket has no address: {e}"));
                        return;
                    }
                };
                if let Some(old) = self.table.remove(id) {
                    backend.remove_socket(old);
                }
                let wall = clock::wall_clock();
                let slot = self.table.insert_tunnel(id, local, secret, counters, wall);
                if let Err(e) = backend.add_socket(slot, socket) {
                    self.table.remove(id);
                    self.report(id, format!("cannot watch socket: {e}"));
                }
            }
            Command::Update(specs) => {
                for spec in &specs {
                    self.unshortcut(spec.id);
                }
                self.update(&specs);
            }
            Command::Sync(None) => {
                let now = Instant::now();
                if let Some(o) = self.offload.as_mut() {
                    o.sync(now, &mut self.table);
                }
                self.tick(now);
            }
            Command::Sync(Some(done)) => {
                if let Some(o) = self.offload.as_mut() {
                    o.fold_all(&mut self.table);
                }
                let _ = done.try_send(());
            }
            Command::Remove(ids) => {
                for id in ids {
                    self.unshortcut(id);
                    if let (Some(o), Some(slot)) = (self.offload.as_mut(), self.table.slot(id)) {
                        o.remove_socket(slot);
                    }
                    // A socketless flow has nothing to close: its id is
                    // free at once.
                    let socketless = self
                        .table
                        .slot(id)
                        .and_then(|s| self.table.get(s))
                        .is_some_and(|f| f.kind() == FlowKind::Socketless);
                    if let Some(slot) = self.table.slot(id) {
                        self.handshakes.remove(slot);
                    }
                    match self.table.remove(id) {
                        Some(slot) if !socketless && !backend.remove_socket(slot) => {
                            self.closing.insert(slot, id);
                        }
                        _ => self.closed(id),
                    }
                }
            }
            Command::Stop => {}
        }
    }

    fn update(&mut self, specs: &[FlowSpec]) {
        let now = Instant::now();
        for spec in specs {
            if let Err(e) = self.table.update(spec) {
                self.report(spec.id, e.to_string());
                continue;
            }
            if let Some(slot) = self.table.slot(spec.id) {
                self.handshakes.on_spec(slot, spec, now, &self.events);
            }
        }
    }

    fn closed(&self, flow: FlowId) {
        // Blocking send: this is the control path, and a lost notice would
        // leak the port for good.
        let _ = self.events.send(Event::Closed { flow });
    }

    fn report(&self, flow: FlowId, reason: String) {
        tracing::warn!(?flow, %reason, "flow command failed");
        let _ = self.events.try_send(Event::Failed { flow, reason });
    }
}

impl PacketSink for Forwarder {
    #[inline]
    fn on_packet(
        &mut self,
        now: Instant,
        slot: Slot,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> &[Transmit] {
        self.table.forward(now, slot, src, buf, len, &mut self.out);
        if let Some(rec) = self.out.take_dtls() {
            self.handshakes.on_record(
                &mut self.table,
                rec.slot,
                rec.src,
                &buf[rec.start..rec.end],
                now,
                &self.events,
            );
        }
        for ev in self.out.events() {
            // Bounded channel: a full queue loses the notice, never blocks.
            if let Err(TrySendError::Full(ev)) = self.events.try_send(ev) {
                tracing::debug!(?ev, "event queue full");
            }
        }
        self.out.transmits()
    }

    fn on_send_error(&mut self, via: Slot, err: io::Error) {
        if let Some(f) = self.table.get(via) {
            bump(&f.counters().send_errors, 1);
            tracing::trace!(flow = ?f.id(), error = %err, "send failed");
        }
    }

    fn on_closed(&mut self, slot: Slot) {
        if let Some(id) = self.closing.remove(&slot) {
            self.closed(id);
        }
    }

    fn on_stale(&mut self, slot: Slot) {
        if let Some(f) = self.table.get(slot) {
            bump(&f.counters().stale_drops, 1);
        }
    }

    fn on_kernel_drops(&mut self, slot: Slot, total: u32) {
        if let Some(f) = self.table.get(slot) {
            f.counters()
                .kernel_drops
                .store(u64::from(total), std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The control plane's handle on a running worker.
pub struct WorkerHandle {
    index: usize,
    commands: Sender<Command>,
    wake: Arc<EventFd>,
    backend: &'static str,
    load: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Sends a command and wakes the worker.
    pub fn send(&self, cmd: Command) {
        if self.commands.send(cmd).is_ok() {
            self.wake.wake();
        }
    }

    /// The worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Name of the backend the worker ended up with.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Flows the control plane has placed on this worker (its own count, for
    /// least-loaded placement).
    pub fn load(&self) -> &AtomicUsize {
        &self.load
    }

    /// Stops the worker and waits for it.
    pub fn stop(&mut self) {
        self.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends every worker a [`Command::Sync`] at a fixed interval while the
/// kernel fast path is on, so that its counters reach the flows (and
/// `query`, the media timeout) within that interval and newly settled
/// streams move into the kernel. Stops when dropped.
pub struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts ticking `workers` every `every`.
    pub fn start(workers: &[WorkerHandle], every: std::time::Duration) -> io::Result<Self> {
        let targets: Vec<(Sender<Command>, Arc<EventFd>)> = workers
            .iter()
            .map(|w| (w.commands.clone(), w.wake.clone()))
            .collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rtpmesh-sync".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::park_timeout(every);
                    for (tx, wake) in &targets {
                        if tx.send(Command::Sync(None)).is_ok() {
                            wake.wake();
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The CPUs this process may run on (its affinity mask), in order: worker
/// `i` goes to the `i`-th of them. Under `taskset -c 2,3` that is CPUs 2
/// and 3, not 0 and 1.
pub fn allowed_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

/// Starts worker `index` with a backend of `kind`, pinned to `core` when
/// given; it reports to `events` and, given the loaded kernel fast path,
/// hands it the streams it may forward.
pub fn spawn(
    index: usize,
    kind: BackendKind,
    core: Option<usize>,
    events: Sender<Event>,
    fast_path: Option<Arc<FastPath>>,
    cert: Option<rtpmesh_dtls::Certificate>,
) -> io::Result<WorkerHandle> {
    let wake = Arc::new(EventFd::new()?);
    let (tx, rx) = crossbeam_channel::unbounded();
    // The backend holds raw pointers into its own buffers, so it is created
    // on the worker thread that alone uses it; the outcome comes back here so
    // a failure is the caller's error, not a dead thread.
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let wake_fd = wake.raw();
    let thread = std::thread::Builder::new()
        .name(format!("rtpmesh-w{index}"))
        .spawn(move || {
            if let Some(id) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                    tracing::debug!(core = id, "could not pin worker");
                }
            }
            match backend::create(kind, wake_fd) {
                Ok(backend) => {
                    let _ = ready_tx.send(Ok(backend.name()));
                    let offload = fast_path.map(|fp| Offloads::new(fp, clock::media_epoch_ns()));
                    let fwd = Forwarder::with_certificate(events, offload, cert);
                    run(backend, fwd, rx, wake_fd);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })?;
    let name = ready_rx
        .recv()
        .map_err(|_| io::Error::other("worker thread died at start"))??;
    tracing::info!(worker = index, backend = name, ?core, "worker started");
    Ok(WorkerHandle {
        index,
        commands: tx,
        wake,
        backend: name,
        load: Arc::new(AtomicUsize::new(0)),
        thread: Some(thread),
    })
}

fn run(
    mut backend: Box<dyn Backend>,
    mut fwd: Forwarder,
    commands: Receiver<Command>,
    wake_fd: RawFd,
) {
    loop {
        if let Err(e) = backend.wait() {
            // Wait errors are not per-socket (those are handled inside the
            // backend); back off briefly rather than spin.
            tracing::error!(error = %e, "worker wait failed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Reset a wake-up before reading commands: a command sent after this
        // read signals again, so a later wait returns for it. (io_uring
        // reports the wake-up one batch late; resetting it then is still
        // before the commands of that batch are read.)
        if backend.take_wake() {
            EventFd::drain(wake_fd);
        }
        loop {
            match commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Ok(cmd) => fwd.apply(cmd, backend.as_mut()),
                Err(TryRecvError::Empty) => break,
            }
        }
        if let Err(e) = backend.process(&mut fwd) {
            tracing::error!(error = %e, "worker processing failed");
        }
        fwd.flush_handshakes(backend.as_ref());
    }
}
