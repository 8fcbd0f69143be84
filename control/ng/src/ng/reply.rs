//! Typed ng replies. [`Reply::to_value`] is the one place a reply becomes
//! bencode, so the reply vocabulary (key names, their order, their value
//! types) is declared here and nowhere else.
//!
//! Key order on the wire is the byte order of the keys (a [`Dict`] is a
//! `BTreeMap`), whatever order the code below inserts them in.

use std::net::SocketAddr;

use super::{reason, CallReport, NgError};
use crate::bencode::{dict, Dict, Value};

/// Why a command failed, in the two shapes rtpengine answers failures with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// `{result: error, error-reason: …}` with this text.
    Error(String),
    /// No room for another session: `load limit` for a client that listed
    /// it in `supports`, an error otherwise (see [`Failure::into_reply`]).
    LoadLimit,
}

impl Failure {
    /// The reply to send; `load_limit_supported` is whether the request's
    /// `supports` listed `load limit`.
    pub fn into_reply(self, load_limit_supported: bool) -> Reply {
        match self {
            Self::Error(reason) => Reply::Error(reason),
            Self::LoadLimit if load_limit_supported => Reply::LoadLimit,
            Self::LoadLimit => Reply::Error(reason::LOAD_LIMIT.into()),
        }
    }

    /// The text the failure is logged (or sent as an error) with.
    pub fn reason(&self) -> &str {
        match self {
            Self::Error(r) => r,
            Self::LoadLimit => reason::LOAD_LIMIT,
        }
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Self::Error(s.to_owned())
    }
}

impl From<NgError> for Failure {
    fn from(e: NgError) -> Self {
        match e {
            NgError::LoadLimit => Self::LoadLimit,
            e => Self::Error(e.reason()),
        }
    }
}

/// A reply to one ng request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// `{result: pong}`, the reply to `ping`.
    Pong,
    /// `{result: ok}`, with a `warning` when the command found nothing to do
    /// (e.g. [`reason::DELETE_NOT_FOUND`]).
    Ok {
        /// `warning`.
        warning: Option<String>,
    },
    /// offer and answer: `{result: ok, sdp: …}`, plus the call's tunnel end
    /// when it has a tunnel leg.
    Sdp {
        /// The rewritten SDP for the receiving party.
        sdp: String,
        /// `tunnel` (rtpmesh, for the controller).
        tunnel: Option<TunnelEnd>,
    },
    /// `update tunnel`: `{result: ok}` plus the call's tunnel end.
    Tunnel(Option<TunnelEnd>),
    /// `list`: `{result: ok, calls: [call-id, …]}`.
    Calls(Vec<String>),
    /// `query` and `delete`: the call's state and counters.
    Report(CallReport),
    /// `statistics`: `{result: ok, statistics: {…}}`.
    Statistics(Statistics),
    /// `{result: error, error-reason: …}`.
    Error(String),
    /// `{result: "load limit", message: …}`: what rtpengine sends instead of
    /// an error when the request listed `load limit` in `supports`, so that
    /// Kamailio can try another relay rather than fail the call.
    LoadLimit,
    /// A node's reply passed on by the regional controller, with what the
    /// controller adds to it.
    Relayed(Relayed),
}

impl Reply {
    /// `{result: ok}`.
    pub fn ok() -> Self {
        Self::Ok { warning: None }
    }

    /// `{result: ok, warning: …}`.
    pub fn ok_with_warning(warning: &str) -> Self {
        Self::Ok {
            warning: Some(warning.to_owned()),
        }
    }

    /// `{result: error, error-reason: …}`.
    pub fn error(reason: &str) -> Self {
        Self::Error(reason.to_owned())
    }

    /// The reply as bencode.
    pub fn to_value(&self) -> Value {
        let mut m = Dict::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.as_bytes().to_vec(), v);
        };
        match self {
            Self::Pong => put("result", "pong".into()),
            Self::Ok { warning } => {
                put("result", "ok".into());
                if let Some(w) = warning {
                    put("warning", w.as_str().into());
                }
            }
            Self::Sdp { sdp, tunnel } => {
                put("result", "ok".into());
                put("sdp", sdp.as_str().into());
                if let Some(t) = tunnel {
                    put("tunnel", t.to_value());
                }
            }
            Self::Tunnel(tunnel) => {
                put("result", "ok".into());
                if let Some(t) = tunnel {
                    put("tunnel", t.to_value());
                }
            }
            Self::Calls(ids) => {
                put("result", "ok".into());
                let ids = ids.iter().map(|s| s.as_str().into()).collect();
                put("calls", Value::List(ids));
            }
            Self::Report(r) => return r.to_value(),
            Self::Statistics(s) => {
                put("result", "ok".into());
                put("statistics", s.to_value());
            }
            Self::Error(reason) => {
                put("result", "error".into());
                put("error-reason", reason.as_str().into());
            }
            Self::LoadLimit => {
                put("result", "load limit".into());
                put("message", reason::LOAD_LIMIT.into());
            }
            Self::Relayed(r) => return r.to_value(),
        }
        Value::Dict(m)
    }

    /// `COOKIE SP bencode`, ready to send.
    pub fn encode(&self, cookie: &[u8]) -> Vec<u8> {
        super::encode_reply(cookie, &self.to_value())
    }
}

/// rtpmesh's `tunnel` reply key: where the peer node sends this call's
/// tunnel-leg media, and the flow ids it addresses there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelEnd {
    /// `address`: this node's tunnel socket.
    pub address: SocketAddr,
    /// `flows`: per m= line, `[RTP, RTCP]` flow ids.
    pub flows: Vec<(u32, u32)>,
}

impl TunnelEnd {
    /// `{address, flows: [[RTP, RTCP], …]}`.
    pub fn to_value(&self) -> Value {
        let flows = self
            .flows
            .iter()
            .map(|&(rtp, rtcp)| Value::List(vec![rtp.into(), rtcp.into()]))
            .collect();
        dict([
            ("address", self.address.to_string().into()),
            ("flows", Value::List(flows)),
        ])
    }
}

/// rtpmesh's `route` reply key: where the regional controller sent a
/// cross-region call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// `endpoint`: the callee as the proxy named it.
    pub endpoint: String,
    /// `gateway`: the gateway towards the callee.
    pub gateway: String,
    /// `sip`: the gateway's SIP address.
    pub sip: String,
    /// `region`: the callee's region.
    pub region: String,
    /// `node`: the node facing the caller.
    pub node: String,
    /// `callee-node`: the node facing the callee (`node` when one node
    /// carries the call).
    pub callee_node: String,
}

impl Route {
    /// The keys in wire spelling, with their values.
    pub fn fields(&self) -> [(&'static str, &str); 6] {
        [
            ("endpoint", &self.endpoint),
            ("gateway", &self.gateway),
            ("sip", &self.sip),
            ("region", &self.region),
            ("node", &self.node),
            ("callee-node", &self.callee_node),
        ]
    }

    /// `{endpoint, gateway, sip, region, node, callee-node}`.
    pub fn to_value(&self) -> Value {
        dict(self.fields().map(|(k, v)| (k, v.into())))
    }
}

/// A node's reply as the regional controller passes it on.
#[derive(Debug, Clone, PartialEq)]
pub struct Relayed {
    /// The node's reply, as it came.
    pub reply: Value,
    /// `route`, added to a placed call's offer and answer replies.
    pub route: Option<Route>,
    /// `branch-node`: the node that terminates a cross-region branch.
    pub branch_node: Option<String>,
}

impl Relayed {
    /// A node's reply passed on unchanged.
    pub fn of(reply: Value) -> Self {
        Self {
            reply,
            route: None,
            branch_node: None,
        }
    }

    /// The node's reply with the controller's keys; a reply that is not a
    /// dictionary goes on untouched.
    pub fn to_value(&self) -> Value {
        let mut v = self.reply.clone();
        if let Value::Dict(m) = &mut v {
            if let Some(r) = &self.route {
                m.insert(b"route".to_vec(), r.to_value());
            }
            if let Some(n) = &self.branch_node {
                m.insert(b"branch-node".to_vec(), n.as_str().into());
            }
        }
        v
    }
}

/// The `statistics` tree: named sections of named counters. rtpengine's
/// tree is open-ended, so this is a builder rather than a fixed struct.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Statistics {
    sections: Vec<(&'static str, Vec<(&'static str, u64)>)>,
}

impl Statistics {
    /// No sections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds section `name` (e.g. `currentstatistics`) with its counters.
    pub fn section(
        mut self,
        name: &'static str,
        counters: impl IntoIterator<Item = (&'static str, u64)>,
    ) -> Self {
        self.sections.push((name, counters.into_iter().collect()));
        self
    }

    /// `{SECTION: {COUNTER: n, …}, …}`.
    pub fn to_value(&self) -> Value {
        dict(
            self.sections.iter().map(|(name, counters)| {
                (*name, dict(counters.iter().map(|&(k, n)| (k, n.into()))))
            }),
        )
    }
}
