//! The media clock: the time base of [`FlowCounters::last_packet_ms`] and of
//! RTP arrival times, as a value.
//!
//! The core never reads a clock. Whoever drives it (a worker) passes `now`
//! into every step, and the [`MediaClock`] it gave the table says where
//! millisecond 0 is. Workers and the control thread must share one epoch so
//! that a `last_packet_ms` a worker wrote compares with the control
//! thread's "now"; `rtpmesh-relay` keeps that process-wide epoch.
//!
//! [`FlowCounters::last_packet_ms`]: crate::counters::FlowCounters::last_packet_ms

use std::time::{Duration, Instant};

/// Milliseconds since an epoch, for counters and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaClock {
    epoch: Instant,
}

impl MediaClock {
    /// A clock whose millisecond 1 starts at `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self { epoch }
    }

    /// Where the clock starts.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// `t` in the clock's milliseconds; at least 1, because 0 means "never"
    /// in the counters.
    pub fn millis(&self, t: Instant) -> u64 {
        self.elapsed(t).as_millis() as u64 + 1
    }

    /// Time from the epoch to `t` (zero before it).
    pub fn elapsed(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.epoch)
    }
}
