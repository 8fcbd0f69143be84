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
//!
//! **Keys are per direction.** Both ends derive each key from a cluster
//! secret and the (sender, receiver) pair of socket addresses with
//! [`derive_key`]: what A seals for B does not verify under the key A opens
//! B's datagrams with, so a datagram captured on its way to B and bounced
//! back to A (a reflection) is refused as forged. (Version 1 used one key
//! for both directions, and reflected media was heard by its own sender.)
//!
//! **Sequence numbers follow the wall clock**, so that a restart does not
//! reopen the replay window; see [`next_seq`] and [`window_floor`] for the
//! reasoning and the exact exposure.
//!
//! Nothing here allocates on the packet path: [`seal`], [`open`] and the
//! window work on the stack, and the keyed HMAC state is prepared once per
//! key (see [`TunnelKey`]).

use std::net::SocketAddr;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::rtp::PacketKind;

/// Length of the header before the inner datagram.
pub const HEADER_LEN: usize = 32;
/// First two bytes of every tunnel datagram ("RM").
pub const MAGIC: [u8; 2] = [0x52, 0x4D];
/// The wire format version this code speaks.
pub const VERSION: u8 = 2;
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

/// Derives the key that `from` seals its datagrams to `to` with (and that
/// `to` opens them with), from the cluster `secret`:
/// HMAC-SHA256(secret, "rtpmesh tunnel v2\n" + from + "\n" + to), the
/// addresses as text.
///
/// The order matters: `derive_key(s, a, b)` and `derive_key(s, b, a)` are
/// the two directions' keys and differ, so a datagram sealed for one
/// direction never verifies in the other (no reflection). Binding the key
/// to the pair means a key learned from one tunnel opens no other. Control
/// path and a new peer's first datagram: the text is written on the
/// stack, nothing is allocated.
pub fn derive_key(secret: &[u8], from: SocketAddr, to: SocketAddr) -> TunnelKey {
    use std::io::Write;
    // The label and two socket addresses as text (at most 64 bytes each:
    // a full IPv6 address with an embedded IPv4 one, a scope id and a
    // port).
    let mut buf = [0u8; 192];
    let mut w: &mut [u8] = &mut buf;
    write!(w, "rtpmesh tunnel v2\n{from}\n{to}").expect("two addresses fit in 192 bytes");
    let len = 192 - w.len();
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(&buf[..len]);
    TunnelKey::from_bytes(m.finalize().into_bytes().into())
}

/// How far apart two nodes' wall clocks may be (µs) for tunnel media to
/// flow from the first moment after a node starts. Nodes keep their clocks
/// in NTP sync, which holds them within milliseconds; past this, a node
/// refuses tunnel media from a peer whose clock lags its own by more, for
/// as long as the lag exceeds it (counted as replays), after each start.
pub const MAX_CLOCK_SKEW_US: u64 = 1_000_000;

/// How far a sender's sequence numbers may fall behind its wall clock (µs)
/// before [`next_seq`] moves them up to it.
pub const SEQ_RESYNC_US: u64 = 100_000;

/// The sequence number to seal with after `prev`, at wall-clock `now_us`.
///
/// # Why sequence numbers follow the clock
///
/// A receiver's replay windows live in memory: a node that restarts (and
/// takes its calls back from its call records, on the same flow ids, with
/// no new signalling) starts with empty windows. Were they to start at 0,
/// every datagram captured before the restart would be accepted once more.
/// Persisting windows would cost a store write per packet; an epoch in the
/// key would force every peer to learn the restarted node's new epoch,
/// i.e. new signalling for every running call. Instead the *sender* keeps
/// its sequence numbers no lower than its wall clock in µs minus
/// [`SEQ_RESYNC_US`]: it counts up by one per datagram (so a window of
/// [`WINDOW`] numbers tolerates that much reordering), and once the count
/// has fallen more than [`SEQ_RESYNC_US`] behind the clock it jumps to the
/// clock. A receiver then starts every peer's window at
/// [`window_floor`] of its own start time, so nothing sent before that can
/// ever be accepted, by a restarted process or a fresh one; a sender's own
/// restart starts it at its clock, above all it sent before (at under a
/// million datagrams a second per peer the count never runs ahead of the
/// clock).
///
/// The cost: a datagram reordered across a jump (one every
/// [`SEQ_RESYNC_US`] on a busy tunnel) is refused as too old.
pub fn next_seq(prev: u64, now_us: u64) -> u64 {
    if now_us > prev.saturating_add(SEQ_RESYNC_US) {
        now_us
    } else {
        prev.saturating_add(1)
    }
}

/// The highest sequence number a process whose tunnel started at wall
/// clock `start_us` treats as already seen from every peer.
///
/// A peer's legitimate datagrams sent after this process started carry at
/// least the peer's clock minus [`SEQ_RESYNC_US`] ([`next_seq`]), which is
/// above this floor while the two clocks differ by less than
/// [`MAX_CLOCK_SKEW_US`]. A captured datagram is above it only if it was
/// sent less than `MAX_CLOCK_SKEW_US + SEQ_RESYNC_US` (1.1 s) before this
/// process started: so a node that comes back within 1.1 s of going down
/// accepts once more, once each, the datagrams its peers sent it in its
/// last (1.1 s − downtime) before it went down. Everything older is
/// refused.
pub fn window_floor(start_us: u64) -> u64 {
    start_us.saturating_sub(MAX_CLOCK_SKEW_US + SEQ_RESYNC_US)
}

/// The wall clock as the flow core sees it: the wall-clock µs at one
/// instant, so that the `now` a worker passes in converts to wall-clock µs
/// with no clock read on the packet path. Steps of the system clock after
/// `at` are not followed (the monotonic clock is), which is what sequence
/// numbers want: they never go back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    at: Instant,
    micros: u64,
}

impl WallClock {
    /// The wall clock read `micros` µs since the Unix epoch at `at`.
    pub fn new(at: Instant, micros: u64) -> Self {
        Self { at, micros }
    }

    /// Wall-clock µs when the anchor was taken.
    pub fn start_micros(&self) -> u64 {
        self.micros
    }

    /// Wall-clock µs at `now` (the anchor's if `now` is before it).
    pub fn micros(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.at).as_micros();
        self.micros
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
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

    /// A window that treats `floor` and everything below it as seen
    /// (see [`window_floor`]).
    pub fn above(floor: u64) -> Self {
        Self {
            top: floor,
            seen: u128::MAX,
        }
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
            assert_eq!(&h[..4], &[0x52, 0x4D, 2, kind_byte(kind)]);
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
    fn derive_key_is_per_direction_and_pair_specific() {
        let (a, b) = (addr("10.0.0.1:7000"), addr("[2001:db8::1]:7000"));
        assert_ne!(derive_key(b"s", a, b), derive_key(b"s", b, a));
        assert_ne!(derive_key(b"s", a, b), derive_key(b"s", a, a));
        assert_ne!(derive_key(b"s", a, b), derive_key(b"t", a, b));
        // Pinned, so that both ends of a mixed-version cluster agree.
        let want = {
            let mut m = HmacSha256::new_from_slice(b"s").unwrap();
            m.update(b"rtpmesh tunnel v2\n[2001:db8::1]:7000\n10.0.0.1:7000");
            <[u8; 32]>::from(m.finalize().into_bytes())
        };
        assert_eq!(derive_key(b"s", b, a).as_bytes(), &want);
        assert_eq!(format!("{:?}", derive_key(b"s", a, b)), "TunnelKey(..)");
        // The longest addresses there are fit the text buffer.
        let long = addr("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535");
        assert_ne!(derive_key(b"s", long, long), derive_key(b"s", a, long));
    }

    #[test]
    fn a_datagram_bounced_back_to_its_sender_does_not_verify() {
        let (a, b) = (addr("10.0.0.1:7000"), addr("10.0.0.2:7000"));
        let a_to_b = derive_key(b"s", a, b);
        let mut d = seal(&a_to_b, PacketKind::Rtp, 9, 5, b"media").to_vec();
        d.extend_from_slice(b"media");
        assert!(open(&a_to_b, &d).is_ok(), "B opens what A sealed for it");
        // A opens B's datagrams with the B → A key: the reflection fails.
        assert_eq!(open(&derive_key(b"s", b, a), &d), Err(TunnelError::BadTag));
    }

    #[test]
    fn a_version_1_datagram_is_malformed() {
        let mut d = datagram(&key(), 1);
        d[2] = 1;
        assert_eq!(open(&key(), &d), Err(TunnelError::Malformed));
    }

    #[test]
    fn sequence_numbers_count_and_keep_up_with_the_clock() {
        let t0 = 1_700_000_000_000_000;
        // The first datagram starts at the clock.
        let s1 = next_seq(0, t0);
        assert_eq!(s1, t0);
        // Then one up per datagram, even in the same microsecond and while
        // the count is less than SEQ_RESYNC_US behind the clock.
        assert_eq!(next_seq(s1, t0), t0 + 1);
        assert_eq!(next_seq(t0 + 1, t0 + SEQ_RESYNC_US), t0 + 2);
        // Once the count lags more, it jumps to the clock.
        assert_eq!(
            next_seq(t0 + 2, t0 + 3 + SEQ_RESYNC_US),
            t0 + 3 + SEQ_RESYNC_US
        );
        // A burst faster than the clock runs ahead of it, still rising.
        let mut s = t0;
        for _ in 0..1000 {
            let n = next_seq(s, t0);
            assert!(n > s);
            s = n;
        }
        assert_eq!(next_seq(u64::MAX, 0), u64::MAX, "saturates");
        // The invariant receivers rely on: never more than SEQ_RESYNC_US
        // behind the clock at the time of sending.
        let mut s = 0;
        for now in (t0..t0 + 5 * SEQ_RESYNC_US).step_by(7_919) {
            s = next_seq(s, now);
            assert!(s + SEQ_RESYNC_US >= now, "{s} at {now}");
        }
    }

    #[test]
    fn a_fresh_window_refuses_what_was_sent_before_its_floor() {
        let start = 1_700_000_000_000_000;
        let floor = window_floor(start);
        assert_eq!(floor, start - MAX_CLOCK_SKEW_US - SEQ_RESYNC_US);
        let mut w = ReplayWindow::above(floor);
        // Captured long before, or just below the floor: refused, even
        // inside the bitmap's reach.
        for seq in [1, start - 3_600_000_000, floor - 1, floor] {
            assert_eq!(w.accept(seq), Err(TunnelError::Replayed), "{seq}");
        }
        // A peer whose clock lags ours by less than the allowed skew, and
        // whose count lags its clock by up to SEQ_RESYNC_US, gets through.
        let lagging = start - MAX_CLOCK_SKEW_US + 1 - SEQ_RESYNC_US;
        assert_eq!(w.accept(lagging), Ok(()));
        assert_eq!(w.accept(start), Ok(()));
        assert_eq!(window_floor(5), 0);
    }

    #[test]
    fn the_wall_clock_follows_the_instants_it_is_given() {
        let at = Instant::now();
        let w = WallClock::new(at, 1_000);
        assert_eq!(w.start_micros(), 1_000);
        assert_eq!(w.micros(at), 1_000);
        assert_eq!(w.micros(at + std::time::Duration::from_millis(3)), 4_000);
        // Before the anchor: the anchor's time, never earlier.
        let w = WallClock::new(at + std::time::Duration::from_secs(1), 7);
        assert_eq!(w.micros(at), 7);
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
