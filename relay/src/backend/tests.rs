//! The same tests run against both backends: behaviour must be identical.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::epoll::Epoll;
use super::sys::EventFd;
use super::uring::{Uring, BUFFERS};
use super::{Backend, PacketSink, Transmit};
use rtpmesh_flow::flow::Slot;

const A: Slot = Slot {
    index: 0,
    generation: 1,
};
const B: Slot = Slot {
    index: 1,
    generation: 1,
};

/// Forwards what arrives on `a` to `dest` via `b`; records the rest.
struct Sink {
    a: Slot,
    b: Slot,
    out: [Transmit; 1],
    expect_src: SocketAddr,
    on_a: usize,
    bad_src: usize,
    on_b: usize,
    errors: Vec<Option<i32>>,
    drops: u32,
    stale: usize,
    closed: Vec<Slot>,
}

impl PacketSink for Sink {
    fn on_packet(
        &mut self,
        _now: Instant,
        slot: Slot,
        src: SocketAddr,
        _buf: &mut [u8],
        _len: usize,
    ) -> &[Transmit] {
        if slot == self.a {
            self.on_a += 1;
            if src != self.expect_src {
                self.bad_src += 1;
            }
            return &self.out;
        }
        if slot == self.b {
            self.on_b += 1;
        }
        &[]
    }
    fn on_send_error(&mut self, via: Slot, err: io::Error) {
        assert_eq!(via, self.b);
        self.errors.push(err.raw_os_error());
    }
    fn on_kernel_drops(&mut self, slot: Slot, total: u32) {
        assert_eq!(slot, self.a);
        self.drops = self.drops.max(total);
    }
    fn on_stale(&mut self, slot: Slot) {
        assert_eq!(slot, self.a);
        self.stale += 1;
    }
    fn on_closed(&mut self, slot: Slot) {
        self.closed.push(slot);
    }
}

struct Rig<Be: Backend + ?Sized> {
    backend: Box<Be>,
    wake: Arc<EventFd>,
    sink: Sink,
    a: SocketAddr,
    b: SocketAddr,
    /// Where copies go.
    c: UdpSocket,
    /// Sends to `a`.
    s: UdpSocket,
}

fn local() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// How the test sockets are set up.
#[derive(Clone, Copy, Default)]
struct Opts {
    /// IP_RECVERR on `b`: unconnected UDP sockets ignore ICMP errors
    /// unless asked.
    recverr: bool,
    /// A large receive buffer on `a`, so that more datagrams queue up
    /// than the buffer ring holds.
    big_rcvbuf: bool,
}

fn setopt(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> bool {
    // SAFETY: valid fd and option value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

fn rig<Be: Backend + ?Sized>(
    make: impl FnOnce(RawFd) -> io::Result<Box<Be>>,
    opts: Opts,
) -> Rig<Be> {
    let wake = Arc::new(EventFd::new().unwrap());
    let mut backend = make(wake.raw()).expect("backend");
    let (a, b, c, s) = (local(), local(), local(), local());
    c.set_nonblocking(true).unwrap();
    if opts.big_rcvbuf {
        let big = 32 << 20;
        // FORCE needs CAP_NET_ADMIN; otherwise rmem_max caps it.
        if !setopt(&a, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, big) {
            setopt(&a, libc::SOL_SOCKET, libc::SO_RCVBUF, big);
        }
    }
    if opts.recverr {
        assert!(setopt(&b, libc::IPPROTO_IP, libc::IP_RECVERR, 1));
    }
    let sink = Sink {
        a: A,
        b: B,
        out: [Transmit::plain(B, c.local_addr().unwrap())],
        expect_src: s.local_addr().unwrap(),
        on_a: 0,
        bad_src: 0,
        on_b: 0,
        errors: Vec::new(),
        drops: 0,
        stale: 0,
        closed: Vec::new(),
    };
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    backend.add_socket(A, a).unwrap();
    backend.add_socket(B, b).unwrap();
    Rig {
        backend,
        wake,
        sink,
        a: aa,
        b: ba,
        c,
        s,
    }
}

impl<Be: Backend + ?Sized> Rig<Be> {
    /// One poll that is sure to return.
    fn turn(&mut self) {
        self.wake.wake();
        self.backend.poll(&mut self.sink).unwrap();
    }

    /// Polls until `done` or `timeout`, reading everything that reaches
    /// `c` into `got` (source, payload).
    fn pump(
        &mut self,
        got: &mut Vec<(SocketAddr, Vec<u8>)>,
        timeout: Duration,
        mut done: impl FnMut(&Sink, &[(SocketAddr, Vec<u8>)]) -> bool,
    ) {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while !done(&self.sink, got) && Instant::now() < end {
            self.turn();
            let before = got.len();
            while let Ok((n, from)) = self.c.recv_from(&mut buf) {
                got.push((from, buf[..n].to_vec()));
            }
            if got.len() == before {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Sends `payloads` to `a` and waits for all of them at `c`.
    fn relay(&mut self, payloads: &[Vec<u8>]) {
        for p in payloads {
            self.s.send_to(p, self.a).unwrap();
        }
        let mut got = Vec::new();
        let n = payloads.len();
        self.pump(&mut got, Duration::from_secs(5), |_, g| g.len() >= n);
        let want: Vec<_> = payloads.iter().map(|p| (self.b, p.clone())).collect();
        assert_eq!(got, want);
    }
}

fn payloads(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{tag}-{i:05}").into_bytes())
        .collect()
}

/// Whether this machine can run the io_uring backend. A kernel or sandbox
/// without it fails the tests (both backends are the product), unless
/// `RTPMESH_SKIP_URING=1` says the operator knows.
fn uring_here() -> bool {
    match Uring::new(EventFd::new().unwrap().raw()) {
        Ok(_) => true,
        Err(e) if std::env::var_os("RTPMESH_SKIP_URING").is_some() => {
            eprintln!("io_uring unavailable here ({e}); skipped by RTPMESH_SKIP_URING");
            false
        }
        Err(e) => panic!("io_uring backend unavailable: {e} (set RTPMESH_SKIP_URING=1 to skip)"),
    }
}

/// Runs `test` on both backends.
fn each(test: impl Fn(&str, Rig<dyn Backend>), opts: Opts) {
    test(
        "epoll",
        rig(|fd| Ok(Box::new(Epoll::new(fd)?) as Box<dyn Backend>), opts),
    );
    if !uring_here() {
        return;
    }
    test(
        "io_uring",
        rig(|fd| Ok(Box::new(Uring::new(fd)?) as Box<dyn Backend>), opts),
    );
}

#[test]
fn forwards_payloads_from_the_right_socket() {
    each(
        |name, mut r| {
            for chunk in 0..6 {
                r.relay(&payloads(&format!("{name}{chunk}"), 50));
            }
            assert_eq!(r.sink.on_a, 300, "{name}");
            assert_eq!(r.sink.bad_src, 0, "{name}");
            assert!(r.sink.errors.is_empty(), "{name}: {:?}", r.sink.errors);
        },
        Opts::default(),
    );
}

#[test]
fn wake_makes_poll_return() {
    each(
        |name, mut r| {
            for _ in 0..3 {
                let wake = r.wake.clone();
                let t = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    wake.wake();
                });
                r.backend.poll(&mut r.sink).unwrap();
                t.join().unwrap();
                // The poll returned for the wake, which is still there for
                // the worker to reset (the backend must not eat it).
                let mut v = 0u64;
                // SAFETY: reads 8 bytes into a u64 from a non-blocking fd.
                let n = unsafe { libc::read(r.wake.raw(), (&mut v as *mut u64).cast(), 8) };
                assert_eq!(n, 8, "{name}: wake-up not left for the worker");
            }
        },
        Opts::default(),
    );
}

#[test]
fn remove_socket_stops_delivery_and_closes() {
    each(
        |name, mut r| {
            r.relay(&payloads(name, 10));
            let closed_now = r.backend.remove_socket(A);
            // Removing twice, or a stale slot, is harmless.
            assert!(r.backend.remove_socket(A));
            assert!(r.backend.remove_socket(Slot {
                index: 1,
                generation: 9,
            }));
            for p in payloads("late", 10) {
                r.s.send_to(&p, r.a).unwrap();
            }
            let mut got = Vec::new();
            r.pump(&mut got, Duration::from_millis(100), |_, _| false);
            assert!(got.is_empty(), "{name}: delivered after removal");
            assert_eq!(r.sink.on_a, 10, "{name}");
            // Closed now, or reported closed once the kernel let go.
            if !closed_now {
                assert_eq!(r.sink.closed, vec![A], "{name}: deferred close reported");
            }
            // The socket is closed: a connected sender hears so.
            let probe = local();
            probe.connect(r.a).unwrap();
            probe
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            probe.send(b"anyone?").unwrap();
            let e = probe.recv(&mut [0u8; 16]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{name}");
            // B still works; a new socket may take A's index.
            r.s.send_to(b"to b", r.b).unwrap();
            r.pump(&mut got, Duration::from_secs(5), |s, _| s.on_b == 1);
            assert_eq!(r.sink.on_b, 1, "{name}");
            let a2 = local();
            r.a = a2.local_addr().unwrap();
            let slot = Slot {
                index: 0,
                generation: 2,
            };
            r.sink.a = slot;
            r.backend.add_socket(slot, a2).unwrap();
            r.relay(&payloads(&format!("{name}-again"), 10));
        },
        Opts::default(),
    );
}

#[test]
fn send_errors_are_reported_and_relaying_goes_on() {
    each(
        |name, mut r| {
            let closed = local().local_addr().unwrap();
            let c = r.sink.out[0].dest;
            r.sink.out[0].dest = closed;
            for p in payloads("void", 20) {
                r.s.send_to(&p, r.a).unwrap();
            }
            let mut got = Vec::new();
            r.pump(&mut got, Duration::from_secs(2), |s, _| {
                s.on_a == 20 && !s.errors.is_empty()
            });
            assert_eq!(r.sink.on_a, 20, "{name}");
            eprintln!("{name}: send errors {:?}", r.sink.errors);
            assert!(
                r.sink.errors.iter().all(|e| *e == Some(libc::ECONNREFUSED)),
                "{name}: {:?}",
                r.sink.errors
            );
            // Later packets flow, on both sockets.
            r.sink.out[0].dest = c;
            r.relay(&payloads(name, 50));
            r.s.send_to(b"to b", r.b).unwrap();
            r.pump(&mut got, Duration::from_secs(5), |s, _| s.on_b == 1);
            assert_eq!(r.sink.on_b, 1, "{name}");
            // Copies to the closed port that fail are reported. epoll
            // cannot always tell: when `sendmmsg` sends some messages and
            // then fails, the kernel returns the count and the error is
            // gone (the failed message is resent and goes out), so there
            // only the absence of wrong errors is checked.
            if name == "io_uring" {
                assert!(!r.sink.errors.is_empty(), "{name}: no send error reported");
            }
        },
        Opts {
            recverr: true,
            ..Opts::default()
        },
    );
}

#[test]
fn transmits_skip_and_prepend() {
    each(
        |name, mut r| {
            // Sent before each payload, so that a skip of 32 (a tunnel
            // header) leaves the payload.
            let prefix = [0xeeu8; 32];
            let h = *b"0123456789abcdef0123456789ABCDEF";
            let c = r.sink.out[0].dest;
            for (skip, head) in [(4, None), (0, Some(h)), (32, Some(h))] {
                r.sink.out[0] = Transmit {
                    skip,
                    head,
                    ..Transmit::plain(B, c)
                };
                let sent: Vec<_> = payloads(name, 40)
                    .into_iter()
                    .map(|p| [&prefix[..], &p[..]].concat())
                    .collect();
                for p in &sent {
                    r.s.send_to(p, r.a).unwrap();
                }
                let mut got = Vec::new();
                r.pump(&mut got, Duration::from_secs(5), |_, g| {
                    g.len() >= sent.len()
                });
                let want: Vec<_> = sent
                    .iter()
                    .map(|p| {
                        let body = &p[usize::from(skip)..];
                        (
                            r.b,
                            [head.as_ref().map_or(&[][..], |h| &h[..]), body].concat(),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "{name}: skip {skip}, head {}", head.is_some());
            }
            // A skip past the end sends nothing (and is no send error).
            r.sink.out[0] = Transmit {
                skip: 2048,
                ..Transmit::plain(B, c)
            };
            let before = r.sink.on_a;
            r.s.send_to(b"short", r.a).unwrap();
            let mut got = Vec::new();
            r.pump(&mut got, Duration::from_millis(200), |s, _| s.on_a > before);
            r.pump(&mut got, Duration::from_millis(50), |_, _| false);
            assert_eq!(r.sink.on_a, before + 1, "{name}");
            assert!(got.is_empty(), "{name}");
            assert!(r.sink.errors.is_empty(), "{name}: {:?}", r.sink.errors);
        },
        Opts::default(),
    );
}

#[test]
fn datagrams_that_waited_too_long_are_dropped_and_reported() {
    each(
        |name, mut r| {
            let old = payloads(&format!("{name}-old"), 5);
            for p in &old {
                r.s.send_to(p, r.a).unwrap();
            }
            // Nobody reads for longer than the threshold: this sleep *is*
            // the overload being simulated, not a wait for an event.
            std::thread::sleep(Duration::from_nanos(super::stale::STALE_AFTER_NS) * 3 / 2);
            let fresh = payloads(&format!("{name}-fresh"), 5);
            for p in &fresh {
                r.s.send_to(p, r.a).unwrap();
            }
            let mut got = Vec::new();
            r.pump(&mut got, Duration::from_secs(5), |s, g| {
                s.stale + s.on_a == 10 && g.len() == s.on_a
            });
            assert!(r.sink.stale >= old.len(), "{name}: {} stale", r.sink.stale);
            assert_eq!(r.sink.stale + r.sink.on_a, 10, "{name}");
            // Whatever was forwarded is fresh; the old ones never left.
            for (_, p) in &got {
                assert!(!old.contains(p), "{name}: a stale datagram was forwarded");
            }
            // Unless the test machine stalled past the threshold itself,
            // the fresh ones all went through.
            if r.sink.stale == old.len() {
                let want: Vec<_> = fresh.iter().map(|p| (r.b, p.clone())).collect();
                assert_eq!(got, want, "{name}");
            }
        },
        Opts::default(),
    );
}

/// Blasts more datagrams than the buffer ring holds without polling,
/// then checks that every socket still relays every packet.
fn overload<Be: Backend + ?Sized>(name: &str, r: &mut Rig<Be>, expect_drops: bool) {
    let burst = payloads("burst", 3 * usize::from(BUFFERS));
    for p in &burst {
        r.s.send_to(p, r.a).unwrap();
    }
    // Let it settle: poll until nothing new reaches `c` for 200 ms.
    let mut got = Vec::new();
    let mut quiet = Instant::now();
    let mut seen = 0;
    let end = Instant::now() + Duration::from_secs(20);
    r.pump(&mut got, Duration::from_secs(20), |_, g| {
        if g.len() != seen {
            seen = g.len();
            quiet = Instant::now();
        }
        quiet.elapsed() > Duration::from_millis(200) || Instant::now() > end
    });
    assert!(r.sink.on_a > 0, "{name}");
    if expect_drops {
        assert!(r.sink.on_a < burst.len(), "{name}: no overload happened");
    }
    // Paced: every one of 100 arrives.
    for p in payloads(&format!("{name}-paced"), 100) {
        r.relay(&[p]);
    }
    if expect_drops {
        assert!(r.sink.drops > 0, "{name}: drops not reported");
    }
    r.s.send_to(b"to b", r.b).unwrap();
    r.pump(&mut got, Duration::from_secs(5), |s, _| s.on_b == 1);
    assert_eq!(r.sink.on_b, 1, "{name}");
}

#[test]
fn overload_never_stops_reception() {
    each(|name, mut r| overload(name, &mut r, true), Opts::default());
}

#[test]
fn uring_overload_exhausts_buffers_and_recovers() {
    if !uring_here() {
        return;
    }
    // The socket queues more than the ring holds, so the receive runs
    // out of buffers (ENOBUFS) and must be re-armed when they return.
    let opts = Opts {
        big_rcvbuf: true,
        ..Opts::default()
    };
    let mut r = rig(|fd| Uring::new(fd).map(Box::new), opts);
    overload("io_uring", &mut r, false);
    eprintln!(
        "received {} of the burst, {} ENOBUFS",
        r.sink.on_a,
        r.backend.enobufs()
    );
    assert!(r.backend.enobufs() > 0, "buffer ring never ran out");
}

#[test]
fn uring_drop_waits_for_the_kernel() {
    if !uring_here() {
        return;
    }
    let mut r = rig(|fd| Uring::new(fd).map(Box::new), Opts::default());
    r.relay(&payloads("q", 20));
    r.backend.remove_socket(B);
    // Everything in flight (receives, the wake poll, sends) ends, so
    // Drop may unmap the buffers.
    assert!(r.backend.quiesce_for_test());
}

#[test]
fn epoll_serves_other_sockets_while_one_is_flooded() {
    // A's queue holds far more than one turn reads; a datagram for B sent
    // after all of them must not wait for A's whole backlog.
    let mut r = rig(
        |fd| Ok(Box::new(Epoll::new(fd)?)),
        Opts {
            big_rcvbuf: true,
            ..Opts::default()
        },
    );
    let flood = payloads("flood", 3000);
    for p in &flood {
        r.s.send_to(p, r.a).unwrap();
    }
    r.s.send_to(b"for b", r.b).unwrap();
    let mut a_when_b = None;
    let end = Instant::now() + Duration::from_secs(5);
    while r.sink.on_a < flood.len() && Instant::now() < end {
        r.turn();
        if r.sink.on_b == 1 && a_when_b.is_none() {
            a_when_b = Some(r.sink.on_a);
        }
        let mut buf = [0u8; 64];
        while r.c.recv_from(&mut buf).is_ok() {}
    }
    assert_eq!(r.sink.on_a, flood.len(), "A's backlog is read in the end");
    let a_when_b = a_when_b.expect("B was served");
    assert!(
        a_when_b < flood.len(),
        "B waited for all of A's {} datagrams",
        flood.len()
    );
}

/// Tunnels end to end through the real worker logic ([`Forwarder`]) on a
/// backend: one worker plays both nodes, with two tunnel sockets.
///
/// Forward: `s` → A → (T1 → T2, sealed for socketless flow 100) → 100 → B
/// → `c`. Return: `c` → B → (T2 → T1, for flow 101) → 101 → A → `s`. The
/// return leg also makes each tunnel know the other as a peer.
mod tunnels {
    use super::*;
    use crate::worker::{Command, Event, Forwarder};
    use rtpmesh_flow::counters::FlowCounters;
    use rtpmesh_flow::flow::{Carries, FlowId, FlowSpec, Latching, Output};
    use rtpmesh_flow::rtp::PacketKind;
    use rtpmesh_flow::tunnel::{derive_key, seal};

    const T1: FlowId = FlowId(50);
    const T2: FlowId = FlowId(51);
    const SECRET: &[u8] = b"cluster secret";

    struct Node {
        backend: Box<dyn Backend>,
        wake: Arc<EventFd>,
        fwd: Forwarder,
        events: crossbeam_channel::Receiver<Event>,
        /// Media endpoints: `s` talks to A, `c` to B.
        s: UdpSocket,
        c: UdpSocket,
        a: SocketAddr,
        b: SocketAddr,
        t1: SocketAddr,
        t2: SocketAddr,
        /// T1's socket, shared: sends as T1 (for forged datagrams).
        t1_clone: UdpSocket,
        /// Counters of A, B, 100, 101, T1, T2.
        counters: [Arc<FlowCounters>; 6],
    }

    fn flow(id: u32, peer: Option<SocketAddr>, latching: Latching, out: Output) -> FlowSpec {
        FlowSpec {
            id: FlowId(id),
            peer,
            latching,
            carries: Carries::Muxed,
            rtp_outputs: vec![out],
            rtcp_outputs: vec![out],
            clock_rate: 8000,
            counters: Arc::default(),
            security: Default::default(),
        }
    }

    fn node(backend: Box<dyn Backend>, wake: Arc<EventFd>) -> Node {
        let (tx, events) = crossbeam_channel::bounded(1024);
        let mut n = {
            let (s, c) = (local(), local());
            s.set_nonblocking(true).unwrap();
            c.set_nonblocking(true).unwrap();
            let (a, b, t1, t2) = (local(), local(), local(), local());
            let counters: [Arc<FlowCounters>; 6] = Default::default();
            let addrs = [&a, &b, &t1, &t2].map(|s| s.local_addr().unwrap());
            let t1_clone = t1.try_clone().unwrap();
            let mut n = Node {
                backend,
                wake,
                fwd: Forwarder::new(tx, None),
                events,
                a: addrs[0],
                b: addrs[1],
                t1: addrs[2],
                t2: addrs[3],
                s,
                c,
                t1_clone,
                counters,
            };
            for (id, socket, counters) in [(T1, t1, 4), (T2, t2, 5)] {
                let cmd = Command::AddTunnel {
                    id,
                    socket,
                    secret: Arc::from(SECRET),
                    counters: n.counters[counters].clone(),
                };
                n.fwd.apply(cmd, n.backend.as_mut());
            }
            let tunnel = |via, dest, flow| Output::Tunnel { via, dest, flow };
            let specs = [
                flow(
                    1,
                    Some(n.s.local_addr().unwrap()),
                    Latching::Learn,
                    tunnel(T1, n.t2, 100),
                ),
                flow(
                    2,
                    Some(n.c.local_addr().unwrap()),
                    Latching::Learn,
                    tunnel(T2, n.t1, 101),
                ),
                flow(100, None, Latching::Asymmetric, Output::Peer(FlowId(2))),
                flow(101, None, Latching::Asymmetric, Output::Peer(FlowId(1))),
            ];
            let mut batch = Vec::new();
            for (i, (mut spec, socket)) in specs
                .into_iter()
                .zip([Some(a), Some(b), None, None])
                .enumerate()
            {
                spec.counters = n.counters[i].clone();
                batch.push((spec, socket));
            }
            n.fwd.apply(Command::Add(batch), n.backend.as_mut());
            n
        };
        assert!(n.events.try_recv().is_err(), "no command failed");
        n.turn();
        n
    }

    fn rtp(seq: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 8, 0, 0, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend((0..len).map(|i| (i as u8) ^ (seq as u8)));
        p
    }

    fn rtcp_sr(n: u8) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0, 6, 0x12, 0x34, 0x56, 0x78];
        p.extend([n; 20]);
        p
    }

    impl Node {
        fn turn(&mut self) {
            self.wake.wake();
            self.backend.poll(&mut self.fwd).unwrap();
        }

        /// Polls until `done` or 5 s, collecting what reaches `at`.
        fn pump(
            &mut self,
            at: fn(&Self) -> &UdpSocket,
            got: &mut Vec<(SocketAddr, Vec<u8>)>,
            mut done: impl FnMut(&Self, &[(SocketAddr, Vec<u8>)]) -> bool,
        ) {
            let end = Instant::now() + Duration::from_secs(5);
            let mut buf = [0u8; 4096];
            while !done(self, got) && Instant::now() < end {
                self.turn();
                let before = got.len();
                while let Ok((n, from)) = at(self).recv_from(&mut buf) {
                    got.push((from, buf[..n].to_vec()));
                }
                if got.len() == before {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }

        fn snap(&self, i: usize) -> rtpmesh_flow::counters::CounterSnapshot {
            self.counters[i].snapshot()
        }

        /// A datagram T1 could have sent to T2 for `flow`, `seq` places
        /// past where T1's real traffic (numbered from the clock) is.
        fn sealed(&self, flow: u32, seq: u64, inner: &[u8]) -> Vec<u8> {
            let ahead = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as u64
                + 3_600_000_000;
            // An hour or more ahead, rounded up: fixed for the test's run.
            let seq = (ahead / 10_000_000_000 + 1) * 10_000_000_000 + seq;
            let key = derive_key(SECRET, self.t1, self.t2);
            let mut d = seal(&key, PacketKind::Rtp, flow, seq, inner).to_vec();
            d.extend_from_slice(inner);
            d
        }

        /// Sends `d` from T1's socket to T2 and polls until T2's counters
        /// satisfy `done`.
        fn inject(&mut self, d: &[u8], done: fn(&rtpmesh_flow::counters::CounterSnapshot) -> bool) {
            self.t1_clone.send_to(d, self.t2).unwrap();
            let mut got = Vec::new();
            self.pump(|n| &n.c, &mut got, |n, _| done(&n.snap(5)));
            assert!(done(&self.snap(5)), "{:?}", self.snap(5));
            assert!(got.is_empty(), "forged or replayed datagram delivered");
        }
    }

    fn each(test: impl Fn(&str, Node)) {
        let wake = Arc::new(EventFd::new().unwrap());
        let b: Box<dyn Backend> = Box::new(Epoll::new(wake.raw()).unwrap());
        test("epoll", node(b, wake));
        if !uring_here() {
            return;
        }
        let wake = Arc::new(EventFd::new().unwrap());
        let b: Box<dyn Backend> = Box::new(Uring::new(wake.raw()).unwrap());
        test("io_uring", node(b, wake));
    }

    #[test]
    fn relays_rtp_and_rtcp_byte_identical_both_ways() {
        each(|name, mut n| {
            let mut want = Vec::new();
            let mut seq = 0u16;
            for i in 0..200u16 {
                let p = if i % 10 == 9 {
                    rtcp_sr(i as u8)
                } else {
                    seq += 1;
                    rtp(seq, 20 + usize::from(i) * 7 % 1200)
                };
                n.s.send_to(&p, n.a).unwrap();
                want.push((n.b, p));
                if i % 20 == 19 {
                    // Paced, so no socket buffer overflows on a busy host.
                    let mut got = Vec::new();
                    let k = want.len();
                    n.pump(|n| &n.c, &mut got, |_, g| g.len() >= 20);
                    let sent: Vec<_> = want[k - 20..].to_vec();
                    assert_eq!(got, sent, "{name}: forward leg");
                }
            }
            let (a, t1, t2, inner, b) = (n.snap(0), n.snap(4), n.snap(5), n.snap(2), n.snap(1));
            assert_eq!((a.rtp_packets, a.rtcp_packets), (180, 20), "{name}");
            assert_eq!((t2.rtp_packets, t2.rtcp_packets), (180, 20), "{name}");
            assert_eq!((inner.rtp_packets, inner.rtcp_packets), (180, 20), "{name}");
            assert_eq!(inner.lost, 0, "{name}: the tunnel leg lost nothing");
            assert_eq!(a.rtp_bytes + 180 * 32, t2.rtp_bytes, "{name}");
            assert_eq!(
                inner.rtp_bytes, a.rtp_bytes,
                "{name}: inner bytes untouched"
            );
            assert_eq!((a.forwarded, inner.forwarded), (200, 200), "{name}");
            assert_eq!(t1.errors() + t2.errors() + inner.errors() + b.errors(), 0);
            assert_eq!(t1.send_errors + t2.send_errors, 0, "{name}");

            // The way back.
            let mut got = Vec::new();
            let back: Vec<_> = (0..30).map(|i| rtp(1000 + i, 160)).collect();
            for p in &back {
                n.c.send_to(p, n.b).unwrap();
            }
            n.pump(|n| &n.s, &mut got, |_, g| g.len() >= back.len());
            let want: Vec<_> = back.iter().map(|p| (n.a, p.clone())).collect();
            assert_eq!(got, want, "{name}: return leg");
            assert_eq!(n.snap(4).rtp_packets, 30, "{name}");
            assert_eq!(n.snap(3).rtp_packets, 30, "{name}");
        });
    }

    #[test]
    fn forged_replayed_and_misdirected_datagrams_are_dropped_and_counted() {
        each(|name, mut n| {
            // Teach T2 its peer (and check the path) with real traffic.
            n.c.send_to(&rtp(1, 160), n.b).unwrap();
            n.s.send_to(&rtp(1, 160), n.a).unwrap();
            let mut got = Vec::new();
            n.pump(|n| &n.c, &mut got, |_, g| !g.is_empty());
            assert_eq!(got.len(), 1, "{name}");

            // Good tag, wrong source: a stranger cannot use a known key.
            let stranger = local();
            stranger
                .send_to(&n.sealed(100, 50, &rtp(2, 160)), n.t2)
                .unwrap();
            let mut got = Vec::new();
            n.pump(
                |n| &n.c,
                &mut got,
                |n, _| n.snap(5).tunnel_auth_failures == 1,
            );
            assert_eq!(n.snap(5).tunnel_auth_failures, 1, "{name}: unknown source");
            assert!(got.is_empty(), "{name}");

            // Right source, one bit flipped in the header, payload or tag.
            for (i, at) in [9usize, 40, 20].into_iter().enumerate() {
                let mut d = n.sealed(100, 60 + i as u64, &rtp(3, 160));
                d[at] ^= 0x10;
                n.inject(
                    &d,
                    match i {
                        0 => |c| c.tunnel_auth_failures == 2,
                        1 => |c| c.tunnel_auth_failures == 3,
                        _ => |c| c.tunnel_auth_failures == 4,
                    },
                );
            }

            // An authentic datagram goes through once; its copy is a replay.
            let d = n.sealed(100, 1_000, &rtp(4, 160));
            n.t1_clone.send_to(&d, n.t2).unwrap();
            let mut got = Vec::new();
            n.pump(|n| &n.c, &mut got, |_, g| !g.is_empty());
            assert_eq!(got, vec![(n.b, rtp(4, 160))], "{name}");
            n.inject(&d, |c| c.tunnel_replays == 1);
            // So is anything too far behind the window.
            n.inject(&n.sealed(100, 1_000 - 200, &rtp(5, 160)), |c| {
                c.tunnel_replays == 2
            });

            // Authentic, but for a flow that does not exist here, or that
            // has a socket of its own (media must not be injected there).
            n.inject(&n.sealed(999, 1_001, &rtp(6, 160)), |c| {
                c.tunnel_unknown_flow == 1
            });
            n.inject(&n.sealed(2, 1_002, &rtp(7, 160)), |c| {
                c.tunnel_unknown_flow == 2
            });

            let t2 = n.snap(5);
            assert_eq!(
                (
                    t2.tunnel_auth_failures,
                    t2.tunnel_replays,
                    t2.tunnel_unknown_flow
                ),
                (4, 2, 2),
                "{name}"
            );
            assert_eq!(t2.errors(), 8, "{name}");
            assert_eq!(
                n.snap(2).rtp_packets,
                2,
                "{name}: only authentic media reached 100"
            );
            assert_eq!(n.snap(1).errors(), 0, "{name}");
        });
    }

    #[test]
    fn tunnel_on_a_wildcard_address_is_refused() {
        each(|name, mut n| {
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
            let cmd = Command::AddTunnel {
                id: FlowId(60),
                socket,
                secret: Arc::from(SECRET),
                counters: Arc::default(),
            };
            n.fwd.apply(cmd, n.backend.as_mut());
            assert!(
                matches!(
                    n.events.try_recv(),
                    Ok(Event::Failed {
                        flow: FlowId(60),
                        ..
                    })
                ),
                "{name}"
            );
            assert!(n.fwd.table().slot(FlowId(60)).is_none(), "{name}");
        });
    }

    #[test]
    fn socketless_flows_close_at_once() {
        each(|name, mut n| {
            n.fwd
                .apply(Command::Remove(vec![FlowId(100)]), n.backend.as_mut());
            assert_eq!(
                n.events.try_recv(),
                Ok(Event::Closed { flow: FlowId(100) }),
                "{name}"
            );
            // Its tunnel traffic now has nowhere to go.
            n.s.send_to(&rtp(1, 160), n.a).unwrap();
            let mut got = Vec::new();
            n.pump(
                |n| &n.c,
                &mut got,
                |n, _| n.snap(5).tunnel_unknown_flow == 1,
            );
            assert_eq!(n.snap(5).tunnel_unknown_flow, 1, "{name}");
            assert!(got.is_empty(), "{name}");
        });
    }
}
