//! The registry: every region, node, gateway, route and latency figure one
//! process knows, changed only by applying [`Change`]s.

use std::collections::BTreeMap;
use std::fmt;

use super::model::{
    Change, Gateway, GatewayState, Latency, LatencySource, NodeInfo, Region, Route, STALE_AFTER_MS,
};

/// Why a [`Change`] cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The change names a region that was never added.
    #[error("unknown region {0}")]
    UnknownRegion(String),
    /// The change names a node that is not registered.
    #[error("unknown node {0}")]
    UnknownNode(String),
    /// The change names a gateway that was never added.
    #[error("unknown gateway {0}")]
    UnknownGateway(String),
    /// The endpoint has no route through that gateway.
    #[error("no route for {endpoint} via {gateway}")]
    UnknownRoute {
        /// Endpoint.
        endpoint: String,
        /// Gateway id.
        gateway: String,
    },
    /// A region cannot go while nodes or gateways stand in it.
    #[error("region {0} still has nodes or gateways")]
    RegionInUse(String),
    /// Latency within one region is 0 by definition.
    #[error("latency within region {0} cannot be set")]
    SameRegionLatency(String),
}

/// Why a node takes no new call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeUnusable {
    /// Not registered.
    Unknown,
    /// Its last report is older than [`STALE_AFTER_MS`].
    Stale {
        /// How old the last report is.
        age_ms: u64,
    },
    /// Draining.
    Draining,
    /// At capacity.
    Full {
        /// Current calls.
        load: u32,
        /// Most concurrent calls.
        capacity: u32,
    },
}

impl fmt::Display for NodeUnusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => f.write_str("not registered"),
            Self::Stale { age_ms } => write!(f, "stale heartbeat ({age_ms} ms old)"),
            Self::Draining => f.write_str("draining"),
            Self::Full { load, capacity } => write!(f, "full ({load}/{capacity})"),
        }
    }
}

/// Why a gateway takes no new call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayUnusable {
    /// Never added.
    Unknown,
    /// Draining.
    Draining,
    /// Down.
    Down,
    /// At capacity.
    Full {
        /// Current calls.
        load: u32,
        /// Most concurrent calls.
        capacity: u32,
    },
}

impl fmt::Display for GatewayUnusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => f.write_str("gateway unknown"),
            Self::Draining => f.write_str("gateway draining"),
            Self::Down => f.write_str("gateway down"),
            Self::Full { load, capacity } => write!(f, "gateway full ({load}/{capacity})"),
        }
    }
}

/// The configured and the measured latency between two regions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LatencyPair {
    configured: Option<u32>,
    measured: Option<u32>,
}

/// The regional registry. Pure: no clock, no IO; callers pass `now_ms`
/// (Unix ms) to the queries that depend on time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    // BTreeMaps: iteration order is the id order, which keeps snapshots,
    // reasons and tie-breaks deterministic.
    regions: BTreeMap<String, Region>,
    nodes: BTreeMap<String, NodeInfo>,
    gateways: BTreeMap<String, Gateway>,
    /// Keyed by (endpoint, gateway).
    routes: BTreeMap<(String, String), Route>,
    /// Keyed by the two region names in order.
    latency: BTreeMap<(String, String), LatencyPair>,
}

/// The key of a latency figure: the same whichever way round it is asked.
fn pair_key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry rebuilt from changes (e.g. a store's snapshot).
    pub fn from_changes<'a>(
        changes: impl IntoIterator<Item = &'a Change>,
    ) -> Result<Self, RegistryError> {
        let mut reg = Self::new();
        for c in changes {
            reg.apply(c)?;
        }
        Ok(reg)
    }

    fn need_region(&self, name: &str) -> Result<(), RegistryError> {
        if self.regions.contains_key(name) {
            Ok(())
        } else {
            Err(RegistryError::UnknownRegion(name.to_owned()))
        }
    }

    /// Applies one change. On error the registry is unchanged.
    pub fn apply(&mut self, change: &Change) -> Result<(), RegistryError> {
        match change {
            Change::AddRegion(r) => {
                self.regions
                    .entry(r.name.clone())
                    .or_insert_with(|| r.clone());
            }
            Change::RemoveRegion { name } => self.remove_region(name)?,
            Change::RegisterNode(n) => {
                self.need_region(&n.region)?;
                self.nodes.insert(n.id.clone(), n.clone());
            }
            Change::RemoveNode { id } => {
                self.nodes
                    .remove(id)
                    .ok_or_else(|| RegistryError::UnknownNode(id.clone()))?;
            }
            Change::Heartbeat {
                node,
                load,
                capacity,
                draining,
                at_ms,
            } => self.heartbeat(node, *load, *capacity, *draining, *at_ms)?,
            Change::SetDraining { node, draining } => {
                self.nodes
                    .get_mut(node)
                    .ok_or_else(|| RegistryError::UnknownNode(node.clone()))?
                    .draining = *draining;
            }
            Change::AddGateway(g) => {
                self.need_region(&g.region)?;
                self.gateways.insert(g.id.clone(), g.clone());
            }
            Change::RemoveGateway { id } => {
                self.gateways
                    .remove(id)
                    .ok_or_else(|| RegistryError::UnknownGateway(id.clone()))?;
                self.routes.retain(|(_, gw), _| gw != id);
            }
            Change::SetGatewayState {
                gateway,
                state,
                load,
            } => {
                let g = self
                    .gateways
                    .get_mut(gateway)
                    .ok_or_else(|| RegistryError::UnknownGateway(gateway.clone()))?;
                g.state = *state;
                if let Some(load) = load {
                    g.load = *load;
                }
            }
            Change::RegisterRoute(r) => {
                if !self.gateways.contains_key(&r.gateway) {
                    return Err(RegistryError::UnknownGateway(r.gateway.clone()));
                }
                self.routes
                    .insert((r.endpoint.clone(), r.gateway.clone()), r.clone());
            }
            Change::UnregisterRoute { endpoint, gateway } => {
                self.routes
                    .remove(&(endpoint.clone(), gateway.clone()))
                    .ok_or_else(|| RegistryError::UnknownRoute {
                        endpoint: endpoint.clone(),
                        gateway: gateway.clone(),
                    })?;
            }
            Change::SetLatency(l) => self.set_latency(l)?,
        }
        Ok(())
    }

    fn remove_region(&mut self, name: &str) -> Result<(), RegistryError> {
        self.need_region(name)?;
        let used = self.nodes.values().any(|n| n.region == name)
            || self.gateways.values().any(|g| g.region == name);
        if used {
            return Err(RegistryError::RegionInUse(name.to_owned()));
        }
        self.regions.remove(name);
        self.latency.retain(|(a, b), _| a != name && b != name);
        Ok(())
    }

    fn heartbeat(
        &mut self,
        node: &str,
        load: u32,
        capacity: u32,
        draining: bool,
        at_ms: u64,
    ) -> Result<(), RegistryError> {
        let n = self
            .nodes
            .get_mut(node)
            .ok_or_else(|| RegistryError::UnknownNode(node.to_owned()))?;
        // Reports can arrive out of order through a store; an older
        // one must not roll the node back.
        if at_ms >= n.last_seen_ms {
            n.load = load;
            n.capacity = capacity;
            n.last_seen_ms = at_ms;
            // A report may start draining but never end it, so a
            // report racing the operator's mark cannot undo it.
            n.draining |= draining;
        }
        Ok(())
    }

    fn set_latency(&mut self, l: &Latency) -> Result<(), RegistryError> {
        self.need_region(&l.a)?;
        self.need_region(&l.b)?;
        if l.a == l.b {
            return Err(RegistryError::SameRegionLatency(l.a.clone()));
        }
        let pair = self.latency.entry(pair_key(&l.a, &l.b)).or_default();
        match l.source {
            LatencySource::Configured => pair.configured = Some(l.ms),
            LatencySource::Measured => pair.measured = Some(l.ms),
        }
        Ok(())
    }

    /// Changes that rebuild an equal registry when applied in order to an
    /// empty one.
    pub fn snapshot(&self) -> Vec<Change> {
        let mut out: Vec<Change> = self
            .regions
            .values()
            .cloned()
            .map(Change::AddRegion)
            .collect();
        out.extend(self.nodes.values().cloned().map(Change::RegisterNode));
        out.extend(self.gateways.values().cloned().map(Change::AddGateway));
        out.extend(self.routes.values().cloned().map(Change::RegisterRoute));
        for ((a, b), pair) in &self.latency {
            let sources = [
                (LatencySource::Configured, pair.configured),
                (LatencySource::Measured, pair.measured),
            ];
            for (source, ms) in sources {
                if let Some(ms) = ms {
                    out.push(Change::SetLatency(Latency {
                        a: a.clone(),
                        b: b.clone(),
                        source,
                        ms,
                    }));
                }
            }
        }
        out
    }

    /// All regions, by name.
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    /// One region.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.get(name)
    }

    /// All nodes, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values()
    }

    /// One node.
    pub fn node(&self, id: &str) -> Option<&NodeInfo> {
        self.nodes.get(id)
    }

    /// The nodes of a region, by id.
    pub fn nodes_in<'a>(&'a self, region: &'a str) -> impl Iterator<Item = &'a NodeInfo> + 'a {
        self.nodes.values().filter(move |n| n.region == region)
    }

    /// All gateways, by id.
    pub fn gateways(&self) -> impl Iterator<Item = &Gateway> {
        self.gateways.values()
    }

    /// One gateway.
    pub fn gateway(&self, id: &str) -> Option<&Gateway> {
        self.gateways.get(id)
    }

    /// Every route of an endpoint, expired ones too, by gateway id.
    pub fn all_routes<'a>(&'a self, endpoint: &'a str) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes
            .range((endpoint.to_owned(), String::new())..)
            .take_while(move |((e, _), _)| e == endpoint)
            .map(|(_, r)| r)
    }

    /// The routes of an endpoint that have not expired at `now_ms`.
    pub fn routes<'a>(
        &'a self,
        endpoint: &'a str,
        now_ms: u64,
    ) -> impl Iterator<Item = &'a Route> + 'a {
        self.all_routes(endpoint)
            .filter(move |r| r.expires_unix_ms > now_ms)
    }

    /// Drops routes expired at `now_ms`; returns how many went. Queries
    /// already ignore them: this only keeps memory from growing.
    pub fn prune_routes(&mut self, now_ms: u64) -> usize {
        let before = self.routes.len();
        self.routes.retain(|_, r| r.expires_unix_ms > now_ms);
        before - self.routes.len()
    }

    /// Whether a node takes a new call at `now_ms`: a fresh heartbeat, not
    /// draining, below capacity.
    pub fn node_usable(&self, id: &str, now_ms: u64) -> Result<(), NodeUnusable> {
        let n = self.nodes.get(id).ok_or(NodeUnusable::Unknown)?;
        let age_ms = now_ms.saturating_sub(n.last_seen_ms);
        if age_ms > STALE_AFTER_MS {
            return Err(NodeUnusable::Stale { age_ms });
        }
        if n.draining {
            return Err(NodeUnusable::Draining);
        }
        if n.capacity != 0 && n.load >= n.capacity {
            return Err(NodeUnusable::Full {
                load: n.load,
                capacity: n.capacity,
            });
        }
        Ok(())
    }

    /// Whether a gateway takes a new call: up and below capacity.
    pub fn gateway_usable(&self, id: &str) -> Result<(), GatewayUnusable> {
        let g = self.gateways.get(id).ok_or(GatewayUnusable::Unknown)?;
        match g.state {
            GatewayState::Up => {}
            GatewayState::Draining => return Err(GatewayUnusable::Draining),
            GatewayState::Down => return Err(GatewayUnusable::Down),
        }
        if g.capacity != 0 && g.load >= g.capacity {
            return Err(GatewayUnusable::Full {
                load: g.load,
                capacity: g.capacity,
            });
        }
        Ok(())
    }

    /// Latency between two regions in ms: 0 within one region, else the
    /// measured figure if there is one, else the configured one.
    pub fn latency(&self, a: &str, b: &str) -> Option<u32> {
        if a == b {
            return Some(0);
        }
        let pair = self.latency.get(&pair_key(a, b))?;
        pair.measured.or(pair.configured)
    }

    /// The latency between two regions with where it comes from.
    pub fn latency_source(&self, a: &str, b: &str) -> Option<(u32, LatencySource)> {
        let pair = self.latency.get(&pair_key(a, b))?;
        match (pair.measured, pair.configured) {
            (Some(ms), _) => Some((ms, LatencySource::Measured)),
            (None, Some(ms)) => Some((ms, LatencySource::Configured)),
            (None, None) => None,
        }
    }
}
