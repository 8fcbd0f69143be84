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

use rtpmesh_flow::flow::FlowId;

use crate::call::{Call, Totals};
use crate::plane::MediaPlane;
use rtpmesh_ng::bencode::Value;
use rtpmesh_ng::ng::{self, Failure, Op, Reply, Request};

mod commands;
pub(crate) mod flags;
mod negotiate;
pub mod persist;
mod report;
mod security;

pub use security::{KeySource, KeySourceError, NodeSecurity, OsRandom};

/// The two clocks a node needs: the media clock (monotonic ms, shared with
/// the workers' counters) and wall-clock seconds for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Media clock milliseconds (`rtpmesh_relay::clock::now_ms`).
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
    /// An ICE peer's consent expired (RFC 7675): the browser is gone.
    ConsentExpired,
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

/// The control core.
pub struct Node {
    config: NodeConfig,
    calls: HashMap<String, Call>,
    flows: HashMap<FlowId, String>,
    stats: NodeStats,
    /// Whether changes are kept for [`Node::take_changes`]: only a node
    /// with a store to write them to asks for them; without one they would
    /// pile up (every ended call's id) for the life of the process.
    keep_changes: bool,
    /// Calls changed since the last [`Node::take_changes`].
    dirty: std::collections::BTreeSet<String>,
    /// Calls whose ICE peer's consent expired, removed at the next tick.
    consent_expired: std::collections::BTreeSet<String>,
    /// Calls removed since then.
    gone: Vec<String>,
    /// Randomness for keys and the DTLS certificate's fingerprint.
    security: NodeSecurity,
}

impl Node {
    /// A node with no calls.
    pub fn new(config: NodeConfig, now: Now) -> Self {
        Self {
            config,
            calls: HashMap::new(),
            flows: HashMap::new(),
            keep_changes: false,
            dirty: Default::default(),
            consent_expired: Default::default(),
            gone: Vec::new(),
            security: NodeSecurity::default(),
            stats: NodeStats {
                started_unix: now.unix,
                window: (now.ms, Totals::default()),
                ..NodeStats::default()
            },
        }
    }

    /// The SHA-256 fingerprint of the node's DTLS certificate, which offers
    /// and answers announce; without one, DTLS-SRTP is refused with an ng
    /// error (SDES still works).
    pub fn set_dtls_fingerprint(&mut self, fingerprint: Option<[u8; 32]>) {
        self.security.fingerprint = fingerprint;
    }

    /// Where SDES keys and ICE credentials come from (default: the OS).
    pub fn set_key_source(&mut self, keys: Box<dyn KeySource>) {
        self.security.keys = keys;
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
            Ok(req) => self.respond(&req, now, plane),
        }
    }

    /// Executes `req` and turns its reply into bencode (the one place the
    /// node's typed replies do). A reply too large for one datagram could
    /// never be sent, and the proxy would retry or give up while the
    /// request's ports stayed taken: it is replaced by an error, and an
    /// offer or answer is undone (the call as it was, its new ports freed).
    fn respond(&mut self, req: &Request, now: Now, plane: &mut dyn MediaPlane) -> Value {
        let before = match &req.op {
            Op::Offer(o) => Some((o.call_id.as_str(), self.calls.get(&o.call_id).cloned())),
            Op::Answer(a) => Some((a.call_id.as_str(), self.calls.get(&a.call_id).cloned())),
            _ => None,
        };
        let reply = self.execute(req, now, plane).to_value();
        let size = reply.encode().len();
        if size <= ng::MAX_REPLY_BODY {
            return reply;
        }
        tracing::warn!(command = req.command().name(), call = ?req.call_id(), size, max = ng::MAX_REPLY_BODY, "ng reply too large for a datagram: request undone");
        if let Some((id, before)) = before {
            self.undo(id, before, plane);
        }
        ng::error(ng::reason::REPLY_TOO_LARGE)
    }

    /// Puts call `id` back as it was `before` an offer or answer: a call
    /// the request created is removed, and sockets it opened are closed.
    fn undo(&mut self, id: &str, before: Option<Call>, plane: &mut dyn MediaPlane) {
        let Some(before) = before else {
            if self.calls.contains_key(id) {
                self.stats.managed -= 1;
                self.remove(id, plane);
            }
            return;
        };
        let Some(now) = self.calls.get(id) else {
            return;
        };
        let kept: std::collections::HashSet<FlowId> = before.locals().map(|l| l.rtp.flow).collect();
        let fresh: Vec<_> = now
            .locals()
            .filter(|l| !kept.contains(&l.rtp.flow))
            .cloned()
            .collect();
        // The old flows first, so that none still points at a new one.
        plane.install(before.worker, before.flow_specs());
        for l in &fresh {
            self.flows.remove(&l.rtp.flow);
            self.flows.remove(&l.rtcp.flow);
        }
        plane.close(before.worker, fresh);
        self.calls.insert(id.to_owned(), before);
    }

    /// Executes one parsed request and returns its typed reply; [`Node::handle`]
    /// is this behind the cookie and the bencode.
    pub fn execute(&mut self, req: &Request, now: Now, plane: &mut dyn MediaPlane) -> Reply {
        let o = &req.options;
        flags::log_ignored(req);
        if matches!(req.op, Op::Delete(_) | Op::Query(_) | Op::Statistics) {
            // Their replies carry counters: the kernel's share must be in.
            plane.flush_counters();
        }
        let result = match &req.op {
            Op::Ping => Ok(Reply::Pong),
            Op::Offer(offer) => self
                .offer(offer, o, now, plane)
                .inspect(|_| self.record_call(&offer.call_id, o.record_call, plane)),
            Op::Answer(answer) => self
                .answer(answer, o, now, plane)
                .inspect(|_| self.record_call(&answer.call_id, o.record_call, plane)),
            Op::Delete(c) => self.delete(c, o, now, plane),
            Op::Query(c) => self.query(c, now),
            Op::List { limit, after } => Ok(self.list(*limit, after.as_deref())),
            Op::Statistics => Ok(self.statistics(now, plane)),
            Op::StartRecording(c) => self.start_recording(c, plane),
            Op::StopRecording(c) => self.stop_branch(c, RECORDING, plane),
            Op::BlockMedia(c) => self.block(c, true, plane),
            Op::UnblockMedia(c) => self.block(c, false, plane),
            Op::UpdateTunnel(c) => self.update_tunnel(c, o, plane),
            Op::StartBranch(b) => self.start_branch(b, o, plane),
            Op::StopBranch(b) => self.stop_branch(&b.call, &b.branch, plane),
        };
        if result.is_ok() && self.keep_changes {
            if let Some(id) = req.call_id().filter(|id| self.calls.contains_key(*id)) {
                self.dirty.insert(id.to_owned());
            }
        }
        result.unwrap_or_else(|f| {
            match &f {
                Failure::LoadLimit => self.stats.rejected += 1,
                f => {
                    tracing::info!(command = req.command().name(), call = ?req.call_id(), reason = %f.reason(), "ng error")
                }
            }
            f.into_reply(req.supports_load_limit())
        })
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

    /// Applies a worker's report.
    pub fn on_event(&mut self, ev: &rtpmesh_relay::worker::Event) {
        use rtpmesh_relay::worker::Event;
        match ev {
            Event::Latched { flow, addr } => {
                if let Some(call) = self.flows.get(flow).and_then(|id| self.calls.get_mut(id)) {
                    call.on_latched(*flow, *addr);
                }
            }
            Event::ConsentExpired { flow } => {
                if let Some(id) = self.flows.get(flow) {
                    self.consent_expired.insert(id.clone());
                }
            }
            Event::DtlsFailed { flow, reason } => {
                let call = self.flows.get(flow).map(String::as_str).unwrap_or("?");
                tracing::warn!(%call, ?flow, %reason, "DTLS handshake failed: no media on this leg");
            }
            Event::Closed { .. } | Event::Failed { .. } => {}
        }
    }

    /// Removes calls whose delete delay ran out or that saw no media for the
    /// timeout. Returns what it removed.
    pub fn tick(&mut self, now: Now, plane: &mut dyn MediaPlane) -> Vec<(String, Removal)> {
        let timeout = self.config.media_timeout.as_millis() as u64;
        let mut gone = Vec::new();
        for id in std::mem::take(&mut self.consent_expired) {
            if self.calls.contains_key(&id) {
                gone.push((id, Removal::ConsentExpired));
            }
        }
        for (id, c) in &self.calls {
            if gone.iter().any(|(g, _)| g == id) {
                continue;
            }
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
                Removal::ConsentExpired => {
                    self.stats.timeouts += 1;
                    tracing::info!(call = %id, "call ended: ICE consent expired (the browser is gone)");
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
            if self.keep_changes {
                self.gone.push(id.to_owned());
            }
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

    /// From now on, keeps what changes for [`Node::take_changes`] (a node
    /// with a store calls this once at start).
    pub fn keep_changes(&mut self) {
        self.keep_changes = true;
    }

    /// What changed since the last call, for the store: each call's new
    /// record, or `None` for a call that is gone. Empty unless
    /// [`Node::keep_changes`] was called.
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

#[cfg(test)]
mod tests;
