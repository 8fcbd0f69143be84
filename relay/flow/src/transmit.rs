//! What the forward step asks a backend to send.

use std::net::SocketAddr;

use crate::flow::Slot;

/// Longest header a [`Transmit`] can put before the received bytes (a
/// tunnel header).
pub const HEAD_LEN: usize = crate::tunnel::HEADER_LEN;

/// [`Transmit::end`] of a copy that runs to the end of the datagram.
pub const TO_END: u16 = u16::MAX;

/// One copy of a received datagram to send.
///
/// What goes out is `head` (if any) followed by bytes `skip..end` of the
/// receive buffer: a plain copy is the whole datagram, a decapsulated one
/// skips the tunnel header, an encapsulated one gains one, and an SRTP one
/// is the packet as the forward step unprotected or protected it in place
/// (or, when one packet needs both, its protected copy in the buffer's
/// room after the datagram). Backends send that as two pieces
/// (scatter/gather) straight from the receive buffer, so no case copies the
/// payload to send it; `head` travels by value in the transmit and the
/// backend keeps it in its own send record until the send completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The flow whose socket sends it.
    pub via: Slot,
    /// Destination address.
    pub dest: SocketAddr,
    /// Leading bytes of the receive buffer not to send. A transmit that
    /// would skip past its end is not sent.
    pub skip: u16,
    /// Where the bytes to send end in the receive buffer; [`TO_END`]: at
    /// the end of the received datagram.
    pub end: u16,
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
            end: TO_END,
            head: None,
        }
    }

    /// The part of receive buffer `buf`, which holds a datagram of `len`
    /// bytes, that goes out after the head; `None` if the range is not in
    /// the buffer.
    #[inline]
    pub fn body<'a>(&self, buf: &'a [u8], len: usize) -> Option<&'a [u8]> {
        let end = if self.end == TO_END {
            len
        } else {
            usize::from(self.end)
        };
        buf.get(usize::from(self.skip)..end)
    }
}
