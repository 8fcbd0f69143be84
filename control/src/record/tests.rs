//! The recorder's tests: recordings over real loopback UDP (`recorder`),
//! their files read back by the tiny readers written here, and the
//! reorder window on its own (`track`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::wav::{Pushed, Track, G711, MAX_FILL, REORDER_WINDOW};
use super::*;

mod recorder;
mod track;

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

/// A recording of the copies `source` sends.
fn spec(call_id: &str, source: SocketAddr) -> RecordingSpec {
    RecordingSpec {
        call_id: call_id.into(),
        tag: "from-tag".into(),
        stream: 0,
        source,
    }
}

/// A socket standing in for the node's media socket that sends the copies.
fn sender(ip: IpAddr) -> UdpSocket {
    UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap()
}

/// A recorder whose media range is nowhere near the ephemeral ports.
fn recorder(dir: &TempDir) -> Recorder {
    Recorder::start(dir.0.clone(), 1..=1).unwrap()
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
fn send_stream(sock: &UdpSocket, to: SocketAddr, pt: u8, silence: u8) -> (Vec<Vec<u8>>, Vec<u8>) {
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
    (sent, expect)
}

fn record_g711(pt: u8, silence: u8, tag: u16, ip: IpAddr) {
    let dir = TempDir::new();
    let rec = recorder(&dir);
    let sock = sender(ip);
    let r = rec
        .open(spec("call-1@example.com", sock.local_addr().unwrap()))
        .unwrap();
    assert_eq!(r.addr.ip(), ip);
    let (sent, expect) = send_stream(&sock, r.addr, pt, silence);
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
