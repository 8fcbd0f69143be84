//! The server's limits, met by clients that misbehave: the token checked
//! before a body is read, head size and field count, read timeouts, the
//! connection cap. Timeouts are made short here so that a test waits on
//! the server's reply, never on a clock of its own.

use std::io::ErrorKind;

use super::*;
use crate::api::router::needs_body;
use crate::api::server::Limits;

fn start_with(limits: Limits) -> ApiHandle {
    serve_with(
        "127.0.0.1:0".parse().unwrap(),
        Some(TOKEN.into()),
        FakeBackend::seeded(),
        limits,
    )
    .unwrap()
}

/// Sends `bytes` and returns the status of the reply, or `None` when the
/// server closed the connection without one.
fn status_of(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may close while we are still writing: what it answered
    // is what counts.
    let _ = s.write_all(bytes);
    read_status(&mut s)
}

/// Reads until the server closes; a reset counts as a close.
fn read_status(s: &mut TcpStream) -> Option<u16> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no reply and no close: {e}"),
        }
    }
    String::from_utf8_lossy(&reply).get(9..12)?.parse().ok()
}

#[test]
fn the_token_is_checked_on_the_head_alone() {
    let head = |method: &str, path: &str, auth: Option<&str>| {
        let req = http::Request {
            method,
            url: path,
            authorization: auth,
            body: &[],
        };
        needs_body(Some(TOKEN), &req)
    };
    let bearer = format!("Bearer {TOKEN}");
    assert!(head("POST", "/v1/regions", Some(&bearer)));
    assert!(
        head("POST", "/v1/nowhere", Some(&bearer)),
        "404 after the body"
    );
    assert!(!head("POST", "/v1/regions", None));
    assert!(!head("POST", "/v1/regions", Some("Bearer wrong")));
    assert!(!head("GET", "/v1/health", None));
    assert!(!head("POST", "/v1/%68ealth?x=1", None), "health, encoded");
    assert!(
        !head("POST", "/v1/regions/%e9", Some(&bearer)),
        "a bad path"
    );
    let open = http::Request {
        method: "POST",
        url: "/v1/regions",
        authorization: None,
        body: &[],
    };
    assert!(needs_body(None, &open));
}

#[test]
fn a_body_is_never_waited_for_without_the_token() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    let a = h.local_addr();
    // Each announces a body it never sends: the reply comes on the head.
    for extra in [
        "Content-Length: 100000\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Content-Length: 100000\r\nAuthorization: Bearer wrong\r\n",
        "Content-Length: 100000\r\nExpect: 100-continue\r\n",
    ] {
        let head = format!("POST /v1/regions HTTP/1.1\r\nHost: t\r\n{extra}\r\n");
        assert_eq!(status_of(a, head.as_bytes()), Some(401), "{extra:?}");
    }
    // Health takes no body, so it waits for none.
    let head = "POST /v1/health HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n";
    assert_eq!(status_of(a, head.as_bytes()), Some(405));
    // With the token, the body is read as before.
    let (s, _) = call(&h, "POST", "/v1/regions", Some(json!({"name": "ap"})));
    assert_eq!(s, 201);
}

#[test]
fn heads_over_the_limits_get_431() {
    let h = start_with(Limits::default());
    let a = h.local_addr();
    let long = format!(
        "GET /v1/health HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(Limits::default().head_bytes)
    );
    assert_eq!(status_of(a, long.as_bytes()), Some(431));
    let many: String = (0..=Limits::default().headers)
        .map(|i| format!("X-{i}: v\r\n"))
        .collect();
    let many = format!("GET /v1/health HTTP/1.1\r\nHost: t\r\n{many}\r\n");
    assert_eq!(status_of(a, many.as_bytes()), Some(431));
    assert_eq!(request(a, "GET", "/v1/health", None, None).0, 200);
}

#[test]
fn a_body_that_does_not_come_gets_408() {
    let h = start_with(Limits {
        body_timeout: Duration::from_millis(100),
        ..Limits::default()
    });
    let head = format!(
        "POST /v1/regions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 20\r\n\r\n{{\"na"
    );
    assert_eq!(status_of(h.local_addr(), head.as_bytes()), Some(408));
}

#[test]
fn a_silent_connection_is_closed() {
    let h = start_with(Limits {
        head_timeout: Duration::from_millis(100),
        ..Limits::default()
    });
    // Nothing sent, and half a head: closed without a reply either way.
    assert_eq!(status_of(h.local_addr(), b""), None);
    assert_eq!(
        status_of(h.local_addr(), b"GET /v1/health HTTP/1.1\r\n"),
        None
    );
}

#[test]
fn connections_past_the_cap_are_closed_and_the_slots_come_back() {
    let h = start_with(Limits {
        connections: 2,
        ..Limits::default()
    });
    let a = h.local_addr();
    // Two idle connections hold both slots: they are accepted in order,
    // before the third, which is closed unanswered.
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(a).unwrap()).collect();
    assert_eq!(
        status_of(a, b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n"),
        None
    );
    drop(idle);
    // Their slots are free once the server has seen them close.
    let t = Instant::now();
    while status_of(
        a,
        b"GET /v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ) != Some(200)
    {
        assert!(t.elapsed() < Duration::from_secs(5), "slots not freed");
        std::thread::sleep(Duration::from_millis(10));
    }
}
