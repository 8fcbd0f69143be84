//! The maps' records, field for field as `bpf/fastpath.h` declares them.
//!
//! Addresses and ports are kept in network byte order, as the program
//! compares them with the packet's bytes; the constructors take host
//! values.

use std::net::SocketAddrV4;

/// `struct fp_key`: a media socket's address, the key of `routes`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Key {
    addr: u32,
    port: u16,
    pad: u16,
}

impl Key {
    /// The key of datagrams addressed to `a`.
    pub(crate) fn new(a: SocketAddrV4) -> Self {
        Self {
            addr: be_addr(a),
            port: a.port().to_be(),
            pad: 0,
        }
    }
}

/// `FP_CARRIES_RTP`.
pub(crate) const CARRIES_RTP: u16 = 0x1;
/// `FP_CARRIES_RTCP`.
pub(crate) const CARRIES_RTCP: u16 = 0x2;
/// `FP_SOURCE_LEARN`.
pub(crate) const SOURCE_LEARN: u16 = 0x4;
/// `FP_SOURCE_STRICT`.
pub(crate) const SOURCE_STRICT: u16 = 0x8;
/// `FP_DELIVER_LOCAL`.
pub(crate) const DELIVER_LOCAL: u16 = 0x10;
/// `FP_HAVE_L2`.
pub(crate) const HAVE_L2: u16 = 0x20;

/// `struct fp_route`: what the program does with a datagram for one key.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Route {
    pub(crate) expect_addr: u32,
    pub(crate) expect_port: u16,
    pub(crate) flags: u16,
    pub(crate) from_addr: u32,
    pub(crate) from_port: u16,
    pub(crate) pad1: u16,
    pub(crate) to_addr: u32,
    pub(crate) to_port: u16,
    pub(crate) pad2: u16,
    pub(crate) stats: u32,
    pub(crate) clock_rate: u32,
    pub(crate) epoch_ns: u64,
    pub(crate) oif: u32,
    pub(crate) smac: [u8; 6],
    pub(crate) dmac: [u8; 6],
}

/// `struct fp_stats`: one route's counters and RFC 3550 receiver state
/// (the same fields as `rtpmesh_flow::stats::ReceiverState`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// RTP packets forwarded.
    pub rtp_packets: u64,
    /// Their UDP payload bytes.
    pub rtp_bytes: u64,
    /// RTCP packets forwarded.
    pub rtcp_packets: u64,
    /// Their UDP payload bytes.
    pub rtcp_bytes: u64,
    /// Datagrams from a stranger dropped under strict source.
    pub strict_drops: u64,
    /// CLOCK_MONOTONIC nanoseconds of the last packet (0: none).
    pub last_ns: u64,
    /// RFC 3550 `received`.
    pub received: u64,
    /// RFC 3550 jitter ×16.
    pub jitter: u64,
    /// The SSRC the receiver state describes (if `has_ssrc`).
    pub ssrc: u32,
    /// RFC 3550 `cycles` (pre-shifted).
    pub cycles: u32,
    /// RFC 3550 `base_seq`.
    pub base_seq: u32,
    /// RFC 3550 `bad_seq`.
    pub bad_seq: u32,
    /// The previous packet's relative transit (if `has_transit`).
    pub transit: u32,
    /// RFC 3550 `max_seq`.
    pub max_seq: u16,
    /// 1 once a packet was seen.
    pub has_ssrc: u8,
    /// 1 when `transit` holds a sample.
    pub has_transit: u8,
}

// SAFETY: plain `#[repr(C)]` integers and byte arrays with explicit
// padding fields, so every bit pattern is a valid value and no byte is
// uninitialised: what aya's `Pod` requires of map keys and values.
unsafe impl aya::Pod for Key {}
// SAFETY: as above.
unsafe impl aya::Pod for Route {}

pub(crate) fn be_addr(a: SocketAddrV4) -> u32 {
    u32::from_ne_bytes(a.ip().octets())
}

// The C header's sizes; a mismatch would corrupt the maps silently.
const _: () = assert!(size_of::<Key>() == 8);
const _: () = assert!(size_of::<Route>() == 56);
const _: () = assert!(std::mem::offset_of!(Route, epoch_ns) == 32);
const _: () = assert!(std::mem::offset_of!(Route, oif) == 40);
const _: () = assert!(size_of::<Stats>() == 88);
const _: () = assert!(std::mem::offset_of!(Stats, ssrc) == 64);
const _: () = assert!(std::mem::offset_of!(Stats, max_seq) == 84);

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn keys_hold_the_packet_bytes() {
        let k = Key::new(SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 0x1234));
        // SAFETY: Key is 8 plain bytes (asserted above).
        let bytes: [u8; 8] = unsafe { std::mem::transmute(k) };
        assert_eq!(bytes, [10, 1, 2, 3, 0x12, 0x34, 0, 0]);
    }
}
