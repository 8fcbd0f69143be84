//! Talking ng to a node or a controller: request builders for the
//! commands the tests send, a client that panics on no reply, and readers
//! for the reply keys every test looks at.

use std::net::SocketAddr;
use std::time::Duration;

use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng_udp::client::{ClientError, NgClient};

/// An ng request as `(key, value)` pairs, to extend before sending.
pub type Items<'a> = Vec<(&'a str, Value)>;

/// `offer` of `sdp` by `from_tag` in `call` (no flags).
pub fn offer<'a>(call: &str, from_tag: &str, sdp: &str) -> Items<'a> {
    vec![
        ("command", "offer".into()),
        ("call-id", call.into()),
        ("from-tag", from_tag.into()),
        ("sdp", sdp.into()),
    ]
}

/// `answer` of `sdp` by `to_tag` to `from_tag`'s offer in `call`.
pub fn answer<'a>(call: &str, from_tag: &str, to_tag: &str, sdp: &str) -> Items<'a> {
    vec![
        ("command", "answer".into()),
        ("call-id", call.into()),
        ("from-tag", from_tag.into()),
        ("to-tag", to_tag.into()),
        ("sdp", sdp.into()),
    ]
}

/// `delete` of `call` (no tag, the node's own delete delay).
pub fn delete<'a>(call: &str) -> Items<'a> {
    vec![("command", "delete".into()), ("call-id", call.into())]
}

/// `query` of `call`.
pub fn query<'a>(call: &str) -> Items<'a> {
    vec![("command", "query".into()), ("call-id", call.into())]
}

/// The `replace` flags Kamailio sends with every offer and answer.
fn replace_origin_and_connection() -> (&'static str, Value) {
    (
        "replace",
        Value::List(vec!["origin".into(), "session-connection".into()]),
    )
}

/// An ng client with call helpers; every request must get a reply.
pub struct Ng {
    /// The raw client.
    pub c: NgClient,
}

impl Ng {
    /// A client for `server` that waits 2 s for a reply, twice.
    pub fn new(server: SocketAddr) -> Self {
        Self::with_retries(server, Duration::from_millis(2000), 2)
    }

    /// A client for `server` that waits `wait` for a reply, `tries` times.
    pub fn with_retries(server: SocketAddr, wait: Duration, tries: u32) -> Self {
        Self {
            c: NgClient::new(server)
                .unwrap()
                .with_retries(wait, tries)
                .unwrap(),
        }
    }

    /// Sends a request built from `items`; `None` when no reply came.
    pub fn try_req(&mut self, items: Items<'_>) -> Result<Value, ClientError> {
        self.c.request(&dict(items))
    }

    /// Sends a request built from `items`.
    pub fn req(&mut self, items: Items<'_>) -> Value {
        self.try_req(items).expect("ng reply")
    }

    /// Whether the server answers `ping` with `pong` (one try).
    pub fn pings(&mut self) -> bool {
        self.try_req(vec![("command", "ping".into())])
            .is_ok_and(|r| result(&r) == "pong")
    }

    /// `offer` with the usual Kamailio keys plus `extra`.
    pub fn offer(&mut self, call: &str, from_tag: &str, sdp: &str, extra: Items<'_>) -> Value {
        let mut items = offer(call, from_tag, sdp);
        items.push(replace_origin_and_connection());
        items.extend(extra);
        self.req(items)
    }

    /// `answer` with `extra`.
    pub fn answer(
        &mut self,
        call: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
        extra: Items<'_>,
    ) -> Value {
        let mut items = answer(call, from_tag, to_tag, sdp);
        items.push(replace_origin_and_connection());
        items.extend(extra);
        self.req(items)
    }

    /// `query`.
    pub fn query(&mut self, call: &str) -> Value {
        self.req(query(call))
    }

    /// `delete` by tag `a`, with a delay.
    pub fn delete(&mut self, call: &str, delay: Option<u64>) -> Value {
        let mut items = delete(call);
        items.push(("from-tag", "a".into()));
        if let Some(d) = delay {
            items.push(("delete-delay", d.into()));
        }
        self.req(items)
    }
}

/// `result` of a reply.
pub fn result(v: &Value) -> &str {
    v.get("result").and_then(Value::as_str).unwrap_or("")
}

/// `error-reason` of a reply.
pub fn reason(v: &Value) -> &str {
    v.get("error-reason").and_then(Value::as_str).unwrap_or("")
}

/// The SDP of a reply, asserting `result: ok`.
pub fn sdp_of(v: &Value) -> String {
    assert_eq!(result(v), "ok", "reply: {v:?}");
    v.get("sdp")
        .and_then(Value::as_str)
        .expect("sdp")
        .to_owned()
}
