//! From a request's method and path to the handler that answers it.
//! Nothing here touches a socket, so the routing and its errors are plain
//! functions of their input.

use subtle::ConstantTimeEq;

use super::handlers as h;
use super::http::{
    body, percent_decode, query_pairs, query_pairs_sip, ApiError, ApiResult, Reply, Request,
};
use super::wire::Health;
use super::ApiBackend;

/// Whether the request carries the configured token. The compare takes
/// the same time wherever the first wrong byte is, so response timing
/// does not reveal the token byte by byte (only its length).
fn authorized(token: &str, header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| {
        let (scheme, rest) = h.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    }) else {
        return false;
    };
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

/// Answers one request. Never panics on input: every failure is an
/// [`ApiError`] reply.
pub(crate) fn handle(backend: &dyn ApiBackend, token: Option<&str>, req: &Request<'_>) -> Reply {
    route(backend, token, req).unwrap_or_else(|e| e.reply())
}

/// Whether answering `req` takes its body. Not for `/v1/health`, which
/// takes none, nor for a request without the right token or with a bad
/// path, which is refused on its head alone. The server asks before it
/// reads a byte of the body, so a caller without the token cannot make it
/// wait for one.
pub(crate) fn needs_body(token: Option<&str>, req: &Request<'_>) -> bool {
    let path = req.url.split_once('?').map_or(req.url, |(path, _)| path);
    match segments(path) {
        Ok(segs) if segs == ["v1", "health"] => false,
        Ok(_) => match token {
            Some(token) => authorized(token, req.authorization),
            None => true,
        },
        Err(_) => false,
    }
}

/// The path's segments, percent-decoded.
fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect()
}

fn route(backend: &dyn ApiBackend, token: Option<&str>, req: &Request<'_>) -> ApiResult {
    let (path, query) = req.url.split_once('?').unwrap_or((req.url, ""));
    let segs = segments(path)?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method;
    let not_allowed = || Err(ApiError::MethodNotAllowed(m.to_owned()));

    if segs == ["v1", "health"] {
        return match m {
            "GET" => Ok(Reply::json(
                200,
                &Health {
                    status: "ok".into(),
                },
            )),
            _ => not_allowed(),
        };
    }
    // Every other path, known or not, asks for the token first: an
    // unauthenticated caller learns nothing about what exists.
    if let Some(token) = token {
        if !authorized(token, req.authorization) {
            return Err(ApiError::Unauthorized);
        }
    }

    let b = req.body;
    match (m, segs.as_slice()) {
        ("GET", ["v1", "regions"]) => h::list_regions(backend),
        ("POST", ["v1", "regions"]) => h::add_region(backend, body(b)?),
        ("DELETE", ["v1", "regions", name]) => h::remove_region(backend, name),
        ("GET", ["v1", "nodes"]) => h::list_nodes(backend),
        ("POST", ["v1", "nodes", id, "drain"]) => h::drain_node(backend, id, body(b)?),
        ("DELETE", ["v1", "nodes", id]) => h::remove_node(backend, id),
        ("GET", ["v1", "gateways"]) => h::list_gateways(backend),
        ("POST", ["v1", "gateways"]) => h::add_gateway(backend, body(b)?),
        ("POST", ["v1", "gateways", id, "state"]) => h::gateway_state(backend, id, body(b)?),
        ("DELETE", ["v1", "gateways", id]) => h::remove_gateway(backend, id),
        ("GET", ["v1", "endpoints", e, "routes"]) => h::list_routes(backend, e),
        ("POST", ["v1", "endpoints", e, "routes"]) => h::register_route(backend, e, body(b)?),
        ("DELETE", ["v1", "endpoints", e, "routes", gw]) => h::unregister_route(backend, e, gw),
        ("GET", ["v1", "latency"]) => h::latency(backend),
        ("POST", ["v1", "latency"]) => h::set_latency(backend, body(b)?),
        ("GET", ["v1", "route", "explain"]) => h::explain(backend, &query_pairs(query)?),
        ("GET", ["v1", "route", "sip"]) => h::route_sip(backend, &query_pairs_sip(query)?),
        (
            _,
            ["v1", "regions" | "nodes" | "gateways" | "latency"]
            | ["v1", "regions" | "nodes" | "gateways", _]
            | ["v1", "nodes", _, "drain"]
            | ["v1", "gateways", _, "state"]
            | ["v1", "endpoints", _, "routes"]
            | ["v1", "endpoints", _, "routes", _]
            | ["v1", "route", "explain" | "sip"],
        ) => not_allowed(),
        _ => Err(ApiError::NotFound(format!("no such path: {path}"))),
    }
}
