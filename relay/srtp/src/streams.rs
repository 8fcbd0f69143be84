//! Per-SSRC state in a small fixed table, filled at construction: the least
//! recently used SSRC makes room for a new one.

use crate::replay::ReplayWindow;

/// How many SSRCs one context tracks (a leg rarely carries more than a few:
/// audio, video, RTX, FEC).
pub(crate) const MAX_SSRCS: usize = 16;

/// What one context knows about one SSRC, in each of its four roles.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stream {
    pub(crate) ssrc: u32,
    in_use: bool,
    last_used: u64,
    /// SRTP indices received.
    pub(crate) rtp_in: Option<ReplayWindow>,
    /// SRTP indices sent (an index is never reused: that would reuse
    /// keystream).
    pub(crate) rtp_out: Option<ReplayWindow>,
    /// SRTCP indices received.
    pub(crate) rtcp_in: Option<ReplayWindow>,
    /// The last SRTCP index sent (0: none yet).
    pub(crate) rtcp_out: u32,
}

/// The table.
#[derive(Debug)]
pub(crate) struct Streams {
    slots: [Stream; MAX_SSRCS],
    clock: u64,
}

impl Streams {
    pub(crate) fn new() -> Self {
        Self {
            slots: [Stream::default(); MAX_SSRCS],
            clock: 0,
        }
    }

    /// How many SSRCs are tracked.
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.in_use).count()
    }

    /// The state for `ssrc` as it stands: its own, or a fresh one if it is
    /// not tracked. Changes nothing, so a packet that then fails its checks
    /// evicts no one.
    pub(crate) fn peek(&self, ssrc: u32) -> Stream {
        self.find(ssrc).map_or(
            Stream {
                ssrc,
                ..Stream::default()
            },
            |i| self.slots[i],
        )
    }

    /// Stores `stream` (from `peek`, updated) as the most recently used,
    /// in its slot, or a free one, or the least recently used one's.
    pub(crate) fn commit(&mut self, stream: Stream) {
        let i = self.find(stream.ssrc).unwrap_or_else(|| self.victim());
        self.clock += 1;
        self.slots[i] = Stream {
            in_use: true,
            last_used: self.clock,
            ..stream
        };
    }

    fn find(&self, ssrc: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.in_use && s.ssrc == ssrc)
    }

    fn victim(&self) -> usize {
        self.slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| (s.in_use, s.last_used))
            .map_or(0, |(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_makes_room() {
        let mut t = Streams::new();
        for ssrc in 0..MAX_SSRCS as u32 {
            let mut s = t.peek(ssrc);
            s.rtcp_out = ssrc + 1;
            t.commit(s);
        }
        assert_eq!(t.len(), MAX_SSRCS);
        // Touch 0, so 1 is the oldest.
        let s = t.peek(0);
        t.commit(s);
        let mut s = t.peek(100);
        assert_eq!(s.rtcp_out, 0);
        s.rtcp_out = 7;
        t.commit(s);
        assert_eq!(t.len(), MAX_SSRCS);
        assert_eq!(t.peek(0).rtcp_out, 1);
        assert_eq!(t.peek(1).rtcp_out, 0, "evicted");
        assert_eq!(t.peek(100).rtcp_out, 7);
    }
}
