//! Flows: one local socket's forwarding entry, and the table a worker keeps
//! of them.
//!
//! Everything here is sans-IO: a worker hands a flow the bytes and source of a
//! datagram, and the flow says whether to forward it and where. The table is
//! owned by exactly one worker thread, so it needs no lock: the control plane
//! never touches it and changes it only by sending the worker commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::counters::{bump, millis_since_epoch, FlowCounters};
use crate::rtp::{classify, PacketKind, RtcpHeader, RtpHeader};
use crate::stats::{rtp_units, ReceiverStats};

/// The control plane's name for a flow; unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

/// Where a flow lives in its worker's table: an index plus a generation, so
/// that a stale reference (an output to a removed flow, a late completion
/// for a closed socket) is recognised instead of hitting the slot's next
/// tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Index in the table.
    pub index: u32,
    /// Generation of the entry at that index.
    pub generation: u32,
}

impl Slot {
    /// Packs the slot into 64 bits (io_uring user data, mio tokens).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// Inverse of [`Slot::to_u64`].
    pub fn from_u64(v: u64) -> Self {
        Self {
            index: v as u32,
            generation: (v >> 32) as u32,
        }
    }
}

/// How a flow treats the source address of what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latching {
    /// Learn the peer's real address from its first packet (NAT traversal);
    /// packets from any other source are still forwarded but do not move the
    /// return path. rtpengine's default.
    #[default]
    Learn,
    /// Learn as above, then drop (and count) packets from any other source:
    /// `strict-source`.
    Strict,
    /// Never learn: the return path stays on the address from the SDP:
    /// `asymmetric`.
    Asymmetric,
}

/// Which packets a socket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// RTP only (RTCP is on the next port).
    Rtp,
    /// RTCP only.
    Rtcp,
    /// Both, demultiplexed by RFC 5761 (`a=rtcp-mux`).
    Muxed,
}

/// One destination of a flow's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Out of another flow's socket to that flow's (latched) peer: the normal
    /// "other leg" output.
    Peer(FlowId),
    /// Out of `via`'s socket to a fixed address (a branch: recorder, another
    /// region).
    Fixed {
        /// The flow whose socket sends.
        via: FlowId,
        /// Where to.
        dest: SocketAddr,
    },
    /// STUB until the tunnel branch lands.
    Tunnel {
        /// Tunnel socket flow.
        via: FlowId,
        /// Peer tunnel socket.
        dest: SocketAddr,
        /// Peer's flow id.
        flow: u32,
    },
}

/// Most outputs one flow may have; fixed so a flow needs no heap on the
/// packet path.
pub const MAX_OUTPUTS: usize = 8;

/// What the control plane says a flow should do.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    /// The flow.
    pub id: FlowId,
    /// Address the peer advertised (SDP); `None` while unknown or on hold.
    pub peer: Option<SocketAddr>,
    /// Source address policy.
    pub latching: Latching,
    /// What the socket carries.
    pub carries: Carries,
    /// Where RTP received here goes.
    pub rtp_outputs: Vec<Output>,
    /// Where RTCP received here goes.
    pub rtcp_outputs: Vec<Output>,
    /// RTP clock rate of the stream received here, for jitter.
    pub clock_rate: u32,
    /// Counters shared with the control plane.
    pub counters: Arc<FlowCounters>,
}

/// An output resolved to table slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// See [`Output::Peer`].
    Peer(Slot),
    /// See [`Output::Fixed`].
    Fixed(Slot, SocketAddr),
}

/// A fixed-capacity list of routes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Routes {
    len: usize,
    items: [Option<Route>; MAX_OUTPUTS],
}

impl Routes {
    /// The routes, in order.
    pub fn iter(&self) -> impl Iterator<Item = Route> + '_ {
        self.items[..self.len].iter().flatten().copied()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Route `i` (`i < len()`).
    pub fn get(&self, i: usize) -> Option<Route> {
        self.items.get(i).copied().flatten()
    }

    fn push(&mut self, r: Route) -> bool {
        if self.len == MAX_OUTPUTS {
            return false;
        }
        self.items[self.len] = Some(r);
        self.len += 1;
        true
    }
}

/// What to do with one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `Some(kind)`: forward to that kind's outputs. `None`: drop.
    pub forward: Option<PacketKind>,
    /// The flow just learned this peer address.
    pub latched: Option<SocketAddr>,
}

/// A flow in a worker's table.
#[derive(Debug)]
pub struct Flow {
    id: FlowId,
    advertised: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    latched: bool,
    latching: Latching,
    carries: Carries,
    rtp_routes: Routes,
    rtcp_routes: Routes,
    clock_rate: u32,
    stats: ReceiverStats,
    counters: Arc<FlowCounters>,
}

impl Flow {
    /// The flow's id.
    pub fn id(&self) -> FlowId {
        self.id
    }

    /// Where this flow's socket sends its peer's packets: the latched
    /// address, else the advertised one.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Whether the peer address was learned from packets.
    pub fn is_latched(&self) -> bool {
        self.latched
    }

    /// The shared counters.
    pub fn counters(&self) -> &FlowCounters {
        &self.counters
    }

    /// Routes for packets of `kind`.
    pub fn routes(&self, kind: PacketKind) -> &Routes {
        match kind {
            PacketKind::Rtp => &self.rtp_routes,
            PacketKind::Rtcp => &self.rtcp_routes,
        }
    }

    /// Decides about one datagram from `src` and accounts for it.
    ///
    /// This is the per-packet work of the relay besides IO: it allocates
    /// nothing and takes no lock.
    pub fn accept(
        &mut self,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
        epoch: Instant,
    ) -> Verdict {
        let c = &*self.counters;
        let drop = Verdict {
            forward: None,
            latched: None,
        };
        let kind = match (self.carries, classify(data)) {
            (_, Err(_)) => {
                bump(&c.malformed, 1);
                return drop;
            }
            (Carries::Rtcp, _) => PacketKind::Rtcp,
            (Carries::Rtp, _) => PacketKind::Rtp,
            (Carries::Muxed, Ok(k)) => k,
        };
        let header = match kind {
            PacketKind::Rtp => RtpHeader::parse(data).map(Some),
            PacketKind::Rtcp => RtcpHeader::parse(data).map(|_| None),
        };
        let Ok(header) = header else {
            bump(&c.malformed, 1);
            return drop;
        };

        let mut latched = None;
        if self.peer != Some(src) {
            match self.latching {
                Latching::Asymmetric => {}
                _ if !self.latched => {
                    self.peer = Some(src);
                    self.latched = true;
                    latched = Some(src);
                }
                Latching::Strict => {
                    bump(&c.strict_drops, 1);
                    return drop;
                }
                Latching::Learn => bump(&c.foreign, 1),
            }
        } else if !self.latched && self.latching != Latching::Asymmetric {
            // The advertised address is confirmed by the peer's own packets.
            self.latched = true;
            latched = Some(src);
        }

        let len = data.len() as u64;
        match header {
            Some(rtp) => {
                bump(&c.rtp_packets, 1);
                bump(&c.rtp_bytes, len);
                let arrival = rtp_units(now.saturating_duration_since(epoch), self.clock_rate);
                self.stats
                    .on_rtp(rtp.ssrc(), rtp.sequence(), rtp.timestamp(), arrival);
                use std::sync::atomic::Ordering::Relaxed;
                c.ssrc.store(rtp.ssrc(), Relaxed);
                c.expected.store(self.stats.expected(), Relaxed);
                c.lost.store(self.stats.lost() as u64, Relaxed);
                c.jitter.store(self.stats.jitter(), Relaxed);
            }
            None => {
                bump(&c.rtcp_packets, 1);
                bump(&c.rtcp_bytes, len);
            }
        }
        c.last_packet_ms.store(
            millis_since_epoch(now),
            std::sync::atomic::Ordering::Relaxed,
        );
        Verdict {
            forward: Some(kind),
            latched,
        }
    }
}

struct Entry {
    generation: u32,
    flow: Option<Flow>,
}

/// A worker's flows, indexed by [`Slot`].
#[derive(Default)]
pub struct FlowTable {
    entries: Vec<Entry>,
    free: Vec<u32>,
    by_id: std::collections::HashMap<FlowId, Slot>,
}

impl FlowTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The flow at `slot`, if it is still the same flow.
    #[inline]
    pub fn get(&self, slot: Slot) -> Option<&Flow> {
        let e = self.entries.get(slot.index as usize)?;
        if e.generation == slot.generation {
            e.flow.as_ref()
        } else {
            None
        }
    }

    /// Mutable access to the flow at `slot`.
    #[inline]
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut Flow> {
        let e = self.entries.get_mut(slot.index as usize)?;
        if e.generation == slot.generation {
            e.flow.as_mut()
        } else {
            None
        }
    }

    /// The slot of flow `id`.
    pub fn slot(&self, id: FlowId) -> Option<Slot> {
        self.by_id.get(&id).copied()
    }

    /// Adds a flow with no routes yet; [`FlowTable::update`] sets them once
    /// every flow they name is in the table. An existing flow of the same id
    /// is dropped (the caller closes its socket).
    pub fn insert(&mut self, spec: &FlowSpec) -> Slot {
        self.remove(spec.id);
        let flow = Flow {
            id: spec.id,
            advertised: spec.peer,
            peer: spec.peer,
            latched: false,
            latching: spec.latching,
            carries: spec.carries,
            rtp_routes: Routes::default(),
            rtcp_routes: Routes::default(),
            clock_rate: spec.clock_rate.max(1),
            stats: ReceiverStats::default(),
            counters: spec.counters.clone(),
        };
        let slot = match self.free.pop() {
            Some(index) => {
                let e = &mut self.entries[index as usize];
                e.flow = Some(flow);
                Slot {
                    index,
                    generation: e.generation,
                }
            }
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    flow: Some(flow),
                });
                Slot {
                    index: (self.entries.len() - 1) as u32,
                    generation: 0,
                }
            }
        };
        self.by_id.insert(spec.id, slot);
        slot
    }

    /// Applies a new spec to an existing flow: peer, policy and routes.
    ///
    /// A changed advertised peer (re-INVITE to a new port) replaces a latched
    /// one and latching starts again, as rtpengine follows a re-offer; an
    /// unchanged one keeps what was learned.
    pub fn update(&mut self, spec: &FlowSpec) -> Result<(), UpdateError> {
        let slot = self
            .slot(spec.id)
            .ok_or(UpdateError::UnknownFlow(spec.id))?;
        let mut rtp = Routes::default();
        let mut rtcp = Routes::default();
        for (outputs, routes) in [
            (&spec.rtp_outputs, &mut rtp),
            (&spec.rtcp_outputs, &mut rtcp),
        ] {
            for o in outputs {
                let route = match *o {
                    Output::Peer(id) => {
                        Route::Peer(self.slot(id).ok_or(UpdateError::UnknownFlow(id))?)
                    }
                    Output::Fixed { via, dest } => {
                        Route::Fixed(self.slot(via).ok_or(UpdateError::UnknownFlow(via))?, dest)
                    }
                    Output::Tunnel { via, .. } => return Err(UpdateError::UnknownFlow(via)),
                };
                if !routes.push(route) {
                    return Err(UpdateError::TooManyOutputs(spec.id));
                }
            }
        }
        let flow = self.get_mut(slot).expect("slot from by_id is live");
        if spec.peer != flow.advertised {
            flow.advertised = spec.peer;
            flow.peer = spec.peer;
            flow.latched = false;
        }
        flow.latching = spec.latching;
        flow.carries = spec.carries;
        flow.clock_rate = spec.clock_rate.max(1);
        flow.rtp_routes = rtp;
        flow.rtcp_routes = rtcp;
        Ok(())
    }

    /// Removes flow `id`, returning its slot.
    pub fn remove(&mut self, id: FlowId) -> Option<Slot> {
        let slot = self.by_id.remove(&id)?;
        let e = &mut self.entries[slot.index as usize];
        e.flow = None;
        e.generation = e.generation.wrapping_add(1);
        self.free.push(slot.index);
        Some(slot)
    }

    /// Ids of all flows.
    pub fn ids(&self) -> impl Iterator<Item = FlowId> + '_ {
        self.by_id.keys().copied()
    }
}

/// Why [`FlowTable::update`] refused a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The spec names a flow this worker does not have.
    #[error("unknown flow {0:?}")]
    UnknownFlow(FlowId),
    /// More than [`MAX_OUTPUTS`] outputs for one packet kind.
    #[error("flow {0:?} has more than {MAX_OUTPUTS} outputs")]
    TooManyOutputs(FlowId),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::CounterSnapshot;

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 7];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    fn rtcp_rr() -> Vec<u8> {
        vec![0x80, 201, 0, 1, 0, 0, 0, 7]
    }

    fn spec(
        id: u64,
        peer: Option<&str>,
        latching: Latching,
        carries: Carries,
        out: Vec<Output>,
    ) -> FlowSpec {
        FlowSpec {
            id: FlowId(id),
            peer: peer.map(|p| p.parse().unwrap()),
            latching,
            carries,
            rtp_outputs: out.clone(),
            rtcp_outputs: out,
            clock_rate: 8000,
            counters: Arc::default(),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Two flows routed to each other, like the two legs of a call.
    fn pair(latching: Latching) -> (FlowTable, Slot, Slot) {
        let mut t = FlowTable::new();
        let a = spec(
            1,
            Some("10.0.0.1:4000"),
            latching,
            Carries::Muxed,
            vec![Output::Peer(FlowId(2))],
        );
        let b = spec(
            2,
            Some("10.0.0.2:5000"),
            latching,
            Carries::Muxed,
            vec![Output::Peer(FlowId(1))],
        );
        let sa = t.insert(&a);
        let sb = t.insert(&b);
        t.update(&a).unwrap();
        t.update(&b).unwrap();
        (t, sa, sb)
    }

    fn snap(t: &FlowTable, s: Slot) -> CounterSnapshot {
        t.get(s).unwrap().counters().snapshot()
    }

    #[test]
    fn latches_to_the_real_source_and_forwards_foreign_packets() {
        let (mut t, sa, _) = pair(Latching::Learn);
        let now = Instant::now();
        let nat = addr("192.0.2.9:61000");
        let v = t.get_mut(sa).unwrap().accept(nat, &rtp(1), now, now);
        assert_eq!(v.forward, Some(PacketKind::Rtp));
        assert_eq!(v.latched, Some(nat));
        assert_eq!(t.get(sa).unwrap().peer(), Some(nat));
        // A third source is forwarded but does not move the return path.
        let v = t
            .get_mut(sa)
            .unwrap()
            .accept(addr("198.51.100.1:1"), &rtp(2), now, now);
        assert_eq!(v.forward, Some(PacketKind::Rtp));
        assert_eq!(v.latched, None);
        assert_eq!(t.get(sa).unwrap().peer(), Some(nat));
        assert_eq!(snap(&t, sa).foreign, 1);
        assert_eq!(snap(&t, sa).rtp_packets, 2);
    }

    #[test]
    fn strict_source_drops_and_counts_other_sources() {
        let (mut t, sa, _) = pair(Latching::Strict);
        let now = Instant::now();
        let first = addr("10.0.0.1:4000");
        assert!(t
            .get_mut(sa)
            .unwrap()
            .accept(first, &rtp(1), now, now)
            .forward
            .is_some());
        let v = t
            .get_mut(sa)
            .unwrap()
            .accept(addr("10.0.0.1:4002"), &rtp(2), now, now);
        assert_eq!(v.forward, None);
        assert_eq!(snap(&t, sa).strict_drops, 1);
        assert_eq!(snap(&t, sa).rtp_packets, 1);
    }

    #[test]
    fn asymmetric_never_learns() {
        let (mut t, sa, _) = pair(Latching::Asymmetric);
        let now = Instant::now();
        let v = t
            .get_mut(sa)
            .unwrap()
            .accept(addr("192.0.2.9:1"), &rtp(1), now, now);
        assert_eq!(v.forward, Some(PacketKind::Rtp));
        assert_eq!(v.latched, None);
        assert_eq!(t.get(sa).unwrap().peer(), Some(addr("10.0.0.1:4000")));
    }

    #[test]
    fn malformed_packets_are_counted_and_dropped() {
        let (mut t, sa, _) = pair(Latching::Learn);
        let now = Instant::now();
        for junk in [&b""[..], b"\x00", b"hello world, not rtp", &[0x80, 0, 0]] {
            let v = t
                .get_mut(sa)
                .unwrap()
                .accept(addr("10.0.0.1:4000"), junk, now, now);
            assert_eq!(v.forward, None);
        }
        assert_eq!(snap(&t, sa).malformed, 4);
        assert_eq!(snap(&t, sa).packets(), 0);
        // Junk does not latch either.
        assert!(!t.get(sa).unwrap().is_latched());
    }

    #[test]
    fn muxed_flow_tells_rtcp_from_rtp() {
        let (mut t, sa, _) = pair(Latching::Learn);
        let now = Instant::now();
        let v = t
            .get_mut(sa)
            .unwrap()
            .accept(addr("10.0.0.1:4000"), &rtcp_rr(), now, now);
        assert_eq!(v.forward, Some(PacketKind::Rtcp));
        assert_eq!(snap(&t, sa).rtcp_packets, 1);
    }

    #[test]
    fn reoffer_with_new_address_restarts_latching_and_same_address_keeps_it() {
        let (mut t, sa, _) = pair(Latching::Learn);
        let now = Instant::now();
        let nat = addr("192.0.2.9:61000");
        t.get_mut(sa).unwrap().accept(nat, &rtp(1), now, now);
        let mut s = spec(
            1,
            Some("10.0.0.1:4000"),
            Latching::Learn,
            Carries::Muxed,
            vec![Output::Peer(FlowId(2))],
        );
        t.update(&s).unwrap();
        assert_eq!(t.get(sa).unwrap().peer(), Some(nat));
        s.peer = Some(addr("10.0.0.1:4100"));
        t.update(&s).unwrap();
        assert_eq!(t.get(sa).unwrap().peer(), Some(addr("10.0.0.1:4100")));
        assert!(!t.get(sa).unwrap().is_latched());
    }

    #[test]
    fn removed_slots_are_not_reused_by_stale_references() {
        let (mut t, sa, sb) = pair(Latching::Learn);
        assert_eq!(t.remove(FlowId(2)), Some(sb));
        assert!(t.get(sb).is_none());
        let c = spec(3, None, Latching::Learn, Carries::Rtp, vec![]);
        let sc = t.insert(&c);
        assert_eq!(sc.index, sb.index);
        assert!(
            t.get(sb).is_none(),
            "old generation must not see the new tenant"
        );
        assert!(t.get(sa).is_some());
        assert_eq!(Slot::from_u64(sc.to_u64()), sc);
    }

    #[test]
    fn outputs_naming_unknown_flows_or_too_many_are_refused() {
        let mut t = FlowTable::new();
        let s = spec(
            1,
            None,
            Latching::Learn,
            Carries::Rtp,
            vec![Output::Peer(FlowId(9))],
        );
        t.insert(&s);
        assert_eq!(t.update(&s), Err(UpdateError::UnknownFlow(FlowId(9))));
        let s = spec(
            1,
            None,
            Latching::Learn,
            Carries::Rtp,
            vec![Output::Peer(FlowId(1)); MAX_OUTPUTS + 1],
        );
        assert_eq!(t.update(&s), Err(UpdateError::TooManyOutputs(FlowId(1))));
    }
}
