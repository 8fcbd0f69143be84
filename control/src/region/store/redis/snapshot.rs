//! Reading the keys back as changes.

use std::collections::HashMap;

use super::conn::Conn;
use super::{gateway_key, node_key, GATEWAYS, LATENCY, NODES, REGIONS, ROUTES};
use crate::region::model::{Change, Gateway, Latency, NodeInfo};
use crate::region::registry::Registry;
use crate::region::store::{unix_ms, StoreError};

/// A numeric field of a record, if present and well-formed.
fn field<T: std::str::FromStr>(rec: &HashMap<String, String>, name: &str) -> Option<T> {
    rec.get(name).and_then(|v| v.parse().ok())
}

impl Conn {
    /// Changes that rebuild the registry the keys hold, expired routes
    /// pruned first. Not one atomic read: a change racing it may or may
    /// not be in it, which is why subscribers subscribe before they read.
    pub(super) fn snapshot(&self) -> Result<Vec<Change>, StoreError> {
        self.prune_routes(unix_ms())?;
        type Lists = (
            Vec<(String, String)>,
            Vec<String>,
            Vec<String>,
            Vec<(String, String)>,
            Vec<(String, u32)>,
        );
        let (regions, nodes, gateways, routes, latency): Lists = self.with_con(|con| {
            redis::pipe()
                .cmd("HGETALL")
                .arg(REGIONS)
                .cmd("SMEMBERS")
                .arg(NODES)
                .cmd("SMEMBERS")
                .arg(GATEWAYS)
                .cmd("HGETALL")
                .arg(ROUTES)
                .cmd("HGETALL")
                .arg(LATENCY)
                .query(con)
        })?;
        let mut out = Vec::new();
        let mut regions = regions;
        regions.sort();
        for (_, json) in regions {
            out.push(Change::AddRegion(serde_json::from_str(&json)?));
        }
        self.nodes(nodes, &mut out)?;
        self.gateways(gateways, &mut out)?;
        let mut routes = routes;
        routes.sort();
        for (_, json) in routes {
            out.push(Change::RegisterRoute(serde_json::from_str(&json)?));
        }
        let mut latency = latency;
        latency.sort();
        for (field, ms) in latency {
            let [a, b, source]: [String; 3] = serde_json::from_str(&field)?;
            let source = serde_json::from_value(serde_json::Value::String(source))?;
            out.push(Change::SetLatency(Latency { a, b, source, ms }));
        }
        // Writes are checked, but the reads above are not one atomic view:
        // leave out whatever a registry would refuse, so the snapshot
        // always replays.
        let mut check = Registry::new();
        out.retain(|c| match check.apply(c) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("redis store: snapshot leaves out {c:?}: {e}");
                false
            }
        });
        Ok(out)
    }

    /// The records of `ids` under `key`, in one round trip.
    fn records(
        &self,
        ids: &[String],
        key: fn(&str) -> String,
    ) -> Result<Vec<HashMap<String, String>>, StoreError> {
        self.with_con(|con| {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.cmd("HGETALL").arg(key(id));
            }
            pipe.query(con)
        })
    }

    /// Registrations of `nodes`, by id.
    fn nodes(&self, mut nodes: Vec<String>, out: &mut Vec<Change>) -> Result<(), StoreError> {
        nodes.sort();
        let records = self.records(&nodes, node_key)?;
        for (id, rec) in nodes.iter().zip(records) {
            // A node removed between the two reads has no record left.
            let Some(info) = rec.get("info") else {
                tracing::debug!("redis store: node {id} vanished during snapshot");
                continue;
            };
            let mut n: NodeInfo = serde_json::from_str(info)?;
            // The fields heartbeats and the operator write win over the
            // registration they update.
            n.load = field(&rec, "load").unwrap_or(n.load);
            n.capacity = field(&rec, "capacity").unwrap_or(n.capacity);
            n.draining = field(&rec, "draining").map_or(n.draining, |v: u8| v != 0);
            n.last_seen_ms = field(&rec, "last_seen_ms").unwrap_or(n.last_seen_ms);
            out.push(Change::RegisterNode(n));
        }
        Ok(())
    }

    /// Additions of `gateways`, by id.
    fn gateways(&self, mut gateways: Vec<String>, out: &mut Vec<Change>) -> Result<(), StoreError> {
        gateways.sort();
        let records = self.records(&gateways, gateway_key)?;
        for (id, rec) in gateways.iter().zip(records) {
            let Some(info) = rec.get("info") else {
                tracing::debug!("redis store: gateway {id} vanished during snapshot");
                continue;
            };
            let mut g: Gateway = serde_json::from_str(info)?;
            if let Some(state) = rec.get("state") {
                g.state = serde_json::from_value(serde_json::Value::String(state.clone()))?;
            }
            g.load = field(&rec, "load").unwrap_or(g.load);
            out.push(Change::AddGateway(g));
        }
        Ok(())
    }
}
