//! The kernel fast path between network namespaces joined by veth: the
//! parties in one namespace, the node in another, so the program sees
//! frames as from a network (native XDP on veth, or TC), rewrites them and
//! sends them back out, and the parties' kernel checks the checksums.
//! Runs as root (CI does); without it, it fails loudly.

mod common;

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::process::{Process, Spec};
use common::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Two namespaces, `gen` (parties: .1 caller, .3 callee) and `relay`
/// (.2, the node), joined by one veth pair; removed on drop.
struct Pair {
    gen: String,
    relay: String,
    x: u8,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn in_ns(ns: &str, cmd: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "{cmd:?} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Pair {
    fn up(gen_csum_offload: bool) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("fp{}-{n}", std::process::id() % 100_000);
        let x = 100 + ((std::process::id() + n * 7) % 100) as u8;
        let p = Self {
            gen: format!("{id}-g"),
            relay: format!("{id}-r"),
            x,
        };
        ip(&["netns", "add", &p.gen]);
        ip(&["netns", "add", &p.relay]);
        let (vg, vr) = (format!("{id}g"), format!("{id}r"));
        ip(&[
            "link", "add", &vg, "netns", &p.gen, "type", "veth", "peer", "name", &vr, "netns",
            &p.relay,
        ]);
        for (ns, dev, hosts) in [(&p.gen, &vg, &[1u8, 3][..]), (&p.relay, &vr, &[2u8][..])] {
            for h in hosts {
                in_ns(
                    ns,
                    &["ip", "addr", "add", &format!("10.{x}.0.{h}/24"), "dev", dev],
                );
            }
            in_ns(ns, &["ip", "link", "set", dev, "up"]);
            in_ns(ns, &["ip", "link", "set", "lo", "up"]);
        }
        // Frames from the parties carry full UDP checksums, as from a NIC,
        // or (offload on) partial ones that only TC may touch.
        let tx = if gen_csum_offload { "on" } else { "off" };
        in_ns(&p.gen, &["ethtool", "-K", &vg, "tx", tx]);
        // Receiving redirected/XDP_TX'd frames needs NAPI on the peer.
        in_ns(&p.gen, &["ethtool", "-K", &vg, "gro", "on"]);
        p
    }

    fn addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.x, 0, host)
    }

    fn gen_dev(&self) -> String {
        self.gen.trim_end_matches("-g").to_string() + "g"
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{ns}");
        let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a valid namespace fd; only this thread moves.
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in namespace")
        })
    }

    fn party(&self, host: u8) -> UdpSocket {
        let a = SocketAddr::new(IpAddr::V4(self.addr(host)), 0);
        let s = Self::run_in(&self.gen, || UdpSocket::bind(a)).expect("bind party");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    /// A node in the relay namespace on `.2`, fast path `mode`, answering
    /// ng; and an ng client in the parties' namespace.
    fn node(&self, mode: &str) -> (Process, Ng) {
        let relay = self.addr(2);
        let ng_addr = SocketAddr::new(IpAddr::V4(relay), 2223);
        let (rtpmesh, relay_s) = (env!("CARGO_BIN_EXE_rtpmesh"), relay.to_string());
        let mut node = Spec::new(&format!("node-{mode}"), "ip")
            .env("RUST_LOG", "info")
            .args(["netns", "exec", &self.relay, rtpmesh, "node"])
            .args(["--listen-ng", &ng_addr.to_string(), "--interface", &relay_s])
            .args(["--port-min", "30000", "--port-max", "30099"])
            .args(["--fast-path", mode])
            .start();
        let mut ng = Self::run_in(&self.gen, || Ng::new(ng_addr));
        node.wait_ready(Duration::from_secs(10), "ng ping", || ng.pings());
        (node, ng)
    }

    /// `Udp: ... InCsumErrors` in the parties' namespace.
    fn csum_errors(&self) -> u64 {
        let snmp = in_ns(&self.gen, &["cat", "/proc/net/snmp"]);
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
        let i = names
            .split_whitespace()
            .position(|n| n == "InCsumErrors")
            .expect("InCsumErrors");
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.gen])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.relay])
            .status();
    }
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("a datagram within 2 s");
    (buf[..n].to_vec(), from)
}

fn through_the_kernel(mode: &str, gen_csum_offload: bool) {
    let p = Pair::up(gen_csum_offload);
    // XDP_TX back out of the relay's veth reaches the parties only if their
    // side runs an XDP program too: the fast path's own, with no entries.
    let _peer_prog = (mode == "xdp").then(|| {
        Pair::run_in(&p.gen, || {
            rtpmesh_fastpath::FastPath::load(
                rtpmesh_fastpath::Mode::Xdp,
                1,
                Some(&[p.gen_dev()]),
                0,
            )
            .expect("XDP on the parties' veth")
        })
    });
    let (node, mut ng) = p.node(mode);
    let log = node.log_text();
    assert!(log.contains("fast path on"), "{log}");
    if mode == "xdp" {
        assert!(log.contains("xdp-native"), "native XDP on veth: {log}");
    }

    let (a, b) = (p.party(1), p.party(3));
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();
    let sdp = |host: u8, port: u16| audio_sdp(IpAddr::V4(p.addr(host)), port);
    let offer = sdp_of(&ng.offer("v", "a", &(sdp(1, port(&a)) + "a=rtcp-mux\r\n"), vec![]));
    let answer = sdp_of(&ng.answer(
        "v",
        "a",
        "b",
        &(sdp(3, port(&b)) + "a=rtcp-mux\r\n"),
        vec![],
    ));
    let (to_b, to_a) = (media_addr(&offer, 0), media_addr(&answer, 0));
    // Latch both legs through the sockets.
    a.send_to(&rtp(1, 0xaaaa, 160), to_a).unwrap();
    assert_eq!(recv(&b).0, rtp(1, 0xaaaa, 160));
    b.send_to(&rtp(1, 0xbbbb, 160), to_b).unwrap();
    assert_eq!(recv(&a).0, rtp(1, 0xbbbb, 160));
    let stats = |ng: &mut Ng| {
        let s = ng.req(vec![("command", "statistics".into())]);
        (
            int_at(&s, &["statistics", "fastpath", "entries"]),
            int_at(&s, &["statistics", "fastpath", "packets"]),
        )
    };
    assert!(
        eventually(Duration::from_secs(5), || stats(&mut ng).0 == 2),
        "entries: {:?}",
        stats(&mut ng)
    );
    let errors_before = p.csum_errors();
    const N: u16 = 200;
    for seq in 2..2 + N {
        let x = rtp(seq, 0xaaaa, 160);
        a.send_to(&x, to_a).unwrap();
        assert_eq!(recv(&b), (x, to_b), "A->B byte for byte, from the relay");
        let y = rtp(seq, 0xbbbb, 160);
        b.send_to(&y, to_b).unwrap();
        assert_eq!(recv(&a), (y, to_a), "B->A");
    }
    let rr = rtcp_rr(0xaaaa);
    a.send_to(&rr, to_a).unwrap();
    assert_eq!(recv(&b).0, rr, "muxed RTCP too");
    assert_eq!(
        p.csum_errors(),
        errors_before,
        "no checksum errors at the parties"
    );
    assert!(
        eventually(Duration::from_secs(3), || stats(&mut ng).1
            == 2 * i64::from(N) + 1),
        "every packet in the kernel: {:?}",
        stats(&mut ng)
    );
}

#[test]
fn native_xdp_on_veth_forwards_with_valid_checksums() {
    through_the_kernel("xdp", false);
}

#[test]
fn tc_on_veth_forwards_with_valid_checksums() {
    through_the_kernel("tc", false);
}

#[test]
fn tc_on_veth_fixes_partial_checksums_from_local_senders() {
    through_the_kernel("tc", true);
}

#[test]
fn a_killed_node_leaves_nothing_attached() {
    for mode in ["tc", "xdp"] {
        let p = Pair::up(false);
        let (mut node, _ng) = p.node(mode);
        // An attachment left behind would keep the program loaded after
        // the process is gone.
        let log = node.log_text();
        let id = log
            .split("program=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("{mode}: no program id in the log: {log}"))
            .to_owned();
        let loaded = || {
            Command::new("bpftool")
                .args(["prog", "show", "id", &id])
                .output()
                .expect("run bpftool")
                .status
                .success()
        };
        assert!(loaded(), "{mode}: program {id} loaded while the node runs");
        node.signal(libc::SIGKILL);
        assert!(
            eventually(Duration::from_secs(5), || !loaded()),
            "{mode}: a killed node's program {id} is still loaded (attached)"
        );
    }
}
