//! Tunnel sockets in the table: seal, open, refusals, peers.

use std::time::Instant;

use super::*;
use crate::rtp::{classify, PacketKind};
use crate::tunnel::{self, derive_key, TunnelKey, WallClock, MAX_CLOCK_SKEW_US};

pub(super) const T1: FlowId = FlowId(50);
pub(super) const T2: FlowId = FlowId(51);
/// The wall clock (µs) when the tests' tunnels are inserted: sequence
/// numbers start there, and every peer's window just below it (see
/// `FlowTable::insert_tunnel`).
pub(super) const WALL: u64 = 1_700_000_000_000_000;

/// A datagram for `flow` sealed under `key` with `seq`.
pub(super) fn sealed(key: &TunnelKey, flow: u32, seq: u64, inner: &[u8]) -> Vec<u8> {
    let mut d = tunnel::seal(key, PacketKind::Rtp, flow, seq, inner).to_vec();
    d.extend_from_slice(inner);
    d
}

/// Two tunnel sockets (as if of two nodes) in one table: flow 1 (a
/// socket) goes through T1 → T2 to socketless flow 100, which goes to
/// flow 2; flow 2 returns through T2 → T1 to socketless flow 101, so
/// each tunnel knows the other as a peer.
pub(super) fn tunnelled() -> (FlowTable, [Slot; 6]) {
    tunnelled_at(WallClock::new(Instant::now(), WALL))
}

/// [`tunnelled`] with the tunnels inserted at wall clock `wall`.
pub(super) fn tunnelled_at(wall: WallClock) -> (FlowTable, [Slot; 6]) {
    let mut t = FlowTable::new(MediaClock::new(Instant::now()));
    let secret: Arc<[u8]> = Arc::from(&b"cluster"[..]);
    let t1 = t.insert_tunnel(
        T1,
        addr("10.0.0.1:7000"),
        secret.clone(),
        Arc::default(),
        wall,
    );
    let t2 = t.insert_tunnel(T2, addr("10.0.0.2:7000"), secret, Arc::default(), wall);
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
    let Some(Route::Tunnel { via, peer, flow }) = t.get(sa).unwrap().routes(PacketKind::Rtp).get(0)
    else {
        panic!("not a tunnel route");
    };
    assert_eq!((via, flow), (t1, 100));
    let now = Instant::now();
    let from = addr("10.0.0.1:7000");
    // Sequence numbers start at the wall clock (so a restarted node stays
    // ahead of what its peers saw, and above a restarted peer's floor) and
    // go up by one.
    let mut last = None;
    for p in [rtp(1), rtcp_rr(), rtp(2)] {
        let kind = classify(&p).unwrap();
        let (dest, head) = t.seal_tunnel(via, peer, kind, flow, &p, now).unwrap();
        assert_eq!(dest, addr("10.0.0.2:7000"));
        let seq = u64::from_be_bytes(head[8..16].try_into().unwrap());
        match last {
            None => assert!(seq >= WALL, "{seq}"),
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
    let dgram = |flow: u32, seq| sealed(&key, flow, WALL + seq, &rtp(1));
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
    let sealed = |key: &TunnelKey, seq| sealed(key, 100, WALL + seq, &rtp(1));
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
fn a_datagram_reflected_back_to_its_sender_is_refused() {
    // T1 seals for T2; an attacker on the path sends it back to T1 from
    // T2's address (T1 knows T2 as a peer). Flow 101 exists on "T1's
    // node" (it does here: one table plays both), as it would where both
    // nodes allocated the same ids.
    let (mut t, [sa, _, _, sib, t1, t2]) = tunnelled();
    let now = Instant::now();
    let Some(Route::Tunnel { via, peer, .. }) = t.get(sa).unwrap().routes(PacketKind::Rtp).get(0)
    else {
        panic!("not a tunnel route");
    };
    let p = rtp(1);
    let (_, head) = t
        .seal_tunnel(via, peer, PacketKind::Rtp, 101, &p, now)
        .unwrap();
    let mut d = head.to_vec();
    d.extend_from_slice(&p);
    assert_eq!(t.open_tunnel(t1, addr("10.0.0.2:7000"), &d, now), None);
    let c = snap(&t, t1);
    assert_eq!((c.tunnel_auth_failures, c.packets()), (1, 0));
    // Sent the right way it is good.
    assert_eq!(t.open_tunnel(t2, addr("10.0.0.1:7000"), &d, now), Some(sib));
}

#[test]
fn a_restarted_table_refuses_what_was_captured_before_and_takes_what_follows() {
    let key = derive_key(b"cluster", addr("10.0.0.1:7000"), addr("10.0.0.2:7000"));
    let from = addr("10.0.0.1:7000");
    let anchor = Instant::now();
    // Before the restart: T1's datagrams, numbered from its clock.
    let (mut before, [_, _, sia, _, _, t2]) = tunnelled_at(WallClock::new(anchor, WALL));
    let captured: Vec<_> = (0..3)
        .map(|i| sealed(&key, 100, WALL + i, &rtp(1)))
        .collect();
    for d in &captured {
        assert_eq!(before.open_tunnel(t2, from, d, anchor), Some(sia));
    }
    // The node restarts 2 s later (more than the allowed skew plus the
    // resync interval) and takes its calls back: the same flows, fresh
    // windows. Every captured datagram is refused as a replay.
    let restart = WALL + 2_000_000;
    let (mut after, [_, _, sia, _, _, t2]) = tunnelled_at(WallClock::new(anchor, restart));
    for d in &captured {
        assert_eq!(after.open_tunnel(t2, from, d, anchor), None);
    }
    assert_eq!(snap(&after, t2).tunnel_replays, 3);
    // The peer goes on sending, numbered from its clock, which may lag
    // ours by up to MAX_CLOCK_SKEW_US: accepted without any signalling.
    let lagging = restart - MAX_CLOCK_SKEW_US + 1;
    let d = sealed(&key, 100, lagging, &rtp(2));
    assert_eq!(after.open_tunnel(t2, from, &d, anchor), Some(sia));
    // And what the restarted node seals starts at its own clock: above
    // anything it sent before, so its peers' windows take it.
    let sa = after.slot(FlowId(1)).unwrap();
    let Some(Route::Tunnel { via, peer, flow }) =
        after.get(sa).unwrap().routes(PacketKind::Rtp).get(0)
    else {
        panic!("not a tunnel route");
    };
    let (_, head) = after
        .seal_tunnel(via, peer, PacketKind::Rtp, flow, &rtp(3), anchor)
        .unwrap();
    assert_eq!(u64::from_be_bytes(head[8..16].try_into().unwrap()), restart);
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
