//! A two-party audio call through a node on loopback: the parties' RTP and
//! RTCP sockets and the relay addresses each sends to.

use std::net::{IpAddr, SocketAddr};

use rtpmesh_ng::bencode::Value;

use super::ng::{sdp_of, Ng};
use super::{audio_sdp, media_addr, Party};

/// Loopback, where the parties live.
pub const LO: &str = "127.0.0.1";

/// [`LO`] as an address.
pub fn lo() -> IpAddr {
    LO.parse().expect("loopback")
}

/// The parties of a call and the relay addresses they send to.
pub struct Call {
    /// The caller's RTP socket.
    pub a: Party,
    /// The caller's RTCP socket.
    pub a_rtcp: Party,
    /// The callee's RTP socket.
    pub b: Party,
    /// The callee's RTCP socket.
    pub b_rtcp: Party,
    /// Where the callee sends (the relay's port from the offer).
    pub to_b: SocketAddr,
    /// Where the caller sends (the relay's port from the answer).
    pub to_a: SocketAddr,
}

impl Call {
    /// Where the caller sends RTCP.
    pub fn to_a_rtcp(&self) -> SocketAddr {
        SocketAddr::new(self.to_a.ip(), self.to_a.port() + 1)
    }

    /// Where the callee sends RTCP.
    pub fn to_b_rtcp(&self) -> SocketAddr {
        SocketAddr::new(self.to_b.ip(), self.to_b.port() + 1)
    }
}

/// Offer (from tag `a`) and answer (to tag `b`) for call `id`, with extra
/// keys on each.
pub fn call(
    ng: &mut Ng,
    id: &str,
    offer_extra: Vec<(&str, Value)>,
    answer_extra: Vec<(&str, Value)>,
) -> Call {
    let (a, a_rtcp) = Party::pair(LO);
    let (b, b_rtcp) = Party::pair(LO);
    let offer = sdp_of(&ng.offer(id, "a", &audio_sdp(lo(), a.port()), offer_extra));
    let answer = sdp_of(&ng.answer(id, "a", "b", &audio_sdp(lo(), b.port()), answer_extra));
    Call {
        to_a: media_addr(&answer, 0),
        to_b: media_addr(&offer, 0),
        a,
        a_rtcp,
        b,
        b_rtcp,
    }
}
