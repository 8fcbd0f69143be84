//! Recordings end to end: packets sent over loopback UDP, the files read
//! back.

use super::*;

#[test]
fn records_pcmu_with_reorder_and_loss() {
    record_g711(0, 0xff, 7, lo4());
}

#[test]
fn records_pcma() {
    record_g711(8, 0xd5, 6, lo4());
}

#[test]
fn records_over_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback; skipped");
        return;
    }
    record_g711(0, 0xff, 7, IpAddr::V6(Ipv6Addr::LOCALHOST));
}

#[test]
fn hostile_call_id_stays_inside_dir() {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    let sock = sender(lo4());
    let mut s = spec("../../../../tmp/evil\0/..", sock.local_addr().unwrap());
    s.tag = "/etc/passwd".into();
    let r = rec.open(s).unwrap();
    sock.send_to(&rtp(0, 1, 0, &[0xff; 160]), r.addr).unwrap();
    let files = rec.close(r.id).unwrap();
    for p in [files.pcap, files.wav.unwrap()] {
        assert_eq!(p.parent(), Some(dir.0.as_path()), "{}", p.display());
        assert!(p.exists());
    }
    let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(names.len(), 2);
}

#[test]
fn close_of_unknown_id_errors() {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    let r = rec
        .open(spec("c", sender(lo4()).local_addr().unwrap()))
        .unwrap();
    rec.close(r.id).unwrap();
    assert!(matches!(rec.close(r.id), Err(RecordError::UnknownRecording(id)) if id == r.id));
    assert!(matches!(
        rec.stats(RecordingId(999)),
        Err(RecordError::UnknownRecording(_))
    ));
}

#[test]
fn same_leg_twice_gets_a_second_name_and_no_wav_without_g711() {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    let sock = sender(lo4());
    let a = rec.open(spec("c", sock.local_addr().unwrap())).unwrap();
    let b = rec.open(spec("c", sock.local_addr().unwrap())).unwrap();
    let list = rec.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_ne!(list[0].pcap, list[1].pcap);
    sock.send_to(&rtp(101, 1, 0, &[1, 2, 3, 4]), b.addr)
        .unwrap();
    sock.send_to(&rtcp_rr(), b.addr).unwrap();
    assert!(rec.close(a.id).unwrap().wav.is_none());
    let files = rec.close(b.id).unwrap();
    assert_eq!(files.pcap, dir.0.join("c-from-tag-0.1.pcap"));
    assert!(files.wav.is_none());
    assert_eq!((files.stats.wav_skipped, files.stats.rtcp), (1, 1));
    assert_eq!(read_pcap(&files.pcap).len(), 2);
}

#[test]
fn stats_count_while_open_and_drop_finalizes() {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    let sock = sender(lo4());
    let r = rec.open(spec("drop", sock.local_addr().unwrap())).unwrap();
    for seq in 0..30u16 {
        sock.send_to(&rtp(0, seq, u32::from(seq) * 160, &samples(seq)), r.addr)
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rec.stats(r.id).unwrap().packets < 30 {
        assert!(std::time::Instant::now() < deadline, "packets not counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The periodic header rewrite makes the open file playable already
    // (in order, so nothing waits in the reorder window).
    let wav = dir.0.join("drop-from-tag-0.wav");
    // The header's data size alone: the samples may reach the file a
    // moment before the sizes do.
    let data_size =
        || std::fs::read(&wav).map_or(0, |b| if b.len() >= 58 { le32(&b, 54) } else { 0 });
    while data_size() < 30 * 160 {
        assert!(
            std::time::Instant::now() < deadline,
            "WAV header not rewritten"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_wav(&wav).1.len(), 30 * 160);
    drop(rec);
    let (_, data) = read_wav(&wav);
    assert_eq!(data.len(), 30 * 160);
    assert_eq!(read_pcap(&dir.0.join("drop-from-tag-0.pcap")).len(), 30);
}

#[test]
fn bind_failure_is_an_error() {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    // TEST-NET-1 is not a local address.
    let e = rec.open(spec("c", "192.0.2.1:4000".parse().unwrap()));
    assert!(matches!(e, Err(RecordError::Bind { .. })), "{e:?}");
}

#[test]
fn a_write_error_is_counted_and_others_keep_recording() {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    let sock = sender(lo4());
    let bad = rec.open(spec("bad", sock.local_addr().unwrap())).unwrap();
    let good = rec.open(spec("good", sock.local_addr().unwrap())).unwrap();
    // The WAV is created on the first G.711 packet; make its path lead to
    // a device where every write fails with ENOSPC.
    std::os::unix::fs::symlink("/dev/full", dir.0.join("bad-from-tag-0.wav")).unwrap();
    let send = |seqs: std::ops::Range<u16>| {
        for seq in seqs {
            let p = rtp(0, seq, u32::from(seq) * 160, &samples(seq));
            sock.send_to(&p, bad.addr).unwrap();
            sock.send_to(&p, good.addr).unwrap();
        }
    };
    send(0..10);
    // The buffered samples meet the device at the once-a-second flush.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rec.stats(bad.id).unwrap().write_errors == 0 {
        assert!(std::time::Instant::now() < deadline, "no write error seen");
        std::thread::sleep(Duration::from_millis(50));
    }
    send(10..20);
    let b = rec.close(bad.id).unwrap();
    assert!(b.wav.is_none(), "an abandoned WAV is not reported");
    assert!(b.stats.write_errors >= 11, "{:?}", b.stats);
    assert_eq!(read_pcap(&b.pcap).len(), 20, "the pcap is unaffected");
    let g = rec.close(good.id).unwrap();
    assert_eq!(g.stats.write_errors, 0);
    assert_eq!(read_wav(&g.wav.unwrap()).1.len(), 20 * 160);
}

#[test]
fn only_the_expected_source_is_recorded() {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    let media = sender(lo4());
    let r = rec.open(spec("own", media.local_addr().unwrap())).unwrap();
    let stranger = sender(lo4());
    for seq in 0..200u16 {
        // The kernel refuses some of these with "connection refused"
        // (ICMP from the first ones): the stranger's problem.
        let _ = stranger.send_to(&rtp(0, seq, 0, &[0xff; 160]), r.addr);
    }
    for seq in 0..5u16 {
        media
            .send_to(&rtp(0, seq, u32::from(seq) * 160, &samples(seq)), r.addr)
            .unwrap();
    }
    let files = rec.close(r.id).unwrap();
    assert_eq!(files.packets, 5, "{:?}", files.stats);
    let records = read_pcap(&files.pcap);
    assert_eq!(records.len(), 5);
    assert!(records
        .iter()
        .all(|p| p.src() == media.local_addr().unwrap()));
}

#[test]
fn datagrams_queued_before_the_connect_are_counted_not_recorded() {
    // An unconnected socket stands in for the moment between bind and
    // connect, when anyone's datagram may be queued.
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let std_socket = sender(lo4());
    std_socket.set_nonblocking(true).unwrap();
    let addr = std_socket.local_addr().unwrap();
    let media = sender(lo4());
    let stranger = sender(lo4());
    let mut s = session::Session::new(
        mio::net::UdpSocket::from_std(std_socket),
        addr,
        media.local_addr().unwrap(),
        dir.0.join("early"),
    )
    .unwrap();
    stranger.send_to(&rtp(0, 1, 0, &[1; 4]), addr).unwrap();
    media.send_to(&rtp(0, 2, 0, &[2; 4]), addr).unwrap();
    stranger.send_to(&rtp(0, 3, 0, &[3; 4]), addr).unwrap();
    let mut buf = vec![0; 2048];
    // Loopback delivers at once, but a read may still race the queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s.stats.packets + s.stats.foreign < 3 {
        assert!(std::time::Instant::now() < deadline, "{:?}", s.stats);
        run::drain(&mut s, &mut buf, 16);
    }
    let files = s.finish().unwrap();
    assert_eq!((files.stats.packets, files.stats.foreign), (1, 2));
    assert_eq!(read_pcap(&files.pcap).len(), 1);
}

#[test]
fn a_wildcard_media_socket_is_heard_on_loopback() {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    let media = sender(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let r = rec.open(spec("any", media.local_addr().unwrap())).unwrap();
    assert_eq!(r.addr.ip(), lo4());
    media.send_to(&rtp(0, 1, 0, &[0xff; 160]), r.addr).unwrap();
    let files = rec.close(r.id).unwrap();
    assert_eq!(files.packets, 1);
    assert_eq!(read_pcap(&files.pcap)[0].src().ip(), lo4());
}

#[test]
fn a_source_without_a_port_is_refused() {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    let e = rec.open(spec("c", "127.0.0.1:0".parse().unwrap()));
    assert!(matches!(e, Err(RecordError::NoSource)), "{e:?}");
}

/// The OS's ephemeral port range, when it can be read.
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse().ok());
    Some((it.next()??, it.next()??))
}

#[test]
fn recording_ports_stay_out_of_the_media_range() {
    let Some((lo, hi)) = ephemeral_range() else {
        eprintln!("no ip_local_port_range; skipped");
        return;
    };
    // The media range covers the lower half of the ephemeral range: about
    // half the ports the OS offers land inside it.
    let media = lo..=lo + (hi - lo) / 2;
    let dir = TempDir::new();
    let rec = Recorder::start(dir.0.clone(), media.clone()).unwrap();
    let sock = sender(lo4());
    for _ in 0..40 {
        let r = rec.open(spec("c", sock.local_addr().unwrap())).unwrap();
        assert!(!media.contains(&r.addr.port()), "{} in {media:?}", r.addr);
    }
}

#[test]
fn a_media_range_over_every_ephemeral_port_is_a_clear_error() {
    let Some((lo, hi)) = ephemeral_range() else {
        eprintln!("no ip_local_port_range; skipped");
        return;
    };
    let dir = TempDir::new();
    let rec = Recorder::start(dir.0.clone(), lo..=hi).unwrap();
    let e = rec.open(spec("c", sender(lo4()).local_addr().unwrap()));
    assert!(
        matches!(e, Err(RecordError::NoPortOutsideRange { .. })),
        "{e:?}"
    );
}
