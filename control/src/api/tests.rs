//! The API over real HTTP on loopback, against a fake backend that holds a
//! registry and applies what is published to it at once. The helpers here
//! speak raw HTTP/1.1, so the tests see exactly what a client would.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::fake::{start, FakeBackend, NOW, TOKEN};
use super::http::MAX_BODY;
use super::*;
use crate::region::{Gateway, GatewayState};

mod limits;
mod registry;
mod route;
mod server;

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

fn add_gateway(h: &ApiHandle, id: &str, region: &str) {
    let (s, v) = call(
        h,
        "POST",
        "/v1/gateways",
        Some(json!({"id": id, "region": region, "sip": format!("{id}.example:5060")})),
    );
    assert_eq!(s, 201, "{v}");
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
