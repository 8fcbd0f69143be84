//! The records of the regional registry and the one vocabulary of changes
//! to them.
//!
//! Every time here is wall-clock Unix milliseconds: the records travel
//! between machines, whose monotonic clocks have nothing in common.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// How often a relay node reports itself.
pub const HEARTBEAT_INTERVAL_MS: u64 = 2_000;

/// A node whose last report is older than this is out: three missed
/// heartbeats, so one lost report or a slow store does not drop it.
pub const STALE_AFTER_MS: u64 = 3 * HEARTBEAT_INTERVAL_MS;

/// A region: a set of relay nodes and gateways close to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// Unique name, e.g. `eu-west`.
    pub name: String,
}

/// A relay node, as it registered itself and last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Unique id, e.g. `r1-a`.
    pub id: String,
    /// The region it serves.
    pub region: String,
    /// Its ng control socket.
    pub ng: SocketAddr,
    /// Its first worker's tunnel socket, where other nodes send media.
    pub tunnel: SocketAddr,
    /// Worker threads.
    pub workers: u16,
    /// Most concurrent calls (0: unlimited).
    pub capacity: u32,
    /// Current calls.
    pub load: u32,
    /// No new calls; the running ones go on to their end.
    pub draining: bool,
    /// When it last reported (Unix ms).
    pub last_seen_ms: u64,
}

/// Whether a gateway takes calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayState {
    /// Takes new calls.
    Up,
    /// No new calls; the running ones go on.
    Draining,
    /// Unreachable or stopped.
    Down,
}

/// A client gateway: a SIP edge clients connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// Unique id, e.g. `gw-a`.
    pub id: String,
    /// The region it stands in.
    pub region: String,
    /// `host:port` where a proxy sends INVITEs for its clients.
    pub sip: String,
    /// Most concurrent calls (0: unlimited).
    pub capacity: u32,
    /// Current calls.
    pub load: u32,
    /// Whether it takes calls.
    pub state: GatewayState,
}

/// An endpoint (e.g. `alice`) reachable through a gateway until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The endpoint, e.g. `alice`.
    pub endpoint: String,
    /// The gateway it registered through.
    pub gateway: String,
    /// When the route lapses unless registered again (Unix ms).
    pub expires_unix_ms: u64,
}

/// Where a latency figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencySource {
    /// Written in the configuration.
    Configured,
    /// Measured by probes between nodes; wins over a configured figure.
    Measured,
}

/// One latency figure between two regions (the same both ways).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// One region.
    pub a: String,
    /// The other region.
    pub b: String,
    /// Configured or measured.
    pub source: LatencySource,
    /// One-way latency in milliseconds.
    pub ms: u32,
}

/// Every mutation of the registry. Stores carry these between processes;
/// each process applies them to its own [`Registry`](super::Registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// Adds a region (adding one that exists changes nothing).
    AddRegion(Region),
    /// Removes a region that no node or gateway stands in any more.
    RemoveRegion {
        /// Region name.
        name: String,
    },
    /// A node registers itself, or registers again after a restart (the
    /// record replaces the old one).
    RegisterNode(NodeInfo),
    /// Removes a node.
    RemoveNode {
        /// Node id.
        id: String,
    },
    /// A node's periodic report.
    Heartbeat {
        /// Node id.
        node: String,
        /// Current calls.
        load: u32,
        /// Most concurrent calls (0: unlimited).
        capacity: u32,
        /// The node drains (it can start draining by itself, e.g. when
        /// shutting down, but only [`Change::SetDraining`] ends it).
        draining: bool,
        /// When the report was made (Unix ms).
        at_ms: u64,
    },
    /// The operator marks a node draining or takes the mark off.
    SetDraining {
        /// Node id.
        node: String,
        /// New state.
        draining: bool,
    },
    /// Adds a gateway, or replaces one with the same id.
    AddGateway(Gateway),
    /// Removes a gateway and the routes through it.
    RemoveGateway {
        /// Gateway id.
        id: String,
    },
    /// A gateway's state and, when known, its load.
    SetGatewayState {
        /// Gateway id.
        gateway: String,
        /// New state.
        state: GatewayState,
        /// Current calls (`None`: unchanged).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        load: Option<u32>,
    },
    /// An endpoint registers (or refreshes) a route through a gateway.
    RegisterRoute(Route),
    /// An endpoint's route through a gateway goes away before it expires.
    UnregisterRoute {
        /// Endpoint.
        endpoint: String,
        /// Gateway id.
        gateway: String,
    },
    /// A configured or measured latency between two regions.
    SetLatency(Latency),
}
