//! The media plane as the control core sees it: a trait, so that call
//! handling stays sans-IO and tests can drive it without sockets; the
//! real one, backed by relay workers, is [`WorkerPlane`].

use std::net::SocketAddr;

use rtpmesh_flow::flow::{FlowId, FlowSpec};

use crate::call::Local;

pub mod fastpath;
mod ids;
mod tunnels;
mod workers;

pub use workers::WorkerPlane;

/// Why the plane could not open a stream's sockets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaneError {
    /// Every port pair of the range is in use (or unbindable).
    #[error("port range exhausted")]
    Exhausted,
    /// Sockets could not be opened for a reason other than the port (the
    /// open-file limit, for one).
    #[error("cannot open media sockets: {0}")]
    Socket(String),
    /// No media interface of the wanted address family is configured.
    #[error("no IPv{0} media interface configured")]
    NoInterface(u8),
    /// The node has no tunnel sockets (no `tunnel-address` configured).
    #[error("tunnels are not enabled on this node")]
    NoTunnel,
    /// The node has no recorder (no `recording-dir` configured).
    #[error("recording is not enabled on this node")]
    NoRecorder,
    /// Every flow id (32 bits, less the tunnel sockets') is in use.
    #[error("flow ids exhausted")]
    FlowIdsExhausted,
}

/// What the control core needs from the media plane.
pub trait MediaPlane {
    /// The worker a new call goes to (least loaded).
    fn pick_worker(&mut self) -> usize;
    /// Binds an RTP/RTCP socket pair on the interface of the given family,
    /// for a call on `worker`. The sockets wait until [`MediaPlane::install`]
    /// names their flows.
    fn open(&mut self, worker: usize, ipv6: bool) -> Result<Local, PlaneError>;
    /// Sends `worker` the call's flow specs: flows whose sockets were just
    /// opened are added, the others updated.
    fn install(&mut self, worker: usize, specs: Vec<FlowSpec>);
    /// Removes the flows of `locals` from `worker` and frees their ports.
    fn close(&mut self, worker: usize, locals: Vec<Local>);
    /// Socketless flows for one stream of a tunnel leg on `worker`: the
    /// worker's tunnel socket feeds them.
    fn open_socketless(&mut self, worker: usize) -> Result<Local, PlaneError>;
    /// `worker`'s tunnel socket: its flow and the address peers send to.
    fn tunnel(&self, worker: usize) -> Result<(FlowId, SocketAddr), PlaneError>;
    /// Starts recording one stream of a party into local files; returns
    /// the recording's id and where to send its packets. `source` is the
    /// local address of the call's socket that sends the copies: the
    /// recording takes datagrams from it alone.
    fn record(
        &mut self,
        call_id: &str,
        tag: &str,
        stream: usize,
        source: SocketAddr,
    ) -> Result<(u64, SocketAddr), PlaneError>;
    /// Finishes recording `id` (its files stay).
    fn stop_recording(&mut self, id: u64);
    /// Takes a restored stream's sockets back: the pair at `port` (or, for
    /// `None`, socketless flows) under the given flow ids.
    fn reopen(
        &mut self,
        worker: usize,
        ip: std::net::IpAddr,
        advertised: std::net::IpAddr,
        port: Option<u16>,
        flows: (FlowId, FlowId),
    ) -> Result<Local, PlaneError>;
    /// Brings the counters of streams the kernel forwards up to date before
    /// a reply reports them (waits briefly for the workers; nothing to do
    /// without the fast path).
    fn flush_counters(&mut self) {}

    /// Entries in the kernel fast path now, `None` when it is off.
    fn fast_path_entries(&self) -> Option<u32> {
        None
    }

    /// The tunnel sockets' counters, summed (zero without tunnels).
    fn tunnel_totals(&self) -> rtpmesh_flow::counters::CounterSnapshot {
        rtpmesh_flow::counters::CounterSnapshot::default()
    }
}
