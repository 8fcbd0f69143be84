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
use crate::flow::Slot;

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
    closed: Vec<Slot>,
}

impl PacketSink for Sink {
    fn on_packet(
        &mut self,
        _now: Instant,
        slot: Slot,
        src: SocketAddr,
        _data: &[u8],
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
