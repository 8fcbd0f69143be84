//! The forward step as a whole: transmits and events as values.

use std::time::Instant;

use super::tunnel::tunnelled;
use super::*;
use crate::transmit::Transmit;
use crate::tunnel::HEADER_LEN;

#[test]
fn latching_is_returned_as_an_event_with_the_copy_to_the_other_leg() {
    let (mut t, sa, sb) = pair(Latching::Learn);
    let mut out = Forwarded::new();
    let now = Instant::now();
    let nat = addr("192.0.2.9:61000");
    step(&mut t, now, sa, nat, &rtp(1), &mut out);
    assert_eq!(
        out.transmits(),
        &[Transmit {
            end: rtp(1).len() as u16,
            ..Transmit::plain(sb, addr("10.0.0.2:5000"))
        }]
    );
    let events: Vec<Event> = out.events().collect();
    assert_eq!(
        events,
        [Event::Latched {
            flow: FlowId(1),
            addr: nat
        }]
    );
    // The next packet from the same source latches nothing new, and a
    // step clears what the previous one left.
    step(&mut t, now, sa, nat, &rtp(2), &mut out);
    assert_eq!(out.transmits().len(), 1);
    assert_eq!(out.events().count(), 0);
    assert_eq!(snap(&t, sa).forwarded, 2);
}

#[test]
fn dropped_datagrams_and_stale_slots_yield_nothing() {
    let (mut t, sa, sb) = pair(Latching::Strict);
    let mut out = Forwarded::new();
    let now = Instant::now();
    step(&mut t, now, sa, addr("10.0.0.1:4000"), &rtp(1), &mut out);
    assert_eq!(out.transmits().len(), 1);
    step(&mut t, now, sa, addr("10.0.0.1:4002"), &rtp(2), &mut out);
    assert!(out.transmits().is_empty());
    assert_eq!(out.events().count(), 0);
    assert_eq!(snap(&t, sa).strict_drops, 1);
    t.remove(FlowId(2));
    step(&mut t, now, sb, addr("10.0.0.2:5000"), &rtp(1), &mut out);
    assert!(out.transmits().is_empty());
}

#[test]
fn a_peer_not_known_yet_is_counted_as_unroutable() {
    let mut t = FlowTable::new(MediaClock::new(Instant::now()));
    let a = spec(
        1,
        None,
        Latching::Learn,
        Carries::Muxed,
        vec![Output::Peer(FlowId(2))],
    );
    let b = spec(2, None, Latching::Learn, Carries::Muxed, vec![]);
    let sa = t.insert(&a);
    t.insert(&b);
    t.update(&a).unwrap();
    t.update(&b).unwrap();
    let mut out = Forwarded::new();
    step(
        &mut t,
        Instant::now(),
        sa,
        addr("192.0.2.1:1"),
        &rtp(1),
        &mut out,
    );
    assert!(out.transmits().is_empty());
    let c = snap(&t, sa);
    assert_eq!((c.rtp_packets, c.unroutable, c.forwarded), (1, 1, 0));
}

#[test]
fn tunnel_routes_seal_and_the_far_tunnel_opens_into_its_socketless_flow() {
    let (mut t, [sa, sb, sia, _, t1, t2]) = tunnelled();
    let mut out = Forwarded::new();
    let now = Instant::now();
    let p = rtp(1);
    // Flow 1's route into the tunnel: a sealed copy out of T1 to T2.
    step(&mut t, now, sa, addr("192.0.2.1:4000"), &p, &mut out);
    let [sealed] = out.transmits() else {
        panic!("one copy expected: {:?}", out.transmits());
    };
    assert_eq!((sealed.via, sealed.dest), (t1, addr("10.0.0.2:7000")));
    assert_eq!(sealed.skip, 0);
    let head = sealed.head.expect("a tunnel header");
    // The advertised address confirmed by the party's own packet.
    assert_eq!(
        out.events().collect::<Vec<_>>(),
        [Event::Latched {
            flow: FlowId(1),
            addr: addr("192.0.2.1:4000")
        }]
    );
    // What T2 receives: opened, and forwarded by socketless flow 100 to
    // flow 2's party without the tunnel header.
    let mut d = head.to_vec();
    d.extend_from_slice(&p);
    step(&mut t, now, t2, addr("10.0.0.1:7000"), &d, &mut out);
    let [plain] = out.transmits() else {
        panic!("one copy expected: {:?}", out.transmits());
    };
    assert_eq!((plain.via, plain.dest), (sb, addr("192.0.2.2:4000")));
    assert_eq!(plain.head, None);
    assert_eq!(usize::from(plain.skip), HEADER_LEN);
    assert_eq!(plain.body(&d, d.len()), Some(&p[..]));
    assert_eq!(out.events().count(), 0, "socketless flows never latch");
    assert_eq!(snap(&t, sia).rtp_packets, 1);
    assert_eq!(snap(&t, t2).rtp_packets, 1);
    // The same datagram again is a replay: nothing goes out.
    step(&mut t, now, t2, addr("10.0.0.1:7000"), &d, &mut out);
    assert!(out.transmits().is_empty());
    assert_eq!(snap(&t, t2).tunnel_replays, 1);
}
