//! A seed file: the static part of the registry (regions, nodes,
//! gateways, latencies, routes) that a controller publishes at start.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::error::StartError;
use crate::region::{Change, Gateway, GatewayState, Latency, LatencySource, NodeInfo, Region};

/// A seed file: the static part of the registry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Region names.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Nodes (for the embedded store; with Redis nodes register
    /// themselves).
    #[serde(default)]
    pub nodes: Vec<SeedNode>,
    /// Gateways.
    #[serde(default)]
    pub gateways: Vec<SeedGateway>,
    /// Configured one-way latencies.
    #[serde(default)]
    pub latency: Vec<SeedLatency>,
    /// Endpoint routes (registered at start, with an expiry).
    #[serde(default)]
    pub routes: Vec<SeedRoute>,
}

/// An endpoint route in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRoute {
    /// Endpoint, e.g. `alice`.
    pub endpoint: String,
    /// Gateway id.
    pub gateway: String,
    /// Seconds until it lapses [default: one day].
    #[serde(default = "default_route_expiry")]
    pub expires_s: u64,
}

fn default_route_expiry() -> u64 {
    86_400
}

/// A node in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNode {
    /// Id.
    pub id: String,
    /// Region.
    pub region: String,
    /// ng address.
    pub ng: SocketAddr,
    /// First tunnel socket.
    pub tunnel: SocketAddr,
    /// Most calls (0: unlimited).
    #[serde(default)]
    pub capacity: u32,
}

/// A gateway in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedGateway {
    /// Id.
    pub id: String,
    /// Region.
    pub region: String,
    /// `host:port` for INVITEs.
    pub sip: String,
    /// Most calls (0: unlimited).
    #[serde(default)]
    pub capacity: u32,
}

/// A latency in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedLatency {
    /// One region.
    pub a: String,
    /// The other.
    pub b: String,
    /// One-way milliseconds.
    pub ms: u32,
}

impl Seed {
    /// Reads a seed file.
    pub fn load(path: &std::path::Path) -> Result<Self, StartError> {
        let text = std::fs::read_to_string(path).map_err(|source| StartError::ReadSeed {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| StartError::Seed {
            path: path.to_owned(),
            source,
        })
    }

    /// The changes that put the seed into a registry, in order.
    pub fn changes(&self, now_ms: u64) -> Vec<Change> {
        let mut out: Vec<Change> = self
            .regions
            .iter()
            .map(|r| Change::AddRegion(Region { name: r.clone() }))
            .collect();
        out.extend(self.nodes.iter().map(|n| {
            Change::RegisterNode(NodeInfo {
                id: n.id.clone(),
                region: n.region.clone(),
                ng: n.ng,
                tunnel: n.tunnel,
                workers: 1,
                capacity: n.capacity,
                load: 0,
                draining: false,
                // Not seen yet: the first health check makes it usable.
                last_seen_ms: 0,
            })
        }));
        out.extend(self.gateways.iter().map(|g| {
            Change::AddGateway(Gateway {
                id: g.id.clone(),
                region: g.region.clone(),
                sip: g.sip.clone(),
                capacity: g.capacity,
                load: 0,
                state: GatewayState::Up,
            })
        }));
        out.extend(self.latency.iter().map(|l| {
            Change::SetLatency(Latency {
                a: l.a.clone(),
                b: l.b.clone(),
                source: LatencySource::Configured,
                ms: l.ms,
            })
        }));
        out.extend(self.routes.iter().map(|r| {
            Change::RegisterRoute(crate::region::Route {
                endpoint: r.endpoint.clone(),
                gateway: r.gateway.clone(),
                expires_unix_ms: now_ms.saturating_add(r.expires_s.saturating_mul(1000)),
            })
        }));
        out
    }
}
