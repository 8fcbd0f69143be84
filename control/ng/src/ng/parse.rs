//! Parsing a decoded body into a typed [`Request`]: every key is read
//! once, then the command's required keys are checked in rtpengine's
//! order.

use std::net::IpAddr;

use super::request::ICE_EXPECTED;
use super::security;
use super::{
    Answer, BranchRef, CallRef, Command, IceMode, NgError, Offer, Op, Options, Request,
    TunnelParams, TunnelSide,
};
use crate::bencode::Value;

/// Rewrites ' ' and '_' to '-', so `delete delay`, `delete_delay` and
/// `delete-delay` are one key. rtpengine 10.5 treats ' ' like '-' in keys
/// (observed for `delete delay` and `transport protocol`) but ignores
/// `delete_delay`; accepting it too costs nothing.
pub(super) fn normalize(key: &str) -> String {
    key.replace([' ', '_'], "-")
}

/// Every key as read, before the command's required keys are checked.
#[derive(Default)]
struct Keys {
    call_id: Option<String>,
    from_tag: Option<String>,
    to_tag: Option<String>,
    sdp: Option<String>,
    branch: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
    options: Options,
}

/// Parses a decoded body into a [`Request`], then checks the keys its command
/// requires in rtpengine's order (offer: sdp, call-id, from-tag; answer: the
/// same then to-tag; every command about a call: call-id; branches: then
/// `branch`). A malformed key is reported before a missing one.
///
/// When one key is spelled several ways (Kamailio sends both `delete delay`
/// and `delete-delay`), the dashed spelling wins; keys given directly win
/// over the same setting in the `flags` list.
pub fn parse_request(body: &Value) -> Result<Request, NgError> {
    let map = body.as_dict().ok_or(NgError::NotADict)?;
    let command: Command = map
        .get(&b"command"[..])
        .and_then(Value::as_str)
        .ok_or(NgError::NoCommand)?
        .parse()?;
    let mut keys = Keys::default();

    // Rank 0: the flags list; 1: oddly spelled keys; 2: canonical keys.
    // Applying in rank order lets the later, more authoritative ones win.
    let mut entries: Vec<(u8, String, &Value)> = map
        .iter()
        .filter_map(|(k, v)| {
            let raw = std::str::from_utf8(k).ok()?;
            let mut key = normalize(raw);
            // rtpengine matches these option names in any case.
            if ["ice", "dtls", "sdes"]
                .iter()
                .any(|k| key.eq_ignore_ascii_case(k))
            {
                key = key.to_ascii_lowercase();
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
        apply_key(&mut keys, &key, v)?;
    }
    let op = keys.op(command)?;
    super::codec::refusal(&op, &keys.options)?;
    Ok(Request {
        op,
        options: keys.options,
    })
}

impl Keys {
    /// The command with its required keys, or the first one missing.
    fn op(&mut self, command: Command) -> Result<Op, NgError> {
        let op = match command {
            Command::Ping => Op::Ping,
            Command::List => Op::List {
                limit: self.limit,
                after: self.after.take(),
            },
            Command::Statistics => Op::Statistics,
            Command::Offer => {
                let sdp = self.sdp.take().ok_or(NgError::NoSdp)?;
                Op::Offer(Offer {
                    sdp,
                    call_id: self.call_id.take().ok_or(NgError::NoCallId)?,
                    from_tag: self.from_tag.take().ok_or(NgError::NoFromTag)?,
                    to_tag: self.to_tag.take(),
                })
            }
            Command::Answer => {
                let sdp = self.sdp.take().ok_or(NgError::NoSdp)?;
                let call_id = self.call_id.take().ok_or(NgError::NoCallId)?;
                let from_tag = self.from_tag.take().ok_or(NgError::NoFromTag)?;
                Op::Answer(Answer {
                    sdp,
                    call_id,
                    from_tag,
                    to_tag: self.to_tag.take().ok_or(NgError::NoToTag)?,
                })
            }
            Command::Delete => Op::Delete(self.call()?),
            Command::Query => Op::Query(self.call()?),
            Command::StartRecording => Op::StartRecording(self.call()?),
            Command::StopRecording => Op::StopRecording(self.call()?),
            Command::BlockMedia => Op::BlockMedia(self.call()?),
            Command::UnblockMedia => Op::UnblockMedia(self.call()?),
            Command::UpdateTunnel => Op::UpdateTunnel(self.call()?),
            Command::StartBranch => Op::StartBranch(self.branch()?),
            Command::StopBranch => Op::StopBranch(self.branch()?),
        };
        Ok(op)
    }

    fn call(&mut self) -> Result<CallRef, NgError> {
        Ok(CallRef {
            call_id: self.call_id.take().ok_or(NgError::NoCallId)?,
            from_tag: self.from_tag.take(),
        })
    }

    fn branch(&mut self) -> Result<BranchRef, NgError> {
        let call = self.call()?;
        Ok(BranchRef {
            call,
            branch: self.branch.take().ok_or(NgError::NoBranch)?,
        })
    }
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

fn apply_key(keys: &mut Keys, key: &str, v: &Value) -> Result<(), NgError> {
    let o = &mut keys.options;
    match key {
        "call-id" => keys.call_id = Some(string(key, v)?),
        "from-tag" => keys.from_tag = Some(string(key, v)?),
        "to-tag" => keys.to_tag = Some(string(key, v)?),
        "via-branch" => o.via_branch = Some(string(key, v)?),
        "sdp" => keys.sdp = Some(string(key, v)?),
        "address-family" => {
            let f = string(key, v)?;
            if !f.eq_ignore_ascii_case("IP4") && !f.eq_ignore_ascii_case("IP6") {
                return Err(invalid(key, "IP4 or IP6"));
            }
            o.address_family = Some(f.to_ascii_uppercase());
        }
        "flags" => {
            for flag in strings(key, v)? {
                apply_flag(o, &flag)?;
            }
        }
        "replace" => {
            for item in strings(key, v)? {
                let item = normalize(&item);
                if !apply_replace(o, &item) {
                    super::codec::refused_replace(o, &item);
                }
            }
        }
        "codec" => codec(o, v)?,
        "ptime" => o.ptime = Some(number(key, v)?),
        "record-call" => o.record_call = record_call(key, v)?,
        "direction" => {
            let dirs = strings(key, v)?;
            if dirs.len() > 2 {
                return Err(invalid(key, "at most two interface names"));
            }
            o.direction = dirs;
        }
        "ice" => {
            let s = string(key, v)?;
            o.ice = Some(IceMode::from_name(&s).ok_or_else(|| invalid(key, ICE_EXPECTED))?);
        }
        "rtcp-mux" => {
            for item in strings(key, v)? {
                apply_rtcp_mux(o, &item);
            }
        }
        "transport-protocol" => {
            o.transport_protocol = Some(security::parse_transport(key, &string(key, v)?)?)
        }
        "dtls" => security::apply_dtls(&mut o.security, key, &string(key, v)?)?,
        "sdes" => {
            for item in strings(key, v)? {
                if !security::apply_sdes(&mut o.security, key, &item)? {
                    o.flags.unknown.push(format!("SDES-{item}"));
                }
            }
        }
        "received-from" => o.received_from = Some(received_from(key, v)?),
        "media-address" => o.media_address = Some(ip(key, &string(key, v)?)?),
        "delete-delay" => o.delete_delay = Some(number(key, v)?),
        "supports" => o.supports = strings(key, v)?,
        "limit" => keys.limit = Some(number(key, v)?),
        "after" => keys.after = Some(string(key, v)?),
        "tunnel" => o.tunnel = Some(tunnel(key, v)?),
        "branch" => keys.branch = Some(string(key, v)?),
        "destination" => {
            o.destination = Some(
                string(key, v)?
                    .trim()
                    .parse()
                    .map_err(|_| invalid(key, "an address:port"))?,
            )
        }
        "command" => {}
        _ => super::codec::other_key(o, key, v),
    }
    Ok(())
}

/// The `codec` dictionary: each known entry a list of codec names.
fn codec(o: &mut Options, v: &Value) -> Result<(), NgError> {
    const EXPECTED: &str = "a dictionary of codec lists";
    let map = v.as_dict().ok_or_else(|| invalid("codec", EXPECTED))?;
    for (name, list) in map {
        let name = std::str::from_utf8(name).map_err(|_| invalid("codec", EXPECTED))?;
        let key = format!("codec.{name}");
        if let Some(dst) = o.codec.list(name) {
            dst.extend(strings(&key, list)?);
        }
    }
    Ok(())
}

/// `record call`: `yes`/`on` or `no`/`off`; rtpengine logs anything else
/// and carries on, and so does rtpmesh (with `None`).
fn record_call(key: &str, v: &Value) -> Result<Option<bool>, NgError> {
    let s = string(key, v)?;
    let s = s.trim();
    Ok(
        if s.eq_ignore_ascii_case("yes") || s.eq_ignore_ascii_case("on") {
            Some(true)
        } else if s.eq_ignore_ascii_case("no") || s.eq_ignore_ascii_case("off") {
            Some(false)
        } else {
            None
        },
    )
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
fn apply_replace(o: &mut Options, item: &str) -> bool {
    match item {
        "origin" => o.replace.origin = true,
        "session-connection" => o.replace.session_connection = true,
        _ => return false,
    }
    true
}

/// Returns whether `item` was a known `rtcp-mux` entry. Unknown ones are
/// ignored, as rtpengine does.
fn apply_rtcp_mux(o: &mut Options, item: &str) -> bool {
    let m = &mut o.rtcp_mux;
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

/// `codec strip PCMA` as `codec-strip-PCMA`: the separators of the first
/// two words normalized, the codec left as written (`opus/48000/2`,
/// `G.722.1`). Only ' ' and '-', as rtpengine (`codec_strip_PCMA` is
/// ignored there).
fn normalize_prefix(flag: &str) -> String {
    let mut parts = flag.splitn(3, [' ', '-']);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c)) => format!("{a}-{b}-{c}"),
        _ => flag.to_owned(),
    }
}

/// One entry of the `flags` list. Besides rtpengine's own switches this
/// accepts the strings Kamailio's `rtpengine_offer("…")` takes. Kamailio
/// normally translates those into dict keys before sending, and rtpengine
/// 10.5 ignores them inside `flags` (observed), but a hand-written client may
/// send them and honouring them is harmless.
fn apply_flag(o: &mut Options, raw: &str) -> Result<(), NgError> {
    // Only the name is normalized: values are addresses and interface
    // names, where '_' is significant.
    let raw_trimmed = raw.trim();
    if let Some((name, value)) = raw_trimmed.split_once('=') {
        let name = normalize(name.trim()).to_ascii_lowercase();
        let value = value.trim();
        let key = || format!("flags: {name}");
        match name.as_str() {
            "ice" => {
                o.ice =
                    Some(IceMode::from_name(value).ok_or_else(|| invalid(&key(), ICE_EXPECTED))?);
            }
            "media-address" => o.media_address = Some(ip(&key(), value)?),
            "direction" => {
                if o.direction.len() >= 2 {
                    return Err(invalid(&key(), "at most two interface names"));
                }
                o.direction.push(value.to_owned());
            }
            "delete-delay" => {
                o.delete_delay = Some(number(&key(), &Value::from(value))?);
            }
            "transport-protocol" => {
                o.transport_protocol = Some(security::parse_transport(&key(), value)?)
            }
            "dtls" => security::apply_dtls(&mut o.security, &key(), value)?,
            _ => o.flags.unknown.push(raw.to_owned()),
        }
        return Ok(());
    }

    let flag = normalize(raw_trimmed);
    let lower = flag.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("replace-") {
        if apply_replace(o, rest) {
            return Ok(());
        }
    }
    if let Some(rest) = lower.strip_prefix("rtcp-mux-") {
        if apply_rtcp_mux(o, rest) {
            return Ok(());
        }
    }
    if security::apply_flag(&mut o.security, &mut o.transport_protocol, raw_trimmed)? {
        return Ok(());
    }
    // Codec names keep their case in the flag; matching ignores it anyway.
    if o.codec.apply_flag(&normalize_prefix(raw_trimmed)) {
        return Ok(());
    }
    if lower == "record-call" {
        o.record_call = Some(true);
        return Ok(());
    }
    if super::codec::refused_flag(o, raw, &lower) || super::codec::prefixed_flag(o, raw, &lower) {
        return Ok(());
    }
    let f = &mut o.flags;
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
        "strip-extmap" => f.strip_extmap = true,
        "single-codec" => o.codec.single_codec = true,
        _ => f.unknown.push(raw.to_owned()),
    }
    Ok(())
}
