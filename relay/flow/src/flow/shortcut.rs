//! Which flows the kernel may forward on the relay's behalf.
//!
//! A flow qualifies when the relay's work for its packets has become a
//! fixed rewrite: its source is settled (latched and past the confirmation
//! window, or never latched by policy), every packet kind its socket
//! carries goes to exactly one place, the other leg's peer, and that peer
//! is settled too. Anything more (recording copies, branches, tunnels, a
//! peer still unknown or still allowed to move, SRTP, DTLS or ICE on either
//! side) keeps the flow on the sockets. The worker asks [`FlowTable::shortcut`] on every tick and
//! installs, replaces or removes the kernel's entry to match; this module
//! only decides.

use std::net::SocketAddr;
use std::time::Instant;

use super::accept::Flow;
use super::spec::{Carries, FlowKind, Latching, Route, Slot};
use super::FlowTable;
use crate::rtp::PacketKind;
use crate::stats::ReceiverStats;

/// Which sources the kernel forwards for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRule {
    /// Any (`asymmetric`: the relay never latches).
    Any,
    /// The latched peer; others go up to the socket, which forwards and
    /// counts them as foreign.
    Learn(SocketAddr),
    /// The latched peer; others are dropped and counted (`strict-source`).
    Strict(SocketAddr),
}

/// What the kernel does for one flow's packets: those from `source` leave
/// through `via`'s socket to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortcut {
    /// Which sources.
    pub source: SourceRule,
    /// What the flow's socket carries.
    pub carries: Carries,
    /// The flow whose socket they leave from.
    pub via: Slot,
    /// Where to.
    pub to: SocketAddr,
    /// RTP clock rate of the stream, for jitter.
    pub clock_rate: u32,
}

impl Flow {
    /// The source rule once the flow's source can no longer move at `now`.
    fn settled_source(&self, now: Instant) -> Option<SourceRule> {
        if self.latching == Latching::Asymmetric {
            return Some(SourceRule::Any);
        }
        if !self.latched || self.confirm_until.is_some_and(|t| now < t) {
            return None;
        }
        let peer = self.peer?;
        Some(match self.latching {
            Latching::Strict => SourceRule::Strict(peer),
            _ => SourceRule::Learn(peer),
        })
    }

    /// The one flow every packet kind this socket carries goes to.
    fn single_peer_route(&self) -> Option<Slot> {
        let kinds: &[PacketKind] = match self.carries {
            Carries::Rtp => &[PacketKind::Rtp],
            Carries::Rtcp => &[PacketKind::Rtcp],
            Carries::Muxed => &[PacketKind::Rtp, PacketKind::Rtcp],
        };
        let mut via = None;
        for &kind in kinds {
            let routes = self.routes(kind);
            match (routes.len(), routes.get(0)) {
                (1, Some(Route::Peer(s))) if via.is_none_or(|v| v == s) => via = Some(s),
                _ => return None,
            }
        }
        via
    }
}

impl FlowTable {
    /// What the kernel may do for `slot`'s packets at `now`, if anything
    /// (see the module doc for when a flow qualifies).
    pub fn shortcut(&self, slot: Slot, now: Instant) -> Option<Shortcut> {
        let flow = self.get(slot)?;
        // The kernel neither unprotects, protects nor answers STUN.
        if flow.kind() != FlowKind::Socket || flow.secured.is_some() {
            return None;
        }
        let source = flow.settled_source(now)?;
        let via = flow.single_peer_route()?;
        let out = self.get(via)?;
        if out.kind() != FlowKind::Socket || via == slot || out.secured.is_some() {
            return None;
        }
        out.settled_source(now)?;
        Some(Shortcut {
            source,
            carries: flow.carries,
            via,
            to: out.peer()?,
            clock_rate: flow.clock_rate,
        })
    }

    /// Slots of the flows that have sockets of their own.
    pub fn socket_slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.ids()
            .filter_map(|id| self.slot(id))
            .filter(|&s| self.get(s).is_some_and(|f| f.kind() == FlowKind::Socket))
    }

    /// `slot`'s RFC 3550 receiver statistics.
    pub fn receiver_stats(&self, slot: Slot) -> Option<ReceiverStats> {
        self.get(slot).map(|f| f.stats)
    }

    /// Replaces `slot`'s receiver statistics with what another forwarder
    /// (the kernel's fast path) reached.
    pub fn set_receiver_stats(&mut self, slot: Slot, stats: ReceiverStats) {
        if let Some(f) = self.get_mut(slot) {
            f.stats = stats;
        }
    }
}
