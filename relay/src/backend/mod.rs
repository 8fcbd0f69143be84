//! IO backends: the thin layer that moves datagrams between sockets and a
//! worker's flow table.
//!
//! Both backends do the same thing with different kernel interfaces:
//! receive in batches from every socket of the worker, hand each datagram to
//! the [`PacketSink`] (the worker's flow table), and send the copies it asks
//! for in batches. Neither allocates or takes a lock per packet. A send
//! error (ICMP port unreachable surfacing as `ECONNREFUSED`, a full send
//! buffer) is counted and forgotten: it never stops a socket or the worker.
//! A receive error on one socket is likewise reported and reading goes on.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::RawFd;
use std::time::Instant;

use rtpmesh_flow::flow::Slot;
pub use rtpmesh_flow::transmit::{Transmit, HEAD_LEN};

pub mod calibrate;
pub mod choose;
pub mod epoll;
pub mod stale;
pub mod sys;
pub mod uring;

#[cfg(test)]
mod tests;

/// What a backend feeds datagrams to: the worker's flow table.
pub trait PacketSink {
    /// Handles one datagram of `len` bytes received on `slot`'s socket from
    /// `src` into `buf` (the whole receive buffer, which the sink may write:
    /// SRTP is unprotected and protected in place, copies and answers go in
    /// the room after the datagram), returning the copies to send, each a
    /// range of `buf` ([`Transmit::body`]).
    fn on_packet(
        &mut self,
        now: Instant,
        slot: Slot,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> &[Transmit];
    /// A send out of `via`'s socket failed.
    fn on_send_error(&mut self, via: Slot, err: io::Error);
    /// The kernel reports `total` datagrams dropped so far on `slot`'s
    /// socket because its receive queue was full.
    fn on_kernel_drops(&mut self, slot: Slot, total: u32);
    /// A datagram on `slot`'s socket waited in its receive queue longer
    /// than [`stale::STALE_AFTER_NS`] and was dropped unseen.
    fn on_stale(&mut self, slot: Slot);
    /// A socket whose removal was deferred is now closed.
    fn on_closed(&mut self, slot: Slot);
}

/// A socket IO backend for one worker thread.
pub trait Backend {
    /// Starts receiving on `socket` (non-blocking); its datagrams are
    /// reported with `slot`.
    fn add_socket(&mut self, slot: Slot, socket: UdpSocket) -> io::Result<()>;
    /// Stops receiving on `slot`'s socket and closes it. Returns `true` if
    /// it is closed now; otherwise the backend calls
    /// [`PacketSink::on_closed`] once the kernel has let go of it (its port
    /// can be bound again only then).
    fn remove_socket(&mut self, slot: Slot) -> bool;
    /// Waits until datagrams arrive or the worker's wake fd is signalled.
    /// Returns `Ok(())` also on a spurious wake-up.
    fn wait(&mut self) -> io::Result<()>;
    /// Processes everything [`Backend::wait`] found ready: hands datagrams
    /// to `sink` and sends the copies it returns.
    ///
    /// The worker applies control commands between the two calls, so a
    /// datagram that arrives together with the command that routes it (the
    /// answer that names the callee) is routed by the new state.
    fn process(&mut self, sink: &mut dyn PacketSink) -> io::Result<()>;
    /// Whether the worker's eventfd was seen signalled (by `wait` or
    /// `process`) since the last call. The worker resets the eventfd only
    /// then, so a batch of packets costs no extra system call.
    fn take_wake(&mut self) -> bool;
    /// [`Backend::wait`], then [`Backend::process`].
    fn poll(&mut self, sink: &mut dyn PacketSink) -> io::Result<()> {
        self.wait()?;
        self.process(sink)
    }
    /// Short name for logs ("io_uring", "epoll").
    fn name(&self) -> &'static str;
    /// The raw fd of `slot`'s socket, for a datagram of the worker's own
    /// (a DTLS flight) that is sent at once, outside the batch.
    fn socket_fd(&self, slot: Slot) -> Option<RawFd>;
}

/// Which backend a worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// Whichever of the two forwards cheaper on this host, measured at
    /// start ([`calibrate`]).
    #[default]
    Auto,
    /// io_uring with multishot receive into a provided-buffer ring.
    Uring,
    /// epoll (mio) with recvmmsg/sendmmsg.
    Epoll,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(Self::Uring),
            "epoll" => Ok(Self::Epoll),
            _ => Err(format!(
                "unknown backend {s:?} (expected auto, uring or epoll)"
            )),
        }
    }
}

/// Creates a backend of `kind` that also watches `wake_fd` (an eventfd).
///
/// `Auto` runs whichever backend forwarded cheaper per packet on this host
/// when measured ([`calibrate::auto_choice`], once per process), and epoll
/// should io_uring then fail to start. `Uring` fails if the kernel lacks
/// io_uring or multishot receive.
pub fn create(kind: BackendKind, wake_fd: RawFd) -> io::Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Epoll => Ok(Box::new(epoll::Epoll::new(wake_fd)?)),
        BackendKind::Uring => Ok(Box::new(uring::Uring::new(wake_fd)?)),
        BackendKind::Auto => match calibrate::auto_choice() {
            BackendKind::Uring => match uring::Uring::new(wake_fd) {
                Ok(b) => Ok(Box::new(b)),
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring unavailable, using epoll");
                    Ok(Box::new(epoll::Epoll::new(wake_fd)?))
                }
            },
            _ => Ok(Box::new(epoll::Epoll::new(wake_fd)?)),
        },
    }
}
