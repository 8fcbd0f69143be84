//! A worker's side of the kernel fast path: it keeps the kernel's entries
//! equal to what the flow core allows ([`FlowTable::shortcut`]) and folds
//! the kernel's counters back into the flows, so that `query`, the media
//! timeout and statistics see every packet, whichever path carried it.
//!
//! Runs on the worker thread, between batches: on every [`Command::Sync`]
//! tick (a few per second) and before a flow is changed or removed
//! ([`Offloads::forget`]), so that no entry outlives what it was made for.
//!
//! [`Command::Sync`]: crate::worker::Command::Sync

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtpmesh_fastpath::{Entry, FastPath, FastPathError, Installed, Source, Stats};
use rtpmesh_flow::counters::{bump, FlowCounters};
use rtpmesh_flow::flow::{Carries, FlowTable, Shortcut, Slot, SourceRule};
use rtpmesh_flow::stats::{ReceiverState, ReceiverStats};

/// How long a flow whose entry could not be installed waits before the
/// next try (a neighbour not resolved yet, a full table).
const RETRY: Duration = Duration::from_secs(1);

struct Active {
    entry: Entry,
    via: Slot,
    handle: Installed,
    last: Stats,
}

/// The kernel entries one worker has installed, by the slot of the flow
/// whose packets they carry.
pub struct Offloads {
    fp: Arc<FastPath>,
    epoch_ns: u64,
    active: HashMap<Slot, Active>,
    /// The entries each flow sends for (as `via`), so that taking a flow
    /// out does not scan every entry.
    senders: HashMap<Slot, Vec<Slot>>,
    retry_after: HashMap<Slot, Instant>,
    locals: HashMap<Slot, SocketAddrV4>,
}

impl Offloads {
    /// A worker's view of the loaded fast path; `epoch_ns` is the media
    /// clock's zero in CLOCK_MONOTONIC ns (as the fast path was given).
    pub fn new(fp: Arc<FastPath>, epoch_ns: u64) -> Self {
        Self {
            fp,
            epoch_ns,
            active: HashMap::new(),
            senders: HashMap::new(),
            retry_after: HashMap::new(),
            locals: HashMap::new(),
        }
    }

    /// Entries installed now.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether none is installed.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Notes the address `slot`'s socket is bound to (IPv4 and specific
    /// only: the program matches the packet's destination).
    pub fn add_socket(&mut self, slot: Slot, local: SocketAddr) {
        if let SocketAddr::V4(a) = local {
            if !a.ip().is_unspecified() {
                self.locals.insert(slot, a);
            }
        }
    }

    /// Takes out every entry that involves `slot`, as receiver or as
    /// sender, folding its last counters into the flows. Called before the
    /// flow changes or goes.
    pub fn forget(&mut self, slot: Slot, table: &mut FlowTable) {
        self.uninstall(slot, table);
        for s in self.senders.remove(&slot).unwrap_or_default() {
            self.uninstall(s, table);
        }
        self.retry_after.remove(&slot);
    }

    /// Forgets a removed flow's socket address (after [`Offloads::forget`]).
    pub fn remove_socket(&mut self, slot: Slot) {
        self.locals.remove(&slot);
    }

    /// The tick: folds the kernel's counters into the flows, then makes the
    /// kernel's entries what [`FlowTable::shortcut`] allows at `now`.
    pub fn sync(&mut self, now: Instant, table: &mut FlowTable) {
        self.fold_all(table);
        let wanted: Vec<(Slot, Option<(Entry, Slot)>)> = table
            .socket_slots()
            .map(|s| {
                let want = table
                    .shortcut(s, now)
                    .and_then(|sc| Some((self.entry(s, &sc)?, sc.via)));
                (s, want)
            })
            .collect();
        for (slot, want) in wanted {
            match (self.active.get(&slot).map(|a| a.entry), want) {
                (Some(have), Some((want, _))) if have == want => {}
                (Some(_), None) => self.uninstall(slot, table),
                (have, Some((want, via))) => {
                    if have.is_some() {
                        self.uninstall(slot, table);
                    }
                    self.install(slot, want, via, now, table);
                }
                (None, None) => {}
            }
        }
        let stale: Vec<Slot> = self
            .active
            .keys()
            .filter(|s| table.get(**s).is_none())
            .copied()
            .collect();
        for slot in stale {
            self.uninstall(slot, table);
        }
    }

    /// Folds the kernel's counters into the flows (without changing any
    /// entry): what a reply about to report counters needs.
    pub fn fold_all(&mut self, table: &mut FlowTable) {
        for (&slot, a) in &mut self.active {
            let now = self.fp.read(&a.handle);
            fold(table, slot, &mut a.last, now, self.epoch_ns);
        }
    }

    fn entry(&self, slot: Slot, sc: &Shortcut) -> Option<Entry> {
        let v4 = |a: SocketAddr| match a {
            SocketAddr::V4(a) => Some(a),
            SocketAddr::V6(_) => None,
        };
        Some(Entry {
            local: *self.locals.get(&slot)?,
            source: match sc.source {
                SourceRule::Any => Source::Any,
                SourceRule::Learn(a) => Source::Learn(v4(a)?),
                SourceRule::Strict(a) => Source::Strict(v4(a)?),
            },
            rtp: sc.carries != Carries::Rtcp,
            rtcp: sc.carries != Carries::Rtp,
            from: *self.locals.get(&sc.via)?,
            to: v4(sc.to)?,
            clock_rate: sc.clock_rate,
        })
    }

    fn install(&mut self, slot: Slot, entry: Entry, via: Slot, now: Instant, table: &FlowTable) {
        if self.retry_after.get(&slot).is_some_and(|t| now < *t) {
            return;
        }
        let initial = to_kernel(table.receiver_stats(slot).unwrap_or_default().state());
        match self.fp.install(&entry, initial) {
            Ok(handle) => {
                self.retry_after.remove(&slot);
                tracing::debug!(?entry, "fast path: stream in the kernel");
                self.senders.entry(via).or_default().push(slot);
                self.active.insert(
                    slot,
                    Active {
                        entry,
                        via,
                        handle,
                        last: initial,
                    },
                );
            }
            Err(e) => {
                match e {
                    FastPathError::NoNeighbour(_) => {
                        tracing::debug!(error = %e, "fast path: later")
                    }
                    _ => {
                        tracing::warn!(error = %e, ?entry, "fast path: stream stays on the socket")
                    }
                }
                self.retry_after.insert(slot, now + RETRY);
            }
        }
    }

    fn uninstall(&mut self, slot: Slot, table: &mut FlowTable) {
        if let Some(mut a) = self.active.remove(&slot) {
            if let Some(v) = self.senders.get_mut(&a.via) {
                v.retain(|s| *s != slot);
                if v.is_empty() {
                    self.senders.remove(&a.via);
                }
            }
            let now = self.fp.remove(a.handle);
            fold(table, slot, &mut a.last, now, self.epoch_ns);
        }
    }
}

/// Adds what the kernel counted since `last` to `slot`'s counters and
/// takes over its receiver state; `now` becomes `last`.
fn fold(table: &mut FlowTable, slot: Slot, last: &mut Stats, now: Stats, epoch_ns: u64) {
    let last = std::mem::replace(last, now);
    let stats = ReceiverStats::from_state(from_kernel(&now));
    let Some(flow) = table.get(slot) else {
        return;
    };
    let c: &FlowCounters = flow.counters();
    let d_rtp = now.rtp_packets.wrapping_sub(last.rtp_packets);
    let d_rtcp = now.rtcp_packets.wrapping_sub(last.rtcp_packets);
    bump(&c.rtp_packets, d_rtp);
    bump(&c.rtp_bytes, now.rtp_bytes.wrapping_sub(last.rtp_bytes));
    bump(&c.rtcp_packets, d_rtcp);
    bump(&c.rtcp_bytes, now.rtcp_bytes.wrapping_sub(last.rtcp_bytes));
    bump(
        &c.strict_drops,
        now.strict_drops.wrapping_sub(last.strict_drops),
    );
    bump(&c.forwarded, d_rtp + d_rtcp);
    bump(&c.offloaded, d_rtp + d_rtcp);
    if now.last_ns != last.last_ns && now.last_ns >= epoch_ns {
        c.last_packet_ms
            .store((now.last_ns - epoch_ns) / 1_000_000 + 1, Relaxed);
    }
    if d_rtp > 0 {
        c.ssrc.store(stats.ssrc().unwrap_or(0), Relaxed);
        c.expected.store(stats.expected(), Relaxed);
        c.lost.store(stats.lost() as u64, Relaxed);
        c.jitter.store(stats.jitter(), Relaxed);
    }
    table.set_receiver_stats(slot, stats);
}

impl Drop for Offloads {
    fn drop(&mut self) {
        for (_, a) in self.active.drain() {
            self.fp.remove(a.handle);
        }
    }
}

fn to_kernel(s: ReceiverState) -> Stats {
    Stats {
        received: s.received,
        jitter: s.jitter,
        ssrc: s.ssrc.unwrap_or(0),
        cycles: s.cycles,
        base_seq: s.base_seq,
        bad_seq: s.bad_seq,
        transit: s.transit.unwrap_or(0),
        max_seq: s.max_seq,
        has_ssrc: u8::from(s.ssrc.is_some()),
        has_transit: u8::from(s.transit.is_some()),
        ..Stats::default()
    }
}

fn from_kernel(s: &Stats) -> ReceiverState {
    ReceiverState {
        ssrc: (s.has_ssrc != 0).then_some(s.ssrc),
        max_seq: s.max_seq,
        cycles: s.cycles,
        base_seq: s.base_seq,
        bad_seq: s.bad_seq,
        received: s.received,
        transit: (s.has_transit != 0).then_some(s.transit),
        jitter: s.jitter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtpmesh_flow::clock::MediaClock;
    use rtpmesh_flow::flow::{FlowId, FlowSpec, Latching};

    fn table() -> (FlowTable, Slot) {
        let mut t = FlowTable::new(MediaClock::new(Instant::now()));
        let spec = FlowSpec {
            id: FlowId(1),
            peer: None,
            latching: Latching::Learn,
            carries: Carries::Muxed,
            rtp_outputs: vec![],
            rtcp_outputs: vec![],
            clock_rate: 8000,
            counters: Arc::default(),
            security: Default::default(),
        };
        let slot = t.insert(&spec);
        (t, slot)
    }

    #[test]
    fn the_kernels_counts_are_added_once_and_its_state_taken_over() {
        let (mut t, slot) = table();
        let epoch = 1_000_000_000;
        let mut last = Stats::default();
        let k = Stats {
            rtp_packets: 10,
            rtp_bytes: 1720,
            rtcp_packets: 1,
            rtcp_bytes: 8,
            strict_drops: 2,
            last_ns: epoch + 5_000_000,
            received: 10,
            ssrc: 7,
            base_seq: 1,
            max_seq: 12,
            has_ssrc: 1,
            ..Stats::default()
        };
        fold(&mut t, slot, &mut last, k, epoch);
        // The same figures again add nothing.
        fold(&mut t, slot, &mut last, k, epoch);
        let c = t.get(slot).unwrap().counters().snapshot();
        assert_eq!((c.rtp_packets, c.rtp_bytes, c.rtcp_packets), (10, 1720, 1));
        assert_eq!((c.forwarded, c.offloaded, c.strict_drops), (11, 11, 2));
        assert_eq!(c.last_packet_ms, 6, "5 ms after the epoch, counted from 1");
        // Sequence numbers 1..=12 expected, 10 received: two lost.
        assert_eq!((c.ssrc, c.expected, c.lost), (7, 12, 2));
        let st = t.receiver_stats(slot).unwrap();
        assert_eq!((st.received(), st.lost()), (10, 2));
    }

    #[test]
    fn receiver_state_crosses_to_the_kernel_and_back_unchanged() {
        let s = ReceiverState {
            ssrc: Some(9),
            max_seq: 300,
            cycles: 65536,
            base_seq: 5,
            bad_seq: 65537,
            received: 65800,
            transit: Some(1234),
            jitter: 160,
        };
        assert_eq!(from_kernel(&to_kernel(s)), s);
        let none = ReceiverState::default();
        assert_eq!(from_kernel(&to_kernel(none)), none);
    }
}
