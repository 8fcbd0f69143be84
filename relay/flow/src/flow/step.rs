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
}

/// The output of one forward step, owned by the caller and reused from
/// datagram to datagram: each step starts by clearing it.
#[derive(Debug)]
pub struct Forwarded {
    transmits: Vec<Transmit>,
    events: Vec<Event>,
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

    fn clear(&mut self) {
        self.transmits.clear();
        self.events.clear();
    }
}

impl FlowTable {
    /// The forward step: handles one datagram that `slot`'s socket
    /// received from `src` at `now`, leaving in `out` the copies to send
    /// and what the control plane should hear.
    ///
    /// A datagram on a tunnel socket is authenticated first
    /// ([`FlowTable::open_tunnel`]); from there on its inner datagram is the
    /// packet of the socketless flow it names, and its copies skip the
    /// tunnel header. The flow then latches or checks the source and
    /// accounts ([`Flow::accept`](super::Flow::accept)), and every route of
    /// the packet's kind becomes a transmit: out of another flow's socket to
    /// its peer, to a fixed address, or sealed into a tunnel. A route with
    /// nowhere to go yet (a peer not known) is counted as unroutable.
    pub fn forward(
        &mut self,
        now: Instant,
        slot: Slot,
        src: SocketAddr,
        data: &[u8],
        out: &mut Forwarded,
    ) {
        out.clear();
        let Some(flow) = self.get(slot) else {
            return;
        };
        let (slot, skip) = if flow.kind() == FlowKind::Tunnel {
            match self.open_tunnel(slot, src, data, now) {
                Some(inner) => (inner, HEADER_LEN),
                None => return,
            }
        } else {
            (slot, 0)
        };
        let data = &data[skip..];
        let clock = self.clock;
        let Some(flow) = self.get_mut(slot) else {
            return;
        };
        let verdict = flow.accept(src, data, now, clock);
        if let Some(addr) = verdict.latched {
            out.events.push(Event::Latched {
                flow: flow.id(),
                addr,
            });
        }
        if let Some(kind) = verdict.forward {
            self.route(slot, kind, data, skip as u16, now, out);
        }
    }

    /// Turns `slot`'s routes for `kind` into transmits of `data` (which
    /// follows `skip` bytes of the received datagram) and counts them;
    /// `now` times tunnel sequence numbers.
    fn route(
        &mut self,
        slot: Slot,
        kind: PacketKind,
        data: &[u8],
        skip: u16,
        now: Instant,
        out: &mut Forwarded,
    ) {
        let Some(routes) = self.get(slot).map(|f| f.routes(kind).len()) else {
            return;
        };
        let mut unroutable = 0;
        // By index, not by iterator: sealing for a tunnel takes the
        // tunnel's next sequence number, a mutable borrow of the table.
        for i in 0..routes {
            let Some(route) = self.get(slot).and_then(|f| f.routes(kind).get(i)) else {
                continue;
            };
            let plain = |via, dest| Transmit {
                via,
                dest,
                skip,
                head: None,
            };
            let send = match route {
                Route::Peer(via) => self
                    .get(via)
                    .and_then(|f| f.peer())
                    .map(|dest| plain(via, dest)),
                Route::Fixed(via, dest) => Some(plain(via, dest)),
                Route::Tunnel { via, peer, flow } => self
                    .seal_tunnel(via, peer, kind, flow, data, now)
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
