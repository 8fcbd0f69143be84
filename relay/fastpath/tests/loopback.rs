//! The program on the loopback interface, driven directly: what an entry
//! makes the kernel do with real datagrams between real sockets. Needs
//! root (CAP_BPF, CAP_NET_ADMIN), as CI has; without it these fail, they
//! do not skip.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use rtpmesh_fastpath::{Entry, FastPath, Mode, Source, Stats};

fn sock() -> UdpSocket {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

fn v4(s: &UdpSocket) -> SocketAddrV4 {
    match s.local_addr().unwrap() {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => unreachable!(),
    }
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&[0x55; 160]);
    p
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, a)| (buf[..n].to_vec(), a))
}

fn loaded(mode: Mode) -> FastPath {
    FastPath::load(mode, 64, Some(&["lo".to_string()]), 0).expect("load the fast path (root?)")
}

fn forwards_and_lets_go(mode: Mode) {
    let fp = loaded(mode);
    let (caller, p, q, callee, stranger) = (sock(), sock(), sock(), sock(), sock());
    let entry = Entry {
        local: v4(&p),
        source: Source::Learn(v4(&caller)),
        rtp: true,
        rtcp: true,
        from: v4(&q),
        to: v4(&callee),
        clock_rate: 8000,
    };
    let installed = fp.install(&entry, Stats::default()).expect("install");

    for seq in 1..=5 {
        caller.send_to(&rtp(seq), p.local_addr().unwrap()).unwrap();
        let (got, from) = recv(&callee).expect("forwarded in the kernel");
        assert_eq!(got, rtp(seq), "payload byte for byte");
        assert_eq!(from, q.local_addr().unwrap(), "as if sent from Q");
    }
    // RTCP (muxed): an RR, forwarded too.
    let rr = [0x80, 201, 0, 1, 1, 2, 3, 4];
    caller.send_to(&rr, p.local_addr().unwrap()).unwrap();
    assert_eq!(recv(&callee).expect("rtcp").0, rr);
    // Nothing reached the relay's socket.
    p.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    assert!(recv(&p).is_none());

    let s = fp.read(&installed);
    assert_eq!((s.rtp_packets, s.rtcp_packets), (5, 1));
    assert_eq!(s.rtp_bytes, 5 * 172);
    assert_eq!((s.has_ssrc, s.ssrc, s.received), (1, 0xdead_beef, 5));
    assert_eq!((s.base_seq, s.max_seq), (1, 5));

    // Another source under learning goes up to the socket as it is.
    stranger.send_to(&rtp(9), p.local_addr().unwrap()).unwrap();
    let (got, from) = recv(&p).expect("stranger goes up");
    assert_eq!((got, from), (rtp(9), stranger.local_addr().unwrap()));
    // Garbage too.
    caller.send_to(b"not rtp", p.local_addr().unwrap()).unwrap();
    assert_eq!(recv(&p).expect("garbage goes up").0, b"not rtp");

    let last = fp.remove(installed);
    assert_eq!(last.rtp_packets, 5);
    caller.send_to(&rtp(6), p.local_addr().unwrap()).unwrap();
    assert_eq!(recv(&p).expect("after removal, the socket").0, rtp(6));
    callee
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    assert!(recv(&callee).is_none());
}

#[test]
fn tc_forwards_a_latched_stream_and_lets_go() {
    forwards_and_lets_go(Mode::Tc);
}

#[test]
fn xdp_forwards_a_latched_stream_and_lets_go() {
    forwards_and_lets_go(Mode::Xdp);
}

#[test]
fn strict_source_drops_strangers_in_the_kernel() {
    let fp = loaded(Mode::Tc);
    let (caller, p, q, callee, stranger) = (sock(), sock(), sock(), sock(), sock());
    let entry = Entry {
        local: v4(&p),
        source: Source::Strict(v4(&caller)),
        rtp: true,
        rtcp: false,
        from: v4(&q),
        to: v4(&callee),
        clock_rate: 8000,
    };
    let installed = fp.install(&entry, Stats::default()).expect("install");
    stranger.send_to(&rtp(1), p.local_addr().unwrap()).unwrap();
    caller.send_to(&rtp(2), p.local_addr().unwrap()).unwrap();
    assert_eq!(recv(&callee).expect("caller's").0, rtp(2));
    p.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    assert!(recv(&p).is_none(), "the stranger's was dropped");
    let s = fp.read(&installed);
    assert_eq!((s.strict_drops, s.rtp_packets), (1, 1));
}

#[test]
fn ten_thousand_entries_come_and_go_while_100_streams_flow() {
    let fp = FastPath::load(Mode::Tc, 16_384, Some(&["lo".to_string()]), 0).expect("load");
    // 100 live streams: caller -> relay socket P -> from Q to the callee.
    let streams: Vec<(UdpSocket, UdpSocket, UdpSocket, UdpSocket)> =
        (0..100).map(|_| (sock(), sock(), sock(), sock())).collect();
    for (caller, p, q, callee) in &streams {
        let e = Entry {
            local: v4(p),
            source: Source::Learn(v4(caller)),
            rtp: true,
            rtcp: true,
            from: v4(q),
            to: v4(callee),
            clock_rate: 8000,
        };
        fp.install(&e, Stats::default())
            .expect("install a live stream");
    }
    // Meanwhile another thread adds and removes 10,000 entries for
    // addresses nobody sends to.
    let churn = std::thread::scope(|s| {
        let fp = &fp;
        let t = s.spawn(move || {
            for i in 0..10_000u32 {
                let local = SocketAddrV4::new(Ipv4Addr::new(127, 1, (i >> 8) as u8, i as u8), 9);
                let e = Entry {
                    local,
                    source: Source::Any,
                    rtp: true,
                    rtcp: false,
                    from: local,
                    to: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
                    clock_rate: 8000,
                };
                let h = fp.install(&e, Stats::default()).expect("install");
                fp.remove(h);
            }
        });
        let mut lost = 0;
        let mut seq = 0u16;
        while !t.is_finished() || seq < 20 {
            seq += 1;
            for (caller, p, _, callee) in &streams {
                caller.send_to(&rtp(seq), p.local_addr().unwrap()).unwrap();
                match recv(callee) {
                    Some((got, _)) if got == rtp(seq) => {}
                    _ => lost += 1,
                }
            }
        }
        t.join().expect("churn thread");
        (lost, seq)
    });
    assert_eq!(
        churn.0, 0,
        "lost packets over {} rounds of 100 streams",
        churn.1
    );
    assert_eq!(fp.installed(), 100);
}

#[test]
fn the_kernel_keeps_rfc3550_state_as_the_relay_does() {
    use rtpmesh_flow::stats::ReceiverStats;
    let fp = loaded(Mode::Tc);
    let (caller, p, q, callee) = (sock(), sock(), sock(), sock());
    let entry = Entry {
        local: v4(&p),
        source: Source::Learn(v4(&caller)),
        rtp: true,
        rtcp: false,
        from: v4(&q),
        to: v4(&callee),
        clock_rate: 8000,
    };
    let h = fp.install(&entry, Stats::default()).expect("install");
    // Loss, reordering, a duplicate, a wrap, a stray far jump and a
    // resync (two in a row far away).
    let seqs: Vec<u16> = [65530u16, 65531, 65533, 65532, 65535, 0, 0, 2, 1, 3]
        .into_iter()
        .chain([30_000, 4, 5, 40_000, 40_001, 40_002])
        .collect();
    let mut model = ReceiverStats::default();
    for &seq in &seqs {
        caller.send_to(&rtp(seq), p.local_addr().unwrap()).unwrap();
        recv(&callee).expect("forwarded");
        model.on_rtp(0xdead_beef, seq, u32::from(seq) * 160, 0);
    }
    let k = fp.read(&h);
    let m = model.state();
    assert_eq!(k.rtp_packets, seqs.len() as u64);
    assert_eq!(
        (
            k.received,
            u32::from(k.max_seq),
            k.cycles,
            k.base_seq,
            k.bad_seq
        ),
        (
            m.received,
            u32::from(m.max_seq),
            m.cycles,
            m.base_seq,
            m.bad_seq
        ),
        "kernel {k:?} against the relay's {m:?}"
    );
}
