//! RFC 7675 consent freshness, seen from an ICE-lite agent.
//!
//! A full agent sends consent checks to its peer; a lite agent sends none, so
//! the relay reads the browser's own checks (it keeps sending them, at least
//! every 5 s on average, RFC 7675 §5.1) as the sign that the peer is still
//! there. No valid check for 30 s and the leg is gone.

use std::time::{Duration, Instant};

/// How long consent lasts after the last valid check (RFC 7675 §5.1).
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// RFC 7675 seen from a lite agent: the peer's valid checks keep its consent fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    /// When the last valid check arrived (or the tracker started: a peer gets
    /// [`CONSENT_TIMEOUT`] to send its first check).
    last: Instant,
}

impl Consent {
    /// A tracker started at `now`.
    pub fn new(now: Instant) -> Self {
        Self { last: now }
    }

    /// Records a valid check (one that [`crate::answer`] answered) at `now`.
    pub fn on_valid_check(&mut self, now: Instant) {
        // A batch's `now` may be older than one seen before (per-worker clocks
        // taken at different points): never move backwards.
        self.last = self.last.max(now);
    }

    /// When the last valid check arrived (or the tracker started).
    pub fn last_check(&self) -> Instant {
        self.last
    }

    /// Whether consent has expired: no valid check for CONSENT_TIMEOUT (30 s, RFC 7675 §5.1).
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= CONSENT_TIMEOUT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_until_timeout_then_expired() {
        let t0 = Instant::now();
        let c = Consent::new(t0);
        assert!(!c.expired(t0));
        assert!(!c.expired(t0 + CONSENT_TIMEOUT - Duration::from_millis(1)));
        assert!(c.expired(t0 + CONSENT_TIMEOUT));
    }

    #[test]
    fn a_valid_check_refreshes_and_time_never_goes_back() {
        let t0 = Instant::now();
        let mut c = Consent::new(t0);
        c.on_valid_check(t0 + Duration::from_secs(20));
        assert!(!c.expired(t0 + Duration::from_secs(49)));
        assert!(c.expired(t0 + Duration::from_secs(50)));
        // An older `now` does not rewind the last check.
        c.on_valid_check(t0 + Duration::from_secs(5));
        assert_eq!(c.last_check(), t0 + Duration::from_secs(20));
        // A `now` before the last check is not expired (no underflow).
        assert!(!c.expired(t0));
    }
}
