//! The forward step: one received datagram in, the copies to send and the
//! notices for the control plane out.
//!
//! This is the whole per-packet work of the relay besides IO. A worker calls
//! [`FlowTable::forward`] for every datagram its backend receives, hands the
//! [`Forwarded::transmits`] back to the backend and passes the
//! [`Forwarded::events`] on to the control plane. The step allocates
//! nothing (the caller's [`Forwarded`] is reused and sized for the worst
//! case up front), takes no lock and makes no system call.

use std::net::SocketAddr;
use std::time::Instant;

use super::accept::kind_of;
use super::secure::room_after;
use super::spec::{FlowId, FlowKind, Route, Slot, MAX_OUTPUTS};
use super::FlowTable;
use crate::counters::bump;
use crate::rtp::PacketKind;
use crate::transmit::Transmit;
use crate::tunnel::HEADER_LEN;

/// What a worker tells the control plane about its flows.
///
/// The forward step yields only [`Event::Latched`]; the worker adds the
/// others when it applies commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A flow learned its peer's address from a packet.
    Latched {
        /// The flow.
        flow: FlowId,
        /// The learned address.
        addr: SocketAddr,
    },
    /// A removed flow's socket is closed: its port may be bound again.
    Closed {
        /// The flow.
        flow: FlowId,
    },
    /// A command could not be applied in full.
    Failed {
        /// The flow concerned.
        flow: FlowId,
        /// Why.
        reason: String,
    },
    /// An ICE peer's consent expired (RFC 7675): it sent no valid check
    /// for 30 s, so the relay stopped sending to it.
    ConsentExpired {
        /// The flow facing that peer.
        flow: FlowId,
    },
    /// A DTLS handshake on a flow's socket failed (wrong fingerprint, bad
    /// records, a fatal alert); the leg cannot carry media.
    DtlsFailed {
        /// The flow.
        flow: FlowId,
        /// Why.
        reason: String,
    },
}

/// A DTLS datagram the forward step leaves to the worker (which runs the
/// handshake): bytes `start..end` of the receive buffer, from `src`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsRecord {
    /// The flow whose socket received it.
    pub slot: Slot,
    /// Who sent it.
    pub src: SocketAddr,
    /// Where it starts in the receive buffer.
    pub start: usize,
    /// Where it ends.
    pub end: usize,
}

/// The output of one forward step, owned by the caller and reused from
/// datagram to datagram: each step starts by clearing it.
#[derive(Debug)]
pub struct Forwarded {
    pub(super) transmits: Vec<Transmit>,
    pub(super) events: Vec<Event>,
    pub(super) dtls: Option<DtlsRecord>,
}

impl Default for Forwarded {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarded {
    /// Empty buffers with room for the most one step can produce: a
    /// transmit per output ([`MAX_OUTPUTS`]) and one event (a datagram
    /// latches at most one flow).
    pub fn new() -> Self {
        Self {
            transmits: Vec::with_capacity(MAX_OUTPUTS),
            events: Vec::with_capacity(1),
            dtls: None,
        }
    }

    /// The copies to send, in the order of the flow's outputs.
    pub fn transmits(&self) -> &[Transmit] {
        &self.transmits
    }

    /// Takes the step's events (rare: a flow latching).
    pub fn events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Takes the DTLS datagram the step left for the worker, if any.
    pub fn take_dtls(&mut self) -> Option<DtlsRecord> {
        self.dtls.take()
    }

    fn clear(&mut self) {
        self.transmits.clear();
        self.events.clear();
        self.dtls = None;
    }
}

impl FlowTable {
    /// The forward step: handles one datagram of `len` bytes that `slot`'s
    /// socket received from `src` at `now` into `buf` (the whole receive
    /// buffer: the room after the datagram takes protected copies and STUN
    /// answers), leaving in `out` the copies to send and what the control
    /// plane should hear.
    ///
    /// A datagram on a tunnel socket is authenticated first
    /// ([`FlowTable::open_tunnel`]); from there on its inner datagram is the
    /// packet of the socketless flow it names, and its copies skip the
    /// tunnel header. A flow whose peer speaks SRTP, DTLS or ICE handles
    /// those first (`secure`): the packet is unprotected in place. The flow
    /// then latches or checks the source and accounts
    /// ([`Flow::accept`](super::Flow::accept)), and every route of the
    /// packet's kind becomes a transmit: out of another flow's socket to its
    /// peer (protected for it if it needs that), to a fixed address, or
    /// sealed into a tunnel. A route with nowhere to go yet (a peer not
    /// known) is counted as unroutable.
    pub fn forward(
        &mut self,
        now: Instant,
        slot: Slot,
        src: SocketAddr,
        buf: &mut [u8],
        len: usize,
        out: &mut Forwarded,
    ) {
        out.clear();
        let len = len.min(buf.len());
        let Some(flow) = self.get(slot) else {
            return;
        };
        let (slot, skip) = if flow.kind() == FlowKind::Tunnel {
            match self.open_tunnel(slot, src, &buf[..len], now) {
                Some(inner) => (inner, HEADER_LEN),
                None => return,
            }
        } else {
            (slot, 0)
        };
        if skip >= len {
            return;
        }
        let clock = self.clock;
        let Some(flow) = self.get(slot) else {
            return;
        };
        let end = if flow.secured.is_some() {
            let kind = kind_of(flow.carries, &buf[skip..len]);
            match self.unprotect(slot, src, buf, skip, len, kind, now, out) {
                Some(end) => end,
                None => return,
            }
        } else {
            len
        };
        let Some(flow) = self.get_mut(slot) else {
            return;
        };
        let verdict = flow.accept(src, &buf[skip..end], now, clock);
        if let Some(addr) = verdict.latched {
            out.events.push(Event::Latched {
                flow: flow.id(),
                addr,
            });
        }
        if let Some(kind) = verdict.forward {
            self.route(slot, kind, buf, skip, end, now, out);
        }
    }

    /// Turns `slot`'s routes for `kind` into transmits of the plain packet
    /// `buf[start..end]` and counts them; `now` times tunnel sequence
    /// numbers.
    ///
    /// A route to a peer that needs protection gets the packet protected in
    /// place when it is the packet's only route, else a protected copy in
    /// the buffer's room after the datagram, so every other route still
    /// sends the plain bytes.
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        slot: Slot,
        kind: PacketKind,
        buf: &mut [u8],
        start: usize,
        end: usize,
        now: Instant,
        out: &mut Forwarded,
    ) {
        let Some(routes) = self.get(slot).map(|f| f.routes(kind).len()) else {
            return;
        };
        let route_at = |t: &Self, i: usize| t.get(slot).and_then(|f| f.routes(kind).get(i));
        let in_place = routes == 1
            && matches!(route_at(self, 0), Some(Route::Peer(via)) if self.protects(via));
        // Past `end` only the unprotected packet's old tag remains.
        let mut room = room_after(end);
        let mut unroutable = 0;
        // By index, not by iterator: sealing for a tunnel and protecting
        // for a peer take a mutable borrow of the table.
        for i in 0..routes {
            let Some(route) = route_at(self, i) else {
                continue;
            };
            let plain = |via, dest| Transmit {
                via,
                dest,
                skip: start as u16,
                end: end as u16,
                head: None,
            };
            let send = match route {
                Route::Peer(via) => match self.get(via).and_then(|f| f.peer()) {
                    None => None,
                    Some(dest) if self.protects(via) => self
                        .protect_for(via, kind, buf, start, end, in_place, &mut room)
                        .map(|(skip, end)| Transmit {
                            skip: skip as u16,
                            end: end as u16,
                            ..plain(via, dest)
                        }),
                    Some(dest) => Some(plain(via, dest)),
                },
                Route::Fixed(via, dest) => Some(plain(via, dest)),
                Route::Tunnel { via, peer, flow } => self
                    .seal_tunnel(via, peer, kind, flow, &buf[start..end], now)
                    .map(|(dest, head)| Transmit {
                        head: Some(head),
                        ..plain(via, dest)
                    }),
            };
            match send {
                Some(t) => out.transmits.push(t),
                None => unroutable += 1,
            }
        }
        if let Some(flow) = self.get(slot) {
            if unroutable > 0 {
                bump(&flow.counters().unroutable, unroutable);
            }
            bump(&flow.counters().forwarded, out.transmits.len() as u64);
        }
    }
}
