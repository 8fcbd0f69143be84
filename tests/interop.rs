//! Interop: Kamailio's stock `rtpengine` module and two sipp instances drive
//! a real rtpmesh node end to end on loopback, the way a deployment that
//! replaces rtpengine would. Kamailio (tests/interop/kamailio.cfg) calls
//! rtpengine_offer / rtpengine_answer / rtpengine_delete on INVITE, 200 OK
//! and BYE; a sipp UAC plays one second of PCMU RTP at the address the answer
//! names; a sipp UAS echoes every RTP packet back (`-rtp_echo`). So media
//! goes UAC -> rtpmesh -> UAS -> rtpmesh -> UAC.
//!
//! Needs `kamailio`, its rtpengine.so and `sipp`: scripts/install-test-deps.sh
//! installs them. sipp's play_pcap_audio sends from a raw socket, so the test
//! needs CAP_NET_RAW (CI runs as root). Missing tools fail the test; they
//! never skip it.

mod common;
#[path = "interop/sip.rs"]
mod sip;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::json::{at, int_at};
use common::pcap::count_records;
use common::process::{Process, Spec};
use common::{eventually, result, wait_for_ping, Ng, Node};
use rtpmesh_ng::bencode::Value;
use sip::{
    call_id, counter, interop_dir, require_tools, run_calls, run_calls_to, sdp_media, Calls,
    Kamailio, Scratch, Target, GRACE,
};

/// RTP packets in tests/interop/pcmu-1s.pcap, which the caller plays (1 s
/// of PCMU at 50 packets a second; checked against the file in
/// `capture_holds_what_the_counts_assume`).
const CAPTURE_PACKETS: i64 = 50;

#[test]
fn capture_holds_what_the_counts_assume() {
    let data = std::fs::read(interop_dir().join("pcmu-1s.pcap")).unwrap();
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(count_records(&data) as i64, CAPTURE_PACKETS);
}

/// Asserts that each message's SDP sends media to the node: `c=` is the
/// node's interface and the port is in its range. Returns the ports.
fn assert_sdp_points_at_node(msgs: &[&String], node: &Node, side: &str) -> Vec<u16> {
    msgs.iter()
        .map(|m| {
            let (c, port) =
                sdp_media(m).unwrap_or_else(|| panic!("{side}: no SDP in message:\n{m}"));
            assert_eq!(c, "127.0.0.1", "{side}: c= is not rtpmesh's:\n{m}");
            assert!(
                (node.ports.0..=node.ports.1).contains(&port),
                "{side}: m= port {port} is outside rtpmesh's range {:?}:\n{m}",
                node.ports
            );
            port
        })
        .collect()
}

/// Per call, the most RTP packets rtpmesh counted from each party, by
/// From/To tag.
type Seen = Arc<Mutex<HashMap<String, HashMap<String, i64>>>>;

/// Queries every call the node lists, every 50 ms, until `done`: the calls
/// are deleted at BYE (delete-delay 0), so their media counters are read
/// while they last.
fn watch_calls(node: &Node, done: Arc<AtomicBool>) -> (Seen, thread::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let mut ng = node.client();
    let out = seen.clone();
    let h = thread::spawn(move || {
        while !done.load(Ordering::SeqCst) {
            let list = ng.req(vec![("command", "list".into()), ("limit", 1000u64.into())]);
            let ids: Vec<String> = at(&list, &["calls"])
                .and_then(Value::as_list)
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            for id in ids {
                let q = ng.query(&id);
                // Deleted between `list` and `query`.
                if result(&q) != "ok" {
                    continue;
                }
                let mut seen = out.lock().unwrap();
                let call = seen.entry(id).or_default();
                for (tag, leg) in at(&q, &["tags"])
                    .and_then(Value::as_dict)
                    .into_iter()
                    .flatten()
                {
                    let packets: i64 = leg
                        .get("medias")
                        .and_then(Value::as_list)
                        .unwrap_or_default()
                        .iter()
                        .flat_map(|m| {
                            m.get("streams")
                                .and_then(Value::as_list)
                                .unwrap_or_default()
                        })
                        .map(|s| {
                            at(s, &["stats", "packets"])
                                .and_then(Value::as_int)
                                .unwrap_or(0)
                        })
                        .sum();
                    let e = call
                        .entry(String::from_utf8_lossy(tag).into_owned())
                        .or_default();
                    *e = (*e).max(packets);
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    (seen, h)
}

fn statistics(node: &Node) -> Value {
    let s = node.client().req(vec![("command", "statistics".into())]);
    assert_eq!(result(&s), "ok", "{s:?}");
    s
}

fn listed(node: &Node) -> usize {
    let l = node.client().req(vec![("command", "list".into())]);
    at(&l, &["calls"])
        .and_then(Value::as_list)
        .map_or(0, <[_]>::len)
}

/// 20 calls, 5 at a time, through Kamailio and rtpmesh: all succeed, both
/// parties see rtpmesh in the SDP, media flows both ways through it, and
/// every call is gone from the node after its BYE.
// Long: one sipp run is checked at each level in turn (SIP, SDP, hold and
// resume, media, node statistics); the checks share its outcome.
fn twenty_calls_through_kamailio(backend: &str) {
    require_tools();
    // Kamailio's plain rtpengine_delete() sends no delete-delay, so the
    // node's own default applies: 0 frees each call at its BYE.
    let node = Node::builder(backend)
        .arg("--delete-delay")
        .arg("0")
        .start();
    let scratch = Scratch::new(backend);
    let kamailio = Kamailio::start(&scratch, node.ng);

    let done = Arc::new(AtomicBool::new(false));
    let (seen, watcher) = watch_calls(&node, done.clone());
    let started = Instant::now();
    let o = run_calls(
        &scratch,
        &kamailio,
        &Calls {
            total: 20,
            concurrent: 5,
            rate: 10,
            answered: 20,
            uas: "uas",
        },
        "calls",
    );
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    eprintln!("{backend}: 20 calls in {:?}", started.elapsed());

    // SIP level: every call completed.
    assert!(
        o.uac.success(),
        "sipp UAC failed ({}); logs in {}",
        o.uac,
        scratch.0.display()
    );
    assert!(o.uas.success(), "sipp UAS failed ({})", o.uas);
    assert_eq!(counter(&o, "SuccessfulCall(C)"), 20);
    assert_eq!(counter(&o, "FailedCall(C)"), 0);

    // The offer that reached the callee and the answer that reached the
    // caller both point at rtpmesh, on ports of its own range.
    let invites: Vec<&String> = o
        .uas_received
        .iter()
        .filter(|m| m.starts_with("INVITE ") && m.contains("CSeq: 1 INVITE"))
        .collect();
    assert_eq!(invites.len(), 20, "INVITEs at the UAS");
    let offered = assert_sdp_points_at_node(&invites, &node, "offer at the UAS");
    let answers: Vec<&String> = o
        .uac_received
        .iter()
        .filter(|m| m.starts_with("SIP/2.0 200") && m.contains("CSeq: 1 INVITE"))
        .collect();
    assert_eq!(answers.len(), 20, "200 OKs to INVITE at the UAC");
    let answered = assert_sdp_points_at_node(&answers, &node, "answer at the UAC");
    // Each side of each call got its own relay port.
    for (call, offer_port) in invites.iter().map(|m| call_id(m)).zip(&offered) {
        let answer_port = answers
            .iter()
            .zip(&answered)
            .find(|(m, _)| call_id(m) == call)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no answer for {call}"));
        assert_ne!(*offer_port, answer_port, "{call}: one port for both sides");
    }

    // Hold and resume: each call's two re-INVITEs went through the node as
    // new offers/answers, and it kept the ports it had given each side.
    for (cseq, direction) in [(2, "a=sendonly"), (3, "a=sendrecv")] {
        let reoffers: Vec<&String> = o
            .uas_received
            .iter()
            .filter(|m| m.starts_with("INVITE ") && m.contains(&format!("CSeq: {cseq} INVITE")))
            .collect();
        assert_eq!(reoffers.len(), 20, "re-INVITEs (CSeq {cseq}) at the UAS");
        let reanswers: Vec<&String> = o
            .uac_received
            .iter()
            .filter(|m| m.starts_with("SIP/2.0 200") && m.contains(&format!("CSeq: {cseq} INVITE")))
            .collect();
        assert_eq!(
            reanswers.len(),
            20,
            "200 OKs to re-INVITEs (CSeq {cseq}) at the UAC"
        );
        let reoffered = assert_sdp_points_at_node(&reoffers, &node, "re-offer at the UAS");
        let reanswered = assert_sdp_points_at_node(&reanswers, &node, "re-answer at the UAC");
        for (m, port) in reoffers.iter().zip(&reoffered) {
            assert!(m.contains(direction), "re-offer without {direction}:\n{m}");
            let first = invites
                .iter()
                .zip(&offered)
                .find(|(i, _)| call_id(i) == call_id(m))
                .map(|(_, p)| *p);
            assert_eq!(
                first,
                Some(*port),
                "{}: the callee's relay port moved",
                call_id(m)
            );
        }
        for (m, port) in reanswers.iter().zip(&reanswered) {
            let first = answers
                .iter()
                .zip(&answered)
                .find(|(a, _)| call_id(a) == call_id(m))
                .map(|(_, p)| *p);
            assert_eq!(
                first,
                Some(*port),
                "{}: the caller's relay port moved",
                call_id(m)
            );
        }
    }

    // Media: the node counted RTP from the caller (sipp UAC tags are
    // ...SIPpTag00...) and from the callee (...SIPpTag01...), which only
    // echoes what rtpmesh delivered to it, on every call.
    let seen = seen.lock().unwrap();
    let call_ids: std::collections::BTreeSet<String> = invites.iter().map(|m| call_id(m)).collect();
    assert_eq!(call_ids.len(), 20);
    for id in &call_ids {
        let tags = seen
            .get(id)
            .unwrap_or_else(|| panic!("call {id} never listed by the node: {seen:?}"));
        let from = |marker: &str| {
            tags.iter()
                .filter(|(t, _)| t.contains(marker))
                .map(|(_, p)| *p)
                .sum::<i64>()
        };
        // Exactly what sipp sent: the capture's packets from the caller,
        // and the same number echoed back by the callee.
        assert_eq!(
            from("SIPpTag00"),
            CAPTURE_PACKETS,
            "{id}: RTP from the caller: {tags:?}"
        );
        assert_eq!(
            from("SIPpTag01"),
            CAPTURE_PACKETS,
            "{id}: RTP back from the callee: {tags:?}"
        );
    }
    let stats = statistics(&node);
    let total = |k: &str| int_at(&stats, &["statistics", "totalstatistics", k]);
    assert_eq!(total("managedsessions"), 20, "{stats:?}");
    assert_eq!(total("rejectedsessions"), 0, "{stats:?}");
    // 50 packets from the caller and their echoes, per call; allow for the
    // packets in flight when a BYE lands.
    assert!(total("packetsrelayed") >= 20 * 50, "{stats:?}");

    // After the BYEs (Kamailio's rtpengine_delete) nothing is left.
    assert!(
        eventually(Duration::from_secs(5), || listed(&node) == 0),
        "calls left on the node after BYE: {:?}",
        node.client().req(vec![("command", "list".into())])
    );
    let stats = statistics(&node);
    assert_eq!(
        int_at(&stats, &["statistics", "currentstatistics", "sessionsown"]),
        0
    );
}

/// A drained node (`--max-sessions 1`) under 3 simultaneous calls: rtpmesh
/// answers `load limit` to the extra offers, Kamailio's rtpengine module
/// finds no other relay in its set, and the cfg refuses those calls with 503
/// before they reach the callee. The admitted call completes with media, and
/// once it is over the same Kamailio places a new call through the node
/// (the load limit did not get the relay marked dead).
// Long: a refused burst and the call after it are one scenario on one
// Kamailio, whose relay set must survive the refusals.
fn drained_node_refuses_cleanly(backend: &str) {
    require_tools();
    let node = Node::builder(backend)
        .arg("--delete-delay")
        .arg("0")
        .arg("--max-sessions")
        .arg("1")
        .start();
    let scratch = Scratch::new(&format!("drained-{backend}"));
    let kamailio = Kamailio::start(&scratch, node.ng);

    let o = run_calls(
        &scratch,
        &kamailio,
        // Three calls 10 ms apart: the first holds the only session for
        // over a second while the other two are offered.
        &Calls {
            total: 3,
            concurrent: 3,
            rate: 100,
            answered: 1,
            uas: "uas",
        },
        "burst",
    );
    // The rejected calls take the UAC scenario's "rejected" branch (ACK the
    // 503, end the call), which sipp counts as a completed scenario; the
    // outcome per call is read from the messages instead.
    assert!(
        o.uac.success(),
        "sipp UAC failed ({}); logs in {}",
        o.uac,
        scratch.0.display()
    );
    assert!(o.uas.success(), "sipp UAS failed ({})", o.uas);
    let finals: Vec<&str> = o
        .uac_received
        .iter()
        .filter(|m| m.contains("CSeq: 1 INVITE"))
        .filter_map(|m| m.lines().next())
        .filter(|l| !l.starts_with("SIP/2.0 1"))
        .collect();
    let ok = finals
        .iter()
        .filter(|l| l.starts_with("SIP/2.0 200"))
        .count();
    let refused = finals
        .iter()
        .filter(|l| l.starts_with("SIP/2.0 503 Media Relay Unavailable"))
        .count();
    assert_eq!((ok, refused), (1, 2), "final responses: {finals:?}");
    // Initial INVITEs only: the admitted call also holds and resumes.
    let invites = o
        .uas_received
        .iter()
        .filter(|m| m.starts_with("INVITE ") && m.contains("CSeq: 1 INVITE"))
        .count();
    assert_eq!(invites, 1, "refused calls must not reach the callee");
    // It was rtpmesh's load limit, reported the way rtpengine does, that
    // Kamailio acted on.
    assert!(
        kamailio.log_text().contains("has reached its load limit"),
        "kamailio log: {}",
        kamailio.log_text()
    );
    let stats = statistics(&node);
    let total = |k: &str| int_at(&stats, &["statistics", "totalstatistics", k]);
    assert_eq!(total("managedsessions"), 1, "{stats:?}");
    assert_eq!(total("rejectedsessions"), 2, "{stats:?}");
    assert!(total("packetsrelayed") > 0, "{stats:?}");
    assert!(eventually(Duration::from_secs(5), || listed(&node) == 0));

    // The drain is over: the same Kamailio uses the node again.
    let again = run_calls(
        &scratch,
        &kamailio,
        &Calls {
            total: 1,
            concurrent: 1,
            rate: 1,
            answered: 1,
            uas: "uas",
        },
        "again",
    );
    assert!(
        again.uac.success(),
        "call after the drain failed ({})",
        again.uac
    );
    assert_eq!(counter(&again, "SuccessfulCall(C)"), 1);
    let invites: Vec<&String> = again
        .uas_received
        .iter()
        .filter(|m| m.starts_with("INVITE "))
        .collect();
    assert_sdp_points_at_node(&invites, &node, "offer after the drain");
    let stats = statistics(&node);
    assert_eq!(
        int_at(
            &stats,
            &["statistics", "totalstatistics", "managedsessions"]
        ),
        2
    );
    assert!(eventually(Duration::from_secs(5), || listed(&node) == 0));
}

/// A callee that answers 486 Busy Here: the call fails at the SIP level,
/// Kamailio's failure route deletes it on the relay, and the node holds no
/// call afterwards (the offer had created one, with ports).
fn busy_callee_leaves_no_call(backend: &str) {
    require_tools();
    let node = Node::builder(backend)
        .arg("--delete-delay")
        .arg("0")
        .start();
    let scratch = Scratch::new(&format!("{backend}-busy"));
    let kamailio = Kamailio::start(&scratch, node.ng);
    let o = run_calls(
        &scratch,
        &kamailio,
        &Calls {
            total: 3,
            concurrent: 3,
            rate: 10,
            answered: 3,
            uas: "uas-busy",
        },
        "busy",
    );
    assert!(
        o.uac.success(),
        "sipp UAC failed ({}); logs in {}",
        o.uac,
        scratch.0.display()
    );
    let busy = o
        .uac_received
        .iter()
        .filter(|m| m.starts_with("SIP/2.0 486"))
        .map(|m| call_id(m))
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(busy.len(), 3, "486 for every call at the UAC");
    let offers = o
        .uas_received
        .iter()
        .filter(|m| m.starts_with("INVITE "))
        .count();
    assert_eq!(offers, 3, "every call reached the callee through the node");
    let stats = statistics(&node);
    assert_eq!(
        int_at(
            &stats,
            &["statistics", "totalstatistics", "managedsessions"]
        ),
        3,
        "{stats:?}"
    );
    assert!(
        eventually(Duration::from_secs(5), || listed(&node) == 0),
        "rejected calls left on the node: {:?}",
        node.client().req(vec![("command", "list".into())])
    );
}

/// `rtpmesh control` on loopback with the embedded store; stopped on drop.
struct Controller {
    process: Process,
    ng: std::net::SocketAddr,
    http: std::net::SocketAddr,
}

impl Controller {
    /// Starts the controller and waits until it answers `ping`.
    fn start(scratch: &Scratch, seed: &Path) -> Self {
        let ng: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .unwrap();
        let http: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .unwrap();
        let mut process = Spec::new("controller", env!("CARGO_BIN_EXE_rtpmesh"))
            .arg("control")
            .args(["--listen-ng", &ng.to_string()])
            .args(["--http", &http.to_string()])
            .arg("--seed")
            .arg(seed)
            .env("RUST_LOG", "info")
            .log_to(scratch.path("controller.log"))
            .grace(GRACE)
            .start();
        wait_for_ping(&mut process, ng);
        Self { process, ng, http }
    }

    /// `GET path` on the HTTP API: status and body.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s =
            std::net::TcpStream::connect_timeout(&self.http, Duration::from_millis(200)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        let (head, body) = reply.split_once("\r\n\r\n")?;
        Some((head.get(9..12)?.parse().ok()?, body.to_owned()))
    }

    fn client(&self) -> Ng {
        Ng::new(self.ng)
    }

    fn log_text(&self) -> String {
        self.process.log_text()
    }
}

/// A node for the regional test: media on its own loopback address
/// (127.0.0.2 for r1, 127.0.0.3 for r2), so each SDP says which node it
/// names, and a tunnel socket there.
fn regional_node(backend: &str, ip: &str) -> (Node, std::net::SocketAddr) {
    let tunnel: std::net::SocketAddr = format!("{ip}:{}", common::free_port()).parse().unwrap();
    let node = Node::builder(backend)
        .args(&["--delete-delay", "0", "--workers", "1", "--interface", ip])
        .args(&["--tunnel-address", &tunnel.to_string()])
        .args(&["--tunnel-secret", "interop tunnel secret"])
        .start();
    (node, tunnel)
}

/// Asserts that `msg`'s SDP names `ip` and a port of `node`'s range.
fn assert_sdp_names(msg: &str, ip: &str, node: &Node, side: &str) {
    let (c, port) = sdp_media(msg).unwrap_or_else(|| panic!("{side}: no SDP in:\n{msg}"));
    assert_eq!(c, ip, "{side}: c= names the wrong node:\n{msg}");
    assert!(
        (node.ports.0..=node.ports.1).contains(&port),
        "{side}: m= port {port} is outside the node's range {:?}:\n{msg}",
        node.ports
    );
}

/// Kamailio (tests/interop/regions.cfg) driving the regional controller: a
/// call from gw1's region (r1) to `bob`, registered through gw2 (r2).
/// Kamailio asks the controller's HTTP API for the signalling route (with
/// the Call-ID, which pins the decision), sends the INVITE to the gateway
/// it names (the sipp UAS), and anchors media through the controller's ng
/// port with `callee=$rU gateway=gw1` flags. The controller places the call
/// on the r1 node (caller side) and the r2 node (callee side), joined by
/// the authenticated tunnel.
// Long: one call is followed through seed, route lookup, both nodes, the
// tunnel and the BYE; the steps share its processes and Call-ID.
fn controller_routes_a_cross_region_call_through_kamailio(backend: &str) {
    require_tools();
    let has_http_client = ["/usr/lib", "/usr/lib64"]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .any(|e| e.path().join("kamailio/modules/http_client.so").exists());
    assert!(
        has_http_client,
        "Kamailio's http_client.so is not installed: run scripts/install-test-deps.sh \
         (Debian package kamailio-utils-modules)"
    );
    let scratch = Scratch::new(&format!("regions-{backend}"));
    let (a, a_tunnel) = regional_node(backend, "127.0.0.2");
    let (b, b_tunnel) = regional_node(backend, "127.0.0.3");
    let kam_port = common::free_port();
    let uas_port = common::free_port();
    let seed = scratch.path("seed.toml");
    std::fs::write(
        &seed,
        format!(
            r#"regions = ["r1", "r2"]
[[nodes]]
id = "n1"
region = "r1"
ng = "{}"
tunnel = "{a_tunnel}"
[[nodes]]
id = "n2"
region = "r2"
ng = "{}"
tunnel = "{b_tunnel}"
[[gateways]]
id = "gw1"
region = "r1"
sip = "127.0.0.1:{kam_port}"
[[gateways]]
id = "gw2"
region = "r2"
sip = "127.0.0.1:{uas_port}"
[[latency]]
a = "r1"
b = "r2"
ms = 20
[[routes]]
endpoint = "bob"
gateway = "gw2"
"#,
            a.ng, b.ng
        ),
    )
    .unwrap();
    let ctl = Controller::start(&scratch, &seed);
    // Ready once both nodes passed a health check: bob is routable.
    let want = format!("127.0.0.1:{uas_port}\n");
    let ready = eventually(Duration::from_secs(15), || {
        ctl.get("/v1/route/sip?endpoint=bob&gateway=gw1")
            .is_some_and(|(s, body)| s == 200 && body == want)
    });
    assert!(
        ready,
        "the controller never routed bob: {:?}\n{}",
        ctl.get("/v1/route/explain?endpoint=bob&gateway=gw1"),
        ctl.log_text()
    );
    let kamailio = Kamailio::start_cfg(
        &scratch,
        "regions.cfg",
        kam_port,
        ctl.ng,
        &[
            format!("ROUTE_API=\"http://{}\"", ctl.http),
            "GATEWAY_ID=\"gw1\"".into(),
        ],
    );

    let done = Arc::new(AtomicBool::new(false));
    let (seen_a, watch_a) = watch_calls(&a, done.clone());
    let (seen_b, watch_b) = watch_calls(&b, done.clone());
    let o = run_calls_to(
        &scratch,
        &kamailio,
        &Calls {
            total: 1,
            concurrent: 1,
            rate: 1,
            answered: 1,
            uas: "uas",
        },
        "regions",
        Target::Proxy {
            user: "bob",
            uas_port,
        },
    );
    done.store(true, Ordering::SeqCst);
    watch_a.join().unwrap();
    watch_b.join().unwrap();
    assert!(
        o.uac.success(),
        "sipp UAC failed ({}); logs in {}",
        o.uac,
        scratch.0.display()
    );
    assert!(o.uas.success(), "sipp UAS failed ({})", o.uas);
    assert_eq!(counter(&o, "SuccessfulCall(C)"), 1);

    // Signalling: the UAC addressed bob at Kamailio; the INVITE reached the
    // UAS, i.e. gw2, because the controller named it.
    let invite = o
        .uas_received
        .iter()
        .find(|m| m.starts_with("INVITE ") && m.contains("CSeq: 1 INVITE"))
        .unwrap_or_else(|| panic!("no INVITE at the UAS (gw2): {:?}", o.uas_received));
    assert!(
        invite.starts_with(&format!("INVITE sip:bob@127.0.0.1:{kam_port} ")),
        "{invite}"
    );
    let call = call_id(invite);
    assert!(
        kamailio
            .log_text()
            .contains(&format!("route to bob for {call}: 127.0.0.1:{uas_port}")),
        "{}",
        kamailio.log_text()
    );
    // The offer used the decision the route lookup pinned.
    let log = ctl.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&call) && l.contains("pinned by a route lookup")),
        "{log}"
    );

    // Media addresses: the callee (r2) is offered the r2 node, the caller
    // (r1) is answered with the r1 node.
    assert_sdp_names(invite, "127.0.0.3", &b, "offer at the UAS (r2)");
    let answer = o
        .uac_received
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("CSeq: 1 INVITE"))
        .expect("200 OK at the UAC");
    assert_sdp_names(answer, "127.0.0.2", &a, "answer at the UAC (r1)");

    // The call lived on both nodes, and media crossed the tunnel both
    // ways: A counted the caller's packets and the echoes that came back
    // through the tunnel, B the packets that came through the tunnel and
    // the callee's echoes.
    for (name, seen) in [("r1 node", &seen_a), ("r2 node", &seen_b)] {
        let seen = seen.lock().unwrap();
        let tags = seen
            .get(&call)
            .unwrap_or_else(|| panic!("{name} never held {call}: {seen:?}"));
        let from = |marker: &str| {
            tags.iter()
                .filter(|(t, _)| t.contains(marker))
                .map(|(_, p)| *p)
                .sum::<i64>()
        };
        assert_eq!(
            (from("SIPpTag00"), from("SIPpTag01")),
            (CAPTURE_PACKETS, CAPTURE_PACKETS),
            "{name}: RTP per party: {tags:?}"
        );
    }
    for (name, node) in [("r1 node", &a), ("r2 node", &b)] {
        let stats = statistics(node);
        let tunnel = int_at(&stats, &["statistics", "tunnel", "packets"]);
        assert!(
            tunnel >= CAPTURE_PACKETS,
            "{name}: tunnel packets {tunnel}: {stats:?}"
        );
    }

    // BYE: Kamailio's rtpengine_delete() reached the controller, which
    // deleted the call on both nodes.
    for (name, node) in [("r1 node", &a), ("r2 node", &b)] {
        assert!(
            eventually(Duration::from_secs(5), || listed(node) == 0),
            "{name} still holds calls after BYE: {:?}",
            node.client().req(vec![("command", "list".into())])
        );
    }
    let l = ctl.client().req(vec![("command", "list".into())]);
    assert_eq!(
        at(&l, &["calls"]).and_then(Value::as_list).map(<[_]>::len),
        Some(0),
        "{l:?}"
    );
}

both_backends!(
    twenty_calls_through_kamailio,
    drained_node_refuses_cleanly,
    busy_callee_leaves_no_call,
    controller_routes_a_cross_region_call_through_kamailio
);
