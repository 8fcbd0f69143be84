//! Packet indices: rollover counter estimation (RFC 3711 §3.3.1 and
//! Appendix A) and the replay window (§3.3.2).

use crate::SrtpError;

/// How many indices behind the highest one the window remembers.
pub(crate) const WINDOW: u64 = 128;

/// The highest index seen and which of the WINDOW indices below it were
/// seen (bit n: highest - n).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplayWindow {
    highest: u64,
    seen: u128,
}

impl ReplayWindow {
    /// A window whose first index is `index`.
    pub(crate) fn starting_at(index: u64) -> Self {
        Self {
            highest: index,
            seen: 1,
        }
    }

    /// The highest index accepted so far.
    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// Whether `index` may be accepted: new, or inside the window and not
    /// seen. Changes nothing (the packet is not authenticated yet).
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let behind = self.highest - index;
        if behind >= WINDOW {
            Err(SrtpError::TooOld)
        } else if self.seen & (1 << behind) != 0 {
            Err(SrtpError::Replayed)
        } else {
            Ok(())
        }
    }

    /// Records `index` (which `check` accepted).
    pub(crate) fn accept(&mut self, index: u64) {
        if index > self.highest {
            let ahead = index - self.highest;
            self.seen = if ahead >= WINDOW {
                0
            } else {
                self.seen << ahead
            };
            self.seen |= 1;
            self.highest = index;
        } else {
            self.seen |= 1 << (self.highest - index);
        }
    }
}

/// The 48-bit SRTP index (ROC << 16 | SEQ) of a packet with sequence
/// number `seq`, given the highest index so far (RFC 3711 Appendix A: the
/// ROC guess closest to the last one). Never guesses below ROC 0.
pub(crate) fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = highest as u16;
    let seq64 = u64::from(seq);
    let guess_roc = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 && roc > 0 {
            roc - 1
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        // Wrapped: 48-bit index, so the ROC wraps at 2^32.
        (roc + 1) & 0xFFFF_FFFF
    } else {
        roc
    };
    (guess_roc << 16) | seq64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_new_refuses_seen_and_old() {
        let mut w = ReplayWindow::starting_at(1000);
        assert_eq!(w.check(1000), Err(SrtpError::Replayed));
        assert_eq!(w.check(999), Ok(()));
        w.accept(999);
        assert_eq!(w.check(999), Err(SrtpError::Replayed));
        w.accept(1200);
        assert_eq!(w.highest(), 1200);
        assert_eq!(w.check(1200 - WINDOW), Err(SrtpError::TooOld));
        assert_eq!(w.check(1200 - WINDOW + 1), Ok(()));
        assert_eq!(w.check(1000), Err(SrtpError::TooOld));
        w.accept(1199);
        assert_eq!(w.check(1199), Err(SrtpError::Replayed));
        assert_eq!(w.check(1198), Ok(()));
    }

    #[test]
    fn roc_estimation_follows_appendix_a() {
        // Around a wrap: late packets from the old ROC, new ones from the next.
        let h = (5 << 16) | 65530;
        assert_eq!(estimate_index(h, 2), (6 << 16) | 2);
        assert_eq!(estimate_index(h, 65000), (5 << 16) | 65000);
        let h = (6 << 16) | 3;
        assert_eq!(estimate_index(h, 65534), (5 << 16) | 65534);
        assert_eq!(estimate_index(h, 100), (6 << 16) | 100);
        // ROC 0: never below it.
        assert_eq!(estimate_index(3, 65534), 65534);
    }
}
