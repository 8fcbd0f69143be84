//! What the forward step asks a backend to send.

use std::net::SocketAddr;

use crate::flow::Slot;

/// Longest header a [`Transmit`] can put before the received bytes (a
/// tunnel header).
pub const HEAD_LEN: usize = crate::tunnel::HEADER_LEN;

/// One copy of a received datagram to send.
///
/// What goes out is `head` (if any) followed by the received bytes less the
/// first `skip`: a plain copy is the whole datagram, a decapsulated one
/// skips the tunnel header, an encapsulated one gains one. Backends send
/// that as two pieces (scatter/gather) straight from the receive buffer, so
/// no case copies the payload; `head` travels by value in the transmit and
/// the backend keeps it in its own send record until the send completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The flow whose socket sends it.
    pub via: Slot,
    /// Destination address.
    pub dest: SocketAddr,
    /// Leading bytes of the received datagram not to send. A transmit that
    /// would skip past the end is not sent.
    pub skip: u16,
    /// Bytes to send before the (rest of the) received datagram.
    pub head: Option<[u8; HEAD_LEN]>,
}

impl Transmit {
    /// A copy of the whole received datagram.
    pub fn plain(via: Slot, dest: SocketAddr) -> Self {
        Self {
            via,
            dest,
            skip: 0,
            head: None,
        }
    }

    /// The part of the received `data` that goes out after the head, or
    /// `None` if `skip` is past its end.
    #[inline]
    pub fn body<'a>(&self, data: &'a [u8]) -> Option<&'a [u8]> {
        data.get(usize::from(self.skip)..)
    }
}
