//! The control core driven in simulated time with a fake media plane: no
//! sockets, no threads.

use std::net::SocketAddr;
use std::time::Duration;

use rtpmesh_flow::flow::{Carries, FlowId, Latching, Output};

use super::*;
use crate::testing::FakePlane;
use rtpmesh_ng::bencode::{self, dict, Value};

fn config() -> NodeConfig {
    NodeConfig {
        delete_delay: Duration::from_secs(30),
        media_timeout: Duration::from_secs(60),
        max_sessions: 0,
    }
}

fn at(secs: u64) -> Now {
    Now {
        ms: 1 + secs * 1000,
        unix: 1_800_000_000 + secs,
    }
}

fn sdp(ip: &str, port: u16) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
}

/// Sends one request; returns the decoded reply.
fn send(
    node: &mut Node,
    plane: &mut FakePlane,
    now: Now,
    cookie: &str,
    items: Vec<(&str, Value)>,
) -> Value {
    let mut d = cookie.as_bytes().to_vec();
    d.push(b' ');
    dict(items).encode_into(&mut d);
    let reply = node.handle(&d, now, plane).expect("a reply");
    let (c, body) = ng::split_datagram(&reply).unwrap();
    assert_eq!(c, cookie.as_bytes());
    bencode::decode(body).unwrap()
}

fn offer(node: &mut Node, plane: &mut FakePlane, now: Now, cookie: &str, call: &str) -> Value {
    send(
        node,
        plane,
        now,
        cookie,
        vec![
            ("command", "offer".into()),
            ("call-id", call.into()),
            ("from-tag", "a".into()),
            ("sdp", sdp("10.0.0.1", 4000).into()),
        ],
    )
}

fn answer(node: &mut Node, plane: &mut FakePlane, now: Now, cookie: &str, call: &str) -> Value {
    send(
        node,
        plane,
        now,
        cookie,
        vec![
            ("command", "answer".into()),
            ("call-id", call.into()),
            ("from-tag", "a".into()),
            ("to-tag", "b".into()),
            ("sdp", sdp("10.0.0.2", 5000).into()),
        ],
    )
}

fn result(v: &Value) -> &str {
    v.get("result").and_then(Value::as_str).unwrap_or("")
}

fn reason(v: &Value) -> &str {
    v.get("error-reason").and_then(Value::as_str).unwrap_or("")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn offer_and_answer_route_each_leg_to_the_other() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    assert_eq!(result(&offer(&mut node, &mut plane, at(0), "1", "c")), "ok");
    assert_eq!(
        result(&answer(&mut node, &mut plane, at(1), "2", "c")),
        "ok"
    );
    let call = node.call("c").unwrap();
    let (a, b) = (
        &call.legs[0].streams[0].local,
        &call.legs[1].streams[0].local,
    );
    let a_rtp = plane.spec(a.rtp.flow);
    assert_eq!(a_rtp.peer, Some(addr("10.0.0.1:4000")));
    assert_eq!(a_rtp.carries, Carries::Rtp);
    assert_eq!(a_rtp.rtp_outputs, vec![Output::Peer(b.rtp.flow)]);
    assert_eq!(a_rtp.rtcp_outputs, vec![Output::Peer(b.rtcp.flow)]);
    assert_eq!(a_rtp.latching, Latching::Learn);
    let b_rtcp = plane.spec(b.rtcp.flow);
    assert_eq!(b_rtcp.peer, Some(addr("10.0.0.2:5001")));
    assert_eq!(b_rtcp.rtcp_outputs, vec![Output::Peer(a.rtcp.flow)]);
    assert!(b_rtcp.rtp_outputs.is_empty());
    assert_eq!(plane.opened, 2);
}

#[test]
fn delete_delay_keeps_the_call_until_it_runs_out() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer(&mut node, &mut plane, at(0), "1", "c");
    let r = send(
        &mut node,
        &mut plane,
        at(1),
        "2",
        vec![
            ("command", "delete".into()),
            ("call-id", "c".into()),
            ("delete-delay", "5".into()),
        ],
    );
    assert_eq!(result(&r), "ok");
    assert!(node.tick(at(5), &mut plane).is_empty());
    assert!(node.call("c").is_some());
    assert_eq!(
        node.tick(at(6), &mut plane),
        vec![("c".to_owned(), Removal::Deleted)]
    );
    assert!(node.call("c").is_none());
    assert_eq!(plane.closed.len(), 2);
}

#[test]
fn calls_without_media_time_out() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer(&mut node, &mut plane, at(0), "1", "quiet");
    offer(&mut node, &mut plane, at(0), "2", "busy");
    // Media on "busy" at 50 s, as a worker would record it.
    let busy = node.call("busy").unwrap();
    busy.legs[0].streams[0]
        .local
        .rtp
        .counters
        .last_packet_ms
        .store(at(50).ms, std::sync::atomic::Ordering::Relaxed);
    assert!(node.tick(at(59), &mut plane).is_empty());
    assert_eq!(
        node.tick(at(60), &mut plane),
        vec![("quiet".to_owned(), Removal::Timeout)]
    );
    assert!(node.call("busy").is_some());
    assert_eq!(
        node.tick(at(110), &mut plane),
        vec![("busy".to_owned(), Removal::Timeout)]
    );
}

#[test]
fn session_limit_answers_load_limit_to_those_who_support_it() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(
        NodeConfig {
            max_sessions: 1,
            ..config()
        },
        at(0),
    );
    offer(&mut node, &mut plane, at(0), "1", "one");
    let r = offer(&mut node, &mut plane, at(0), "2", "two");
    assert_eq!(
        (result(&r), reason(&r)),
        ("error", "Parallel session limit reached")
    );
    let mut items = vec![
        ("command", "offer".into()),
        ("call-id", "two".into()),
        ("from-tag", "a".into()),
        ("sdp", sdp("10.0.0.1", 4000).into()),
    ];
    items.push(("supports", Value::List(vec!["load limit".into()])));
    let r = send(&mut node, &mut plane, at(0), "3", items);
    assert_eq!(result(&r), "load limit");
    assert_eq!(plane.opened, 2, "a refused offer opens nothing");
}

#[test]
fn an_offer_that_runs_out_of_ports_leaves_nothing_behind() {
    // Three pairs: one call (two pairs) fits, the next gets one pair and
    // then fails.
    let mut plane = FakePlane::new(3);
    let mut node = Node::new(config(), at(0));
    assert_eq!(
        result(&offer(&mut node, &mut plane, at(0), "1", "fits")),
        "ok"
    );
    let r = offer(&mut node, &mut plane, at(0), "2", "too-many");
    assert_eq!((result(&r), reason(&r)), ("error", "Ran out of ports"));
    assert!(node.call("too-many").is_none());
    assert_eq!(plane.closed.len(), 1, "the pair it did get goes back");
    assert_eq!(plane.pool.in_use(), 2);
}

#[test]
fn answer_or_query_of_an_unknown_call_is_an_error_and_delete_a_warning() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    assert_eq!(
        reason(&answer(&mut node, &mut plane, at(0), "1", "x")),
        "Unknown call-id"
    );
    let q = send(
        &mut node,
        &mut plane,
        at(0),
        "2",
        vec![("command", "query".into()), ("call-id", "x".into())],
    );
    assert_eq!(reason(&q), "Unknown call-id");
    let d = send(
        &mut node,
        &mut plane,
        at(0),
        "3",
        vec![("command", "delete".into()), ("call-id", "x".into())],
    );
    assert_eq!(result(&d), "ok");
    assert_eq!(
        d.get("warning").and_then(Value::as_str),
        Some("Call-ID not found or tags didn't match")
    );
    let d = send(
        &mut node,
        &mut plane,
        at(0),
        "4",
        vec![
            ("command", "delete".into()),
            ("call-id", "x".into()),
            ("flags", Value::List(vec!["fatal".into()])),
        ],
    );
    assert_eq!(reason(&d), "Unknown call-id");
}

/// The same refusals as typed replies, straight from the core.
#[test]
fn typed_requests_get_typed_replies() {
    use rtpmesh_ng::ng::{parse_request, reason};
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(
        NodeConfig {
            max_sessions: 1,
            ..config()
        },
        at(0),
    );
    let mut run = |items: Vec<(&str, Value)>| {
        let req = parse_request(&dict(items)).unwrap();
        node.execute(&req, at(0), &mut plane)
    };
    assert_eq!(run(vec![("command", "ping".into())]), Reply::Pong);
    assert_eq!(
        run(vec![("command", "delete".into()), ("call-id", "x".into())]),
        Reply::ok_with_warning(reason::DELETE_NOT_FOUND)
    );
    assert_eq!(
        run(vec![("command", "query".into()), ("call-id", "x".into())]),
        Reply::error(reason::UNKNOWN_CALL_ID)
    );
    let offer = |call: &str, supports: &[&str]| {
        vec![
            ("command", "offer".into()),
            ("call-id", call.into()),
            ("from-tag", "a".into()),
            ("sdp", sdp("10.0.0.1", 4000).into()),
            (
                "supports",
                Value::List(supports.iter().map(|&s| s.into()).collect()),
            ),
        ]
    };
    assert!(matches!(
        run(offer("one", &[])),
        Reply::Sdp { tunnel: None, .. }
    ));
    assert_eq!(run(offer("two", &["load limit"])), Reply::LoadLimit);
    assert_eq!(run(offer("two", &[])), Reply::error(reason::LOAD_LIMIT));
    assert_eq!(
        run(vec![("command", "list".into())]),
        Reply::Calls(vec!["one".into()])
    );
}

#[test]
fn latched_addresses_reported_by_workers_show_in_query() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer(&mut node, &mut plane, at(0), "1", "c");
    let flow = node.call("c").unwrap().legs[0].streams[0].local.rtp.flow;
    node.on_event(&rtpmesh_relay::worker::Event::Latched {
        flow,
        addr: addr("192.0.2.7:61000"),
    });
    let q = send(
        &mut node,
        &mut plane,
        at(1),
        "2",
        vec![("command", "query".into()), ("call-id", "c".into())],
    );
    let stream = &q
        .get("tags")
        .unwrap()
        .get("a")
        .unwrap()
        .get("medias")
        .unwrap()
        .as_list()
        .unwrap()[0]
        .get("streams")
        .unwrap()
        .as_list()
        .unwrap()[0];
    let ep = stream.get("endpoint").unwrap();
    assert_eq!(ep.get("address").and_then(Value::as_str), Some("192.0.2.7"));
    assert_eq!(ep.get("port").and_then(Value::as_int), Some(61000));
}

#[test]
fn datagrams_without_cookie_get_no_reply() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    assert!(node
        .handle(b"d7:command4:pinge", at(0), &mut plane)
        .is_none());
    assert!(node.handle(b"", at(0), &mut plane).is_none());
    let r = send(
        &mut node,
        &mut plane,
        at(0),
        "ok",
        vec![("command", "ping".into())],
    );
    assert_eq!(result(&r), "pong");
}

fn offer_with(
    node: &mut Node,
    plane: &mut FakePlane,
    cookie: &str,
    sdp_text: String,
    extra: Vec<(&str, Value)>,
) -> Value {
    let mut items = vec![
        ("command", "offer".into()),
        ("call-id", "m".into()),
        ("from-tag", "a".into()),
        ("sdp", sdp_text.into()),
    ];
    items.extend(extra);
    send(node, plane, at(0), cookie, items)
}

fn answer_with(node: &mut Node, plane: &mut FakePlane, cookie: &str, sdp_text: String) -> Value {
    send(
        node,
        plane,
        at(1),
        cookie,
        vec![
            ("command", "answer".into()),
            ("call-id", "m".into()),
            ("from-tag", "a".into()),
            ("to-tag", "b".into()),
            ("sdp", sdp_text.into()),
        ],
    )
}

#[test]
fn rtcp_mux_on_both_sides_routes_rtcp_between_the_rtp_ports() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    let mux = |ip: &str, port: u16| format!("{}a=rtcp-mux\r\n", sdp(ip, port));
    let o = offer_with(&mut node, &mut plane, "1", mux("10.0.0.1", 4000), vec![]);
    let offered = o.get("sdp").and_then(Value::as_str).unwrap().to_owned();
    assert!(offered.contains("a=rtcp-mux\r\n"), "{offered}");
    let a = answer_with(&mut node, &mut plane, "2", mux("10.0.0.2", 5000));
    let answered = a.get("sdp").and_then(Value::as_str).unwrap();
    let call = node.call("m").unwrap();
    let (la, lb) = (
        &call.legs[0].streams[0].local,
        &call.legs[1].streams[0].local,
    );
    // Muxed answer: a=rtcp names the RTP port itself.
    assert!(
        answered.contains(&format!("a=rtcp:{}\r\n", la.rtp.port)),
        "{answered}"
    );
    let spec = plane.spec(la.rtp.flow);
    assert_eq!(spec.carries, Carries::Muxed);
    assert_eq!(spec.rtcp_outputs, vec![Output::Peer(lb.rtp.flow)]);
    assert_eq!(
        plane.spec(lb.rtp.flow).rtcp_outputs,
        vec![Output::Peer(la.rtp.flow)]
    );
}

#[test]
fn demux_offers_separate_ports_and_still_accepts_the_callers_mux() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    let mux = format!("{}a=rtcp-mux\r\n", sdp("10.0.0.1", 4000));
    let o = offer_with(
        &mut node,
        &mut plane,
        "1",
        mux,
        vec![("rtcp-mux", Value::List(vec!["demux".into()]))],
    );
    assert!(!o
        .get("sdp")
        .and_then(Value::as_str)
        .unwrap()
        .contains("a=rtcp-mux"));
    let a = answer_with(&mut node, &mut plane, "2", sdp("10.0.0.2", 5000));
    assert!(a
        .get("sdp")
        .and_then(Value::as_str)
        .unwrap()
        .contains("a=rtcp-mux"));
    let call = node.call("m").unwrap();
    let (la, lb) = (
        &call.legs[0].streams[0].local,
        &call.legs[1].streams[0].local,
    );
    // The caller's muxed RTCP goes to the callee's separate RTCP port, and
    // the callee's RTCP comes back on the caller's one port.
    assert_eq!(plane.spec(la.rtp.flow).carries, Carries::Muxed);
    assert_eq!(
        plane.spec(la.rtp.flow).rtcp_outputs,
        vec![Output::Peer(lb.rtcp.flow)]
    );
    assert_eq!(plane.spec(lb.rtp.flow).carries, Carries::Rtp);
    assert_eq!(
        plane.spec(lb.rtcp.flow).rtcp_outputs,
        vec![Output::Peer(la.rtp.flow)]
    );
}

#[test]
fn strict_source_and_sip_source_address_reach_the_flows() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer_with(
        &mut node,
        &mut plane,
        "1",
        sdp("10.0.0.1", 4000),
        vec![
            (
                "flags",
                Value::List(vec!["strict-source".into(), "SIP-source-address".into()]),
            ),
            (
                "received-from",
                Value::List(vec!["IP4".into(), "192.0.2.50".into()]),
            ),
        ],
    );
    let call = node.call("m").unwrap();
    let spec = plane.spec(call.legs[0].streams[0].local.rtp.flow);
    assert_eq!(spec.latching, Latching::Strict);
    assert_eq!(
        spec.peer,
        Some(addr("192.0.2.50:4000")),
        "SIP source replaces the SDP address"
    );
}

#[test]
fn statistics_report_rates_over_the_last_second() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer(&mut node, &mut plane, at(0), "1", "c");
    node.tick(at(1), &mut plane);
    let c = node.call("c").unwrap().legs[0].streams[0]
        .local
        .rtp
        .counters
        .clone();
    c.rtp_packets.store(500, Relaxed);
    c.rtp_bytes.store(86_000, Relaxed);
    c.malformed.store(5, Relaxed);
    c.last_packet_ms.store(at(2).ms, Relaxed);
    node.tick(at(2), &mut plane);
    let s = send(
        &mut node,
        &mut plane,
        at(2),
        "2",
        vec![("command", "statistics".into())],
    );
    let cur = s
        .get("statistics")
        .unwrap()
        .get("currentstatistics")
        .unwrap();
    let get = |k: &str| cur.get(k).and_then(Value::as_int).unwrap();
    assert_eq!(
        (get("packetrate"), get("byterate"), get("errorrate")),
        (500, 86_000, 5)
    );
    let tot = s.get("statistics").unwrap().get("totalstatistics").unwrap();
    assert_eq!(tot.get("packetsrelayed").and_then(Value::as_int), Some(500));
    // A removed call's packets stay in the totals and do not count as a
    // negative rate.
    let d = send(
        &mut node,
        &mut plane,
        at(2),
        "3",
        vec![
            ("command", "delete".into()),
            ("call-id", "c".into()),
            ("delete-delay", 0u64.into()),
        ],
    );
    assert_eq!(result(&d), "ok");
    node.tick(at(3), &mut plane);
    let s = send(
        &mut node,
        &mut plane,
        at(3),
        "4",
        vec![("command", "statistics".into())],
    );
    let cur = s
        .get("statistics")
        .unwrap()
        .get("currentstatistics")
        .unwrap();
    assert_eq!(cur.get("packetrate").and_then(Value::as_int), Some(0));
    let tot = s.get("statistics").unwrap().get("totalstatistics").unwrap();
    assert_eq!(tot.get("packetsrelayed").and_then(Value::as_int), Some(500));
}

fn tunnel_dict(side: Option<&str>, address: Option<&str>, flows: &[(u32, u32)]) -> Value {
    let mut items: Vec<(&str, Value)> = Vec::new();
    if let Some(s) = side {
        items.push(("side", s.into()));
    }
    if let Some(a) = address {
        items.push(("address", a.into()));
    }
    items.push((
        "flows",
        Value::List(
            flows
                .iter()
                .map(|&(r, c)| Value::List(vec![r.into(), c.into()]))
                .collect(),
        ),
    ));
    dict(items)
}

fn reply_flows(v: &Value) -> Vec<(u32, u32)> {
    v.get("tunnel")
        .and_then(|t| t.get("flows"))
        .and_then(Value::as_list)
        .expect("tunnel flows in reply")
        .iter()
        .map(|p| {
            let p = p.as_list().unwrap();
            (p[0].as_int().unwrap() as u32, p[1].as_int().unwrap() as u32)
        })
        .collect()
}

// Long because it follows one tunnelled call through offer, answer and media, checking the plane at each step.
#[test]
fn a_tunnel_answerer_leg_has_no_sockets_and_the_caller_sends_into_the_tunnel() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    let r = send(
        &mut node,
        &mut plane,
        at(0),
        "1",
        vec![
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("sdp", sdp("10.0.0.1", 4000).into()),
            ("tunnel", tunnel_dict(Some("answerer"), None, &[])),
        ],
    );
    assert_eq!(result(&r), "ok", "{r:?}");
    // Only the caller's side took ports.
    assert_eq!(plane.opened, 1);
    let ours = reply_flows(&r);
    let call = node.call("c").unwrap();
    let (caller, tunnel_leg) = (&call.legs[0].streams[0], &call.legs[1].streams[0]);
    assert!(tunnel_leg.local.socketless);
    assert_eq!(
        ours,
        vec![(tunnel_leg.local.rtp.flow.0, tunnel_leg.local.rtcp.flow.0)]
    );
    assert_eq!(
        r.get("tunnel").unwrap().get("address").unwrap().as_str(),
        Some("127.0.0.1:7000")
    );
    // Peer end unknown: the caller's media goes nowhere yet.
    assert!(plane.spec(caller.local.rtp.flow).rtp_outputs.is_empty());
    // The tunnel leg's flows forward to the caller and learn nothing.
    let t = plane.spec(tunnel_leg.local.rtp.flow);
    assert_eq!(t.rtp_outputs, vec![Output::Peer(caller.local.rtp.flow)]);
    assert_eq!(t.latching, Latching::Asymmetric);
    assert_eq!(t.peer, None);

    // The controller names the far end: the caller's media goes into it.
    let r = send(
        &mut node,
        &mut plane,
        at(1),
        "2",
        vec![
            ("command", "update tunnel".into()),
            ("call-id", "c".into()),
            (
                "tunnel",
                tunnel_dict(None, Some("10.9.9.9:7001"), &[(41, 42)]),
            ),
        ],
    );
    assert_eq!(result(&r), "ok", "{r:?}");
    let call = node.call("c").unwrap();
    let caller = &call.legs[0].streams[0];
    let spec = plane.spec(caller.local.rtp.flow);
    assert_eq!(
        spec.rtp_outputs,
        vec![Output::Tunnel {
            via: FlowId(1),
            dest: addr("10.9.9.9:7001"),
            flow: 41
        }]
    );
    assert_eq!(
        spec.rtcp_outputs,
        vec![Output::Tunnel {
            via: FlowId(1),
            dest: addr("10.9.9.9:7001"),
            flow: 42
        }]
    );
    // Deleting frees the caller's ports only.
    send(
        &mut node,
        &mut plane,
        at(2),
        "3",
        vec![
            ("command", "delete".into()),
            ("call-id", "c".into()),
            ("delete-delay", "0".into()),
        ],
    );
    assert_eq!(plane.closed.len(), 1);
    assert_eq!(plane.pool.in_use(), 0);
}

#[test]
fn a_tunnel_offerer_leg_gets_the_peer_in_the_offer_and_the_sdp_names_real_ports() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    let r = send(
        &mut node,
        &mut plane,
        at(0),
        "1",
        vec![
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("sdp", sdp("10.0.0.1", 4000).into()),
            (
                "tunnel",
                tunnel_dict(Some("offerer"), Some("10.9.9.9:7000"), &[(7, 8)]),
            ),
        ],
    );
    assert_eq!(result(&r), "ok", "{r:?}");
    let call = node.call("c").unwrap();
    let callee_side = &call.legs[1].streams[0];
    assert!(!callee_side.local.socketless);
    let sdp_out = r.get("sdp").unwrap().as_str().unwrap();
    assert!(
        sdp_out.contains(&format!("m=audio {} ", callee_side.local.rtp.port)),
        "{sdp_out}"
    );
    answer(&mut node, &mut plane, at(1), "2", "c");
    let call = node.call("c").unwrap();
    let callee_side = &call.legs[1].streams[0];
    let spec = plane.spec(callee_side.local.rtp.flow);
    assert_eq!(spec.peer, Some(addr("10.0.0.2:5000")));
    assert_eq!(
        spec.rtp_outputs,
        vec![Output::Tunnel {
            via: FlowId(1),
            dest: addr("10.9.9.9:7000"),
            flow: 7
        }]
    );
}

#[test]
fn block_media_stops_one_party_and_unblock_restores_it() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer(&mut node, &mut plane, at(0), "1", "c");
    answer(&mut node, &mut plane, at(1), "2", "c");
    let block = |node: &mut Node, plane: &mut FakePlane, cookie: &str, cmd: &str, tag: &str| {
        send(
            node,
            plane,
            at(2),
            cookie,
            vec![
                ("command", cmd.into()),
                ("call-id", "c".into()),
                ("from-tag", tag.into()),
            ],
        )
    };
    assert_eq!(
        result(&block(&mut node, &mut plane, "3", "block media", "a")),
        "ok"
    );
    let call = node.call("c").unwrap();
    let (a, b) = (
        call.legs[0].streams[0].local.clone(),
        call.legs[1].streams[0].local.clone(),
    );
    assert!(plane.spec(a.rtp.flow).rtp_outputs.is_empty());
    assert_eq!(
        plane.spec(b.rtp.flow).rtp_outputs,
        vec![Output::Peer(a.rtp.flow)]
    );
    let r = block(&mut node, &mut plane, "4", "block media", "nobody");
    assert_eq!(reason(&r), "Unknown tag");
    block(&mut node, &mut plane, "5", "unblock media", "a");
    assert_eq!(
        plane.spec(a.rtp.flow).rtp_outputs,
        vec![Output::Peer(b.rtp.flow)]
    );
}

#[test]
fn recording_forks_every_stream_to_the_recorder_until_stopped() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer(&mut node, &mut plane, at(0), "1", "c");
    answer(&mut node, &mut plane, at(1), "2", "c");
    let cmd = |node: &mut Node, plane: &mut FakePlane, cookie: &str, c: &str| {
        send(
            node,
            plane,
            at(2),
            cookie,
            vec![("command", c.into()), ("call-id", "c".into())],
        )
    };
    assert_eq!(
        result(&cmd(&mut node, &mut plane, "3", "start recording")),
        "ok"
    );
    assert_eq!(plane.recordings.len(), 2);
    let call = node.call("c").unwrap();
    let (a, b) = (
        call.legs[0].streams[0].local.clone(),
        call.legs[1].streams[0].local.clone(),
    );
    let spec = plane.spec(a.rtp.flow);
    assert_eq!(spec.rtp_outputs.len(), 2);
    assert_eq!(spec.rtp_outputs[0], Output::Peer(b.rtp.flow));
    assert!(matches!(spec.rtp_outputs[1], Output::Fixed { via, .. } if via == a.rtp.flow));
    // Each recording hears only the socket its copies leave from.
    let mut sources: Vec<_> = plane.recordings.values().map(|r| r.3).collect();
    sources.sort();
    let mut sockets = [(a.ip, a.rtp.port), (b.ip, b.rtp.port)].map(SocketAddr::from);
    sockets.sort();
    assert_eq!(sources, sockets);
    // Twice is once.
    cmd(&mut node, &mut plane, "4", "start recording");
    assert_eq!(plane.recordings.len(), 2);
    cmd(&mut node, &mut plane, "5", "stop recording");
    assert!(plane.recordings.is_empty());
    assert_eq!(plane.spec(a.rtp.flow).rtp_outputs.len(), 1);
}

#[test]
fn a_branch_through_a_tunnel_also_records_locally_and_stops_cleanly() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer(&mut node, &mut plane, at(0), "1", "c");
    answer(&mut node, &mut plane, at(1), "2", "c");
    let r = send(
        &mut node,
        &mut plane,
        at(2),
        "3",
        vec![
            ("command", "start branch".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("branch", "rec1".into()),
            ("flags", Value::List(vec!["record".into()])),
            (
                "tunnel",
                tunnel_dict(None, Some("10.9.9.9:7000"), &[(70, 71)]),
            ),
        ],
    );
    assert_eq!(result(&r), "ok", "{r:?}");
    assert_eq!(plane.recordings.len(), 1);
    let call = node.call("c").unwrap();
    let a = call.legs[0].streams[0].local.clone();
    let outs = &plane.spec(a.rtp.flow).rtp_outputs;
    assert_eq!(outs.len(), 3, "{outs:?}");
    assert_eq!(
        outs[1],
        Output::Tunnel {
            via: FlowId(1),
            dest: addr("10.9.9.9:7000"),
            flow: 70
        }
    );
    // A second branch of the same name is refused; an unknown call too.
    let again = send(
        &mut node,
        &mut plane,
        at(2),
        "4",
        vec![
            ("command", "start branch".into()),
            ("call-id", "c".into()),
            ("branch", "rec1".into()),
            ("destination", "10.1.1.1:9000".into()),
        ],
    );
    assert_eq!(reason(&again), "Branch exists");
    let stop = send(
        &mut node,
        &mut plane,
        at(3),
        "5",
        vec![
            ("command", "stop branch".into()),
            ("call-id", "c".into()),
            ("branch", "rec1".into()),
        ],
    );
    assert_eq!(result(&stop), "ok");
    assert!(plane.recordings.is_empty());
    assert_eq!(plane.spec(a.rtp.flow).rtp_outputs.len(), 1);
}

#[test]
fn a_restarted_node_takes_its_calls_back_on_the_same_ports_and_flows() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    node.keep_changes();
    send(
        &mut node,
        &mut plane,
        at(0),
        "1",
        vec![
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("sdp", sdp("10.0.0.1", 4000).into()),
            (
                "tunnel",
                tunnel_dict(Some("offerer"), Some("10.9.9.9:7000"), &[(7, 8)]),
            ),
        ],
    );
    answer(&mut node, &mut plane, at(1), "2", "c");
    offer(&mut node, &mut plane, at(1), "3", "d");
    let changes = node.take_changes();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(node.take_changes().is_empty(), "taken once");
    let before = node.call("c").unwrap().flow_specs();

    // Through JSON, as the store keeps them, into a fresh node and plane.
    let records: Vec<persist::CallRecord> = changes
        .iter()
        .map(|(_, r)| {
            let json = serde_json::to_string(r.as_ref().unwrap()).unwrap();
            serde_json::from_str(&json).unwrap()
        })
        .collect();
    let mut plane2 = FakePlane::new(10);
    let mut node2 = Node::new(config(), at(100));
    node2.keep_changes();
    for r in &records {
        node2.restore(r, at(100), &mut plane2).unwrap();
    }
    assert_eq!(node2.call_count(), 2);
    let after = node2.call("c").unwrap().flow_specs();
    let key = |v: &[rtpmesh_flow::flow::FlowSpec]| {
        v.iter()
            .map(|s| (s.id, s.peer, s.rtp_outputs.clone(), s.rtcp_outputs.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&before), key(&after));
    let (c1, c2) = (node.call("c").unwrap(), node2.call("c").unwrap());
    assert_eq!(
        c1.legs[1].streams[0].local.rtp.port,
        c2.legs[1].streams[0].local.rtp.port
    );
    // The ports are taken in the new plane: a new call gets other ones.
    assert_eq!(plane2.pool.in_use(), 3);
    // A record whose ports are taken is refused and leaves nothing behind.
    let mut node3 = Node::new(config(), at(100));
    assert!(node3.restore(&records[0], at(100), &mut plane2).is_err());
    assert_eq!(node3.call_count(), 0);
    assert_eq!(plane2.pool.in_use(), 3);
    // A call with SRTP legs is not restored: its keys were never stored,
    // and restored plain it would send its media in the clear.
    let json = serde_json::to_string(&records[0])
        .unwrap()
        .replace("\"protocol\":\"RTP/AVP\"", "\"protocol\":\"RTP/SAVP\"");
    assert!(json.contains("RTP/SAVP"), "{json}");
    let srtp: persist::CallRecord = serde_json::from_str(&json).unwrap();
    let mut plane3 = FakePlane::new(10);
    let mut node4 = Node::new(config(), at(100));
    let e = node4.restore(&srtp, at(100), &mut plane3).unwrap_err();
    assert!(e.to_string().contains("SRTP"), "{e}");
    assert_eq!(plane3.pool.in_use(), 0);
    // Deleting reports the call gone.
    send(
        &mut node2,
        &mut plane2,
        at(101),
        "4",
        vec![
            ("command", "delete".into()),
            ("call-id", "c".into()),
            ("delete-delay", "0".into()),
        ],
    );
    let ch = node2.take_changes();
    assert!(ch.iter().any(|(id, r)| id == "c" && r.is_none()), "{ch:?}");
}

#[test]
fn a_branch_destination_whose_ports_run_past_65535_is_refused() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer(&mut node, &mut plane, at(0), "1", "c");
    let r = send(
        &mut node,
        &mut plane,
        at(1),
        "2",
        vec![
            ("command", "start branch".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("branch", "b".into()),
            ("destination", "10.0.0.9:65535".into()),
        ],
    );
    assert_eq!(reason(&r), INVALID_DESTINATION);
    assert!(node.call("c").unwrap().branches.is_empty());
}

mod limits;

#[test]
fn a_node_without_a_store_keeps_no_trace_of_ended_calls() {
    // The soak's slow RSS creep: every ended call's id was kept for a store
    // that a node without a registry never has.
    let mut plane = FakePlane::new(100);
    let mut node = Node::new(config(), at(0));
    for i in 0..50u64 {
        let id = format!("gone-{i}");
        send(
            &mut node,
            &mut plane,
            at(i),
            "o",
            vec![
                ("command", "offer".into()),
                ("call-id", id.as_str().into()),
                ("from-tag", "a".into()),
                ("sdp", "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n".into()),
            ],
        );
        send(
            &mut node,
            &mut plane,
            at(i),
            "d",
            vec![
                ("command", "delete".into()),
                ("call-id", id.as_str().into()),
                ("delete-delay", "0".into()),
            ],
        );
    }
    assert_eq!(node.call_count(), 0);
    assert!(node.gone.is_empty() && node.dirty.is_empty());
    node.keep_changes();
    send(
        &mut node,
        &mut plane,
        at(60),
        "o2",
        vec![
            ("command", "offer".into()),
            ("call-id", "kept".into()),
            ("from-tag", "a".into()),
            ("sdp", "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n".into()),
        ],
    );
    assert_eq!(
        node.take_changes().len(),
        1,
        "with a store, changes are kept"
    );
}
mod flags;
