//! Integration tests: media through a real node, on loopback, for both IO
//! backends.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::call::{call, lo, Call, LO};
use common::*;
use rtpmesh_ng::bencode::Value;

fn rtcp_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=rtcp:"))
        .and_then(|v| v.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("a=rtcp line")
}

fn forwards_rtp_and_rtcp_both_ways(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let (a, a_rtcp) = Party::pair(LO);
    let (b, b_rtcp) = Party::pair(LO);
    let offer = sdp_of(&ng.offer("fw", "a", &audio_sdp(lo(), a.port()), vec![]));
    let answer = sdp_of(&ng.answer("fw", "a", "b", &audio_sdp(lo(), b.port()), vec![]));
    let to_b = media_addr(&offer, 0);
    let to_a = media_addr(&answer, 0);
    assert_eq!(rtcp_port(&offer), to_b.port() + 1);
    assert_eq!(rtcp_port(&answer), to_a.port() + 1);
    for seq in 0..20u16 {
        let p = rtp(seq, 0xaaaa, 160);
        a.send(to_a, &p);
        let (got, from) = b.recv();
        assert_eq!(got, p, "payload A->B intact");
        assert_eq!(from, to_b, "B hears the relay port it was given");
        let q = rtp(seq, 0xbbbb, 160);
        b.send(to_b, &q);
        let (got, from) = a.recv();
        assert_eq!(got, q, "payload B->A intact");
        assert_eq!(from, to_a);
    }
    let rr = rtcp_rr(0xaaaa);
    a_rtcp.send(SocketAddr::new(to_a.ip(), to_a.port() + 1), &rr);
    let (got, from) = b_rtcp.recv();
    assert_eq!(got, rr);
    assert_eq!(from.port(), to_b.port() + 1);
    let rr = rtcp_rr(0xbbbb);
    b_rtcp.send(SocketAddr::new(to_b.ip(), to_b.port() + 1), &rr);
    assert_eq!(a_rtcp.recv().0, rr);
    // RTCP never leaks onto the RTP sockets.
    a.expect_nothing(Duration::from_millis(50));
    b.expect_nothing(Duration::from_millis(50));
}

fn latches_to_a_changed_source_port(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let c = call(&mut ng, "nat", vec![], vec![]);
    // The caller sits behind a NAT: its packets come from another port than
    // its SDP says.
    let natted = Party::new(LO);
    natted.send(c.to_a, &rtp(1, 1, 40));
    assert_eq!(c.b.recv().0, rtp(1, 1, 40));
    c.b.send(c.to_b, &rtp(1, 2, 40));
    assert_eq!(
        natted.recv().0,
        rtp(1, 2, 40),
        "return path follows the latched source"
    );
    c.a.expect_nothing(Duration::from_millis(100));
    // Without strict-source a third source is still forwarded, but the
    // return path stays on the latched address.
    let third = Party::new(LO);
    third.send(c.to_a, &rtp(2, 1, 40));
    assert_eq!(c.b.recv().0, rtp(2, 1, 40));
    c.b.send(c.to_b, &rtp(2, 2, 40));
    assert_eq!(natted.recv().0, rtp(2, 2, 40));
    third.expect_nothing(Duration::from_millis(100));
    let q = ng.query("nat");
    let ep = at(&q, &["tags", "a", "medias"])
        .and_then(Value::as_list)
        .unwrap()[0]
        .get("streams")
        .and_then(Value::as_list)
        .unwrap()[0]
        .get("endpoint")
        .unwrap()
        .clone();
    assert_eq!(
        int_at(&ep, &["port"]),
        i64::from(natted.port()),
        "query shows the latched endpoint"
    );
}

fn strict_source_drops_other_sources(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let flags = || vec![("flags", Value::List(vec!["strict-source".into()]))];
    let c = call(&mut ng, "strict", flags(), flags());
    c.a.send(c.to_a, &rtp(1, 1, 40));
    assert_eq!(c.b.recv().0, rtp(1, 1, 40));
    let intruder = Party::new(LO);
    for seq in 2..7 {
        intruder.send(c.to_a, &rtp(seq, 9, 40));
    }
    c.a.send(c.to_a, &rtp(7, 1, 40));
    assert_eq!(
        c.b.recv().0,
        rtp(7, 1, 40),
        "only the latched source gets through"
    );
    c.b.expect_nothing(Duration::from_millis(100));
    let q = ng.query("strict");
    assert_eq!(
        int_at(&q, &["totals", "RTP", "errors"]),
        5,
        "dropped packets are counted"
    );
}

fn asymmetric_keeps_the_sdp_address(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let flags = || vec![("flags", Value::List(vec!["asymmetric".into()]))];
    let c = call(&mut ng, "asym", flags(), flags());
    let other = Party::new(LO);
    other.send(c.to_a, &rtp(1, 1, 40));
    assert_eq!(c.b.recv().0, rtp(1, 1, 40));
    c.b.send(c.to_b, &rtp(1, 2, 40));
    assert_eq!(
        c.a.recv().0,
        rtp(1, 2, 40),
        "asymmetric: return path is the SDP address"
    );
    other.expect_nothing(Duration::from_millis(100));
}

fn rtcp_mux_is_demultiplexed(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let (a, _a_rtcp) = Party::pair(LO);
    let (b, b_rtcp) = Party::pair(LO);
    let mux_sdp = |p: u16| format!("{}a=rtcp-mux\r\n", audio_sdp(lo(), p));
    // The caller muxes; the callee is offered separate ports (demux).
    let offer = sdp_of(&ng.offer(
        "mux",
        "a",
        &mux_sdp(a.port()),
        vec![("rtcp-mux", Value::List(vec!["demux".into()]))],
    ));
    assert!(
        !has_line(&offer, "a=rtcp-mux"),
        "demux: callee is not offered mux:\n{offer}"
    );
    let answer = sdp_of(&ng.answer("mux", "a", "b", &audio_sdp(lo(), b.port()), vec![]));
    assert!(
        has_line(&answer, "a=rtcp-mux"),
        "caller's mux is accepted:\n{answer}"
    );
    let to_a = media_addr(&answer, 0);
    let to_b = media_addr(&offer, 0);
    assert_eq!(
        rtcp_port(&answer),
        to_a.port(),
        "muxed: a=rtcp names the RTP port"
    );
    // Caller sends RTP and RTCP on one port; the callee gets them apart.
    a.send(to_a, &rtp(1, 1, 40));
    a.send(to_a, &rtcp_rr(1));
    assert_eq!(b.recv().0, rtp(1, 1, 40));
    assert_eq!(b_rtcp.recv().0, rtcp_rr(1));
    // Callee's RTCP from its RTCP port reaches the caller's one port.
    b_rtcp.send(SocketAddr::new(to_b.ip(), to_b.port() + 1), &rtcp_rr(2));
    b.send(to_b, &rtp(1, 2, 40));
    let mut got = vec![a.recv().0, a.recv().0];
    got.sort();
    let mut want = vec![rtcp_rr(2), rtp(1, 2, 40)];
    want.sort();
    assert_eq!(got, want);
}

fn rtcp_mux_end_to_end(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let a = Party::new(LO);
    let b = Party::new(LO);
    let mux_sdp = |p: u16| format!("{}a=rtcp-mux\r\n", audio_sdp(lo(), p));
    let offer = sdp_of(&ng.offer("mux2", "a", &mux_sdp(a.port()), vec![]));
    assert!(has_line(&offer, "a=rtcp-mux"));
    let answer = sdp_of(&ng.answer("mux2", "a", "b", &mux_sdp(b.port()), vec![]));
    assert!(has_line(&answer, "a=rtcp-mux"));
    let (to_a, to_b) = (media_addr(&answer, 0), media_addr(&offer, 0));
    a.send(to_a, &rtcp_rr(1));
    assert_eq!(b.recv(), (rtcp_rr(1), to_b));
    b.send(to_b, &rtcp_rr(2));
    assert_eq!(a.recv(), (rtcp_rr(2), to_a));
    let q = ng.query("mux2");
    assert_eq!(int_at(&q, &["totals", "RTCP", "packets"]), 2);
}

fn reinvite_keeps_ports_and_follows_a_new_caller_port(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let c = call(&mut ng, "reinv", vec![], vec![]);
    c.a.send(c.to_a, &rtp(1, 1, 40));
    assert_eq!(c.b.recv().0, rtp(1, 1, 40));
    // Same SDP again (session refresh): same relay ports.
    let offer = sdp_of(&ng.offer("reinv", "a", &audio_sdp(lo(), c.a.port()), vec![]));
    assert_eq!(media_addr(&offer, 0), c.to_b);
    let answer = sdp_of(&ng.answer("reinv", "a", "b", &audio_sdp(lo(), c.b.port()), vec![]));
    assert_eq!(media_addr(&answer, 0), c.to_a);
    // The caller moves to a new port: media follows it.
    let moved = Party::new(LO);
    let offer = sdp_of(&ng.offer("reinv", "a", &audio_sdp(lo(), moved.port()), vec![]));
    assert_eq!(
        media_addr(&offer, 0),
        c.to_b,
        "re-offer keeps the relay port"
    );
    sdp_of(&ng.answer("reinv", "a", "b", &audio_sdp(lo(), c.b.port()), vec![]));
    c.b.send(c.to_b, &rtp(2, 2, 40));
    assert_eq!(moved.recv().0, rtp(2, 2, 40));
    c.a.expect_nothing(Duration::from_millis(100));
    // A re-INVITE from the callee (tags reversed) keeps the ports too.
    let offer = sdp_of(&ng.offer(
        "reinv",
        "b",
        &audio_sdp(lo(), c.b.port()),
        vec![("to-tag", "a".into())],
    ));
    assert_eq!(media_addr(&offer, 0), c.to_a);
    let answer = sdp_of(&ng.answer("reinv", "b", "a", &audio_sdp(lo(), moved.port()), vec![]));
    assert_eq!(media_addr(&answer, 0), c.to_b);
    moved.send(c.to_a, &rtp(3, 1, 40));
    assert_eq!(c.b.recv().0, rtp(3, 1, 40));
}

fn audio_and_video_get_their_own_ports(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let (a_audio, a_video, b_audio, b_video) = (
        Party::new(LO),
        Party::new(LO),
        Party::new(LO),
        Party::new(LO),
    );
    let av = |pa: u16, pv: u16| {
        format!(
            "{}m=video {pv} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=sendrecv\r\n",
            audio_sdp(lo(), pa)
        )
    };
    let offer = sdp_of(&ng.offer("av", "a", &av(a_audio.port(), a_video.port()), vec![]));
    let answer = sdp_of(&ng.answer("av", "a", "b", &av(b_audio.port(), b_video.port()), vec![]));
    let (to_a_audio, to_a_video) = (media_addr(&answer, 0), media_addr(&answer, 1));
    let (to_b_audio, to_b_video) = (media_addr(&offer, 0), media_addr(&offer, 1));
    assert_ne!(to_a_audio, to_a_video);
    a_audio.send(to_a_audio, &rtp(1, 1, 160));
    a_video.send(to_a_video, &rtp(1, 2, 1200));
    assert_eq!(b_audio.recv().0, rtp(1, 1, 160));
    assert_eq!(b_video.recv().0, rtp(1, 2, 1200));
    b_video.send(to_b_video, &rtp(1, 3, 1200));
    b_audio.send(to_b_audio, &rtp(1, 4, 160));
    assert_eq!(a_video.recv().0, rtp(1, 3, 1200));
    assert_eq!(a_audio.recv().0, rtp(1, 4, 160));
}

fn ipv6_and_mixed_family_calls(backend: &str) {
    let node = Node::builder(backend)
        .arg("--interface")
        .arg("127.0.0.1")
        .arg("--interface")
        .arg("::1")
        .start();
    let mut ng = node.client();
    let v6: IpAddr = "::1".parse().unwrap();
    // IPv6 on both sides.
    let (a, b) = (Party::new("::1"), Party::new("::1"));
    let offer = sdp_of(&ng.offer("v6", "a", &audio_sdp(v6, a.port()), vec![]));
    assert!(offer.contains("c=IN IP6 ::1"), "{offer}");
    let answer = sdp_of(&ng.answer("v6", "a", "b", &audio_sdp(v6, b.port()), vec![]));
    let (to_a, to_b) = (media_addr(&answer, 0), media_addr(&offer, 0));
    assert!(to_a.is_ipv6() && to_b.is_ipv6());
    a.send(to_a, &rtp(1, 1, 40));
    assert_eq!(b.recv().0, rtp(1, 1, 40));
    b.send(to_b, &rtp(1, 2, 40));
    assert_eq!(a.recv().0, rtp(1, 2, 40));
    // Caller on IPv4, callee on IPv6.
    let (a, b) = (Party::new(LO), Party::new("::1"));
    let offer = sdp_of(&ng.offer(
        "mixed",
        "a",
        &audio_sdp(lo(), a.port()),
        vec![("address-family", "IP6".into())],
    ));
    let to_b = media_addr(&offer, 0);
    assert!(
        to_b.is_ipv6(),
        "callee is offered the IPv6 interface:\n{offer}"
    );
    let answer = sdp_of(&ng.answer("mixed", "a", "b", &audio_sdp(v6, b.port()), vec![]));
    let to_a = media_addr(&answer, 0);
    assert!(to_a.is_ipv4(), "caller keeps IPv4:\n{answer}");
    a.send(to_a, &rtp(1, 1, 40));
    assert_eq!(b.recv(), (rtp(1, 1, 40), to_b));
    b.send(to_b, &rtp(1, 2, 40));
    assert_eq!(a.recv(), (rtp(1, 2, 40), to_a));
}

fn query_stats_match_what_was_sent(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let c = call(&mut ng, "stats", vec![], vec![]);
    let mut bytes_a = 0;
    for seq in 0..30u16 {
        let p = rtp(seq, 0x1111, 100 + usize::from(seq));
        bytes_a += p.len() as i64;
        c.a.send(c.to_a, &p);
        c.b.recv();
    }
    // B loses two packets on its way out (sequence gap of 2).
    let mut bytes_b = 0;
    for seq in (0..22u16).filter(|s| *s != 5 && *s != 6) {
        let p = rtp(seq, 0x2222, 160);
        bytes_b += p.len() as i64;
        c.b.send(c.to_b, &p);
        c.a.recv();
    }
    for _ in 0..3 {
        c.a_rtcp.send(
            SocketAddr::new(c.to_a.ip(), c.to_a.port() + 1),
            &rtcp_rr(0x1111),
        );
        c.b_rtcp.recv();
    }
    let q = ng.query("stats");
    assert_eq!(result(&q), "ok");
    assert_eq!(int_at(&q, &["totals", "RTP", "packets"]), 50);
    assert_eq!(int_at(&q, &["totals", "RTP", "bytes"]), bytes_a + bytes_b);
    assert_eq!(int_at(&q, &["totals", "RTP", "errors"]), 0);
    assert_eq!(int_at(&q, &["totals", "RTCP", "packets"]), 3);
    let stream = |tag: &str, i: usize| {
        at(&q, &["tags", tag, "medias"])
            .and_then(Value::as_list)
            .unwrap()[0]
            .get("streams")
            .and_then(Value::as_list)
            .unwrap()[i]
            .clone()
    };
    let a_rtp = stream("a", 0);
    assert_eq!(int_at(&a_rtp, &["stats", "packets"]), 30);
    assert_eq!(int_at(&a_rtp, &["stats", "bytes"]), bytes_a);
    assert_eq!(int_at(&a_rtp, &["local port"]), i64::from(c.to_a.port()));
    assert_eq!(int_at(&a_rtp, &["SSRC"]), 0x1111);
    assert_eq!(int_at(&a_rtp, &["packets lost"]), 0);
    let b_rtp = stream("b", 0);
    assert_eq!(int_at(&b_rtp, &["stats", "packets"]), 20);
    assert_eq!(
        int_at(&b_rtp, &["packets lost"]),
        2,
        "RFC 3550 loss from the sequence gap"
    );
    assert_eq!(int_at(&stream("a", 1), &["stats", "packets"]), 3);
    assert_eq!(
        int_at(&stream("a", 1), &["local port"]),
        i64::from(c.to_a.port() + 1)
    );
}

fn thousand_calls_without_loss(backend: &str) {
    raise_fd_limit();
    let node = Node::builder(backend).ports(4200).start();
    let mut ng = node.client();
    let calls: Vec<Call> = (0..1000)
        .map(|i| {
            let a = Party::new(LO);
            let b = Party::new(LO);
            let id = format!("bulk-{i}");
            let offer = sdp_of(&ng.offer(&id, "a", &audio_sdp(lo(), a.port()), vec![]));
            let answer = sdp_of(&ng.answer(&id, "a", "b", &audio_sdp(lo(), b.port()), vec![]));
            Call {
                to_a: media_addr(&answer, 0),
                to_b: media_addr(&offer, 0),
                a,
                a_rtcp: Party::new(LO),
                b,
                b_rtcp: Party::new(LO),
            }
        })
        .collect();
    // Five rounds; each round every call sends one packet each way, which
    // is a low per-stream rate like real calls.
    for round in 0..5u16 {
        for (i, c) in calls.iter().enumerate() {
            c.a.send(c.to_a, &rtp(round, i as u32, 160));
            c.b.send(c.to_b, &rtp(round, 100_000 + i as u32, 160));
        }
        for (i, c) in calls.iter().enumerate() {
            assert_eq!(
                c.b.recv().0,
                rtp(round, i as u32, 160),
                "call {i} round {round} A->B"
            );
            assert_eq!(
                c.a.recv().0,
                rtp(round, 100_000 + i as u32, 160),
                "call {i} round {round} B->A"
            );
        }
    }
    let q = ng.query("bulk-999");
    assert_eq!(int_at(&q, &["totals", "RTP", "packets"]), 10);
}

fn recovers_without_loss_after_overload(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let calls: Vec<Call> = (0..10)
        .map(|i| call(&mut ng, &format!("ovl-{i}"), vec![], vec![]))
        .collect();
    // Overload: four threads blast as fast as they can into every call, from
    // the callers' own sockets, for a while; queues overflow somewhere
    // (relay or receivers).
    let senders: Vec<(std::net::UdpSocket, SocketAddr)> = calls
        .iter()
        .map(|c| (c.a.sock.try_clone().unwrap(), c.to_a))
        .collect();
    let sent: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let senders: Vec<_> = senders
                    .iter()
                    .map(|(s, to)| (s.try_clone().unwrap(), *to))
                    .collect();
                s.spawn(move || {
                    let mut n = 0u64;
                    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
                    while std::time::Instant::now() < deadline {
                        for (sock, to) in &senders {
                            let _ = sock.send_to(&rtp(n as u16, 7000, 160), to);
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let received: usize = calls
        .iter()
        .map(|c| c.b.drain(Duration::from_millis(300)))
        .sum();
    let kernel_drops: i64 = (0..calls.len())
        .map(|i| {
            let q = ng.query(&format!("ovl-{i}"));
            at(&q, &["tags", "a", "medias"])
                .and_then(Value::as_list)
                .unwrap()[0]
                .get("streams")
                .and_then(Value::as_list)
                .unwrap()[0]
                .get("kernel drops")
                .and_then(Value::as_int)
                .unwrap()
        })
        .sum();
    eprintln!("overload: sent {sent}, delivered {received}, dropped in the relay's socket queues {kernel_drops}");
    assert!(
        (received as u64) < sent,
        "the burst must really overload something"
    );
    // Right after: normal traffic on every stream, both ways, with no loss.
    for round in 0..20u16 {
        for (i, c) in calls.iter().enumerate() {
            c.a.send(c.to_a, &rtp(round, i as u32, 160));
            c.b.send(c.to_b, &rtp(round, 500 + i as u32, 160));
        }
        for (i, c) in calls.iter().enumerate() {
            assert_eq!(
                c.b.recv().0,
                rtp(round, i as u32, 160),
                "call {i} A->B after overload"
            );
            assert_eq!(
                c.a.recv().0,
                rtp(round, 500 + i as u32, 160),
                "call {i} B->A after overload"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn idle_calls_time_out_and_active_ones_stay(backend: &str) {
    let node = Node::builder(backend).arg("--timeout").arg("1").start();
    let mut ng = node.client();
    let idle = call(&mut ng, "idle", vec![], vec![]);
    let busy = call(&mut ng, "busy", vec![], vec![]);
    let start = std::time::Instant::now();
    // Keep "busy" alive while "idle" times out.
    let gone = eventually(Duration::from_secs(5), || {
        busy.a.send(busy.to_a, &rtp(1, 1, 40));
        busy.b.recv();
        reason(&ng.query("idle")) == "Unknown call-id"
    });
    assert!(gone, "idle call was not removed");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "removed before its timeout"
    );
    assert_eq!(
        result(&ng.query("busy")),
        "ok",
        "a call with media must stay"
    );
    // Its ports no longer relay.
    idle.a.send(idle.to_a, &rtp(1, 1, 40));
    idle.b.expect_nothing(Duration::from_millis(200));
    let st = ng.req(vec![("command", "statistics".into())]);
    assert_eq!(
        int_at(&st, &["statistics", "totalstatistics", "timeoutsessions"]),
        1
    );
}

fn delete_and_delete_delay(backend: &str) {
    let node = Node::builder(backend)
        .arg("--delete-delay")
        .arg("1")
        .start();
    let mut ng = node.client();
    let now = call(&mut ng, "del-now", vec![], vec![]);
    now.a.send(now.to_a, &rtp(1, 1, 40));
    now.b.recv();
    let r = ng.delete("del-now", Some(0));
    assert_eq!(result(&r), "ok");
    assert_eq!(
        int_at(&r, &["totals", "RTP", "packets"]),
        1,
        "delete reports the call's stats"
    );
    assert_eq!(reason(&ng.query("del-now")), "Unknown call-id");
    now.a.send(now.to_a, &rtp(2, 1, 40));
    now.b.expect_nothing(Duration::from_millis(200));
    // Kamailio's spelling: both keys, one an integer, one a string.
    let k = call(&mut ng, "del-kam", vec![], vec![]);
    let r = ng.req(vec![
        ("command", "delete".into()),
        ("call-id", "del-kam".into()),
        ("delete delay", 0u64.into()),
        ("delete-delay", "0".into()),
    ]);
    assert_eq!(result(&r), "ok");
    assert_eq!(reason(&ng.query("del-kam")), "Unknown call-id");
    drop(k);
    // Default delay (1 s here): still there right after, gone later; media
    // keeps flowing meanwhile, as rtpengine does.
    let later = call(&mut ng, "del-later", vec![], vec![]);
    assert_eq!(result(&ng.delete("del-later", None)), "ok");
    assert_eq!(result(&ng.query("del-later")), "ok");
    later.a.send(later.to_a, &rtp(1, 1, 40));
    later.b.recv();
    assert!(eventually(Duration::from_secs(5), || reason(
        &ng.query("del-later")
    )
        == "Unknown call-id"));
    // Unknown call: ok with a warning, as rtpengine.
    let r = ng.delete("nope", None);
    assert_eq!(result(&r), "ok");
    assert_eq!(
        r.get("warning").and_then(Value::as_str),
        Some("Call-ID not found or tags didn't match")
    );
}

/// `start recording` writes every packet of both parties to pcap and
/// G.711 WAV files; `block media` silences one party while the other goes
/// on; `unblock media` brings it back.
fn recording_and_blocking(backend: &str) {
    let dir = std::env::temp_dir().join(format!("rtpmesh-rec-{}-{backend}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let node = Node::builder(backend)
        .arg("--recording-dir")
        .arg(dir.to_str().unwrap())
        .start();
    let mut ng = node.client();
    let c = call(&mut ng, "rec", vec![], vec![]);
    let cmd = |ng: &mut Ng, command: &str, tag: Option<&str>| {
        let mut items = vec![("command", Value::from(command)), ("call-id", "rec".into())];
        if let Some(t) = tag {
            items.push(("from-tag", t.into()));
        }
        let r = ng.req(items);
        assert_eq!(result(&r), "ok", "{command}: {r:?}");
    };
    cmd(&mut ng, "start recording", None);
    for seq in 0..30u16 {
        c.a.send(c.to_a, &rtp(seq, 0xaaaa, 160));
        c.b.recv();
        c.b.send(c.to_b, &rtp(seq, 0xbbbb, 160));
        c.a.recv();
    }
    // Blocked: a's media stops at the relay, b's still reaches a.
    cmd(&mut ng, "block media", Some("a"));
    c.a.send(c.to_a, &rtp(100, 0xaaaa, 160));
    c.b.expect_nothing(Duration::from_millis(300));
    c.b.send(c.to_b, &rtp(100, 0xbbbb, 160));
    c.a.recv();
    cmd(&mut ng, "unblock media", Some("a"));
    c.a.send(c.to_a, &rtp(101, 0xaaaa, 160));
    c.b.recv();
    cmd(&mut ng, "stop recording", None);
    // Each party's pcap holds what it sent while recording (blocked media
    // is still recorded: it reached the relay), and its WAV the audio.
    for (tag, packets) in [("a", 32), ("b", 31)] {
        let stem = rtpmesh_control::record::file_stem("rec", tag, 1);
        let n = pcap_records(&dir.join(format!("{stem}.pcap")));
        assert_eq!(n, packets, "{tag}: packets in the pcap");
        let wav = std::fs::read(dir.join(format!("{stem}.wav"))).unwrap();
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(
            u16::from_le_bytes([wav[20], wav[21]]),
            7,
            "{tag}: mu-law WAV"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

both_backends!(
    recording_and_blocking,
    forwards_rtp_and_rtcp_both_ways,
    latches_to_a_changed_source_port,
    strict_source_drops_other_sources,
    asymmetric_keeps_the_sdp_address,
    rtcp_mux_is_demultiplexed,
    rtcp_mux_end_to_end,
    reinvite_keeps_ports_and_follows_a_new_caller_port,
    audio_and_video_get_their_own_ports,
    ipv6_and_mixed_family_calls,
    query_stats_match_what_was_sent,
    thousand_calls_without_loss,
    recovers_without_loss_after_overload,
    idle_calls_time_out_and_active_ones_stay,
    delete_and_delete_delay,
);
