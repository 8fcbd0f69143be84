//! The media plane as the control core sees it: a trait, so that call
//! handling stays sans-IO and tests can drive it without sockets.

use rtpmesh_relay::flow::FlowSpec;

use crate::call::Local;

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
}
