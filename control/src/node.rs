//! The control core of a media node: ng requests in, replies and media
//! plane changes out.
//!
//! # Run loop
//! The driver (see `server`) owns the ng socket and the clock. For every
//! datagram it calls [`Node::handle`] and sends back the reply, if any; for
//! every worker event it calls [`Node::on_event`]; about once a second it
//! calls [`Node::tick`], which removes timed-out and delayed-deleted calls.
//! The node never blocks and never touches a socket itself: sockets come
//! from the [`MediaPlane`] it is handed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rtpmesh_relay::flow::{FlowId, Latching};

use crate::bencode::{self, dict, Value};
use crate::call::{Call, Leg, Remote, Stream, Totals};
use crate::ng::{self, reason, Command, Request};
use crate::plane::{MediaPlane, PlaneError};
use crate::sdp;

/// The two clocks a node needs: the media clock (monotonic ms, shared with
/// the workers' counters) and wall-clock seconds for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Media clock milliseconds (`rtpmesh_relay::counters::now_ms`).
    pub ms: u64,
    /// Unix seconds.
    pub unix: u64,
}

/// Settings of the control core.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Default `delete-delay`.
    pub delete_delay: Duration,
    /// Calls with no media and no signalling for this long are removed.
    pub media_timeout: Duration,
    /// Most concurrent calls (0: unlimited).
    pub max_sessions: usize,
    /// How long a cookie's reply is kept.
    pub cookie_ttl: Duration,
}

/// Why a call went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// `delete` (after its delay).
    Deleted,
    /// No media for the timeout.
    Timeout,
}

/// Node-wide counters for `statistics`.
#[derive(Debug, Clone, Default)]
struct NodeStats {
    started_unix: u64,
    managed: u64,
    rejected: u64,
    timeouts: u64,
    deleted: u64,
    /// Totals of removed calls, so node totals do not shrink.
    closed: Totals,
}

/// A command that failed, with the text rtpengine would send.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    Error(String),
    LoadLimit,
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Self::Error(s.to_owned())
    }
}

/// The control core.
pub struct Node {
    config: NodeConfig,
    calls: HashMap<String, Call>,
    flows: HashMap<FlowId, String>,
    cookies: HashMap<Vec<u8>, (u64, Vec<u8>)>,
    stats: NodeStats,
}

/// Most cached replies; beyond it the oldest half goes (a flood of distinct
/// cookies must not grow memory without bound).
const COOKIE_CAP: usize = 100_000;

impl Node {
    /// A node with no calls.
    pub fn new(config: NodeConfig, now: Now) -> Self {
        Self {
            config,
            calls: HashMap::new(),
            flows: HashMap::new(),
            cookies: HashMap::new(),
            stats: NodeStats {
                started_unix: now.unix,
                ..NodeStats::default()
            },
        }
    }

    /// Number of calls (including those waiting out a delete delay).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// A call by id.
    pub fn call(&self, id: &str) -> Option<&Call> {
        self.calls.get(id)
    }

    /// Handles one ng datagram; returns the reply datagram, or `None` when
    /// there is nothing to answer (no cookie to answer with).
    pub fn handle(
        &mut self,
        datagram: &[u8],
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Option<Vec<u8>> {
        let (cookie, body) = match ng::split_datagram(datagram) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "ng datagram without cookie ignored");
                return None;
            }
        };
        if let Some((_, cached)) = self.cookies.get(cookie) {
            tracing::debug!(cookie = %String::from_utf8_lossy(cookie), "retransmission: cached reply");
            return Some(cached.clone());
        }
        let reply = match ng::decode_body(body) {
            Err(e) => {
                tracing::warn!(error = %e, "malformed ng message");
                ng::error(&e.reason())
            }
            Ok(v) => match ng::parse_request(&v) {
                Err(e) => {
                    tracing::warn!(error = %e, "bad ng request");
                    ng::error(&e.reason())
                }
                Ok(req) => self.execute(&req, now, plane),
            },
        };
        let out = ng::encode_reply(cookie, &reply);
        if self.cookies.len() >= COOKIE_CAP {
            self.expire_cookies(now, true);
        }
        self.cookies.insert(cookie.to_vec(), (now.ms, out.clone()));
        Some(out)
    }

    fn execute(&mut self, req: &Request, now: Now, plane: &mut dyn MediaPlane) -> Value {
        let result = match req.command {
            Command::Ping => Ok(dict([("result", "pong".into())])),
            Command::Offer => self.offer(req, now, plane),
            Command::Answer => self.answer(req, now, plane),
            Command::Delete => self.delete(req, now, plane),
            Command::Query => self.query(req, now),
            Command::List => Ok(self.list(req)),
            Command::Statistics => Ok(self.statistics(now)),
        };
        match result {
            Ok(v) => v,
            Err(Failure::Error(reason)) => {
                tracing::info!(command = req.command.name(), call = ?req.call_id, %reason, "ng error");
                ng::error(&reason)
            }
            Err(Failure::LoadLimit) => {
                self.stats.rejected += 1;
                if req.supports.iter().any(|s| s == "load limit") {
                    dict([
                        ("result", "load limit".into()),
                        ("message", reason::LOAD_LIMIT.into()),
                    ])
                } else {
                    ng::error(reason::LOAD_LIMIT)
                }
            }
        }
    }

    fn offer(
        &mut self,
        req: &Request,
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Result<Value, Failure> {
        let text = req.sdp.as_deref().ok_or(Failure::from(reason::NO_SDP))?;
        let call_id = req
            .call_id
            .clone()
            .ok_or(Failure::from(reason::NO_CALL_ID))?;
        let from_tag = req
            .from_tag
            .clone()
            .ok_or(Failure::from(reason::NO_FROM_TAG))?;
        let parsed = sdp::parse(text).map_err(|e| {
            tracing::info!(error = %e, call = %call_id, "offer SDP rejected");
            Failure::from(reason::FAILED_TO_PARSE_SDP)
        })?;
        let is_new = !self.calls.contains_key(&call_id);
        if is_new {
            let active = self
                .calls
                .values()
                .filter(|c| c.delete_at_ms.is_none())
                .count();
            if self.config.max_sessions > 0 && active >= self.config.max_sessions {
                return Err(Failure::LoadLimit);
            }
            let worker = plane.pick_worker();
            let leg = |tag: String| Leg {
                tag,
                created: now.unix,
                streams: Vec::new(),
            };
            self.calls.insert(
                call_id.clone(),
                Call {
                    id: call_id.clone(),
                    created: now.unix,
                    last_signal: now.unix,
                    last_signal_ms: now.ms,
                    worker,
                    legs: [
                        leg(from_tag.clone()),
                        leg(req.to_tag.clone().unwrap_or_default()),
                    ],
                    latching: Latching::Learn,
                    delete_at_ms: None,
                },
            );
            self.stats.managed += 1;
        }
        let call = self.calls.get_mut(&call_id).expect("inserted above");
        let offerer = call.leg_index(&from_tag).unwrap_or(0);
        let answerer = 1 - offerer;
        match build_offer(call, offerer, answerer, req, &parsed, now, plane) {
            Ok(sdp) => {
                for l in call.locals() {
                    self.flows.insert(l.rtp.flow, call_id.clone());
                    self.flows.insert(l.rtcp.flow, call_id.clone());
                }
                plane.install(call.worker, call.flow_specs());
                Ok(dict([("result", "ok".into()), ("sdp", sdp.into())]))
            }
            Err(f) => {
                if is_new {
                    self.stats.managed -= 1;
                    self.remove(&call_id, plane);
                }
                Err(f)
            }
        }
    }

    fn answer(
        &mut self,
        req: &Request,
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Result<Value, Failure> {
        let text = req.sdp.as_deref().ok_or(Failure::from(reason::NO_SDP))?;
        let call_id = req
            .call_id
            .as_deref()
            .ok_or(Failure::from(reason::NO_CALL_ID))?;
        let from_tag = req
            .from_tag
            .as_deref()
            .ok_or(Failure::from(reason::NO_FROM_TAG))?;
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let parsed = sdp::parse(text).map_err(|_| Failure::from(reason::FAILED_TO_PARSE_SDP))?;
        let offerer = call.leg_index(from_tag).unwrap_or(0);
        let answerer = 1 - offerer;
        if let Some(to) = &req.to_tag {
            if call.legs[answerer].tag.is_empty() {
                call.legs[answerer].tag = to.clone();
            }
        }
        let sdp = build_answer(call, offerer, answerer, req, &parsed, now)?;
        plane.install(call.worker, call.flow_specs());
        Ok(dict([("result", "ok".into()), ("sdp", sdp.into())]))
    }

    fn delete(
        &mut self,
        req: &Request,
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Result<Value, Failure> {
        let call_id = req
            .call_id
            .as_deref()
            .ok_or(Failure::from(reason::NO_CALL_ID))?;
        let Some(call) = self.calls.get_mut(call_id) else {
            if req.flags.fatal {
                return Err(reason::UNKNOWN_CALL_ID.into());
            }
            return Ok(dict([
                ("result", "ok".into()),
                ("warning", reason::DELETE_NOT_FOUND.into()),
            ]));
        };
        let delay = req
            .delete_delay
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(self.config.delete_delay);
        let report = call_report(call, now);
        if delay.is_zero() {
            self.stats.deleted += 1;
            self.remove(call_id, plane);
        } else if call.delete_at_ms.is_none() {
            call.delete_at_ms = Some(now.ms + delay.as_millis() as u64);
        }
        Ok(report)
    }

    fn query(&mut self, req: &Request, now: Now) -> Result<Value, Failure> {
        let call_id = req
            .call_id
            .as_deref()
            .ok_or(Failure::from(reason::NO_CALL_ID))?;
        let call = self
            .calls
            .get(call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        Ok(call_report(call, now))
    }

    fn list(&self, req: &Request) -> Value {
        let limit = req.limit.map(|l| l as usize).unwrap_or(32);
        let mut ids: Vec<&String> = self.calls.keys().collect();
        ids.sort();
        let calls: Vec<Value> = ids
            .into_iter()
            .take(limit)
            .map(|s| s.as_str().into())
            .collect();
        dict([("result", "ok".into()), ("calls", Value::List(calls))])
    }

    fn statistics(&self, now: Now) -> Value {
        let mut totals = self.stats.closed;
        for c in self.calls.values() {
            let t = c.totals();
            totals.rtp_packets += t.rtp_packets + t.rtcp_packets;
            totals.rtp_bytes += t.rtp_bytes + t.rtcp_bytes;
            totals.errors += t.errors;
        }
        let current = dict([
            ("sessionsown", (self.calls.len() as u64).into()),
            ("sessionsforeign", 0u64.into()),
            ("sessionstotal", (self.calls.len() as u64).into()),
            ("transcodedmedia", 0u64.into()),
        ]);
        let total = dict([
            (
                "uptime",
                now.unix.saturating_sub(self.stats.started_unix).into(),
            ),
            ("managedsessions", self.stats.managed.into()),
            ("rejectedsessions", self.stats.rejected.into()),
            ("timeoutsessions", self.stats.timeouts.into()),
            ("regularterminatedsessions", self.stats.deleted.into()),
            ("packetsrelayed", totals.rtp_packets.into()),
            ("bytesrelayed", totals.rtp_bytes.into()),
            ("packetserrors", totals.errors.into()),
        ]);
        dict([
            ("result", "ok".into()),
            (
                "statistics",
                dict([("currentstatistics", current), ("totalstatistics", total)]),
            ),
        ])
    }

    /// Applies a worker's report.
    pub fn on_event(&mut self, ev: &rtpmesh_relay::worker::Event) {
        if let rtpmesh_relay::worker::Event::Latched { flow, addr } = ev {
            if let Some(call) = self.flows.get(flow).and_then(|id| self.calls.get_mut(id)) {
                call.on_latched(*flow, *addr);
            }
        }
    }

    /// Removes calls whose delete delay ran out or that saw no media for the
    /// timeout, and forgets old cookies. Returns what it removed.
    pub fn tick(&mut self, now: Now, plane: &mut dyn MediaPlane) -> Vec<(String, Removal)> {
        let timeout = self.config.media_timeout.as_millis() as u64;
        let mut gone = Vec::new();
        for (id, c) in &self.calls {
            if c.delete_at_ms.is_some_and(|t| t <= now.ms) {
                gone.push((id.clone(), Removal::Deleted));
            } else if now
                .ms
                .saturating_sub(c.last_media_ms().max(c.last_signal_ms))
                >= timeout
            {
                gone.push((id.clone(), Removal::Timeout));
            }
        }
        for (id, why) in &gone {
            match why {
                Removal::Deleted => self.stats.deleted += 1,
                Removal::Timeout => {
                    self.stats.timeouts += 1;
                    let t = self.calls[id].totals();
                    tracing::info!(call = %id, rtp = t.rtp_packets, rtcp = t.rtcp_packets, "call timed out: no media");
                }
            }
            self.remove(id, plane);
        }
        self.expire_cookies(now, false);
        gone
    }

    fn expire_cookies(&mut self, now: Now, halve: bool) {
        let ttl = self.config.cookie_ttl.as_millis() as u64;
        let mut cutoff = now.ms.saturating_sub(ttl);
        if halve {
            let mut ages: Vec<u64> = self.cookies.values().map(|(t, _)| *t).collect();
            ages.sort_unstable();
            cutoff = cutoff.max(ages.get(ages.len() / 2).copied().unwrap_or(0));
        }
        self.cookies.retain(|_, (t, _)| *t > cutoff);
    }

    fn remove(&mut self, id: &str, plane: &mut dyn MediaPlane) {
        if let Some(call) = self.calls.remove(id) {
            let t = call.totals();
            self.stats.closed.rtp_packets += t.rtp_packets + t.rtcp_packets;
            self.stats.closed.rtp_bytes += t.rtp_bytes + t.rtcp_bytes;
            self.stats.closed.errors += t.errors;
            let locals: Vec<_> = call.locals().cloned().collect();
            for l in &locals {
                self.flows.remove(&l.rtp.flow);
                self.flows.remove(&l.rtcp.flow);
            }
            plane.close(call.worker, locals);
        }
    }

    /// Removes every call (shutdown).
    pub fn clear(&mut self, plane: &mut dyn MediaPlane) {
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            self.remove(&id, plane);
        }
    }
}

/// The address a party sends from/receives at for one m= line.
fn remote_of(m: &sdp::Media, req: &Request) -> Option<Remote> {
    let conn = m.connection.as_ref()?;
    let mut ip = conn.address;
    if ip.is_unspecified() || m.port == 0 {
        return None;
    }
    if req.flags.sip_source_address {
        if let Some(src) = req.received_from {
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

fn latching_of(req: &Request, current: Latching) -> Latching {
    if req.flags.asymmetric {
        Latching::Asymmetric
    } else if req.flags.strict_source {
        Latching::Strict
    } else {
        current
    }
}

/// Applies an offer from leg `o` to the call and returns the SDP for the
/// answerer, which names the sockets facing the answerer.
fn build_offer(
    call: &mut Call,
    o: usize,
    a: usize,
    req: &Request,
    parsed: &sdp::SessionDescription,
    now: Now,
    plane: &mut dyn MediaPlane,
) -> Result<String, Failure> {
    call.last_signal = now.unix;
    call.last_signal_ms = now.ms;
    call.latching = latching_of(req, call.latching);
    let want_v6 = req
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
                    let local = plane.open(call.worker, v6).map_err(|e| match e {
                        PlaneError::Exhausted => Failure::from(reason::NO_PORTS),
                        PlaneError::NoInterface(_) => Failure::Error(e.to_string()),
                    })?;
                    opened.push((leg, i));
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
                    });
                }
            }
            let s = &mut call.legs[o].streams[i];
            s.kind = m.kind.clone();
            s.protocol = m.protocol.clone();
            s.remote = remote_of(m, req);
            s.advertised = m
                .connection
                .as_ref()
                .map(|c| SocketAddr::new(c.address, m.port));
            s.mux_offered = m.rtcp_mux;
            s.mux_accept = req.rtcp_mux.demux || req.rtcp_mux.accept;
            s.mux = m.rtcp_mux && s.mux;
            s.clock_rate = first_clock_rate(m);
            s.ptime = m.ptime;
            let offer_mux =
                (m.rtcp_mux && !req.rtcp_mux.demux) || req.rtcp_mux.offer || req.rtcp_mux.require;
            let t = &mut call.legs[a].streams[i];
            t.kind = m.kind.clone();
            t.protocol = req
                .transport_protocol
                .clone()
                .unwrap_or_else(|| m.protocol.clone());
            t.mux_offered = offer_mux;
        }
        Ok(())
    })();
    if let Err(f) = result {
        // Give back what this offer opened; streams that existed stay.
        let mut locals = Vec::new();
        for (leg, i) in opened.into_iter().rev() {
            if call.legs[leg].streams.len() == i + 1 {
                locals.push(call.legs[leg].streams.pop().expect("len checked").local);
            }
        }
        plane.close(call.worker, locals);
        return Err(f);
    }
    rewrite_for(call, a, req, parsed, MuxAdvert::Offer)
}

/// Applies the answer from leg `a` and returns the SDP for the offerer `o`.
fn build_answer(
    call: &mut Call,
    o: usize,
    a: usize,
    req: &Request,
    parsed: &sdp::SessionDescription,
    now: Now,
) -> Result<String, Failure> {
    if parsed.media().len() > call.legs[a].streams.len() {
        return Err(Failure::from(reason::ANSWER_MEDIA_MISMATCH));
    }
    call.last_signal = now.unix;
    call.last_signal_ms = now.ms;
    call.latching = latching_of(req, call.latching);
    for (i, m) in parsed.media().iter().enumerate() {
        let s = &mut call.legs[a].streams[i];
        s.remote = remote_of(m, req);
        s.advertised = m
            .connection
            .as_ref()
            .map(|c| SocketAddr::new(c.address, m.port));
        s.mux = m.rtcp_mux && s.mux_offered;
        s.clock_rate = first_clock_rate(m);
        let answerer_mux = s.mux;
        let f = &mut call.legs[o].streams[i];
        f.mux = f.mux_offered
            && (answerer_mux || f.mux_accept || req.rtcp_mux.demux || req.rtcp_mux.accept);
    }
    rewrite_for(call, o, req, parsed, MuxAdvert::Answer)
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
    req: &Request,
    parsed: &sdp::SessionDescription,
    mux: MuxAdvert,
) -> Result<String, Failure> {
    let media = parsed
        .media()
        .iter()
        .zip(&call.legs[to].streams)
        .map(|(m, s)| {
            let address: IpAddr = match req.media_address {
                Some(a) if a.is_ipv4() == s.local.ip.is_ipv4() => a,
                _ => s.local.advertised,
            };
            let (rtcp_mux, rtcp_port) = match mux {
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
            sdp::MediaRewrite {
                address,
                port: s.local.rtp.port,
                rtcp_port: Some(rtcp_port),
                rtcp_mux,
                strip_ice: true,
                protocol: req.transport_protocol.clone(),
                direction: None,
                ptime,
            }
        })
        .collect();
    let origin = req
        .replace
        .origin
        .then(|| call.legs[to].streams.first().map(|s| s.local.advertised))
        .flatten();
    let rw = sdp::Rewrite {
        origin,
        session_connection: req.replace.session_connection,
        media,
    };
    sdp::rewrite(parsed, &rw).map_err(|e| Failure::Error(e.to_string()))
}

/// The `query` (and `delete`) reply in rtpengine's shape.
fn call_report(call: &Call, now: Now) -> Value {
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

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
