//! When a flow may be forwarded by the kernel, and when not.

use std::time::Duration;

use super::*;

/// Both legs of `pair` latched by packets from `from_a` and `from_b` at `now`.
fn latched(
    latching: Latching,
    from_a: &str,
    from_b: &str,
    now: Instant,
) -> (FlowTable, Slot, Slot) {
    let (mut t, a, b) = pair(latching);
    let mut out = Forwarded::new();
    step(&mut t, now, a, addr(from_a), &rtp(1), &mut out);
    step(&mut t, now, b, addr(from_b), &rtp(1), &mut out);
    (t, a, b)
}

#[test]
fn nothing_before_both_legs_latch() {
    let now = Instant::now();
    let (mut t, a, b) = pair(Latching::Learn);
    assert_eq!(t.shortcut(a, now), None);
    let mut out = Forwarded::new();
    step(&mut t, now, a, addr("10.0.0.1:4000"), &rtp(1), &mut out);
    // a's source is settled, but b's peer could still move.
    assert_eq!(t.shortcut(a, now), None);
    step(&mut t, now, b, addr("10.0.0.2:5000"), &rtp(1), &mut out);
    let s = t
        .shortcut(a, now)
        .expect("both latched to their SDP addresses");
    assert_eq!(s.source, SourceRule::Learn(addr("10.0.0.1:4000")));
    assert_eq!(
        (s.via, s.to, s.carries),
        (b, addr("10.0.0.2:5000"), Carries::Muxed)
    );
    assert_eq!(t.shortcut(b, now).map(|s| s.via), Some(a));
}

#[test]
fn a_latch_to_a_stranger_waits_out_the_confirmation_window() {
    let now = Instant::now();
    // Behind NAT: sources differ from the SDP's.
    let (t, a, _) = latched(Latching::Learn, "192.0.2.1:1000", "192.0.2.2:2000", now);
    assert_eq!(
        t.shortcut(a, now),
        None,
        "the SDP address may still reclaim"
    );
    let later = now + CONFIRM_WINDOW + Duration::from_millis(1);
    let s = t.shortcut(a, later).expect("settled");
    assert_eq!(s.source, SourceRule::Learn(addr("192.0.2.1:1000")));
    assert_eq!(
        s.to,
        addr("192.0.2.2:2000"),
        "to the other leg's latched peer"
    );
}

#[test]
fn strict_and_asymmetric_carry_their_rule() {
    let now = Instant::now();
    let (t, a, _) = latched(Latching::Strict, "10.0.0.1:4000", "10.0.0.2:5000", now);
    assert_eq!(
        t.shortcut(a, now).unwrap().source,
        SourceRule::Strict(addr("10.0.0.1:4000"))
    );
    // Asymmetric never latches: the SDP addresses are final from the start.
    let (t, a, _) = pair(Latching::Asymmetric);
    let s = t.shortcut(a, now).expect("asymmetric");
    assert_eq!((s.source, s.to), (SourceRule::Any, addr("10.0.0.2:5000")));
}

#[test]
fn copies_tunnels_and_unknown_peers_stay_on_the_sockets() {
    let now = Instant::now();
    let (mut t, a, b) = latched(Latching::Learn, "10.0.0.1:4000", "10.0.0.2:5000", now);
    // A recording copy: two outputs.
    let rec = spec(
        1,
        Some("10.0.0.1:4000"),
        Latching::Learn,
        Carries::Muxed,
        vec![
            Output::Peer(FlowId(2)),
            Output::Fixed {
                via: FlowId(1),
                dest: addr("127.0.0.1:9"),
            },
        ],
    );
    t.update(&rec).unwrap();
    assert_eq!(t.shortcut(a, now), None);
    // RTP to the peer but RTCP nowhere (blocked): not one fixed rewrite.
    let mut half = spec(
        1,
        Some("10.0.0.1:4000"),
        Latching::Learn,
        Carries::Muxed,
        vec![],
    );
    half.rtp_outputs = vec![Output::Peer(FlowId(2))];
    t.update(&half).unwrap();
    assert_eq!(t.shortcut(a, now), None);
    // Back to the plain route: qualifies again.
    let plain = spec(
        1,
        Some("10.0.0.1:4000"),
        Latching::Learn,
        Carries::Muxed,
        vec![Output::Peer(FlowId(2))],
    );
    t.update(&plain).unwrap();
    assert!(t.shortcut(a, now).is_some());
    // A re-offer moves b's peer: latching starts again, so a waits.
    let moved = spec(
        2,
        Some("10.0.0.3:6000"),
        Latching::Learn,
        Carries::Muxed,
        vec![Output::Peer(FlowId(1))],
    );
    t.update(&moved).unwrap();
    assert_eq!(t.shortcut(a, now), None);
    assert!(t.socket_slots().any(|s| s == b));
}

#[test]
fn receiver_state_round_trips() {
    let now = Instant::now();
    let (mut t, a, _) = latched(Latching::Learn, "10.0.0.1:4000", "10.0.0.2:5000", now);
    let st = t.receiver_stats(a).unwrap().state();
    assert_eq!((st.ssrc, st.received), (Some(7), 1));
    let mut more = st;
    more.received = 40;
    more.max_seq = 40;
    t.set_receiver_stats(a, crate::stats::ReceiverStats::from_state(more));
    let back = t.receiver_stats(a).unwrap();
    assert_eq!((back.received(), back.expected(), back.lost()), (40, 40, 0));
}
