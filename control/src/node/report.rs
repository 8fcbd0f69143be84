//! The `query` (and `delete`) reply in rtpengine's shape.

use std::net::{IpAddr, SocketAddr};

use super::Now;
use crate::call::Call;
use rtpmesh_ng::bencode::{self, dict, Value};

/// The `query` (and `delete`) reply in rtpengine's shape.
pub(super) fn call_report(call: &Call, now: Now) -> Value {
    // rtpengine reports the creation time as "last packet" before any.
    let unix_of = |ms: u64| -> Value {
        if ms == 0 {
            call.created.into()
        } else {
            now.unix
                .saturating_sub(now.ms.saturating_sub(ms) / 1000)
                .into()
        }
    };
    let mut tags = bencode::Dict::new();
    for (l, leg) in call.legs.iter().enumerate() {
        if leg.tag.is_empty() && leg.streams.is_empty() {
            continue;
        }
        let medias: Vec<Value> = leg
            .streams
            .iter()
            .map(|s| {
                let stream = |sock: &crate::call::Socket, rtcp: bool| {
                    let c = sock.counters.snapshot();
                    let advertised = s.remote.map(|r| if rtcp { r.rtcp } else { r.rtp });
                    let endpoint = sock.latched.or(advertised);
                    let mut flags = vec![Value::from(if rtcp { "RTCP" } else { "RTP" })];
                    if endpoint.is_some() {
                        flags.push("filled".into());
                    }
                    if sock.latched.is_some() {
                        flags.push("confirmed".into());
                    }
                    let (packets, bytes) = if rtcp && s.mux {
                        (0, 0)
                    } else if rtcp {
                        (c.rtcp_packets, c.rtcp_bytes)
                    } else {
                        (c.rtp_packets, c.rtp_bytes)
                    };
                    dict([
                        ("local port", sock.port.into()),
                        ("local address", s.local.ip.to_string().into()),
                        ("family", family(s.local.ip).into()),
                        ("endpoint", endpoint_value(endpoint)),
                        ("advertised endpoint", endpoint_value(advertised)),
                        ("last packet", unix_of(c.last_packet_ms)),
                        ("flags", Value::List(flags)),
                        (
                            "stats",
                            dict([
                                ("packets", packets.into()),
                                ("bytes", bytes.into()),
                                ("errors", c.errors().into()),
                            ]),
                        ),
                        ("SSRC", u64::from(c.ssrc).into()),
                        ("packets lost", c.lost.into()),
                        ("jitter", u64::from(c.jitter).into()),
                        ("kernel drops", c.kernel_drops.into()),
                        ("foreign source packets", c.foreign.into()),
                    ])
                };
                let mut mflags: Vec<Value> = Vec::new();
                if s.mux {
                    mflags.push("rtcp-mux".into());
                }
                dict([
                    ("index", (s.index as u64).into()),
                    ("type", s.kind.as_str().into()),
                    ("protocol", s.protocol.as_str().into()),
                    (
                        "streams",
                        Value::List(vec![
                            stream(&s.local.rtp, false),
                            stream(&s.local.rtcp, true),
                        ]),
                    ),
                    ("flags", Value::List(mflags)),
                ])
            })
            .collect();
        let other = &call.legs[1 - l].tag;
        tags.insert(
            leg.tag.as_bytes().to_vec(),
            dict([
                ("tag", leg.tag.as_str().into()),
                ("created", leg.created.into()),
                ("in dialogue with", other.as_str().into()),
                ("medias", Value::List(medias)),
            ]),
        );
    }
    let t = call.totals();
    let part = |p: u64, b: u64, e: u64| {
        dict([
            ("packets", p.into()),
            ("bytes", b.into()),
            ("errors", e.into()),
        ])
    };
    dict([
        ("result", "ok".into()),
        ("created", call.created.into()),
        ("last signal", call.last_signal.into()),
        ("tags", Value::Dict(tags)),
        (
            "totals",
            dict([
                ("RTP", part(t.rtp_packets, t.rtp_bytes, t.errors)),
                ("RTCP", part(t.rtcp_packets, t.rtcp_bytes, 0)),
            ]),
        ),
    ])
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn endpoint_value(a: Option<SocketAddr>) -> Value {
    match a {
        Some(a) => dict([
            ("family", family(a.ip()).into()),
            ("address", a.ip().to_string().into()),
            ("port", a.port().into()),
        ]),
        None => dict([]),
    }
}
