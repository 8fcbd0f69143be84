//! One-way latency: an HDR histogram of nanoseconds and the percentiles
//! the reports quote.

use hdrhistogram::Histogram;

/// Highest latency recorded (10 s); anything later is clamped to it.
const MAX_NS: u64 = 10_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits.
pub struct Latency {
    hist: Histogram<u64>,
}

/// Percentiles of a [`Latency`], in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_NS, 3).expect("static bounds are valid"),
        }
    }

    /// Records one packet sent at `sent_ns` and received at `recv_ns`
    /// (both [`crate::rtp::now_ns`]). A receive time before the send time
    /// (impossible with one monotonic clock) counts as 0.
    pub fn record(&mut self, sent_ns: u64, recv_ns: u64) {
        let d = recv_ns.saturating_sub(sent_ns).clamp(1, MAX_NS);
        // Cannot fail: d is within the bounds.
        let _ = self.hist.record(d);
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Self) {
        let _ = self.hist.add(&other.hist);
    }

    /// Forgets every sample.
    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// The percentiles (zeros when empty).
    pub fn summary(&self) -> Summary {
        if self.hist.is_empty() {
            return Summary::default();
        }
        let us = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        Summary {
            count: self.hist.len(),
            p50_us: us(0.50),
            p90_us: us(0.90),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: self.hist.max() as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.002 + 0.001
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut l = Latency::new();
        // 1..=1000 µs, one sample each.
        for us in 1..=1000u64 {
            l.record(1_000_000, 1_000_000 + us * 1000);
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert!(close(s.p50_us, 500.0), "{s:?}");
        assert!(close(s.p90_us, 900.0), "{s:?}");
        assert!(close(s.p99_us, 990.0), "{s:?}");
        assert!(close(s.p999_us, 999.0), "{s:?}");
        assert!(close(s.max_us, 1000.0), "{s:?}");
    }

    #[test]
    fn outlier_shows_only_in_the_tail() {
        let mut l = Latency::new();
        for _ in 0..9999 {
            l.record(0, 20_000); // 20 µs
        }
        l.record(0, 5_000_000); // one 5 ms packet
        let s = l.summary();
        assert!(close(s.p99_us, 20.0), "{s:?}");
        assert!(close(s.max_us, 5000.0), "{s:?}");
    }

    #[test]
    fn clock_oddities_and_merge() {
        let mut a = Latency::new();
        a.record(10, 5); // receive before send: clamped, not a panic
        a.record(0, u64::MAX); // beyond the top: clamped
        let mut b = Latency::new();
        b.record(0, 1000);
        b.merge(&a);
        assert_eq!(b.summary().count, 3);
        assert!(b.summary().max_us >= 9_000_000.0);
        b.reset();
        assert_eq!(b.summary(), Summary::default());
    }
}
