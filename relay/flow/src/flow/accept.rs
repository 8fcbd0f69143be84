//! One flow: its state, and what it decides about a datagram.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::secure::Secured;
use super::spec::{Carries, FlowId, FlowKind, Latching, Routes};
use super::tunnels::TunnelState;
use crate::clock::MediaClock;
use crate::counters::{bump, FlowCounters};
use crate::rtp::{classify, PacketKind, RtcpHeader, RtpHeader};
use crate::stats::{rtp_units, ReceiverStats};

/// How long after a flow latched to a source other than the SDP's address a
/// packet from the SDP's address still takes the return path back.
///
/// The first packet after an answer latches the return path, so a stranger
/// who guesses the port and sends first would capture it. Within this
/// window the address the signalling advertised wins over whoever sent
/// first (rtpengine likewise confirms the learned address a few seconds
/// after signalling); after it the latch is fixed. Only the signalled
/// address can re-latch, so a spoofed packet can at worst send the media
/// where the SDP said, never to the spoofer. A party behind NAT never sends
/// from its SDP address, so for it the first source stays, as before.
pub const CONFIRM_WINDOW: Duration = Duration::from_secs(3);

/// What to do with one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `Some(kind)`: forward to that kind's outputs. `None`: drop.
    pub forward: Option<PacketKind>,
    /// The flow just learned this peer address.
    pub latched: Option<SocketAddr>,
}

/// What a flow is besides a media endpoint: the state its kind needs.
#[derive(Debug)]
pub(super) enum Role {
    Socket,
    Socketless,
    Tunnel(Box<TunnelState>),
}

/// A flow in a worker's table.
#[derive(Debug)]
pub struct Flow {
    pub(super) id: FlowId,
    pub(super) role: Role,
    pub(super) advertised: Option<SocketAddr>,
    pub(super) peer: Option<SocketAddr>,
    pub(super) latched: bool,
    /// Until when a packet from `advertised` may re-latch (set when the
    /// flow latched to another source; see [`CONFIRM_WINDOW`]).
    pub(super) confirm_until: Option<Instant>,
    pub(super) latching: Latching,
    pub(super) carries: Carries,
    pub(super) rtp_routes: Routes,
    pub(super) rtcp_routes: Routes,
    pub(super) clock_rate: u32,
    pub(super) stats: ReceiverStats,
    pub(super) counters: Arc<FlowCounters>,
    /// SRTP, DTLS and ICE state when the peer side is protected.
    pub(super) secured: Option<Box<Secured>>,
}

/// Which kind of packet `data` is on a socket that carries `carries`
/// (RFC 5761 demultiplexing when muxed); `None` when it is neither. The
/// byte it looks at is in the clear in SRTP and SRTCP too.
pub(super) fn kind_of(carries: Carries, data: &[u8]) -> Option<PacketKind> {
    match (carries, classify(data)) {
        (_, Err(_)) => None,
        (Carries::Rtcp, _) => Some(PacketKind::Rtcp),
        (Carries::Rtp, _) => Some(PacketKind::Rtp),
        (Carries::Muxed, Ok(k)) => Some(k),
    }
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

    /// Decides about one datagram from `src` that arrived at `now` and
    /// accounts for it; `clock` turns `now` into counter milliseconds and
    /// RTP arrival times.
    ///
    /// The flow's share of the forward step ([`FlowTable::forward`]): it
    /// allocates nothing and takes no lock.
    ///
    /// [`FlowTable::forward`]: super::FlowTable::forward
    pub fn accept(
        &mut self,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
        clock: MediaClock,
    ) -> Verdict {
        let c = &*self.counters;
        let drop = Verdict {
            forward: None,
            latched: None,
        };
        let Some(kind) = kind_of(self.carries, data) else {
            bump(&c.malformed, 1);
            return drop;
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
                    self.confirm_until = now.checked_add(CONFIRM_WINDOW);
                    latched = Some(src);
                }
                _ if self.reclaims(src, now) => {
                    // The signalled address wins over whoever sent first.
                    self.peer = Some(src);
                    self.confirm_until = None;
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
            self.confirm_until = None;
            latched = Some(src);
        }

        let len = data.len() as u64;
        match header {
            Some(rtp) => {
                bump(&c.rtp_packets, 1);
                bump(&c.rtp_bytes, len);
                let arrival = rtp_units(clock.elapsed(now), self.clock_rate);
                self.stats
                    .on_rtp(rtp.ssrc(), rtp.sequence(), rtp.timestamp(), arrival);
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
        c.last_packet_ms.store(clock.millis(now), Relaxed);
        Verdict {
            forward: Some(kind),
            latched,
        }
    }

    /// Whether a packet from `src` at `now` takes a latched return path
    /// back: `src` is the address the SDP advertised and the confirmation
    /// window is still open.
    fn reclaims(&self, src: SocketAddr, now: Instant) -> bool {
        self.advertised == Some(src) && self.confirm_until.is_some_and(|t| now < t)
    }
}
