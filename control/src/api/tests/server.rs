//! Authentication, malformed requests and the server's own life: what
//! holds whatever the path.

use super::*;

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
    // The listener closes as the runtime shuts down.
    while TcpStream::connect(a).is_ok() {
        assert!(t.elapsed() < Duration::from_secs(5), "still listening");
        std::thread::sleep(Duration::from_millis(10));
    }
}
