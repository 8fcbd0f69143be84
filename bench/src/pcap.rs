//! pcap/pcapng input: RTP streams out of a capture, and the small capture
//! the project ships (`make-pcap`).
//!
//! Link types read: Ethernet (1), raw IP (101, 228) and Linux cooked
//! capture (113); IPv4 UDP only (unfragmented). Other packets are counted
//! and skipped; a file that is not a capture, or is cut inside a record, is
//! an error that says so.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

/// One UDP datagram of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Capture time.
    pub ts: Duration,
    /// UDP source.
    pub src: SocketAddrV4,
    /// UDP destination.
    pub dst: SocketAddrV4,
    /// UDP payload.
    pub payload: Vec<u8>,
}

/// What a capture held.
#[derive(Debug, Default)]
pub struct Capture {
    /// UDP datagrams in file order.
    pub datagrams: Vec<Datagram>,
    /// Packets that were not IPv4 UDP (or not of a known link type).
    pub skipped: usize,
}

/// Parses a link-layer frame down to its UDP datagram.
pub fn parse_frame(link: DataLink, frame: &[u8], ts: Duration) -> Option<Datagram> {
    let ip = match link {
        DataLink::ETHERNET => {
            let mut off = 12;
            let mut et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
            // One 802.1Q tag at most.
            if et == 0x8100 {
                off += 4;
                et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
            }
            if et != 0x0800 {
                return None;
            }
            frame.get(off + 2..)?
        }
        DataLink::RAW | DataLink::IPV4 => frame,
        DataLink::LINUX_SLL => {
            if u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]) != 0x0800 {
                return None;
            }
            frame.get(16..)?
        }
        _ => return None,
    };
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    // Fragments (MF set or an offset) cannot be replayed as one datagram.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return None;
    }
    let udp = ip.get(ihl..total)?;
    if udp.len() < 8 {
        return None;
    }
    let port = |i: usize| u16::from_be_bytes([udp[i], udp[i + 1]]);
    let addr = |i: usize| Ipv4Addr::new(ip[i], ip[i + 1], ip[i + 2], ip[i + 3]);
    let ulen = usize::from(port(4)).clamp(8, udp.len());
    Some(Datagram {
        ts,
        src: SocketAddrV4::new(addr(12), port(0)),
        dst: SocketAddrV4::new(addr(16), port(2)),
        payload: udp[8..ulen].to_vec(),
    })
}

/// Reads a pcap or pcapng file.
pub fn read(path: &Path) -> anyhow::Result<Capture> {
    let mut f =
        BufReader::new(File::open(path).with_context(|| format!("open {}", path.display()))?);
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .with_context(|| format!("{}: too short to be a pcap or pcapng file", path.display()))?;
    let data = {
        let mut rest = magic.to_vec();
        f.read_to_end(&mut rest)?;
        rest
    };
    read_bytes(&data).with_context(|| format!("{}", path.display()))
}

/// Reads a pcap or pcapng capture held in memory.
pub fn read_bytes(data: &[u8]) -> anyhow::Result<Capture> {
    let magic = data
        .get(..4)
        .context("too short to be a pcap or pcapng file")?;
    let mut cap = Capture::default();
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            let mut r = PcapNgReader::new(data).context("bad pcapng section header")?;
            let mut n = 0usize;
            // Link types by interface id (the reader's own list borrows it).
            let mut links: Vec<DataLink> = Vec::new();
            while let Some(b) = r.next_block() {
                n += 1;
                let b =
                    b.with_context(|| format!("pcapng block #{n} is malformed or truncated"))?;
                let (link, ts, frame) = match &b {
                    Block::InterfaceDescription(i) => {
                        links.push(i.linktype);
                        continue;
                    }
                    Block::EnhancedPacket(p) => {
                        let Some(l) = links.get(p.interface_id as usize) else {
                            bail!("pcapng packet #{n} names an undeclared interface");
                        };
                        (*l, p.timestamp, p.data.as_ref())
                    }
                    Block::SimplePacket(p) => {
                        let Some(l) = links.first() else {
                            bail!("pcapng packet #{n} before any interface");
                        };
                        (*l, Duration::ZERO, p.data.as_ref())
                    }
                    _ => continue,
                };
                match parse_frame(link, frame, ts) {
                    Some(d) => cap.datagrams.push(d),
                    None => cap.skipped += 1,
                }
            }
        }
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d] => {
            let mut r = PcapReader::new(data).context("bad pcap file header")?;
            let link = r.header().datalink;
            let mut n = 0usize;
            while let Some(p) = r.next_packet() {
                n += 1;
                let p = p.with_context(|| format!("pcap packet #{n} is malformed or truncated"))?;
                match parse_frame(link, &p.data, p.timestamp) {
                    Some(d) => cap.datagrams.push(d),
                    None => cap.skipped += 1,
                }
            }
        }
        m => bail!("not a pcap or pcapng file (magic {:02x?})", m),
    }
    Ok(cap)
}

/// A stream: datagrams with the same 5-tuple and SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Source.
    pub src: SocketAddrV4,
    /// Destination.
    pub dst: SocketAddrV4,
    /// RTP SSRC.
    pub ssrc: u32,
}

/// How a capture maps onto calls.
#[derive(Debug, Default)]
pub struct CallMap {
    /// Per datagram: its call and whether it goes caller -> callee
    /// (`None` for datagrams that are not RTP).
    pub legs: Vec<Option<(usize, bool)>>,
    /// Calls needed: one per unordered address pair.
    pub calls: usize,
    /// RTP streams (5-tuple and SSRC), in order of first packet.
    pub streams: Vec<StreamKey>,
}

/// Maps a capture onto calls: each unordered address pair is a call, and
/// its first sender is the caller.
pub fn map_calls(cap: &Capture) -> CallMap {
    let mut m = CallMap::default();
    let mut pairs: HashMap<(SocketAddrV4, SocketAddrV4), usize> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for d in &cap.datagrams {
        let p = &d.payload;
        if p.len() < 12 || p[0] >> 6 != 2 {
            m.legs.push(None);
            continue;
        }
        let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
        let k = StreamKey {
            src: d.src,
            dst: d.dst,
            ssrc,
        };
        if seen.insert(k) {
            m.streams.push(k);
        }
        let leg = if let Some(&c) = pairs.get(&(d.src, d.dst)) {
            (c, true)
        } else if let Some(&c) = pairs.get(&(d.dst, d.src)) {
            (c, false)
        } else {
            pairs.insert((d.src, d.dst), m.calls);
            m.calls += 1;
            (m.calls - 1, true)
        };
        m.legs.push(Some(leg));
    }
    m
}

fn rtp(seq: u16, ts: u32, ssrc: u32, pt: u8, len: usize, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; len];
    p[0] = 0x80;
    p[1] = pt;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// An Ethernet/IPv4/UDP frame around `payload`.
pub fn frame(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.ip().octets());
    ip.extend_from_slice(&dst.ip().octets());
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed in IPv4)
    f.extend_from_slice(payload);
    f
}

/// Writes the shipped capture: a 4 s G.711 call (both directions, 50 pps,
/// 172-byte packets) and, in the same call, a one-way video-sized stream
/// (30 frames/s, 4 packets of 1200 bytes per frame, sent back to back).
pub fn make(path: &Path) -> anyhow::Result<usize> {
    let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4000);
    let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5000);
    let va = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4002);
    let vb = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5002);
    let start = Duration::from_secs(1_700_000_000);
    let mut pkts: Vec<(Duration, Vec<u8>)> = Vec::new();
    for i in 0..200u32 {
        let t = start + Duration::from_millis(u64::from(i) * 20);
        let seq = i as u16;
        pkts.push((
            t,
            frame(a, b, &rtp(seq, i * 160, 0xaaaa_0001, 0, 172, 0xff)),
        ));
        pkts.push((
            t + Duration::from_micros(300),
            frame(b, a, &rtp(seq, i * 160, 0xbbbb_0002, 0, 172, 0xff)),
        ));
    }
    for f in 0..120u32 {
        let t = start + Duration::from_micros(u64::from(f) * 33_333 + 5_000);
        for k in 0..4u32 {
            let seq = (f * 4 + k) as u16;
            pkts.push((
                t + Duration::from_micros(u64::from(k) * 50),
                frame(va, vb, &rtp(seq, f * 3000, 0xcccc_0003, 96, 1200, 0x11)),
            ));
        }
    }
    pkts.sort_by_key(|p| p.0);
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut w = PcapWriter::new(file)?;
    for (t, d) in &pkts {
        w.write_packet(&PcapPacket::new(*t, d.len() as u32, d))?;
    }
    Ok(pkts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_capture_reads_back() {
        let dir = std::env::temp_dir().join(format!("rtpmesh-bench-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.pcap");
        let n = make(&p).unwrap();
        let cap = read(&p).unwrap();
        assert_eq!(cap.datagrams.len(), n);
        assert_eq!(cap.skipped, 0);
        assert_eq!(cap.datagrams[0].payload.len(), 172);
        assert!(cap.datagrams.iter().any(|d| d.payload.len() == 1200));
        let m = map_calls(&cap);
        assert_eq!(m.streams.len(), 3, "two audio directions and one video");
        // Audio both ways and video: two address pairs, so two calls.
        assert_eq!(m.calls, 2);
        assert!(m.legs.iter().all(Option::is_some));
        let back = cap
            .datagrams
            .iter()
            .zip(&m.legs)
            .filter(|(d, _)| d.src.port() == 5000);
        assert!(back.clone().count() == 200);
        assert!(
            back.clone().all(|(_, l)| l.unwrap() == (0, false)),
            "callee -> caller"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_captures_are_clear_errors() {
        let e = read_bytes(b"hello world, not a capture").unwrap_err();
        assert!(
            format!("{e:#}").contains("not a pcap or pcapng file"),
            "{e:#}"
        );
        assert!(read_bytes(b"ab").is_err());
        // A good header, then a record cut short.
        let mut good = Vec::new();
        {
            let mut w = PcapWriter::new(&mut good).unwrap();
            let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
            let f = frame(a, a, &rtp(1, 1, 1, 0, 172, 0));
            w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, &f))
                .unwrap();
        }
        assert_eq!(read_bytes(&good).unwrap().datagrams.len(), 1);
        let cut = &good[..good.len() - 10];
        let e = read_bytes(cut).unwrap_err();
        assert!(
            format!("{e:#}").contains("packet #1 is malformed or truncated"),
            "{e:#}"
        );
        // A header alone is an empty capture, not an error.
        assert_eq!(read_bytes(&good[..24]).unwrap().datagrams.len(), 0);
    }

    #[test]
    fn non_udp_frames_are_skipped() {
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
        let mut f = frame(a, a, b"x");
        f[14 + 9] = 6; // TCP
        assert_eq!(parse_frame(DataLink::ETHERNET, &f, Duration::ZERO), None);
        let f = frame(a, a, b"xyz");
        assert_eq!(
            parse_frame(DataLink::ETHERNET, &f, Duration::ZERO)
                .unwrap()
                .payload,
            b"xyz"
        );
        assert_eq!(
            parse_frame(DataLink::RAW, &f[14..], Duration::ZERO)
                .unwrap()
                .payload,
            b"xyz"
        );
    }
}
