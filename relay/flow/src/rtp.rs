//! Zero-copy, validate-once views of RTP and RTCP packets.
//!
//! Everything here borrows the receive buffer: the forwarding path parses every
//! datagram, so a parse must not allocate or copy. Validation happens once in
//! `parse`; the accessors afterwards can rely on the offsets being in bounds.

use thiserror::Error;

/// RTP version carried in the top two bits of the first byte.
const VERSION: u8 = 2;
/// Size of the fixed RTP header (RFC 3550 §5.1).
const RTP_FIXED_HEADER: usize = 12;
/// Size of the common RTCP header: V/P/count, PT, length.
const RTCP_COMMON_HEADER: usize = 4;
/// Common header plus the sender SSRC; every SR, RR, APP and feedback packet has it.
const RTCP_MIN_FIRST_PACKET: usize = 8;
/// RFC 5761 §4: these values of the second byte are reserved for RTCP, so an
/// RTP packet can never carry them in its M+PT byte.
const RTCP_PT_RANGE: core::ops::RangeInclusive<u8> = 192..=223;

/// Why a datagram was rejected as RTP or RTCP.
#[non_exhaustive]
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
pub enum PacketError {
    /// The datagram ends before a mandatory header (fixed header or CSRC list) is complete.
    #[error("packet too short for its header")]
    TooShort,
    /// The version field is not 2.
    #[error("unsupported RTP/RTCP version")]
    BadVersion,
    /// The padding bit is set but the padding count is zero or exceeds the bytes available.
    #[error("invalid padding")]
    BadPadding,
    /// The header extension is truncated or its length runs past the end of the packet.
    #[error("invalid header extension")]
    BadExtension,
    /// The RTCP length words do not tile the datagram exactly.
    #[error("RTCP length does not match the datagram")]
    BadLength,
    /// The first RTCP packet type lies outside the RFC 5761 RTCP range (192..=223).
    #[error("not an RTCP packet type")]
    BadPacketType,
}

/// What a datagram arriving on a muxed RTP/RTCP port carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// An RTP data packet.
    Rtp,
    /// An RTCP (possibly compound) control packet.
    Rtcp,
}

/// RFC 5761 §4 demultiplexing of RTP and RTCP on one port: version 2 and
/// second byte (M+PT) in 192..=223 → RTCP, anything else → RTP.
///
/// Only the first two bytes are inspected; the full validation is left to
/// [`RtpHeader::parse`] / [`RtcpHeader::parse`] so the dispatch stays cheap.
pub fn classify(data: &[u8]) -> Result<PacketKind, PacketError> {
    let [b0, b1, ..] = *data else {
        return Err(PacketError::TooShort);
    };
    if b0 >> 6 != VERSION {
        return Err(PacketError::BadVersion);
    }
    if RTCP_PT_RANGE.contains(&b1) {
        Ok(PacketKind::Rtcp)
    } else {
        Ok(PacketKind::Rtp)
    }
}

#[inline]
fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

#[inline]
fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// A validated, borrowed view of an RTP packet (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy)]
pub struct RtpHeader<'a> {
    data: &'a [u8],
    /// Offset of the payload: fixed header + CSRCs + extension.
    header_len: usize,
    /// End of the payload, i.e. the datagram length minus padding.
    payload_end: usize,
}

impl<'a> RtpHeader<'a> {
    /// Validates `data` as an RTP packet: version 2, complete fixed header and
    /// CSRC list, extension header whose length fits the packet, and padding
    /// whose (nonzero) count fits the bytes after the header.
    pub fn parse(data: &'a [u8]) -> Result<Self, PacketError> {
        if data.len() < RTP_FIXED_HEADER {
            return Err(PacketError::TooShort);
        }
        let b0 = data[0];
        if b0 >> 6 != VERSION {
            return Err(PacketError::BadVersion);
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0f);

        let mut header_len = RTP_FIXED_HEADER + 4 * csrc_count;
        if data.len() < header_len {
            return Err(PacketError::TooShort);
        }
        if has_extension {
            // RFC 3550 §5.3.1: 16-bit profile id, 16-bit length in 32-bit words
            // not counting this 4-byte extension header itself.
            if data.len() < header_len + 4 {
                return Err(PacketError::BadExtension);
            }
            let words = usize::from(be16(data, header_len + 2));
            header_len += 4 + 4 * words;
            if data.len() < header_len {
                return Err(PacketError::BadExtension);
            }
        }

        let mut payload_end = data.len();
        if has_padding {
            // The count includes itself, so zero is malformed; it may consume
            // the whole payload but never reach into the header.
            let pad = usize::from(data[data.len() - 1]);
            if pad == 0 || pad > data.len() - header_len {
                return Err(PacketError::BadPadding);
            }
            payload_end -= pad;
        }

        Ok(Self {
            data,
            header_len,
            payload_end,
        })
    }

    /// The marker bit (profile-defined; e.g. start of a talkspurt or last packet of a video frame).
    pub fn marker(&self) -> bool {
        self.data[1] & 0x80 != 0
    }

    /// The 7-bit payload type.
    pub fn payload_type(&self) -> u8 {
        self.data[1] & 0x7f
    }

    /// The 16-bit sequence number.
    pub fn sequence(&self) -> u16 {
        be16(self.data, 2)
    }

    /// The 32-bit media timestamp, in the payload's clock units.
    pub fn timestamp(&self) -> u32 {
        be32(self.data, 4)
    }

    /// The synchronization source identifier.
    pub fn ssrc(&self) -> u32 {
        be32(self.data, 8)
    }

    /// Number of CSRC identifiers following the fixed header (0..=15).
    pub fn csrc_count(&self) -> u8 {
        self.data[0] & 0x0f
    }

    /// Bytes before the payload: fixed header, CSRC list and extension.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload, excluding header and padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.data[self.header_len..self.payload_end]
    }
}

/// A validated, borrowed view of a (compound) RTCP packet (RFC 3550 §6).
#[derive(Debug, Clone, Copy)]
pub struct RtcpHeader<'a> {
    data: &'a [u8],
}

impl<'a> RtcpHeader<'a> {
    /// Validates `data` as a compound RTCP packet: every sub-packet has
    /// version 2, the length words tile the datagram exactly, only the last
    /// sub-packet may carry padding, and the first sub-packet has an RTCP
    /// packet type and is long enough to hold a sender SSRC.
    ///
    /// SRTCP is not plain RTCP: its trailing index and auth tag make the
    /// lengths not tile, so it must be unprotected before calling this.
    pub fn parse(data: &'a [u8]) -> Result<Self, PacketError> {
        if data.len() < RTCP_MIN_FIRST_PACKET {
            return Err(PacketError::TooShort);
        }
        if !RTCP_PT_RANGE.contains(&data[1]) {
            return Err(PacketError::BadPacketType);
        }

        let mut offset = 0;
        while offset < data.len() {
            if data.len() - offset < RTCP_COMMON_HEADER {
                // Trailing bytes that cannot even hold a header mean the
                // previous length words did not cover the datagram.
                return Err(PacketError::BadLength);
            }
            let b0 = data[offset];
            if b0 >> 6 != VERSION {
                return Err(PacketError::BadVersion);
            }
            let len = (usize::from(be16(data, offset + 2)) + 1) * 4;
            if len > data.len() - offset {
                return Err(PacketError::BadLength);
            }
            // A zero-length first packet (e.g. an empty SDES) has no SSRC;
            // RFC 3550 requires an SR/RR first, and RFC 5506 reduced-size
            // packets all start with one too, so reject rather than make
            // sender_ssrc() fallible.
            if offset == 0 && len < RTCP_MIN_FIRST_PACKET {
                return Err(PacketError::BadLength);
            }
            let end = offset + len;
            if b0 & 0x20 != 0 {
                // RFC 3550 §6.4.1: padding is only ever added to the last packet.
                let pad = usize::from(data[end - 1]);
                if end != data.len() || pad == 0 || pad > len - RTCP_COMMON_HEADER {
                    return Err(PacketError::BadPadding);
                }
            }
            offset = end;
        }

        Ok(Self { data })
    }

    /// Packet type of the first sub-packet (e.g. 200 SR, 201 RR, 205 RTPFB, 206 PSFB).
    pub fn packet_type(&self) -> u8 {
        self.data[1]
    }

    /// SSRC of the sender of the first sub-packet.
    pub fn sender_ssrc(&self) -> u32 {
        be32(self.data, 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp_packet(first: u8, rest_after_fixed: &[u8]) -> Vec<u8> {
        let mut p = vec![
            first,
            0x80 | 96, // M=1, PT=96
            0x12,
            0x34, // seq
            0xde,
            0xad,
            0xbe,
            0xef, // ts
            0x01,
            0x02,
            0x03,
            0x04, // ssrc
        ];
        p.extend_from_slice(rest_after_fixed);
        p
    }

    #[test]
    fn minimal_rtp() {
        let p = rtp_packet(0x80, &[1, 2, 3]);
        let h = RtpHeader::parse(&p).unwrap();
        assert!(h.marker());
        assert_eq!(h.payload_type(), 96);
        assert_eq!(h.sequence(), 0x1234);
        assert_eq!(h.timestamp(), 0xdead_beef);
        assert_eq!(h.ssrc(), 0x0102_0304);
        assert_eq!(h.csrc_count(), 0);
        assert_eq!(h.header_len(), 12);
        assert_eq!(h.payload(), &[1, 2, 3]);
    }

    #[test]
    fn empty_payload_is_valid() {
        let p = rtp_packet(0x80, &[]);
        assert_eq!(RtpHeader::parse(&p).unwrap().payload(), &[] as &[u8]);
    }

    #[test]
    fn csrc_extension_and_padding() {
        // CC=2, X=1, P=1.
        let rest = [
            0, 0, 0, 1, 0, 0, 0, 2, // CSRCs
            0xbe, 0xde, 0, 1, // one-byte-header extension, 1 word
            0x10, 0xaa, 0, 0, // extension data
            9, 8, 7, // payload
            0, 0, 3, // padding, count 3
        ];
        let p = rtp_packet(0x80 | 0x20 | 0x10 | 2, &rest);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.csrc_count(), 2);
        assert_eq!(h.header_len(), 12 + 8 + 4 + 4);
        assert_eq!(h.payload(), &[9, 8, 7]);
    }

    #[test]
    fn rtp_errors() {
        assert_eq!(
            RtpHeader::parse(&[0x80; 11]).unwrap_err(),
            PacketError::TooShort
        );
        let p = rtp_packet(0x40, &[]);
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), PacketError::BadVersion);
        // CC=1 but no CSRC bytes.
        let p = rtp_packet(0x81, &[]);
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), PacketError::TooShort);
        // X=1 with a truncated extension header.
        let p = rtp_packet(0x90, &[0xbe, 0xde]);
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), PacketError::BadExtension);
        // Extension claims 2 words, only 1 present.
        let p = rtp_packet(0x90, &[0xbe, 0xde, 0, 2, 0, 0, 0, 0]);
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), PacketError::BadExtension);
        // Padding count zero.
        let p = rtp_packet(0xa0, &[1, 0]);
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), PacketError::BadPadding);
        // Padding count larger than what follows the header.
        let p = rtp_packet(0xa0, &[1, 3]);
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), PacketError::BadPadding);
        // Padding may swallow the whole payload.
        let p = rtp_packet(0xa0, &[0, 2]);
        assert_eq!(RtpHeader::parse(&p).unwrap().payload(), &[] as &[u8]);
    }

    #[test]
    fn classify_rfc5761() {
        assert_eq!(classify(&[]), Err(PacketError::TooShort));
        assert_eq!(classify(&[0x80]), Err(PacketError::TooShort));
        assert_eq!(classify(&[0x00, 200]), Err(PacketError::BadVersion));
        assert_eq!(classify(&[0x80, 0]), Ok(PacketKind::Rtp));
        assert_eq!(classify(&[0x80, 0x80 | 96]), Ok(PacketKind::Rtp));
        assert_eq!(classify(&[0x80, 191]), Ok(PacketKind::Rtp));
        assert_eq!(classify(&[0x80, 192]), Ok(PacketKind::Rtcp));
        assert_eq!(classify(&[0x81, 200]), Ok(PacketKind::Rtcp));
        assert_eq!(classify(&[0x80, 223]), Ok(PacketKind::Rtcp));
        assert_eq!(classify(&[0x80, 224]), Ok(PacketKind::Rtp));
    }

    /// RR (no report blocks) followed by an SDES with one CNAME chunk.
    fn compound() -> Vec<u8> {
        vec![
            0x80, 201, 0, 1, 0xca, 0xfe, 0xba, 0xbe, // RR, length 1
            0x81, 202, 0, 2, 0xca, 0xfe, 0xba, 0xbe, // SDES, SC=1, length 2
            1, 1, b'x', 0, // CNAME "x", end
        ]
    }

    #[test]
    fn rtcp_compound() {
        let p = compound();
        assert_eq!(classify(&p), Ok(PacketKind::Rtcp));
        let h = RtcpHeader::parse(&p).unwrap();
        assert_eq!(h.packet_type(), 201);
        assert_eq!(h.sender_ssrc(), 0xcafe_babe);
    }

    #[test]
    fn rtcp_errors() {
        let good = compound();
        assert_eq!(
            RtcpHeader::parse(&good[..7]).unwrap_err(),
            PacketError::TooShort
        );
        // Trailing garbage after the last sub-packet.
        let mut p = good.clone();
        p.extend_from_slice(&[0, 0]);
        assert_eq!(RtcpHeader::parse(&p).unwrap_err(), PacketError::BadLength);
        // Second sub-packet truncated.
        assert_eq!(
            RtcpHeader::parse(&good[..good.len() - 4]).unwrap_err(),
            PacketError::BadLength
        );
        // Second sub-packet with version 1.
        let mut p = good.clone();
        p[8] = 0x41;
        assert_eq!(RtcpHeader::parse(&p).unwrap_err(), PacketError::BadVersion);
        // First packet type outside the RTCP range.
        let mut p = good.clone();
        p[1] = 96;
        assert_eq!(
            RtcpHeader::parse(&p).unwrap_err(),
            PacketError::BadPacketType
        );
        // Zero-length first packet has no sender SSRC.
        let p = [0x80, 202, 0, 0, 0x80, 201, 0, 0];
        assert_eq!(RtcpHeader::parse(&p).unwrap_err(), PacketError::BadLength);
        // Padding on a non-final packet.
        let mut p = good.clone();
        p[0] |= 0x20;
        assert_eq!(RtcpHeader::parse(&p).unwrap_err(), PacketError::BadPadding);
        // Padding on the final packet: valid count, then zero count.
        let mut p = good.clone();
        p[8] |= 0x20;
        *p.last_mut().unwrap() = 4;
        assert!(RtcpHeader::parse(&p).is_ok());
        *p.last_mut().unwrap() = 0;
        assert_eq!(RtcpHeader::parse(&p).unwrap_err(), PacketError::BadPadding);
    }

    /// Tiny deterministic LCG (Numerical Recipes constants) so fuzzing needs no dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u8 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u8
        }
    }

    fn exercise(data: &[u8]) {
        let _ = classify(data);
        if let Ok(h) = RtpHeader::parse(data) {
            let _ = (h.marker(), h.payload_type(), h.sequence(), h.timestamp());
            let _ = (h.ssrc(), h.csrc_count());
            assert!(h.header_len() + h.payload().len() <= data.len());
        }
        if let Ok(h) = RtcpHeader::parse(data) {
            let _ = (h.packet_type(), h.sender_ssrc());
        }
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut rng = Lcg(0x5eed);
        let mut buf = [0u8; 96];
        for _ in 0..200_000 {
            let len = usize::from(rng.next()) % buf.len();
            for b in &mut buf[..len] {
                *b = rng.next();
            }
            if len > 0 && rng.next() & 1 == 0 {
                // Force version 2 so the deeper validation paths get exercised.
                buf[0] = 0x80 | (buf[0] & 0x3f);
            }
            if len > 3 && rng.next() & 1 == 0 {
                // Keep lengths/counts small so they sometimes fit.
                buf[2] = 0;
                buf[3] &= 0x07;
                buf[len - 1] &= 0x0f;
            }
            exercise(&buf[..len]);
        }
    }

    #[test]
    fn never_panics_on_truncation() {
        let rest = [
            0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0, 9, 8, 7, 0, 0, 3,
        ];
        let rtp = rtp_packet(0x80 | 0x20 | 0x10 | 2, &rest);
        let rtcp = compound();
        for p in [&rtp, &rtcp] {
            for len in 0..=p.len() {
                exercise(&p[..len]);
            }
        }
        // Only the prefix ending exactly at the RR boundary is itself a valid compound.
        for len in 0..rtcp.len() {
            assert_eq!(RtcpHeader::parse(&rtcp[..len]).is_ok(), len == 8, "{len}");
        }
    }
}
