//! Flows: one local socket's forwarding entry, and the table a worker keeps
//! of them.
//!
//! Everything here is sans-IO: a worker hands a flow the bytes and source of a
//! datagram, and the flow says whether to forward it and where. The table is
//! owned by exactly one worker thread, so it needs no lock: the control plane
//! never touches it and changes it only by sending the worker commands.
//!
//! A table holds three kinds of entries (see [`FlowKind`]): media flows with
//! a socket of their own, socketless flows that only a tunnel feeds, and
//! tunnel sockets, whose per-peer state (key, sequence numbers, replay
//! window) lives here too, so that the table stays the worker's only
//! per-packet state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::counters::{bump, millis_since_epoch, FlowCounters};
use crate::rtp::{classify, PacketKind, RtcpHeader, RtpHeader};
use crate::stats::{rtp_units, ReceiverStats};
use crate::tunnel::{self, derive_key, ReplayWindow, TunnelError, TunnelKey};

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
    /// Out of tunnel socket `via` to the peer node's tunnel socket `dest`,
    /// sealed for the peer's (socketless) flow `flow`.
    Tunnel {
        /// The tunnel flow whose socket sends ([`FlowTable::insert_tunnel`]).
        via: FlowId,
        /// The peer node's tunnel socket.
        dest: SocketAddr,
        /// The flow id at the peer node that receives it.
        flow: u32,
    },
}

/// Most peers one tunnel socket keeps state for. Each costs a key and a
/// replay window; the cap bounds what a control-plane bug can make a worker
/// hold.
pub const MAX_TUNNEL_PEERS: usize = 1024;

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
    /// See [`Output::Tunnel`], resolved to the tunnel's slot and the index
    /// of the peer in its peer list.
    Tunnel {
        /// The tunnel flow.
        via: Slot,
        /// Index of the peer in the tunnel's peer list (entries are never
        /// removed while the tunnel lives, so it stays valid).
        peer: u32,
        /// The flow id at the peer node.
        flow: u32,
    },
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

/// What kind of entry a [`Flow`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// A media flow with its own socket.
    Socket,
    /// A media flow without a socket: only a tunnel feeds it, and it cannot
    /// send (no [`Output::Peer`] or [`Output::Fixed`] may use it).
    Socketless,
    /// A tunnel socket: it carries other flows' packets, sealed, and has no
    /// routes of its own.
    Tunnel,
}

/// One peer tunnel socket, as seen from a local one.
#[derive(Debug)]
struct TunnelPeer {
    addr: SocketAddr,
    key: TunnelKey,
    /// Sequence number of the last datagram sealed for this peer.
    sent: u64,
    window: ReplayWindow,
}

/// Where a new peer's sequence numbers start: the wall clock in
/// microseconds. A node that restarts must not start below what it sent
/// before, or the peer's replay window would refuse everything; at fewer
/// than a million datagrams a second per peer, the clock stays ahead.
fn sequence_base() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

/// A tunnel socket's state.
#[derive(Debug)]
struct TunnelState {
    secret: Arc<[u8]>,
    local: SocketAddr,
    peers: Vec<TunnelPeer>,
    by_addr: HashMap<SocketAddr, u32>,
}

#[derive(Debug)]
enum Role {
    Socket,
    Socketless,
    Tunnel(Box<TunnelState>),
}

/// A flow in a worker's table.
#[derive(Debug)]
pub struct Flow {
    id: FlowId,
    role: Role,
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

    /// What kind of entry this is.
    pub fn kind(&self) -> FlowKind {
        match self.role {
            Role::Socket => FlowKind::Socket,
            Role::Socketless => FlowKind::Socketless,
            Role::Tunnel(_) => FlowKind::Tunnel,
        }
    }

    /// Number of peers a tunnel flow knows (0 for other flows).
    pub fn tunnel_peers(&self) -> usize {
        match &self.role {
            Role::Tunnel(t) => t.peers.len(),
            _ => 0,
        }
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
    by_id: HashMap<FlowId, Slot>,
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
        self.insert_as(spec, Role::Socket)
    }

    /// Adds a socketless flow (see [`FlowKind::Socketless`]), like
    /// [`FlowTable::insert`].
    pub fn insert_socketless(&mut self, spec: &FlowSpec) -> Slot {
        self.insert_as(spec, Role::Socketless)
    }

    /// Adds a tunnel socket bound to `local`; its peers' keys are derived
    /// from `secret` and `local` as [`Output::Tunnel`]s name them.
    ///
    /// `local` must be the address peers send to (not a wildcard): both
    /// ends derive the key from the pair of addresses.
    pub fn insert_tunnel(
        &mut self,
        id: FlowId,
        local: SocketAddr,
        secret: Arc<[u8]>,
        counters: Arc<FlowCounters>,
    ) -> Slot {
        let spec = FlowSpec {
            id,
            peer: None,
            latching: Latching::Asymmetric,
            carries: Carries::Muxed,
            rtp_outputs: Vec::new(),
            rtcp_outputs: Vec::new(),
            clock_rate: 1,
            counters,
        };
        let state = TunnelState {
            secret,
            local,
            // Room for every peer up front: a peer that first shows up as
            // a datagram (see `open_tunnel`) joins on the packet path,
            // which must not allocate.
            peers: Vec::with_capacity(MAX_TUNNEL_PEERS),
            by_addr: HashMap::with_capacity(MAX_TUNNEL_PEERS),
        };
        self.insert_as(&spec, Role::Tunnel(Box::new(state)))
    }

    fn insert_as(&mut self, spec: &FlowSpec, role: Role) -> Slot {
        self.remove(spec.id);
        let flow = Flow {
            id: spec.id,
            role,
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
        if self.kind_of(spec.id) == Some(FlowKind::Tunnel) {
            return Err(UpdateError::IsTunnel(spec.id));
        }
        let mut rtp = Routes::default();
        let mut rtcp = Routes::default();
        for (outputs, routes) in [
            (&spec.rtp_outputs, &mut rtp),
            (&spec.rtcp_outputs, &mut rtcp),
        ] {
            for o in outputs {
                let route = match *o {
                    Output::Peer(id) => Route::Peer(self.sender(id)?),
                    Output::Fixed { via, dest } => Route::Fixed(self.sender(via)?, dest),
                    Output::Tunnel { via, dest, flow } => {
                        let (slot, peer) = self.tunnel_peer(via, dest)?;
                        Route::Tunnel {
                            via: slot,
                            peer,
                            flow,
                        }
                    }
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

    fn kind_of(&self, id: FlowId) -> Option<FlowKind> {
        self.slot(id).and_then(|s| self.get(s)).map(Flow::kind)
    }

    /// The slot of `id` for a plain output: it must have a socket of its
    /// own and be a media flow.
    fn sender(&self, id: FlowId) -> Result<Slot, UpdateError> {
        match self.kind_of(id) {
            None => Err(UpdateError::UnknownFlow(id)),
            Some(FlowKind::Socketless) => Err(UpdateError::NoSocket(id)),
            Some(FlowKind::Tunnel) => Err(UpdateError::IsTunnel(id)),
            Some(FlowKind::Socket) => Ok(self.slot(id).expect("kind_of found it")),
        }
    }

    /// Finds or adds tunnel `via`'s peer at `dest` (control path: derives
    /// the key for a new one).
    fn tunnel_peer(&mut self, via: FlowId, dest: SocketAddr) -> Result<(Slot, u32), UpdateError> {
        let slot = self.slot(via).ok_or(UpdateError::UnknownFlow(via))?;
        let flow = self.get_mut(slot).expect("slot from by_id is live");
        let Role::Tunnel(t) = &mut flow.role else {
            return Err(UpdateError::NotATunnel(via));
        };
        if let Some(&i) = t.by_addr.get(&dest) {
            return Ok((slot, i));
        }
        if t.peers.len() >= MAX_TUNNEL_PEERS {
            return Err(UpdateError::TooManyPeers(via));
        }
        let i = t.peers.len() as u32;
        t.peers.push(TunnelPeer {
            addr: dest,
            key: derive_key(&t.secret, t.local, dest),
            sent: sequence_base(),
            window: ReplayWindow::new(),
        });
        t.by_addr.insert(dest, i);
        Ok((slot, i))
    }

    /// Authenticates a datagram that tunnel `slot` received from `src` and
    /// finds the socketless flow it is for; the inner datagram is
    /// `data[tunnel::HEADER_LEN..]`, for that flow's [`Flow::accept`].
    ///
    /// Accounts on the tunnel flow: accepted datagrams by kind, and every
    /// refusal (unknown source or bad tag, replay, unknown flow,
    /// malformed). Per packet: two hash look-ups and one HMAC, no
    /// allocation.
    pub fn open_tunnel(
        &mut self,
        slot: Slot,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Option<Slot> {
        let flow = self.get_mut(slot)?;
        let c = &*flow.counters;
        let Role::Tunnel(t) = &mut flow.role else {
            return None;
        };
        let peer = match t.by_addr.get(&src) {
            Some(&p) => p,
            // A node this one has not sent to yet (a branch's far end only
            // receives): its key follows from the secret and the two
            // addresses, so a datagram that verifies under it makes it a
            // peer. A forgery costs a key derivation and leaves no state.
            None if t.peers.len() < MAX_TUNNEL_PEERS => {
                let key = derive_key(&t.secret, t.local, src);
                match tunnel::open(&key, data) {
                    Ok(_) => {
                        let i = t.peers.len() as u32;
                        t.peers.push(TunnelPeer {
                            addr: src,
                            key,
                            sent: sequence_base(),
                            window: ReplayWindow::new(),
                        });
                        t.by_addr.insert(src, i);
                        i
                    }
                    Err(TunnelError::Malformed) => {
                        bump(&c.malformed, 1);
                        return None;
                    }
                    Err(_) => {
                        bump(&c.tunnel_auth_failures, 1);
                        return None;
                    }
                }
            }
            None => {
                bump(&c.tunnel_auth_failures, 1);
                return None;
            }
        };
        let peer = &mut t.peers[peer as usize];
        let opened = match tunnel::open(&peer.key, data) {
            Ok(o) => o,
            Err(TunnelError::Malformed) => {
                bump(&c.malformed, 1);
                return None;
            }
            Err(_) => {
                bump(&c.tunnel_auth_failures, 1);
                return None;
            }
        };
        // Only now, with the tag verified, may the window move.
        if peer.window.accept(opened.seq).is_err() {
            bump(&c.tunnel_replays, 1);
            return None;
        }
        let len = data.len() as u64;
        match opened.kind {
            PacketKind::Rtp => {
                bump(&c.rtp_packets, 1);
                bump(&c.rtp_bytes, len);
            }
            PacketKind::Rtcp => {
                bump(&c.rtcp_packets, 1);
                bump(&c.rtcp_bytes, len);
            }
        }
        c.last_packet_ms.store(
            millis_since_epoch(now),
            std::sync::atomic::Ordering::Relaxed,
        );
        // Only socketless flows take tunnel traffic: a peer must not be able
        // to inject into a flow whose media comes from elsewhere.
        let inner = self
            .slot(FlowId(u64::from(opened.flow)))
            .filter(|s| self.get(*s).map(Flow::kind) == Some(FlowKind::Socketless));
        if inner.is_none() {
            let c = &self.get(slot).expect("looked up above").counters;
            bump(&c.tunnel_unknown_flow, 1);
        }
        inner
    }

    /// Seals `payload` (of `kind`) for [`Route::Tunnel`]'s `peer` of tunnel
    /// `via` and the peer node's `flow`: the peer's address and the header
    /// to put before the payload. Takes the peer's next sequence number.
    pub fn seal_tunnel(
        &mut self,
        via: Slot,
        peer: u32,
        kind: PacketKind,
        flow: u32,
        payload: &[u8],
    ) -> Option<(SocketAddr, [u8; tunnel::HEADER_LEN])> {
        let Role::Tunnel(t) = &mut self.get_mut(via)?.role else {
            return None;
        };
        let p = t.peers.get_mut(peer as usize)?;
        p.sent += 1;
        Some((p.addr, tunnel::seal(&p.key, kind, flow, p.sent, payload)))
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
    /// An [`Output::Peer`] or [`Output::Fixed`] would send out of a
    /// socketless flow.
    #[error("flow {0:?} has no socket to send from")]
    NoSocket(FlowId),
    /// A tunnel socket named where a media flow belongs (a plain output's
    /// sending socket, or an update's flow).
    #[error("flow {0:?} is a tunnel socket, not a media flow")]
    IsTunnel(FlowId),
    /// An [`Output::Tunnel`] names a `via` that is not a tunnel socket.
    #[error("flow {0:?} is not a tunnel socket")]
    NotATunnel(FlowId),
    /// The tunnel already has [`MAX_TUNNEL_PEERS`] peers.
    #[error("tunnel {0:?} has {MAX_TUNNEL_PEERS} peers already")]
    TooManyPeers(FlowId),
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

    const T1: FlowId = FlowId(50);
    const T2: FlowId = FlowId(51);

    /// Two tunnel sockets (as if of two nodes) in one table: flow 1 (a
    /// socket) goes through T1 → T2 to socketless flow 100, which goes to
    /// flow 2; flow 2 returns through T2 → T1 to socketless flow 101, so
    /// each tunnel knows the other as a peer.
    fn tunnelled() -> (FlowTable, [Slot; 6]) {
        let mut t = FlowTable::new();
        let secret: Arc<[u8]> = Arc::from(&b"cluster"[..]);
        let t1 = t.insert_tunnel(T1, addr("10.0.0.1:7000"), secret.clone(), Arc::default());
        let t2 = t.insert_tunnel(T2, addr("10.0.0.2:7000"), secret, Arc::default());
        let tun = |via, dest: &str, flow| Output::Tunnel {
            via,
            dest: addr(dest),
            flow,
        };
        let a = spec(
            1,
            Some("192.0.2.1:4000"),
            Latching::Learn,
            Carries::Muxed,
            vec![tun(T1, "10.0.0.2:7000", 100)],
        );
        let b = spec(
            2,
            Some("192.0.2.2:4000"),
            Latching::Learn,
            Carries::Muxed,
            vec![tun(T2, "10.0.0.1:7000", 101)],
        );
        let ia = spec(
            100,
            None,
            Latching::Asymmetric,
            Carries::Muxed,
            vec![Output::Peer(FlowId(2))],
        );
        let ib = spec(
            101,
            None,
            Latching::Asymmetric,
            Carries::Muxed,
            vec![Output::Peer(FlowId(1))],
        );
        let sa = t.insert(&a);
        let sb = t.insert(&b);
        let sia = t.insert_socketless(&ia);
        let sib = t.insert_socketless(&ib);
        for s in [&a, &b, &ia, &ib] {
            t.update(s).unwrap();
        }
        (t, [sa, sb, sia, sib, t1, t2])
    }

    #[test]
    fn tunnel_routes_seal_and_open_end_to_end() {
        let (mut t, [sa, _, sia, _, t1, t2]) = tunnelled();
        assert_eq!(t.get(t1).unwrap().kind(), FlowKind::Tunnel);
        assert_eq!(t.get(sia).unwrap().kind(), FlowKind::Socketless);
        assert_eq!(t.get(t1).unwrap().tunnel_peers(), 1);
        let Some(Route::Tunnel { via, peer, flow }) =
            t.get(sa).unwrap().routes(PacketKind::Rtp).get(0)
        else {
            panic!("not a tunnel route");
        };
        assert_eq!((via, flow), (t1, 100));
        let now = Instant::now();
        let from = addr("10.0.0.1:7000");
        // Sequence numbers start at the clock (so a restarted node stays
        // ahead of what its peers saw) and go up by one.
        let started = sequence_base();
        let mut last = None;
        for p in [rtp(1), rtcp_rr(), rtp(2)] {
            let kind = classify(&p).unwrap();
            let (dest, head) = t.seal_tunnel(via, peer, kind, flow, &p).unwrap();
            assert_eq!(dest, addr("10.0.0.2:7000"));
            let seq = u64::from_be_bytes(head[8..16].try_into().unwrap());
            match last {
                None => assert!(seq > 1_600_000_000_000_000 && seq <= started + 1, "{seq}"),
                Some(prev) => assert_eq!(seq, prev + 1),
            }
            last = Some(seq);
            let mut d = head.to_vec();
            d.extend_from_slice(&p);
            assert_eq!(t.open_tunnel(t2, from, &d, now), Some(sia));
            // The same datagram again is a replay.
            assert_eq!(t.open_tunnel(t2, from, &d, now), None);
        }
        let c = snap(&t, t2);
        assert_eq!((c.rtp_packets, c.rtcp_packets, c.tunnel_replays), (2, 1, 3));
        assert_eq!(c.rtp_bytes, 2 * (32 + rtp(1).len() as u64));
        assert_eq!(c.errors(), 3);
    }

    #[test]
    fn tunnel_refuses_strangers_forgeries_and_unknown_flows() {
        let (mut t, [_, _, _, _, t1, t2]) = tunnelled();
        let now = Instant::now();
        let key = derive_key(b"cluster", addr("10.0.0.1:7000"), addr("10.0.0.2:7000"));
        let dgram = |flow: u32, seq| {
            let mut d = tunnel::seal(&key, PacketKind::Rtp, flow, seq, &rtp(1)).to_vec();
            d.extend_from_slice(&rtp(1));
            d
        };
        let from = addr("10.0.0.1:7000");
        // A good datagram from an unknown source.
        assert_eq!(
            t.open_tunnel(t2, addr("10.0.0.9:7000"), &dgram(100, 1), now),
            None
        );
        // A flipped payload bit.
        let mut d = dgram(100, 2);
        d[40] ^= 1;
        assert_eq!(t.open_tunnel(t2, from, &d, now), None);
        // Not even a tunnel datagram.
        assert_eq!(t.open_tunnel(t2, from, &rtp(3), now), None);
        let c = snap(&t, t2);
        assert_eq!(
            (c.tunnel_auth_failures, c.malformed, c.packets()),
            (2, 1, 0)
        );
        // Authentic, but for no flow, for a flow with a socket, for a tunnel.
        for (seq, flow) in [(3, 999), (4, 1), (5, 50)] {
            assert_eq!(t.open_tunnel(t2, from, &dgram(flow, seq), now), None);
        }
        let c = snap(&t, t2);
        assert_eq!((c.tunnel_unknown_flow, c.rtp_packets), (3, 3));
        // A forged datagram never moved the window: seq 2 is still good.
        assert!(t.open_tunnel(t2, from, &dgram(100, 2), now).is_some());
        assert_eq!(snap(&t, t2).errors(), 6);
        // The other tunnel is untouched; a plain flow is not a tunnel.
        assert_eq!(snap(&t, t1).errors(), 0);
        let sa = t.slot(FlowId(1)).unwrap();
        assert_eq!(t.open_tunnel(sa, from, &dgram(100, 9), now), None);
    }

    #[test]
    fn a_node_never_sent_to_becomes_a_peer_by_its_first_authentic_datagram() {
        let (mut t, [_, _, sia, _, _, t2]) = tunnelled();
        let now = Instant::now();
        let stranger = addr("10.0.0.9:7000");
        let local = addr("10.0.0.2:7000");
        let sealed = |key: &TunnelKey, seq| {
            let mut d = tunnel::seal(key, PacketKind::Rtp, 100, seq, &rtp(1)).to_vec();
            d.extend_from_slice(&rtp(1));
            d
        };
        // Sealed under another cluster's secret: refused, no peer added.
        let wrong = derive_key(b"other cluster", stranger, local);
        assert_eq!(t.open_tunnel(t2, stranger, &sealed(&wrong, 1), now), None);
        assert_eq!(t.get(t2).unwrap().tunnel_peers(), 1);
        // Sealed under the key the two addresses derive: accepted, and the
        // window holds from then on.
        let right = derive_key(b"cluster", stranger, local);
        assert_eq!(
            t.open_tunnel(t2, stranger, &sealed(&right, 1), now),
            Some(sia)
        );
        assert_eq!(t.get(t2).unwrap().tunnel_peers(), 2);
        assert_eq!(t.open_tunnel(t2, stranger, &sealed(&right, 1), now), None);
        let c = snap(&t, t2);
        assert_eq!((c.tunnel_auth_failures, c.tunnel_replays), (1, 1));
    }

    #[test]
    fn tunnel_outputs_are_checked() {
        let (mut t, _) = tunnelled();
        let with = |id, out| spec(id, None, Latching::Learn, Carries::Muxed, vec![out]);
        let dest = addr("10.0.0.3:7000");
        let cases = [
            (
                with(1, Output::Peer(FlowId(100))),
                UpdateError::NoSocket(FlowId(100)),
            ),
            (
                with(
                    1,
                    Output::Fixed {
                        via: FlowId(101),
                        dest,
                    },
                ),
                UpdateError::NoSocket(FlowId(101)),
            ),
            (with(1, Output::Peer(T1)), UpdateError::IsTunnel(T1)),
            (
                with(1, Output::Fixed { via: T2, dest }),
                UpdateError::IsTunnel(T2),
            ),
            (
                with(
                    1,
                    Output::Tunnel {
                        via: FlowId(2),
                        dest,
                        flow: 1,
                    },
                ),
                UpdateError::NotATunnel(FlowId(2)),
            ),
            (
                with(
                    1,
                    Output::Tunnel {
                        via: FlowId(100),
                        dest,
                        flow: 1,
                    },
                ),
                UpdateError::NotATunnel(FlowId(100)),
            ),
            (
                with(T1.0, Output::Peer(FlowId(1))),
                UpdateError::IsTunnel(T1),
            ),
        ];
        for (s, e) in cases {
            assert_eq!(t.update(&s), Err(e), "{s:?}");
        }
        // Peers are capped; an existing one is found again, not added.
        let t1 = t.slot(T1).unwrap();
        for port in 1..MAX_TUNNEL_PEERS as u16 {
            let out = Output::Tunnel {
                via: T1,
                dest: SocketAddr::new(dest.ip(), port),
                flow: 1,
            };
            t.update(&with(1, out)).unwrap();
        }
        assert_eq!(t.get(t1).unwrap().tunnel_peers(), MAX_TUNNEL_PEERS);
        let out = Output::Tunnel {
            via: T1,
            dest,
            flow: 1,
        };
        assert_eq!(t.update(&with(1, out)), Err(UpdateError::TooManyPeers(T1)));
        let known = Output::Tunnel {
            via: T1,
            dest: addr("10.0.0.2:7000"),
            flow: 7,
        };
        t.update(&with(1, known)).unwrap();
        assert_eq!(t.get(t1).unwrap().tunnel_peers(), MAX_TUNNEL_PEERS);
    }
}
