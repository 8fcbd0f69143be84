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
    let rec = Recorder::start(dir.0.clone()).unwrap();
    let mut s = spec("../../../../tmp/evil\0/..", lo4());
    s.tag = "/etc/passwd".into();
    let r = rec.open(s).unwrap();
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&rtp(0, 1, 0, &[0xff; 160]), r.addr)
        .unwrap();
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
    let rec = Recorder::start(dir.0.clone()).unwrap();
    let r = rec.open(spec("c", lo4())).unwrap();
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
    let rec = Recorder::start(dir.0.clone()).unwrap();
    let a = rec.open(spec("c", lo4())).unwrap();
    let b = rec.open(spec("c", lo4())).unwrap();
    let list = rec.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_ne!(list[0].pcap, list[1].pcap);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
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
    let rec = Recorder::start(dir.0.clone()).unwrap();
    let r = rec.open(spec("drop", lo4())).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
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
    let rec = Recorder::start(dir.0.clone()).unwrap();
    // TEST-NET-1 is not a local address.
    let e = rec.open(spec("c", "192.0.2.1".parse().unwrap()));
    assert!(matches!(e, Err(RecordError::Bind { .. })), "{e:?}");
}

#[test]
fn a_write_error_is_counted_and_others_keep_recording() {
    let dir = TempDir::new();
    let rec = Recorder::start(dir.0.clone()).unwrap();
    let bad = rec.open(spec("bad", lo4())).unwrap();
    let good = rec.open(spec("good", lo4())).unwrap();
    // The WAV is created on the first G.711 packet; make its path lead to
    // a device where every write fails with ENOSPC.
    std::os::unix::fs::symlink("/dev/full", dir.0.join("bad-from-tag-0.wav")).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
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
