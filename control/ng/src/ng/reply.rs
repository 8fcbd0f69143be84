//! Typed ng replies. [`Reply::to_value`] is the one place a reply becomes
//! bencode, so the reply vocabulary (key names, their order, their value
//! types) is declared here and nowhere else.
//!
//! Key order on the wire is the byte order of the keys (a [`Dict`] is a
//! `BTreeMap`), whatever order the code below inserts them in.

use std::net::{IpAddr, SocketAddr};

use super::{reason, NgError};
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

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Self::Error(s)
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

impl From<Failure> for Reply {
    /// A failure for a client that did not list `load limit` in `supports`.
    fn from(f: Failure) -> Self {
        f.into_reply(false)
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

/// The `query` (and `delete`) reply in rtpengine's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    /// `created`: Unix seconds.
    pub created: u64,
    /// `last signal`: Unix seconds of the last offer or answer.
    pub last_signal: u64,
    /// `tags`: one entry per party, keyed by its tag.
    pub tags: Vec<TagReport>,
    /// `totals.RTP`.
    pub rtp: PacketStats,
    /// `totals.RTCP`.
    pub rtcp: PacketStats,
}

impl CallReport {
    /// `{result: ok, created, last signal, tags: {TAG: …}, totals: {RTP, RTCP}}`.
    pub fn to_value(&self) -> Value {
        // A later party with the same tag replaces an earlier one, as a
        // dictionary keyed by tag must.
        let tags: Dict = self
            .tags
            .iter()
            .map(|t| (t.tag.as_bytes().to_vec(), t.to_value()))
            .collect();
        dict([
            ("result", "ok".into()),
            ("created", self.created.into()),
            ("last signal", self.last_signal.into()),
            ("tags", Value::Dict(tags)),
            (
                "totals",
                dict([("RTP", self.rtp.to_value()), ("RTCP", self.rtcp.to_value())]),
            ),
        ])
    }
}

/// One party of a [`CallReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagReport {
    /// `tag`.
    pub tag: String,
    /// `created`: Unix seconds.
    pub created: u64,
    /// `in dialogue with`: the other party's tag.
    pub in_dialogue_with: String,
    /// `medias`: one per m= line.
    pub medias: Vec<MediaReport>,
}

impl TagReport {
    fn to_value(&self) -> Value {
        dict([
            ("tag", self.tag.as_str().into()),
            ("created", self.created.into()),
            ("in dialogue with", self.in_dialogue_with.as_str().into()),
            (
                "medias",
                Value::List(self.medias.iter().map(MediaReport::to_value).collect()),
            ),
        ])
    }
}

/// One m= line of a party in a [`CallReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaReport {
    /// `index`: the m= line's number, from 1.
    pub index: u64,
    /// `type`, e.g. `audio`.
    pub kind: String,
    /// `protocol`, e.g. `RTP/AVP`.
    pub protocol: String,
    /// `streams[0]`.
    pub rtp: StreamReport,
    /// `streams[1]`.
    pub rtcp: StreamReport,
    /// `flags: [rtcp-mux]` when RTCP is muxed on the RTP port.
    pub rtcp_mux: bool,
}

impl MediaReport {
    fn to_value(&self) -> Value {
        let flags = if self.rtcp_mux {
            vec!["rtcp-mux".into()]
        } else {
            Vec::new()
        };
        dict([
            ("index", self.index.into()),
            ("type", self.kind.as_str().into()),
            ("protocol", self.protocol.as_str().into()),
            (
                "streams",
                Value::List(vec![self.rtp.to_value(false), self.rtcp.to_value(true)]),
            ),
            ("flags", Value::List(flags)),
        ])
    }
}

/// One socket (RTP or RTCP) of a [`MediaReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    /// `local port`.
    pub local_port: u16,
    /// `local address`.
    pub local_address: IpAddr,
    /// `endpoint`: where media goes (learned, else advertised); `{}` when
    /// unknown. Its presence is the `filled` flag.
    pub endpoint: Option<SocketAddr>,
    /// `advertised endpoint`: what the party's SDP said.
    pub advertised: Option<SocketAddr>,
    /// `last packet`: Unix seconds.
    pub last_packet: u64,
    /// The `confirmed` flag: the address was learned from a packet.
    pub confirmed: bool,
    /// `stats`.
    pub stats: PacketStats,
    /// `SSRC`.
    pub ssrc: u32,
    /// `packets lost`: negative when duplicates outnumber losses (RFC 3550).
    pub packets_lost: i64,
    /// `jitter`.
    pub jitter: u32,
    /// `kernel drops`.
    pub kernel_drops: u64,
    /// `foreign source packets`.
    pub foreign_source_packets: u64,
}

impl StreamReport {
    fn to_value(&self, rtcp: bool) -> Value {
        let mut flags = vec![Value::from(if rtcp { "RTCP" } else { "RTP" })];
        if self.endpoint.is_some() {
            flags.push("filled".into());
        }
        if self.confirmed {
            flags.push("confirmed".into());
        }
        dict([
            ("local port", self.local_port.into()),
            ("local address", self.local_address.to_string().into()),
            ("family", family(self.local_address).into()),
            ("endpoint", endpoint(self.endpoint)),
            ("advertised endpoint", endpoint(self.advertised)),
            ("last packet", self.last_packet.into()),
            ("flags", Value::List(flags)),
            ("stats", self.stats.to_value()),
            ("SSRC", u64::from(self.ssrc).into()),
            ("packets lost", self.packets_lost.into()),
            ("jitter", u64::from(self.jitter).into()),
            ("kernel drops", self.kernel_drops.into()),
            ("foreign source packets", self.foreign_source_packets.into()),
        ])
    }
}

/// `{packets, bytes, errors}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketStats {
    /// `packets`.
    pub packets: u64,
    /// `bytes`.
    pub bytes: u64,
    /// `errors`.
    pub errors: u64,
}

impl PacketStats {
    fn to_value(self) -> Value {
        dict([
            ("packets", self.packets.into()),
            ("bytes", self.bytes.into()),
            ("errors", self.errors.into()),
        ])
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn endpoint(a: Option<SocketAddr>) -> Value {
    match a {
        Some(a) => dict([
            ("family", family(a.ip()).into()),
            ("address", a.ip().to_string().into()),
            ("port", a.port().into()),
        ]),
        None => dict([]),
    }
}
