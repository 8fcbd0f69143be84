//! Integration tests: the ng protocol and SDP rewriting of a real node, as
//! Kamailio drives it. Expected texts are what rtpengine 10.5 answered to
//! the same requests (control/ng/SDP-NOTES.md, control/ng/NG-NOTES.md).

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use rtpmesh_ng::bencode::Value;

const OFFER: &str = "v=0\r\no=- 1545997027 1 IN IP4 10.1.1.1\r\ns=tester\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 2000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=candidate:1 1 UDP 2130706431 10.1.1.1 2000 typ host\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefabcdefabcdefabcdef\r\n";
const ANSWER: &str = "v=0\r\no=- 99 1 IN IP4 10.2.2.2\r\ns=tester\r\nc=IN IP4 10.2.2.2\r\nt=0 0\r\nm=audio 3000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

/// The keys Kamailio 5.6's rtpengine module sends with an offer.
fn kamailio_keys() -> Vec<(&'static str, Value)> {
    vec![
        (
            "received-from",
            Value::List(vec!["IP4".into(), "10.1.1.1".into()]),
        ),
        ("supports", Value::List(vec!["load limit".into()])),
        ("ICE", "remove".into()),
        ("via-branch", "z9hG4bK776asdhds.0".into()),
    ]
}

fn kamailio_offer_and_answer_are_rewritten_as_rtpengine_does(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let offer = sdp_of(&ng.offer("k1", "ft", OFFER, kamailio_keys()));
    let p = media_addr(&offer, 0).port();
    assert_eq!(p % 2, 0, "RTP port is even");
    assert!((node.ports.0..=node.ports.1).contains(&p));
    let want = format!(
        "v=0\r\no=- 1545997027 1 IN IP4 127.0.0.1\r\ns=tester\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {p} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\na=rtcp:{}\r\na=ptime:20\r\n",
        p + 1
    );
    assert_eq!(offer, want);
    let answer = sdp_of(&ng.answer("k1", "ft", "tt", ANSWER, vec![]));
    let q = media_addr(&answer, 0).port();
    assert_ne!(p, q);
    // The caller offered ICE: like rtpengine, the answer gives it ours
    // (ICE-lite, host candidates; tests/sdp_security.rs compares them).
    let ice = |name: &str| {
        let l = answer.lines().find(|l| l.starts_with(name)).expect(name);
        l.to_owned()
    };
    let want = format!(
        "v=0\r\no=- 99 1 IN IP4 127.0.0.1\r\ns=tester\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=ice-lite\r\nm=audio {q} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\na=rtcp:{}\r\na=ptime:20\r\n{}\r\n{}\r\n{}\r\n{}\r\n",
        q + 1,
        ice("a=ice-ufrag:"),
        ice("a=ice-pwd:"),
        ice("a=candidate:") ,
        answer.lines().filter(|l| l.starts_with("a=candidate:")).nth(1).expect("RTCP candidate"),
    );
    assert_eq!(answer, want);
    // query: rtpengine's shape, each tag's stream names the port its party
    // sends to and the endpoint its SDP advertised.
    let r = ng.query("k1");
    assert_eq!(result(&r), "ok");
    for (tag, other, port, ep) in [
        ("ft", "tt", q, ("10.1.1.1", 2000)),
        ("tt", "ft", p, ("10.2.2.2", 3000)),
    ] {
        let t = at(&r, &["tags", tag]).expect("tag");
        assert_eq!(t.get("tag").and_then(Value::as_str), Some(tag));
        assert_eq!(
            t.get("in dialogue with").and_then(Value::as_str),
            Some(other)
        );
        let m = &t.get("medias").and_then(Value::as_list).unwrap()[0];
        assert_eq!(m.get("type").and_then(Value::as_str), Some("audio"));
        assert_eq!(m.get("protocol").and_then(Value::as_str), Some("RTP/AVP"));
        assert_eq!(int_at(m, &["index"]), 1);
        let s = m.get("streams").and_then(Value::as_list).unwrap();
        assert_eq!(int_at(&s[0], &["local port"]), i64::from(port));
        assert_eq!(int_at(&s[1], &["local port"]), i64::from(port + 1));
        assert_eq!(
            at(&s[0], &["endpoint", "address"]).and_then(Value::as_str),
            Some(ep.0)
        );
        assert_eq!(int_at(&s[0], &["endpoint", "port"]), ep.1);
        assert_eq!(int_at(&s[1], &["endpoint", "port"]), ep.1 + 1);
        assert_eq!(
            at(&s[0], &["flags"]).and_then(Value::as_list).unwrap()[0].as_str(),
            Some("RTP")
        );
    }
    for key in ["created", "last signal"] {
        assert!(int_at(&r, &[key]) > 1_700_000_000);
    }
    for part in ["RTP", "RTCP"] {
        for k in ["packets", "bytes", "errors"] {
            assert_eq!(int_at(&r, &["totals", part, k]), 0);
        }
    }
}

fn ping_list_and_statistics(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    assert_eq!(result(&ng.req(vec![("command", "ping".into())])), "pong");
    for id in ["c-1", "c-2", "c-3"] {
        sdp_of(&ng.offer(id, "a", OFFER, vec![]));
    }
    let l = ng.req(vec![("command", "list".into())]);
    assert_eq!(result(&l), "ok");
    let mut calls: Vec<&str> = l
        .get("calls")
        .and_then(Value::as_list)
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    calls.sort();
    assert_eq!(calls, ["c-1", "c-2", "c-3"]);
    let l = ng.req(vec![("command", "list".into()), ("limit", 2u64.into())]);
    assert_eq!(l.get("calls").and_then(Value::as_list).unwrap().len(), 2);
    let s = ng.req(vec![("command", "statistics".into())]);
    assert_eq!(result(&s), "ok");
    assert_eq!(
        int_at(&s, &["statistics", "currentstatistics", "sessionsown"]),
        3
    );
    assert_eq!(
        int_at(&s, &["statistics", "currentstatistics", "sessionstotal"]),
        3
    );
    assert_eq!(
        int_at(&s, &["statistics", "totalstatistics", "managedsessions"]),
        3
    );
    assert!(int_at(&s, &["statistics", "totalstatistics", "uptime"]) >= 0);
}

fn load_limit_turns_new_calls_away(backend: &str) {
    let node = Node::builder(backend)
        .arg("--max-sessions")
        .arg("2")
        .start();
    let mut ng = node.client();
    sdp_of(&ng.offer("l1", "a", OFFER, vec![]));
    sdp_of(&ng.offer("l2", "a", OFFER, vec![]));
    // Kamailio says it understands "load limit": it gets that result and
    // tries its next relay.
    let r = ng.offer("l3", "a", OFFER, kamailio_keys());
    assert_eq!(result(&r), "load limit");
    assert_eq!(
        r.get("message").and_then(Value::as_str),
        Some("Parallel session limit reached")
    );
    // A client that does not: a plain error.
    let r = ng.offer("l3", "a", OFFER, vec![]);
    assert_eq!(result(&r), "error");
    assert_eq!(reason(&r), "Parallel session limit reached");
    // Existing calls still get re-offers.
    sdp_of(&ng.offer("l1", "a", OFFER, vec![]));
    let s = ng.req(vec![("command", "statistics".into())]);
    assert_eq!(
        int_at(&s, &["statistics", "totalstatistics", "rejectedsessions"]),
        2
    );
    // A call that ends frees its place.
    assert_eq!(result(&ng.delete("l2", Some(0))), "ok");
    sdp_of(&ng.offer("l3", "a", OFFER, vec![]));
}

fn media_address_and_hold(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let offer = sdp_of(&ng.offer(
        "h",
        "a",
        &audio_sdp(lo, a.port()),
        vec![("media-address", "203.0.113.7".into())],
    ));
    assert!(has_line(&offer, "c=IN IP4 203.0.113.7"), "{offer}");
    let answer = sdp_of(&ng.answer("h", "a", "b", &audio_sdp(lo, b.port()), vec![]));
    let to_a = media_addr(&answer, 0);
    // media-address changes only what is advertised: media still flows
    // through the real interface.
    let to_b = std::net::SocketAddr::new(lo, media_addr(&offer, 0).port());
    a.send(to_a, &rtp(1, 1, 40));
    assert_eq!(b.recv().0, rtp(1, 1, 40));
    // Old-style hold: c=0.0.0.0 passes through and the stream turns sendonly.
    let hold = audio_sdp(lo, a.port()).replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let offer = sdp_of(&ng.offer("h", "a", &hold, vec![]));
    assert!(has_line(&offer, "c=IN IP4 0.0.0.0"), "{offer}");
    assert!(has_line(&offer, "a=sendonly"), "{offer}");
    sdp_of(&ng.answer("h", "a", "b", &audio_sdp(lo, b.port()), vec![]));
    // While on hold nothing is sent towards the held party.
    b.send(to_b, &rtp(2, 2, 40));
    a.expect_nothing(Duration::from_millis(150));
    // Unhold: media flows to it again.
    sdp_of(&ng.offer("h", "a", &audio_sdp(lo, a.port()), vec![]));
    sdp_of(&ng.answer("h", "a", "b", &audio_sdp(lo, b.port()), vec![]));
    b.send(to_b, &rtp(3, 2, 40));
    assert_eq!(a.recv().0, rtp(3, 2, 40));
}

fn retransmitted_offer_gets_the_same_reply_and_no_new_ports(backend: &str) {
    let node = Node::builder(backend).ports(8).start();
    let mut ng = node.client();
    let body = rtpmesh_ng::bencode::dict([
        ("command", "offer".into()),
        ("call-id", "rt".into()),
        ("from-tag", "a".into()),
        ("sdp", OFFER.into()),
    ]);
    let first = ng.c.request_with_cookie("cookie-1", &body).unwrap();
    for _ in 0..4 {
        assert_eq!(ng.c.request_with_cookie("cookie-1", &body).unwrap(), first);
    }
    // Eight ports are two calls: the retransmissions took none.
    sdp_of(&ng.offer("other", "a", OFFER, vec![]));
    let s = ng.req(vec![("command", "statistics".into())]);
    assert_eq!(
        int_at(&s, &["statistics", "totalstatistics", "managedsessions"]),
        2
    );
}

/// Runs the `rtpmesh` CLI against `node`; returns (success, stdout).
fn cli(node: &Node, args: &[&str]) -> (bool, String) {
    // RUST_LOG as inherited: the output is parsed, the log is not.
    let spec = Spec::new("rtpmesh cli", env!("CARGO_BIN_EXE_rtpmesh"))
        .args(args)
        .arg("--ng")
        .arg(node.ng.to_string());
    let out = process::run_to_end(spec, Duration::from_secs(20));
    (out.status.success(), out.stdout)
}

fn operator_commands_show_calls(backend: &str) {
    let node = Node::start(backend);
    let (ok, out) = cli(&node, &["ping"]);
    assert!(ok && out.starts_with("pong from"), "{out}");
    // The demo sets up a call, relays 30 packets each way, and deletes it.
    let (ok, out) = cli(&node, &["demo", "--packets", "30"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("caller sent 30, callee received 30; callee sent 30, caller received 30"),
        "{out}"
    );
    assert!(out.contains("node counted 60 RTP packets"), "{out}");
    let mut ng = node.client();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let offer = sdp_of(&ng.offer("cli-call", "a", &audio_sdp(lo, a.port()), vec![]));
    let answer = sdp_of(&ng.answer("cli-call", "a", "b", &audio_sdp(lo, b.port()), vec![]));
    for seq in 0..7 {
        a.send(media_addr(&answer, 0), &rtp(seq, 5, 160));
        b.recv();
    }
    let (ok, out) = cli(&node, &["calls"]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("cli-call"))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[2], "7", "RTP packets column: {line}");
    assert_eq!(cols[3], (7 * 172).to_string(), "RTP bytes column: {line}");
    assert!(out.contains("1 call(s)"), "{out}");
    let (ok, out) = cli(&node, &["call", "cli-call"]);
    assert!(ok, "{out}");
    let port = media_addr(&answer, 0).port().to_string();
    let row = out
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(port.as_str()))
        .unwrap_or_else(|| panic!("no row for port {port}:\n{out}"));
    assert!(row.starts_with('a') && row.contains(" 7 "), "{row}");
    assert!(media_addr(&offer, 0).port() != media_addr(&answer, 0).port());
    // An unknown call is an error with rtpengine's text.
    let (ok, _) = cli(&node, &["call", "nope"]);
    assert!(!ok);
}

both_backends!(
    operator_commands_show_calls,
    kamailio_offer_and_answer_are_rewritten_as_rtpengine_does,
    ping_list_and_statistics,
    load_limit_turns_new_calls_away,
    media_address_and_hold,
    retransmitted_offer_gets_the_same_reply_and_no_new_ports,
);
