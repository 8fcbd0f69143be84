//! Offer/answer: how an SDP from one party changes the call, and the SDP
//! the other party gets. Sans-IO: sockets come from the [`MediaPlane`].

use std::net::{IpAddr, SocketAddr};

use rtpmesh_flow::flow::Latching;

use super::security::{self, Advert, NodeSecurity};
use super::Now;
use crate::call::{Call, Remote, Stream};
use crate::plane::{MediaPlane, PlaneError};
use rtpmesh_ng::ng::{reason, Failure, IceMode, Options};
use rtpmesh_ng::sdp;

/// The address a party sends from/receives at for one m= line.
fn remote_of(m: &sdp::Media, opts: &Options) -> Option<Remote> {
    let conn = m.connection.as_ref()?;
    let mut ip = conn.address;
    if ip.is_unspecified() || m.port == 0 {
        return None;
    }
    if opts.flags.sip_source_address {
        if let Some(src) = opts.received_from {
            ip = src;
        }
    }
    let rtcp_port = m
        .rtcp
        .as_ref()
        .map(|r| r.port)
        .unwrap_or(m.port.wrapping_add(1));
    let rtcp_ip = m.rtcp.as_ref().and_then(|r| r.address).unwrap_or(ip);
    Some(Remote {
        rtp: SocketAddr::new(ip, m.port),
        rtcp: SocketAddr::new(rtcp_ip, rtcp_port),
    })
}

fn first_clock_rate(m: &sdp::Media) -> u32 {
    m.formats
        .first()
        .and_then(|f| f.parse::<u8>().ok())
        .and_then(|pt| m.clock_rate(pt))
        .unwrap_or(8000)
}

fn latching_of(opts: &Options, current: Latching) -> Latching {
    if opts.flags.asymmetric {
        Latching::Asymmetric
    } else if opts.flags.strict_source {
        Latching::Strict
    } else {
        current
    }
}

/// Records an offer or answer: signalling time (the media timeout counts
/// from it) and the source address policy its flags ask for.
fn signalled(call: &mut Call, opts: &Options, now: Now) {
    call.last_signal = now.unix;
    call.last_signal_ms = now.ms;
    call.latching = latching_of(opts, call.latching);
}

/// What a party's own SDP says about the stream facing it: where it
/// receives, and the clock rate of what it sends.
fn learn(s: &mut Stream, m: &sdp::Media, opts: &Options) {
    s.remote = remote_of(m, opts);
    s.advertised = m
        .connection
        .as_ref()
        .map(|c| SocketAddr::new(c.address, m.port));
    s.clock_rate = first_clock_rate(m);
}

/// Applies an offer from leg `o` to the call and returns the SDP for the
/// answerer (the other leg), which names the sockets facing the answerer.
pub(super) fn build_offer(
    call: &mut Call,
    o: usize,
    opts: &Options,
    parsed: &sdp::SessionDescription,
    now: Now,
    plane: &mut dyn MediaPlane,
    node_sec: &mut NodeSecurity,
) -> Result<String, Failure> {
    let a = 1 - o;
    signalled(call, opts, now);
    let want_v6 = opts
        .address_family
        .as_deref()
        .map(|f| f.eq_ignore_ascii_case("IP6"));
    let mut opened = Vec::new();
    let result = (|| {
        for (i, m) in parsed.media().iter().enumerate() {
            let offerer_v6 = m
                .connection
                .as_ref()
                .map(|c| c.address.is_ipv6())
                .unwrap_or(false);
            for (leg, v6) in [(o, offerer_v6), (a, want_v6.unwrap_or(offerer_v6))] {
                if call.legs[leg].streams.len() <= i {
                    open_stream(call, leg, i, m, v6, plane)?;
                    opened.push((leg, i));
                }
            }
            apply_offered(call, o, a, i, m, opts);
            let (lo, la) = two_legs(call, o);
            let msec = parsed.security(i);
            security::offered(
                &mut lo.streams[i],
                &mut la.streams[i],
                m,
                &msec,
                opts,
                node_sec,
            )?;
        }
        Ok(())
    })();
    if let Err(f) = result {
        close_opened(call, opened, plane);
        return Err(f);
    }
    rewrite_for(call, a, opts, parsed, MuxAdvert::Offer, node_sec)
}

/// Legs `o` and the other one, both mutable.
fn two_legs(call: &mut Call, o: usize) -> (&mut crate::call::Leg, &mut crate::call::Leg) {
    let [l0, l1] = &mut call.legs;
    if o == 0 {
        (l0, l1)
    } else {
        (l1, l0)
    }
}

/// Opens the local end of stream `i` of `leg` (socketless for a tunnel leg)
/// and appends the stream, described by the offered `m`.
fn open_stream(
    call: &mut Call,
    leg: usize,
    i: usize,
    m: &sdp::Media,
    v6: bool,
    plane: &mut dyn MediaPlane,
) -> Result<(), Failure> {
    let local = if call.legs[leg].tunnel.is_some() {
        plane
            .open_socketless(call.worker)
            .map_err(|e| Failure::Error(e.to_string()))?
    } else {
        plane.open(call.worker, v6).map_err(|e| match e {
            PlaneError::Exhausted => Failure::from(reason::NO_PORTS),
            _ => Failure::Error(e.to_string()),
        })?
    };
    call.legs[leg].streams.push(Stream {
        index: i + 1,
        kind: m.kind.clone(),
        protocol: m.protocol.clone(),
        local,
        remote: None,
        advertised: None,
        mux_offered: false,
        mux: false,
        mux_accept: false,
        clock_rate: 8000,
        ptime: None,
        security: Default::default(),
    });
    Ok(())
}

/// Records offered section `m` on stream `i` of the offerer `o` and of
/// the answerer `a` (what the answerer will be offered).
fn apply_offered(call: &mut Call, o: usize, a: usize, i: usize, m: &sdp::Media, opts: &Options) {
    let s = &mut call.legs[o].streams[i];
    s.kind = m.kind.clone();
    s.protocol = m.protocol.clone();
    learn(s, m, opts);
    s.mux_offered = m.rtcp_mux;
    // A WebRTC party (UDP/TLS) cannot do without mux: the relay demuxes for
    // a plain side that refuses it (rtpengine needs `rtcp-mux-demux` here).
    s.mux_accept = opts.rtcp_mux.demux
        || opts.rtcp_mux.accept
        || (m.rtcp_mux && m.protocol.to_ascii_uppercase().starts_with("UDP/TLS/"));
    s.mux = m.rtcp_mux && s.mux;
    s.ptime = m.ptime;
    let offer_mux =
        (m.rtcp_mux && !opts.rtcp_mux.demux) || opts.rtcp_mux.offer || opts.rtcp_mux.require;
    let t = &mut call.legs[a].streams[i];
    t.kind = m.kind.clone();
    t.protocol = opts
        .transport_protocol
        .clone()
        .unwrap_or_else(|| m.protocol.clone());
    t.mux_offered = offer_mux;
}

/// Gives back what a failed offer opened (`opened`: leg and stream index,
/// in opening order); streams that existed stay.
fn close_opened(call: &mut Call, opened: Vec<(usize, usize)>, plane: &mut dyn MediaPlane) {
    let mut locals = Vec::new();
    for (leg, i) in opened.into_iter().rev() {
        if call.legs[leg].streams.len() == i + 1 {
            locals.push(call.legs[leg].streams.pop().expect("len checked").local);
        }
    }
    plane.close(call.worker, locals);
}

/// Applies the answer from leg `a` and returns the SDP for the offerer `o`.
pub(super) fn build_answer(
    call: &mut Call,
    o: usize,
    a: usize,
    opts: &Options,
    parsed: &sdp::SessionDescription,
    now: Now,
    node_sec: &mut NodeSecurity,
) -> Result<String, Failure> {
    if parsed.media().len() > call.legs[a].streams.len() {
        return Err(Failure::from(reason::ANSWER_MEDIA_MISMATCH));
    }
    // Security first: an answer that cannot be used changes nothing.
    let mut secured = Vec::new();
    for (i, m) in parsed.media().iter().enumerate() {
        let (os, as_) = (&call.legs[o].streams[i], &call.legs[a].streams[i]);
        let msec = parsed.security(i);
        secured.push(security::answered(os, as_, m, &msec, opts, node_sec)?);
    }
    for (i, (b, f)) in secured.into_iter().enumerate() {
        call.legs[a].streams[i].security = b;
        call.legs[o].streams[i].security = f;
    }
    signalled(call, opts, now);
    for (i, m) in parsed.media().iter().enumerate() {
        let s = &mut call.legs[a].streams[i];
        learn(s, m, opts);
        s.mux = m.rtcp_mux && s.mux_offered;
        let answerer_mux = s.mux;
        let f = &mut call.legs[o].streams[i];
        f.mux = f.mux_offered
            && (answerer_mux || f.mux_accept || opts.rtcp_mux.demux || opts.rtcp_mux.accept);
    }
    rewrite_for(call, o, opts, parsed, MuxAdvert::Answer, node_sec)
}

/// How the SDP being written treats rtcp-mux.
#[derive(Clone, Copy)]
enum MuxAdvert {
    /// An offer: propose mux where the stream was offered it, RTCP port still
    /// `a=rtcp:RTP+1` (the answerer may refuse mux).
    Offer,
    /// An answer: where mux was agreed, `a=rtcp:` names the RTP port.
    Answer,
}

/// Rewrites `parsed` to name leg `to`'s local sockets (the ones the
/// receiver of this SDP will send to).
fn rewrite_for(
    call: &Call,
    to: usize,
    opts: &Options,
    parsed: &sdp::SessionDescription,
    mux: MuxAdvert,
    node_sec: &NodeSecurity,
) -> Result<String, Failure> {
    let media = parsed
        .media()
        .iter()
        .zip(&call.legs[to].streams)
        .enumerate()
        .map(|(i, (m, s))| {
            let address: IpAddr = match opts.media_address {
                Some(a) if a.is_ipv4() == s.local.ip.is_ipv4() => a,
                _ => s.local.advertised,
            };
            let (rtcp_mux, rtcp_port) = match mux {
                // rtpengine: `require` offers mux only, RTCP on the RTP port.
                MuxAdvert::Offer if opts.rtcp_mux.require => (true, s.local.rtp.port),
                MuxAdvert::Offer => (s.mux_offered, s.local.rtcp.port),
                MuxAdvert::Answer if s.mux => (true, s.local.rtp.port),
                MuxAdvert::Answer => (false, s.local.rtcp.port),
            };
            // rtpengine copies the offer's ptime into an answer without one;
            // `s` is the offerer's stream here, which kept the offer's ptime.
            let ptime = match mux {
                MuxAdvert::Answer if m.ptime.is_none() => s.ptime,
                _ => None,
            };
            let advert = match mux {
                MuxAdvert::Offer => Advert::Offer,
                MuxAdvert::Answer => Advert::Answer,
            };
            let eoc = parsed.security(i).end_of_candidates;
            let relay = opts.ice == Some(IceMode::ForceRelay);
            let port = s.local.rtp.port;
            sdp::MediaRewrite {
                address,
                port,
                rtcp_port: (!opts.flags.no_rtcp_attribute).then_some(rtcp_port),
                rtcp_mux,
                strip_ice: true,
                // The offer's protocol, or `transport-protocol`'s, for the
                // answerer; the offerer's own for the offerer.
                protocol: Some(s.protocol.clone()),
                direction: None,
                ptime,
                // An answer carries the offer's a=mid, or none (rtpengine).
                mid: match mux {
                    MuxAdvert::Answer => sdp::Mid::Replace(s.security.peer.mid.clone()),
                    MuxAdvert::Offer if opts.security.generate_mid => {
                        sdp::Mid::IfNone((i + 1).to_string())
                    }
                    MuxAdvert::Offer => sdp::Mid::Keep,
                },
                security: security::security_lines(&s.security, &advert, node_sec),
                ice: security::ice_lines(&s.security, address, port, rtcp_port, eoc, relay),
            }
        })
        .collect();
    let origin = opts
        .replace
        .origin
        .then(|| call.legs[to].streams.first().map(|s| s.local.advertised))
        .flatten();
    let rw = sdp::Rewrite {
        origin,
        session_connection: opts.replace.session_connection,
        media,
    };
    sdp::rewrite(parsed, &rw).map_err(|e| Failure::Error(e.to_string()))
}
