//! The API over real HTTP on loopback, against a fake backend that holds a
//! registry and applies what is published to it at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::fake::{start, FakeBackend, NOW, TOKEN};
use super::*;
use crate::region::{Gateway, GatewayState};

/// Sends raw bytes, returns the status and the JSON body (null if none).
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let text = String::from_utf8_lossy(&reply);
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
    };
    (status, body)
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.unwrap_or("");
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    send_raw(addr, raw.as_bytes())
}

/// An authenticated request to a server started with [`TOKEN`].
fn call(h: &ApiHandle, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    request(h.local_addr(), method, path, Some(TOKEN), body.as_deref())
}

fn error_of(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

#[test]
fn health_needs_no_token_and_everything_else_does() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    let a = h.local_addr();
    assert_eq!(
        request(a, "GET", "/v1/health", None, None),
        (200, json!({"status": "ok"}))
    );
    for (method, path) in [
        ("GET", "/v1/regions"),
        ("POST", "/v1/regions"),
        ("GET", "/v1/nodes"),
        ("GET", "/v1/no-such-thing"),
    ] {
        let (status, body) = request(a, method, path, None, Some("{}"));
        assert_eq!(status, 401, "{method} {path}");
        assert!(error_of(&body).contains("token"));
        let (status, _) = request(a, method, path, Some("wrong"), Some("{}"));
        assert_eq!(status, 401, "{method} {path} with a wrong token");
        let (status, _) = request(a, method, path, Some("s3cret-tokeN"), Some("{}"));
        assert_eq!(status, 401, "{method} {path} with a token one byte off");
    }
    assert_eq!(call(&h, "GET", "/v1/regions", None).0, 200);
    // The scheme is case-insensitive; the token is not.
    let raw = format!(
        "GET /v1/regions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nauthorization: bearer {TOKEN}\r\n\r\n"
    );
    assert_eq!(send_raw(a, raw.as_bytes()).0, 200);
}

#[test]
fn without_a_token_configured_nothing_asks_for_one() {
    let h = start(FakeBackend::seeded(), None);
    assert_eq!(
        request(h.local_addr(), "GET", "/v1/regions", None, None).0,
        200
    );
}

#[test]
fn an_empty_token_is_refused_at_start() {
    let err = serve(
        "127.0.0.1:0".parse().unwrap(),
        Some(String::new()),
        FakeBackend::seeded(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn regions_add_list_remove() {
    let b = FakeBackend::seeded();
    let h = start(b.clone(), Some(TOKEN));
    let (s, v) = call(&h, "POST", "/v1/regions", Some(json!({"name": "ap"})));
    assert_eq!((s, v), (201, json!({"name": "ap"})));
    // Adding it again is harmless, and says so.
    assert_eq!(
        call(&h, "POST", "/v1/regions", Some(json!({"name": "ap"}))).0,
        200
    );
    let (s, v) = call(&h, "GET", "/v1/regions", None);
    assert_eq!(s, 200);
    assert_eq!(
        v["regions"],
        json!([
            {"name": "ap", "nodes": 0, "gateways": 0},
            {"name": "eu", "nodes": 1, "gateways": 0},
            {"name": "us", "nodes": 1, "gateways": 0},
        ])
    );
    assert_eq!(
        call(&h, "DELETE", "/v1/regions/ap", None),
        (200, json!({"removed": "ap"}))
    );
    let (s, v) = call(&h, "DELETE", "/v1/regions/ap", None);
    assert_eq!(s, 404);
    assert_eq!(error_of(&v), "no region ap");
    let (s, v) = call(&h, "DELETE", "/v1/regions/eu", None);
    assert_eq!(s, 409);
    assert!(error_of(&v).contains("still has nodes"), "{v}");
    let (s, v) = call(&h, "POST", "/v1/regions", Some(json!({"name": "a b"})));
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("whitespace"), "{v}");
    // ap added twice (the second a no-op the store still carries), removed once.
    assert_eq!(b.published(), 3);
}

#[test]
fn nodes_list_drain_remove() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    let (s, v) = call(&h, "GET", "/v1/nodes", None);
    assert_eq!(s, 200);
    let eu = &v["nodes"][0];
    assert_eq!(eu["id"], "eu-1");
    assert_eq!(eu["usable"], true);
    assert_eq!(eu["reason"], Value::Null);
    assert_eq!(eu["age_ms"], 1000);
    assert_eq!(eu["ng"], "127.0.0.1:2223");

    let (s, v) = call(
        &h,
        "POST",
        "/v1/nodes/eu-1/drain",
        Some(json!({"draining": true})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        (v["usable"].clone(), v["reason"].clone()),
        (json!(false), json!("draining"))
    );
    let (_, v) = call(&h, "GET", "/v1/nodes", None);
    assert_eq!(v["nodes"][0]["reason"], "draining");
    let (_, v) = call(
        &h,
        "POST",
        "/v1/nodes/eu-1/drain",
        Some(json!({"draining": false})),
    );
    assert_eq!(v["usable"], true);

    let (s, v) = call(
        &h,
        "POST",
        "/v1/nodes/nope/drain",
        Some(json!({"draining": true})),
    );
    assert_eq!((s, error_of(&v)), (404, "no node nope"));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/nodes/eu-1/drain",
        Some(json!({"draining": "yes"})),
    );
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("invalid type"), "{v}");

    assert_eq!(
        call(&h, "DELETE", "/v1/nodes/us-1", None),
        (200, json!({"removed": "us-1"}))
    );
    let (_, v) = call(&h, "GET", "/v1/nodes", None);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(call(&h, "DELETE", "/v1/nodes/us-1", None).0, 404);
}

#[test]
fn gateways_add_list_state_remove() {
    let b = FakeBackend::seeded();
    let h = start(b.clone(), Some(TOKEN));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways",
        Some(json!({"id": "gw-a", "region": "mars", "sip": "gw-a.example:5060"})),
    );
    assert_eq!(s, 400);
    assert_eq!(
        error_of(&v),
        "region \"mars\" does not exist; add it first (POST /v1/regions)"
    );
    for sip in [
        "gw-a.example",
        "gw-a.example:0",
        ":5060",
        "a b:5060",
        "[zz]:5060",
    ] {
        let (s, v) = call(
            &h,
            "POST",
            "/v1/gateways",
            Some(json!({"id": "gw-a", "region": "eu", "sip": sip})),
        );
        assert_eq!(s, 400, "{sip}");
        assert!(error_of(&v).contains("host:port"), "{v}");
    }
    assert_eq!(b.published(), 0, "nothing invalid was published");

    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways",
        Some(json!({"id": "gw-a", "region": "eu", "sip": "gw-a.example:5060", "capacity": 2})),
    );
    assert_eq!(s, 201);
    assert_eq!(
        v,
        json!({"id": "gw-a", "region": "eu", "sip": "gw-a.example:5060", "capacity": 2,
               "load": 0, "state": "up", "usable": true, "reason": null})
    );
    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways/gw-a/state",
        Some(json!({"state": "draining"})),
    );
    assert_eq!(s, 200);
    assert_eq!(v["state"], "draining");
    assert_eq!(v["reason"], "gateway draining");
    // Redefining keeps the state it reported.
    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways",
        Some(json!({"id": "gw-a", "region": "eu", "sip": "[::1]:5070"})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        (v["state"].clone(), v["capacity"].clone()),
        (json!("draining"), json!(0))
    );
    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways/gw-a/state",
        Some(json!({"state": "sideways"})),
    );
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("unknown variant"), "{v}");
    assert_eq!(
        call(
            &h,
            "POST",
            "/v1/gateways/gw-x/state",
            Some(json!({"state": "up"}))
        )
        .0,
        404
    );
    let (_, v) = call(&h, "GET", "/v1/gateways", None);
    assert_eq!(v["gateways"][0]["id"], "gw-a");
    assert_eq!(v["gateways"][0]["usable"], false);
    assert_eq!(
        call(&h, "DELETE", "/v1/gateways/gw-a", None),
        (200, json!({"removed": "gw-a"}))
    );
    assert_eq!(call(&h, "DELETE", "/v1/gateways/gw-a", None).0, 404);
}

fn add_gateway(h: &ApiHandle, id: &str, region: &str) {
    let (s, v) = call(
        h,
        "POST",
        "/v1/gateways",
        Some(json!({"id": id, "region": region, "sip": format!("{id}.example:5060")})),
    );
    assert_eq!(s, 201, "{v}");
}

#[test]
fn endpoint_routes_register_list_unregister() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    add_gateway(&h, "gw-a", "eu");
    let (s, v) = call(
        &h,
        "POST",
        "/v1/endpoints/alice/routes",
        Some(json!({"gateway": "gw-a", "expires_s": 60})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"endpoint": "alice", "gateway": "gw-a", "expires_unix_ms": NOW + 60_000,
               "expired": false, "expires_in_ms": 60_000})
    );
    let (s, v) = call(&h, "GET", "/v1/endpoints/alice/routes", None);
    assert_eq!(s, 200);
    assert_eq!(v["endpoint"], "alice");
    assert_eq!(v["routes"][0]["gateway"], "gw-a");
    let (_, v) = call(&h, "GET", "/v1/endpoints/bob/routes", None);
    assert_eq!(v["routes"], json!([]));

    let (s, v) = call(
        &h,
        "POST",
        "/v1/endpoints/alice/routes",
        Some(json!({"gateway": "gw-zz", "expires_s": 60})),
    );
    assert_eq!((s, error_of(&v)), (400, "gateway \"gw-zz\" does not exist"));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/endpoints/alice/routes",
        Some(json!({"gateway": "gw-a", "expires_s": 0})),
    );
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("at least 1"));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/endpoints/alice/routes",
        Some(json!({"gateway": "gw-a", "expires_s": -5})),
    );
    assert_eq!(s, 400, "{v}");

    // Path segments are percent-decoded: an E.164 number with a plus.
    assert_eq!(
        call(
            &h,
            "POST",
            "/v1/endpoints/%2B4930123/routes",
            Some(json!({"gateway": "gw-a", "expires_s": 5})),
        )
        .0,
        200
    );
    let (_, v) = call(&h, "GET", "/v1/endpoints/%2B4930123/routes", None);
    assert_eq!(v["endpoint"], "+4930123");

    assert_eq!(
        call(&h, "DELETE", "/v1/endpoints/alice/routes/gw-a", None),
        (200, json!({"removed": "alice via gw-a"}))
    );
    let (s, v) = call(&h, "DELETE", "/v1/endpoints/alice/routes/gw-a", None);
    assert_eq!((s, error_of(&v)), (404, "no route for alice via gw-a"));
}

#[test]
fn latency_set_and_matrix() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "us", "b": "eu", "ms": 80})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"a": "eu", "b": "us", "ms": 80, "source": "configured",
               "configured_ms": 80, "measured_ms": null})
    );
    let (_, v) = call(&h, "GET", "/v1/latency", None);
    assert_eq!(v["regions"], json!(["eu", "us"]));
    assert_eq!(v["pairs"][0]["ms"], 80);
    let (s, v) = call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "eu", "b": "eu", "ms": 1})),
    );
    assert_eq!(
        (s, error_of(&v)),
        (400, "latency within region eu cannot be set")
    );
    let (s, v) = call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "eu", "b": "mars", "ms": 1})),
    );
    assert_eq!((s, error_of(&v)), (400, "unknown region mars"));
    let (s, _) = call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "eu", "b": "us", "ms": 1, "source": "measured"})),
    );
    assert_eq!(s, 400, "unknown fields are refused");
}

#[test]
fn explain_names_the_chosen_gateway_and_the_failures() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    add_gateway(&h, "gw-us", "us");
    call(
        &h,
        "POST",
        "/v1/endpoints/bob/routes",
        Some(json!({"gateway": "gw-us", "expires_s": 600})),
    );
    call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "eu", "b": "us", "ms": 80})),
    );
    let (s, v) = call(&h, "GET", "/v1/route/explain?endpoint=bob&from=eu", None);
    assert_eq!(s, 200);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["decision"]["callee"]["gateway"], "gw-us");
    assert_eq!(v["decision"]["callee"]["node"], "us-1");
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("via gateway gw-us"), "{text}");
    assert!(text.contains("80 ms"), "{text}");

    // From a gateway, and with no endpoint: only the caller's node.
    let (_, v) = call(&h, "GET", "/v1/route/explain?gateway=gw-us", None);
    assert_eq!(v["decision"]["node"], "us-1");
    assert_eq!(v["decision"]["callee"], Value::Null);

    let (s, v) = call(&h, "GET", "/v1/route/explain?endpoint=carol&from=eu", None);
    assert_eq!(s, 200);
    assert_eq!(v["decision"], Value::Null);
    assert_eq!(v["error"]["kind"], "no_route");
    assert!(v["text"].as_str().unwrap().contains("no route"));

    for q in [
        "endpoint=bob",
        "endpoint=bob&from=eu&gateway=gw-us",
        "endpoint=bob&from=eu&from=us",
        "endpoint=bob&to=eu",
        "endpoint=%zz&from=eu",
    ] {
        let (s, v) = call(&h, "GET", &format!("/v1/route/explain?{q}"), None);
        assert_eq!(s, 400, "{q}: {v}");
    }
}

/// A GET whose reply is text: status, Content-Type and body.
fn get_text(h: &ApiHandle, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(h.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let raw = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    s.write_all(raw.as_bytes()).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let text = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, ctype, body.to_owned())
}

#[test]
fn route_sip_answers_the_gateway_as_text_and_pins_the_call() {
    let b = FakeBackend::seeded();
    let h = start(b.clone(), Some(TOKEN));
    add_gateway(&h, "gw-us", "us");
    call(
        &h,
        "POST",
        "/v1/endpoints/bob/routes",
        Some(json!({"gateway": "gw-us", "expires_s": 600})),
    );
    let (s, ctype, body) = get_text(&h, "/v1/route/sip?endpoint=bob&from=eu&call-id=c1%40host");
    assert_eq!((s, body.as_str()), (200, "gw-us.example:5060\n"), "{ctype}");
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    assert_eq!(
        *b.pinned.lock().unwrap(),
        [("c1@host".to_owned(), "eu-1".to_owned())]
    );
    // `+` is itself here (Kamailio's s.escape.param leaves it).
    let (s, _, _) = get_text(&h, "/v1/route/sip?endpoint=bob&from=eu&call-id=a+b%25c");
    assert_eq!(s, 200);
    assert_eq!(b.pinned.lock().unwrap()[1].0, "a+b%c");
    b.pinned.lock().unwrap().pop();
    // Without a call id nothing is pinned.
    let (s, _, _) = get_text(&h, "/v1/route/sip?endpoint=bob&gateway=gw-us");
    assert_eq!(s, 200);
    assert_eq!(b.pinned.lock().unwrap().len(), 1);

    // No route: 404, a line saying so, then the reasons.
    let (s, ctype, body) = get_text(&h, "/v1/route/sip?endpoint=carol&from=eu&call-id=c2");
    assert_eq!(s, 404);
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    assert!(body.starts_with("no route: "), "{body}");
    assert_eq!(b.pinned.lock().unwrap().len(), 1);

    // Every gateway for bob full: 503 (a load limit, not a missing route).
    call(
        &h,
        "POST",
        "/v1/gateways/gw-us/state",
        Some(json!({"state": "draining"})),
    );
    let (s, _, body) = get_text(&h, "/v1/route/sip?endpoint=bob&from=eu");
    assert_eq!(s, 503, "{body}");

    for q in [
        "from=eu",
        "endpoint=bob",
        "endpoint=bob&from=eu&call-id=",
        "endpoint=bob&from=eu&call-id=a&call-id=b",
    ] {
        let (s, _, body) = get_text(&h, &format!("/v1/route/sip?{q}"));
        assert_eq!(s, 400, "{q}: {body}");
    }
    assert_eq!(
        request(
            h.local_addr(),
            "POST",
            "/v1/route/sip",
            Some(TOKEN),
            Some("{}")
        )
        .0,
        405
    );
    assert_eq!(
        request(
            h.local_addr(),
            "GET",
            "/v1/route/sip?endpoint=bob&from=eu",
            None,
            None
        )
        .0,
        401
    );
}

#[test]
fn malformed_requests_get_json_errors() {
    let b = FakeBackend::seeded();
    let h = start(b.clone(), Some(TOKEN));
    let a = h.local_addr();
    for (body, want) in [
        ("{\"name\": ", "bad JSON body"),
        ("[1, 2]", "bad JSON body"),
        ("{\"name\": 5}", "invalid type"),
        ("{\"nmae\": \"x\"}", "unknown field"),
        ("", "missing JSON body"),
        ("\u{0}\u{1}", "bad JSON body"),
    ] {
        let (s, v) = request(a, "POST", "/v1/regions", Some(TOKEN), Some(body));
        assert_eq!(s, 400, "{body:?}");
        assert!(error_of(&v).contains(want), "{body:?}: {v}");
    }
    let (s, v) = call(&h, "GET", "/v1/nowhere", None);
    assert_eq!((s, error_of(&v)), (404, "no such path: /v1/nowhere"));
    assert_eq!(call(&h, "GET", "/", None).0, 404);
    let (s, v) = call(&h, "PUT", "/v1/regions", None);
    assert_eq!((s, error_of(&v)), (405, "method PUT not allowed here"));
    assert_eq!(call(&h, "POST", "/v1/health", None).0, 405);
    assert_eq!(call(&h, "GET", "/v1/regions/%e9", None).0, 400, "not UTF-8");
    assert_eq!(b.published(), 0);

    // Too large: refused on its declared length, and when chunked.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(MAX_BODY));
    let (s, v) = request(a, "POST", "/v1/regions", Some(TOKEN), Some(&big));
    assert_eq!(s, 413);
    assert!(error_of(&v).contains("larger than"));
    let chunked = format!(
        "POST /v1/regions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    assert_eq!(send_raw(a, chunked.as_bytes()).0, 413);

    // Garbage on the wire costs that connection only.
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .unwrap();
    drop(s);
    assert_eq!(request(a, "GET", "/v1/health", None, None).0, 200);
}

#[test]
fn a_failing_or_panicking_backend_costs_one_request() {
    let b = FakeBackend::seeded();
    let h = start(b.clone(), Some(TOKEN));
    b.fail_publish.store(true, Ordering::SeqCst);
    let (s, v) = call(&h, "POST", "/v1/regions", Some(json!({"name": "ap"})));
    assert_eq!(s, 503);
    assert_eq!(error_of(&v), "cannot publish the change: store unreachable");
    b.fail_publish.store(false, Ordering::SeqCst);

    b.panic_on_explain.store(true, Ordering::SeqCst);
    // More requests than workers: every one is answered, none hangs.
    for _ in 0..2 * WORKERS + 1 {
        let (s, v) = call(&h, "GET", "/v1/route/explain?from=eu", None);
        assert_eq!((s, error_of(&v)), (500, "internal error"));
    }
    b.panic_on_explain.store(false, Ordering::SeqCst);
    assert_eq!(call(&h, "GET", "/v1/route/explain?from=eu", None).0, 200);
}

#[test]
fn dropping_the_handle_stops_the_server() {
    let h = start(FakeBackend::seeded(), None);
    let a = h.local_addr();
    assert_eq!(request(a, "GET", "/v1/health", None, None).0, 200);
    let t = Instant::now();
    drop(h);
    assert!(t.elapsed() < Duration::from_secs(2));
    // tiny_http closes its listener on its accept thread, just after.
    while TcpStream::connect(a).is_ok() {
        assert!(t.elapsed() < Duration::from_secs(5), "still listening");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn gateway_records_round_trip_through_the_wire_types() {
    // The CLI reads replies with the same types the server writes.
    let v = wire::GatewayView {
        gateway: Gateway {
            id: "g".into(),
            region: "eu".into(),
            sip: "g:5060".into(),
            capacity: 0,
            load: 0,
            state: GatewayState::Down,
        },
        usable: false,
        reason: Some("gateway down".into()),
    };
    let text = serde_json::to_string(&v).unwrap();
    assert_eq!(serde_json::from_str::<wire::GatewayView>(&text).unwrap(), v);
}
