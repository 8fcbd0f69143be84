//! Datagrams that waited too long in a socket's receive queue are dropped.
//!
//! After an overload (a burst, the worker descheduled, the process
//! stopped) a socket's queue holds datagrams that are already too old to
//! play: forwarding them first only delays the fresh ones behind them and
//! the receiver's jitter buffer discards them anyway. The kernel stamps
//! every datagram on arrival (`SO_TIMESTAMPNS`); when the worker gets to
//! one whose stamp is more than [`STALE_AFTER_NS`] old, it drops it and
//! counts it (`FlowCounters::stale_drops`) instead.
//!
//! The decision is this pure function of two instants the backend reads:
//! the datagram's stamp and the batch's `now`, both on `CLOCK_REALTIME`
//! (the only clock the socket stamp offers). A backward step of that clock
//! makes datagrams look younger (kept, as before this existed); a forward
//! step of more than the threshold drops what sits in the queues at that
//! moment, once.

/// Age at which a datagram is dropped: 200 ms.
///
/// Why this figure: in a healthy relay a datagram waits microseconds to a
/// few milliseconds; 200 ms is two orders above any scheduling hiccup, so
/// nothing is dropped in normal operation. On the other side, a packet
/// delayed 200 ms on top of its network path is beyond the 150 ms one-way
/// budget of ITU-T G.114 and behind the playout point of common jitter
/// buffers (20-200 ms), so it would be discarded as late at the receiver
/// anyway; sending it costs the relay CPU when it has the least to spare
/// and holds back the fresh media queued behind it.
pub const STALE_AFTER_NS: u64 = 200_000_000;

/// Whether a datagram the kernel stamped at `received_ns` is too old to
/// forward at `now_ns` (both nanoseconds of the same clock). A stamp in the
/// future (the clock stepped back) is never stale.
#[inline]
pub fn is_stale(received_ns: u64, now_ns: u64) -> bool {
    now_ns.saturating_sub(received_ns) > STALE_AFTER_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000_000_000_000;

    #[test]
    fn fresh_and_borderline_datagrams_are_kept() {
        assert!(!is_stale(T, T));
        assert!(!is_stale(T, T + 1_000_000));
        assert!(!is_stale(T, T + STALE_AFTER_NS));
    }

    #[test]
    fn older_than_the_threshold_is_stale() {
        assert!(is_stale(T, T + STALE_AFTER_NS + 1));
        assert!(is_stale(T, T + 1_000_000_000));
    }

    #[test]
    fn a_stamp_from_the_future_is_kept() {
        // The realtime clock stepped back between arrival and now.
        assert!(!is_stale(T + 5_000_000_000, T));
        assert!(!is_stale(u64::MAX, 0));
    }
}
