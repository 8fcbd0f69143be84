//! One flow's decisions, and the table's bookkeeping.

use std::time::Instant;

use super::*;
use crate::rtp::PacketKind;

#[test]
fn latches_to_the_real_source_and_forwards_foreign_packets() {
    let (mut t, sa, _) = pair(Latching::Learn);
    let now = Instant::now();
    let nat = addr("192.0.2.9:61000");
    let v = t
        .get_mut(sa)
        .unwrap()
        .accept(nat, &rtp(1), now, MediaClock::new(now));
    assert_eq!(v.forward, Some(PacketKind::Rtp));
    assert_eq!(v.latched, Some(nat));
    assert_eq!(t.get(sa).unwrap().peer(), Some(nat));
    // A third source is forwarded but does not move the return path.
    let v =
        t.get_mut(sa)
            .unwrap()
            .accept(addr("198.51.100.1:1"), &rtp(2), now, MediaClock::new(now));
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
        .accept(first, &rtp(1), now, MediaClock::new(now))
        .forward
        .is_some());
    let v =
        t.get_mut(sa)
            .unwrap()
            .accept(addr("10.0.0.1:4002"), &rtp(2), now, MediaClock::new(now));
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
        .accept(addr("192.0.2.9:1"), &rtp(1), now, MediaClock::new(now));
    assert_eq!(v.forward, Some(PacketKind::Rtp));
    assert_eq!(v.latched, None);
    assert_eq!(t.get(sa).unwrap().peer(), Some(addr("10.0.0.1:4000")));
}

#[test]
fn malformed_packets_are_counted_and_dropped() {
    let (mut t, sa, _) = pair(Latching::Learn);
    let now = Instant::now();
    for junk in [&b""[..], b"\x00", b"hello world, not rtp", &[0x80, 0, 0]] {
        let v =
            t.get_mut(sa)
                .unwrap()
                .accept(addr("10.0.0.1:4000"), junk, now, MediaClock::new(now));
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
    let v =
        t.get_mut(sa)
            .unwrap()
            .accept(addr("10.0.0.1:4000"), &rtcp_rr(), now, MediaClock::new(now));
    assert_eq!(v.forward, Some(PacketKind::Rtcp));
    assert_eq!(snap(&t, sa).rtcp_packets, 1);
}

#[test]
fn reoffer_with_new_address_restarts_latching_and_same_address_keeps_it() {
    let (mut t, sa, _) = pair(Latching::Learn);
    let now = Instant::now();
    let nat = addr("192.0.2.9:61000");
    t.get_mut(sa)
        .unwrap()
        .accept(nat, &rtp(1), now, MediaClock::new(now));
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
    let mut t = FlowTable::new(MediaClock::new(Instant::now()));
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

/// `src` sends one RTP packet to flow `slot` at `at`.
fn send_at(t: &mut FlowTable, slot: Slot, src: &str, at: Instant, start: Instant) -> Verdict {
    t.get_mut(slot)
        .unwrap()
        .accept(addr(src), &rtp(1), at, MediaClock::new(start))
}

#[test]
fn the_sdp_address_takes_the_path_back_from_a_stranger_who_sent_first() {
    let (mut t, sa, _) = pair(Latching::Learn);
    let start = Instant::now();
    let v = send_at(&mut t, sa, "203.0.113.5:9", start, start);
    assert_eq!(
        v.latched,
        Some(addr("203.0.113.5:9")),
        "first packet latches"
    );
    // The party the SDP names, inside the window: the path is its.
    let inside = start + CONFIRM_WINDOW - std::time::Duration::from_millis(1);
    let v = send_at(&mut t, sa, "10.0.0.1:4000", inside, start);
    assert_eq!(v.latched, Some(addr("10.0.0.1:4000")));
    assert_eq!(t.get(sa).unwrap().peer(), Some(addr("10.0.0.1:4000")));
    // The stranger cannot take it back, even within the window.
    let v = send_at(&mut t, sa, "203.0.113.5:9", inside, start);
    assert_eq!((v.latched, v.forward), (None, Some(PacketKind::Rtp)));
    assert_eq!(t.get(sa).unwrap().peer(), Some(addr("10.0.0.1:4000")));
    assert_eq!(snap(&t, sa).foreign, 1);
}

#[test]
fn after_the_window_the_first_source_stays() {
    let (mut t, sa, _) = pair(Latching::Learn);
    let start = Instant::now();
    send_at(&mut t, sa, "192.0.2.9:61000", start, start);
    let v = send_at(&mut t, sa, "10.0.0.1:4000", start + CONFIRM_WINDOW, start);
    assert_eq!(v.latched, None);
    assert_eq!(t.get(sa).unwrap().peer(), Some(addr("192.0.2.9:61000")));
    assert_eq!(snap(&t, sa).foreign, 1);
}

#[test]
fn only_the_sdp_address_may_relatch_within_the_window() {
    // A party behind NAT latched first; another source (not the SDP's)
    // inside the window moves nothing.
    let (mut t, sa, _) = pair(Latching::Learn);
    let start = Instant::now();
    send_at(&mut t, sa, "192.0.2.9:61000", start, start);
    let v = send_at(&mut t, sa, "203.0.113.5:9", start, start);
    assert_eq!(v.latched, None);
    assert_eq!(t.get(sa).unwrap().peer(), Some(addr("192.0.2.9:61000")));
}

#[test]
fn strict_source_lets_the_sdp_address_reclaim_then_drops_the_stranger() {
    let (mut t, sa, _) = pair(Latching::Strict);
    let start = Instant::now();
    send_at(&mut t, sa, "203.0.113.5:9", start, start);
    let v = send_at(&mut t, sa, "10.0.0.1:4000", start, start);
    assert_eq!(v.forward, Some(PacketKind::Rtp), "the real party is heard");
    assert_eq!(v.latched, Some(addr("10.0.0.1:4000")));
    let v = send_at(&mut t, sa, "203.0.113.5:9", start, start);
    assert_eq!(v.forward, None);
    assert_eq!(snap(&t, sa).strict_drops, 1);
}
