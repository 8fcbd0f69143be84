//! What the control plane says about flows, and the names the table
//! resolves them to: ids, slots, outputs and routes.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::counters::FlowCounters;

/// The control plane's name for a flow, unique among a node's live flows.
///
/// 32 bits because a peer node names the flow in a tunnel header's 32-bit
/// field (see [`crate::tunnel`]): one width end to end, no narrowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u32);

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
    /// return path, except the SDP's own address within
    /// [`CONFIRM_WINDOW`](super::CONFIRM_WINDOW) of the latch. rtpengine's
    /// default.
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
        /// The tunnel flow whose socket sends ([`FlowTable::insert_tunnel`](super::FlowTable::insert_tunnel)).
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
    /// What protects the media between this socket and its peer (SRTP
    /// keys, DTLS-SRTP, ICE); the default is plain RTP.
    pub security: Security,
}

/// What protects the media between a flow's socket and its peer.
///
/// Packets the peer sends are unprotected when they arrive here; packets
/// this socket sends to its peer are protected on the way out. Everything
/// between (other legs, tunnels, recordings) sees plain RTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// SRTP keys from signalling (SDES, RFC 4568).
    pub sdes: Option<SdesKeys>,
    /// DTLS-SRTP (RFC 5763): the handshake on this socket makes the keys.
    pub dtls: Option<DtlsSetup>,
    /// ICE-lite: this socket answers the peer's connectivity checks.
    pub ice: Option<IceCredentials>,
}

impl Security {
    /// Whether packets need a transform (so the kernel cannot forward them).
    pub fn is_plain(&self) -> bool {
        self.sdes.is_none() && self.dtls.is_none()
    }
}

/// SDES keys of one socket: the peer's (to unprotect what it sends) and
/// ours (to protect what goes to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesKeys {
    /// The key the peer protects its packets with (its `a=crypto`).
    pub inbound: rtpmesh_srtp::MasterKey,
    /// The key rtpmesh protects packets to the peer with (our `a=crypto`).
    pub outbound: rtpmesh_srtp::MasterKey,
}

/// This socket's side of a DTLS handshake (RFC 5763 `a=setup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// rtpmesh is the DTLS client (`a=setup:active`).
    Active,
    /// rtpmesh is the DTLS server (`a=setup:passive`).
    Passive,
}

/// DTLS-SRTP parameters of one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsSetup {
    /// Our role.
    pub role: DtlsRole,
    /// The peer's certificate fingerprint from its SDP; the handshake
    /// fails unless the certificate it presents matches.
    pub fingerprint: Option<Fingerprint>,
}

/// A certificate fingerprint (`a=fingerprint:<hash> <hex>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function name as SDP spells it, lower case (`sha-256`).
    pub hash: String,
    /// The digest.
    pub value: Vec<u8>,
}

/// ICE-lite credentials of one socket (RFC 8445 `a=ice-ufrag`/`a=ice-pwd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// Our ufrag.
    pub local_ufrag: String,
    /// Our password: checks to us carry MESSAGE-INTEGRITY with it.
    pub local_pwd: String,
    /// The peer's ufrag, once its SDP gave one.
    pub remote_ufrag: Option<String>,
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

    pub(super) fn push(&mut self, r: Route) -> bool {
        if self.len == MAX_OUTPUTS {
            return false;
        }
        self.items[self.len] = Some(r);
        self.len += 1;
        true
    }
}

/// What kind of entry a [`Flow`](super::Flow) is.
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
