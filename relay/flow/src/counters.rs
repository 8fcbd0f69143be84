//! Per-flow counters that the owning worker writes and the control plane reads.
//!
//! A worker is the only writer of its flows' counters, so every update is a
//! relaxed load and store rather than an atomic read-modify-write: on x86 and
//! ARM that is a plain `mov`, as cheap as a private integer. The control thread
//! reads them whenever it answers `query` or looks for timed-out calls, without
//! stopping the worker and without a lock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Counters of one flow (one local socket), shared between its worker and
/// the control plane.
#[derive(Debug, Default)]
pub struct FlowCounters {
    /// RTP packets received and accepted.
    pub rtp_packets: AtomicU64,
    /// Bytes of those RTP packets (UDP payload).
    pub rtp_bytes: AtomicU64,
    /// RTCP packets received and accepted.
    pub rtcp_packets: AtomicU64,
    /// Bytes of those RTCP packets.
    pub rtcp_bytes: AtomicU64,
    /// Datagrams that were neither valid RTP nor RTCP; dropped.
    pub malformed: AtomicU64,
    /// Datagrams from a source other than the latched one under
    /// `strict-source`; dropped.
    pub strict_drops: AtomicU64,
    /// Datagrams from a source other than the latched one, forwarded anyway
    /// (rtpengine's behaviour without `strict-source`).
    pub foreign: AtomicU64,
    /// Datagrams that had nowhere to go yet (the other side's address is not
    /// known); dropped.
    pub unroutable: AtomicU64,
    /// Copies sent to outputs.
    pub forwarded: AtomicU64,
    /// Of the packets counted above, those the kernel's fast path
    /// forwarded without the relay's sockets (counted in `rtp_packets` and
    /// the rest as well).
    pub offloaded: AtomicU64,
    /// Sends that the kernel refused (ICMP unreachable, full buffer, ...).
    /// They never stop the flow.
    pub send_errors: AtomicU64,
    /// Datagrams the kernel dropped because this socket's receive queue was
    /// full (`SO_RXQ_OVFL`), as last reported.
    pub kernel_drops: AtomicU64,
    /// Datagrams that had waited in this socket's receive queue longer than
    /// the relay's staleness threshold (after an overload) when the worker
    /// got to them; dropped unforwarded so fresh media is not held back.
    pub stale_drops: AtomicU64,
    /// [`MediaClock`](crate::clock::MediaClock) milliseconds of the last
    /// accepted packet (0: none yet).
    pub last_packet_ms: AtomicU64,
    /// SSRC of the RTP stream being received (valid once `rtp_packets` > 0).
    pub ssrc: AtomicU32,
    /// RFC 3550 packets expected from the current SSRC.
    pub expected: AtomicU64,
    /// RFC 3550 cumulative packets lost (may be negative with duplicates).
    pub lost: AtomicU64,
    /// RFC 3550 interarrival jitter, in RTP timestamp units.
    pub jitter: AtomicU32,
    /// Tunnel sockets only: datagrams from an unknown source or whose tag
    /// did not verify (forged, corrupted, wrong key); dropped.
    pub tunnel_auth_failures: AtomicU64,
    /// Tunnel sockets only: authentic datagrams whose sequence number was
    /// seen already or is too old (replay); dropped.
    pub tunnel_replays: AtomicU64,
    /// Tunnel sockets only: authentic datagrams for a flow id this worker
    /// has no socketless flow for; dropped.
    pub tunnel_unknown_flow: AtomicU64,
    /// SRTP/SRTCP packets whose authentication tag did not verify, or that
    /// could not be unprotected or protected (malformed, no room); dropped.
    pub srtp_failures: AtomicU64,
    /// Authentic SRTP/SRTCP packets seen already or too old (replay);
    /// dropped.
    pub srtp_replays: AtomicU64,
    /// STUN binding requests answered (ICE connectivity checks).
    pub stun_answered: AtomicU64,
    /// STUN messages refused (malformed, wrong user or integrity); dropped.
    pub stun_refused: AtomicU64,
    /// DTLS records received (handshake and alerts).
    pub dtls_records: AtomicU64,
    /// DTLS records on an ICE socket from an address other than the peer's
    /// (before or beside its checks); dropped unread, so only a party that
    /// knows the ICE password can make the worker do handshake crypto.
    pub dtls_refused: AtomicU64,
}

/// Adds `n` to a counter that only the calling thread writes.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl FlowCounters {
    /// A consistent-enough copy for reporting (each field read once).
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            rtp_packets: self.rtp_packets.load(Relaxed),
            rtp_bytes: self.rtp_bytes.load(Relaxed),
            rtcp_packets: self.rtcp_packets.load(Relaxed),
            rtcp_bytes: self.rtcp_bytes.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            strict_drops: self.strict_drops.load(Relaxed),
            foreign: self.foreign.load(Relaxed),
            unroutable: self.unroutable.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            offloaded: self.offloaded.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            kernel_drops: self.kernel_drops.load(Relaxed),
            stale_drops: self.stale_drops.load(Relaxed),
            last_packet_ms: self.last_packet_ms.load(Relaxed),
            ssrc: self.ssrc.load(Relaxed),
            expected: self.expected.load(Relaxed),
            lost: self.lost.load(Relaxed) as i64,
            jitter: self.jitter.load(Relaxed),
            tunnel_auth_failures: self.tunnel_auth_failures.load(Relaxed),
            tunnel_replays: self.tunnel_replays.load(Relaxed),
            tunnel_unknown_flow: self.tunnel_unknown_flow.load(Relaxed),
            srtp_failures: self.srtp_failures.load(Relaxed),
            srtp_replays: self.srtp_replays.load(Relaxed),
            stun_answered: self.stun_answered.load(Relaxed),
            stun_refused: self.stun_refused.load(Relaxed),
            dtls_records: self.dtls_records.load(Relaxed),
            dtls_refused: self.dtls_refused.load(Relaxed),
        }
    }
}

/// A plain copy of [`FlowCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// See [`FlowCounters::rtp_packets`].
    pub rtp_packets: u64,
    /// See [`FlowCounters::rtp_bytes`].
    pub rtp_bytes: u64,
    /// See [`FlowCounters::rtcp_packets`].
    pub rtcp_packets: u64,
    /// See [`FlowCounters::rtcp_bytes`].
    pub rtcp_bytes: u64,
    /// See [`FlowCounters::malformed`].
    pub malformed: u64,
    /// See [`FlowCounters::strict_drops`].
    pub strict_drops: u64,
    /// See [`FlowCounters::foreign`].
    pub foreign: u64,
    /// See [`FlowCounters::unroutable`].
    pub unroutable: u64,
    /// See [`FlowCounters::forwarded`].
    pub forwarded: u64,
    /// See [`FlowCounters::offloaded`].
    pub offloaded: u64,
    /// See [`FlowCounters::send_errors`].
    pub send_errors: u64,
    /// See [`FlowCounters::kernel_drops`].
    pub kernel_drops: u64,
    /// See [`FlowCounters::stale_drops`].
    pub stale_drops: u64,
    /// See [`FlowCounters::last_packet_ms`].
    pub last_packet_ms: u64,
    /// See [`FlowCounters::ssrc`].
    pub ssrc: u32,
    /// See [`FlowCounters::expected`].
    pub expected: u64,
    /// See [`FlowCounters::lost`].
    pub lost: i64,
    /// See [`FlowCounters::jitter`].
    pub jitter: u32,
    /// See [`FlowCounters::tunnel_auth_failures`].
    pub tunnel_auth_failures: u64,
    /// See [`FlowCounters::tunnel_replays`].
    pub tunnel_replays: u64,
    /// See [`FlowCounters::tunnel_unknown_flow`].
    pub tunnel_unknown_flow: u64,
    /// See [`FlowCounters::srtp_failures`].
    pub srtp_failures: u64,
    /// See [`FlowCounters::srtp_replays`].
    pub srtp_replays: u64,
    /// See [`FlowCounters::stun_answered`].
    pub stun_answered: u64,
    /// See [`FlowCounters::stun_refused`].
    pub stun_refused: u64,
    /// See [`FlowCounters::dtls_records`].
    pub dtls_records: u64,
    /// See [`FlowCounters::dtls_refused`].
    pub dtls_refused: u64,
}

impl CounterSnapshot {
    /// Packets of both kinds accepted.
    pub fn packets(&self) -> u64 {
        self.rtp_packets + self.rtcp_packets
    }

    /// Datagrams received but not forwarded for any reason.
    pub fn errors(&self) -> u64 {
        self.malformed
            + self.strict_drops
            + self.stale_drops
            + self.tunnel_auth_failures
            + self.tunnel_replays
            + self.tunnel_unknown_flow
            + self.srtp_failures
            + self.srtp_replays
            + self.stun_refused
            + self.dtls_refused
    }
}
