//! Attacks on a real node's tunnel (issue #10, points 11 and 12): a
//! datagram reflected back to its sender, and datagrams replayed after the
//! node restarts and takes its calls back from Redis.
//!
//! The test plays the peer node B's tunnel socket (127.0.0.3) and drives
//! node A (tunnel on 127.0.0.2) over ng with the `tunnel` keys, as the
//! controller does (control/src/controller/place.rs). Owning B's socket is
//! what makes the attacks possible without raw sockets: it receives what A
//! sends B (a capture on the wire) and sends from B's address (what a
//! spoofing attacker does). Datagrams B itself sends are sealed here with
//! the cluster secret, exactly as a node seals them.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::json::int_at;
use common::ng::Ng;
use common::process::{Process, Spec};
use common::redis::RedisServer;
use common::{audio_sdp, eventually, media_addr, port_block, rtp, sdp_of, wait_for_ping, Party};
use rtpmesh_control::region::{Change, RedisStore, Region, Store};
use rtpmesh_flow::rtp::PacketKind;
use rtpmesh_flow::tunnel::{self, derive_key, HEADER_LEN};
use rtpmesh_ng::bencode::{dict, Value};

const SECRET: &str = "tunnel attack test secret";
/// How long to wait for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// A free UDP port on `ip` (bound and released).
fn free_udp(ip: &str) -> SocketAddr {
    UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// Node A: one worker, tunnel on 127.0.0.2, with `extra` arguments.
fn node_a(tunnel: SocketAddr, extra: &[String]) -> (Process, SocketAddr) {
    let ports = port_block(40);
    let ng: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let mut p = Spec::rtpmesh(&format!("node-a-{}", ng.port()))
        .arg("node")
        .args(["--listen-ng", &ng.to_string()])
        .args(["--port-min", &ports.0.to_string()])
        .args(["--port-max", &ports.1.to_string()])
        .args(["--backend", "epoll", "--workers", "1"])
        .args(["--tunnel-address", &tunnel.to_string()])
        .args(["--tunnel-secret", SECRET])
        .args(extra)
        .grace(Duration::from_secs(20))
        .must_stop()
        .start();
    wait_for_ping(&mut p, ng);
    (p, ng)
}

/// A call on A whose callee leg is the tunnel to B (A is the caller's
/// node, as the controller places it): offer with `side: answerer`,
/// `update tunnel` naming B and B's flows, answer. Returns A's tunnel-leg
/// flows (RTP, RTCP) and the address the caller sends to.
fn place(
    ng: &mut Ng,
    call: &str,
    caller: &Party,
    b: SocketAddr,
    b_flows: Option<(u32, u32)>,
) -> ((u32, u32), SocketAddr) {
    let flows = |f: (u32, u32)| Value::List(vec![Value::List(vec![f.0.into(), f.1.into()])]);
    let r = ng.offer(
        call,
        "caller",
        &audio_sdp(caller.addr().ip(), caller.port()),
        vec![("tunnel", dict([("side", "answerer".into())]))],
    );
    sdp_of(&r);
    let ours = r
        .get("tunnel")
        .and_then(|t| t.get("flows"))
        .and_then(Value::as_list)
        .and_then(|l| l.first())
        .and_then(Value::as_list)
        .map(|p| (p[0].as_int().unwrap() as u32, p[1].as_int().unwrap() as u32))
        .unwrap_or_else(|| panic!("no tunnel flows in {r:?}"));
    let r = ng.req(vec![
        ("command", "update tunnel".into()),
        ("call-id", call.into()),
        (
            "tunnel",
            dict([
                ("address", b.to_string().into()),
                ("flows", flows(b_flows.unwrap_or(ours))),
            ]),
        ),
    ]);
    assert_eq!(common::result(&r), "ok", "{r:?}");
    // The callee's SDP as B would have rewritten it: A does not use it
    // for a tunnel leg.
    let r = ng.answer(call, "caller", "callee", &audio_sdp(b.ip(), 40000), vec![]);
    (ours, media_addr(&sdp_of(&r), 0))
}

/// A's tunnel counter `name` (`packets`, `authfailures`, `replays`).
fn tunnel_stat(ng: &mut Ng, name: &str) -> i64 {
    let s = ng.req(vec![("command", "statistics".into())]);
    int_at(&s, &["statistics", "tunnel", name])
}

/// Waits until A's tunnel counter `name` is `want`.
fn await_stat(ng: &mut Ng, name: &str, want: i64) {
    let mut last = 0;
    let ok = eventually(WAIT, || {
        last = tunnel_stat(ng, name);
        last == want
    });
    assert!(ok, "tunnel {name} is {last}, not {want}");
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// What B sends A for A's flow `flow`: `inner` sealed under the B → A key,
/// numbered by B's clock as a node numbers them.
fn from_b(b: SocketAddr, a: SocketAddr, flow: u32, inner: &[u8]) -> Vec<u8> {
    let key = derive_key(SECRET.as_bytes(), b, a);
    let mut d = tunnel::seal(&key, PacketKind::Rtp, flow, now_us(), inner).to_vec();
    d.extend_from_slice(inner);
    d
}

/// Receives one datagram on B's socket, within `WAIT`.
fn capture(b: &UdpSocket) -> Vec<u8> {
    b.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = b.recv_from(&mut buf).expect("a tunnel datagram from A");
    buf[..n].to_vec()
}

fn seq_of(d: &[u8]) -> u64 {
    u64::from_be_bytes(d[8..16].try_into().unwrap())
}

#[test]
fn a_datagram_reflected_back_to_its_sender_is_refused() {
    common::raise_fd_limit();
    let a_t = free_udp("127.0.0.2");
    let b = UdpSocket::bind("127.0.0.3:0").unwrap();
    let b_t = b.local_addr().unwrap();
    let (_node, ng_addr) = node_a(a_t, &[]);
    let mut ng = Ng::new(ng_addr);
    let caller = Party::new("127.0.0.1");
    // B's flow ids for the call are taken to be A's own: two nodes that
    // allocate ids the same way give one call the same ids on both, and
    // then a reflected datagram lands on A's flow to the caller.
    let (ours, to_a) = place(&mut ng, "reflect", &caller, b_t, None);

    // The caller talks; its media reaches B through the tunnel: the
    // capture.
    let sent = rtp(1, 0x1111, 160);
    caller.send(to_a, &sent);
    let captured = capture(&b);
    assert_eq!(&captured[HEADER_LEN..], &sent[..]);
    assert_eq!(
        tunnel::open(&derive_key(SECRET.as_bytes(), a_t, b_t), &captured).map(|o| o.flow),
        Ok(ours.0),
        "sealed for B"
    );

    // Bounced back to A from B's address: refused as forged, and the
    // caller does not hear itself.
    b.send_to(&captured, a_t).unwrap();
    await_stat(&mut ng, "authfailures", 1);
    assert_eq!(tunnel_stat(&mut ng, "packets"), 0, "reflection accepted");
    caller.expect_nothing(Duration::from_millis(300));

    // What B really sends A still gets through.
    let back = rtp(2, 0x2222, 160);
    b.send_to(&from_b(b_t, a_t, ours.0, &back), a_t).unwrap();
    let (got, from) = caller.recv();
    assert_eq!((got, from), (back, to_a));
}

#[test]
fn datagrams_captured_before_a_restart_are_refused_after_it() {
    common::raise_fd_limit();
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).unwrap();
    store
        .publish(&Change::AddRegion(Region { name: "r1".into() }))
        .unwrap();
    let a_t = free_udp("127.0.0.2");
    let b = UdpSocket::bind("127.0.0.3:0").unwrap();
    let b_t = b.local_addr().unwrap();
    let registry: Vec<String> = [
        "--registry",
        &redis.url(),
        "--node-id",
        "a",
        "--region",
        "r1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut node, ng_addr) = node_a(a_t, &registry);
    let mut ng = Ng::new(ng_addr);
    let caller = Party::new("127.0.0.1");
    let (ours, to_a) = place(&mut ng, "replay", &caller, b_t, Some((901, 902)));

    // Media both ways; B keeps what it sent A (an attacker's capture).
    caller.send(to_a, &rtp(1, 0x1111, 160));
    let a_seq_before = seq_of(&capture(&b));
    let said = rtp(2, 0x2222, 160);
    let captured = from_b(b_t, a_t, ours.0, &said);
    b.send_to(&captured, a_t).unwrap();
    assert_eq!(caller.recv(), (said.clone(), to_a));
    // Replayed at once: refused.
    b.send_to(&captured, a_t).unwrap();
    await_stat(&mut ng, "replays", 1);
    caller.expect_nothing(Duration::from_millis(300));

    // The call's record is in Redis before A goes down.
    assert!(
        eventually(WAIT, || store.calls("a").is_ok_and(|c| !c.is_empty())),
        "no call record"
    );
    // The capture must be older than the clock skew a restarted node
    // allows (tunnel::MAX_CLOCK_SKEW_US plus SEQ_RESYNC_US, 1.1 s): that
    // is the window a restart leaves open, by design. Time has to pass
    // here; there is no event to wait for.
    let captured_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(captured_at.elapsed()));
    node.terminate();
    node.restart();
    wait_for_ping(&mut node, ng_addr);
    assert!(
        eventually(WAIT, || ng
            .try_req(common::ng::query("replay"))
            .is_ok_and(|q| common::result(&q) == "ok")),
        "the call was not restored: {}",
        node.log_text()
    );

    // The captured datagram again, to the restarted node: refused.
    b.send_to(&captured, a_t).unwrap();
    await_stat(&mut ng, "replays", 1);
    caller.expect_nothing(Duration::from_millis(300));
    assert_eq!(tunnel_stat(&mut ng, "packets"), 0, "replay accepted");

    // The call goes on without any signalling: what B sends now gets
    // through, and what A sends B is numbered above all it sent before
    // (so B's window, which did not restart, takes it).
    let now = rtp(3, 0x2222, 160);
    b.send_to(&from_b(b_t, a_t, ours.0, &now), a_t).unwrap();
    assert_eq!(caller.recv(), (now, to_a));
    caller.send(to_a, &rtp(4, 0x1111, 160));
    let d = capture(&b);
    assert!(seq_of(&d) > a_seq_before, "A's numbering went back");
    assert!(
        tunnel::open(&derive_key(SECRET.as_bytes(), a_t, b_t), &d).is_ok(),
        "A's datagram does not verify at B"
    );
}
