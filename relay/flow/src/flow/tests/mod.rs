//! Tests of the flow table and the forward step.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::clock::MediaClock;
use crate::counters::CounterSnapshot;

mod accept;
mod secure;
mod shortcut;
mod step;
mod tunnel;

pub(super) fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 7];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xd5; 160]);
    p
}

pub(super) fn rtcp_rr() -> Vec<u8> {
    vec![0x80, 201, 0, 1, 0, 0, 0, 7]
}

pub(super) fn spec(
    id: u32,
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
        security: Default::default(),
    }
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Two flows routed to each other, like the two legs of a call.
pub(super) fn pair(latching: Latching) -> (FlowTable, Slot, Slot) {
    let mut t = FlowTable::new(MediaClock::new(Instant::now()));
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

pub(super) fn snap(t: &FlowTable, s: Slot) -> CounterSnapshot {
    t.get(s).unwrap().counters().snapshot()
}

/// One forward step of `data` as a backend makes it: copied into a receive
/// buffer with room after it.
pub(super) fn step(
    t: &mut FlowTable,
    now: Instant,
    slot: Slot,
    src: SocketAddr,
    data: &[u8],
    out: &mut Forwarded,
) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    buf[..data.len()].copy_from_slice(data);
    t.forward(now, slot, src, &mut buf, data.len(), out);
    buf
}
