//! The process's clocks, read here so that the flow core never reads one.
//!
//! The media clock's epoch is process-wide: workers stamp
//! `last_packet_ms` with it and the control thread compares those stamps
//! with [`now_ms`], so both must count from the same instant.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rtpmesh_flow::clock::MediaClock;
use rtpmesh_flow::tunnel::WallClock;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The process's media clock (its epoch is the first call's instant).
pub fn media_clock() -> MediaClock {
    MediaClock::new(*EPOCH.get_or_init(Instant::now))
}

/// Media clock milliseconds now (at least 1; 0 means "never").
pub fn now_ms() -> u64 {
    media_clock().millis(Instant::now())
}

/// The media clock's zero as CLOCK_MONOTONIC nanoseconds, the clock the
/// kernel fast path stamps packets with (`bpf_ktime_get_ns`). `Instant` is
/// CLOCK_MONOTONIC on Linux, so the two differ by the elapsed time alone.
pub fn media_epoch_ns() -> u64 {
    let elapsed = media_clock().elapsed(Instant::now());
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a live local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    now.saturating_sub(elapsed.as_nanos() as u64)
}

/// The wall clock now, anchored to the monotonic clock: what a new tunnel's
/// sequence numbers and replay windows follow (see
/// `FlowTable::insert_tunnel` and `rtpmesh_flow::tunnel::next_seq`).
pub fn wall_clock() -> WallClock {
    WallClock::new(Instant::now(), wall_clock_micros())
}

/// The wall clock in microseconds since the Unix epoch.
pub fn wall_clock_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_sequence_bases_follow_the_wall_clock() {
        let a = wall_clock_micros();
        // After 2020 in microseconds, and never going back.
        assert!(a > 1_600_000_000_000_000, "{a}");
        assert!(wall_clock_micros() >= a);
        let w = wall_clock();
        assert!(w.start_micros() >= a);
        assert!(w.micros(Instant::now()) >= w.start_micros());
    }

    #[test]
    fn the_media_clock_is_shared_and_starts_at_one() {
        assert_eq!(media_clock(), media_clock());
        assert!(now_ms() >= 1);
    }
}
