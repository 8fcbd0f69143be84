//! Shared helpers for the integration tests: start the real `rtpmesh`
//! binary, talk ng to it, and play the two parties of a call with real UDP
//! sockets on loopback.
//!
//! Modules: [`process`] starts and stops any program under test, [`ng`]
//! builds requests and reads replies, [`json`] digs into replies, [`pcap`]
//! counts recordings, [`netns`] builds network-namespace regions, [`call`]
//! sets up a two-party call on loopback. For WebRTC: [`browser`] runs
//! headless Chromium, [`page_server`] serves its page and takes its posts,
//! [`plain_rtp`] is the plain-RTP far end, [`relay`] picks rtpmesh or
//! rtpengine as the relay under test.
#![allow(dead_code, unreachable_pub)]

pub mod browser;
pub mod call;
pub mod json;
pub mod libsrtp;
pub mod netns;
pub mod ng;
pub mod page_server;
pub mod pcap;
pub mod plain_rtp;
pub mod process;
pub mod redis;
pub mod relay;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

// Each test binary uses a different subset of these.
#[allow(unused_imports)]
pub use json::{at, int_at};
#[allow(unused_imports)]
pub use ng::{reason, result, sdp_of, Ng};
#[allow(unused_imports)]
pub use pcap::pcap_records;
pub use process::{Process, Spec};

/// Media ports are handed out below the kernel's ephemeral range
/// (32768+), so the test's own sockets never sit in a node's range; each
/// test binary has its own window, so binaries run side by side do not
/// collide.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

fn window() -> (u16, u16) {
    match env!("CARGO_CRATE_NAME") {
        "media" => (10000, 24000),
        "signalling" => (24000, 27500),
        _ => (27500, 32700),
    }
}

/// A contiguous block of `n` ports for one node's media range.
pub fn port_block(n: u16) -> (u16, u16) {
    let (lo, hi) = window();
    let start = lo + NEXT_PORT.fetch_add(n, Ordering::SeqCst);
    assert!(start + n <= hi, "test port blocks exhausted");
    (start, start + n - 1)
}

/// A free UDP port for an ng listener (bound and released at once).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Raises this process's open-file limit (the big tests open thousands of
/// sockets).
pub fn raise_fd_limit() {
    rtpmesh_control::daemon::raise_fd_limit();
}

/// A running node; stopped (SIGTERM, then waited for) on drop, which fails
/// the test if the node ignores SIGTERM.
pub struct Node {
    process: Process,
    /// ng address.
    pub ng: SocketAddr,
    /// Media range.
    pub ports: (u16, u16),
}

/// Builder for a node's command line.
pub struct NodeBuilder {
    backend: String,
    ports: u16,
    args: Vec<String>,
}

impl NodeBuilder {
    /// Media range size (default 200 ports).
    pub fn ports(mut self, n: u16) -> Self {
        self.ports = n;
        self
    }

    /// Extra command-line arguments.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }

    /// More command-line arguments.
    pub fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| (*s).to_owned()));
        self
    }

    /// Starts the node and waits until it answers `ping`.
    pub fn start(self) -> Node {
        let ports = port_block(self.ports);
        let ng: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut process = Spec::rtpmesh(&format!("node-{}", ng.port()))
            .arg("node")
            .args(["--listen-ng", &ng.to_string()])
            .args(["--port-min", &ports.0.to_string()])
            .args(["--port-max", &ports.1.to_string()])
            .args(["--backend", &self.backend])
            .args(&self.args)
            // A node that ignores SIGTERM must not hang the whole binary.
            .grace(Duration::from_secs(20))
            .must_stop()
            .start();
        wait_for_ping(&mut process, ng);
        Node { process, ng, ports }
    }
}

/// Waits (10 s at most) until the rtpmesh process `p` answers `ping` at
/// `ng`.
pub fn wait_for_ping(p: &mut Process, ng: SocketAddr) {
    let mut c = Ng::with_retries(ng, Duration::from_millis(200), 1);
    p.wait_ready(Duration::from_secs(10), "ng ping", || c.pings());
}

impl Node {
    /// A node using `backend` (`epoll` or `uring`).
    pub fn builder(backend: &str) -> NodeBuilder {
        NodeBuilder {
            backend: backend.to_owned(),
            ports: 200,
            args: Vec::new(),
        }
    }

    /// A node with defaults.
    pub fn start(backend: &str) -> Self {
        Self::builder(backend).start()
    }

    /// The node's log so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// An ng client for this node.
    pub fn client(&self) -> Ng {
        Ng::new(self.ng)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Sends SIGTERM and waits; returns the exit status.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.process.terminate()
    }
}

/// A plain audio SDP for a party at `ip:port`.
pub fn audio_sdp(ip: IpAddr, port: u16) -> String {
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=- 1545997027 1 IN {fam} {ip}\r\ns=tester\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// The relay address and port of m= line `index` (0-based) in `sdp`.
pub fn media_addr(sdp: &str, index: usize) -> SocketAddr {
    let mut session_c = None;
    let mut media_c = None;
    let mut port = None;
    let mut seen = 0usize;
    for line in sdp.lines() {
        if let Some(c) = line.strip_prefix("c=") {
            let ip: IpAddr = c.split(' ').nth(2).unwrap().parse().unwrap();
            if seen == 0 {
                session_c = Some(ip);
            } else if seen == index + 1 {
                media_c = Some(ip);
            }
        }
        if let Some(m) = line.strip_prefix("m=") {
            seen += 1;
            if seen == index + 1 {
                port = Some(m.split(' ').nth(1).unwrap().parse().unwrap());
            }
        }
    }
    SocketAddr::new(
        media_c.or(session_c).expect("c= line"),
        port.expect("m= line"),
    )
}

/// Whether `sdp` has line `line` (exact, without CRLF).
pub fn has_line(sdp: &str, line: &str) -> bool {
    sdp.lines().any(|l| l == line)
}

/// An RTP packet with a recognisable payload.
pub fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8) ^ (ssrc as u8)));
    p
}

/// An RTCP receiver report.
pub fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

/// One party of a call: a UDP socket.
pub struct Party {
    /// The socket.
    pub sock: UdpSocket,
}

impl Party {
    /// A party on `ip` with an ephemeral port.
    pub fn new(ip: &str) -> Self {
        let sock = UdpSocket::bind((ip.parse::<IpAddr>().unwrap(), 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(2000)))
            .unwrap();
        Self { sock }
    }

    /// A party with an RTP socket at an even port whose next port is free
    /// too; returns (rtp, rtcp).
    pub fn pair(ip: &str) -> (Self, Self) {
        loop {
            let a = Self::new(ip);
            let p = a.port();
            if p.is_multiple_of(2) {
                if let Ok(b) = UdpSocket::bind((ip.parse::<IpAddr>().unwrap(), p + 1)) {
                    b.set_read_timeout(Some(Duration::from_millis(2000)))
                        .unwrap();
                    return (a, Self { sock: b });
                }
            }
        }
    }

    /// Local address.
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Local port.
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// Sends `data` to `to`.
    pub fn send(&self, to: SocketAddr, data: &[u8]) {
        self.sock.send_to(data, to).unwrap();
    }

    /// Receives one datagram, or `None` after `wait`.
    pub fn recv_within(&self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        match self.sock.recv_from(&mut buf) {
            Ok((n, from)) => Some((buf[..n].to_vec(), from)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// Receives one datagram (2 s at most, else panics).
    pub fn recv(&self) -> (Vec<u8>, SocketAddr) {
        self.recv_within(Duration::from_secs(2))
            .expect("a datagram within 2 s")
    }

    /// Asserts that nothing arrives within `wait`.
    pub fn expect_nothing(&self, wait: Duration) {
        if let Some((d, from)) = self.recv_within(wait) {
            panic!("unexpected datagram of {} bytes from {from}", d.len());
        }
    }

    /// Reads everything queued until `quiet` passes with nothing new.
    pub fn drain(&self, quiet: Duration) -> usize {
        let mut n = 0;
        while self.recv_within(quiet).is_some() {
            n += 1;
        }
        n
    }
}

/// Polls `f` every 20 ms until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Declares each listed test function once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod epoll {
            $( #[test] fn $name() { super::$name("epoll") } )*
        }
        mod uring {
            $( #[test] fn $name() { super::$name("uring") } )*
        }
    };
}
