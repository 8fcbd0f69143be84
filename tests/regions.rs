//! Regions for real: three network namespaces with 10/30/40 ms one-way
//! delays between them (scripts/netns-regions.sh), a real Redis server in
//! r1, two relay nodes per region and a controller, all the real
//! `rtpmesh` binary. The test plays the proxy (ng to the controller), the
//! parties and a media resource with real sockets inside the regions.
//!
//! Address plan in region N (10.X.N.host): .1 and .2 relay nodes, .3 the
//! call's party, .4 a media resource or an attacker, .5 the region's
//! gateway (only named: the proxy reports it as `received-from`), .8 the
//! controller (r1), .9 Redis (r1).

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::json::{at, first_media_streams, int_at, str_at};
use common::netns::Regions;
use common::ng::{self, reason, result, sdp_of, Ng};
use common::process::Process;
use common::{audio_sdp, eventually, media_addr, pcap_records, rtp};
use rtpmesh_ng::bencode::Value;
use rtpmesh_ng_udp::client::NgClient;

/// Heartbeat interval of the nodes under test.
const HEARTBEAT_MS: u64 = 500;

/// Starts `program` in `region`, its log and output in `dir`.
fn spawn(
    regions: &Regions,
    region: u8,
    name: &str,
    program: &str,
    args: &[String],
    dir: &Path,
) -> Process {
    regions
        .spec(region, name, program)
        .args(args)
        .env(
            "RUST_LOG",
            &std::env::var("RTPMESH_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout_to(dir.join(format!("{name}.out")))
        .log_to(dir.join(format!("{name}.log")))
        .start()
}

/// Three regions, Redis, six nodes, a controller.
struct World {
    // Dropped in field order: processes first, then the namespaces.
    controller: Process,
    nodes: HashMap<String, Process>,
    _redis: Process,
    dir: PathBuf,
    regions: Regions,
}

fn node_ids() -> Vec<(String, u8, u8)> {
    let mut v = Vec::new();
    for r in 1..=3u8 {
        for (h, s) in [(1u8, 'a'), (2, 'b')] {
            v.push((format!("n{r}{s}"), r, h));
        }
    }
    v
}

/// Redis in r1 (host .9), accepting connections.
fn start_redis(regions: &Regions, dir: &Path) -> (Process, SocketAddr) {
    let redis_addr = SocketAddr::new(regions.addr(1, 9), 6379);
    let mut redis = spawn(
        regions,
        1,
        "redis",
        "redis-server",
        &[
            "--bind".into(),
            redis_addr.ip().to_string(),
            "--port".into(),
            "6379".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--protected-mode".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
        ],
        dir,
    );
    redis.wait_ready(Duration::from_secs(10), "port open", || {
        regions.run_in(1, || {
            TcpStream::connect_timeout(&redis_addr, Duration::from_millis(200)).is_ok()
        })
    });
    (redis, redis_addr)
}

/// The controller in r1 (host .8), with the seed written to the registry.
fn start_controller(regions: &Regions, dir: &Path, registry: &str) -> Process {
    let seed = dir.join("seed.toml");
    std::fs::write(&seed, seed_text(regions)).unwrap();
    let ctl_ng = SocketAddr::new(regions.addr(1, 8), 2222);
    let mut controller = spawn(
        regions,
        1,
        "controller",
        env!("CARGO_BIN_EXE_rtpmesh"),
        &[
            "control".into(),
            "--listen-ng".into(),
            ctl_ng.to_string(),
            "--registry".into(),
            registry.to_owned(),
            "--seed".into(),
            seed.display().to_string(),
        ],
        dir,
    );
    // The controller writes the seed's regions to the registry before
    // it answers ng; a node registering in a region not there yet
    // exits, so the nodes start after this.
    let mut ping = controller_ng(regions, Duration::from_millis(200), 1);
    controller.wait_ready(Duration::from_secs(10), "ng ping", || ping.pings());
    controller
}

/// Two nodes per region, started (not waited for: the world's readiness
/// check covers them).
fn start_nodes(
    regions: &Regions,
    dir: &Path,
    registry: &str,
    backend: &str,
    workers: u8,
) -> HashMap<String, Process> {
    let bin = env!("CARGO_BIN_EXE_rtpmesh");
    let mut nodes = HashMap::new();
    for (id, r, h) in node_ids() {
        let ip = regions.addr(r, h);
        let rec = dir.join(format!("rec-{id}"));
        let args: Vec<String> = [
            "node",
            "--listen-ng",
            &format!("{ip}:2223"),
            "--interface",
            &ip.to_string(),
            "--port-min",
            "30000",
            "--port-max",
            "30999",
            "--workers",
            &workers.to_string(),
            "--backend",
            backend,
            "--tunnel-address",
            &format!("{ip}:7000"),
            "--tunnel-secret",
            "test cluster secret",
            "--recording-dir",
            &rec.display().to_string(),
            "--registry",
            registry,
            "--node-id",
            &id,
            "--region",
            &format!("r{r}"),
            "--heartbeat-ms",
            &HEARTBEAT_MS.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        nodes.insert(id.clone(), spawn(regions, r, &id, bin, &args, dir));
    }
    nodes
}

impl World {
    /// Brings up a world whose nodes use `backend` and `workers` threads.
    fn up(name: &str, backend: &str, workers: u8) -> Self {
        if let Some(why) = Regions::unsupported() {
            panic!("multi-region tests need network namespaces: {why}");
        }
        let regions = Regions::up(&Regions::unique_prefix(name));
        let dir = std::env::temp_dir().join(format!("rtpmesh-{}", regions.prefix()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (redis, redis_addr) = start_redis(&regions, &dir);
        let registry = format!("redis://{redis_addr}");
        let controller = start_controller(&regions, &dir, &registry);
        let nodes = start_nodes(&regions, &dir, &registry, backend, workers);
        let w = Self {
            controller,
            nodes,
            _redis: redis,
            dir,
            regions,
        };
        // Ready when every node is registered and usable: a call from each
        // region lands in it.
        let mut ng = w.ng();
        let ready = eventually(Duration::from_secs(20), || {
            (1..=3u8).all(|r| {
                let call = format!("ready-{r}");
                let mut items = ng::offer(&call, "t", &audio_sdp(w.regions.addr(r, 3), 4000));
                items.push(("region", format!("r{r}").into()));
                let ok = ng.try_req(items).is_ok_and(|v| result(&v) == "ok");
                let _ = ng.try_req(delete_now(&call));
                ok
            })
        });
        assert!(
            ready,
            "the regions did not come up: {}",
            w.controller.log_text()
        );
        w
    }

    /// An ng client for the controller, from the proxy's place in r1.
    fn ng(&self) -> Ng {
        controller_ng(&self.regions, Duration::from_millis(3000), 2)
    }

    /// An ng client for a node.
    fn node_ng(&self, id: &str) -> Ng {
        let (_, r, h) = node_ids().into_iter().find(|(n, _, _)| n == id).unwrap();
        let s = self.regions.udp_socket(r, 3, 0);
        Ng {
            c: NgClient::from_socket(s, SocketAddr::new(self.regions.addr(r, h), 2223))
                .unwrap()
                .with_retries(Duration::from_millis(2000), 2)
                .unwrap(),
        }
    }

    /// A party's socket in `region` (host .3, or .4 for `resource`).
    fn party(&self, region: u8, host: u8) -> UdpSocket {
        let s = self.regions.udp_socket(region, host, 0);
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    /// The node holding an address.
    fn node_at(&self, ip: IpAddr) -> String {
        node_ids()
            .into_iter()
            .find(|(_, r, h)| self.regions.addr(*r, *h) == ip)
            .map(|(n, _, _)| n)
            .unwrap_or_else(|| panic!("no node at {ip}"))
    }
}

/// An ng client for the controller from the proxy's place in r1, waiting
/// `wait` for a reply, `tries` times.
fn controller_ng(regions: &Regions, wait: Duration, tries: u32) -> Ng {
    let s = regions.udp_socket(1, 3, 0);
    Ng {
        c: NgClient::from_socket(s, SocketAddr::new(regions.addr(1, 8), 2222))
            .unwrap()
            .with_retries(wait, tries)
            .unwrap(),
    }
}

/// Regions, gateways, endpoints and configured latencies. The configured
/// figures are deliberately wrong (r3 looks closest to r1): the measured
/// ones (r2 10 ms, r3 30 ms from r1) must win.
fn seed_text(regions: &Regions) -> String {
    let gw = |r: u8| SocketAddr::new(regions.addr(r, 5), 5060);
    format!(
        r#"regions = ["r1", "r2", "r3"]
[[gateways]]
id = "gw1"
region = "r1"
sip = "{}"
[[gateways]]
id = "gw2"
region = "r2"
sip = "{}"
[[gateways]]
id = "gw3"
region = "r3"
sip = "{}"
[[latency]]
a = "r1"
b = "r2"
ms = 90
[[latency]]
a = "r1"
b = "r3"
ms = 5
[[latency]]
a = "r2"
b = "r3"
ms = 40
[[routes]]
endpoint = "bob"
gateway = "gw2"
[[routes]]
endpoint = "carol"
gateway = "gw1"
[[routes]]
endpoint = "carol"
gateway = "gw3"
[[routes]]
endpoint = "dave"
gateway = "gw2"
[[routes]]
endpoint = "dave"
gateway = "gw3"
"#,
        gw(1),
        gw(2),
        gw(3)
    )
}

/// An offer from r1's gateway for `callee`, by the party at `caller`.
fn offer(ng: &mut Ng, w: &World, call: &str, callee: &str, caller: SocketAddr) -> Value {
    let mut items = ng::offer(call, "caller", &audio_sdp(caller.ip(), caller.port()));
    items.extend([
        ("callee", callee.into()),
        (
            "received-from",
            Value::List(vec!["IP4".into(), w.regions.addr(1, 5).to_string().into()]),
        ),
        ("supports", Value::List(vec!["load limit".into()])),
    ]);
    ng.req(items)
}

fn answer(ng: &mut Ng, call: &str, callee: SocketAddr) -> Value {
    ng.req(ng::answer(
        call,
        "caller",
        "callee",
        &audio_sdp(callee.ip(), callee.port()),
    ))
}

/// `delete` of every leg of `call`, at once.
fn delete_now<'a>(call: &str) -> ng::Items<'a> {
    let mut items = ng::delete(call);
    items.push(("delete-delay", 0u64.into()));
    items
}

fn delete(ng: &mut Ng, call: &str) {
    let r = ng.req(delete_now(call));
    assert_eq!(result(&r), "ok", "{r:?}");
}

/// Sends `n` RTP packets (sequence from `first`), paced so the delayer in
/// the wan keeps up, and returns them.
fn send_rtp(from: &UdpSocket, to: SocketAddr, first: u16, n: u16) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let p = rtp(first.wrapping_add(i), 0x5151, 160);
            from.send_to(&p, to).unwrap();
            std::thread::sleep(Duration::from_millis(2));
            p
        })
        .collect()
}

/// Receives until `n` datagrams came or 3 s pass; returns them with their
/// sources.
fn receive(sock: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 2048];
    while got.len() < n && Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok((k, from)) = sock.recv_from(&mut buf) {
            got.push((buf[..k].to_vec(), from));
        }
    }
    got
}

/// RTP packets received on leg `leg` (by tag order) of a query reply.
fn stream_packets(q: &Value, leg: usize) -> i64 {
    let tags = at(q, &["tags"]).and_then(Value::as_dict).expect("tags");
    let leg = tags.values().nth(leg).expect("leg");
    int_at(&first_media_streams(leg)[0], &["stats", "packets"])
}

#[test]
// Long: the numbered steps share one world (regions, Redis, six nodes),
// which takes seconds to bring up.
fn regions_route_by_region_and_latency_and_carry_media_through_tunnels() {
    // io_uring, one worker per node.
    let w = World::up("rg", "uring", 1);
    let mut ng = w.ng();

    // 1. Measured latency beats the (wrong) configuration: dave is
    // reachable via gw2 (r2, 10 ms from r1) and gw3 (r3, 30 ms measured,
    // 5 ms configured); once the nodes' probes are in, r2 wins.
    let caller = w.party(1, 3);
    let chose_r2 = eventually(Duration::from_secs(15), || {
        let r = offer(
            &mut ng,
            &w,
            "probe-dave",
            "dave",
            caller.local_addr().unwrap(),
        );
        let gw = str_at(&r, &["route", "gateway"]).to_owned();
        delete(&mut ng, "probe-dave");
        gw == "gw2"
    });
    assert!(
        chose_r2,
        "measured latency never overrode the configured one: {}",
        w.controller.log_text()
    );

    // 2. Same region first: carol is at gw1 (r1) and gw3 (r3).
    let r = offer(&mut ng, &w, "same", "carol", caller.local_addr().unwrap());
    assert_eq!(result(&r), "ok", "{r:?}");
    assert_eq!(str_at(&r, &["route", "gateway"]), "gw1");
    assert_eq!(
        str_at(&r, &["route", "node"]),
        str_at(&r, &["route", "callee-node"])
    );
    assert!(str_at(&r, &["route", "node"]).starts_with("n1"));
    delete(&mut ng, "same");

    // 3. A cross-region call: caller (r1) → node in r1 → tunnel → node in
    // r2 → callee (r2), and back.
    let callee = w.party(2, 3);
    let r = offer(&mut ng, &w, "x1", "bob", caller.local_addr().unwrap());
    assert_eq!(result(&r), "ok", "{r:?}");
    assert_eq!(str_at(&r, &["route", "gateway"]), "gw2");
    assert_eq!(
        str_at(&r, &["route", "sip"]),
        SocketAddr::new(w.regions.addr(2, 5), 5060).to_string()
    );
    let a = str_at(&r, &["route", "node"]).to_owned();
    let b = str_at(&r, &["route", "callee-node"]).to_owned();
    assert!(a.starts_with("n1") && b.starts_with("n2"), "{a} {b}");
    let to_callee_side = media_addr(&sdp_of(&r), 0);
    assert_eq!(
        w.node_at(to_callee_side.ip()),
        b,
        "the callee is offered the r2 node"
    );
    let r = answer(&mut ng, "x1", callee.local_addr().unwrap());
    assert_eq!(result(&r), "ok", "{r:?}");
    let to_caller_side = media_addr(&sdp_of(&r), 0);
    assert_eq!(
        w.node_at(to_caller_side.ip()),
        a,
        "the caller is answered with the r1 node"
    );

    let sent = send_rtp(&caller, to_caller_side, 1, 50);
    let got = receive(&callee, 50);
    assert_eq!(got.len(), 50, "callee got {} of 50", got.len());
    for ((d, from), p) in got.iter().zip(&sent) {
        assert_eq!(d, p, "RTP changed on the way");
        assert_eq!(
            *from, to_callee_side,
            "media reaches the callee from the r2 node"
        );
    }
    let back = send_rtp(&callee, to_callee_side, 1000, 50);
    let got = receive(&caller, 50);
    assert_eq!(got.len(), 50, "caller got {} of 50", got.len());
    for ((d, from), p) in got.iter().zip(&back) {
        assert_eq!(d, p);
        assert_eq!(*from, to_caller_side);
    }
    // Each node saw the media on the expected legs: A received 50 from the
    // caller and 50 through the tunnel; B the reverse.
    let qa = w.node_ng(&a).query("x1");
    let qb = w.node_ng(&b).query("x1");
    assert_eq!(
        (stream_packets(&qa, 0), stream_packets(&qa, 1)),
        (50, 50),
        "{qa:?}"
    );
    assert_eq!(
        (stream_packets(&qb, 0), stream_packets(&qb, 1)),
        (50, 50),
        "{qb:?}"
    );
    let stats = |id: &str| w.node_ng(id).req(vec![("command", "statistics".into())]);
    assert!(int_at(&stats(&a), &["statistics", "tunnel", "packets"]) >= 50);

    // 4. A forged tunnel packet is dropped and counted; media goes on.
    let forger = w.party(2, 4);
    let a_ip = w.regions.addr(1, if a.ends_with('a') { 1 } else { 2 });
    let mut forged = vec![
        0x52,
        0x4D,
        rtpmesh_flow::tunnel::VERSION,
        0,
        0,
        0,
        0,
        9,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
    ];
    forged.extend_from_slice(&[0xAB; 16]);
    forged.extend_from_slice(&rtp(7, 0x6666, 160));
    let before = int_at(&stats(&a), &["statistics", "tunnel", "authfailures"]);
    forger
        .send_to(&forged, SocketAddr::new(a_ip, 7000))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || int_at(
            &stats(&a),
            &["statistics", "tunnel", "authfailures"]
        ) == before + 1),
        "forged tunnel packet not counted"
    );
    send_rtp(&callee, to_callee_side, 2000, 5);
    assert_eq!(
        receive(&caller, 5).len(),
        5,
        "media stopped after a forged packet"
    );

    // 5. A branch of the caller's media to a resource in r3: through a
    // tunnel to a node in r3, and recorded on A.
    let resource = w.party(3, 4);
    let r = ng.req(vec![
        ("command", "start branch".into()),
        ("call-id", "x1".into()),
        ("from-tag", "caller".into()),
        ("branch", "rec".into()),
        (
            "destination",
            resource.local_addr().unwrap().to_string().into(),
        ),
        ("region", "r3".into()),
    ]);
    assert_eq!(result(&r), "ok", "{r:?}");
    assert!(str_at(&r, &["branch-node"]).starts_with("n3"), "{r:?}");
    let forked = send_rtp(&caller, to_caller_side, 100, 40);
    let at_resource = receive(&resource, 40);
    let at_callee = receive(&callee, 40);
    assert_eq!(at_callee.len(), 40);
    assert_eq!(
        at_resource.len(),
        40,
        "resource got {} of 40",
        at_resource.len()
    );
    for ((d, _), p) in at_resource.iter().zip(&forked) {
        assert_eq!(d, p);
    }
    let r = ng.req(vec![
        ("command", "stop branch".into()),
        ("call-id", "x1".into()),
        ("branch", "rec".into()),
    ]);
    assert_eq!(result(&r), "ok", "{r:?}");
    let pcap = w.dir.join(format!("rec-{a}")).join(format!(
        "{}.pcap",
        rtpmesh_control::record::file_stem("x1", "caller", 1)
    ));
    let records = pcap_records(&pcap);
    assert_eq!(
        records,
        40,
        "local recording {} holds {records} of 40",
        pcap.display()
    );
    send_rtp(&caller, to_caller_side, 200, 5);
    assert_eq!(receive(&callee, 5).len(), 5);
    assert!(
        receive(&resource, 1).is_empty(),
        "branch still sending after stop"
    );
    delete(&mut ng, "x1");
}

#[test]
// Long: one running call is followed through a stopped, a crashed and a
// restarted node and a restarted controller.
fn a_stopped_node_is_avoided_at_once_and_other_calls_are_untouched() {
    // epoll, two workers per node: calls and their tunnel sockets spread
    // over both.
    let mut w = World::up("rs", "epoll", 2);
    let mut ng = w.ng();
    let caller = w.party(1, 3);
    let callee = w.party(2, 3);
    // A running cross-region call.
    let r = offer(&mut ng, &w, "keep", "bob", caller.local_addr().unwrap());
    assert_eq!(result(&r), "ok", "{r:?}");
    let a = str_at(&r, &["route", "node"]).to_owned();
    let kb = str_at(&r, &["route", "callee-node"]).to_owned();
    let to_callee_side = media_addr(&sdp_of(&r), 0);
    let r = answer(&mut ng, "keep", callee.local_addr().unwrap());
    let to_caller_side = media_addr(&sdp_of(&r), 0);
    send_rtp(&caller, to_caller_side, 1, 10);
    assert_eq!(receive(&callee, 10).len(), 10);

    // Stop the other r1 node: within one heartbeat interval, every new
    // call from r1 goes to the node that carries the running call.
    let other = if a == "n1a" { "n1b" } else { "n1a" };
    let stopped_at = Instant::now();
    w.nodes.get_mut(other).unwrap().terminate();
    std::thread::sleep(Duration::from_millis(HEARTBEAT_MS).saturating_sub(stopped_at.elapsed()));
    for i in 0..4 {
        let call = format!("after-{i}");
        let r = offer(&mut ng, &w, &call, "carol", caller.local_addr().unwrap());
        assert_eq!(result(&r), "ok", "{r:?}");
        assert_eq!(
            str_at(&r, &["route", "node"]),
            a,
            "a new call went to the stopped node"
        );
        delete(&mut ng, &call);
    }
    // The running call never noticed.
    send_rtp(&callee, to_callee_side, 500, 10);
    assert_eq!(receive(&caller, 10).len(), 10);

    // A crashed node (no goodbye) is passed over too: it carries nothing,
    // so selection prefers it; new calls to bob get the other r2 node
    // after at most the ng timeout.
    let crashed = if kb == "n2a" { "n2b" } else { "n2a" };
    w.nodes.get_mut(crashed).unwrap().signal(libc::SIGKILL);
    for i in 0..3 {
        let call = format!("crash-{i}");
        let r = offer(&mut ng, &w, &call, "bob", caller.local_addr().unwrap());
        assert_eq!(result(&r), "ok", "{r:?}");
        assert_eq!(str_at(&r, &["route", "callee-node"]), kb);
        delete(&mut ng, &call);
    }

    // Restart the node that carries the running call: it takes the call
    // back from Redis on the same ports and flow ids, and media flows
    // through the tunnel again without any signalling.
    w.nodes.get_mut(&a).unwrap().terminate();
    w.nodes.get_mut(&a).unwrap().restart();
    let mut a_ng = w.node_ng(&a);
    let back = eventually(Duration::from_secs(10), || {
        a_ng.try_req(ng::query("keep"))
            .is_ok_and(|q| result(&q) == "ok")
    });
    assert!(
        back,
        "restarted node did not restore the call: {}",
        w.nodes[&a].log_text()
    );
    send_rtp(&caller, to_caller_side, 3000, 10);
    assert_eq!(
        receive(&callee, 10).len(),
        10,
        "caller → callee after restart"
    );
    send_rtp(&callee, to_callee_side, 4000, 10);
    let got = receive(&caller, 10);
    assert_eq!(got.len(), 10, "callee → caller after restart");
    assert!(
        got.iter().all(|(_, from)| *from == to_caller_side),
        "same port after restart"
    );

    // Restart the controller too: its journal in Redis still says which
    // nodes carry the call, so the BYE's delete reaches both.
    w.controller.terminate();
    w.controller.restart();
    let mut ng = w.ng();
    let deleted = eventually(Duration::from_secs(10), || {
        ng.try_req(delete_now("keep"))
            .is_ok_and(|r| result(&r) == "ok" && r.get("warning").is_none())
    });
    assert!(
        deleted,
        "restarted controller lost the call: {}",
        w.controller.log_text()
    );
    for node in [&a, &kb] {
        let q = w.node_ng(node).query("keep");
        assert_eq!(reason(&q), "Unknown call-id", "{node} still has the call");
    }
    let _ = &w.dir;
}
