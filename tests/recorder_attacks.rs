//! Attacks on a real node's recorder: a stranger floods the recording
//! sockets (issue #10, point 10), and recording sockets must never sit in
//! the media range, where they would take a port a call needs. Also the
//! latching race: a stranger who sends first must not keep the return path.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use rtpmesh_ng::bencode::Value;

const LO: &str = "127.0.0.1";

fn lo() -> IpAddr {
    LO.parse().unwrap()
}

/// A fresh recording directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rtpmesh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The parties of a call through the node, and the relay addresses each
/// sends to.
struct Call {
    a: Party,
    b: Party,
    to_a: SocketAddr,
    to_b: SocketAddr,
}

fn call(ng: &mut Ng, id: &str) -> Call {
    let (a, _) = Party::pair(LO);
    let (b, _) = Party::pair(LO);
    let offer = sdp_of(&ng.offer(id, "a", &audio_sdp(lo(), a.port()), vec![]));
    let answer = sdp_of(&ng.answer(id, "a", "b", &audio_sdp(lo(), b.port()), vec![]));
    Call {
        to_a: media_addr(&answer, 0),
        to_b: media_addr(&offer, 0),
        a,
        b,
    }
}

fn command(ng: &mut Ng, command: &str, call: &str) {
    let r = ng.req(vec![
        ("command", Value::from(command)),
        ("call-id", call.into()),
    ]);
    assert_eq!(result(&r), "ok", "{command}: {r:?}");
}

/// The local UDP ports of process `pid`'s sockets, read from /proc: the
/// inodes of its socket descriptors, looked up in its network namespace's
/// UDP tables.
fn udp_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_str()?.to_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().unwrap();
                ports.insert(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

/// The ports of the recording sockets `start recording` opens on `node`.
fn start_recording(node: &Node, ng: &mut Ng, id: &str) -> Vec<u16> {
    let before = udp_ports(node.pid());
    command(ng, "start recording", id);
    udp_ports(node.pid()).difference(&before).copied().collect()
}

fn pcap_of(dir: &Path, call: &str, tag: &str) -> PathBuf {
    let stem = rtpmesh_control::record::file_stem(call, tag, 1);
    dir.join(format!("{stem}.pcap"))
}

/// Sends `n` datagrams of 1,000 bytes to each of `ports` on loopback.
fn flood(stranger: &UdpSocket, ports: &[u16], n: usize) {
    let junk = rtp(7, 0x5757_5757, 988);
    for _ in 0..n {
        for &p in ports {
            // A refused datagram (ICMP from an earlier one) is the
            // stranger's problem, not the test's.
            let _ = stranger.send_to(&junk, (lo(), p));
        }
    }
}

/// A stranger who finds the recording sockets floods them before, during
/// and after real media; each party's pcap holds exactly its own packets.
fn a_stranger_cannot_write_into_a_recording(backend: &str) {
    let dir = Dir::new(&format!("rec-attack-{backend}"));
    let node = Node::builder(backend)
        .args(&["--recording-dir", dir.0.to_str().unwrap()])
        .start();
    let mut ng = node.client();
    let c = call(&mut ng, "rec-attack");
    let ports = start_recording(&node, &mut ng, "rec-attack");
    assert_eq!(ports.len(), 2, "one recording socket per party");
    let stranger = UdpSocket::bind((lo(), 0)).unwrap();
    flood(&stranger, &ports, 5_000);
    for seq in 0..30u16 {
        c.a.send(c.to_a, &rtp(seq, 0xaaaa, 160));
        c.b.recv();
        flood(&stranger, &ports, 50);
        c.b.send(c.to_b, &rtp(seq, 0xbbbb, 160));
        c.a.recv();
    }
    flood(&stranger, &ports, 5_000);
    command(&mut ng, "stop recording", "rec-attack");
    for (tag, ssrc) in [("a", 0xaaaa), ("b", 0xbbbb)] {
        let pcap = pcap_of(&dir.0, "rec-attack", tag);
        assert_eq!(pcap_records(&pcap), 30, "{tag}: only its own packets");
        let size = std::fs::metadata(&pcap).unwrap().len();
        // 24-byte header; 16 + 20 + 8 + 172 bytes a packet.
        assert_eq!(size, 24 + 30 * (16 + 28 + 172), "{tag}: {size} bytes");
        let data = std::fs::read(&pcap).unwrap();
        let ssrc_bytes = u32::to_be_bytes(ssrc);
        assert_eq!(
            data.windows(4).filter(|w| *w == ssrc_bytes).count(),
            30,
            "{tag}: every record is the party's"
        );
    }
}

/// `start recording` and `stop recording`, again and again, on a node whose
/// media range covers half the kernel's ephemeral ports: no recording
/// socket ever lands inside it (the old recorder took whatever port the
/// kernel offered, and a call later found its pair taken).
fn recording_sockets_stay_out_of_the_media_range(backend: &str) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut it = text.split_whitespace().map(|v| v.parse::<u16>().unwrap());
    let (lo_port, hi_port) = (it.next().unwrap(), it.next().unwrap());
    let (min, max) = (lo_port, lo_port + (hi_port - lo_port) / 2);
    let dir = Dir::new(&format!("rec-range-{backend}"));
    let ng_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut node = Spec::rtpmesh(&format!("node-{}", ng_addr.port()))
        .arg("node")
        .args(["--listen-ng", &ng_addr.to_string()])
        .args(["--port-min", &min.to_string()])
        .args(["--port-max", &max.to_string()])
        .args(["--backend", backend])
        .args(["--recording-dir", dir.0.to_str().unwrap()])
        .must_stop()
        .start();
    wait_for_ping(&mut node, ng_addr);
    let mut ng = Ng::new(ng_addr);
    let c = call(&mut ng, "rec-range");
    let before = udp_ports(node.pid());
    for round in 0..20 {
        command(&mut ng, "start recording", "rec-range");
        let opened: Vec<u16> = udp_ports(node.pid()).difference(&before).copied().collect();
        assert_eq!(opened.len(), 2, "round {round}");
        for p in opened {
            assert!(
                !(min..=max).contains(&p),
                "round {round}: recording socket on port {p}, inside the media range {min}-{max}"
            );
        }
        c.a.send(c.to_a, &rtp(round, 0xaaaa, 160));
        c.b.recv();
        command(&mut ng, "stop recording", "rec-range");
        // The recorder closes a finished recording's sockets on its own
        // thread: wait for it, or the next round's new socket may reuse a
        // port this round's snapshot still holds.
        assert!(
            eventually(Duration::from_secs(5), || udp_ports(node.pid()) == before),
            "round {round}: the recording's sockets were not closed"
        );
    }
    // Every round recorded its packet: the sockets outside the range work.
    let recorded = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_owned();
            (name.contains("-a-1") && name.ends_with(".pcap")).then_some(p)
        })
        .map(|p| pcap_records(&p))
        .sum::<usize>();
    assert_eq!(recorded, 20);
}

/// The latching race (issue #10's design risk): a stranger who sends to
/// the relay port first latches the return path, but the party the SDP
/// names takes it back with its first packet, within the confirmation
/// window; the stranger's later packets move nothing.
fn a_stranger_who_sends_first_loses_the_return_path(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let c = call(&mut ng, "race");
    let stranger = Party::new(LO);
    stranger.send(c.to_a, &rtp(1, 0x5757, 40));
    assert_eq!(c.b.recv().0, rtp(1, 0x5757, 40), "forwarded, as rtpengine");
    c.b.send(c.to_b, &rtp(1, 0xbbbb, 40));
    assert_eq!(
        stranger.recv().0,
        rtp(1, 0xbbbb, 40),
        "the stranger latched"
    );
    // The real caller, from the address its SDP gave.
    c.a.send(c.to_a, &rtp(2, 0xaaaa, 40));
    assert_eq!(c.b.recv().0, rtp(2, 0xaaaa, 40));
    stranger.send(c.to_a, &rtp(3, 0x5757, 40));
    assert_eq!(c.b.recv().0, rtp(3, 0x5757, 40));
    c.b.send(c.to_b, &rtp(2, 0xbbbb, 40));
    assert_eq!(
        c.a.recv().0,
        rtp(2, 0xbbbb, 40),
        "the caller hears the callee"
    );
    stranger.expect_nothing(Duration::from_millis(100));
}

both_backends!(
    a_stranger_cannot_write_into_a_recording,
    recording_sockets_stay_out_of_the_media_range,
    a_stranger_who_sends_first_loses_the_return_path,
);
