//! The generator's RTP packets: a 12-byte RTP header and a 160-byte G.711
//! payload whose first bytes carry what the receiver needs to measure
//! (send time, stream, sequence), so no per-packet state is kept on send.

/// RTP header length (no CSRCs, no extension).
pub const RTP_HEADER: usize = 12;
/// G.711 payload per 20 ms packet.
pub const G711_PAYLOAD: usize = 160;
/// Whole G.711 packet.
pub const G711_PACKET: usize = RTP_HEADER + G711_PAYLOAD;
/// Marks a payload as one of ours ("RMB1"), so stray datagrams are ignored.
pub const MAGIC: u32 = 0x524d_4231;
/// Bytes of the payload used by the probe.
pub const PROBE_LEN: usize = 20;

/// What a generated packet carries in its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Send time, nanoseconds of [`now_ns`].
    pub sent_ns: u64,
    /// Stream index in the generator.
    pub stream: u32,
    /// 32-bit sequence (the RTP header's is 16 bits and wraps).
    pub seq: u32,
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable across threads of one
/// process (and across processes of one host), unaffected by wall-clock steps.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes an RTP packet of `len` bytes (at least `RTP_HEADER + PROBE_LEN`)
/// into `buf`: PCMU, marker clear, timestamp advancing 160 per packet.
pub fn build(buf: &mut [u8], len: usize, ssrc: u32, probe: Probe) -> usize {
    let len = len.clamp(RTP_HEADER + PROBE_LEN, buf.len());
    buf[0] = 0x80;
    buf[1] = 0; // PT 0 = PCMU
    buf[2..4].copy_from_slice(&(probe.seq as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&probe.seq.wrapping_mul(160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    write_probe(&mut buf[RTP_HEADER..], probe);
    // μ-law silence; only written once per buffer in practice, but cheap.
    buf[RTP_HEADER + PROBE_LEN..len].fill(0xff);
    len
}

/// Puts `probe` at the start of `payload`.
pub fn write_probe(payload: &mut [u8], p: Probe) {
    payload[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    payload[4..12].copy_from_slice(&p.sent_ns.to_be_bytes());
    payload[12..16].copy_from_slice(&p.stream.to_be_bytes());
    payload[16..20].copy_from_slice(&p.seq.to_be_bytes());
}

/// Reads the probe of a received packet, if it is one of ours.
pub fn parse(packet: &[u8]) -> Option<Probe> {
    if packet.len() < RTP_HEADER + PROBE_LEN || packet[0] >> 6 != 2 {
        return None;
    }
    let p = &packet[RTP_HEADER..];
    let word = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    if word(0) != MAGIC {
        return None;
    }
    Some(Probe {
        sent_ns: u64::from_be_bytes(p[4..12].try_into().ok()?),
        stream: word(12),
        seq: word(16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_packet_layout() {
        let mut buf = [0u8; 2048];
        let p = Probe {
            sent_ns: 0x0102_0304_0506_0708,
            stream: 7,
            seq: 70_000,
        };
        let n = build(&mut buf, G711_PACKET, 0xdead_beef, p);
        assert_eq!(n, 172);
        assert_eq!(buf[0], 0x80, "RTP v2, no padding/extension/CSRC");
        assert_eq!(buf[1], 0, "PCMU");
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 70_000u32 as u16);
        assert_eq!(
            u32::from_be_bytes(buf[4..8].try_into().unwrap()),
            70_000 * 160
        );
        assert_eq!(&buf[8..12], &0xdead_beefu32.to_be_bytes());
        assert!(buf[RTP_HEADER + PROBE_LEN..n].iter().all(|&b| b == 0xff));
        assert_eq!(parse(&buf[..n]), Some(p));
    }

    #[test]
    fn timestamp_round_trip_and_rejects() {
        let mut buf = [0u8; 300];
        let t = now_ns();
        let p = Probe {
            sent_ns: t,
            stream: u32::MAX,
            seq: u32::MAX,
        };
        let n = build(&mut buf, 300, 1, p);
        assert_eq!(n, 300);
        assert_eq!(parse(&buf[..n]).unwrap().sent_ns, t);
        assert!(now_ns() >= t, "monotonic clock");
        // Too short, wrong version, wrong magic.
        assert_eq!(parse(&buf[..RTP_HEADER + 5]), None);
        let mut v1 = buf;
        v1[0] = 0x40;
        assert_eq!(parse(&v1[..n]), None);
        let mut other = buf;
        other[RTP_HEADER] ^= 1;
        assert_eq!(parse(&other[..n]), None);
    }

    #[test]
    fn short_length_is_raised_to_hold_the_probe() {
        let mut buf = [0u8; 64];
        let n = build(
            &mut buf,
            1,
            1,
            Probe {
                sent_ns: 1,
                stream: 2,
                seq: 3,
            },
        );
        assert_eq!(n, RTP_HEADER + PROBE_LEN);
    }
}
