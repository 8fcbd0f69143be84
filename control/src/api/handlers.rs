//! One function per endpoint. Each mutation checks the request, then
//! applies its [`Change`] to a copy of the registry (the dry run: the
//! registry's own rules, without a second copy of them here), and only
//! then publishes it. The reply is built from the dry run's result: the
//! published change reaches this process's registry through the store,
//! possibly after the reply has gone.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use super::http::{ApiError, ApiResult, Reply};
use super::wire;
use super::ApiBackend;
use crate::region::{
    explain as explain_text, Change, Gateway, GatewayState, Latency, LatencySource, Origin, Query,
    Region, Registry, Route,
};

/// Longest id or name accepted.
const MAX_NAME: usize = 128;

/// Checks an id or name from a body or a path: something a person can
/// type and read back in a table.
fn check_name(what: &str, s: &str) -> Result<(), ApiError> {
    if s.is_empty() {
        return Err(ApiError::BadRequest(format!("{what} is empty")));
    }
    if s.len() > MAX_NAME {
        return Err(ApiError::BadRequest(format!(
            "{what} is longer than {MAX_NAME} bytes"
        )));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::BadRequest(format!(
            "{what} {s:?} contains whitespace or control characters"
        )));
    }
    Ok(())
}

/// Checks a gateway's SIP address: `host:port`, `[v6]:port`.
fn check_sip(s: &str) -> Result<(), ApiError> {
    let bad = || ApiError::BadRequest(format!("sip must be host:port, got {s:?}"));
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p != 0 => {}
        _ => return Err(bad()),
    }
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
    };
    if host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The dry run, then the publish. Returns the registry as it will be once
/// the change has gone round.
fn publish(backend: &dyn ApiBackend, reg: &Registry, change: Change) -> Result<Registry, ApiError> {
    let mut after = reg.clone();
    after.apply(&change)?;
    // The operator's changes are rare and matter afterwards: keep a trail.
    tracing::info!(?change, "api: publishing");
    backend.publish(change).map_err(ApiError::Unavailable)?;
    Ok(after)
}

fn removed(what: String) -> ApiResult {
    Ok(Reply::json(200, &wire::Removed { removed: what }))
}

fn node_view(reg: &Registry, id: &str, now_ms: u64) -> Option<wire::NodeView> {
    let node = reg.node(id)?.clone();
    let verdict = reg.node_usable(id, now_ms);
    Some(wire::NodeView {
        age_ms: now_ms.saturating_sub(node.last_seen_ms),
        node,
        usable: verdict.is_ok(),
        reason: verdict.err().map(|e| e.to_string()),
    })
}

fn gateway_view(reg: &Registry, id: &str) -> Option<wire::GatewayView> {
    let gateway = reg.gateway(id)?.clone();
    let verdict = reg.gateway_usable(id);
    Some(wire::GatewayView {
        gateway,
        usable: verdict.is_ok(),
        reason: verdict.err().map(|e| e.to_string()),
    })
}

fn route_view(route: &Route, now_ms: u64) -> wire::RouteView {
    wire::RouteView {
        expired: route.expires_unix_ms <= now_ms,
        expires_in_ms: route.expires_unix_ms.saturating_sub(now_ms),
        route: route.clone(),
    }
}

/// `GET /v1/regions`: every region with its node and gateway counts.
pub(crate) fn list_regions(backend: &dyn ApiBackend) -> ApiResult {
    let reg = backend.registry();
    let regions = reg
        .regions()
        .map(|r| wire::RegionView {
            name: r.name.clone(),
            nodes: reg.nodes_in(&r.name).count(),
            gateways: reg.gateways().filter(|g| g.region == r.name).count(),
        })
        .collect();
    Ok(Reply::json(200, &wire::Regions { regions }))
}

/// `POST /v1/regions`: 201 when new, 200 when it already stood.
pub(crate) fn add_region(backend: &dyn ApiBackend, req: wire::AddRegion) -> ApiResult {
    check_name("region name", &req.name)?;
    let reg = backend.registry();
    let existed = reg.region(&req.name).is_some();
    publish(
        backend,
        &reg,
        Change::AddRegion(Region {
            name: req.name.clone(),
        }),
    )?;
    let status = if existed { 200 } else { 201 };
    Ok(Reply::json(status, &Region { name: req.name }))
}

/// `DELETE /v1/regions/{name}`.
pub(crate) fn remove_region(backend: &dyn ApiBackend, name: &str) -> ApiResult {
    let reg = backend.registry();
    if reg.region(name).is_none() {
        return Err(ApiError::NotFound(format!("no region {name}")));
    }
    publish(
        backend,
        &reg,
        Change::RemoveRegion {
            name: name.to_owned(),
        },
    )?;
    removed(name.to_owned())
}

/// `GET /v1/nodes`.
pub(crate) fn list_nodes(backend: &dyn ApiBackend) -> ApiResult {
    let reg = backend.registry();
    let now = backend.now_ms();
    let nodes = reg
        .nodes()
        .filter_map(|n| node_view(&reg, &n.id, now))
        .collect();
    Ok(Reply::json(200, &wire::Nodes { nodes }))
}

/// `POST /v1/nodes/{id}/drain`.
pub(crate) fn drain_node(backend: &dyn ApiBackend, id: &str, req: wire::SetDraining) -> ApiResult {
    let reg = backend.registry();
    if reg.node(id).is_none() {
        return Err(ApiError::NotFound(format!("no node {id}")));
    }
    let after = publish(
        backend,
        &reg,
        Change::SetDraining {
            node: id.to_owned(),
            draining: req.draining,
        },
    )?;
    let view = node_view(&after, id, backend.now_ms()).ok_or(ApiError::Internal)?;
    Ok(Reply::json(200, &view))
}

/// `DELETE /v1/nodes/{id}`.
pub(crate) fn remove_node(backend: &dyn ApiBackend, id: &str) -> ApiResult {
    let reg = backend.registry();
    if reg.node(id).is_none() {
        return Err(ApiError::NotFound(format!("no node {id}")));
    }
    publish(backend, &reg, Change::RemoveNode { id: id.to_owned() })?;
    removed(id.to_owned())
}

/// `GET /v1/gateways`.
pub(crate) fn list_gateways(backend: &dyn ApiBackend) -> ApiResult {
    let reg = backend.registry();
    let gateways = reg
        .gateways()
        .filter_map(|g| gateway_view(&reg, &g.id))
        .collect();
    Ok(Reply::json(200, &wire::Gateways { gateways }))
}

/// `POST /v1/gateways`: 201 when new, 200 when redefined.
pub(crate) fn add_gateway(backend: &dyn ApiBackend, req: wire::AddGateway) -> ApiResult {
    check_name("gateway id", &req.id)?;
    check_sip(&req.sip)?;
    let reg = backend.registry();
    if reg.region(&req.region).is_none() {
        return Err(ApiError::BadRequest(format!(
            "region {:?} does not exist; add it first (POST /v1/regions)",
            req.region
        )));
    }
    // Redefining a gateway changes its configuration (region, address,
    // capacity) but not what it reports at run time (state, load).
    let old = reg.gateway(&req.id);
    let gateway = Gateway {
        id: req.id.clone(),
        region: req.region,
        sip: req.sip,
        capacity: req.capacity.unwrap_or(0),
        load: old.map_or(0, |g| g.load),
        state: old.map_or(GatewayState::Up, |g| g.state),
    };
    let status = if old.is_some() { 200 } else { 201 };
    let after = publish(backend, &reg, Change::AddGateway(gateway))?;
    let view = gateway_view(&after, &req.id).ok_or(ApiError::Internal)?;
    Ok(Reply::json(status, &view))
}

/// `POST /v1/gateways/{id}/state`.
pub(crate) fn gateway_state(
    backend: &dyn ApiBackend,
    id: &str,
    req: wire::SetGatewayState,
) -> ApiResult {
    let reg = backend.registry();
    if reg.gateway(id).is_none() {
        return Err(ApiError::NotFound(format!("no gateway {id}")));
    }
    let after = publish(
        backend,
        &reg,
        Change::SetGatewayState {
            gateway: id.to_owned(),
            state: req.state,
            load: None,
        },
    )?;
    let view = gateway_view(&after, id).ok_or(ApiError::Internal)?;
    Ok(Reply::json(200, &view))
}

/// `DELETE /v1/gateways/{id}`, with the routes through it.
pub(crate) fn remove_gateway(backend: &dyn ApiBackend, id: &str) -> ApiResult {
    let reg = backend.registry();
    if reg.gateway(id).is_none() {
        return Err(ApiError::NotFound(format!("no gateway {id}")));
    }
    publish(backend, &reg, Change::RemoveGateway { id: id.to_owned() })?;
    removed(id.to_owned())
}

/// `GET /v1/endpoints/{endpoint}/routes`.
pub(crate) fn list_routes(backend: &dyn ApiBackend, endpoint: &str) -> ApiResult {
    let reg = backend.registry();
    let now = backend.now_ms();
    let routes = reg
        .all_routes(endpoint)
        .map(|r| route_view(r, now))
        .collect();
    Ok(Reply::json(
        200,
        &wire::Routes {
            endpoint: endpoint.to_owned(),
            routes,
        },
    ))
}

/// `POST /v1/endpoints/{endpoint}/routes`.
pub(crate) fn register_route(
    backend: &dyn ApiBackend,
    endpoint: &str,
    req: wire::RegisterRoute,
) -> ApiResult {
    check_name("endpoint", endpoint)?;
    if req.expires_s == 0 {
        return Err(ApiError::BadRequest(
            "expires_s must be at least 1 (to remove a route, DELETE it)".into(),
        ));
    }
    let reg = backend.registry();
    if reg.gateway(&req.gateway).is_none() {
        return Err(ApiError::BadRequest(format!(
            "gateway {:?} does not exist",
            req.gateway
        )));
    }
    let now = backend.now_ms();
    let route = Route {
        endpoint: endpoint.to_owned(),
        gateway: req.gateway,
        expires_unix_ms: now.saturating_add(req.expires_s.saturating_mul(1000)),
    };
    publish(backend, &reg, Change::RegisterRoute(route.clone()))?;
    Ok(Reply::json(200, &route_view(&route, now)))
}

/// `DELETE /v1/endpoints/{endpoint}/routes/{gateway}`.
pub(crate) fn unregister_route(
    backend: &dyn ApiBackend,
    endpoint: &str,
    gateway: &str,
) -> ApiResult {
    let reg = backend.registry();
    if !reg.all_routes(endpoint).any(|r| r.gateway == gateway) {
        return Err(ApiError::NotFound(format!(
            "no route for {endpoint} via {gateway}"
        )));
    }
    publish(
        backend,
        &reg,
        Change::UnregisterRoute {
            endpoint: endpoint.to_owned(),
            gateway: gateway.to_owned(),
        },
    )?;
    removed(format!("{endpoint} via {gateway}"))
}

/// The matrix: every pair with a figure, with both figures where known.
fn matrix(reg: &Registry) -> wire::LatencyMatrix {
    // The registry shows its raw figures only through its snapshot; the
    // effective one comes from its own rule (`latency_source`).
    let mut raw: BTreeMap<(String, String), (Option<u32>, Option<u32>)> = BTreeMap::new();
    for change in reg.snapshot() {
        if let Change::SetLatency(l) = change {
            let entry = raw.entry((l.a, l.b)).or_default();
            match l.source {
                LatencySource::Configured => entry.0 = Some(l.ms),
                LatencySource::Measured => entry.1 = Some(l.ms),
            }
        }
    }
    let pairs = raw
        .into_iter()
        .filter_map(|((a, b), (configured_ms, measured_ms))| {
            let (ms, source) = reg.latency_source(&a, &b)?;
            Some(wire::LatencyView {
                a,
                b,
                ms,
                source,
                configured_ms,
                measured_ms,
            })
        })
        .collect();
    wire::LatencyMatrix {
        regions: reg.regions().map(|r| r.name.clone()).collect(),
        pairs,
    }
}

/// `GET /v1/latency`.
pub(crate) fn latency(backend: &dyn ApiBackend) -> ApiResult {
    Ok(Reply::json(200, &matrix(&backend.registry())))
}

/// `POST /v1/latency`: a configured figure.
pub(crate) fn set_latency(backend: &dyn ApiBackend, req: wire::SetLatency) -> ApiResult {
    let reg = backend.registry();
    let after = publish(
        backend,
        &reg,
        Change::SetLatency(Latency {
            a: req.a.clone(),
            b: req.b.clone(),
            source: LatencySource::Configured,
            ms: req.ms,
        }),
    )?;
    let (a, b) = if req.a <= req.b {
        (req.a, req.b)
    } else {
        (req.b, req.a)
    };
    let view = matrix(&after)
        .pairs
        .into_iter()
        .find(|p| p.a == a && p.b == b)
        .ok_or(ApiError::Internal)?;
    Ok(Reply::json(200, &view))
}

/// The explain query: `endpoint` (optional) and exactly one of `from`
/// (a region) and `gateway` (the caller's gateway).
fn explain_query(params: &[(String, String)]) -> Result<Query, ApiError> {
    let (mut endpoint, mut from, mut gateway) = (None, None, None);
    for (k, v) in params {
        let slot = match k.as_str() {
            "endpoint" => &mut endpoint,
            "from" => &mut from,
            "gateway" => &mut gateway,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {k:?} (expected endpoint, from, gateway)"
                )))
            }
        };
        if slot.replace(v.clone()).is_some() {
            return Err(ApiError::BadRequest(format!(
                "query parameter {k} given twice"
            )));
        }
    }
    let origin = match (from, gateway) {
        (Some(region), None) => Origin::Region(region),
        (None, Some(gw)) => Origin::Gateway(gw),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of from=REGION and gateway=GATEWAY".into(),
            ))
        }
    };
    Ok(Query { origin, endpoint })
}

/// `GET /v1/route/explain`: the decision and a line per candidate.
pub(crate) fn explain(backend: &dyn ApiBackend, params: &[(String, String)]) -> ApiResult {
    let query = explain_query(params)?;
    let result = backend.explain(&query);
    let text = explain_text(&result);
    let (decision, error) = match result {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e)),
    };
    Ok(Reply::json(
        200,
        &wire::Explain {
            decision,
            error,
            text,
        },
    ))
}

/// `GET /v1/route/sip`: the explain query (with `endpoint` required) and
/// an optional `call-id`; the chosen gateway's `host:port` as one line of
/// text, for a SIP proxy to send the INVITE to. With a call id the
/// decision is pinned for that call's offer. 404 (no route, unknown
/// origin) and 503 (load limit) answer a line saying why, then the
/// reasons.
pub(crate) fn route_sip(backend: &dyn ApiBackend, params: &[(String, String)]) -> ApiResult {
    let mut call_id = None;
    let mut rest = Vec::new();
    for (k, v) in params {
        if k == "call-id" {
            if v.is_empty() {
                return Err(ApiError::BadRequest("call-id is empty".into()));
            }
            if call_id.replace(v.as_str()).is_some() {
                return Err(ApiError::BadRequest(
                    "query parameter call-id given twice".into(),
                ));
            }
        } else {
            rest.push((k.clone(), v.clone()));
        }
    }
    let query = explain_query(&rest)?;
    if query.endpoint.is_none() {
        return Err(ApiError::BadRequest(
            "endpoint=E is required: the route is to a callee".into(),
        ));
    }
    match backend.route_for_call(&query, call_id) {
        Ok(d) => match d.callee {
            Some(c) => Ok(Reply::text(200, format!("{}\n", c.sip))),
            None => Ok(Reply::text(404, "no route: no callee leg\n".into())),
        },
        Err(e) => {
            let status = if e.is_load_limit() { 503 } else { 404 };
            let mut text = format!("no route: {e}\n");
            for r in &e.reasons {
                text.push_str(r);
                text.push('\n');
            }
            Ok(Reply::text(status, text))
        }
    }
}
