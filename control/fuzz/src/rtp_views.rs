//! `rtp_views`: RFC 5761 demultiplexing and the zero-copy RTP/RTCP views.

use rtpmesh_flow::rtp::{classify, PacketKind, RtcpHeader, RtpHeader};

/// Classifies `data` and parses it as both RTP and RTCP; what parses must
/// keep every accessor inside the datagram.
pub fn check(data: &[u8]) {
    let kind = classify(data);
    if let Ok(h) = RtpHeader::parse(data) {
        let _ = (h.marker(), h.payload_type(), h.sequence(), h.timestamp());
        let _ = (h.ssrc(), h.csrc_count());
        assert!(h.header_len() >= 12 && h.header_len() <= data.len());
        assert!(h.header_len() + h.payload().len() <= data.len());
        assert!(usize::from(h.csrc_count()) * 4 + 12 <= h.header_len());
        assert!(kind.is_ok(), "RTP parsed but did not classify");
    }
    if let Ok(h) = RtcpHeader::parse(data) {
        let _ = h.sender_ssrc();
        assert!((192..=223).contains(&h.packet_type()));
        assert_eq!(
            kind,
            Ok(PacketKind::Rtcp),
            "RTCP parsed but classified otherwise"
        );
    }
}
