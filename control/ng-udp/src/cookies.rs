//! The cookie cache: replies by cookie, so that a proxy's retransmission is
//! answered with the reply it missed instead of being executed twice.
//!
//! Sans-IO: the caller passes the time (milliseconds on any monotonic
//! clock). Bounded three ways, because the cookies come from the network: a
//! time to live, a number of entries and a number of bytes (cookie plus
//! reply); beyond either bound the oldest replies go first. Requests still
//! being worked on ("busy") are bounded by count, and cookies by length.
//!
//! rtpengine keeps replies 30 to 60 s (two tables swapped every 30 s) with
//! no bound on count, bytes or cookie length; SIP proxies retransmit within
//! a few seconds, so evicting the oldest replies early under a flood only
//! costs a retransmission that comes later than any proxy sends one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// The longest cookie served. Proxies send short ones (Kamailio and
/// OpenSIPS: `PID_COUNTER`, e.g. `3452_1`; others a UUID); rtpengine sets
/// no limit.
pub const MAX_COOKIE: usize = 256;

/// What each cached reply costs besides its cookie and reply bytes (the
/// map slot, the order slot, the allocations' headers), so the byte bound
/// stays honest for small replies.
const ENTRY_OVERHEAD: usize = 128;

/// The bounds of a [`CookieCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// How long a reply is kept.
    pub ttl: Duration,
    /// Most cached replies.
    pub max_entries: usize,
    /// Most bytes of cached cookies and replies.
    pub max_bytes: usize,
    /// Most requests being worked on at once.
    pub max_busy: usize,
}

impl Default for CacheLimits {
    /// 30 s (rtpengine's), 100,000 replies, 32 MiB (at 1 KB an offer
    /// reply, 1,000 requests a second for over 30 s), 16,384 requests in
    /// progress.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            max_entries: 100_000,
            max_bytes: 32 << 20,
            max_busy: 16_384,
        }
    }
}

/// What to do with a request's cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A retransmission: send this reply again (the whole datagram).
    Cached(Arc<[u8]>),
    /// A retransmission of a request still being worked on: drop it; the
    /// reply goes out when it is done.
    InProgress,
    /// A new request, now marked busy: handle it, then
    /// [`CookieCache::finish`] or [`CookieCache::abandon`] it.
    New,
    /// Too many requests in progress: drop it (the proxy retransmits).
    Overloaded,
    /// The cookie is longer than [`MAX_COOKIE`]: drop it.
    TooLong,
}

struct Entry {
    at_ms: u64,
    /// Which insertion this is, so an order slot left by an earlier entry
    /// for the same cookie is told apart.
    seq: u64,
    reply: Arc<[u8]>,
}

/// Replies by cookie, oldest first out; see the module doc.
pub struct CookieCache {
    limits: CacheLimits,
    done: HashMap<Box<[u8]>, Entry>,
    /// Cookies in insertion order, with their entry's `seq`.
    order: VecDeque<(u64, Box<[u8]>)>,
    busy: HashSet<Box<[u8]>>,
    bytes: usize,
    next_seq: u64,
}

impl CookieCache {
    /// An empty cache.
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            limits,
            done: HashMap::new(),
            order: VecDeque::new(),
            busy: HashSet::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    /// Cached replies.
    pub fn len(&self) -> usize {
        self.done.len()
    }

    /// Whether no reply is cached.
    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// Bytes the cached replies are accounted at.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Requests being worked on.
    pub fn busy(&self) -> usize {
        self.busy.len()
    }

    /// Looks a request's cookie up; a new one is marked busy.
    pub fn begin(&mut self, cookie: &[u8], now_ms: u64) -> Lookup {
        if cookie.len() > MAX_COOKIE {
            return Lookup::TooLong;
        }
        self.expire(now_ms);
        if let Some(e) = self.done.get(cookie) {
            return Lookup::Cached(e.reply.clone());
        }
        if self.busy.contains(cookie) {
            return Lookup::InProgress;
        }
        if self.busy.len() >= self.limits.max_busy {
            return Lookup::Overloaded;
        }
        self.busy.insert(cookie.into());
        Lookup::New
    }

    /// Caches the reply (the whole datagram) to a request that
    /// [`begin`](Self::begin) called new; it is no longer busy.
    pub fn finish(&mut self, cookie: &[u8], reply: Arc<[u8]>, now_ms: u64) {
        self.busy.remove(cookie);
        if cookie.len() > MAX_COOKIE {
            return;
        }
        let cost = Self::cost(cookie, &reply);
        if cost > self.limits.max_bytes || self.limits.max_entries == 0 {
            return;
        }
        self.expire(now_ms);
        self.remove(cookie);
        // The order slots bound the count: there is one for every entry,
        // and a stale one for a cookie finished twice.
        while self.order.len() >= self.limits.max_entries
            || self.bytes + cost > self.limits.max_bytes
        {
            if !self.pop_oldest() {
                break;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((seq, cookie.into()));
        self.bytes += cost;
        self.done.insert(
            cookie.into(),
            Entry {
                at_ms: now_ms,
                seq,
                reply,
            },
        );
    }

    /// Forgets that a request is being worked on, with no reply to cache
    /// (it was dropped; a retransmission will be handled afresh).
    pub fn abandon(&mut self, cookie: &[u8]) {
        self.busy.remove(cookie);
    }

    /// Drops the replies older than the time to live. [`begin`](Self::begin)
    /// and [`finish`](Self::finish) do this too; call it when idle so an
    /// idle server does not hold a burst's replies.
    pub fn expire(&mut self, now_ms: u64) {
        let ttl = self.limits.ttl.as_millis() as u64;
        while let Some((seq, cookie)) = self.order.front() {
            match self.done.get(cookie) {
                Some(e) if e.seq == *seq && now_ms.saturating_sub(e.at_ms) < ttl => break,
                _ => {
                    self.pop_oldest();
                }
            }
        }
    }

    /// Each entry is accounted at its cookie twice (map key and order
    /// slot), its reply and a fixed overhead.
    fn cost(cookie: &[u8], reply: &[u8]) -> usize {
        2 * cookie.len() + reply.len() + ENTRY_OVERHEAD
    }

    /// Removes the oldest order slot and its entry (if the slot is still
    /// the entry's); false when there is none.
    fn pop_oldest(&mut self) -> bool {
        let Some((seq, cookie)) = self.order.pop_front() else {
            return false;
        };
        if self.done.get(&cookie).is_some_and(|e| e.seq == seq) {
            self.remove(&cookie);
        }
        true
    }

    fn remove(&mut self, cookie: &[u8]) {
        if let Some(e) = self.done.remove(cookie) {
            self.bytes -= Self::cost(cookie, &e.reply);
        }
    }
}

#[cfg(test)]
mod tests;
