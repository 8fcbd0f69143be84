//! Classic pcap with LINKTYPE_RAW: each datagram gets a synthesized IP and
//! UDP header, so Wireshark decodes the RTP as if captured on the wire.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

/// Microsecond-resolution classic pcap magic, written little-endian.
const MAGIC: u32 = 0xa1b2_c3d4;
/// LINKTYPE_RAW: the packet starts with an IPv4 or IPv6 header.
pub(super) const LINKTYPE_RAW: u32 = 101;
/// Large enough for an IPv6 header plus the largest UDP datagram.
const SNAPLEN: u32 = 262_144;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const PROTO_UDP: u8 = 17;

/// Writes the pcap file header, then one record per datagram.
pub(super) struct PcapWriter<W: Write> {
    out: W,
    /// IPv4 identification of the next packet; only tools that reassemble
    /// fragments care, but a constant would look like duplicates.
    ip_id: u16,
    /// One record is assembled here, then written with one call.
    record: Vec<u8>,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub(super) fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone: UTC
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self {
            out,
            ip_id: 0,
            record: Vec::with_capacity(2048),
        })
    }

    /// Appends `payload`, received at `at` from `src` on `dst`.
    pub(super) fn write(
        &mut self,
        at: SystemTime,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        let r = &mut self.record;
        r.clear();
        r.resize(16, 0);
        match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let total = IPV4_HEADER + UDP_HEADER + payload.len();
                let mut ip = [0u8; IPV4_HEADER];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&len16(total).to_be_bytes());
                ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
                ip[6] = 0x40; // don't fragment
                ip[8] = 64;
                ip[9] = PROTO_UDP;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                let sum = !fold(sum16(0, &ip));
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                self.ip_id = self.ip_id.wrapping_add(1);
                r.extend_from_slice(&ip);
                let mut pseudo = [0u8; 12];
                pseudo[..4].copy_from_slice(&s.octets());
                pseudo[4..8].copy_from_slice(&d.octets());
                pseudo[9] = PROTO_UDP;
                pseudo[10..12].copy_from_slice(&len16(UDP_HEADER + payload.len()).to_be_bytes());
                push_udp(r, &pseudo, src.port(), dst.port(), payload);
            }
            (s, d) => {
                // A v4 peer on a dual-stack socket shows up v4-mapped already;
                // mapping here keeps a mixed pair representable.
                let (s, d) = (v6(s), v6(d));
                let udp_len = UDP_HEADER + payload.len();
                let mut ip = [0u8; IPV6_HEADER];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&len16(udp_len).to_be_bytes());
                ip[6] = PROTO_UDP;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                r.extend_from_slice(&ip);
                let mut pseudo = [0u8; 40];
                pseudo[..16].copy_from_slice(&s.octets());
                pseudo[16..32].copy_from_slice(&d.octets());
                pseudo[32..36].copy_from_slice(&(udp_len as u32).to_be_bytes());
                pseudo[39] = PROTO_UDP;
                push_udp(r, &pseudo, src.port(), dst.port(), payload);
            }
        }
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let len = (r.len() - 16) as u32;
        r[0..4].copy_from_slice(&(since.as_secs() as u32).to_le_bytes());
        r[4..8].copy_from_slice(&since.subsec_micros().to_le_bytes());
        r[8..12].copy_from_slice(&len.to_le_bytes());
        r[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(r)
    }

    /// Pushes buffered records to the file.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn push_udp(r: &mut Vec<u8>, pseudo: &[u8], sport: u16, dport: u16, payload: &[u8]) {
    let mut udp = [0u8; UDP_HEADER];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&len16(UDP_HEADER + payload.len()).to_be_bytes());
    let sum = !fold(sum16(sum16(sum16(0, pseudo), &udp), payload));
    // RFC 768: a computed zero is sent as all ones; zero means "no checksum".
    let sum = if sum == 0 { 0xffff } else { sum };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    r.extend_from_slice(&udp);
    r.extend_from_slice(payload);
}

/// A length field; a UDP datagram always fits, and a header lying about an
/// impossible size beats a panic on input.
fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Adds `data` as big-endian 16-bit words to a ones'-complement sum; an odd
/// trailing byte is padded with zero, so only the last part may be odd.
pub(super) fn sum16(acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    let mut acc = u64::from(acc);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds the carries of a 32-bit sum into 16 bits.
pub(super) fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}
