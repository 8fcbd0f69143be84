//! rtpengine "ng" protocol: datagram framing, request parsing and replies, sans-IO.
//!
//! A datagram is `COOKIE SP BENCODED-DICT`; the reply echoes the cookie. What
//! rtpengine 10.5 actually does with odd input is written down in
//! `control/ng/NG-NOTES.md`; the behaviour here follows it except where noted.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::bencode::{self, dict, DecodeError, Value};

/// `error-reason` / `warning` texts, byte for byte as rtpengine 10.5.3 sends
/// them (each one was observed on the wire, see `NG-NOTES.md`). Kamailio logs
/// them and some scripts match on them, so never reword.
pub mod reason {
    /// `command` names no known command (matching is case-sensitive: `Ping` gets this).
    pub const UNRECOGNIZED_COMMAND: &str = "Unrecognized command";
    /// offer/answer without a string `sdp`; checked before call-id and tags.
    pub const NO_SDP: &str = "No SDP body in message";
    /// Missing (or non-string) `call-id`.
    pub const NO_CALL_ID: &str = "No call-id in message";
    /// Missing `from-tag` on offer/answer.
    pub const NO_FROM_TAG: &str = "No from-tag in message";
    /// Missing `to-tag` on answer; rtpengine checks it before looking the call up.
    pub const NO_TO_TAG: &str = "No to-tag in message";
    /// answer/query for a call we do not have. (rtpengine's binary also has
    /// `Unknown call-ID`, but answer and query send this spelling.)
    pub const UNKNOWN_CALL_ID: &str = "Unknown call-id";
    /// Sent as `warning` on a `result: ok` reply when delete finds nothing.
    pub const DELETE_NOT_FOUND: &str = "Call-ID not found or tags didn't match";
    /// A `from-tag` that names no party of the call.
    pub const UNKNOWN_TAG: &str = "Unknown tag";
    /// The SDP body could not be parsed.
    pub const FAILED_TO_PARSE_SDP: &str = "Failed to parse SDP";
    /// Session limit hit. With `supports: [load limit]` rtpengine sends it as
    /// `{result: "load limit", message: …}` instead of as an error; see [`super::load_limit`].
    pub const LOAD_LIMIT: &str = "Parallel session limit reached";
    /// Body is a dict that does not decode (truncated strings, `i03e`, …).
    pub const DECODE_FAILED: &str = "Could not decode bencode dictionary";
    /// Body does not start with `d` (a list, a string, garbage, a second space).
    pub const INVALID_FORMAT: &str = "Invalid NG data format";
    /// Nothing after the cookie's space.
    pub const NO_PAYLOAD: &str = "Invalid data (no payload)";
    /// The port range is exhausted (rtpengine's text).
    pub const NO_PORTS: &str = "Ran out of ports";
    /// An answer with more m= lines than its offer (rtpmesh's own text).
    pub const ANSWER_MEDIA_MISMATCH: &str = "Answer has more media streams than the offer";
    /// The dict has no `command`, or it is not a string.
    pub const NO_COMMAND: &str = "Dictionary contains no key \"command\"";
}

/// Anything that turns a datagram into an error reply (or into silence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NgError {
    /// No space in the datagram, or nothing before it. rtpengine drops these
    /// without a reply; see [`NgError::is_silent`].
    #[error("datagram has no cookie")]
    NoCookie,
    /// Nothing after the cookie.
    #[error("datagram has no payload")]
    NoPayload,
    /// The body does not start with a bencoded dictionary.
    #[error("body is not a bencoded dictionary")]
    NotADict,
    /// The body looked like a dictionary but did not decode.
    #[error("could not decode bencode dictionary: {0}")]
    Bencode(#[from] DecodeError),
    /// No string `command` key.
    #[error("dictionary contains no key \"command\"")]
    NoCommand,
    /// `command` is not one we implement.
    #[error("unrecognized command {0:?}")]
    UnrecognizedCommand(String),
    /// offer/answer without SDP.
    #[error("no SDP body in message")]
    NoSdp,
    /// A command that needs a call-id lacks one.
    #[error("no call-id in message")]
    NoCallId,
    /// offer/answer without from-tag.
    #[error("no from-tag in message")]
    NoFromTag,
    /// answer without to-tag.
    #[error("no to-tag in message")]
    NoToTag,
    /// A key is present with the wrong type or an unparsable value. rtpengine
    /// mostly ignores such keys; we refuse them so a typo in a Kamailio
    /// config shows up instead of silently changing media handling.
    #[error("invalid value for key \"{key}\": expected {expected}")]
    InvalidValue {
        /// The key (normalized, e.g. `received-from`), or `flags: NAME` for a flag string.
        key: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// The call-id names no call we know (answer, query).
    #[error("unknown call-id")]
    UnknownCallId,
    /// The SDP body could not be parsed.
    #[error("failed to parse SDP")]
    FailedToParseSdp,
    /// No room for another session.
    #[error("parallel session limit reached")]
    LoadLimit,
}

impl NgError {
    /// The `error-reason` text to send back: rtpengine's exact wording where it has one.
    pub fn reason(&self) -> String {
        use reason::*;
        match self {
            Self::NoCookie | Self::NotADict => INVALID_FORMAT.into(),
            Self::NoPayload => NO_PAYLOAD.into(),
            Self::Bencode(_) => DECODE_FAILED.into(),
            Self::NoCommand => NO_COMMAND.into(),
            Self::UnrecognizedCommand(_) => UNRECOGNIZED_COMMAND.into(),
            Self::NoSdp => NO_SDP.into(),
            Self::NoCallId => NO_CALL_ID.into(),
            Self::NoFromTag => NO_FROM_TAG.into(),
            Self::NoToTag => NO_TO_TAG.into(),
            Self::UnknownCallId => UNKNOWN_CALL_ID.into(),
            Self::FailedToParseSdp => FAILED_TO_PARSE_SDP.into(),
            Self::LoadLimit => LOAD_LIMIT.into(),
            // rtpengine has no text for this; ours names the key so the
            // Kamailio log alone is enough to find the culprit.
            Self::InvalidValue { key, expected } => {
                format!("Invalid value for key \"{key}\": expected {expected}")
            }
        }
    }

    /// True when rtpengine sends nothing back (there is no cookie to echo).
    pub fn is_silent(&self) -> bool {
        matches!(self, Self::NoCookie)
    }
}

/// Splits a datagram into `(cookie, body)` at the first space.
///
/// An empty body is not an error here, so the caller still has the cookie
/// to send [`NgError::NoPayload`] back with; [`decode_body`] reports it.
pub fn split_datagram(d: &[u8]) -> Result<(&[u8], &[u8]), NgError> {
    match d.iter().position(|&b| b == b' ') {
        Some(0) | None => Err(NgError::NoCookie),
        Some(i) => Ok((&d[..i], &d[i + 1..])),
    }
}

/// Decodes a body into its dictionary, with rtpengine's distinctions between
/// "no payload", "not a dict" and "a dict that does not decode".
pub fn decode_body(body: &[u8]) -> Result<Value, NgError> {
    match body.first() {
        None => Err(NgError::NoPayload),
        Some(b'd') => Ok(bencode::decode(body)?),
        Some(_) => Err(NgError::NotADict),
    }
}

// The single list of commands: variant, wire name, doc.
macro_rules! commands {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// An ng command we implement.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum Command {
            $($(#[$doc])* $variant,)*
        }

        impl Command {
            /// Every command, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The wire name, as sent in `command`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }
        }

        /// Exact, case-sensitive match on the wire name, as rtpengine does.
        impl FromStr for Command {
            type Err = NgError;

            fn from_str(s: &str) -> Result<Self, NgError> {
                match s {
                    $($wire => Ok(Self::$variant),)*
                    _ => Err(NgError::UnrecognizedCommand(s.to_owned())),
                }
            }
        }
    };
}

commands! {
    /// Liveness check; answered with `result: pong`. The default only so that
    /// [`Request`] can derive `Default`.
    #[default]
    Ping = "ping",
    /// SDP offer: allocate ports, rewrite SDP.
    Offer = "offer",
    /// SDP answer for an offered call.
    Answer = "answer",
    /// Tear a call (or one branch of it) down.
    Delete = "delete",
    /// Report a call's state and counters.
    Query = "query",
    /// List call-ids.
    List = "list",
    /// Global counters.
    Statistics = "statistics",
    /// Record the call (every leg, or the `from-tag` party's) to local pcap
    /// and WAV files.
    StartRecording = "start recording",
    /// Stop recording; the files stay.
    StopRecording = "stop recording",
    /// Stop forwarding media from the `from-tag` party (every party without
    /// one).
    BlockMedia = "block media",
    /// Undo `block media`.
    UnblockMedia = "unblock media",
    /// rtpmesh: tell a call's tunnel leg where the peer node's end is.
    UpdateTunnel = "update tunnel",
    /// rtpmesh: fork a party's media to a resource (`destination`, or
    /// through a `tunnel`), optionally recording it here too.
    StartBranch = "start branch",
    /// rtpmesh: stop a branch.
    StopBranch = "stop branch",
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Entries of the `flags` list that are plain switches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flags {
    /// `strict-source`: drop packets from other than the learned address.
    pub strict_source: bool,
    /// `asymmetric`: do not learn the peer's address from its packets.
    pub asymmetric: bool,
    /// `symmetric`: the opposite of `asymmetric` (the default).
    pub symmetric: bool,
    /// `trust-address`: use the SDP's address, not the packet source.
    pub trust_address: bool,
    /// `SIP-source-address`: use `received-from` rather than the SDP's address.
    pub sip_source_address: bool,
    /// `fatal`: fail the request instead of degrading.
    pub fatal: bool,
    /// `all`: delete every branch of the call.
    pub all: bool,
    /// `port-latching`: keep the first learned address.
    pub port_latching: bool,
    /// `no-rtcp-attribute`: do not add `a=rtcp`.
    pub no_rtcp_attribute: bool,
    /// `full-rtcp-attribute`: write `a=rtcp` with address.
    pub full_rtcp_attribute: bool,
    /// `loop-protect`: detect SDP we rewrote ourselves.
    pub loop_protect: bool,
    /// Everything else, verbatim. rtpengine ignores flags it does not know,
    /// and so do we, but keeping them lets the handler log them.
    pub unknown: Vec<String>,
}

/// The `replace` list: which SDP session lines to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replace {
    /// `origin`: rewrite `o=`.
    pub origin: bool,
    /// `session-connection`: rewrite the session-level `c=`.
    pub session_connection: bool,
}

/// The `ICE` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceMode {
    /// `remove`: strip ICE attributes.
    Remove,
    /// `force`: add our own candidates, replacing the peer's.
    Force,
    /// `default`: leave ICE as the peer offered it.
    Default,
    /// `force-relay`: add ours as relay candidates.
    ForceRelay,
    /// `optional`: add ICE only if the peer used it.
    Optional,
}

impl IceMode {
    /// Parses an `ICE` value; case, ' ' and '_' do not matter (`force_relay` works).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match normalize(s.trim()).to_ascii_lowercase().as_str() {
            "remove" => Self::Remove,
            "force" => Self::Force,
            "default" => Self::Default,
            "force-relay" => Self::ForceRelay,
            "optional" => Self::Optional,
            _ => return None,
        })
    }
}

const ICE_EXPECTED: &str = "remove, force, default, force-relay or optional";

/// The `rtcp-mux` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtcpMux {
    /// `offer`: offer rtcp-mux to the callee.
    pub offer: bool,
    /// `accept`: accept rtcp-mux if offered.
    pub accept: bool,
    /// `demux`: split muxed RTCP for a peer that cannot mux.
    pub demux: bool,
    /// `require`: insist on rtcp-mux.
    pub require: bool,
    /// `reject`: refuse rtcp-mux.
    pub reject: bool,
}

/// A parsed ng request. Keys we do not model are ignored, as rtpengine ignores unknown keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `command`.
    pub command: Command,
    /// `call-id`; guaranteed present for offer, answer, delete and query.
    pub call_id: Option<String>,
    /// `from-tag`; guaranteed present for offer and answer.
    pub from_tag: Option<String>,
    /// `to-tag`; guaranteed present for answer.
    pub to_tag: Option<String>,
    /// `via-branch`.
    pub via_branch: Option<String>,
    /// `sdp`; guaranteed present for offer and answer.
    pub sdp: Option<String>,
    /// Switches from the `flags` list.
    pub flags: Flags,
    /// `replace` list (or `replace-*` flags).
    pub replace: Replace,
    /// `direction`: up to two interface names.
    pub direction: Vec<String>,
    /// `ICE` (any case; or an `ICE=…` flag).
    pub ice: Option<IceMode>,
    /// `rtcp-mux` list (or `rtcp-mux-*` flags).
    pub rtcp_mux: RtcpMux,
    /// `transport-protocol`, e.g. `RTP/AVP` (or a bare `RTP/…` flag).
    pub transport_protocol: Option<String>,
    /// `received-from: [IP4|IP6, ADDRESS]`: the SIP packet's source.
    pub received_from: Option<IpAddr>,
    /// `media-address`.
    pub media_address: Option<IpAddr>,
    /// `delete-delay` in seconds; `Some(0)` means delete now.
    pub delete_delay: Option<u32>,
    /// `supports`, e.g. `load limit`.
    pub supports: Vec<String>,
    /// `limit` for `list`.
    pub limit: Option<u32>,
    /// `address-family` (`IP4`/`IP6`): the family of the relay address
    /// offered to the answerer, for calls that cross families.
    pub address_family: Option<String>,
    /// rtpmesh extension `tunnel`: one leg is reached through an
    /// inter-node tunnel (sent by the regional controller, never by a
    /// proxy).
    pub tunnel: Option<TunnelParams>,
    /// rtpmesh extension `branch`: a branch's name.
    pub branch: Option<String>,
    /// rtpmesh extension `destination`: where a local branch sends RTP
    /// (RTCP to the port above; stream `i` at `port + 2i`).
    pub destination: Option<SocketAddr>,
}

/// Which leg of a call faces the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelSide {
    /// The party that sent the offer is behind the tunnel.
    Offerer,
    /// The party the offer goes to is behind the tunnel.
    Answerer,
}

/// The `tunnel` dictionary of the regional controller's requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelParams {
    /// `side`: which leg is the tunnel leg (offer only).
    pub side: Option<TunnelSide>,
    /// `address`: the peer node's tunnel socket, once known.
    pub address: Option<SocketAddr>,
    /// `flows`: the peer's flow ids per m= line, `[RTP, RTCP]`.
    pub flows: Vec<(u32, u32)>,
}

/// Rewrites ' ' and '_' to '-', so `delete delay`, `delete_delay` and
/// `delete-delay` are one key. rtpengine 10.5 treats ' ' like '-' in keys
/// (observed for `delete delay` and `transport protocol`) but ignores
/// `delete_delay`; accepting it too costs nothing.
fn normalize(key: &str) -> String {
    key.replace([' ', '_'], "-")
}

/// Parses a decoded body into a [`Request`], then checks the keys its command
/// requires in rtpengine's order (offer: sdp, call-id, from-tag; answer: the
/// same then to-tag; delete and query: call-id).
///
/// When one key is spelled several ways (Kamailio sends both `delete delay`
/// and `delete-delay`), the dashed spelling wins; keys given directly win
/// over the same setting in the `flags` list.
pub fn parse_request(body: &Value) -> Result<Request, NgError> {
    let map = body.as_dict().ok_or(NgError::NotADict)?;
    let command = map
        .get(&b"command"[..])
        .and_then(Value::as_str)
        .ok_or(NgError::NoCommand)?
        .parse()?;
    let mut req = Request {
        command,
        ..Request::default()
    };

    // Rank 0: the flags list; 1: oddly spelled keys; 2: canonical keys.
    // Applying in rank order lets the later, more authoritative ones win.
    let mut entries: Vec<(u8, String, &Value)> = map
        .iter()
        .filter_map(|(k, v)| {
            let raw = std::str::from_utf8(k).ok()?;
            let mut key = normalize(raw);
            if key.eq_ignore_ascii_case("ice") {
                key = "ice".into();
            }
            let rank = if key == "flags" {
                0
            } else if key == raw {
                2
            } else {
                1
            };
            Some((rank, key, v))
        })
        .collect();
    entries.sort_by_key(|e| e.0);

    for (_, key, v) in entries {
        apply_key(&mut req, &key, v)?;
    }
    check_required(&req)?;
    Ok(req)
}

fn check_required(req: &Request) -> Result<(), NgError> {
    let (sdp, call_id, from_tag, to_tag) = match req.command {
        Command::Offer => (true, true, true, false),
        Command::Answer => (true, true, true, true),
        Command::Delete
        | Command::Query
        | Command::StartRecording
        | Command::StopRecording
        | Command::BlockMedia
        | Command::UnblockMedia
        | Command::UpdateTunnel
        | Command::StartBranch
        | Command::StopBranch => (false, true, false, false),
        Command::Ping | Command::List | Command::Statistics => return Ok(()),
    };
    if sdp && req.sdp.is_none() {
        return Err(NgError::NoSdp);
    }
    if call_id && req.call_id.is_none() {
        return Err(NgError::NoCallId);
    }
    if from_tag && req.from_tag.is_none() {
        return Err(NgError::NoFromTag);
    }
    if to_tag && req.to_tag.is_none() {
        return Err(NgError::NoToTag);
    }
    Ok(())
}

fn invalid(key: &str, expected: &'static str) -> NgError {
    NgError::InvalidValue {
        key: key.to_owned(),
        expected,
    }
}

fn string(key: &str, v: &Value) -> Result<String, NgError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(key, "a UTF-8 string"))
}

/// A list of strings. A bare string counts as a comma-separated list,
/// as in rtpengine's flag-list handling.
fn strings(key: &str, v: &Value) -> Result<Vec<String>, NgError> {
    const EXPECTED: &str = "a list of strings";
    match v {
        Value::List(items) => items.iter().map(|i| string(key, i)).collect(),
        Value::Bytes(_) => Ok(string(key, v)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        _ => Err(invalid(key, EXPECTED)),
    }
}

/// An unsigned number given as an integer or as decimal text (Kamailio does both).
fn number(key: &str, v: &Value) -> Result<u32, NgError> {
    const EXPECTED: &str = "a non-negative integer";
    let n = match v {
        Value::Int(i) => u32::try_from(*i).ok(),
        Value::Bytes(_) => v.as_str().and_then(|s| s.trim().parse().ok()),
        _ => None,
    };
    n.ok_or_else(|| invalid(key, EXPECTED))
}

fn ip(key: &str, s: &str) -> Result<IpAddr, NgError> {
    s.trim().parse().map_err(|_| invalid(key, "an IP address"))
}

fn apply_key(req: &mut Request, key: &str, v: &Value) -> Result<(), NgError> {
    match key {
        "call-id" => req.call_id = Some(string(key, v)?),
        "from-tag" => req.from_tag = Some(string(key, v)?),
        "to-tag" => req.to_tag = Some(string(key, v)?),
        "via-branch" => req.via_branch = Some(string(key, v)?),
        "sdp" => req.sdp = Some(string(key, v)?),
        "address-family" => {
            let f = string(key, v)?;
            if !f.eq_ignore_ascii_case("IP4") && !f.eq_ignore_ascii_case("IP6") {
                return Err(invalid(key, "IP4 or IP6"));
            }
            req.address_family = Some(f.to_ascii_uppercase());
        }
        "flags" => {
            for flag in strings(key, v)? {
                apply_flag(req, &flag)?;
            }
        }
        "replace" => {
            for item in strings(key, v)? {
                apply_replace(req, &normalize(&item));
            }
        }
        "direction" => {
            let dirs = strings(key, v)?;
            if dirs.len() > 2 {
                return Err(invalid(key, "at most two interface names"));
            }
            req.direction = dirs;
        }
        "ice" => {
            let s = string(key, v)?;
            req.ice = Some(IceMode::from_name(&s).ok_or_else(|| invalid(key, ICE_EXPECTED))?);
        }
        "rtcp-mux" => {
            for item in strings(key, v)? {
                apply_rtcp_mux(req, &item);
            }
        }
        "transport-protocol" => req.transport_protocol = Some(string(key, v)?),
        "received-from" => req.received_from = Some(received_from(key, v)?),
        "media-address" => req.media_address = Some(ip(key, &string(key, v)?)?),
        "delete-delay" => req.delete_delay = Some(number(key, v)?),
        "supports" => req.supports = strings(key, v)?,
        "limit" => req.limit = Some(number(key, v)?),
        "tunnel" => req.tunnel = Some(tunnel(key, v)?),
        "branch" => req.branch = Some(string(key, v)?),
        "destination" => {
            req.destination = Some(
                string(key, v)?
                    .trim()
                    .parse()
                    .map_err(|_| invalid(key, "an address:port"))?,
            )
        }
        _ => {}
    }
    Ok(())
}

fn tunnel(key: &str, v: &Value) -> Result<TunnelParams, NgError> {
    const EXPECTED: &str = "{side, address, flows: [[RTP, RTCP], ...]}";
    let map = v.as_dict().ok_or_else(|| invalid(key, EXPECTED))?;
    let mut t = TunnelParams::default();
    if let Some(side) = map.get(&b"side"[..]) {
        t.side = Some(match side.as_str() {
            Some("offerer") => TunnelSide::Offerer,
            Some("answerer") => TunnelSide::Answerer,
            _ => return Err(invalid("tunnel.side", "offerer or answerer")),
        });
    }
    if let Some(a) = map.get(&b"address"[..]) {
        let a = a.as_str().and_then(|s| s.parse().ok());
        t.address = Some(a.ok_or_else(|| invalid("tunnel.address", "an address:port"))?);
    }
    if let Some(f) = map.get(&b"flows"[..]) {
        let items = f.as_list().ok_or_else(|| invalid(key, EXPECTED))?;
        for item in items {
            let pair = item.as_list().ok_or_else(|| invalid(key, EXPECTED))?;
            let [rtp, rtcp] = pair else {
                return Err(invalid(key, EXPECTED));
            };
            t.flows.push((number(key, rtp)?, number(key, rtcp)?));
        }
    }
    Ok(t)
}

fn received_from(key: &str, v: &Value) -> Result<IpAddr, NgError> {
    const EXPECTED: &str = "[IP4|IP6, address]";
    let [family, addr] = v.as_list().ok_or_else(|| invalid(key, EXPECTED))? else {
        return Err(invalid(key, EXPECTED));
    };
    let (Some(family), Some(addr)) = (family.as_str(), addr.as_str()) else {
        return Err(invalid(key, EXPECTED));
    };
    let addr = ip(key, addr)?;
    match (family, addr) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(addr),
        _ => Err(invalid(key, EXPECTED)),
    }
}

/// Returns whether `item` was a known `replace` entry.
fn apply_replace(req: &mut Request, item: &str) -> bool {
    match item {
        "origin" => req.replace.origin = true,
        "session-connection" => req.replace.session_connection = true,
        _ => return false,
    }
    true
}

/// Returns whether `item` was a known `rtcp-mux` entry. Unknown ones are
/// ignored, as rtpengine does.
fn apply_rtcp_mux(req: &mut Request, item: &str) -> bool {
    let m = &mut req.rtcp_mux;
    match item {
        "offer" => m.offer = true,
        "accept" => m.accept = true,
        "demux" => m.demux = true,
        "require" => m.require = true,
        "reject" => m.reject = true,
        _ => return false,
    }
    true
}

/// One entry of the `flags` list. Besides rtpengine's own switches this
/// accepts the strings Kamailio's `rtpengine_offer("…")` takes. Kamailio
/// normally translates those into dict keys before sending, and rtpengine
/// 10.5 ignores them inside `flags` (observed), but a hand-written client may
/// send them and honouring them is harmless.
fn apply_flag(req: &mut Request, raw: &str) -> Result<(), NgError> {
    // Only the name is normalized: values are addresses and interface
    // names, where '_' is significant.
    let raw_trimmed = raw.trim();
    if let Some((name, value)) = raw_trimmed.split_once('=') {
        let name = normalize(name.trim()).to_ascii_lowercase();
        let value = value.trim();
        let key = || format!("flags: {name}");
        match name.as_str() {
            "ice" => {
                req.ice =
                    Some(IceMode::from_name(value).ok_or_else(|| invalid(&key(), ICE_EXPECTED))?);
            }
            "media-address" => req.media_address = Some(ip(&key(), value)?),
            "direction" => {
                if req.direction.len() >= 2 {
                    return Err(invalid(&key(), "at most two interface names"));
                }
                req.direction.push(value.to_owned());
            }
            "delete-delay" => {
                req.delete_delay = Some(number(&key(), &Value::from(value))?);
            }
            "transport-protocol" => req.transport_protocol = Some(value.to_owned()),
            _ => req.flags.unknown.push(raw.to_owned()),
        }
        return Ok(());
    }

    let flag = normalize(raw_trimmed);
    let lower = flag.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("replace-") {
        if apply_replace(req, rest) {
            return Ok(());
        }
    }
    if let Some(rest) = lower.strip_prefix("rtcp-mux-") {
        if apply_rtcp_mux(req, rest) {
            return Ok(());
        }
    }
    if matches!(
        flag.to_ascii_uppercase().as_str(),
        "RTP/AVP" | "RTP/AVPF" | "RTP/SAVP" | "RTP/SAVPF"
    ) {
        req.transport_protocol = Some(flag.to_ascii_uppercase());
        return Ok(());
    }
    let f = &mut req.flags;
    match lower.as_str() {
        "strict-source" => f.strict_source = true,
        "asymmetric" => f.asymmetric = true,
        "symmetric" => f.symmetric = true,
        "trust-address" => f.trust_address = true,
        "sip-source-address" => f.sip_source_address = true,
        "fatal" => f.fatal = true,
        "all" => f.all = true,
        "port-latching" => f.port_latching = true,
        "no-rtcp-attribute" => f.no_rtcp_attribute = true,
        "full-rtcp-attribute" => f.full_rtcp_attribute = true,
        "loop-protect" => f.loop_protect = true,
        _ => f.unknown.push(raw.to_owned()),
    }
    Ok(())
}

/// `{result: ok}`
pub fn ok() -> Value {
    dict([("result", "ok".into())])
}

/// `{result: pong}`, the reply to `ping`.
pub fn pong() -> Value {
    dict([("result", "pong".into())])
}

/// `{result: ok, warning: …}`, e.g. with [`reason::DELETE_NOT_FOUND`].
pub fn ok_with_warning(warning: &str) -> Value {
    dict([("result", "ok".into()), ("warning", warning.into())])
}

/// `{result: error, error-reason: …}`
pub fn error(reason: &str) -> Value {
    dict([("result", "error".into()), ("error-reason", reason.into())])
}

/// `{result: "load limit", message: …}`: what rtpengine sends instead of an
/// error when the request listed `load limit` in `supports`, so that
/// Kamailio can try another relay rather than fail the call.
pub fn load_limit() -> Value {
    dict([
        ("result", "load limit".into()),
        ("message", reason::LOAD_LIMIT.into()),
    ])
}

/// `COOKIE SP bencode`, ready to send.
pub fn encode_reply(cookie: &[u8], reply: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 64);
    out.extend_from_slice(cookie);
    out.push(b' ');
    reply.encode_into(&mut out);
    out
}

#[cfg(test)]
mod tests;
