//! `--backend auto`: which backend to run, decided from what each cost on
//! this host (the figures come from [`super::calibrate`]). Pure: no IO, no
//! clock.

use super::BackendKind;

/// io_uring is chosen only when it is at least this much cheaper per
/// packet (5%): below that the difference is within what a busy host's
/// measurement wobbles by, and epoll is then the safer default: it holds
/// no 9 MiB buffer ring per worker, needs no kernel 6.1 feature and no
/// locked memory.
pub const URING_MARGIN_PERCENT: u64 = 5;

/// What calibration measured: CPU nanoseconds per forwarded packet in
/// each round, the two backends' rounds alternating (round `i` of one ran
/// right after round `i` of the other).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Figures {
    /// epoll's rounds.
    pub epoll_ns: Vec<u64>,
    /// io_uring's, or `None` where it could not run.
    pub uring_ns: Option<Vec<u64>>,
}

impl Figures {
    /// io_uring's cost relative to epoll's, in per mille: the median over
    /// the pairs of neighbouring rounds. A pair shares whatever else the
    /// host was doing then, and the median ignores the pairs a disturbance
    /// hit on one side only. `None` without io_uring figures.
    pub fn uring_per_mille(&self) -> Option<u64> {
        let u = self.uring_ns.as_ref()?;
        let mut r: Vec<u64> = self
            .epoll_ns
            .iter()
            .zip(u)
            .filter(|(e, _)| **e > 0)
            .map(|(e, u)| u.saturating_mul(1000) / e)
            .collect();
        r.sort_unstable();
        r.get(r.len() / 2).copied()
    }

    /// The cheapest round of each backend (the least disturbed), for logs.
    pub fn best(&self) -> (Option<u64>, Option<u64>) {
        let min = |v: &[u64]| v.iter().copied().min();
        (min(&self.epoll_ns), self.uring_ns.as_deref().and_then(min))
    }
}

/// The backend to run, given the figures: io_uring only when it is cheaper
/// by at least the margin.
pub fn choose(f: &Figures) -> BackendKind {
    match f.uring_per_mille() {
        Some(pm) if pm <= 10 * (100 - URING_MARGIN_PERCENT) => BackendKind::Uring,
        _ => BackendKind::Epoll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(epoll_ns: &[u64], uring_ns: Option<&[u64]>) -> Figures {
        Figures {
            epoll_ns: epoll_ns.to_vec(),
            uring_ns: uring_ns.map(<[u64]>::to_vec),
        }
    }

    #[test]
    fn clearly_cheaper_uring_wins() {
        let f = figures(&[1000, 1000, 1000], Some(&[800, 820, 790]));
        assert_eq!(f.uring_per_mille(), Some(800));
        assert_eq!(choose(&f), BackendKind::Uring);
        assert_eq!(choose(&figures(&[1000], Some(&[950]))), BackendKind::Uring);
    }

    #[test]
    fn epoll_wins_when_cheaper_or_within_the_margin() {
        assert_eq!(choose(&figures(&[1000], Some(&[1200]))), BackendKind::Epoll);
        assert_eq!(choose(&figures(&[1000], Some(&[1000]))), BackendKind::Epoll);
        assert_eq!(choose(&figures(&[1000], Some(&[951]))), BackendKind::Epoll);
    }

    #[test]
    fn one_disturbed_pair_does_not_decide() {
        // The second epoll round was hit by something else on the host.
        let f = figures(&[1000, 2500, 1000], Some(&[1100, 1100, 1100]));
        assert_eq!(f.uring_per_mille(), Some(1100));
        assert_eq!(choose(&f), BackendKind::Epoll);
        // A host that slowed down for both halves of a pair changes nothing.
        let f = figures(&[1000, 3000, 1000], Some(&[900, 2700, 900]));
        assert_eq!(choose(&f), BackendKind::Uring);
    }

    #[test]
    fn no_uring_means_epoll() {
        assert_eq!(choose(&figures(&[1000], None)), BackendKind::Epoll);
        assert_eq!(choose(&figures(&[], Some(&[]))), BackendKind::Epoll);
        assert_eq!(choose(&figures(&[0], Some(&[5]))), BackendKind::Epoll);
    }

    #[test]
    fn best_is_the_cheapest_round() {
        let f = figures(&[1300, 900, 1100], Some(&[1000, 1200]));
        assert_eq!(f.best(), (Some(900), Some(1000)));
        assert_eq!(figures(&[], None).best(), (None, None));
    }
}
