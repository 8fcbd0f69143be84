//! Flow ids: 32 bits, handed out round the id space, never two live at
//! once.

use std::collections::HashSet;

use rtpmesh_flow::flow::FlowId;

use super::PlaneError;

/// Flow ids for a node's sockets. A peer node addresses a tunnel leg's
/// flows by id in 32 bits, so ids are [`FlowId`]s of 32 bits: past the top
/// they start again from the bottom, skipping ids still in use and the
/// tunnel sockets' (taken first, at start).
#[derive(Debug)]
pub(super) struct FlowIds {
    next: u32,
    reserved: u32,
    live: HashSet<FlowId>,
}

impl FlowIds {
    /// Ids above `reserved` are handed out.
    pub(super) fn new(reserved: u32) -> Self {
        Self {
            next: reserved.saturating_add(1),
            reserved,
            live: HashSet::new(),
        }
    }

    #[cfg(test)]
    fn with_top(reserved: u32, next: u32) -> Self {
        Self {
            next,
            ..Self::new(reserved)
        }
    }

    /// How many ids there are to hand out.
    fn capacity(&self) -> usize {
        (u32::MAX - self.reserved) as usize
    }

    /// A fresh id, or [`PlaneError::FlowIdsExhausted`] when every one is in
    /// use.
    pub(super) fn take(&mut self) -> Result<FlowId, PlaneError> {
        if self.live.len() >= self.capacity() {
            return Err(PlaneError::FlowIdsExhausted);
        }
        // Some id is free, so this ends within one turn of the id space.
        loop {
            let id = FlowId(self.next);
            self.next = if self.next == u32::MAX {
                self.reserved + 1
            } else {
                self.next + 1
            };
            if self.live.insert(id) {
                return Ok(id);
            }
        }
    }

    /// Takes a given id (a restored call's); false if it is reserved or in
    /// use.
    pub(super) fn claim(&mut self, id: FlowId) -> bool {
        id.0 > self.reserved && self.live.insert(id)
    }

    /// The id's flow is gone: it may be handed out again.
    pub(super) fn release(&mut self, id: FlowId) {
        self.live.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_ids_stay_in_32_bits_and_skip_those_in_use() {
        let top = u32::MAX;
        let mut ids = FlowIds::with_top(2, top - 1);
        assert_eq!(ids.take(), Ok(FlowId(top - 1)));
        assert_eq!(ids.take(), Ok(FlowId(top)));
        // Past the top: from just above the tunnels' ids again.
        assert_eq!(ids.take(), Ok(FlowId(3)));
        assert!(!ids.claim(FlowId(3)), "in use");
        assert!(!ids.claim(FlowId(2)), "a tunnel's");
        assert!(ids.claim(FlowId(4)));
        // 4 is taken by a restored call: the next fresh id skips it.
        assert_eq!(ids.take(), Ok(FlowId(5)));
        ids.release(FlowId(4));
        let mut again = FlowIds::with_top(2, 4);
        again.live = ids.live.clone();
        assert_eq!(again.take(), Ok(FlowId(4)), "released ids come back");
    }

    #[test]
    fn a_full_id_space_is_an_error_not_a_hang() {
        // Three ids to hand out: top - 2, top - 1, top.
        let top = u32::MAX;
        let mut ids = FlowIds::new(top - 3);
        let mut taken: Vec<FlowId> = (0..3).map(|_| ids.take().unwrap()).collect();
        taken.sort();
        assert_eq!(taken, [FlowId(top - 2), FlowId(top - 1), FlowId(top)]);
        assert_eq!(ids.take(), Err(PlaneError::FlowIdsExhausted));
        assert!(!ids.claim(FlowId(top - 1)));
        // One released: it is the one handed out next, and then none.
        ids.release(FlowId(top - 1));
        assert_eq!(ids.take(), Ok(FlowId(top - 1)));
        assert_eq!(ids.take(), Err(PlaneError::FlowIdsExhausted));
        // Every id reserved (tunnel sockets to the top): none at all.
        assert_eq!(FlowIds::new(top).take(), Err(PlaneError::FlowIdsExhausted));
    }
}
