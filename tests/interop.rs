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

use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::json::{at, int_at};
use common::pcap::count_records;
use common::process::{Process, Spec};
use common::{eventually, result, wait_for_ping, Ng, Node};
use rtpmesh_ng::bencode::Value;

/// Where the Kamailio cfg, the sipp scenarios and the capture live.
fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// Fails (never skips) when a tool the test drives is missing.
fn require_tools() {
    const HINT: &str =
        "run scripts/install-test-deps.sh (installs Debian's kamailio and sip-tester)";
    for (bin, arg) in [("kamailio", "-v"), ("sipp", "-v")] {
        let found = Command::new(bin)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(found, "`{bin}` is not installed: {HINT}");
    }
    // The module lives in an architecture-specific directory.
    let module = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .chain(
            std::fs::read_dir("/usr/lib64")
                .into_iter()
                .flatten()
                .flatten(),
        )
        .any(|e| e.path().join("kamailio/modules/rtpengine.so").exists());
    assert!(module, "Kamailio's rtpengine.so is not installed: {HINT}");
    // play_pcap_audio writes its RTP through a raw socket.
    // SAFETY: socket(2) takes plain integers and touches no memory of
    // ours; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP) };
    assert!(
        fd >= 0,
        "sipp's play_pcap_audio needs raw sockets (CAP_NET_RAW): run the interop test as root"
    );
    // SAFETY: `fd` is the socket just opened, owned by nothing else and
    // closed once.
    unsafe { libc::close(fd) };
}

/// A free even port whose next three ports are free too (sipp's echo uses
/// the media port and media port + 2; RTCP would use the odd ones).
fn free_port_run() -> u16 {
    loop {
        let p = common::free_port();
        if p.is_multiple_of(2)
            && p < 65530
            && (1..4).all(|i| UdpSocket::bind(("127.0.0.1", p + i)).is_ok())
        {
            return p;
        }
    }
}

/// A scratch directory, removed on drop unless the test failed (then its
/// logs are worth reading, and the path is printed).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rtpmesh-interop-{}-{}-{}",
            name,
            std::process::id(),
            common::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("interop logs kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// How long Kamailio, sipp and the controller get between SIGTERM and
/// SIGKILL when a test ends.
const GRACE: Duration = Duration::from_secs(5);

/// A Kamailio instance on loopback with its own runtime dir and pid file
/// (never the system service), pointed at one rtpmesh node.
struct Kamailio {
    process: Process,
    port: u16,
}

impl Kamailio {
    fn start(scratch: &Scratch, ng: std::net::SocketAddr) -> Self {
        Self::start_cfg(scratch, "kamailio.cfg", common::free_port(), ng, &[])
    }

    /// Kamailio with `cfg` from tests/interop on `port`, its relay set
    /// `ng`, and more `-A NAME=VALUE` defines.
    fn start_cfg(
        scratch: &Scratch,
        cfg: &str,
        port: u16,
        ng: std::net::SocketAddr,
        defines: &[String],
    ) -> Self {
        let mut spec = Spec::new("kamailio", "kamailio");
        for d in defines {
            spec = spec.arg("-A").arg(d);
        }
        let process = spec
            .arg("-f")
            .arg(interop_dir().join(cfg))
            // Foreground, log to stderr, two workers, private runtime files.
            .args(["-DD", "-E", "-n", "2", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(&scratch.0)
            .arg("-P")
            .arg(scratch.path("kamailio.pid"))
            .arg("-A")
            .arg(format!("SIP_PORT={port}"))
            .arg("-A")
            .arg(format!("NG_SOCK=\"udp:{ng}\""))
            .log_to(scratch.path("kamailio.log"))
            .grace(GRACE)
            .start();
        let mut k = Self { process, port };
        k.wait_ready();
        k
    }

    /// Kamailio answers OPTIONS once its SIP workers run (the cfg replies
    /// 200 to OPTIONS for itself).
    fn wait_ready(&mut self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let me = sock.local_addr().unwrap();
        let port = self.port;
        let mut n = 0;
        self.process
            .wait_ready(Duration::from_secs(10), "OPTIONS answered", || {
                n += 1;
                let options = format!(
                    "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {me};branch=z9hG4bK-ready-{n}\r\n\
                     From: <sip:probe@{me}>;tag=probe\r\n\
                     To: <sip:127.0.0.1:{port}>\r\n\
                     Call-ID: ready-{n}@{me}\r\n\
                     CSeq: {n} OPTIONS\r\n\
                     Max-Forwards: 70\r\n\
                     Content-Length: 0\r\n\r\n",
                );
                sock.send_to(options.as_bytes(), ("127.0.0.1", port))
                    .unwrap();
                let mut buf = [0u8; 2048];
                sock.recv(&mut buf)
                    .is_ok_and(|len| buf[..len].starts_with(b"SIP/2.0 200"))
            });
    }

    fn log_text(&self) -> String {
        self.process.log_text()
    }
}

/// One sipp run's settings.
struct Calls {
    /// Calls the UAC places.
    total: u32,
    /// Most at once (`-l`).
    concurrent: u32,
    /// Calls per second (`-r`).
    rate: u32,
    /// Calls the UAS expects to answer.
    answered: u32,
    /// The UAS scenario (`uas`, or `uas-busy` to reject every call).
    uas: &'static str,
}

/// What a sipp pair did, read from its files.
struct Outcome {
    uac: ExitStatus,
    uas: ExitStatus,
    /// UAC `-trace_stat` counters.
    uac_stats: HashMap<String, String>,
    /// Messages the UAC received.
    uac_received: Vec<String>,
    /// Messages the UAS received.
    uas_received: Vec<String>,
}

/// Runs a sipp UAS and a sipp UAC that calls it through Kamailio; the files
/// go to `scratch` under `tag`.
fn run_calls(scratch: &Scratch, kamailio: &Kamailio, calls: &Calls, tag: &str) -> Outcome {
    run_calls_to(scratch, kamailio, calls, tag, Target::Uas)
}

/// Where the UAC addresses its INVITEs.
enum Target {
    /// The UAS itself (on a port of its own): Kamailio relays to the
    /// Request-URI.
    Uas,
    /// `user` at Kamailio, the UAS listening on `uas_port`: Kamailio has to
    /// find the UAS itself.
    Proxy { user: &'static str, uas_port: u16 },
}

fn run_calls_to(
    scratch: &Scratch,
    kamailio: &Kamailio,
    calls: &Calls,
    tag: &str,
    target: Target,
) -> Outcome {
    let (uas_port, uri_port, service) = match target {
        Target::Uas => {
            let p = common::free_port();
            (p, p, "service")
        }
        Target::Proxy { user, uas_port } => (uas_port, kamailio.port, user),
    };
    let uas_media = free_port_run();
    let uac_media = free_port_run();
    let file = |f: &str| scratch.path(&format!("{tag}-{f}"));
    let sipp = |role: &str, scenario: &str| {
        Spec::new(&format!("sipp {role}"), "sipp")
            .current_dir(&interop_dir())
            .arg("-sf")
            .arg(format!("{scenario}.xml"))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin"])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(file(&format!("{role}.msg")))
            .arg("-trace_stat")
            .arg("-stf")
            .arg(file(&format!("{role}.csv")))
            .arg("-trace_err")
            .arg("-error_file")
            .arg(file(&format!("{role}-errors.log")))
            .stdout_to(file(&format!("{role}.out")))
            .log_to(file(&format!("{role}.err")))
            .grace(GRACE)
    };
    let mut uas = sipp("uas", calls.uas)
        .args(["-p", &uas_port.to_string()])
        .args(["-mp", &uas_media.to_string(), "-rtp_echo"])
        .args(["-m", &calls.answered.to_string()])
        // Bounded even if calls never arrive.
        .args(["-timeout", "40s"])
        .start();
    // The UAS binds its SIP port at once; wait for it, not a fixed time.
    assert!(
        eventually(Duration::from_secs(5), || UdpSocket::bind((
            "127.0.0.1",
            uas_port
        ))
        .is_err()),
        "sipp UAS did not bind its port"
    );
    let mut uac = sipp("uac", "uac")
        .arg(format!("127.0.0.1:{}", kamailio.port))
        // Its own port, or sipp advertises 5060 in Via and Contact.
        .args(["-p", &common::free_port().to_string()])
        .args(["-key", "uas_port", &uri_port.to_string()])
        .args(["-s", service])
        .args(["-mp", &uac_media.to_string()])
        .args(["-l", &calls.concurrent.to_string()])
        .args(["-m", &calls.total.to_string()])
        .args(["-r", &calls.rate.to_string()])
        .args(["-timeout", "30s", "-timeout_error"])
        .start();
    let uac_status = uac.wait_exit(Duration::from_secs(35));
    let uas_status = uas.wait_exit(Duration::from_secs(10));
    Outcome {
        uac: uac_status,
        uas: uas_status,
        uac_stats: stat_counters(&std::fs::read_to_string(file("uac.csv")).unwrap_or_default()),
        uac_received: received(&std::fs::read_to_string(file("uac.msg")).unwrap_or_default()),
        uas_received: received(&std::fs::read_to_string(file("uas.msg")).unwrap_or_default()),
    }
}

/// The last row of a sipp `-trace_stat` file, keyed by its header.
fn stat_counters(csv: &str) -> HashMap<String, String> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let last = lines.next_back().unwrap_or_default();
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn counter(o: &Outcome, name: &str) -> u64 {
    o.uac_stats
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in sipp's stats: {:?}", o.uac_stats))
}

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

/// The SIP messages a sipp `-trace_msg` log shows as received.
fn received(log: &str) -> Vec<String> {
    // Each entry starts with a dashed line and a time stamp, then
    // "UDP message received [N] bytes :" or "... sent ...", a blank line,
    // and the message.
    log.split("----------------------------------------------- ")
        .filter_map(|entry| {
            let (_, rest) = entry.split_once(" message received [")?;
            let (_, msg) = rest.split_once("bytes :")?;
            Some(msg.trim_start().to_owned())
        })
        .collect()
}

/// The `c=` address and `m=audio` port of a message's SDP body.
fn sdp_media(msg: &str) -> Option<(String, u16)> {
    let (_, body) = msg.split_once("\r\n\r\n")?;
    let c = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .trim()
        .to_owned();
    let port = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some((c, port))
}

/// The Call-ID header of a message.
fn call_id(msg: &str) -> String {
    msg.lines()
        .find_map(|l| l.strip_prefix("Call-ID:"))
        .unwrap_or("")
        .trim()
        .to_owned()
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
