//! `tunnel_open`: the tunnel header and tag check, and the replay window.

use std::collections::HashSet;
use std::sync::OnceLock;

use rtpmesh_flow::rtp::PacketKind;
use rtpmesh_flow::tunnel::{open, seal, ReplayWindow, TunnelKey, HEADER_LEN, WINDOW};

fn key() -> &'static TunnelKey {
    static KEY: OnceLock<TunnelKey> = OnceLock::new();
    KEY.get_or_init(|| TunnelKey::from_bytes(*b"rtpmesh fuzz key, 32 bytes long!"))
}

/// Opens `data` with a fixed key (forgeries must fail, so this mostly
/// exercises the refusals), then seals the bytes after the header as a
/// real sender would and opens that: it must come back as sealed, and the
/// replay window must take its sequence number once only.
pub fn check(data: &[u8]) {
    if open(key(), data).is_ok() {
        // Only a sealed datagram opens; the fuzzer cannot forge a tag.
        assert!(data.len() >= HEADER_LEN);
    }
    let (head, payload) = data.split_at(data.len().min(16));
    let mut word = [0u8; 16];
    word[..head.len()].copy_from_slice(head);
    let flow = u32::from_be_bytes(word[0..4].try_into().expect("4 bytes"));
    let seq = u64::from_be_bytes(word[4..12].try_into().expect("8 bytes"));
    let kind = if word[12] & 1 == 0 {
        PacketKind::Rtp
    } else {
        PacketKind::Rtcp
    };
    let h = seal(key(), kind, flow, seq, payload);
    let mut datagram = h.to_vec();
    datagram.extend_from_slice(payload);
    let o = open(key(), &datagram).expect("a sealed datagram opens");
    assert_eq!((o.kind, o.flow, o.seq), (kind, flow, seq));
    // One flipped bit anywhere must break the tag.
    let bit = usize::from(word[13]) * 256 + usize::from(word[14]);
    let i = bit / 8 % datagram.len();
    datagram[i] ^= 1 << (bit % 8);
    assert!(
        open(key(), &datagram).is_err(),
        "a flipped bit at {i} still opens"
    );

    window(seq, payload);
}

/// Feeds the window sequence numbers near `base` (offsets from `moves`,
/// two bytes each) and compares it with the obvious model: a number is
/// taken once, never 0, and only if it is above the highest or within
/// [`WINDOW`] below it.
fn window(base: u64, moves: &[u8]) {
    let mut w = ReplayWindow::new();
    let mut taken = HashSet::new();
    let mut top = 0u64;
    for m in moves.chunks_exact(2) {
        let off = i64::from(i16::from_be_bytes([m[0], m[1]]));
        let seq = base.wrapping_add_signed(off);
        let fresh = seq != 0 && !taken.contains(&seq) && (seq > top || top - seq < WINDOW);
        assert_eq!(w.check(seq).is_ok(), fresh, "check({seq}), top {top}");
        assert_eq!(w.accept(seq).is_ok(), fresh, "accept({seq}), top {top}");
        if fresh {
            taken.insert(seq);
            top = top.max(seq);
        }
        assert_eq!(w.highest(), top);
    }
}
