//! The `query` and `delete` reply: a call's state and counters, keyed and
//! valued exactly as rtpengine reports them.

use std::net::{IpAddr, SocketAddr};

use crate::bencode::{dict, Dict, Value};

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
