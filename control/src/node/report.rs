//! The `query` (and `delete`) reply: a call's state and counters, in the
//! typed shape [`CallReport`] encodes as rtpengine does.

use super::Now;
use crate::call::{Call, Socket, Stream};
use rtpmesh_ng::ng::{CallReport, MediaReport, PacketStats, StreamReport, TagReport};

/// The report of `call` as of `now`.
pub(super) fn call_report(call: &Call, now: Now) -> CallReport {
    let tags = call
        .legs
        .iter()
        .enumerate()
        .filter(|(_, leg)| !leg.tag.is_empty() || !leg.streams.is_empty())
        .map(|(l, leg)| TagReport {
            tag: leg.tag.clone(),
            created: leg.created,
            in_dialogue_with: call.legs[1 - l].tag.clone(),
            medias: leg.streams.iter().map(|s| media(call, s, now)).collect(),
        })
        .collect();
    let t = call.totals();
    CallReport {
        created: call.created,
        last_signal: call.last_signal,
        tags,
        rtp: PacketStats {
            packets: t.rtp_packets,
            bytes: t.rtp_bytes,
            errors: t.errors,
        },
        rtcp: PacketStats {
            packets: t.rtcp_packets,
            bytes: t.rtcp_bytes,
            errors: 0,
        },
    }
}

fn media(call: &Call, s: &Stream, now: Now) -> MediaReport {
    MediaReport {
        index: s.index as u64,
        kind: s.kind.clone(),
        protocol: s.protocol.clone(),
        rtp: socket(call, s, &s.local.rtp, false, now),
        rtcp: socket(call, s, &s.local.rtcp, true, now),
        rtcp_mux: s.mux,
    }
}

fn socket(call: &Call, s: &Stream, sock: &Socket, rtcp: bool, now: Now) -> StreamReport {
    let c = sock.counters.snapshot();
    let advertised = s.remote.map(|r| if rtcp { r.rtcp } else { r.rtp });
    // Muxed RTCP arrives on the RTP socket and is counted there.
    let (packets, bytes) = if rtcp && s.mux {
        (0, 0)
    } else if rtcp {
        (c.rtcp_packets, c.rtcp_bytes)
    } else {
        (c.rtp_packets, c.rtp_bytes)
    };
    StreamReport {
        local_port: sock.port,
        local_address: s.local.ip,
        endpoint: sock.latched.or(advertised),
        advertised,
        last_packet: unix_of(call, c.last_packet_ms, now),
        confirmed: sock.latched.is_some(),
        stats: PacketStats {
            packets,
            bytes,
            errors: c.errors(),
        },
        ssrc: c.ssrc,
        packets_lost: c.lost,
        jitter: c.jitter,
        kernel_drops: c.kernel_drops,
        foreign_source_packets: c.foreign,
    }
}

/// Unix seconds of a media-clock instant; rtpengine reports the creation
/// time as "last packet" before any.
fn unix_of(call: &Call, ms: u64, now: Now) -> u64 {
    if ms == 0 {
        call.created
    } else {
        now.unix.saturating_sub(now.ms.saturating_sub(ms) / 1000)
    }
}
