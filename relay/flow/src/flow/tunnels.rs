//! The tunnel side of the table: tunnel sockets, their peers' keys (one to
//! send, one to receive: keys are per direction, so a datagram reflected
//! back to its sender does not verify), sequence numbers and replay
//! windows, and the seal and open steps.
//!
//! This state lives in the table, not beside it, so that the table stays
//! the worker's only per-packet state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use super::accept::{Flow, Role};
use super::spec::{Carries, FlowId, FlowKind, FlowSpec, Latching, Slot, MAX_TUNNEL_PEERS};
use super::table::UpdateError;
use super::FlowTable;
use crate::counters::{bump, FlowCounters};
use crate::rtp::PacketKind;
use crate::tunnel::{
    self, derive_key, next_seq, window_floor, Opened, ReplayWindow, TunnelError, TunnelKey,
    WallClock,
};

/// One peer tunnel socket, as seen from a local one.
#[derive(Debug)]
pub(super) struct TunnelPeer {
    addr: SocketAddr,
    /// Seals what this socket sends the peer (local → peer).
    send_key: TunnelKey,
    /// Opens what the peer sends this socket (peer → local).
    recv_key: TunnelKey,
    /// Sequence number of the last datagram sealed for this peer (0: none).
    sent: u64,
    window: ReplayWindow,
}

/// A tunnel socket's state.
#[derive(Debug)]
pub(super) struct TunnelState {
    secret: Arc<[u8]>,
    local: SocketAddr,
    /// The wall clock, for sequence numbers (see [`tunnel::next_seq`]).
    wall: WallClock,
    /// Every peer's window starts above this (see [`tunnel::window_floor`]).
    floor: u64,
    pub(super) peers: Vec<TunnelPeer>,
    by_addr: HashMap<SocketAddr, u32>,
}

impl TunnelPeer {
    /// A peer at `addr` of the socket at `local`, its keys derived.
    fn new(secret: &[u8], local: SocketAddr, addr: SocketAddr, floor: u64) -> Self {
        let recv_key = derive_key(secret, addr, local);
        Self::with_recv_key(secret, local, addr, recv_key, floor)
    }

    /// [`TunnelPeer::new`] with the receiving key derived already.
    fn with_recv_key(
        secret: &[u8],
        local: SocketAddr,
        addr: SocketAddr,
        recv_key: TunnelKey,
        floor: u64,
    ) -> Self {
        Self {
            addr,
            send_key: derive_key(secret, local, addr),
            recv_key,
            sent: 0,
            window: ReplayWindow::above(floor),
        }
    }
}

impl TunnelState {
    /// Verifies a datagram from `src` and checks it against the peer's
    /// replay window; counts a refusal on `c`.
    fn open(&mut self, src: SocketAddr, data: &[u8], c: &FlowCounters) -> Option<Opened> {
        let i = match self.by_addr.get(&src) {
            Some(&i) => i,
            None => self.learn(src, data, c)?,
        };
        let peer = &mut self.peers[i as usize];
        let opened = tunnel::open(&peer.recv_key, data)
            .map_err(|e| count_refusal(c, e))
            .ok()?;
        // Only now, with the tag verified, may the window move.
        if peer.window.accept(opened.seq).is_err() {
            bump(&c.tunnel_replays, 1);
            return None;
        }
        Some(opened)
    }

    /// A node this one has not sent to yet (a branch's far end only
    /// receives): its key follows from the secret and the two addresses,
    /// so a datagram that verifies under it makes it a peer. A forgery
    /// costs a key derivation and leaves no state. The peer list has room
    /// for [`MAX_TUNNEL_PEERS`] from the start, so this does not allocate.
    fn learn(&mut self, src: SocketAddr, data: &[u8], c: &FlowCounters) -> Option<u32> {
        if self.peers.len() >= MAX_TUNNEL_PEERS {
            bump(&c.tunnel_auth_failures, 1);
            return None;
        }
        // Only the receiving key until the datagram verifies: a forgery
        // costs one derivation.
        let recv_key = derive_key(&self.secret, src, self.local);
        if let Err(e) = tunnel::open(&recv_key, data) {
            count_refusal(c, e);
            return None;
        }
        let peer = TunnelPeer::with_recv_key(&self.secret, self.local, src, recv_key, self.floor);
        Some(self.add_peer(peer))
    }

    fn add_peer(&mut self, peer: TunnelPeer) -> u32 {
        let i = self.peers.len() as u32;
        let addr = peer.addr;
        self.peers.push(peer);
        self.by_addr.insert(addr, i);
        i
    }
}

/// Counts a datagram that did not open: not a tunnel datagram at all, or
/// one whose tag did not verify.
fn count_refusal(c: &FlowCounters, e: TunnelError) {
    match e {
        TunnelError::Malformed => bump(&c.malformed, 1),
        _ => bump(&c.tunnel_auth_failures, 1),
    }
}

impl FlowTable {
    /// Adds a tunnel socket bound to `local`; its peers' keys are derived
    /// from `secret` and `local` as [`Output::Tunnel`]s name them.
    ///
    /// `local` must be the address peers send to (not a wildcard): both
    /// ends derive the key from the pair of addresses.
    ///
    /// `wall` is the wall clock at insertion, read by the caller (the core
    /// reads no clock). Sequence numbers sent follow it
    /// ([`tunnel::next_seq`]), and every peer's replay window starts at
    /// [`tunnel::window_floor`] of it, so that nothing sent before this
    /// tunnel existed, such as datagrams captured before a restart, is
    /// accepted.
    ///
    /// [`Output::Tunnel`]: super::Output::Tunnel
    pub fn insert_tunnel(
        &mut self,
        id: FlowId,
        local: SocketAddr,
        secret: Arc<[u8]>,
        counters: Arc<FlowCounters>,
        wall: WallClock,
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
            security: Default::default(),
        };
        let state = TunnelState {
            secret,
            local,
            wall,
            floor: window_floor(wall.start_micros()),
            // Room for every peer up front: a peer that first shows up as
            // a datagram (see `open_tunnel`) joins on the packet path,
            // which must not allocate.
            peers: Vec::with_capacity(MAX_TUNNEL_PEERS),
            by_addr: HashMap::with_capacity(MAX_TUNNEL_PEERS),
        };
        self.insert_as(&spec, Role::Tunnel(Box::new(state)))
    }

    /// Finds or adds tunnel `via`'s peer at `dest` (control path: derives
    /// the key for a new one).
    pub(super) fn tunnel_peer(
        &mut self,
        via: FlowId,
        dest: SocketAddr,
    ) -> Result<(Slot, u32), UpdateError> {
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
        let peer = TunnelPeer::new(&t.secret, t.local, dest, t.floor);
        Ok((slot, t.add_peer(peer)))
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
        let clock = self.clock;
        let flow = self.get_mut(slot)?;
        let c = &*flow.counters;
        let Role::Tunnel(t) = &mut flow.role else {
            return None;
        };
        let opened = t.open(src, data, c)?;
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
        c.last_packet_ms.store(clock.millis(now), Relaxed);
        // Only socketless flows take tunnel traffic: a peer must not be able
        // to inject into a flow whose media comes from elsewhere.
        let inner = self
            .slot(FlowId(opened.flow))
            .filter(|s| self.get(*s).map(Flow::kind) == Some(FlowKind::Socketless));
        if inner.is_none() {
            let c = &self.get(slot).expect("looked up above").counters;
            bump(&c.tunnel_unknown_flow, 1);
        }
        inner
    }

    /// Seals `payload` (of `kind`) for [`Route::Tunnel`](super::Route::Tunnel)'s `peer` of tunnel
    /// `via` and the peer node's `flow`: the peer's address and the header
    /// to put before the payload. Takes the peer's next sequence number,
    /// which keeps up with the wall clock at `now` ([`tunnel::next_seq`]).
    pub fn seal_tunnel(
        &mut self,
        via: Slot,
        peer: u32,
        kind: PacketKind,
        flow: u32,
        payload: &[u8],
        now: Instant,
    ) -> Option<(SocketAddr, [u8; tunnel::HEADER_LEN])> {
        let Role::Tunnel(t) = &mut self.get_mut(via)?.role else {
            return None;
        };
        let now_us = t.wall.micros(now);
        let p = t.peers.get_mut(peer as usize)?;
        p.sent = next_seq(p.sent, now_us);
        Some((
            p.addr,
            tunnel::seal(&p.send_key, kind, flow, p.sent, payload),
        ))
    }
}
