//! Integration tests: robustness.
//!
//! Bad input (malformed ng datagrams, junk on media ports, exhausted port
//! ranges, unreachable peers, bad command lines) gets a clear error, and the
//! node keeps serving everyone else: established calls keep relaying
//! byte-identical RTP both ways and nothing is lost.

mod common;

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use common::json::{at, first_media_streams, int_at};
use common::process::{self, Spec};
use common::{
    audio_sdp, eventually, media_addr, reason, result, rtp, sdp_of, wait_for_ping, Ng, Node, Party,
};
use rtpmesh_ng::bencode::{self, dict, Value};
use rtpmesh_ng::ng::reason as why;
use rtpmesh_ng_udp::client::NgClient;

const LO: &str = "127.0.0.1";
const SSRC_A: u32 = 0x0a0a_0a0a;
const SSRC_B: u32 = 0x0b0b_0b0b;

/// An established call: caller `a` (tag `a`), callee `b` (tag `b`), and the
/// relay addresses each one sends its RTP to.
struct Call {
    id: String,
    a: Party,
    b: Party,
    /// Where `a` sends (the relay socket named in the answer's SDP).
    a_to: SocketAddr,
    /// Where `b` sends (the relay socket named in the offer's SDP).
    b_to: SocketAddr,
    /// RTP packets `a` and `b` have sent to the relay so far.
    sent_a: i64,
    sent_b: i64,
}

impl Call {
    /// Offer from a fresh caller, answer from a fresh callee.
    fn establish(ng: &mut Ng, id: &str) -> Self {
        let a = Party::new(LO);
        let b = Party::new(LO);
        let offer = ng.offer(id, "a", &audio_sdp(a.addr().ip(), a.port()), vec![]);
        let b_to = media_addr(&sdp_of(&offer), 0);
        let answer = ng.answer(id, "a", "b", &audio_sdp(b.addr().ip(), b.port()), vec![]);
        let a_to = media_addr(&sdp_of(&answer), 0);
        Self {
            id: id.to_owned(),
            a,
            b,
            a_to,
            b_to,
            sent_a: 0,
            sent_b: 0,
        }
    }

    /// One RTP packet each way; each must arrive byte-identical, from the
    /// relay socket facing the receiver.
    fn check_flow(&mut self, seq: u16) {
        let p = rtp(seq, SSRC_A, 40);
        self.a.send(self.a_to, &p);
        self.sent_a += 1;
        let (got, from) = self.b.recv();
        assert_eq!(got, p, "caller -> callee packet {seq} changed or lost");
        assert_eq!(from, self.b_to, "callee got it from the wrong socket");

        let p = rtp(seq, SSRC_B, 40);
        self.b.send(self.b_to, &p);
        self.sent_b += 1;
        let (got, from) = self.a.recv();
        assert_eq!(got, p, "callee -> caller packet {seq} changed or lost");
        assert_eq!(from, self.a_to, "caller got it from the wrong socket");
    }
}

/// `ping` still gets `pong`.
fn assert_pong(ng: &mut Ng) {
    let r = ng.req(vec![("command", "ping".into())]);
    assert_eq!(result(&r), "pong", "ping after bad input: {r:?}");
}

/// Splits a reply datagram, checks its cookie and decodes the body.
fn decode_reply(cookie: &str, reply: &[u8]) -> Value {
    let sp = reply
        .iter()
        .position(|&b| b == b' ')
        .expect("reply has a cookie");
    assert_eq!(
        &reply[..sp],
        cookie.as_bytes(),
        "reply cookie: {:?}",
        String::from_utf8_lossy(reply)
    );
    bencode::decode(&reply[sp + 1..]).expect("reply decodes")
}

/// A datagram `COOKIE SP body`.
fn datagram(cookie: &str, body: &[u8]) -> Vec<u8> {
    let mut d = cookie.as_bytes().to_vec();
    d.push(b' ');
    d.extend_from_slice(body);
    d
}

fn raw_client(node: &Node, wait: Duration) -> NgClient {
    NgClient::new(node.ng)
        .unwrap()
        .with_retries(wait, 2)
        .unwrap()
}

/// `stats.key` of stream `stream` (0: RTP, 1: RTCP) of the first media of
/// tag `tag` in a query reply.
fn stream_stat(q: &Value, tag: &str, stream: usize, key: &str) -> i64 {
    stream_field(q, tag, stream, &["stats", key])
}

/// The integer at `path` in stream `stream` of the first media of tag `tag`.
fn stream_field(q: &Value, tag: &str, stream: usize, path: &[&str]) -> i64 {
    let leg = at(q, &["tags", tag]).unwrap_or_else(|| panic!("no tag {tag}: {q:?}"));
    int_at(&first_media_streams(leg)[stream], path)
}

fn call_ids(ng: &mut Ng) -> Vec<String> {
    let r = ng.req(vec![("command", "list".into())]);
    assert_eq!(result(&r), "ok", "list: {r:?}");
    r.get("calls")
        .and_then(Value::as_list)
        .expect("calls")
        .iter()
        .map(|v| v.as_str().expect("call-id string").to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Malformed ng input.

// Long: most of it is the table of malformed requests and their errors,
// each checked against the same live call.
fn malformed_ng_input_gets_rtpengine_errors(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let mut call = Call::establish(&mut ng, "robust-ng");
    call.check_flow(1);

    let sdp = audio_sdp(LO.parse().unwrap(), 4000);
    let offer_no_sdp = dict([
        ("command", "offer".into()),
        ("call-id", "x1".into()),
        ("from-tag", "a".into()),
    ])
    .encode();
    let offer_no_call_id = dict([
        ("command", "offer".into()),
        ("from-tag", "a".into()),
        ("sdp", sdp.as_str().into()),
    ])
    .encode();
    let answer_unknown = dict([
        ("command", "answer".into()),
        ("call-id", "no-such-call".into()),
        ("from-tag", "a".into()),
        ("to-tag", "b".into()),
        ("sdp", sdp.as_str().into()),
    ])
    .encode();
    let query_unknown = dict([
        ("command", "query".into()),
        ("call-id", "no-such-call".into()),
    ])
    .encode();
    let offer_hello = dict([
        ("command", "offer".into()),
        ("call-id", "hello-call".into()),
        ("from-tag", "a".into()),
        ("sdp", "hello".into()),
    ])
    .encode();
    let call_id_list = dict([
        ("command", "offer".into()),
        ("call-id", Value::List(vec!["x".into()])),
        ("from-tag", "a".into()),
        ("sdp", sdp.as_str().into()),
    ])
    .encode();

    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "truncated dict",
            b"d3:foo".to_vec(),
            why::DECODE_FAILED.into(),
        ),
        (
            "string length past the end",
            b"d7:command99:pinge".to_vec(),
            why::DECODE_FAILED.into(),
        ),
        (
            "leading-zero integer in a dict",
            b"d7:command4:ping3:fooi03ee".to_vec(),
            why::DECODE_FAILED.into(),
        ),
        (
            "empty integer in a dict",
            b"d7:command4:ping3:fooiee".to_vec(),
            why::DECODE_FAILED.into(),
        ),
        (
            "list instead of dict",
            b"l4:pinge".to_vec(),
            why::INVALID_FORMAT.into(),
        ),
        (
            "a second space",
            b" d7:command4:pinge".to_vec(),
            why::INVALID_FORMAT.into(),
        ),
        ("empty body", Vec::new(), why::NO_PAYLOAD.into()),
        ("empty dict", b"de".to_vec(), why::NO_COMMAND.into()),
        (
            "no command key",
            b"d7:call-id1:xe".to_vec(),
            why::NO_COMMAND.into(),
        ),
        (
            "integer command",
            b"d7:commandi1ee".to_vec(),
            why::NO_COMMAND.into(),
        ),
        (
            "unknown command",
            b"d7:command10:frobnicatee".to_vec(),
            why::UNRECOGNIZED_COMMAND.into(),
        ),
        (
            "command names are case-sensitive",
            b"d7:command4:Pinge".to_vec(),
            why::UNRECOGNIZED_COMMAND.into(),
        ),
        ("offer without sdp", offer_no_sdp, why::NO_SDP.into()),
        (
            "offer without call-id",
            offer_no_call_id,
            why::NO_CALL_ID.into(),
        ),
        (
            "answer for an unknown call",
            answer_unknown,
            why::UNKNOWN_CALL_ID.into(),
        ),
        (
            "query for an unknown call",
            query_unknown,
            why::UNKNOWN_CALL_ID.into(),
        ),
        (
            "offer with sdp `hello`",
            offer_hello,
            why::FAILED_TO_PARSE_SDP.into(),
        ),
        (
            "call-id as a list",
            call_id_list,
            "Invalid value for key \"call-id\": expected a UTF-8 string".into(),
        ),
    ];

    let mut raw = raw_client(&node, Duration::from_millis(2000));
    for (i, (what, body, expected)) in cases.iter().enumerate() {
        let cookie = format!("bad{i}");
        let reply = raw
            .raw(&datagram(&cookie, body))
            .unwrap_or_else(|e| panic!("{what}: no reply: {e}"));
        let v = decode_reply(&cookie, &reply);
        assert_eq!(result(&v), "error", "{what}: {v:?}");
        assert_eq!(reason(&v), expected, "{what}: {v:?}");
        assert_pong(&mut ng);
        call.check_flow(2 + i as u16);
    }

    // No cookie (no space, or nothing before it): nothing to answer with, so
    // no reply at all; the next request on the same socket gets its own reply
    // first, so no late answer to the junk is in flight either.
    let mut quiet = raw_client(&node, Duration::from_millis(300));
    for junk in [
        &b"nospace"[..],
        b" d7:command4:pinge",
        b"c\td7:command4:pinge",
    ] {
        let got = quiet.raw_once(junk).expect("socket ok");
        assert!(
            got.is_none(),
            "reply to {:?}: {:?}",
            String::from_utf8_lossy(junk),
            got.map(|r| String::from_utf8_lossy(&r).into_owned())
        );
        let reply = quiet
            .raw(&datagram("after-junk", b"d7:command4:pinge"))
            .expect("ping reply");
        assert_eq!(reply, b"after-junk d6:result4:ponge");
        call.check_flow(100);
    }

    // The failed offers left no call behind; the good one is untouched.
    assert_eq!(call_ids(&mut ng), vec!["robust-ng".to_owned()]);
    let q = ng.query(&call.id);
    assert_eq!(result(&q), "ok", "{q:?}");
    assert_eq!(stream_stat(&q, "a", 0, "packets"), call.sent_a);
    assert_eq!(stream_stat(&q, "b", 0, "packets"), call.sent_b);
    assert_eq!(int_at(&q, &["totals", "RTP", "errors"]), 0);
}

// ---------------------------------------------------------------------------
// 2. Junk on media ports.

fn junk_on_media_ports_is_counted_and_dropped(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let mut call = Call::establish(&mut ng, "robust-junk");
    call.check_flow(1);

    let mut csrc15 = vec![0x8f, 0x00, 0x00, 0x02];
    csrc15.extend_from_slice(&[0u8; 4]); // timestamp
    csrc15.extend_from_slice(&SSRC_A.to_be_bytes());
    csrc15.extend_from_slice(&[0u8; 8]); // 2 of the 15 CSRCs claimed
    assert_eq!(csrc15.len(), 20);
    let mut version0 = rtp(3, SSRC_A, 40);
    version0[0] = 0x00;
    let junk: Vec<Vec<u8>> = vec![
        b"hello, this is not RTP at all".to_vec(),
        vec![0x80, 0x00, 0x00],
        csrc15,
        version0,
    ];

    // Each direction: junk, then a valid packet and a marker. Exactly the
    // two valid packets come out, byte-identical.
    for (seq, (from, to, dest, ssrc)) in [
        (&call.a, &call.b, call.a_to, SSRC_A),
        (&call.b, &call.a, call.b_to, SSRC_B),
    ]
    .into_iter()
    .enumerate()
    {
        for j in &junk {
            from.send(dest, j);
        }
        let valid = rtp(10 + seq as u16, ssrc, 40);
        let marker = rtp(20 + seq as u16, ssrc, 12);
        from.send(dest, &valid);
        from.send(dest, &marker);
        let mut got = vec![to.recv().0, to.recv().0];
        got.sort();
        let mut want = vec![valid, marker];
        want.sort();
        assert_eq!(got, want, "only the valid packets may be forwarded");
    }
    call.sent_a += 2;
    call.sent_b += 2;

    // Junk on the caller's RTCP socket too.
    let rtcp_to = SocketAddr::new(call.a_to.ip(), call.a_to.port() + 1);
    call.a.send(rtcp_to, &junk[0]);

    let n = junk.len() as i64;
    let mut last = Value::Dict(Default::default());
    let counted = eventually(Duration::from_secs(5), || {
        last = ng.query(&call.id);
        stream_stat(&last, "a", 0, "errors") == n
            && stream_stat(&last, "b", 0, "errors") == n
            && stream_stat(&last, "a", 1, "errors") == 1
            && int_at(&last, &["totals", "RTP", "errors"]) == 2 * n + 1
    });
    assert!(counted, "errors not counted as expected: {last:?}");
    // Junk is not counted as media.
    assert_eq!(stream_stat(&last, "a", 0, "packets"), call.sent_a);
    assert_eq!(stream_stat(&last, "b", 0, "packets"), call.sent_b);
    assert_eq!(stream_stat(&last, "a", 1, "packets"), 0);

    // And the call goes on.
    call.check_flow(30);
    assert_pong(&mut ng);
    let stats = ng.req(vec![("command", "statistics".into())]);
    assert_eq!(
        int_at(&stats, &["statistics", "totalstatistics", "packetserrors"]),
        2 * n + 1,
        "{stats:?}"
    );
}

// ---------------------------------------------------------------------------
// 3. Port range exhaustion.

fn port_exhaustion_is_an_error_and_ports_come_back(backend: &str) {
    // Two pairs: exactly one call (one pair per leg).
    let node = Node::builder(backend).ports(4).start();
    let mut ng = node.client();
    let mut first = Call::establish(&mut ng, "robust-first");
    first.check_flow(1);

    let c = Party::new(LO);
    for attempt in 0..2 {
        let r = ng.offer(
            "robust-second",
            "a",
            &audio_sdp(c.addr().ip(), c.port()),
            vec![],
        );
        assert_eq!(result(&r), "error", "attempt {attempt}: {r:?}");
        assert_eq!(reason(&r), why::NO_PORTS, "attempt {attempt}: {r:?}");
        first.check_flow(2 + attempt);
    }
    let q = ng.query("robust-second");
    assert_eq!(reason(&q), why::UNKNOWN_CALL_ID, "failed offer left a call");
    assert_pong(&mut ng);
    first.check_flow(5);

    let d = ng.delete(&first.id, Some(0));
    assert_eq!(result(&d), "ok", "{d:?}");
    assert!(call_ids(&mut ng).is_empty());

    let mut third = Call::establish(&mut ng, "robust-third");
    third.check_flow(1);
    let q = ng.query(&third.id);
    let ports: Vec<i64> = ["a", "b"]
        .iter()
        .map(|t| stream_field(&q, t, 0, &["local port"]))
        .collect();
    for p in ports {
        assert!(
            (i64::from(node.ports.0)..=i64::from(node.ports.1)).contains(&p),
            "port {p} outside {:?}",
            node.ports
        );
    }
}

// ---------------------------------------------------------------------------
// 4. Send errors.

fn send_errors_do_not_stop_a_flow(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let mut call = Call::establish(&mut ng, "robust-send");
    call.check_flow(1);

    // The callee's phone moves: its old socket goes away (the relay's sends
    // to it now fail with ICMP port unreachable), a new one takes over.
    // Create the new one first so it cannot reuse the old port.
    let b2 = Party::new(LO);
    let b2_addr = b2.addr();
    drop(std::mem::replace(&mut call.b, b2));

    // 20 packets into the void, while the callee's new socket keeps
    // talking to the caller (forwarded, counted as foreign source).
    for i in 0..20u16 {
        call.a.send(call.a_to, &rtp(100 + i, SSRC_A, 40));
        call.sent_a += 1;
        let p = rtp(100 + i, SSRC_B, 40);
        call.b.send(call.b_to, &p);
        call.sent_b += 1;
        let (got, from) = call.a.recv();
        assert_eq!(got, p, "callee -> caller packet {i} during send errors");
        assert_eq!(from, call.a_to);
    }
    assert_pong(&mut ng);
    let mut q = Value::Dict(Default::default());
    assert!(
        eventually(Duration::from_secs(5), || {
            q = ng.query(&call.id);
            stream_stat(&q, "a", 0, "packets") == call.sent_a
        }),
        "caller packets not all received: {q:?}"
    );
    assert_eq!(stream_stat(&q, "b", 0, "packets"), call.sent_b);
    assert_eq!(stream_field(&q, "b", 0, &["foreign source packets"]), 20);

    // Re-answer (same tags) with the new port: media follows.
    let answer = ng.answer(
        &call.id,
        "a",
        "b",
        &audio_sdp(b2_addr.ip(), b2_addr.port()),
        vec![],
    );
    assert_eq!(
        media_addr(&sdp_of(&answer), 0),
        call.a_to,
        "relay port moved"
    );
    for i in 0..5 {
        call.check_flow(200 + i);
    }
    assert_pong(&mut ng);
}

// ---------------------------------------------------------------------------
// 5. Command-line and config errors.

/// Runs `rtpmesh ARGS`, killing it if it has not exited within 20 s;
/// returns its status and its stdout followed by its stderr.
fn run_cli(args: &[&str]) -> (ExitStatus, String) {
    let spec = Spec::new("rtpmesh", env!("CARGO_BIN_EXE_rtpmesh"))
        .args(args)
        .env("RUST_LOG", "info");
    let out = process::run_to_end(spec, Duration::from_secs(20));
    (out.status, format!("{}{}", out.stdout, out.stderr))
}

fn assert_fails<S: AsRef<str>>(args: &[S], mentions: &[&str]) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let (status, text) = run_cli(&args);
    assert!(!status.success(), "rtpmesh {args:?} succeeded: {text}");
    for m in mentions {
        assert!(
            text.contains(m),
            "rtpmesh {args:?}: message does not mention {m:?}: {text}"
        );
    }
}

#[test]
// Long: a list of independent bad command lines, each one call.
fn cli_and_config_errors_are_reported() {
    let ng = format!("127.0.0.1:{}", common::free_port());
    let node = |extra: &[&str]| -> Vec<String> {
        ["node", "--listen-ng", ng.as_str()]
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };

    assert_fails(
        &node(&["--port-min", "5000", "--port-max", "5000"]),
        &["port range", "5000"],
    );
    assert_fails(
        &node(&["--port-min", "6000", "--port-max", "5000"]),
        &["port range", "6000"],
    );
    assert_fails(&node(&["--backend", "kqueue"]), &["backend", "kqueue"]);
    assert_fails(&node(&["--fast-path", "dpdk"]), &["fast path", "dpdk"]);
    assert_fails(
        &node(&["--config", "/nonexistent.toml"]),
        &["/nonexistent.toml"],
    );

    let dir = std::env::temp_dir();
    let bad_key = dir.join(format!("rtpmesh-robust-{}-key.toml", std::process::id()));
    std::fs::write(&bad_key, "port-min = 40000\nprot-max = 40100\n").unwrap();
    let bad_key_s = bad_key.to_str().unwrap();
    assert_fails(&node(&["--config", bad_key_s]), &[bad_key_s, "prot-max"]);

    let bad_backend = dir.join(format!(
        "rtpmesh-robust-{}-backend.toml",
        std::process::id()
    ));
    std::fs::write(&bad_backend, "backend = \"kqueue\"\n").unwrap();
    assert_fails(
        &node(&["--config", bad_backend.to_str().unwrap()]),
        &["backend", "kqueue"],
    );
    let bad_fast_path = dir.join(format!(
        "rtpmesh-robust-{}-fastpath.toml",
        std::process::id()
    ));
    std::fs::write(&bad_fast_path, "fast-path = \"dpdk\"\n").unwrap();
    assert_fails(
        &node(&["--config", bad_fast_path.to_str().unwrap()]),
        &["fast path", "dpdk"],
    );
    let _ = std::fs::remove_file(&bad_key);
    let _ = std::fs::remove_file(&bad_backend);
    let _ = std::fs::remove_file(&bad_fast_path);

    assert_fails(
        &node(&["--interface", "nonsense"]),
        &["interface", "nonsense"],
    );
    assert_fails(
        &node(&["--interface", "10.0.0.1!::1"]),
        &["interface", "10.0.0.1!::1"],
    );

    // The ng port is taken by someone else.
    let holder = std::net::UdpSocket::bind(LO.to_owned() + ":0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    assert_fails(
        &[
            "node",
            "--listen-ng",
            &taken,
            "--port-min",
            "31000",
            "--port-max",
            "31009",
        ],
        &["ng listener", &taken],
    );

    // Nothing listens there: no reply, clear message, non-zero exit.
    assert_fails(
        &["ping", "--ng", "127.0.0.1:1"],
        &["no reply", "127.0.0.1:1"],
    );

    // Regions: tunnels need a secret; a registry needs a name, a region
    // and addresses other hosts can reach.
    assert_fails(
        &node(&["--tunnel-address", "127.0.0.1:7100"]),
        &["tunnel-secret"],
    );
    assert_fails(
        &node(&["--registry", "redis://127.0.0.1:1"]),
        &["node-id", "region"],
    );
    let wild = [
        "node",
        "--listen-ng",
        "0.0.0.0:2223",
        "--registry",
        "redis://127.0.0.1:1",
        "--node-id",
        "x",
        "--region",
        "r",
    ];
    assert_fails(&wild, &["wildcard"]);
    let seed = dir.join(format!("rtpmesh-robust-{}-seed.toml", std::process::id()));
    std::fs::write(&seed, "regions = [\"r1\"]\n[[nodes]]\nid = \"n\"\n").unwrap();
    let ctl_ng = format!("127.0.0.1:{}", common::free_port());
    assert_fails(
        &[
            "control",
            "--listen-ng",
            &ctl_ng,
            "--seed",
            seed.to_str().unwrap(),
        ],
        &["invalid seed file", seed.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&seed);
    // The operator commands fail clearly when the API is not there.
    assert_fails(
        &["--api", "http://127.0.0.1:1", "region", "list"],
        &["cannot reach the API", "127.0.0.1:1"],
    );
}

/// The controller answers bad requests with rtpengine's errors and keeps
/// serving: garbage, an unknown command, an offer it cannot route, a call
/// it does not know.
#[test]
fn a_controller_keeps_serving_after_bad_requests() {
    let ng: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let dir = std::env::temp_dir();
    let seed = dir.join(format!("rtpmesh-robust-{}-ctl.toml", std::process::id()));
    std::fs::write(&seed, "regions = [\"r1\"]\n").unwrap();
    let mut controller = Spec::rtpmesh("controller")
        .args(["control", "--listen-ng", &ng.to_string(), "--region", "r1"])
        .arg("--seed")
        .arg(&seed)
        .start();
    wait_for_ping(&mut controller, ng);
    let mut c = Ng::with_retries(ng, Duration::from_millis(300), 20);
    let mut ask = |items: Vec<(&str, Value)>| c.req(items);
    assert_eq!(result(&ask(vec![("command", "ping".into())])), "pong");
    let r = ask(vec![("command", "dance".into())]);
    assert_eq!(reason(&r), "Unrecognized command");
    let r = ask(vec![
        ("command", "offer".into()),
        ("call-id", "c".into()),
        ("from-tag", "a".into()),
        ("sdp", audio_sdp(LO.parse().unwrap(), 4000).into()),
        ("supports", Value::List(vec!["load limit".into()])),
    ]);
    // r1 has no node: a proxy can fail over to another relay set.
    assert_eq!(result(&r), "load limit", "{r:?}");
    let r = ask(vec![
        ("command", "offer".into()),
        ("call-id", "c".into()),
        ("from-tag", "a".into()),
        ("sdp", audio_sdp(LO.parse().unwrap(), 4000).into()),
        ("callee", "nobody".into()),
        ("region", "nowhere".into()),
    ]);
    assert!(reason(&r).starts_with("No route"), "{r:?}");
    // Without `load limit` in `supports`: rtpengine's error text.
    let r = ask(vec![
        ("command", "offer".into()),
        ("call-id", "c".into()),
        ("from-tag", "a".into()),
        ("sdp", audio_sdp(LO.parse().unwrap(), 4000).into()),
    ]);
    assert_eq!(reason(&r), why::LOAD_LIMIT);
    let r = ask(vec![
        ("command", "answer".into()),
        ("call-id", "zz".into()),
        ("from-tag", "a".into()),
        ("to-tag", "b".into()),
        ("sdp", audio_sdp(LO.parse().unwrap(), 4000).into()),
    ]);
    assert_eq!(reason(&r), "Unknown call-id");
    let mut raw = NgClient::new(ng).unwrap();
    let reply = raw.raw(b"k1 d7:command").unwrap();
    assert!(String::from_utf8_lossy(&reply).contains("Could not decode bencode dictionary"));
    assert_eq!(result(&ask(vec![("command", "ping".into())])), "pong");
    assert!(controller.terminate().success());
    let _ = std::fs::remove_file(&seed);
}

// ---------------------------------------------------------------------------
// 6. Clean shutdown.

fn sigterm_with_a_live_call_exits_cleanly(backend: &str) {
    let mut node = Node::start(backend);
    let mut ng = node.client();
    let mut call = Call::establish(&mut ng, "robust-term");
    call.check_flow(1);
    assert!(node.is_running());
    let status = node.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

// ---------------------------------------------------------------------------
// 7. Retransmissions.

fn retransmitted_offer_gets_the_cached_reply(backend: &str) {
    // Four pairs: two calls.
    let node = Node::builder(backend).ports(8).start();
    let mut ng = node.client();
    let a = Party::new(LO);
    let b = Party::new(LO);

    let offer = |call: &str| {
        dict([
            ("command", "offer".into()),
            ("call-id", call.into()),
            ("from-tag", "a".into()),
            ("sdp", audio_sdp(a.addr().ip(), a.port()).into()),
            (
                "replace",
                Value::List(vec!["origin".into(), "session-connection".into()]),
            ),
        ])
    };
    let cookie = "retx-1";
    let d = datagram(cookie, &offer("robust-x").encode());
    let mut raw = raw_client(&node, Duration::from_millis(2000));
    let first = raw.raw(&d).expect("offer reply");
    for i in 0..4 {
        let again = raw.raw(&d).expect("retransmission reply");
        assert_eq!(again, first, "retransmission {i} got a different reply");
    }
    // Same cookie, different body (another call): the old reply, nothing done.
    let other = raw
        .raw(&datagram(cookie, &offer("robust-z").encode()))
        .expect("reply");
    assert_eq!(other, first, "reused cookie with a new body");
    let pinged =
        ng.c.request_with_cookie(cookie, &dict([("command", "ping".into())]))
            .expect("reply");
    assert_eq!(pinged, decode_reply(cookie, &first));

    // Retransmissions allocated nothing: a second call still fits, and then
    // the range is full.
    let y = ng.offer("robust-y", "a", &audio_sdp(b.addr().ip(), b.port()), vec![]);
    assert_eq!(result(&y), "ok", "{y:?}");
    let w = ng.offer("robust-w", "a", &audio_sdp(b.addr().ip(), b.port()), vec![]);
    assert_eq!(reason(&w), why::NO_PORTS, "{w:?}");
    assert_eq!(
        call_ids(&mut ng),
        vec!["robust-x".to_owned(), "robust-y".to_owned()]
    );

    // The cached offer reply names the sockets call X really uses.
    let x_reply = decode_reply(cookie, &first);
    let b_to = media_addr(&sdp_of(&x_reply), 0);
    let answer = ng.answer(
        "robust-x",
        "a",
        "b",
        &audio_sdp(b.addr().ip(), b.port()),
        vec![],
    );
    let a_to = media_addr(&sdp_of(&answer), 0);
    let mut call = Call {
        id: "robust-x".into(),
        a,
        b,
        a_to,
        b_to,
        sent_a: 0,
        sent_b: 0,
    };
    call.check_flow(1);
    let q = ng.query(&call.id);
    assert_eq!(stream_stat(&q, "a", 0, "packets"), call.sent_a);
    assert_eq!(stream_stat(&q, "b", 0, "packets"), call.sent_b);
}

// ---------------------------------------------------------------------------
// Races found while writing the above.

/// The first packet the caller sends after the answer's reply must be
/// relayed: rtpengine applies an answer before replying, so Kamailio (and
/// the caller's early RTP) may rely on it.
///
/// Regression test: the worker used to handle the datagrams that woke it
/// before the command that the answer queued, so on a loaded machine the
/// first packet was dropped as unroutable (25 of 300 calls on a busy 2-core
/// box). Fixed by applying commands first (`worker::run`).
fn first_packet_after_answer_is_forwarded(backend: &str) {
    let node = Node::builder(backend).ports(440).start();
    let mut ng = node.client();
    let mut lost = Vec::new();
    for i in 0..100 {
        let a = Party::new(LO);
        let b = Party::new(LO);
        let id = format!("robust-first-{i}");
        let offer = ng.offer(&id, "a", &audio_sdp(a.addr().ip(), a.port()), vec![]);
        assert_eq!(result(&offer), "ok", "offer {i}: {}", reason(&offer));
        let answer = ng.answer(&id, "a", "b", &audio_sdp(b.addr().ip(), b.port()), vec![]);
        let a_to = media_addr(&sdp_of(&answer), 0);
        let p = rtp(1, SSRC_A, 40);
        a.send(a_to, &p);
        match b.recv_within(Duration::from_secs(1)) {
            Some((got, _)) => assert_eq!(got, p),
            None => lost.push(i),
        }
    }
    assert!(
        lost.is_empty(),
        "first packet after the answer lost in {} of 100 calls: {lost:?}",
        lost.len()
    );
}

/// Deleting a call and offering a new one at once, over and over, on a
/// range that holds exactly one call: the ports must come back every time.
///
/// Fails today: `WorkerPlane::close` returns a pair to the pool at once, while the
/// worker closes the sockets later; an offer in between cannot bind the
/// pair, and `WorkerPlane::open` then keeps it out of the pool for good.
fn ports_come_back_after_delete_under_churn(backend: &str) {
    let node = Node::builder(backend).ports(4).start();
    let mut ng = node.client();
    let a = Party::new(LO);
    for i in 0..300 {
        let id = format!("robust-churn-{i}");
        let r = ng.offer(&id, "a", &audio_sdp(a.addr().ip(), a.port()), vec![]);
        assert_eq!(
            result(&r),
            "ok",
            "offer {i} after {i} deletes: {}",
            reason(&r)
        );
        let d = ng.delete(&id, Some(0));
        assert_eq!(result(&d), "ok", "{d:?}");
    }
    let mut call = Call::establish(&mut ng, "robust-churn-last");
    call.check_flow(1);
}

both_backends!(
    malformed_ng_input_gets_rtpengine_errors,
    junk_on_media_ports_is_counted_and_dropped,
    port_exhaustion_is_an_error_and_ports_come_back,
    send_errors_do_not_stop_a_flow,
    sigterm_with_a_live_call_exits_cleanly,
    retransmitted_offer_gets_the_cached_reply,
    first_packet_after_answer_is_forwarded,
    ports_come_back_after_delete_under_churn,
);

// ---------------------------------------------------------------------------
// 8. A flood of distinct cookies.

/// 200,000 pings with distinct 200-byte cookies, one in a hundred with a
/// 60 KB cookie, leave a controller's and a node's memory flat: the reply
/// cache is bounded by count and bytes, and over-long cookies are not
/// cached. Unbounded, the cache would grow by every reply after the
/// warm-up (the bound below is a fraction of that), as it did: 8,000
/// pings with 60 KB cookies added ~900 MB. Both still answer afterwards.
#[test]
fn a_flood_of_distinct_cookies_leaves_memory_flat() {
    const PINGS: usize = 200_000;
    const WARM_UP: usize = 20_000;
    const COOKIE: usize = 200;
    const BIG_COOKIE: usize = 60_000;
    const BIG_EVERY: usize = 100;
    const WINDOW: usize = 32;
    const PING: &[u8] = b"d7:command4:pinge";
    const PONG: &[u8] = b"d6:result4:ponge";

    fn rss_kb(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn cookie(i: usize) -> Vec<u8> {
        let len = if i % BIG_EVERY == BIG_EVERY - 1 {
            BIG_COOKIE
        } else {
            COOKIE
        };
        let mut c = format!("{i:010}-").into_bytes();
        c.resize(len, b'x');
        c
    }

    /// Sends pings `from..to`, at most `WINDOW` awaiting replies (the big
    /// cookies get none); returns how many were answered.
    fn flood(sock: &std::net::UdpSocket, to: SocketAddr, from: usize, upto: usize) -> usize {
        let (mut next, mut waiting, mut answered) = (from, 0, 0);
        let mut buf = vec![0u8; 65536];
        while next < upto || waiting > 0 {
            while waiting < WINDOW && next < upto {
                let c = cookie(next);
                next += 1;
                sock.send_to(&datagram(std::str::from_utf8(&c).unwrap(), PING), to)
                    .unwrap();
                if c.len() == COOKIE {
                    waiting += 1;
                }
            }
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    assert!(
                        buf[..n].ends_with(PONG),
                        "{:?}",
                        String::from_utf8_lossy(&buf[..n])
                    );
                    waiting -= 1;
                    answered += 1;
                }
                // Lost on the way: go on with the rest.
                Err(_) => waiting = 0,
            }
        }
        answered
    }

    /// Floods the server at `ng` (process `pid`); returns the RSS growth
    /// after the warm-up, in KB.
    fn growth_under_flood(ng: SocketAddr, pid: u32) -> u64 {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let warm = flood(&sock, ng, 0, WARM_UP);
        let before = rss_kb(pid);
        let rest = flood(&sock, ng, WARM_UP, PINGS);
        let after = rss_kb(pid);
        let small = PINGS - PINGS / BIG_EVERY;
        assert!(
            warm + rest > small / 2,
            "only {} of {small} answered",
            warm + rest
        );
        let mut c = NgClient::new(ng)
            .unwrap()
            .with_retries(Duration::from_millis(500), 10)
            .unwrap();
        let r = c.request(&dict([("command", "ping".into())])).unwrap();
        assert_eq!(result(&r), "pong", "after the flood: {r:?}");
        after.saturating_sub(before)
    }

    // What an unbounded cache would add after the warm-up: each small
    // ping's cookie and reply (cookie, space, pong), and each big one's.
    let (small, big) = (
        (PINGS - WARM_UP) * (BIG_EVERY - 1) / BIG_EVERY,
        (PINGS - WARM_UP) / BIG_EVERY,
    );
    let unbounded_kb = ((small * (2 * COOKIE + 1 + PONG.len())
        + big * (2 * BIG_COOKIE + 1 + PONG.len()))
        / 1024) as u64;
    // The cache's byte bound (32 MiB) and as much again for the
    // allocator's slack.
    let bound_kb = 64 * 1024;
    assert!(
        bound_kb * 4 < unbounded_kb,
        "{bound_kb} KB vs {unbounded_kb} KB"
    );

    let ng: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let seed = std::env::temp_dir().join(format!("rtpmesh-flood-{}-ctl.toml", std::process::id()));
    std::fs::write(&seed, "regions = [\"r1\"]\n").unwrap();
    let mut controller = Spec::rtpmesh("controller")
        .args(["control", "--listen-ng", &ng.to_string(), "--region", "r1"])
        .arg("--seed")
        .arg(&seed)
        .start();
    wait_for_ping(&mut controller, ng);
    let grew = growth_under_flood(ng, controller.pid());
    assert!(controller.terminate().success());
    let _ = std::fs::remove_file(&seed);
    assert!(
        grew < bound_kb,
        "controller grew {grew} KB (bound {bound_kb} KB, unbounded {unbounded_kb} KB)"
    );

    let mut node = Node::builder("epoll").ports(4).start();
    let grew = growth_under_flood(node.ng, node.pid());
    assert!(node.terminate().success());
    assert!(
        grew < bound_kb,
        "node grew {grew} KB (bound {bound_kb} KB, unbounded {unbounded_kb} KB)"
    );
}
