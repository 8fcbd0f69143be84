//! Inter-node tunnels: the wire format and its checks, with no sockets.
//!
//! A tunnel carries many calls' RTP and RTCP between two relay nodes over
//! one UDP socket pair (one socket per worker on each side). Each inner
//! datagram travels untouched behind a 32-byte header:
//!
//! | bytes    | field                                                       |
//! |----------|-------------------------------------------------------------|
//! | `0..2`   | magic `0x52 0x4D` ("RM")                                    |
//! | `2`      | version, [`VERSION`]                                        |
//! | `3`      | kind: 0 RTP, 1 RTCP                                         |
//! | `4..8`   | flow id at the *receiving* node, u32 big-endian             |
//! | `8..16`  | sequence number, u64 big-endian, per sending socket → peer  |
//! | `16..32` | tag: first 16 bytes of HMAC-SHA256(key, `0..16` ‖ inner)    |
//!
//! The magic's top two bits are `01`, so a tunnel datagram can never be
//! mistaken for RTP/RTCP (version `10`) or STUN (`00`) arriving on the same
//! socket. The tag authenticates the header and the inner datagram; the
//! sequence number, checked against a [`ReplayWindow`] only after the tag
//! verified, stops an attacker from replaying captured media into a call.
//! The key is per tunnel (per socket pair), derived by both ends from a
//! cluster secret with [`derive_key`].
//!
//! Nothing here allocates on the packet path: [`seal`], [`open`] and the
//! window work on the stack, and the keyed HMAC state is prepared once per
//! key (see [`TunnelKey`]).

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::rtp::PacketKind;

/// Length of the header before the inner datagram.
pub const HEADER_LEN: usize = 32;
/// First two bytes of every tunnel datagram ("RM").
pub const MAGIC: [u8; 2] = [0x52, 0x4D];
/// The wire format version this code speaks.
pub const VERSION: u8 = 1;
/// Length of the (truncated) tag.
pub const TAG_LEN: usize = 16;
/// Sequence numbers the [`ReplayWindow`] remembers behind the highest one.
pub const WINDOW: u64 = 128;

type HmacSha256 = Hmac<Sha256>;

/// A per-tunnel key, with its HMAC state keyed once.
///
/// Keying HMAC costs two SHA-256 compressions (inner and outer pad); doing
/// that once here and cloning the keyed state per packet halves the hashing
/// of a short RTP packet. The clone is a copy on the stack.
#[derive(Clone)]
pub struct TunnelKey {
    bytes: [u8; 32],
    mac: HmacSha256,
}

impl TunnelKey {
    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = HmacSha256::new_from_slice(&bytes).expect("HMAC takes any key length");
        Self { bytes, mac }
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// HMAC-SHA256 over `header` (the first 16 bytes) and `payload`.
    fn mac(&self, header: &[u8], payload: &[u8]) -> HmacSha256 {
        let mut m = self.mac.clone();
        m.update(header);
        m.update(payload);
        m
    }
}

impl PartialEq for TunnelKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for TunnelKey {}

impl std::fmt::Debug for TunnelKey {
    // Never print key material into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelKey(..)")
    }
}

/// Derives the key of the tunnel between socket addresses `a` and `b` from
/// the cluster `secret`: HMAC-SHA256(secret, "rtpmesh tunnel v1\n" + min +
/// "\n" + max), the addresses as text.
///
/// The addresses are ordered, so both ends derive the same key; binding it
/// to the pair means a key learned from one tunnel opens no other. Control
/// path only: it allocates the text.
pub fn derive_key(secret: &[u8], a: SocketAddr, b: SocketAddr) -> TunnelKey {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let info = format!("rtpmesh tunnel v1\n{lo}\n{hi}");
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(info.as_bytes());
    TunnelKey::from_bytes(m.finalize().into_bytes().into())
}

fn kind_byte(kind: PacketKind) -> u8 {
    match kind {
        PacketKind::Rtp => 0,
        PacketKind::Rtcp => 1,
    }
}

/// The header to put before `payload` (the inner datagram): kind, the
/// receiving node's `flow`, sequence number `seq` and the tag.
pub fn seal(
    key: &TunnelKey,
    kind: PacketKind,
    flow: u32,
    seq: u64,
    payload: &[u8],
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..2].copy_from_slice(&MAGIC);
    h[2] = VERSION;
    h[3] = kind_byte(kind);
    h[4..8].copy_from_slice(&flow.to_be_bytes());
    h[8..16].copy_from_slice(&seq.to_be_bytes());
    let tag = key.mac(&h[..16], payload).finalize().into_bytes();
    h[16..].copy_from_slice(&tag[..TAG_LEN]);
    h
}

/// What an authentic tunnel datagram's header says. The inner datagram is
/// the rest, `datagram[HEADER_LEN..]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Whether the inner datagram is RTP or RTCP (as the sender saw it).
    pub kind: PacketKind,
    /// The receiving node's flow id.
    pub flow: u32,
    /// The sender's sequence number; check it with a [`ReplayWindow`].
    pub seq: u64,
}

/// Why a tunnel datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// Too short, wrong magic, unknown version or kind.
    #[error("not a tunnel datagram of version {VERSION}")]
    Malformed,
    /// The tag does not match: forged, corrupted, or another key.
    #[error("tunnel tag does not verify")]
    BadTag,
    /// The sequence number was seen already or is too old to tell.
    #[error("tunnel sequence number replayed or too old")]
    Replayed,
}

/// Checks a received tunnel datagram's header and tag.
///
/// The tag is compared in constant time. The sequence number is *not*
/// checked here: the caller feeds it to its [`ReplayWindow`] afterwards, so
/// that only authentic datagrams ever move the window.
pub fn open(key: &TunnelKey, datagram: &[u8]) -> Result<Opened, TunnelError> {
    if datagram.len() < HEADER_LEN || datagram[0..2] != MAGIC || datagram[2] != VERSION {
        return Err(TunnelError::Malformed);
    }
    let kind = match datagram[3] {
        0 => PacketKind::Rtp,
        1 => PacketKind::Rtcp,
        _ => return Err(TunnelError::Malformed),
    };
    key.mac(&datagram[..16], &datagram[HEADER_LEN..])
        .verify_truncated_left(&datagram[16..HEADER_LEN])
        .map_err(|_| TunnelError::BadTag)?;
    let flow = u32::from_be_bytes(datagram[4..8].try_into().expect("4 bytes"));
    let seq = u64::from_be_bytes(datagram[8..16].try_into().expect("8 bytes"));
    Ok(Opened { kind, flow, seq })
}

/// Anti-replay state of one receiving socket → peer pair: the highest
/// sequence number seen and a bitmap of the [`WINDOW`] numbers below it, as
/// IPsec (RFC 4303 §3.4.3) and WireGuard keep it.
///
/// UDP may reorder, so a number below the highest is still accepted once
/// if it is inside the window; anything older cannot be told from a replay
/// and is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest sequence number accepted (0: none; senders start at 1).
    top: u64,
    /// Bit `i` set: `top - i` was accepted.
    seen: u128,
}

impl ReplayWindow {
    /// A window that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `seq` would be accepted, without recording it.
    pub fn check(&self, seq: u64) -> Result<(), TunnelError> {
        if seq == 0 {
            return Err(TunnelError::Replayed);
        }
        if seq > self.top {
            return Ok(());
        }
        let back = self.top - seq;
        if back >= WINDOW || self.seen & (1u128 << back) != 0 {
            return Err(TunnelError::Replayed);
        }
        Ok(())
    }

    /// Accepts and records `seq`, or refuses it as a replay. Call it only
    /// for datagrams whose tag verified.
    pub fn accept(&mut self, seq: u64) -> Result<(), TunnelError> {
        self.check(seq)?;
        if seq > self.top {
            let shift = seq - self.top;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = seq;
        } else {
            self.seen |= 1u128 << (self.top - seq);
        }
        Ok(())
    }

    /// The highest sequence number accepted so far (0: none).
    pub fn highest(&self) -> u64 {
        self.top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn key() -> TunnelKey {
        derive_key(
            b"cluster secret",
            addr("10.0.0.1:7000"),
            addr("10.0.0.2:7000"),
        )
    }

    fn datagram(key: &TunnelKey, seq: u64) -> Vec<u8> {
        let inner = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7, 0xd5, 0xd5];
        let mut d = seal(key, PacketKind::Rtp, 0x0102_0304, seq, &inner).to_vec();
        d.extend_from_slice(&inner);
        d
    }

    #[test]
    fn seal_open_round_trip() {
        let k = key();
        let inner = b"\x80\xc8 some rtcp";
        for (kind, flow, seq) in [
            (PacketKind::Rtp, 7, 1),
            (PacketKind::Rtcp, u32::MAX, u64::MAX),
        ] {
            let h = seal(&k, kind, flow, seq, inner);
            assert_eq!(&h[..4], &[0x52, 0x4D, 1, kind_byte(kind)]);
            assert_eq!(h[0] >> 6, 0b01, "never RTP (10) nor STUN (00)");
            let mut d = h.to_vec();
            d.extend_from_slice(inner);
            assert_eq!(open(&k, &d), Ok(Opened { kind, flow, seq }));
        }
        // An empty inner datagram still authenticates (the flow decides
        // whether it is media).
        let mut d = seal(&k, PacketKind::Rtp, 1, 1, &[]).to_vec();
        assert!(open(&k, &d).is_ok());
        d.truncate(HEADER_LEN - 1);
        assert_eq!(open(&k, &d), Err(TunnelError::Malformed));
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        let k = key();
        let d = datagram(&k, 5);
        for byte in 0..d.len() {
            for bit in 0..8 {
                let mut f = d.clone();
                f[byte] ^= 1 << bit;
                let r = open(&k, &f);
                if byte < 4 && !(byte == 3 && f[3] <= 1) {
                    // Magic, version or an impossible kind.
                    assert_eq!(r, Err(TunnelError::Malformed), "byte {byte} bit {bit}");
                } else {
                    assert_eq!(r, Err(TunnelError::BadTag), "byte {byte} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn wrong_key_is_rejected() {
        let d = datagram(&key(), 1);
        let other = derive_key(
            b"cluster secret",
            addr("10.0.0.1:7000"),
            addr("10.0.0.3:7000"),
        );
        assert_eq!(open(&other, &d), Err(TunnelError::BadTag));
        let other = derive_key(
            b"other secret",
            addr("10.0.0.1:7000"),
            addr("10.0.0.2:7000"),
        );
        assert_eq!(open(&other, &d), Err(TunnelError::BadTag));
    }

    #[test]
    fn derive_key_is_symmetric_and_pair_specific() {
        let (a, b) = (addr("10.0.0.1:7000"), addr("[2001:db8::1]:7000"));
        assert_eq!(derive_key(b"s", a, b), derive_key(b"s", b, a));
        assert_ne!(derive_key(b"s", a, b), derive_key(b"s", a, a));
        assert_ne!(derive_key(b"s", a, b), derive_key(b"t", a, b));
        // Pinned, so that both ends of a mixed-version cluster agree.
        let want = {
            let mut m = HmacSha256::new_from_slice(b"s").unwrap();
            m.update(b"rtpmesh tunnel v1\n10.0.0.1:7000\n[2001:db8::1]:7000");
            <[u8; 32]>::from(m.finalize().into_bytes())
        };
        assert_eq!(derive_key(b"s", b, a).as_bytes(), &want);
        assert_eq!(format!("{:?}", derive_key(b"s", a, b)), "TunnelKey(..)");
    }

    #[test]
    fn window_accepts_reordering_and_rejects_duplicates_and_old() {
        let mut w = ReplayWindow::new();
        assert_eq!(
            w.accept(0),
            Err(TunnelError::Replayed),
            "senders start at 1"
        );
        for s in [1, 3, 2, 10, 5, 4] {
            assert_eq!(w.accept(s), Ok(()), "seq {s}");
        }
        for s in [1, 2, 3, 4, 5, 10] {
            assert_eq!(w.accept(s), Err(TunnelError::Replayed), "dup {s}");
        }
        // Still unseen inside the window.
        assert_eq!(w.check(9), Ok(()));
        // Jump ahead: the edge of the window is still good, one more is not.
        assert_eq!(w.accept(10 + WINDOW), Ok(()));
        assert_eq!(w.check(11), Ok(()));
        assert_eq!(w.accept(10), Err(TunnelError::Replayed));
        assert_eq!(w.accept(11), Ok(()));
        assert_eq!(w.accept(11), Err(TunnelError::Replayed));
        assert_eq!(w.highest(), 10 + WINDOW);
        // A jump of more than the window forgets everything behind it.
        assert_eq!(w.accept(10_000), Ok(()));
        assert_eq!(w.accept(10_000 - WINDOW + 1), Ok(()));
        assert_eq!(w.accept(10_000 - WINDOW), Err(TunnelError::Replayed));
        assert_eq!(w.accept(u64::MAX), Ok(()));
        assert_eq!(w.accept(u64::MAX), Err(TunnelError::Replayed));
    }

    #[test]
    fn check_does_not_record() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(1), Ok(()));
        assert_eq!(w.check(1), Ok(()));
        assert_eq!(w.accept(1), Ok(()));
        assert_eq!(w.check(1), Err(TunnelError::Replayed));
    }
}
