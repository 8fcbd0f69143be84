//! The controller driving real node cores (with fake media planes)
//! in-process: what it asks each node, and what the proxy gets back.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rtpmesh_flow::flow::Output;

use super::*;
use crate::node::{Node, NodeConfig, Now};
use crate::region::{self, Origin, Query};
use crate::region::{Gateway, GatewayState, Latency, LatencySource, Region, Route};
use crate::testing::FakePlane;
use rtpmesh_ng::bencode::{self, dict, Value};

const NOW: u64 = 1_800_000_000_000;

/// Real node cores behind a fake network; nodes in `dead` never answer.
struct Fabric {
    nodes: HashMap<String, Mutex<(Node, FakePlane)>>,
    dead: Mutex<HashSet<String>>,
    asked: Mutex<Vec<(String, String)>>,
}

impl NodeLink for &Fabric {
    fn request(&self, node: &NodeInfo, body: &Value) -> Result<Value, LinkError> {
        let cmd = body
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        self.asked.lock().unwrap().push((node.id.clone(), cmd));
        if self.dead.lock().unwrap().contains(&node.id) {
            return Err(LinkError::Timeout(node.id.clone()));
        }
        let mut g = self.nodes[&node.id].lock().unwrap();
        let (n, plane) = &mut *g;
        static COOKIE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let c = COOKIE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut d = format!("c{c} ").into_bytes();
        body.encode_into(&mut d);
        let now = Now {
            ms: 1000,
            unix: NOW / 1000,
        };
        let reply = n.handle(&d, now, plane).expect("a reply");
        // What a real node could not send must not be relied on here.
        assert!(reply.len() <= ng::MAX_DATAGRAM, "{} bytes", reply.len());
        let (_, rest) = ng::split_datagram(&reply).unwrap();
        Ok(bencode::decode(rest).unwrap())
    }
}

fn node_info(id: &str, region: &str, tunnel: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        region: region.into(),
        ng: "127.0.0.1:2223".parse().unwrap(),
        tunnel: tunnel.parse().unwrap(),
        workers: 1,
        capacity: 100,
        load: 0,
        draining: false,
        last_seen_ms: NOW,
    }
}

/// r1 (nodes a1, a2; gateway gw1 at 10.0.1.5), r2 (node b1; gateway gw2
/// at 10.0.2.5, through which bob is registered), 10 ms apart.
fn fabric() -> (Fabric, Vec<Change>) {
    let mut nodes = HashMap::new();
    let mut changes = vec![
        Change::AddRegion(Region { name: "r1".into() }),
        Change::AddRegion(Region { name: "r2".into() }),
    ];
    for (id, region, tunnel) in [
        ("a1", "r1", "10.0.1.1:7000"),
        ("a2", "r1", "10.0.1.2:7000"),
        ("b1", "r2", "10.0.2.1:7000"),
    ] {
        let cfg = NodeConfig {
            delete_delay: Duration::ZERO,
            media_timeout: Duration::from_secs(60),
            max_sessions: 0,
        };
        let node = Node::new(
            cfg,
            Now {
                ms: 1,
                unix: NOW / 1000,
            },
        );
        let plane = FakePlane::with_tunnel(1500, tunnel.parse().unwrap());
        nodes.insert(id.to_owned(), Mutex::new((node, plane)));
        changes.push(Change::RegisterNode(node_info(id, region, tunnel)));
    }
    for (id, region, sip) in [
        ("gw1", "r1", "10.0.1.5:5060"),
        ("gw2", "r2", "10.0.2.5:5060"),
    ] {
        changes.push(Change::AddGateway(Gateway {
            id: id.into(),
            region: region.into(),
            sip: sip.into(),
            capacity: 0,
            load: 0,
            state: GatewayState::Up,
        }));
    }
    changes.push(Change::RegisterRoute(Route {
        endpoint: "bob".into(),
        gateway: "gw2".into(),
        expires_unix_ms: NOW + 3_600_000,
    }));
    changes.push(Change::RegisterRoute(Route {
        endpoint: "carol".into(),
        gateway: "gw1".into(),
        expires_unix_ms: NOW + 3_600_000,
    }));
    changes.push(Change::SetLatency(Latency {
        a: "r1".into(),
        b: "r2".into(),
        source: LatencySource::Configured,
        ms: 10,
    }));
    let f = Fabric {
        nodes,
        dead: Mutex::default(),
        asked: Mutex::default(),
    };
    (f, changes)
}

fn controller<'a>(f: &'a Fabric, changes: &[Change]) -> Controller<&'a Fabric> {
    let c = Controller::new(f, ControllerConfig::default());
    for ch in changes {
        c.apply(ch);
    }
    c
}

fn sdp(ip: &str, port: u16) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
}

fn offer(callee: &str) -> Value {
    dict([
        ("command", "offer".into()),
        ("call-id", "call-1".into()),
        ("from-tag", "alice-tag".into()),
        ("sdp", sdp("192.168.1.10", 4000).into()),
        (
            "received-from",
            Value::List(vec!["IP4".into(), "10.0.1.5".into()]),
        ),
        ("callee", callee.into()),
    ])
}

fn answer() -> Value {
    dict([
        ("command", "answer".into()),
        ("call-id", "call-1".into()),
        ("from-tag", "alice-tag".into()),
        ("to-tag", "bob-tag".into()),
        ("sdp", sdp("192.168.2.20", 5000).into()),
    ])
}

fn result(v: &Value) -> &str {
    v.get("result").and_then(Value::as_str).unwrap_or("")
}

fn with_node<T>(f: &Fabric, id: &str, g: impl FnOnce(&Node, &FakePlane) -> T) -> T {
    let l = f.nodes[id].lock().unwrap();
    g(&l.0, &l.1)
}

#[test]
fn a_same_region_call_uses_one_node_and_the_reply_names_the_gateway() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    let r = c.handle(&offer("carol"), NOW);
    assert_eq!(result(&r), "ok", "{r:?}");
    let route = r.get("route").expect("route in reply");
    assert_eq!(route.get("gateway").and_then(Value::as_str), Some("gw1"));
    assert_eq!(
        route.get("sip").and_then(Value::as_str),
        Some("10.0.1.5:5060")
    );
    assert!(r.get("tunnel").is_none());
    let holders: Vec<&str> = ["a1", "a2", "b1"]
        .into_iter()
        .filter(|n| with_node(&f, n, |node, _| node.call("call-1").is_some()))
        .collect();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert!(holders[0].starts_with('a'));
    assert!(c.explain_call("call-1").unwrap().contains("gw1"));
}

// Long because it follows one call from offer to delete, checking both nodes and the tunnel at each step.
#[test]
fn a_cross_region_call_joins_a_caller_node_and_a_callee_node_by_a_tunnel() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    let r = c.handle(&offer("bob"), NOW);
    assert_eq!(result(&r), "ok", "{r:?}");
    assert!(r.get("tunnel").is_none(), "tunnel details stay internal");
    let route = r.get("route").unwrap();
    assert_eq!(route.get("gateway").and_then(Value::as_str), Some("gw2"));
    assert_eq!(route.get("callee-node").and_then(Value::as_str), Some("b1"));
    let a = route
        .get("node")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    // The SDP for bob names b1's callee-facing port.
    let out = r.get("sdp").and_then(Value::as_str).unwrap().to_owned();
    let b_port = with_node(&f, "b1", |n, _| {
        n.call("call-1").unwrap().legs[1].streams[0].local.rtp.port
    });
    assert!(out.contains(&format!("m=audio {b_port} ")), "{out}");

    let r = c.handle(&answer(), NOW);
    assert_eq!(result(&r), "ok", "{r:?}");
    let out = r.get("sdp").and_then(Value::as_str).unwrap().to_owned();
    let a_port = with_node(&f, &a, |n, _| {
        n.call("call-1").unwrap().legs[0].streams[0].local.rtp.port
    });
    assert!(out.contains(&format!("m=audio {a_port} ")), "{out}");

    // Media: alice → a (caller leg) → tunnel → b1's tunnel leg → bob, and back.
    let (a_caller_rtp, a_tunnel_rtp) = with_node(&f, &a, |n, _| {
        let call = n.call("call-1").unwrap();
        (
            call.legs[0].streams[0].local.rtp.flow,
            call.legs[1].streams[0].local.rtp.flow,
        )
    });
    let (b_tunnel_rtp, b_callee_rtp) = with_node(&f, "b1", |n, _| {
        let call = n.call("call-1").unwrap();
        assert!(call.legs[0].streams[0].local.socketless);
        (
            call.legs[0].streams[0].local.rtp.flow,
            call.legs[1].streams[0].local.rtp.flow,
        )
    });
    let a_tunnel: SocketAddr = if a == "a1" {
        "10.0.1.1:7000"
    } else {
        "10.0.1.2:7000"
    }
    .parse()
    .unwrap();
    with_node(&f, &a, |_, p| {
        assert_eq!(
            p.spec(a_caller_rtp).rtp_outputs,
            vec![Output::Tunnel {
                via: rtpmesh_flow::flow::FlowId(1),
                dest: "10.0.2.1:7000".parse().unwrap(),
                flow: b_tunnel_rtp.0,
            }]
        );
        assert_eq!(
            p.spec(a_caller_rtp).peer,
            Some("192.168.1.10:4000".parse().unwrap())
        );
    });
    with_node(&f, "b1", |_, p| {
        assert_eq!(
            p.spec(b_callee_rtp).rtp_outputs,
            vec![Output::Tunnel {
                via: rtpmesh_flow::flow::FlowId(1),
                dest: a_tunnel,
                flow: a_tunnel_rtp.0,
            }]
        );
        assert_eq!(
            p.spec(b_callee_rtp).peer,
            Some("192.168.2.20:5000".parse().unwrap())
        );
    });

    // Delete reaches both nodes.
    let del = dict([
        ("command", "delete".into()),
        ("call-id", "call-1".into()),
        ("delete-delay", 0u64.into()),
    ]);
    assert_eq!(result(&c.handle(&del, NOW)), "ok");
    for n in [a.as_str(), "b1"] {
        assert!(
            with_node(&f, n, |node, _| node.call("call-1").is_none()),
            "{n}"
        );
    }
    assert_eq!(c.call_count(), 0);
}

#[test]
fn a_node_that_does_not_answer_is_passed_over_until_it_reports_again() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    f.dead.lock().unwrap().insert("a1".into());
    f.dead.lock().unwrap().insert("a2".into());
    // Both caller-region nodes silent: the offer fails, not hangs.
    let r = c.handle(&offer("carol"), NOW);
    assert_eq!(result(&r), "error", "{r:?}");
    f.dead.lock().unwrap().remove("a2");
    let r = c.handle(&offer("carol"), NOW);
    // a1 and a2 are suspects now; nobody reported: still refused.
    assert_ne!(result(&r), "ok");
    c.apply(&Change::Heartbeat {
        node: "a2".into(),
        load: 0,
        capacity: 100,
        draining: false,
        at_ms: NOW + 1,
    });
    let r = c.handle(&offer("carol"), NOW + 1);
    assert_eq!(result(&r), "ok", "{r:?}");
    assert!(with_node(&f, "a2", |n, _| n.call("call-1").is_some()));
    assert!(!f
        .asked
        .lock()
        .unwrap()
        .iter()
        .skip(3)
        .any(|(n, _)| n == "a1"));
}

#[test]
fn every_node_draining_answers_load_limit() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    for n in ["a1", "a2"] {
        c.apply(&Change::SetDraining {
            node: n.into(),
            draining: true,
        });
    }
    let mut req = offer("carol");
    if let Value::Dict(m) = &mut req {
        m.insert(b"supports".to_vec(), Value::List(vec!["load limit".into()]));
    }
    let r = c.handle(&req, NOW);
    assert_eq!(result(&r), "load limit", "{r:?}");
    assert!(f.asked.lock().unwrap().is_empty());
}

/// The controller's own replies, typed; a placed call's offer reply is the
/// node's, passed on with the route and without the tunnel.
#[test]
fn the_controller_answers_in_typed_replies() {
    use rtpmesh_ng::ng::{reason, Relayed, Reply, Statistics};
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    let cmd = |name: &str| dict([("command", name.into()), ("call-id", "x".into())]);
    assert_eq!(c.reply(&cmd("ping"), NOW), Reply::Pong);
    assert_eq!(
        c.reply(&cmd("delete"), NOW),
        Reply::ok_with_warning(reason::DELETE_NOT_FOUND)
    );
    assert_eq!(
        c.reply(&cmd("query"), NOW),
        Reply::error(reason::UNKNOWN_CALL_ID)
    );
    assert_eq!(
        c.reply(&cmd("start branch"), NOW),
        Reply::error(reason::NO_BRANCH)
    );
    let Reply::Relayed(Relayed {
        reply,
        route: Some(route),
        branch_node: None,
    }) = c.reply(&offer("bob"), NOW)
    else {
        panic!("a relayed reply with a route");
    };
    assert_eq!(
        (route.endpoint.as_str(), route.node.as_str()),
        ("bob", "a1")
    );
    assert!(reply.get("tunnel").is_none());
    assert_eq!(result(&reply), "ok");
    assert_eq!(
        c.reply(&cmd("list"), NOW),
        Reply::Calls(vec!["call-1".into()])
    );
    assert_eq!(
        c.reply(&cmd("statistics"), NOW),
        Reply::Statistics(Statistics::new().section(
            "currentstatistics",
            [("sessionsown", 1), ("sessionstotal", 1), ("nodes", 3)]
        ))
    );
}

#[test]
fn an_unknown_callee_is_an_error_and_asks_no_node() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    let r = c.handle(&offer("nobody"), NOW);
    assert_eq!(result(&r), "error");
    let why = r.get("error-reason").and_then(Value::as_str).unwrap();
    assert!(why.starts_with("No route"), "{why}");
    assert!(f.asked.lock().unwrap().is_empty());
}

#[test]
fn a_branch_to_another_region_goes_through_a_node_there_and_records_locally() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    assert_eq!(result(&c.handle(&offer("carol"), NOW)), "ok");
    let a = ["a1", "a2"]
        .into_iter()
        .find(|n| with_node(&f, n, |node, _| node.call("call-1").is_some()))
        .unwrap();
    let branch = dict([
        ("command", "start branch".into()),
        ("call-id", "call-1".into()),
        ("from-tag", "alice-tag".into()),
        ("branch", "rec".into()),
        ("destination", "10.0.2.99:6000".into()),
        ("region", "r2".into()),
    ]);
    let r = c.handle(&branch, NOW);
    assert_eq!(result(&r), "ok", "{r:?}");
    assert_eq!(r.get("branch-node").and_then(Value::as_str), Some("b1"));
    // b1 holds the branch's far end, sending to the resource.
    let (b_rtp, resource_peer) = with_node(&f, "b1", |n, p| {
        let call = n.call("call-1~branch~rec").expect("branch call on b1");
        let s = &call.legs[1].streams[0];
        (
            call.legs[0].streams[0].local.rtp.flow,
            p.spec(s.local.rtp.flow).peer,
        )
    });
    assert_eq!(resource_peer, Some("10.0.2.99:6000".parse().unwrap()));
    // The caller's node tunnels the leg to b1 and records it.
    with_node(&f, a, |n, p| {
        let call = n.call("call-1").unwrap();
        let outs = &p.spec(call.legs[0].streams[0].local.rtp.flow).rtp_outputs;
        assert!(
            outs.contains(&Output::Tunnel {
                via: rtpmesh_flow::flow::FlowId(1),
                dest: "10.0.2.1:7000".parse().unwrap(),
                flow: b_rtp.0,
            }),
            "{outs:?}"
        );
        assert_eq!(p.recordings.len(), 1);
    });
    let stop = dict([
        ("command", "stop branch".into()),
        ("call-id", "call-1".into()),
        ("branch", "rec".into()),
    ]);
    assert_eq!(result(&c.handle(&stop, NOW)), "ok");
    assert!(with_node(&f, "b1", |n, _| n
        .call("call-1~branch~rec")
        .is_none()));
    with_node(&f, a, |_, p| assert!(p.recordings.is_empty()));
}

/// The offer exactly as Kamailio 5.6's rtpengine module encodes
/// `rtpengine_offer("replace-origin callee=$rU gateway=gw2 ICE=remove
/// RTP/AVP")` (captured from a real Kamailio): `key=value` flags arrive as
/// dictionary keys, bare words in `flags`/`replace`.
#[test]
fn kamailio_key_value_flags_arrive_as_keys_and_pick_the_route() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    let sdp = sdp("192.168.1.10", 4000);
    let wire = format!(
        "d8:supportsl10:load limite3:sdp{}:{sdp}6:callee3:bob7:gateway3:gw2\
         3:ICE6:remove7:replacel6:origine18:transport-protocol7:RTP/AVP\
         7:call-id6:call-113:received-froml3:IP48:10.0.1.5e8:from-tag9:alice-tag\
         7:command5:offere",
        sdp.len()
    );
    let body = bencode::decode(wire.as_bytes()).unwrap();
    let r = c.handle(&body, NOW);
    assert_eq!(result(&r), "ok", "{r:?}");
    // `gateway=gw2` wins over received-from (gw1's address): the caller is
    // in r2 with bob, so one node there.
    let route = r.get("route").unwrap();
    assert_eq!(route.get("gateway").and_then(Value::as_str), Some("gw2"));
    assert_eq!(route.get("node").and_then(Value::as_str), Some("b1"));
    assert_eq!(route.get("callee-node").and_then(Value::as_str), Some("b1"));
}

fn bob_from_gw1() -> Query {
    Query {
        origin: Origin::Gateway("gw1".into()),
        endpoint: Some("bob".into()),
    }
}

fn holder(f: &Fabric) -> Vec<&'static str> {
    ["a1", "a2", "b1"]
        .into_iter()
        .filter(|n| with_node(f, n, |node, _| node.call("call-1").is_some()))
        .collect()
}

#[test]
fn a_pinned_decision_places_the_offer_on_exactly_its_nodes() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    let mut d = c.explain(&bob_from_gw1(), NOW).unwrap();
    // Selection alone picks a1 (equal loads, ties by id); the pin says a2.
    assert_eq!(d.node, "a1");
    d.node = "a2".into();
    c.pin("call-1", d, NOW);
    assert_eq!(c.pin_count(), 1);
    let r = c.handle(&offer("bob"), NOW + 1_000);
    assert_eq!(result(&r), "ok", "{r:?}");
    let route = r.get("route").unwrap();
    assert_eq!(route.get("node").and_then(Value::as_str), Some("a2"));
    assert_eq!(route.get("gateway").and_then(Value::as_str), Some("gw2"));
    assert_eq!(holder(&f), ["a2", "b1"]);
    assert_eq!(c.pin_count(), 0, "the offer used the pin up");
    assert!(c.explain_call("call-1").unwrap().contains("pinned"));
}

#[test]
fn a_stale_or_unusable_or_mismatched_pin_is_ignored() {
    // Expired: selection runs again.
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    let mut d = c.explain(&bob_from_gw1(), NOW).unwrap();
    d.node = "a2".into();
    c.pin("call-1", d.clone(), NOW - PIN_TTL_MS);
    assert_eq!(result(&c.handle(&offer("bob"), NOW)), "ok");
    assert_eq!(holder(&f), ["a1", "b1"]);
    assert_eq!(c.pin_count(), 0);

    // Its node is draining now.
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    c.pin("call-1", d.clone(), NOW);
    c.apply(&Change::SetDraining {
        node: "a2".into(),
        draining: true,
    });
    assert_eq!(result(&c.handle(&offer("bob"), NOW)), "ok");
    assert_eq!(holder(&f), ["a1", "b1"]);

    // The offer names another callee (carol is at gw1: one node).
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    c.pin("call-1", d.clone(), NOW);
    let r = c.handle(&offer("carol"), NOW);
    assert_eq!(
        r.get("route")
            .and_then(|r| r.get("gateway"))
            .and_then(Value::as_str),
        Some("gw1")
    );
    assert_eq!(holder(&f), ["a1"]);

    // A delete before any offer (the call failed first) drops the pin.
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    c.pin("call-1", d, NOW);
    let del = dict([("command", "delete".into()), ("call-id", "call-1".into())]);
    c.handle(&del, NOW);
    assert_eq!(c.pin_count(), 0);
    assert!(f.asked.lock().unwrap().is_empty());
}

#[test]
fn calls_their_node_no_longer_has_are_forgotten_after_a_grace_period() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    assert_eq!(result(&c.handle(&offer("bob"), NOW)), "ok");
    assert_eq!(c.call_count(), 1);
    // Young calls are left alone; old ones the node still has stay.
    assert_eq!(c.sweep(NOW + 1_000, 60_000), 0);
    assert_eq!(c.sweep(NOW + 120_000, 60_000), 0);
    assert_eq!(c.call_count(), 1);
    // The caller's node dropped it (a media timeout, say): forgotten.
    let a = ["a1", "a2"]
        .into_iter()
        .find(|n| with_node(&f, n, |node, _| node.call("call-1").is_some()))
        .unwrap();
    {
        let mut g = f.nodes[a].lock().unwrap();
        let (n, plane) = &mut *g;
        let mut d = b"sweep ".to_vec();
        dict([
            ("command", "delete".into()),
            ("call-id", "call-1".into()),
            ("delete-delay", 0u64.into()),
        ])
        .encode_into(&mut d);
        n.handle(
            &d,
            Now {
                ms: 2000,
                unix: NOW / 1000,
            },
            plane,
        );
    }
    // A node that does not answer tells nothing: the call stays.
    f.dead.lock().unwrap().insert(a.to_owned());
    assert_eq!(c.sweep(NOW + 120_000, 60_000), 0);
    f.dead.lock().unwrap().remove(a);
    assert_eq!(c.sweep(NOW + 120_000, 60_000), 1);
    assert_eq!(c.call_count(), 0);
}

#[test]
fn the_sweep_pages_through_a_node_with_more_calls_than_one_reply_holds() {
    // 700 SIP-length Call-IDs are ~73 KB of `list`: more than a datagram.
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    let ids: Vec<String> = (0..700)
        .map(|i| format!("{i:04}{}", "@".repeat(96)))
        .collect();
    for id in &ids {
        let mut o = offer("carol");
        if let Value::Dict(d) = &mut o {
            d.insert(b"call-id".to_vec(), id.as_str().into());
        }
        assert_eq!(result(&c.handle(&o, NOW)), "ok");
    }
    assert_eq!(c.sweep(NOW + 120_000, 60_000), 0, "every call is held");
    let lists = f
        .asked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, c)| c == "list")
        .count();
    assert!(lists >= 3, "{lists} list requests: paged");
    // Calls past the first page that end on their node are forgotten.
    let ended = &ids[650..];
    for id in ended {
        let node = ["a1", "a2"]
            .into_iter()
            .find(|n| with_node(&f, n, |node, _| node.call(id).is_some()))
            .unwrap();
        let mut g = f.nodes[node].lock().unwrap();
        let (n, plane) = &mut *g;
        let mut d = b"end ".to_vec();
        dict([
            ("command", "delete".into()),
            ("call-id", id.as_str().into()),
            ("delete-delay", 0u64.into()),
        ])
        .encode_into(&mut d);
        n.handle(
            &d,
            Now {
                ms: 2000,
                unix: NOW / 1000,
            },
            plane,
        );
    }
    assert_eq!(c.sweep(NOW + 120_000, 60_000), ended.len());
    assert_eq!(c.call_count(), 650);
}

#[test]
fn the_controllers_list_pages_like_a_nodes() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    for id in ["c", "a", "b"] {
        let mut o = offer("carol");
        if let Value::Dict(d) = &mut o {
            d.insert(b"call-id".to_vec(), id.into());
        }
        assert_eq!(result(&c.handle(&o, NOW)), "ok");
    }
    let list = |items: Vec<(&str, Value)>| c.reply(&dict(items), NOW);
    assert_eq!(
        list(vec![("command", "list".into()), ("after", "a".into())]),
        Reply::Calls(vec!["b".into(), "c".into()])
    );
    assert_eq!(
        list(vec![("command", "list".into()), ("limit", 1u64.into())]),
        Reply::Calls(vec!["a".into()])
    );
}

#[test]
fn a_restarted_controller_still_knows_which_nodes_carry_each_call() {
    let (f, ch) = fabric();
    let store: Arc<dyn Store> = Arc::new(region::store::MemoryStore::new());
    let first = controller(&f, &ch).with_journal(store.clone(), "ctl-1");
    assert_eq!(result(&first.handle(&offer("bob"), NOW)), "ok");
    drop(first);
    // A new process: same journal, same name.
    let second = controller(&f, &ch).with_journal(store.clone(), "ctl-1");
    assert_eq!(second.recover(), 1);
    let r = second.handle(&answer(), NOW);
    assert_eq!(result(&r), "ok", "{r:?}");
    assert_eq!(
        r.get("route")
            .and_then(|r| r.get("gateway"))
            .and_then(Value::as_str),
        Some("gw2")
    );
    let del = dict([
        ("command", "delete".into()),
        ("call-id", "call-1".into()),
        ("delete-delay", 0u64.into()),
    ]);
    assert_eq!(result(&second.handle(&del, NOW)), "ok");
    assert!(with_node(&f, "b1", |n, _| n.call("call-1").is_none()));
    // Deleted calls leave the journal too; another name sees nothing.
    let third = controller(&f, &ch).with_journal(store.clone(), "ctl-1");
    assert_eq!(third.recover(), 0);
    let other = controller(&f, &ch).with_journal(store, "ctl-2");
    assert_eq!(other.recover(), 0);
}

#[test]
fn a_rtpmesh_key_of_the_wrong_type_is_an_error_not_a_missing_key() {
    let (f, ch) = fabric();
    let c = controller(&f, &ch);
    let mut req = offer("bob");
    if let Value::Dict(m) = &mut req {
        m.insert(b"callee".to_vec(), Value::Int(7));
    }
    let r = c.handle(&req, NOW);
    assert_eq!(
        r.get("error-reason").and_then(Value::as_str),
        Some("Invalid value for key \"callee\": expected a string")
    );
    assert!(f.asked.lock().unwrap().is_empty(), "no node was asked");
}
