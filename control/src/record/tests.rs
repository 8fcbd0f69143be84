//! The recorder over real loopback UDP, its files read back by tiny
//! readers written here, plus the reorder logic on its own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::wav::{Pushed, Track, G711, MAX_FILL, REORDER_WINDOW};
use super::*;

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "rtpmesh-record-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec(call_id: &str, bind: IpAddr) -> RecordingSpec {
    RecordingSpec {
        call_id: call_id.into(),
        tag: "from-tag".into(),
        stream: 0,
        bind,
    }
}

fn lo4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn rtcp_rr() -> Vec<u8> {
    vec![0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78]
}

/// 160 recognisable samples for packet `seq`.
fn samples(seq: u16) -> Vec<u8> {
    (0..160u16)
        .map(|i| (i as u8).wrapping_mul(3) ^ seq as u8)
        .collect()
}

struct PcapRecord {
    ip: Vec<u8>,
}

impl PcapRecord {
    fn v4(&self) -> bool {
        self.ip[0] >> 4 == 4
    }
    fn ip_len(&self) -> usize {
        if self.v4() {
            20
        } else {
            40
        }
    }
    fn src(&self) -> SocketAddr {
        let (ip, port_at) = if self.v4() {
            let o: [u8; 4] = self.ip[12..16].try_into().unwrap();
            (IpAddr::from(o), 20)
        } else {
            let o: [u8; 16] = self.ip[8..24].try_into().unwrap();
            (IpAddr::from(o), 40)
        };
        SocketAddr::new(ip, be16(&self.ip[port_at..]))
    }
    fn dst(&self) -> SocketAddr {
        let (ip, port_at) = if self.v4() {
            let o: [u8; 4] = self.ip[16..20].try_into().unwrap();
            (IpAddr::from(o), 22)
        } else {
            let o: [u8; 16] = self.ip[24..40].try_into().unwrap();
            (IpAddr::from(o), 42)
        };
        SocketAddr::new(ip, be16(&self.ip[port_at..]))
    }
    fn payload(&self) -> &[u8] {
        &self.ip[self.ip_len() + 8..]
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Ones'-complement sum over 16-bit words, written independently of the
/// recorder's.
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut sum: u32 = 0;
    for c in bytes.chunks(2) {
        sum += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Reads a classic pcap file, checking every header field it can.
fn read_pcap(path: &Path) -> Vec<PcapRecord> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(le32(&b, 0), 0xa1b2_c3d4, "magic");
    assert_eq!((le16(&b, 4), le16(&b, 6)), (2, 4), "version");
    assert_eq!(le32(&b, 20), 101, "LINKTYPE_RAW");
    let mut at = 24;
    let mut out = Vec::new();
    while at < b.len() {
        let (incl, orig) = (le32(&b, at + 8) as usize, le32(&b, at + 12) as usize);
        assert_eq!(incl, orig);
        assert!(le32(&b, at + 4) < 1_000_000, "microseconds");
        let ip = b[at + 16..at + 16 + incl].to_vec();
        at += 16 + incl;
        let r = PcapRecord { ip };
        let ip = &r.ip;
        let udp_at = r.ip_len();
        let udp_len = be16(&ip[udp_at + 4..]) as usize;
        assert_eq!(udp_len, incl - udp_at, "UDP length");
        if r.v4() {
            assert_eq!(ip[0], 0x45);
            assert_eq!(be16(&ip[2..]) as usize, incl, "IPv4 total length");
            assert_eq!(ip[9], 17, "UDP");
            assert_eq!(ones_sum(&[&ip[..20]]), 0xffff, "IPv4 header checksum");
            let pseudo = [&ip[12..20], &[0, 17], &(udp_len as u16).to_be_bytes()[..]].concat();
            assert_eq!(ones_sum(&[&pseudo, &ip[20..]]), 0xffff, "UDP checksum");
        } else {
            assert_eq!(ip[0] >> 4, 6);
            assert_eq!(be16(&ip[4..]) as usize, udp_len, "IPv6 payload length");
            assert_eq!(ip[6], 17, "UDP");
            let pseudo = [
                &ip[8..40],
                &(udp_len as u32).to_be_bytes()[..],
                &[0, 0, 0, 17],
            ]
            .concat();
            assert_eq!(ones_sum(&[&pseudo, &ip[40..]]), 0xffff, "UDP checksum");
        }
        out.push(r);
    }
    assert_eq!(at, b.len(), "no trailing bytes");
    out
}

/// Reads a G.711 WAV file; returns (format tag, samples).
fn read_wav(path: &Path) -> (u16, Vec<u8>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(le32(&b, 4) as usize, b.len() - 8, "RIFF size");
    assert_eq!(&b[8..16], b"WAVEfmt ");
    assert_eq!(le32(&b, 16), 18);
    let tag = le16(&b, 20);
    assert_eq!(le16(&b, 22), 1, "mono");
    assert_eq!(le32(&b, 24), 8000, "rate");
    assert_eq!(le32(&b, 28), 8000, "byte rate");
    assert_eq!(le16(&b, 32), 1, "block align");
    assert_eq!(le16(&b, 34), 8, "bits");
    assert_eq!(&b[38..42], b"fact");
    assert_eq!(&b[50..54], b"data");
    let len = le32(&b, 54) as usize;
    assert_eq!(le32(&b, 46) as usize, len, "fact sample count");
    assert_eq!(b.len(), 58 + len + len % 2, "data size (+ pad)");
    (tag, b[58..58 + len].to_vec())
}

/// Sends a G.711 stream (seq 1000..1020, 1005/1006 swapped, 1010 lost) with
/// RTCP and one malformed datagram in between; returns what was sent, in
/// order, and the samples the WAV should hold.
fn send_stream(to: SocketAddr, pt: u8, silence: u8) -> (UdpSocket, Vec<Vec<u8>>, Vec<u8>) {
    let bind = if to.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let sock = UdpSocket::bind(bind).unwrap();
    let mut order: Vec<u16> = (1000..1020).filter(|&s| s != 1010).collect();
    order.swap(5, 6);
    let mut sent = Vec::new();
    for (i, &seq) in order.iter().enumerate() {
        let p = rtp(pt, seq, u32::from(seq) * 160, &samples(seq));
        sent.push(p);
        if i % 6 == 3 {
            sent.push(rtcp_rr());
        }
    }
    sent.insert(2, b"not rtp".to_vec());
    for p in &sent {
        sock.send_to(p, to).unwrap();
    }
    let mut expect = Vec::new();
    for seq in 1000..1020u16 {
        if seq == 1010 {
            expect.extend(std::iter::repeat_n(silence, 160));
        } else {
            expect.extend(samples(seq));
        }
    }
    (sock, sent, expect)
}

fn record_g711(pt: u8, silence: u8, tag: u16, ip: IpAddr) {
    let dir = TempDir::new();
    let rec = Recorder::start(dir.0.clone()).unwrap();
    let r = rec.open(spec("call-1@example.com", ip)).unwrap();
    assert_eq!(r.addr.ip(), ip);
    let (sock, sent, expect) = send_stream(r.addr, pt, silence);
    let files = rec.close(r.id).unwrap();

    assert_eq!(files.pcap, dir.0.join("call-1_example.com-from-tag-0.pcap"));
    assert_eq!(files.packets, sent.len() as u64);
    let st = files.stats;
    assert_eq!((st.rtp, st.rtcp, st.malformed), (19, 3, 1), "{st:?}");
    assert_eq!((st.wav_packets, st.wav_dropped, st.wav_skipped), (19, 0, 0));
    assert_eq!(st.wav_samples, 20 * 160);
    assert_eq!(st.write_errors, 0);

    let records = read_pcap(&files.pcap);
    assert_eq!(records.len(), sent.len());
    for (r_, p) in records.iter().zip(&sent) {
        assert_eq!(r_.payload(), &p[..]);
        assert_eq!(r_.src(), sock.local_addr().unwrap());
        assert_eq!(r_.dst(), r.addr);
    }

    let wav = files.wav.expect("a WAV file");
    assert_eq!(wav, dir.0.join("call-1_example.com-from-tag-0.wav"));
    let (got_tag, data) = read_wav(&wav);
    assert_eq!(got_tag, tag);
    assert_eq!(data.len(), expect.len());
    assert!(data == expect, "WAV samples differ from the payloads");
}

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

// The reorder window on its own.

fn push(t: &mut Track, seq: u16, pt: u8, ts: u32, payload: &[u8], out: &mut Vec<u8>) -> Pushed {
    t.push(7, seq, pt, ts, payload, out)
}

#[test]
fn track_crosses_sequence_wrap() {
    let mut t = Track::new(G711::Mulaw);
    let mut out = Vec::new();
    for (i, seq) in [65534u16, 65535, 1, 0, 2].into_iter().enumerate() {
        let ts = match seq {
            65534 => 0,
            65535 => 160,
            s => 320 + u32::from(s) * 160,
        };
        assert_eq!(
            push(&mut t, seq, 0, ts, &[i as u8; 160], &mut out),
            Pushed::Accepted
        );
    }
    t.flush(&mut out);
    let order: Vec<u8> = out.chunks(160).map(|c| c[0]).collect();
    assert_eq!(order, [0, 1, 3, 2, 4]);
}

#[test]
fn track_skips_events_without_loss_and_fills_their_time() {
    let mut t = Track::new(G711::Alaw);
    let mut out = Vec::new();
    push(&mut t, 1, 8, 0, &[1; 160], &mut out);
    // Two telephone-event packets hold seq 2 and 3; audio resumes at 480.
    assert_eq!(
        push(&mut t, 2, 101, 160, &[0; 4], &mut out),
        Pushed::Skipped
    );
    assert_eq!(
        push(&mut t, 3, 101, 160, &[0; 4], &mut out),
        Pushed::Skipped
    );
    push(&mut t, 4, 8, 480, &[4; 160], &mut out);
    // Written at once: the events left no hole in the sequence.
    assert_eq!(out.len(), 480 + 160);
    assert!(out[160..480].iter().all(|&b| b == 0xd5));
}

#[test]
fn track_caps_a_timestamp_jump_and_drops_duplicates() {
    let mut t = Track::new(G711::Mulaw);
    let mut out = Vec::new();
    push(&mut t, 1, 0, 0, &[1; 160], &mut out);
    push(&mut t, 2, 0, 1_000_000_000, &[2; 160], &mut out);
    assert_eq!(out.len(), 160 + MAX_FILL as usize + 160);
    assert_eq!(push(&mut t, 2, 0, 0, &[2; 160], &mut out), Pushed::Dropped);
    assert_eq!(push(&mut t, 1, 0, 0, &[2; 160], &mut out), Pushed::Dropped);
}

#[test]
fn track_gives_up_on_a_loss_after_the_window() {
    let mut t = Track::new(G711::Mulaw);
    let mut out = Vec::new();
    push(&mut t, 0, 0, 0, &[0; 160], &mut out);
    for seq in 2..=(REORDER_WINDOW as u16 + 1) {
        push(&mut t, seq, 0, u32::from(seq) * 160, &[0; 160], &mut out);
        assert_eq!(out.len(), 160, "held while the window has room");
    }
    push(&mut t, 20, 0, 20 * 160, &[0; 160], &mut out);
    // Packets 2..=9 plus the silence standing in for 1.
    assert_eq!(out.len(), 160 * (REORDER_WINDOW + 2));
    // The lost packet arriving now is too late.
    assert_eq!(
        push(&mut t, 1, 0, 160, &[0; 160], &mut out),
        Pushed::Dropped
    );
}

#[test]
fn track_restarts_on_a_new_source() {
    let mut t = Track::new(G711::Mulaw);
    let mut out = Vec::new();
    push(&mut t, 100, 0, 1000, &[1; 160], &mut out);
    // A new SSRC with an unrelated sequence and clock: no fill.
    assert_eq!(
        t.push(9, 5, 0, 99_999, &[2; 160], &mut out),
        Pushed::Accepted
    );
    t.flush(&mut out);
    assert_eq!(out.len(), 320);
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
