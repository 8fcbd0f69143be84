//! The control core of a media node: ng requests in, replies and media
//! plane changes out.
//!
//! # Run loop
//! The driver (`daemon::node`) owns the clock; the ng server loop it runs
//! on (`rtpmesh_ng_udp::server`) owns the socket and the cookie cache. For
//! every request it calls [`Node::handle_body`] and sends back the reply;
//! for every worker event it calls [`Node::on_event`]; every 200 ms it
//! calls [`Node::tick`], which removes timed-out and delayed-deleted calls.
//! The node never blocks and never touches a socket itself: sockets come
//! from the [`MediaPlane`] it is handed.

use std::collections::HashMap;
use std::time::Duration;

use rtpmesh_flow::flow::{FlowId, Latching};

use crate::call::{Branch, BranchTarget, Call, Leg, Totals, TunnelLink};
use crate::plane::MediaPlane;
use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng::ng::{self, reason, Command, Request, TunnelSide};
use rtpmesh_ng::sdp;

mod negotiate;
pub mod persist;
mod report;

use negotiate::{build_answer, build_offer};
use report::call_report;

/// The two clocks a node needs: the media clock (monotonic ms, shared with
/// the workers' counters) and wall-clock seconds for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Media clock milliseconds (`rtpmesh_flow::counters::now_ms`).
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
    /// Node totals at the start of the current rate window.
    window: (u64, Totals),
    /// Packets, bytes and errors per second over the last full window.
    rates: (u64, u64, u64),
}

/// How long a rate window lasts, in milliseconds.
const RATE_WINDOW_MS: u64 = 1000;

/// A command that failed, with the text rtpengine would send.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    Error(String),
    LoadLimit,
}

/// A key the command cannot do without. `ng::parse_request` already
/// refuses requests that lack one, so this only keeps the core honest on its
/// own.
fn need<'a>(v: &'a Option<String>, missing: &str) -> Result<&'a str, Failure> {
    v.as_deref().ok_or_else(|| Failure::from(missing))
}

/// Parses a request's SDP; what was wrong goes to the log, the reply gets
/// rtpengine's text.
fn parse_sdp(text: &str, call_id: &str) -> Result<sdp::SessionDescription, Failure> {
    sdp::parse(text).map_err(|e| {
        tracing::info!(error = %e, call = %call_id, "SDP rejected");
        Failure::from(reason::FAILED_TO_PARSE_SDP)
    })
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
    stats: NodeStats,
    /// Calls changed since the last [`Node::take_changes`].
    dirty: std::collections::BTreeSet<String>,
    /// Calls removed since then.
    gone: Vec<String>,
}

impl Node {
    /// A node with no calls.
    pub fn new(config: NodeConfig, now: Now) -> Self {
        Self {
            config,
            calls: HashMap::new(),
            flows: HashMap::new(),
            dirty: Default::default(),
            gone: Vec::new(),
            stats: NodeStats {
                started_unix: now.unix,
                window: (now.ms, Totals::default()),
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

    /// Handles one ng datagram with no cookie cache: the reply datagram, or
    /// `None` when there is no cookie to answer with. The ng server
    /// (`rtpmesh_ng_udp::server`) keeps the cookies and calls
    /// [`Node::handle_body`]; tests and in-process links call this.
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
        let reply = match ng::decode_body(body) {
            Err(e) => {
                tracing::warn!(error = %e, "malformed ng message");
                ng::error(&e.reason())
            }
            Ok(v) => self.handle_body(&v, now, plane),
        };
        Some(ng::encode_reply(cookie, &reply))
    }

    /// Handles one request (the bencoded dictionary after the cookie);
    /// returns the reply body.
    pub fn handle_body(&mut self, body: &Value, now: Now, plane: &mut dyn MediaPlane) -> Value {
        match ng::parse_request(body) {
            Err(e) => {
                tracing::warn!(error = %e, "bad ng request");
                ng::error(&e.reason())
            }
            Ok(req) => self.execute(&req, now, plane),
        }
    }

    fn execute(&mut self, req: &Request, now: Now, plane: &mut dyn MediaPlane) -> Value {
        let result = match req.command {
            Command::Ping => Ok(dict([("result", "pong".into())])),
            Command::Offer => self.offer(req, now, plane),
            Command::Answer => self.answer(req, now, plane),
            Command::Delete => self.delete(req, now, plane),
            Command::Query => self.query(req, now),
            Command::List => Ok(self.list(req)),
            Command::Statistics => Ok(self.statistics(now, plane)),
            Command::StartRecording => self.start_recording(req, plane),
            Command::StopRecording => self.stop_branch(req, RECORDING, plane),
            Command::BlockMedia => self.block(req, true, plane),
            Command::UnblockMedia => self.block(req, false, plane),
            Command::UpdateTunnel => self.update_tunnel(req, plane),
            Command::StartBranch => self.start_branch(req, plane),
            Command::StopBranch => match need(&req.branch, "No branch in message") {
                Ok(name) => self.stop_branch(req, name, plane),
                Err(f) => Err(f),
            },
        };
        if result.is_ok() {
            if let Some(id) = req
                .call_id
                .as_ref()
                .filter(|id| self.calls.contains_key(*id))
            {
                self.dirty.insert(id.clone());
            }
        }
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
        let text = need(&req.sdp, reason::NO_SDP)?;
        let call_id = need(&req.call_id, reason::NO_CALL_ID)?.to_owned();
        let from_tag = need(&req.from_tag, reason::NO_FROM_TAG)?.to_owned();
        let parsed = parse_sdp(text, &call_id)?;
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
                tunnel: None,
                blocked: false,
            };
            let mut legs = [
                leg(from_tag.clone()),
                leg(req.to_tag.clone().unwrap_or_default()),
            ];
            if let Some(side) = req.tunnel.as_ref().and_then(|t| t.side) {
                let t = req.tunnel.as_ref().expect("checked");
                let (via, local) = plane
                    .tunnel(worker)
                    .map_err(|e| Failure::Error(e.to_string()))?;
                let i = match side {
                    TunnelSide::Offerer => 0,
                    TunnelSide::Answerer => 1,
                };
                legs[i].tunnel = Some(TunnelLink {
                    via,
                    local,
                    peer: t.address,
                    flows: t.flows.clone(),
                });
            }
            self.calls.insert(
                call_id.clone(),
                Call {
                    id: call_id.clone(),
                    created: now.unix,
                    last_signal: now.unix,
                    last_signal_ms: now.ms,
                    worker,
                    legs,
                    latching: Latching::Learn,
                    delete_at_ms: None,
                    branches: Vec::new(),
                    recordings: Vec::new(),
                },
            );
            self.stats.managed += 1;
        }
        let call = self.calls.get_mut(&call_id).expect("inserted above");
        if !is_new {
            set_tunnel_peer(call, req);
        }
        let offerer = call.leg_index(&from_tag).unwrap_or(0);
        let answerer = 1 - offerer;
        match build_offer(call, offerer, answerer, req, &parsed, now, plane) {
            Ok(sdp) => {
                for l in call.locals() {
                    self.flows.insert(l.rtp.flow, call_id.clone());
                    self.flows.insert(l.rtcp.flow, call_id.clone());
                }
                plane.install(call.worker, call.flow_specs());
                let mut reply = vec![("result", "ok".into()), ("sdp", sdp.into())];
                if let Some(t) = tunnel_reply(call) {
                    reply.push(("tunnel", t));
                }
                Ok(dict(reply))
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
        let text = need(&req.sdp, reason::NO_SDP)?;
        let call_id = need(&req.call_id, reason::NO_CALL_ID)?;
        let from_tag = need(&req.from_tag, reason::NO_FROM_TAG)?;
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let parsed = parse_sdp(text, call_id)?;
        let offerer = call.leg_index(from_tag).unwrap_or(0);
        let answerer = 1 - offerer;
        if let Some(to) = &req.to_tag {
            if call.legs[answerer].tag.is_empty() {
                call.legs[answerer].tag = to.clone();
            }
        }
        set_tunnel_peer(call, req);
        let sdp = build_answer(call, offerer, answerer, req, &parsed, now)?;
        plane.install(call.worker, call.flow_specs());
        let mut reply = vec![("result", "ok".into()), ("sdp", sdp.into())];
        if let Some(t) = tunnel_reply(call) {
            reply.push(("tunnel", t));
        }
        Ok(dict(reply))
    }

    /// The call a request names, or rtpengine's error.
    fn call_of(&mut self, req: &Request) -> Result<&mut Call, Failure> {
        let call_id = need(&req.call_id, reason::NO_CALL_ID)?;
        self.calls
            .get_mut(call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))
    }

    /// The legs a request names by `from-tag`: that party's, or both.
    fn legs_of(call: &Call, req: &Request) -> Result<Vec<usize>, Failure> {
        match &req.from_tag {
            Some(tag) => call
                .leg_index(tag)
                .map(|l| vec![l])
                .ok_or(Failure::from(reason::UNKNOWN_TAG)),
            None => Ok(vec![0, 1]),
        }
    }

    fn update_tunnel(
        &mut self,
        req: &Request,
        plane: &mut dyn MediaPlane,
    ) -> Result<Value, Failure> {
        let call = self.call_of(req)?;
        if req.tunnel.is_none() || !call.legs.iter().any(|l| l.tunnel.is_some()) {
            return Err(Failure::from("No tunnel leg in call"));
        }
        set_tunnel_peer(call, req);
        plane.install(call.worker, call.flow_specs());
        let mut reply = vec![("result", "ok".into())];
        if let Some(t) = tunnel_reply(call) {
            reply.push(("tunnel", t));
        }
        Ok(dict(reply))
    }

    fn block(
        &mut self,
        req: &Request,
        blocked: bool,
        plane: &mut dyn MediaPlane,
    ) -> Result<Value, Failure> {
        let call = self.call_of(req)?;
        for l in Self::legs_of(call, req)? {
            call.legs[l].blocked = blocked;
        }
        plane.install(call.worker, call.flow_specs());
        Ok(dict([("result", "ok".into())]))
    }

    /// Records every stream of the named legs into local files, as a
    /// branch to the recorder.
    fn record_legs(
        call: &mut Call,
        legs: &[usize],
        branch: &str,
        plane: &mut dyn MediaPlane,
    ) -> Result<(), Failure> {
        for &l in legs {
            let mut addrs = Vec::new();
            for i in 0..call.legs[l].streams.len() {
                let (id, addr) = plane
                    .record(&call.id, &call.legs[l].tag, i + 1)
                    .map_err(|e| Failure::Error(e.to_string()))?;
                call.recordings.push((branch.to_owned(), id));
                addrs.push((addr, addr));
            }
            call.branches.push(Branch {
                name: branch.to_owned(),
                leg: l,
                target: BranchTarget::Direct(addrs),
            });
        }
        Ok(())
    }

    fn start_recording(
        &mut self,
        req: &Request,
        plane: &mut dyn MediaPlane,
    ) -> Result<Value, Failure> {
        let call = self.call_of(req)?;
        if !call.branches.iter().any(|b| b.name == RECORDING) {
            let legs = Self::legs_of(call, req)?;
            if let Err(f) = Self::record_legs(call, &legs, RECORDING, plane) {
                drop_branch(call, RECORDING, plane);
                return Err(f);
            }
            plane.install(call.worker, call.flow_specs());
        }
        Ok(dict([("result", "ok".into())]))
    }

    fn start_branch(
        &mut self,
        req: &Request,
        plane: &mut dyn MediaPlane,
    ) -> Result<Value, Failure> {
        let name = need(&req.branch, "No branch in message")?.to_owned();
        if name == RECORDING {
            return Err(Failure::from("Branch name reserved"));
        }
        let call = self.call_of(req)?;
        if call.branches.iter().any(|b| b.name == name) {
            return Err(Failure::from("Branch exists"));
        }
        let legs = Self::legs_of(call, req)?;
        let target = match (&req.tunnel, req.destination) {
            (Some(t), _) => {
                let (via, _) = plane
                    .tunnel(call.worker)
                    .map_err(|e| Failure::Error(e.to_string()))?;
                BranchTarget::Tunnel {
                    via,
                    peer: t
                        .address
                        .ok_or(Failure::from("No tunnel address in message"))?,
                    flows: t.flows.clone(),
                }
            }
            (None, Some(d)) => {
                let n = call.legs[legs[0]].streams.len();
                BranchTarget::Direct(
                    crate::call::resource_ports(d, n).ok_or(Failure::from(INVALID_DESTINATION))?,
                )
            }
            (None, None) => return Err(Failure::from("No destination in message")),
        };
        for &l in &legs {
            call.branches.push(Branch {
                name: name.clone(),
                leg: l,
                target: target.clone(),
            });
        }
        if req.flags.unknown.iter().any(|f| f == "record") {
            if let Err(f) = Self::record_legs(call, &legs, &name, plane) {
                drop_branch(call, &name, plane);
                return Err(f);
            }
        }
        plane.install(call.worker, call.flow_specs());
        Ok(dict([("result", "ok".into())]))
    }

    fn stop_branch(
        &mut self,
        req: &Request,
        name: &str,
        plane: &mut dyn MediaPlane,
    ) -> Result<Value, Failure> {
        let call = self.call_of(req)?;
        if drop_branch(call, name, plane) {
            plane.install(call.worker, call.flow_specs());
        }
        Ok(dict([("result", "ok".into())]))
    }

    fn delete(
        &mut self,
        req: &Request,
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Result<Value, Failure> {
        let call_id = need(&req.call_id, reason::NO_CALL_ID)?;
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
        let call_id = need(&req.call_id, reason::NO_CALL_ID)?;
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

    /// Totals of every call the node has had.
    fn totals(&self) -> Totals {
        let mut t = self.stats.closed;
        for c in self.calls.values() {
            t.merge(&c.totals());
        }
        t
    }

    /// Moves the rate window on once a second (called from `tick`).
    fn update_rates(&mut self, now: Now) {
        let (start, before) = self.stats.window;
        let elapsed = now.ms.saturating_sub(start);
        if elapsed < RATE_WINDOW_MS {
            return;
        }
        let t = self.totals();
        let per_s = |a: u64, b: u64| a.saturating_sub(b) * 1000 / elapsed;
        self.stats.rates = (
            per_s(t.packets(), before.packets()),
            per_s(t.bytes(), before.bytes()),
            per_s(t.errors, before.errors),
        );
        self.stats.window = (now.ms, t);
    }

    fn statistics(&self, now: Now, plane: &dyn MediaPlane) -> Value {
        let totals = self.totals();
        let (packetrate, byterate, errorrate) = self.stats.rates;
        let current = dict([
            ("sessionsown", (self.calls.len() as u64).into()),
            ("sessionsforeign", 0u64.into()),
            ("sessionstotal", (self.calls.len() as u64).into()),
            ("transcodedmedia", 0u64.into()),
            ("packetrate", packetrate.into()),
            ("byterate", byterate.into()),
            ("errorrate", errorrate.into()),
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
            ("packetsrelayed", totals.packets().into()),
            ("bytesrelayed", totals.bytes().into()),
            ("packetserrors", totals.errors.into()),
        ]);
        let t = plane.tunnel_totals();
        let tunnel = dict([
            ("packets", (t.rtp_packets + t.rtcp_packets).into()),
            ("authfailures", t.tunnel_auth_failures.into()),
            ("replays", t.tunnel_replays.into()),
            ("unknownflows", t.tunnel_unknown_flow.into()),
            ("malformed", t.malformed.into()),
        ]);
        dict([
            ("result", "ok".into()),
            (
                "statistics",
                dict([
                    ("currentstatistics", current),
                    ("totalstatistics", total),
                    ("tunnel", tunnel),
                ]),
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
    /// timeout. Returns what it removed.
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
        self.update_rates(now);
        gone
    }

    fn remove(&mut self, id: &str, plane: &mut dyn MediaPlane) {
        if let Some(call) = self.calls.remove(id) {
            self.dirty.remove(id);
            self.gone.push(id.to_owned());
            for (_, rec) in &call.recordings {
                plane.stop_recording(*rec);
            }
            self.stats.closed.merge(&call.totals());
            let locals: Vec<_> = call.locals().cloned().collect();
            for l in &locals {
                self.flows.remove(&l.rtp.flow);
                self.flows.remove(&l.rtcp.flow);
            }
            plane.close(call.worker, locals);
        }
    }

    /// What changed since the last call, for the store: each call's new
    /// record, or `None` for a call that is gone.
    pub fn take_changes(&mut self) -> Vec<(String, Option<persist::CallRecord>)> {
        let mut out: Vec<_> = self.gone.drain(..).map(|id| (id, None)).collect();
        for id in std::mem::take(&mut self.dirty) {
            if let Some(c) = self.calls.get(&id) {
                out.push((id, Some(persist::CallRecord::of(c))));
            }
        }
        out
    }

    /// Takes back a call a previous run of this node had, on the same ports
    /// and flow ids, and starts forwarding for it.
    pub fn restore(
        &mut self,
        record: &persist::CallRecord,
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Result<(), crate::plane::PlaneError> {
        let call = record.restore(plane, now.unix, now.ms)?;
        for l in call.locals() {
            self.flows.insert(l.rtp.flow, call.id.clone());
            self.flows.insert(l.rtcp.flow, call.id.clone());
        }
        plane.install(call.worker, call.flow_specs());
        self.stats.managed += 1;
        self.calls.insert(call.id.clone(), call);
        Ok(())
    }

    /// Forgets every call without touching the store (the process stops;
    /// the calls are restored when it comes back).
    pub fn shutdown(&mut self, plane: &mut dyn MediaPlane) {
        self.clear(plane);
        self.gone.clear();
    }

    /// Removes every call (shutdown).
    pub fn clear(&mut self, plane: &mut dyn MediaPlane) {
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            self.remove(&id, plane);
        }
    }
}

/// A `destination` whose streams' ports would run past 65535.
pub(crate) const INVALID_DESTINATION: &str = "Invalid destination: stream ports run past 65535";

/// The branch name `start recording` uses.
const RECORDING: &str = "recording";

/// Removes branch `name` and finishes its recordings; false if there was
/// none.
fn drop_branch(call: &mut Call, name: &str, plane: &mut dyn MediaPlane) -> bool {
    let before = call.branches.len();
    call.branches.retain(|b| b.name != name);
    call.recordings.retain(|(b, id)| {
        if b == name {
            plane.stop_recording(*id);
        }
        b != name
    });
    call.branches.len() != before
}

/// Applies a request's `tunnel` address and flows to the call's tunnel leg.
fn set_tunnel_peer(call: &mut Call, req: &Request) {
    let Some(t) = &req.tunnel else { return };
    if let Some(link) = call.legs.iter_mut().find_map(|l| l.tunnel.as_mut()) {
        if t.address.is_some() {
            link.peer = t.address;
        }
        if !t.flows.is_empty() {
            link.flows = t.flows.clone();
        }
    }
}

/// The `tunnel` reply key: where the peer node sends this call's tunnel
/// leg media, and the flow ids it addresses.
fn tunnel_reply(call: &Call) -> Option<Value> {
    let l = call.legs.iter().position(|l| l.tunnel.is_some())?;
    let link = call.legs[l].tunnel.as_ref()?;
    let flows: Vec<Value> = call
        .tunnel_flows(l)
        .into_iter()
        .map(|(rtp, rtcp)| Value::List(vec![rtp.into(), rtcp.into()]))
        .collect();
    Some(dict([
        ("address", link.local.to_string().into()),
        ("flows", Value::List(flows)),
    ]))
}

#[cfg(test)]
mod tests;
