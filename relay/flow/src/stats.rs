//! RFC 3550 receiver statistics (Appendix A.1, A.3, A.8) for one received stream.
//!
//! Updated once per forwarded packet, so it is plain integer arithmetic on a
//! `Copy` struct: no heap, no floats except in the reporting helper.

use std::time::Duration;

/// RTP sequence numbers are 16-bit; one cycle in the extended sequence space.
const RTP_SEQ_MOD: u32 = 1 << 16;
/// A forward jump up to this many packets is treated as loss, not a restart (A.1).
const MAX_DROPOUT: u16 = 3000;
/// A packet up to this many behind the highest seen is a late/duplicate one (A.1).
const MAX_MISORDER: u16 = 100;

/// Reception statistics for one synchronization source, as needed to fill an
/// RTCP receiver report block.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReceiverStats {
    /// `None` until the first packet; then the source the counters describe.
    ssrc: Option<u32>,
    /// Highest sequence number seen (low 16 bits of the extended maximum).
    max_seq: u16,
    /// Sequence-number wrap count, pre-shifted by 16 as in A.1.
    cycles: u32,
    /// First sequence number counted since the last (re)initialization.
    base_seq: u32,
    /// Last out-of-window sequence number + 1; `RTP_SEQ_MOD + 1` means none.
    bad_seq: u32,
    /// Packets accepted since the last (re)initialization, duplicates included.
    received: u64,
    /// Relative transit time of the previous packet; `None` until one is seen
    /// (or after a resync) so the first sample does not produce a bogus D.
    transit: Option<u32>,
    /// Interarrival jitter scaled by 16 (A.8 fixed point). u64 because
    /// 16 × a 31-bit |D| would overflow u32 on a pathological stream.
    jitter: u64,
}

impl ReceiverStats {
    /// Accounts one received RTP packet.
    ///
    /// `arrival` is the arrival time in the stream's RTP clock units (wraps;
    /// see [`rtp_units`]). A packet with a different SSRC than the current one
    /// restarts all statistics for the new source: a relay sees SSRC changes on
    /// re-INVITE or call transfer, and mixing two sources' sequence spaces would
    /// report nonsense loss.
    pub fn on_rtp(&mut self, ssrc: u32, seq: u16, rtp_timestamp: u32, arrival: u32) {
        if self.ssrc != Some(ssrc) {
            // Probation (MIN_SEQUENTIAL in A.1) is 0: the first packet is counted
            // immediately. Probation exists to keep garbage on a fresh port from
            // creating a source, but here the peer was negotiated via SDP and the
            // datagram already passed RtpHeader::parse; waiting two packets would
            // only under-count short calls and every SSRC change.
            *self = Self {
                ssrc: Some(ssrc),
                ..Self::default()
            };
            self.init_seq(seq);
        } else if !self.update_seq(seq) {
            return;
        }
        self.received += 1;
        self.update_jitter(rtp_timestamp, arrival);
    }

    /// A.1 `init_seq`: start counting from `seq`.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        // A resync usually means the sender spliced in a new stream (timestamps
        // jump too); one |D| of that size would dominate jitter for hundreds of
        // packets, so restart the transit baseline but keep the jitter estimate.
        self.transit = None;
    }

    /// A.1 `update_seq` without probation; returns whether the packet counts.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER + 1 {
            // A very large jump: believe it only if the next packet follows it,
            // since a single stray packet must not wreck the counters.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // else: duplicate or reordered packet; counted but max_seq unchanged.
        true
    }

    /// A.8 interarrival jitter, J += (|D| - J)/16 in the RFC's ×16 fixed point.
    fn update_jitter(&mut self, rtp_timestamp: u32, arrival: u32) {
        let transit = arrival.wrapping_sub(rtp_timestamp);
        if let Some(prev) = self.transit {
            // Both are wrapping u32 clocks; the difference is meaningful as i32.
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            self.jitter = self.jitter + d - ((self.jitter + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// The source these statistics describe, once a packet has been seen.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Packets received (duplicates included, as in A.3).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected: extended highest sequence − base + 1 (A.3); 0 before the first packet.
    pub fn expected(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        u64::from(self.extended_max_sequence().wrapping_sub(self.base_seq)) + 1
    }

    /// Cumulative packets lost: expected − received (A.3); negative when duplicates outnumber losses.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Extended highest sequence number received: wrap cycles in the high 16 bits.
    pub fn extended_max_sequence(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Interarrival jitter in RTP timestamp units, as reported in an RR block.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter >> 4).unwrap_or(u32::MAX)
    }

    /// Interarrival jitter in milliseconds for a stream clocked at `clock_rate` Hz
    /// (0.0 for a zero clock rate rather than infinity).
    pub fn jitter_ms(&self, clock_rate: u32) -> f64 {
        if clock_rate == 0 {
            return 0.0;
        }
        f64::from(self.jitter()) * 1000.0 / f64::from(clock_rate)
    }
}

/// [`ReceiverStats`]'s state as plain fields, for handing it to another
/// forwarder (the kernel's fast path keeps the same state per stream and
/// hands it back) without exposing the arithmetic's invariants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverState {
    /// The source, once a packet was seen.
    pub ssrc: Option<u32>,
    /// Highest sequence number seen.
    pub max_seq: u16,
    /// Wrap count, pre-shifted by 16.
    pub cycles: u32,
    /// First sequence number counted.
    pub base_seq: u32,
    /// Last out-of-window sequence number + 1.
    pub bad_seq: u32,
    /// Packets accepted.
    pub received: u64,
    /// Previous packet's relative transit.
    pub transit: Option<u32>,
    /// Jitter ×16.
    pub jitter: u64,
}

impl ReceiverStats {
    /// The state, field by field.
    pub fn state(&self) -> ReceiverState {
        ReceiverState {
            ssrc: self.ssrc,
            max_seq: self.max_seq,
            cycles: self.cycles,
            base_seq: self.base_seq,
            bad_seq: self.bad_seq,
            received: self.received,
            transit: self.transit,
            jitter: self.jitter,
        }
    }

    /// Statistics continuing from `s`.
    pub fn from_state(s: ReceiverState) -> Self {
        Self {
            ssrc: s.ssrc,
            max_seq: s.max_seq,
            cycles: s.cycles,
            base_seq: s.base_seq,
            bad_seq: s.bad_seq,
            received: s.received,
            transit: s.transit,
            jitter: s.jitter,
        }
    }
}

/// Converts elapsed time (since any fixed epoch) to RTP clock units, wrapping
/// modulo 2^32 like an RTP timestamp.
///
/// Integer-only and exact (floor): whole seconds times the rate is computed
/// modulo 2^64, which preserves the value modulo 2^32, and the sub-second part
/// (< 10^9 × < 2^32) fits u64 without overflow.
pub fn rtp_units(elapsed: Duration, clock_rate: u32) -> u32 {
    let rate = u64::from(clock_rate);
    let whole = elapsed.as_secs().wrapping_mul(rate);
    let frac = u64::from(elapsed.subsec_nanos()) * rate / 1_000_000_000;
    whole.wrapping_add(frac) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSRC: u32 = 0x1234_5678;

    /// Feeds sequence numbers as perfectly paced 20 ms G.711 packets.
    fn feed(s: &mut ReceiverStats, seqs: impl IntoIterator<Item = u16>) {
        for seq in seqs {
            let ts = u32::from(seq).wrapping_mul(160);
            s.on_rtp(SSRC, seq, ts, ts.wrapping_add(5000));
        }
    }

    #[test]
    fn empty() {
        let s = ReceiverStats::default();
        assert_eq!(s.ssrc(), None);
        assert_eq!((s.received(), s.expected(), s.lost()), (0, 0, 0));
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn in_order() {
        let mut s = ReceiverStats::default();
        feed(&mut s, 1000..1100);
        assert_eq!(s.ssrc(), Some(SSRC));
        assert_eq!(s.received(), 100);
        assert_eq!(s.expected(), 100);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.extended_max_sequence(), 1099);
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn loss_of_k_packets() {
        let mut s = ReceiverStats::default();
        feed(&mut s, (1..=50).chain(58..=100)); // 51..=57 lost
        assert_eq!(s.received(), 93);
        assert_eq!(s.expected(), 100);
        assert_eq!(s.lost(), 7);
        assert_eq!(s.extended_max_sequence(), 100);
    }

    #[test]
    fn reordering() {
        let mut s = ReceiverStats::default();
        feed(&mut s, [1, 2, 4, 3, 5, 7, 6]);
        assert_eq!(s.received(), 7);
        assert_eq!(s.expected(), 7);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.extended_max_sequence(), 7);
    }

    #[test]
    fn duplicates_make_loss_negative() {
        let mut s = ReceiverStats::default();
        feed(&mut s, [1, 2, 2, 3, 3, 4]);
        assert_eq!(s.received(), 6);
        assert_eq!(s.expected(), 4);
        assert_eq!(s.lost(), -2);
    }

    #[test]
    fn sequence_wrap() {
        let mut s = ReceiverStats::default();
        feed(&mut s, (65530..=65535).chain(0..=5));
        assert_eq!(s.received(), 12);
        assert_eq!(s.expected(), 12);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.extended_max_sequence(), 65536 + 5);
        // A late packet from before the wrap does not bump the cycle count.
        feed(&mut s, [65534]);
        assert_eq!(s.extended_max_sequence(), 65536 + 5);
        assert_eq!(s.received(), 13);
    }

    #[test]
    fn big_jump_resyncs_after_two_sequential_packets() {
        let mut s = ReceiverStats::default();
        feed(&mut s, 10..=20);
        // First packet of the jump is ignored...
        feed(&mut s, [30_000]);
        assert_eq!(s.received(), 11);
        assert_eq!(s.extended_max_sequence(), 20);
        // ...the next sequential one restarts counting from itself (A.1 init_seq).
        feed(&mut s, [30_001, 30_002]);
        assert_eq!(s.received(), 2);
        assert_eq!(s.expected(), 2);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.extended_max_sequence(), 30_002);
        assert_eq!(s.ssrc(), Some(SSRC));
    }

    #[test]
    fn single_stray_jump_is_ignored() {
        let mut s = ReceiverStats::default();
        feed(&mut s, [10, 11, 40_000, 12, 13]);
        assert_eq!(s.received(), 4);
        assert_eq!(s.expected(), 4);
        assert_eq!(s.extended_max_sequence(), 13);
        // Just beyond MAX_MISORDER behind is also out of window, not a duplicate.
        feed(&mut s, 14..=300);
        feed(&mut s, [300 - 101]);
        assert_eq!(s.received(), 4 + 287);
    }

    #[test]
    fn ssrc_change_restarts() {
        let mut s = ReceiverStats::default();
        feed(&mut s, (1..=10).chain(15..=20));
        assert_eq!(s.lost(), 4);
        s.on_rtp(0xdead_beef, 500, 0, 0);
        assert_eq!(s.ssrc(), Some(0xdead_beef));
        assert_eq!((s.received(), s.expected(), s.lost()), (1, 1, 0));
        assert_eq!(s.extended_max_sequence(), 500);
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn paced_packets_have_zero_jitter() {
        let mut s = ReceiverStats::default();
        // Arrival clock offset arbitrarily from the media clock, both wrapping.
        for i in 0..1000u32 {
            let ts = 0xffff_ff00u32.wrapping_add(i * 160);
            let arrival = 0x7fff_fff0u32.wrapping_add(i * 160);
            s.on_rtp(SSRC, i as u16, ts, arrival);
        }
        assert_eq!(s.jitter(), 0);
        assert_eq!(s.jitter_ms(8000), 0.0);
    }

    #[test]
    fn hand_computed_jitter() {
        // ts:      0,    160,  320,  480
        // arrival: 1000, 1320, 1480, 1560
        // transit: 1000, 1160, 1160, 1080  → |D| = 160, 0, 80
        // J16 (= 16·J) starts at 0; J16 += |D| - ((J16 + 8) >> 4):
        //   |D|=160: 0   + 160 - 0  = 160  (J = 10)
        //   |D|=0:   160 + 0   - 10 = 150  (J = 9.375 → 9)
        //   |D|=80:  150 + 80  - 9  = 221  (J = 13.81 → 13)
        // Floating point J += (|D| - J)/16 gives 10, 9.375, 13.79 — same within rounding.
        let mut s = ReceiverStats::default();
        let pkts = [(0, 1000), (160, 1320), (320, 1480), (480, 1560)];
        for (i, (ts, arrival)) in pkts.into_iter().enumerate() {
            s.on_rtp(SSRC, i as u16, ts, arrival);
        }
        assert_eq!(s.jitter(), 13);
        assert!((s.jitter_ms(8000) - 1.625).abs() < 1e-9);
        assert_eq!(s.jitter_ms(0), 0.0);
    }

    #[test]
    fn rtp_units_conversion() {
        assert_eq!(rtp_units(Duration::from_secs(1), 8000), 8000);
        assert_eq!(rtp_units(Duration::from_millis(20), 48_000), 960);
        assert_eq!(rtp_units(Duration::from_micros(125), 8000), 1);
        assert_eq!(rtp_units(Duration::from_micros(124), 8000), 0);
        let secs = 10_000_000u64;
        let expect = (secs * 90_000 % (1 << 32)) as u32;
        assert_eq!(rtp_units(Duration::from_secs(secs), 90_000), expect);
        // Huge durations wrap instead of overflowing.
        let _ = rtp_units(Duration::MAX, u32::MAX);
    }

    #[test]
    fn never_panics_on_hostile_streams() {
        // Wild timestamps/arrivals push |D| to 2^31 and seqs jump anywhere:
        // catches arithmetic overflow (tests run with overflow checks).
        let mut x: u64 = 1;
        let mut next = || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 32) as u32
        };
        let mut s = ReceiverStats::default();
        for _ in 0..100_000 {
            let r = next();
            s.on_rtp(u32::from(r % 4096 == 0), next() as u16, next(), next());
            let _ = (s.expected(), s.lost(), s.jitter(), s.jitter_ms(8000));
        }
    }
}
