//! The port pool: even/odd RTP/RTCP port pairs from a configured range.
//!
//! Sans-IO: the pool only says which pair to try. The caller binds the
//! sockets and, when a port turns out to be taken by another process, tells
//! the pool to skip it with [`PortPool::quarantine`].

use std::collections::BTreeSet;

/// Hands out port pairs `(p, p + 1)` with `p` even, round robin, so a
/// just-freed port is not reused at once (late packets of an old call must
/// not reach a new one).
#[derive(Debug, Clone)]
pub struct PortPool {
    min: u16,
    max: u16,
    next: u16,
    used: BTreeSet<u16>,
}

/// The pool has no free pair left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("port range {min}-{max} exhausted")]
pub struct Exhausted {
    /// Range start.
    pub min: u16,
    /// Range end.
    pub max: u16,
}

impl PortPool {
    /// A pool over `min..=max`; `min` is rounded up to even and the range must
    /// hold at least one pair.
    pub fn new(min: u16, max: u16) -> Result<Self, Exhausted> {
        let lo = min.saturating_add(min % 2);
        if lo == 0 || lo >= max {
            return Err(Exhausted { min, max });
        }
        Ok(Self {
            min: lo,
            max,
            next: lo,
            used: BTreeSet::new(),
        })
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        usize::from((self.max - self.min).div_ceil(2))
    }

    /// Pairs handed out and not yet released.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// Takes the next free pair; returns its even (RTP) port.
    pub fn allocate(&mut self) -> Result<u16, Exhausted> {
        for _ in 0..self.capacity() {
            let p = self.next;
            self.next = if p.checked_add(3).is_none_or(|n| n > self.max) {
                self.min
            } else {
                p + 2
            };
            if self.used.insert(p) {
                return Ok(p);
            }
        }
        Err(Exhausted {
            min: self.min,
            max: self.max,
        })
    }

    /// Returns a pair to the pool.
    pub fn release(&mut self, port: u16) {
        self.used.remove(&(port & !1));
    }

    /// Takes one given pair (a restored call's); false if it is outside the
    /// range or in use.
    pub fn take(&mut self, port: u16) -> bool {
        let p = port & !1;
        p >= self.min && p < self.max && self.used.insert(p)
    }

    /// Keeps a pair that could not be bound out of circulation until it is
    /// released; the caller releases it later (or never, if another process
    /// holds it for good).
    pub fn quarantine(&mut self, port: u16) {
        self.used.insert(port & !1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_even_pairs_round_robin() {
        let mut p = PortPool::new(30001, 30007).unwrap();
        assert_eq!(p.capacity(), 3);
        assert_eq!(p.allocate(), Ok(30002));
        assert_eq!(p.allocate(), Ok(30004));
        p.release(30002);
        assert_eq!(p.allocate(), Ok(30006));
        assert_eq!(p.allocate(), Ok(30002));
        assert!(p.allocate().is_err());
        p.release(30005);
        assert_eq!(p.allocate(), Ok(30004));
    }

    #[test]
    fn takes_a_given_pair_once() {
        let mut p = PortPool::new(30000, 30009).unwrap();
        assert!(p.take(30004));
        assert!(!p.take(30005), "same pair");
        assert!(!p.take(29998) && !p.take(30010), "outside");
        assert_eq!(p.allocate(), Ok(30000));
        assert_eq!(p.allocate(), Ok(30002));
        assert_eq!(p.allocate(), Ok(30006));
    }

    #[test]
    fn rejects_empty_range() {
        assert!(PortPool::new(30000, 30000).is_err());
        assert!(PortPool::new(0, 10).is_err());
        assert!(PortPool::new(65534, 65535).is_ok());
        let mut p = PortPool::new(65534, 65535).unwrap();
        assert_eq!(p.allocate(), Ok(65534));
        assert!(p.allocate().is_err());
    }
}
