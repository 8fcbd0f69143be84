//! Route selection: which gateway reaches a callee and which relay nodes
//! carry the call. Pure: the registry and the time go in, a decision with
//! a line for every candidate comes out.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::model::{Gateway, LatencySource, NodeInfo, Route};
use super::registry::{GatewayUnusable, Registry};

/// Where a call comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A gateway id: the caller region is the gateway's.
    Gateway(String),
    /// A region name.
    Region(String),
}

/// What to select for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Where the call comes from.
    pub origin: Origin,
    /// The callee; `None` asks only for a relay node in the caller region.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// The callee side of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalleeLeg {
    /// The endpoint asked for.
    pub endpoint: String,
    /// The gateway that reaches it.
    pub gateway: String,
    /// Where to send the INVITE (`host:port`).
    pub sip: String,
    /// The gateway's region.
    pub region: String,
    /// The relay node in the callee region, for a cross-region call.
    pub node: Option<String>,
    /// Latency from the caller region (0 within one region; `None`:
    /// unknown).
    pub latency_ms: Option<u32>,
}

/// A successful selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The caller region.
    pub caller_region: String,
    /// The relay node in the caller region.
    pub node: String,
    /// The callee side, when an endpoint was asked for.
    pub callee: Option<CalleeLeg>,
    /// One line for every candidate considered, in the order considered.
    pub reasons: Vec<String>,
}

/// What kind of failure a [`NoRoute`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoRouteKind {
    /// The origin gateway or region is not known.
    UnknownOrigin,
    /// The endpoint has no unexpired route through a gateway that is up.
    NoRoute,
    /// Candidates exist, but every node or gateway is full, draining or
    /// stale; the ng layer answers `load limit`.
    LoadLimit,
}

/// Why no decision could be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.summary())]
pub struct NoRoute {
    /// What kind of failure.
    pub kind: NoRouteKind,
    /// One line for every candidate considered.
    pub reasons: Vec<String>,
}

impl NoRoute {
    /// Whether the ng layer should answer `load limit`.
    pub fn is_load_limit(&self) -> bool {
        self.kind == NoRouteKind::LoadLimit
    }

    fn summary(&self) -> &'static str {
        match self.kind {
            NoRouteKind::UnknownOrigin => "unknown origin",
            NoRouteKind::NoRoute => "no route for endpoint",
            NoRouteKind::LoadLimit => "load limit: every candidate full or draining",
        }
    }
}

/// A load against a capacity, ordered as the fraction (capacity 0, i.e.
/// unlimited, counts as empty).
#[derive(Debug, Clone, Copy)]
struct Ratio {
    load: u32,
    capacity: u32,
}

impl Ratio {
    fn cmp(self, other: Self) -> Ordering {
        let (a, ac) = (u64::from(self.load), u64::from(self.capacity));
        let (b, bc) = (u64::from(other.load), u64::from(other.capacity));
        match (ac, bc) {
            (0, 0) => Ordering::Equal,
            (0, _) => 0.cmp(&b),
            (_, 0) => a.cmp(&0),
            // Cross-multiplied: exact, no floats.
            _ => (a * bc).cmp(&(b * ac)),
        }
    }
}

fn node_ratio(n: &NodeInfo) -> Ratio {
    Ratio {
        load: n.load,
        capacity: n.capacity,
    }
}

fn gateway_ratio(g: &Gateway) -> Ratio {
    Ratio {
        load: g.load,
        capacity: g.capacity,
    }
}

fn load_text(load: u32, capacity: u32) -> String {
    if capacity == 0 {
        format!("load {load}/unlimited")
    } else {
        format!("load {load}/{capacity}")
    }
}

/// The least-loaded usable node of a region (ties by id), with a line per
/// node.
fn pick_node(
    reg: &Registry,
    region: &str,
    now_ms: u64,
    reasons: &mut Vec<String>,
) -> Option<String> {
    let mut usable: Vec<&NodeInfo> = Vec::new();
    let mut any = false;
    for n in reg.nodes_in(region) {
        any = true;
        match reg.node_usable(&n.id, now_ms) {
            Ok(()) => usable.push(n),
            Err(why) => reasons.push(format!("node {}: skipped: {why}", n.id)),
        }
    }
    if !any {
        reasons.push(format!("region {region}: no node registered"));
    }
    // Nodes come in id order and the sort is stable, so equal loads keep it.
    usable.sort_by(|a, b| node_ratio(a).cmp(node_ratio(b)));
    let (best, rest) = usable.split_first()?;
    reasons.push(format!(
        "node {}: chosen: {}",
        best.id,
        load_text(best.load, best.capacity)
    ));
    for n in rest {
        reasons.push(format!(
            "node {}: not chosen: {}",
            n.id,
            load_text(n.load, n.capacity)
        ));
    }
    Some(best.id.clone())
}

/// A gateway that passed every check.
struct Candidate<'a> {
    gateway: &'a Gateway,
    /// In the caller's region: first whatever the latency figures say.
    same_region: bool,
    latency: Option<u32>,
    node: Option<String>,
}

/// The caller's region, from a gateway or a region name.
fn caller_region(reg: &Registry, origin: &Origin, reasons: &mut Vec<String>) -> Option<String> {
    match origin {
        Origin::Gateway(id) => {
            let Some(g) = reg.gateway(id) else {
                reasons.push(format!("origin gateway {id}: unknown"));
                return None;
            };
            reasons.push(format!("origin gateway {id} is in region {}", g.region));
            Some(g.region.clone())
        }
        Origin::Region(name) => {
            if reg.region(name).is_none() {
                reasons.push(format!("origin region {name}: unknown"));
                return None;
            }
            Some(name.clone())
        }
    }
}

/// Chooses gateway and relay nodes for a call.
///
/// Among the endpoint's unexpired routes whose gateway is up and not full
/// and whose region has a usable node: the caller's own region first, else
/// the lowest latency from it (unknown latency last), ties by the
/// gateway's load ratio and then its id. In the caller region, and for a
/// cross-region call in the callee region too, the least-loaded usable
/// node (ties by id).
pub fn select(reg: &Registry, now_ms: u64, query: &Query) -> Result<Decision, NoRoute> {
    let mut reasons = Vec::new();
    let fail = |kind, reasons| Err(NoRoute { kind, reasons });

    let Some(caller_region) = caller_region(reg, &query.origin, &mut reasons) else {
        return fail(NoRouteKind::UnknownOrigin, reasons);
    };
    let mut sel = Selection {
        reg,
        now_ms,
        caller_region,
        reasons,
        picks: BTreeMap::new(),
        loaded: false,
        any_route: false,
    };
    let caller_region = sel.caller_region.clone();
    let Some(node) = sel.region_node(&caller_region) else {
        sel.reasons.push(format!(
            "region {caller_region}: no usable node for the caller"
        ));
        return fail(NoRouteKind::LoadLimit, sel.reasons);
    };

    let callee = match &query.endpoint {
        None => None,
        Some(endpoint) => match sel.callee(endpoint) {
            Ok(leg) => Some(leg),
            Err(kind) => return fail(kind, sel.reasons),
        },
    };
    Ok(Decision {
        caller_region,
        node,
        callee,
        reasons: sel.reasons,
    })
}

/// One selection under way: what it has said so far and what it has
/// learnt about the candidates.
struct Selection<'a> {
    reg: &'a Registry,
    now_ms: u64,
    caller_region: String,
    reasons: Vec<String>,
    /// Every region's pick once, so each node gets its line only once.
    picks: BTreeMap<String, Option<String>>,
    /// Whether some route failed only for load (full or draining), which
    /// makes the failure a load limit rather than no route at all.
    loaded: bool,
    /// Whether the endpoint has any unexpired route.
    any_route: bool,
}

impl<'a> Selection<'a> {
    /// The node [`pick_node`] picks in `region`, asked once per region.
    fn region_node(&mut self, region: &str) -> Option<String> {
        if let Some(pick) = self.picks.get(region) {
            return pick.clone();
        }
        let pick = pick_node(self.reg, region, self.now_ms, &mut self.reasons);
        self.picks.insert(region.to_owned(), pick.clone());
        pick
    }

    /// The best gateway to `endpoint`, or the kind of failure.
    fn callee(&mut self, endpoint: &str) -> Result<CalleeLeg, NoRouteKind> {
        let reg = self.reg;
        let mut candidates: Vec<Candidate<'a>> = reg
            .all_routes(endpoint)
            .filter_map(|route| self.candidate(route))
            .collect();
        if candidates.is_empty() {
            if !self.any_route {
                self.reasons
                    .push(format!("endpoint {endpoint}: no unexpired route"));
            }
            return Err(if self.loaded {
                NoRouteKind::LoadLimit
            } else {
                NoRouteKind::NoRoute
            });
        }
        // The caller's region before any other, even one configured or
        // measured at 0 ms; unknown latency after every known one.
        candidates.sort_by(|a, b| {
            let la = a.latency.map_or(u64::MAX, u64::from);
            let lb = b.latency.map_or(u64::MAX, u64::from);
            b.same_region
                .cmp(&a.same_region)
                .then(la.cmp(&lb))
                .then_with(|| gateway_ratio(a.gateway).cmp(gateway_ratio(b.gateway)))
                .then_with(|| a.gateway.id.cmp(&b.gateway.id))
        });
        let best = candidates.swap_remove(0);
        let g = best.gateway;
        self.reasons.push(format!(
            "{} ({}): chosen: {}",
            g.id,
            g.region,
            load_text(g.load, g.capacity)
        ));
        Ok(CalleeLeg {
            endpoint: endpoint.to_owned(),
            gateway: g.id.clone(),
            sip: g.sip.clone(),
            region: g.region.clone(),
            node: best.node,
            latency_ms: best.latency,
        })
    }

    /// The route's gateway as a candidate, or `None` (with the reason)
    /// when the route is expired, the gateway unusable or, for another
    /// region, that region has no usable node.
    fn candidate(&mut self, route: &Route) -> Option<Candidate<'a>> {
        let gw = self.reg.gateway(&route.gateway)?;
        let head = format!("{} ({})", gw.id, gw.region);
        if route.expires_unix_ms <= self.now_ms {
            self.reasons.push(format!(
                "{head}: skipped: route expired {} ms ago",
                self.now_ms - route.expires_unix_ms
            ));
            return None;
        }
        self.any_route = true;
        if let Err(why) = self.reg.gateway_usable(&gw.id) {
            self.loaded |= !matches!(why, GatewayUnusable::Down);
            self.reasons.push(format!("{head}: skipped: {why}"));
            return None;
        }
        let same_region = gw.region == self.caller_region;
        let node = if same_region {
            None
        } else if let Some(n) = self.region_node(&gw.region) {
            Some(n)
        } else {
            self.loaded = true;
            self.reasons
                .push(format!("{head}: skipped: no usable node in {}", gw.region));
            return None;
        };
        let latency = self.reg.latency(&self.caller_region, &gw.region);
        self.reasons.push(self.route_line(&head, gw, latency));
        Some(Candidate {
            gateway: gw,
            same_region,
            latency,
            node,
        })
    }

    /// The line for a route that passed every check: how far its
    /// gateway's region is from the caller.
    fn route_line(&self, head: &str, gw: &Gateway, latency: Option<u32>) -> String {
        let caller_region = &self.caller_region;
        match (
            gw.region == *caller_region,
            latency,
            self.reg.latency_source(caller_region, &gw.region),
        ) {
            (true, _, _) => format!("route via {head}: same region as caller"),
            (false, Some(ms), Some((_, src))) => {
                let src = match src {
                    LatencySource::Measured => "measured",
                    LatencySource::Configured => "configured",
                };
                format!("route via {head}: {ms} ms from {caller_region} ({src})")
            }
            _ => format!("route via {head}: latency from {caller_region} unknown"),
        }
    }
}

/// A human-readable account of a selection, for `rtpmesh route explain`.
pub fn explain(result: &Result<Decision, NoRoute>) -> String {
    let mut out = String::new();
    let reasons = match result {
        Ok(d) => {
            let _ = writeln!(out, "caller region {}: node {}", d.caller_region, d.node);
            if let Some(c) = &d.callee {
                let _ = write!(
                    out,
                    "callee {}: via gateway {} ({}, sip {})",
                    c.endpoint, c.gateway, c.region, c.sip
                );
                match &c.node {
                    Some(n) => match c.latency_ms {
                        Some(ms) => {
                            let _ = writeln!(out, ", {ms} ms away, node {n}");
                        }
                        None => {
                            let _ = writeln!(out, ", latency unknown, node {n}");
                        }
                    },
                    None => out.push_str(", same region\n"),
                }
            }
            &d.reasons
        }
        Err(e) => {
            let _ = writeln!(out, "no route: {e}");
            &e.reasons
        }
    };
    out.push_str("considered:\n");
    for r in reasons {
        let _ = writeln!(out, "  {r}");
    }
    out
}
