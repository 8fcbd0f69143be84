//! The kernel fast path through a real node on loopback: once both legs of
//! a call have latched, their RTP and RTCP are forwarded by the BPF program
//! (TC, and generic XDP on `lo`), byte for byte, with the node's counters
//! equal to what was sent; re-offer, delete and strict source behave as on
//! the socket path; what is not latched stays on the sockets; a node that
//! cannot load the program falls back to them. CI runs as root, so these
//! run there: without the privilege they fail, they do not skip.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::call::{lo, Call, LO};
use common::*;
use rtpmesh_ng::bencode::Value;

fn call(ng: &mut Ng, id: &str, extra: fn() -> Vec<(&'static str, Value)>) -> Call {
    call::call(ng, id, extra(), extra())
}

/// One packet each way on RTP and RTCP, through the sockets: every flow
/// of the call latches.
fn latch(c: &Call) {
    c.a.send(c.to_a, &rtp(1, 0xaaaa, 160));
    assert_eq!(c.b.recv().0, rtp(1, 0xaaaa, 160));
    c.b.send(c.to_b, &rtp(1, 0xbbbb, 160));
    assert_eq!(c.a.recv().0, rtp(1, 0xbbbb, 160));
    c.a_rtcp.send(c.to_a_rtcp(), &rtcp_rr(0xaaaa));
    assert_eq!(c.b_rtcp.recv().0, rtcp_rr(0xaaaa));
    c.b_rtcp.send(c.to_b_rtcp(), &rtcp_rr(0xbbbb));
    assert_eq!(c.a_rtcp.recv().0, rtcp_rr(0xbbbb));
}

/// The node's `fastpath` statistics: (enabled, entries, packets).
fn fast_path(ng: &mut Ng) -> (i64, i64, i64) {
    let s = ng.req(vec![("command", "statistics".into())]);
    let f = |k: &str| int_at(&s, &["statistics", "fastpath", k]);
    (f("enabled"), f("entries"), f("packets"))
}

fn wait_entries(ng: &mut Ng, n: i64) {
    assert!(
        eventually(Duration::from_secs(5), || fast_path(ng).1 == n),
        "fast path entries: {:?}, wanted {n}",
        fast_path(ng)
    );
}

/// A stream's packet count from `query`: tag `tag`, first media, stream
/// `stream` (0 RTP, 1 RTCP).
fn packets(ng: &mut Ng, call: &str, tag: &str, stream: usize) -> i64 {
    let q = ng.query(call);
    let s = at(&q, &["tags", tag, "medias"])
        .and_then(Value::as_list)
        .expect("medias")[0]
        .get("streams")
        .and_then(Value::as_list)
        .expect("streams")[stream]
        .clone();
    int_at(&s, &["stats", "packets"])
}

fn node(mode: &str) -> Node {
    Node::builder("epoll").args(&["--fast-path", mode]).start()
}

fn forwards_a_latched_call_in_the_kernel(mode: &str) {
    let node = node(mode);
    let mut ng = node.client();
    assert_eq!(fast_path(&mut ng).0, 1, "loaded: {}", node.log_text());
    let c = call(&mut ng, "k", Vec::new);
    latch(&c);
    // Four flows: RTP and RTCP of each leg.
    wait_entries(&mut ng, 4);
    let before = fast_path(&mut ng).2;
    const N: u16 = 50;
    for seq in 2..2 + N {
        let p = rtp(seq, 0xaaaa, 160);
        c.a.send(c.to_a, &p);
        let (got, from) = c.b.recv();
        assert_eq!(
            (got, from),
            (p, c.to_b),
            "A->B byte for byte, from the relay port"
        );
        let q = rtp(seq, 0xbbbb, 160);
        c.b.send(c.to_b, &q);
        let (got, from) = c.a.recv();
        assert_eq!((got, from), (q, c.to_a), "B->A");
    }
    c.a_rtcp.send(c.to_a_rtcp(), &rtcp_rr(0xaaaa));
    let (got, from) = c.b_rtcp.recv();
    assert_eq!((got, from), (rtcp_rr(0xaaaa), c.to_b_rtcp()));
    c.b_rtcp.send(c.to_b_rtcp(), &rtcp_rr(0xbbbb));
    assert_eq!(c.a_rtcp.recv().0, rtcp_rr(0xbbbb));
    // All of them went through the kernel, and the node counted every one.
    let want = before + 2 * i64::from(N) + 2;
    assert!(
        eventually(Duration::from_secs(3), || fast_path(&mut ng).2 == want),
        "kernel-forwarded packets {:?}, wanted {want}",
        fast_path(&mut ng)
    );
    assert_eq!(packets(&mut ng, "k", "a", 0), 1 + i64::from(N));
    assert_eq!(packets(&mut ng, "k", "b", 0), 1 + i64::from(N));
    assert_eq!(packets(&mut ng, "k", "a", 1), 2);
    assert_eq!(packets(&mut ng, "k", "b", 1), 2);
    c.a.expect_nothing(Duration::from_millis(50));
    c.b.expect_nothing(Duration::from_millis(50));
}

#[test]
fn tc_forwards_a_latched_call_both_ways() {
    forwards_a_latched_call_in_the_kernel("tc");
}

#[test]
fn xdp_forwards_a_latched_call_both_ways() {
    forwards_a_latched_call_in_the_kernel("xdp");
}

#[test]
fn a_reoffer_to_a_new_address_moves_the_stream() {
    let node = node("tc");
    let mut ng = node.client();
    let c = call(&mut ng, "move", Vec::new);
    latch(&c);
    wait_entries(&mut ng, 4);
    // The caller moves (re-INVITE from another port).
    let (a2, a2_rtcp) = Party::pair(LO);
    let offer = sdp_of(&ng.offer("move", "a", &audio_sdp(lo(), a2.port()), vec![]));
    assert_eq!(media_addr(&offer, 0), c.to_b);
    sdp_of(&ng.answer("move", "a", "b", &audio_sdp(lo(), c.b.port()), vec![]));
    c.b.send(c.to_b, &rtp(100, 0xbbbb, 160));
    assert_eq!(a2.recv().0, rtp(100, 0xbbbb, 160), "to the new address");
    c.a.expect_nothing(Duration::from_millis(200));
    // Once the new addresses latch, the streams are back in the kernel.
    a2.send(c.to_a, &rtp(100, 0xaaaa, 160));
    assert_eq!(c.b.recv().0, rtp(100, 0xaaaa, 160));
    a2_rtcp.send(c.to_a_rtcp(), &rtcp_rr(0xaaaa));
    assert_eq!(c.b_rtcp.recv().0, rtcp_rr(0xaaaa));
    wait_entries(&mut ng, 4);
    let before = fast_path(&mut ng).2;
    c.b.send(c.to_b, &rtp(101, 0xbbbb, 160));
    assert_eq!(a2.recv().0, rtp(101, 0xbbbb, 160));
    c.a.expect_nothing(Duration::from_millis(100));
    assert!(eventually(Duration::from_secs(3), || fast_path(&mut ng).2 > before));
}

#[test]
fn delete_takes_the_stream_out_of_the_kernel() {
    let node = node("tc");
    let mut ng = node.client();
    let c = call(&mut ng, "del", Vec::new);
    latch(&c);
    wait_entries(&mut ng, 4);
    let r = ng.req(vec![
        ("command", "delete".into()),
        ("call-id", "del".into()),
        ("delete delay", Value::Int(0)),
    ]);
    assert_eq!(result(&r), "ok");
    wait_entries(&mut ng, 0);
    c.a.send(c.to_a, &rtp(9, 0xaaaa, 160));
    c.b.expect_nothing(Duration::from_millis(200));
}

#[test]
fn strict_source_drops_a_stranger_in_the_kernel() {
    let node = node("tc");
    let mut ng = node.client();
    let flags = || vec![("flags", Value::List(vec!["strict-source".into()]))];
    let c = call(&mut ng, "strict", flags);
    latch(&c);
    wait_entries(&mut ng, 4);
    let stranger = Party::new(LO);
    for seq in 0..5 {
        stranger.send(c.to_a, &rtp(seq, 0xdddd, 160));
    }
    c.b.expect_nothing(Duration::from_millis(200));
    c.a.send(c.to_a, &rtp(50, 0xaaaa, 160));
    assert_eq!(
        c.b.recv().0,
        rtp(50, 0xaaaa, 160),
        "the caller still gets through"
    );
    let errors = |ng: &mut Ng| {
        let s = ng.req(vec![("command", "statistics".into())]);
        int_at(&s, &["statistics", "totalstatistics", "packetserrors"])
    };
    assert!(
        eventually(Duration::from_secs(3), || errors(&mut ng) == 5),
        "the kernel's drops are counted: {}",
        errors(&mut ng)
    );
}

#[test]
fn a_stream_not_latched_stays_on_the_sockets() {
    let node = node("tc");
    let mut ng = node.client();
    let c = call(&mut ng, "oneway", Vec::new);
    // Only the caller speaks: the callee's side never latches, so the
    // caller's packets have no settled destination for the kernel.
    for seq in 0..20 {
        c.a.send(c.to_a, &rtp(seq, 0xaaaa, 160));
        assert_eq!(c.b.recv().0, rtp(seq, 0xaaaa, 160));
    }
    // Give the workers a few ticks to (not) install anything.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fast_path(&mut ng), (1, 0, 0));
    assert_eq!(packets(&mut ng, "oneway", "a", 0), 20);
}

#[test]
fn a_node_that_cannot_load_the_program_forwards_on_its_sockets() {
    // No capabilities at all: root without CAP_BPF / CAP_NET_ADMIN, as in
    // an unprivileged container.
    let ports = port_block(200);
    let ng_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut p = Spec::new("node-nocaps", "setpriv")
        .env("RUST_LOG", "info")
        .args(["--bounding-set=-all", "--inh-caps=-all", "--"])
        .arg(env!("CARGO_BIN_EXE_rtpmesh"))
        .args(["node", "--listen-ng", &ng_addr.to_string()])
        .args([
            "--port-min",
            &ports.0.to_string(),
            "--port-max",
            &ports.1.to_string(),
        ])
        .args(["--fast-path", "tc"])
        .start();
    wait_for_ping(&mut p, ng_addr);
    let mut ng = Ng::new(ng_addr);
    assert_eq!(fast_path(&mut ng).0, 0);
    assert!(p.log_text().contains("fast path off"), "{}", p.log_text());
    let c = call(&mut ng, "nocaps", Vec::new);
    latch(&c);
    for seq in 2..10 {
        c.a.send(c.to_a, &rtp(seq, 0xaaaa, 160));
        assert_eq!(c.b.recv().0, rtp(seq, 0xaaaa, 160));
    }
    assert_eq!(packets(&mut ng, "nocaps", "a", 0), 9);
}

#[test]
fn block_media_stops_the_kernel_too() {
    let node = node("tc");
    let mut ng = node.client();
    let c = call(&mut ng, "block", Vec::new);
    latch(&c);
    wait_entries(&mut ng, 4);
    let r = ng.req(vec![
        ("command", "block media".into()),
        ("call-id", "block".into()),
        ("from-tag", "a".into()),
    ]);
    assert_eq!(result(&r), "ok");
    c.a.send(c.to_a, &rtp(60, 0xaaaa, 160));
    c.b.expect_nothing(Duration::from_millis(200));
    // The other direction still flows, in the kernel.
    c.b.send(c.to_b, &rtp(60, 0xbbbb, 160));
    assert_eq!(c.a.recv().0, rtp(60, 0xbbbb, 160));
    let r = ng.req(vec![
        ("command", "unblock media".into()),
        ("call-id", "block".into()),
        ("from-tag", "a".into()),
    ]);
    assert_eq!(result(&r), "ok");
    c.a.send(c.to_a, &rtp(61, 0xaaaa, 160));
    assert_eq!(c.b.recv().0, rtp(61, 0xaaaa, 160));
    wait_entries(&mut ng, 4);
}

#[test]
fn media_in_the_kernel_keeps_the_call_alive_and_its_end_times_it_out() {
    let node = Node::builder("epoll")
        .args(&["--fast-path", "tc", "--timeout", "1"])
        .start();
    let mut ng = node.client();
    let c = call(&mut ng, "alive", Vec::new);
    latch(&c);
    wait_entries(&mut ng, 4);
    // Three timeouts' worth of media, all of it in the kernel: the call
    // must not time out.
    let start = std::time::Instant::now();
    let mut seq = 2;
    while start.elapsed() < Duration::from_secs(3) {
        c.a.send(c.to_a, &rtp(seq, 0xaaaa, 160));
        assert_eq!(c.b.recv().0, rtp(seq, 0xaaaa, 160));
        c.b.send(c.to_b, &rtp(seq, 0xbbbb, 160));
        assert_eq!(c.a.recv().0, rtp(seq, 0xbbbb, 160));
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(result(&ng.query("alive")), "ok", "{}", node.log_text());
    assert!(fast_path(&mut ng).2 > 100, "{:?}", fast_path(&mut ng));
    // Silence: now it times out, and its entries go with it.
    assert!(
        eventually(Duration::from_secs(5), || result(&ng.query("alive"))
            != "ok"),
        "the call outlived its media"
    );
    wait_entries(&mut ng, 0);
}
