//! The JSON bodies of the operator API, one type per request and reply
//! shape. The server writes them and the admin CLI reads them with the
//! same types, so the two cannot drift apart.
//!
//! Request bodies deny unknown fields: an operator's typo (`"capcity"`)
//! should be a 400, not a silently ignored setting.

use serde::{Deserialize, Serialize};

use crate::region::{Decision, Gateway, GatewayState, LatencySource, NoRoute, NodeInfo, Route};

/// `POST /v1/regions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRegion {
    /// Region name.
    pub name: String,
}

/// `POST /v1/nodes/{id}/drain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetDraining {
    /// `true` to stop new calls, `false` to take them again.
    pub draining: bool,
}

/// `POST /v1/gateways`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddGateway {
    /// Gateway id.
    pub id: String,
    /// The region it stands in; must exist.
    pub region: String,
    /// `host:port` where INVITEs for its clients go.
    pub sip: String,
    /// Most concurrent calls; 0 or absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

/// `POST /v1/gateways/{id}/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetGatewayState {
    /// New state.
    pub state: GatewayState,
}

/// `POST /v1/endpoints/{endpoint}/routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRoute {
    /// Gateway id the endpoint is reachable through.
    pub gateway: String,
    /// Seconds from now until the route lapses; at least 1.
    pub expires_s: u64,
}

/// `POST /v1/latency`: a configured figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLatency {
    /// One region.
    pub a: String,
    /// The other region.
    pub b: String,
    /// One-way latency in milliseconds.
    pub ms: u32,
}

/// Every error reply: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong, for a person.
    pub error: String,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// A region in `GET /v1/regions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionView {
    /// Region name.
    pub name: String,
    /// Nodes registered in it.
    pub nodes: usize,
    /// Gateways standing in it.
    pub gateways: usize,
}

/// `GET /v1/regions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regions {
    /// By name.
    pub regions: Vec<RegionView>,
}

/// A node as `GET /v1/nodes` shows it: the record and whether it takes
/// new calls now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The registered record.
    #[serde(flatten)]
    pub node: NodeInfo,
    /// Takes new calls now.
    pub usable: bool,
    /// Why not, when `usable` is false.
    pub reason: Option<String>,
    /// How old its last report is, in ms.
    pub age_ms: u64,
}

/// `GET /v1/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nodes {
    /// By id.
    pub nodes: Vec<NodeView>,
}

/// A gateway as `GET /v1/gateways` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayView {
    /// The record.
    #[serde(flatten)]
    pub gateway: Gateway,
    /// Takes new calls now.
    pub usable: bool,
    /// Why not, when `usable` is false.
    pub reason: Option<String>,
}

/// `GET /v1/gateways`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateways {
    /// By id.
    pub gateways: Vec<GatewayView>,
}

/// A route as `GET /v1/endpoints/{endpoint}/routes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    /// The record.
    #[serde(flatten)]
    pub route: Route,
    /// Lapsed already (selection ignores it; it is listed until pruned).
    pub expired: bool,
    /// Milliseconds until it lapses (0 once expired).
    pub expires_in_ms: u64,
}

/// `GET /v1/endpoints/{endpoint}/routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// The endpoint asked for.
    pub endpoint: String,
    /// By gateway id, expired ones too.
    pub routes: Vec<RouteView>,
}

/// One pair of regions in `GET /v1/latency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyView {
    /// One region (the smaller name).
    pub a: String,
    /// The other region.
    pub b: String,
    /// The figure selection uses: measured if any, else configured.
    pub ms: u32,
    /// Where `ms` comes from.
    pub source: LatencySource,
    /// The configured figure, if any.
    pub configured_ms: Option<u32>,
    /// The measured figure, if any.
    pub measured_ms: Option<u32>,
}

/// `GET /v1/latency`: the matrix, as the pairs that have a figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyMatrix {
    /// Every region, by name (the matrix's rows and columns).
    pub regions: Vec<String>,
    /// Pairs with a figure, by name; a pair not listed is unknown.
    pub pairs: Vec<LatencyView>,
}

/// `GET /v1/route/explain`. Exactly one of `decision` and `error` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explain {
    /// The selection, when one could be made.
    pub decision: Option<Decision>,
    /// Why none could, otherwise.
    pub error: Option<NoRoute>,
    /// The account `rtpmesh route explain` prints.
    pub text: String,
}

/// The reply to a `DELETE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// What went: a region, node or gateway id, or `endpoint via gateway`.
    pub removed: String,
}
