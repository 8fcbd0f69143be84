//! The flow table: a worker's flows by [`Slot`] and by [`FlowId`], and the
//! control-path changes to it (insert, update, remove).
//!
//! Changes come only between receive batches (the worker applies commands
//! then), so the packet path never sees the table half-changed. Inserting
//! and updating may allocate; nothing the packet path calls does.

use std::collections::HashMap;

use super::accept::{Flow, Role};
use super::secure::Secured;
use super::spec::{
    FlowId, FlowKind, FlowSpec, Output, Route, Routes, Slot, MAX_OUTPUTS, MAX_TUNNEL_PEERS,
};
use crate::clock::MediaClock;
use crate::stats::ReceiverStats;

struct Entry {
    generation: u32,
    flow: Option<Flow>,
}

/// A worker's flows, indexed by [`Slot`].
pub struct FlowTable {
    entries: Vec<Entry>,
    free: Vec<u32>,
    by_id: HashMap<FlowId, Slot>,
    pub(super) clock: MediaClock,
}

impl FlowTable {
    /// An empty table whose counters keep time on `clock`.
    pub fn new(clock: MediaClock) -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            clock,
        }
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The flow at `slot`, if it is still the same flow.
    #[inline]
    pub fn get(&self, slot: Slot) -> Option<&Flow> {
        let e = self.entries.get(slot.index as usize)?;
        if e.generation == slot.generation {
            e.flow.as_ref()
        } else {
            None
        }
    }

    /// Mutable access to the flow at `slot`.
    #[inline]
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut Flow> {
        let e = self.entries.get_mut(slot.index as usize)?;
        if e.generation == slot.generation {
            e.flow.as_mut()
        } else {
            None
        }
    }

    /// The slot of flow `id`.
    pub fn slot(&self, id: FlowId) -> Option<Slot> {
        self.by_id.get(&id).copied()
    }

    /// Adds a flow with no routes yet; [`FlowTable::update`] sets them once
    /// every flow they name is in the table. An existing flow of the same id
    /// is dropped (the caller closes its socket).
    pub fn insert(&mut self, spec: &FlowSpec) -> Slot {
        self.insert_as(spec, Role::Socket)
    }

    /// Adds a socketless flow (see [`FlowKind::Socketless`]), like
    /// [`FlowTable::insert`].
    pub fn insert_socketless(&mut self, spec: &FlowSpec) -> Slot {
        self.insert_as(spec, Role::Socketless)
    }

    pub(super) fn insert_as(&mut self, spec: &FlowSpec, role: Role) -> Slot {
        self.remove(spec.id);
        let flow = Flow {
            id: spec.id,
            role,
            advertised: spec.peer,
            peer: spec.peer,
            latched: false,
            confirm_until: None,
            latching: spec.latching,
            carries: spec.carries,
            rtp_routes: Routes::default(),
            rtcp_routes: Routes::default(),
            clock_rate: spec.clock_rate.max(1),
            stats: ReceiverStats::default(),
            counters: spec.counters.clone(),
            secured: Secured::new(&spec.security),
        };
        let slot = match self.free.pop() {
            Some(index) => {
                let e = &mut self.entries[index as usize];
                e.flow = Some(flow);
                Slot {
                    index,
                    generation: e.generation,
                }
            }
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    flow: Some(flow),
                });
                Slot {
                    index: (self.entries.len() - 1) as u32,
                    generation: 0,
                }
            }
        };
        self.by_id.insert(spec.id, slot);
        slot
    }

    /// Applies a new spec to an existing flow: peer, policy and routes.
    ///
    /// A changed advertised peer (re-INVITE to a new port) replaces a latched
    /// one and latching starts again, as rtpengine follows a re-offer; an
    /// unchanged one keeps what was learned.
    pub fn update(&mut self, spec: &FlowSpec) -> Result<(), UpdateError> {
        let slot = self
            .slot(spec.id)
            .ok_or(UpdateError::UnknownFlow(spec.id))?;
        if self.kind_of(spec.id) == Some(FlowKind::Tunnel) {
            return Err(UpdateError::IsTunnel(spec.id));
        }
        let mut rtp = Routes::default();
        let mut rtcp = Routes::default();
        for (outputs, routes) in [
            (&spec.rtp_outputs, &mut rtp),
            (&spec.rtcp_outputs, &mut rtcp),
        ] {
            for o in outputs {
                let route = match *o {
                    Output::Peer(id) => Route::Peer(self.sender(id)?),
                    Output::Fixed { via, dest } => Route::Fixed(self.sender(via)?, dest),
                    Output::Tunnel { via, dest, flow } => {
                        let (slot, peer) = self.tunnel_peer(via, dest)?;
                        Route::Tunnel {
                            via: slot,
                            peer,
                            flow,
                        }
                    }
                };
                if !routes.push(route) {
                    return Err(UpdateError::TooManyOutputs(spec.id));
                }
            }
        }
        let flow = self.get_mut(slot).expect("slot from by_id is live");
        if spec.peer != flow.advertised {
            flow.advertised = spec.peer;
            flow.peer = spec.peer;
            flow.latched = false;
        }
        flow.latching = spec.latching;
        flow.carries = spec.carries;
        flow.clock_rate = spec.clock_rate.max(1);
        flow.rtp_routes = rtp;
        flow.rtcp_routes = rtcp;
        Secured::apply(&mut flow.secured, &spec.security);
        Ok(())
    }

    pub(super) fn kind_of(&self, id: FlowId) -> Option<FlowKind> {
        self.slot(id).and_then(|s| self.get(s)).map(Flow::kind)
    }

    /// The slot of `id` for a plain output: it must have a socket of its
    /// own and be a media flow.
    fn sender(&self, id: FlowId) -> Result<Slot, UpdateError> {
        match self.kind_of(id) {
            None => Err(UpdateError::UnknownFlow(id)),
            Some(FlowKind::Socketless) => Err(UpdateError::NoSocket(id)),
            Some(FlowKind::Tunnel) => Err(UpdateError::IsTunnel(id)),
            Some(FlowKind::Socket) => Ok(self.slot(id).expect("kind_of found it")),
        }
    }

    /// Removes flow `id`, returning its slot.
    pub fn remove(&mut self, id: FlowId) -> Option<Slot> {
        let slot = self.by_id.remove(&id)?;
        let e = &mut self.entries[slot.index as usize];
        e.flow = None;
        e.generation = e.generation.wrapping_add(1);
        self.free.push(slot.index);
        Some(slot)
    }

    /// Ids of all flows.
    pub fn ids(&self) -> impl Iterator<Item = FlowId> + '_ {
        self.by_id.keys().copied()
    }
}

/// Why [`FlowTable::update`] refused a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The spec names a flow this worker does not have.
    #[error("unknown flow {0:?}")]
    UnknownFlow(FlowId),
    /// More than [`MAX_OUTPUTS`] outputs for one packet kind.
    #[error("flow {0:?} has more than {MAX_OUTPUTS} outputs")]
    TooManyOutputs(FlowId),
    /// An [`Output::Peer`] or [`Output::Fixed`] would send out of a
    /// socketless flow.
    #[error("flow {0:?} has no socket to send from")]
    NoSocket(FlowId),
    /// A tunnel socket named where a media flow belongs (a plain output's
    /// sending socket, or an update's flow).
    #[error("flow {0:?} is a tunnel socket, not a media flow")]
    IsTunnel(FlowId),
    /// An [`Output::Tunnel`] names a `via` that is not a tunnel socket.
    #[error("flow {0:?} is not a tunnel socket")]
    NotATunnel(FlowId),
    /// The tunnel already has [`MAX_TUNNEL_PEERS`] peers.
    #[error("tunnel {0:?} has {MAX_TUNNEL_PEERS} peers already")]
    TooManyPeers(FlowId),
}
