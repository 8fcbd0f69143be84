//! The regional controller: speaks ng to SIP proxies exactly as a node
//! does, decides which relay nodes carry each call, and programs them.
//!
//! A same-region call goes to one node, unchanged. A cross-region call
//! goes to a node in the caller's region (A) and one in the callee's (B),
//! joined by a tunnel: A's leg towards the callee and B's leg towards the
//! caller are tunnel legs (socketless flows fed by the tunnel), so media
//! runs caller → A → tunnel → B → callee and back.
//!
//! Every offer or answer on a two-node call goes first to the node facing
//! the party whose SDP it carries (it learns that party's address and
//! reports its tunnel flows), then to the other node with those flows (it
//! rewrites the SDP for the receiving party and reports its own flows),
//! and finally those flows go back to the first node (`update tunnel`).
//!
//! The core here holds no socket: nodes are reached through a
//! [`NodeLink`], so tests drive real [`Node`](crate::node::Node) cores
//! in-process. The state is behind one mutex that is never held while a
//! node is asked something.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use crate::region::{self, Change, Decision, NoRoute, NodeInfo, Origin, Query, Registry};
use rtpmesh_ng::bencode::{dict, Dict, Value};
use rtpmesh_ng::ng::{self, reason, Command};
use rtpmesh_ng::sdp;

pub mod seed;
#[cfg(test)]
mod tests;
pub mod udp_link;

/// Why a node could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// No reply in time: the node is treated as down until it reports
    /// again.
    #[error("node {0} did not answer")]
    Timeout(String),
    /// The reply could not be read.
    #[error("node {node}: {reason}")]
    Failed {
        /// The node.
        node: String,
        /// What went wrong.
        reason: String,
    },
}

/// How the controller reaches nodes (ng over UDP in production).
pub trait NodeLink: Send + Sync {
    /// Sends one ng request to `node` and returns its reply.
    fn request(&self, node: &NodeInfo, body: &Value) -> Result<Value, LinkError>;
}

/// Settings of the controller.
#[derive(Debug, Clone, Default)]
pub struct ControllerConfig {
    /// The region whose calls arrive here when a request names neither a
    /// gateway nor a region and its `received-from` matches no gateway.
    pub region: Option<String>,
}

/// A node that failed to answer, kept out of selection until it reports
/// again after the failure.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    since_ms: u64,
}

/// One call the controller placed.
#[derive(Debug, Clone)]
struct Placed {
    /// The first offerer's tag: the party node A faces.
    caller_tag: String,
    /// A, and B for a cross-region call.
    nodes: Vec<NodeInfo>,
    /// The reply's `route`.
    route: Option<Value>,
    /// The offer that created the call (for remote branches).
    offer_sdp: String,
    /// Branches to resources in other regions: name → (node, call id there).
    remote_branches: HashMap<String, (NodeInfo, String)>,
    /// When it was placed (Unix ms).
    placed_ms: u64,
}

/// A decision made ahead of the offer (the proxy asked which gateway to
/// send the INVITE to), kept so that the offer uses the same nodes.
#[derive(Debug, Clone)]
struct Pin {
    decision: Decision,
    at_ms: u64,
}

/// How long a pinned decision waits for its offer.
pub const PIN_TTL_MS: u64 = 60_000;

#[derive(Default)]
struct State {
    registry: Registry,
    calls: HashMap<String, Placed>,
    /// Decisions pinned by call id, waiting for their offer.
    pins: HashMap<String, Pin>,
    suspects: HashMap<String, Suspect>,
    /// The most recent decisions, newest last, for `route explain`.
    decisions: std::collections::VecDeque<(String, String)>,
}

/// How many recent decisions are kept for inspection.
const DECISIONS_KEPT: usize = 256;

/// A failed request, with rtpengine's reply shape.
enum Failure {
    Error(String),
    LoadLimit,
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Self::Error(s.to_owned())
    }
}

impl From<LinkError> for Failure {
    fn from(e: LinkError) -> Self {
        Self::Error(e.to_string())
    }
}

/// The regional controller core.
pub struct Controller<L> {
    link: L,
    config: ControllerConfig,
    state: Mutex<State>,
    /// Where placed calls are kept, so that a restarted controller still
    /// knows which nodes carry each call: the store and this controller's
    /// name in it.
    journal: Option<(std::sync::Arc<dyn region::store::Store>, String)>,
}

/// A placed call as the journal keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PlacedRecord {
    caller_tag: String,
    nodes: Vec<NodeInfo>,
    route: Option<std::collections::BTreeMap<String, String>>,
    offer_sdp: String,
    remote_branches: Vec<(String, NodeInfo, String)>,
    placed_ms: u64,
}

impl PlacedRecord {
    fn of(p: &Placed) -> Self {
        let route = p.route.as_ref().and_then(Value::as_dict).map(|d| {
            d.iter()
                .filter_map(|(k, v)| {
                    Some((String::from_utf8(k.clone()).ok()?, v.as_str()?.to_owned()))
                })
                .collect()
        });
        Self {
            caller_tag: p.caller_tag.clone(),
            nodes: p.nodes.clone(),
            route,
            offer_sdp: p.offer_sdp.clone(),
            remote_branches: p
                .remote_branches
                .iter()
                .map(|(k, (n, id))| (k.clone(), n.clone(), id.clone()))
                .collect(),
            placed_ms: p.placed_ms,
        }
    }

    fn placed(self) -> Option<Placed> {
        if self.nodes.is_empty() {
            return None;
        }
        Some(Placed {
            caller_tag: self.caller_tag,
            nodes: self.nodes,
            route: self.route.map(|r| {
                Value::Dict(
                    r.into_iter()
                        .map(|(k, v)| (k.into_bytes(), Value::from(v)))
                        .collect(),
                )
            }),
            offer_sdp: self.offer_sdp,
            remote_branches: self
                .remote_branches
                .into_iter()
                .map(|(k, n, id)| (k, (n, id)))
                .collect(),
            placed_ms: self.placed_ms,
        })
    }
}

impl<L: NodeLink> Controller<L> {
    /// A controller with an empty registry.
    pub fn new(link: L, config: ControllerConfig) -> Self {
        Self {
            link,
            config,
            state: Mutex::new(State::default()),
            journal: None,
        }
    }

    /// Keeps placed calls in `store` under `name` (one name per
    /// controller), so that [`Controller::recover`] after a restart knows
    /// which nodes carry them.
    pub fn with_journal(
        mut self,
        store: std::sync::Arc<dyn region::store::Store>,
        name: &str,
    ) -> Self {
        self.journal = Some((store, format!("controller:{name}")));
        self
    }

    /// Takes back the calls the journal holds; returns how many.
    pub fn recover(&self) -> usize {
        let Some((store, key)) = &self.journal else {
            return 0;
        };
        let records = match store.calls(key) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the call journal: no calls recovered");
                return 0;
            }
        };
        let mut st = self.state();
        let mut n = 0;
        for (id, json) in records {
            match serde_json::from_str::<PlacedRecord>(&json)
                .ok()
                .and_then(PlacedRecord::placed)
            {
                Some(p) => {
                    st.calls.insert(id, p);
                    n += 1;
                }
                None => {
                    tracing::warn!(call = %id, "unreadable call record dropped");
                    let _ = store.delete_call(key, &id);
                }
            }
        }
        n
    }

    /// Writes a call's record (or its removal) to the journal.
    fn journal(&self, call_id: &str) {
        let Some((store, key)) = &self.journal else {
            return;
        };
        let record = self.state().calls.get(call_id).map(PlacedRecord::of);
        let done = match record {
            Some(r) => match serde_json::to_string(&r) {
                Ok(j) => store.put_call(key, call_id, &j),
                Err(e) => {
                    tracing::error!(call = %call_id, error = %e, "call record not serialisable");
                    return;
                }
            },
            None => store.delete_call(key, call_id),
        };
        if let Err(e) = done {
            tracing::warn!(call = %call_id, error = %e, "call journal not written");
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep
        // serving rather than poison every later request.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a registry change (from the store). A suspect node that
    /// reports after its failure is trusted again.
    pub fn apply(&self, change: &Change) {
        let mut st = self.state();
        if let Err(e) = st.registry.apply(change) {
            tracing::warn!(error = %e, ?change, "registry change refused");
            return;
        }
        if let Change::Heartbeat { node, at_ms, .. } = change {
            if st.suspects.get(node).is_some_and(|s| *at_ms > s.since_ms) {
                tracing::info!(%node, "node reports again: back in selection");
                st.suspects.remove(node);
            }
        }
        if let Change::RegisterNode(n) = change {
            st.suspects.remove(&n.id);
        }
    }

    /// A copy of the registry as this controller sees it.
    pub fn registry(&self) -> Registry {
        self.state().registry.clone()
    }

    /// Selection as it would run now, with the reasons; for `route explain`.
    pub fn explain(&self, query: &Query, now_ms: u64) -> Result<Decision, NoRoute> {
        let reg = self.usable_registry();
        region::select(&reg, now_ms, query)
    }

    /// Pins `decision` to `call_id`: the call's first offer, if it comes
    /// within [`PIN_TTL_MS`] and the decision's nodes and gateway are still
    /// usable then, is placed on exactly these nodes. Pinning again
    /// replaces the earlier decision; expired pins are dropped here.
    pub fn pin(&self, call_id: &str, decision: Decision, now_ms: u64) {
        let mut st = self.state();
        st.pins
            .retain(|_, p| now_ms.saturating_sub(p.at_ms) < PIN_TTL_MS);
        st.pins.insert(
            call_id.to_owned(),
            Pin {
                decision,
                at_ms: now_ms,
            },
        );
    }

    /// Decisions pinned and not yet used or expired.
    pub fn pin_count(&self) -> usize {
        self.state().pins.len()
    }

    /// Takes the decision pinned to `call_id`, if it is fresh, names the
    /// same endpoint as the offer (when the offer names one) and its nodes
    /// and gateway can still take the call.
    fn take_pin(&self, call_id: &str, endpoint: Option<&str>, now_ms: u64) -> Option<Decision> {
        let pin = self.state().pins.remove(call_id)?;
        let d = pin.decision;
        let why_not = if now_ms.saturating_sub(pin.at_ms) >= PIN_TTL_MS {
            Some("expired".to_owned())
        } else if endpoint.is_some() && endpoint != d.callee.as_ref().map(|c| c.endpoint.as_str()) {
            Some("the offer names another callee".to_owned())
        } else {
            let reg = self.usable_registry();
            let nodes = std::iter::once(d.node.as_str())
                .chain(d.callee.as_ref().and_then(|c| c.node.as_deref()));
            let mut why = None;
            for n in nodes {
                if let Err(e) = reg.node_usable(n, now_ms) {
                    why = Some(format!("node {n}: {e}"));
                    break;
                }
            }
            if why.is_none() {
                if let Some(c) = &d.callee {
                    if let Err(e) = reg.gateway_usable(&c.gateway) {
                        why = Some(format!("gateway {}: {e}", c.gateway));
                    }
                }
            }
            why
        };
        match why_not {
            None => Some(d),
            Some(why) => {
                tracing::info!(call = %call_id, %why, "pinned decision not used: selecting again");
                None
            }
        }
    }

    /// The recorded explanation of the decision for a call.
    pub fn explain_call(&self, call_id: &str) -> Option<String> {
        self.state()
            .decisions
            .iter()
            .rev()
            .find(|(c, _)| c == call_id)
            .map(|(_, e)| e.clone())
    }

    /// Forgets calls that their caller-side node no longer has (timed out
    /// there, or deleted behind the controller's back), so the controller's
    /// table does not grow without end. Calls younger than `grace_ms` are
    /// left alone (their offer may still be on its way), and so are calls
    /// on nodes that do not answer (nothing is known about them). Returns
    /// how many were forgotten.
    pub fn sweep(&self, now_ms: u64, grace_ms: u64) -> usize {
        let mut by_node: HashMap<String, (NodeInfo, Vec<String>)> = HashMap::new();
        for (id, p) in self.state().calls.iter() {
            if now_ms.saturating_sub(p.placed_ms) >= grace_ms {
                by_node
                    .entry(p.nodes[0].id.clone())
                    .or_insert_with(|| (p.nodes[0].clone(), Vec::new()))
                    .1
                    .push(id.clone());
            }
        }
        let mut gone = Vec::new();
        for (node, ids) in by_node.into_values() {
            let list = dict([
                ("command", "list".into()),
                ("limit", (u32::MAX as u64).into()),
            ]);
            let Ok(r) = self.ask(&node, &list) else {
                continue;
            };
            let Some(held) = r.get("calls").and_then(Value::as_list) else {
                continue;
            };
            let held: std::collections::HashSet<&str> =
                held.iter().filter_map(Value::as_str).collect();
            gone.extend(ids.into_iter().filter(|id| !held.contains(id.as_str())));
        }
        {
            let mut st = self.state();
            for id in &gone {
                st.calls.remove(id);
            }
            st.pins
                .retain(|_, p| now_ms.saturating_sub(p.at_ms) < PIN_TTL_MS);
        }
        for id in &gone {
            self.journal(id);
        }
        if !gone.is_empty() {
            tracing::info!(
                calls = gone.len(),
                "forgot calls their nodes no longer hold"
            );
        }
        gone.len()
    }

    /// Calls placed and not deleted.
    pub fn call_count(&self) -> usize {
        self.state().calls.len()
    }

    /// The registry without suspect nodes.
    fn usable_registry(&self) -> Registry {
        let st = self.state();
        let mut reg = st.registry.clone();
        for id in st.suspects.keys() {
            let _ = reg.apply(&Change::RemoveNode { id: id.clone() });
        }
        reg
    }

    fn suspect(&self, node: &str, now_ms: u64) {
        tracing::warn!(%node, "node did not answer: kept out of selection until it reports again");
        self.state()
            .suspects
            .insert(node.to_owned(), Suspect { since_ms: now_ms });
    }

    /// Handles one decoded ng request and returns the reply.
    pub fn handle(&self, body: &Value, now_ms: u64) -> Value {
        let req = match ng::parse_request(body) {
            Ok(r) => r,
            Err(e) => return ng::error(&e.reason()),
        };
        let result = match req.command {
            Command::Ping => Ok(dict([("result", "pong".into())])),
            Command::Offer => self.offer(body, &req, now_ms),
            Command::Answer => self.relay_sdp(body, &req, now_ms),
            Command::Delete => self.delete(body, &req),
            Command::List => Ok(self.list()),
            Command::Statistics => Ok(self.statistics()),
            Command::StartBranch => self.start_branch(body, &req, now_ms),
            Command::StopBranch => self.stop_branch(body, &req),
            Command::Query
            | Command::StartRecording
            | Command::StopRecording
            | Command::BlockMedia
            | Command::UnblockMedia
            | Command::UpdateTunnel => self.forward(body, &req),
        };
        match result {
            Ok(v) => v,
            Err(Failure::Error(r)) => {
                tracing::info!(command = req.command.name(), call = ?req.call_id, reason = %r, "ng error");
                ng::error(&r)
            }
            Err(Failure::LoadLimit) => {
                if req.supports.iter().any(|s| s == "load limit") {
                    ng::load_limit()
                } else {
                    ng::error(reason::LOAD_LIMIT)
                }
            }
        }
    }

    fn placed(&self, call_id: &str) -> Option<Placed> {
        self.state().calls.get(call_id).cloned()
    }

    /// Where the call comes from: an explicit `gateway` or `region` key,
    /// else the gateway whose SIP address is the request's
    /// `received-from`, else this controller's region.
    fn origin(&self, body: &Value, received_from: Option<IpAddr>) -> Result<Origin, Failure> {
        if let Some(g) = text_key(body, "gateway")? {
            return Ok(Origin::Gateway(g));
        }
        if let Some(r) = text_key(body, "region")? {
            return Ok(Origin::Region(r));
        }
        if let Some(ip) = received_from {
            let st = self.state();
            let gw = st
                .registry
                .gateways()
                .find(|g| sip_host(&g.sip) == Some(ip));
            if let Some(g) = gw {
                return Ok(Origin::Gateway(g.id.clone()));
            }
        }
        match &self.config.region {
            Some(r) => Ok(Origin::Region(r.clone())),
            None => Err(Failure::from(
                "Cannot tell the caller's region (no gateway, region or known received-from)",
            )),
        }
    }

    fn record_decision(&self, call_id: &str, result: &Result<Decision, NoRoute>) {
        let text = region::explain(result);
        tracing::info!(call = %call_id, decision = %text.replace('\n', "; "), "route selected");
        let mut st = self.state();
        st.decisions.push_back((call_id.to_owned(), text));
        if st.decisions.len() > DECISIONS_KEPT {
            st.decisions.pop_front();
        }
    }

    fn node_info(&self, id: &str) -> Result<NodeInfo, Failure> {
        self.state()
            .registry
            .node(id)
            .cloned()
            .ok_or_else(|| Failure::Error(format!("node {id} vanished from the registry")))
    }

    fn offer(&self, body: &Value, req: &ng::Request, now_ms: u64) -> Result<Value, Failure> {
        let call_id = req.call_id.clone().unwrap_or_default();
        if self.placed(&call_id).is_some() {
            return self.relay_sdp(body, req, now_ms);
        }
        let endpoint = text_key(body, "callee")?;
        // A decision the proxy already acted on (it sent the INVITE to that
        // decision's gateway) is kept if it still can be.
        if let Some(d) = self.take_pin(&call_id, endpoint.as_deref(), now_ms) {
            let mut d = d;
            d.reasons
                .push("pinned by a route lookup for this call".into());
            self.record_decision(&call_id, &Ok(d.clone()));
            match self.place(body, req, &d, now_ms) {
                Ok(v) => return Ok(v),
                Err((Some(node), e)) => {
                    tracing::warn!(call = %call_id, %node, error = %e, "pinned node failed: selecting again");
                    self.suspect(&node, now_ms);
                }
                Err((None, e)) => return Err(e.into()),
            }
        }
        let origin = self.origin(body, req.received_from)?;
        let query = Query { origin, endpoint };
        // A node that does not answer is set aside and the selection runs
        // again without it: the proxy sees one slower offer, not a failure.
        let mut last = Failure::from("no relay node answered");
        for _ in 0..3 {
            let result = region::select(&self.usable_registry(), now_ms, &query);
            self.record_decision(&call_id, &result);
            let decision = match result {
                Ok(d) => d,
                Err(e) if e.is_load_limit() => return Err(Failure::LoadLimit),
                Err(e) => return Err(Failure::Error(format!("No route: {e}"))),
            };
            match self.place(body, req, &decision, now_ms) {
                Ok(v) => return Ok(v),
                Err((Some(node), e)) => {
                    self.suspect(&node, now_ms);
                    last = e.into();
                }
                Err((None, e)) => return Err(e.into()),
            }
        }
        Err(last)
    }

    /// Programs the nodes a decision names. On a node's failure, returns
    /// its id so that selection can run again without it.
    fn place(
        &self,
        body: &Value,
        req: &ng::Request,
        d: &Decision,
        now_ms: u64,
    ) -> Result<Value, (Option<String>, LinkError)> {
        let call_id = req.call_id.clone().unwrap_or_default();
        let fail = |e: Failure| match e {
            Failure::Error(r) => (
                None,
                LinkError::Failed {
                    node: String::new(),
                    reason: r,
                },
            ),
            Failure::LoadLimit => (
                None,
                LinkError::Failed {
                    node: String::new(),
                    reason: reason::LOAD_LIMIT.into(),
                },
            ),
        };
        let a = self.node_info(&d.node).map_err(fail)?;
        let route = d.callee.as_ref().map(|c| {
            dict([
                ("endpoint", c.endpoint.as_str().into()),
                ("gateway", c.gateway.as_str().into()),
                ("sip", c.sip.as_str().into()),
                ("region", c.region.as_str().into()),
                ("node", d.node.as_str().into()),
                (
                    "callee-node",
                    c.node.as_deref().unwrap_or(d.node.as_str()).into(),
                ),
            ])
        });
        let b = match d.callee.as_ref().and_then(|c| c.node.as_deref()) {
            Some(b) => Some(self.node_info(b).map_err(fail)?),
            None => None,
        };
        let mut reply = match &b {
            None => {
                let r = self.ask(&a, body).map_err(|e| (Some(a.id.clone()), e))?;
                if !is_ok(&r) {
                    // The node's own refusal (load limit, bad SDP) goes back
                    // to the proxy as it is.
                    return Ok(r);
                }
                r
            }
            Some(b) => {
                let ra = self
                    .ask(&a, &with_tunnel(body, Some("answerer"), None))
                    .map_err(|e| (Some(a.id.clone()), e))?;
                if !is_ok(&ra) {
                    return Ok(ra);
                }
                let rb = match self.ask(b, &with_tunnel(body, Some("offerer"), ra.get("tunnel"))) {
                    Ok(r) => r,
                    Err(e) => {
                        self.drop_call(&a, &call_id);
                        return Err((Some(b.id.clone()), e));
                    }
                };
                if !is_ok(&rb) {
                    self.drop_call(&a, &call_id);
                    return Ok(rb);
                }
                let update = update_tunnel(&call_id, rb.get("tunnel"));
                if let Err(e) = self.ask(&a, &update) {
                    self.drop_call(&a, &call_id);
                    self.drop_call(b, &call_id);
                    return Err((Some(a.id.clone()), e));
                }
                rb
            }
        };
        strip_tunnel(&mut reply);
        if let (Some(route), Value::Dict(m)) = (&route, &mut reply) {
            m.insert(b"route".to_vec(), route.clone());
        }
        let nodes = std::iter::once(a).chain(b).collect();
        self.state().calls.insert(
            call_id.clone(),
            Placed {
                caller_tag: req.from_tag.clone().unwrap_or_default(),
                nodes,
                route,
                offer_sdp: req.sdp.clone().unwrap_or_default(),
                remote_branches: HashMap::new(),
                placed_ms: now_ms,
            },
        );
        self.journal(&call_id);
        Ok(reply)
    }

    fn ask(&self, node: &NodeInfo, body: &Value) -> Result<Value, LinkError> {
        self.link.request(node, body)
    }

    /// Best-effort cleanup of a half-placed call.
    fn drop_call(&self, node: &NodeInfo, call_id: &str) {
        let body = dict([
            ("command", "delete".into()),
            ("call-id", call_id.into()),
            ("delete-delay", 0u64.into()),
        ]);
        if let Err(e) = self.ask(node, &body) {
            tracing::warn!(node = %node.id, call = %call_id, error = %e, "cannot clean up half-placed call");
        }
    }

    /// A later offer or an answer on a placed call.
    fn relay_sdp(&self, body: &Value, req: &ng::Request, _now_ms: u64) -> Result<Value, Failure> {
        let call_id = req.call_id.clone().unwrap_or_default();
        let placed = self
            .placed(&call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let mut reply = if placed.nodes.len() == 1 {
            self.ask(&placed.nodes[0], body)?
        } else {
            // The SDP comes from the offer's from-tag party or the answer's
            // to-tag party; the node facing that party learns it first.
            let sender = match req.command {
                Command::Answer => req.to_tag.as_deref(),
                _ => req.from_tag.as_deref(),
            };
            let (first, second) = if sender == Some(placed.caller_tag.as_str()) {
                (&placed.nodes[0], &placed.nodes[1])
            } else {
                (&placed.nodes[1], &placed.nodes[0])
            };
            let r1 = self.ask(first, body)?;
            if !is_ok(&r1) {
                return Ok(r1);
            }
            let r2 = self.ask(second, &with_tunnel(body, None, r1.get("tunnel")))?;
            if is_ok(&r2) {
                self.ask(first, &update_tunnel(&call_id, r2.get("tunnel")))?;
            }
            r2
        };
        strip_tunnel(&mut reply);
        if let (Some(route), Value::Dict(m)) = (&placed.route, &mut reply) {
            m.insert(b"route".to_vec(), route.clone());
        }
        Ok(reply)
    }

    fn delete(&self, body: &Value, req: &ng::Request) -> Result<Value, Failure> {
        let call_id = req.call_id.clone().unwrap_or_default();
        let placed = {
            let mut st = self.state();
            // A call refused before its offer leaves no pin behind.
            st.pins.remove(&call_id);
            st.calls.remove(&call_id)
        };
        self.journal(&call_id);
        let Some(placed) = placed else {
            if req.flags.fatal {
                return Err(reason::UNKNOWN_CALL_ID.into());
            }
            return Ok(dict([
                ("result", "ok".into()),
                ("warning", reason::DELETE_NOT_FOUND.into()),
            ]));
        };
        for (node, remote) in placed.remote_branches.values() {
            self.drop_call(node, remote);
        }
        let mut first = None;
        for n in &placed.nodes {
            match self.ask(n, body) {
                Ok(r) => {
                    first.get_or_insert(r);
                }
                Err(e) => {
                    tracing::warn!(node = %n.id, call = %call_id, error = %e, "delete not confirmed")
                }
            }
        }
        first.ok_or_else(|| Failure::from("no node confirmed the delete"))
    }

    /// Commands about one party go to the node facing it; commands about
    /// the whole call go to every node, and the first reply is returned.
    fn forward(&self, body: &Value, req: &ng::Request) -> Result<Value, Failure> {
        let call_id = req.call_id.clone().unwrap_or_default();
        let placed = self
            .placed(&call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let targets: Vec<&NodeInfo> = match (&req.from_tag, req.command) {
            (_, Command::Query) => vec![&placed.nodes[0]],
            (Some(tag), _) => vec![party_node(&placed, tag)],
            (None, _) => placed.nodes.iter().collect(),
        };
        let mut first = None;
        for n in targets {
            let r = self.ask(n, body)?;
            if !is_ok(&r) {
                return Ok(r);
            }
            first.get_or_insert(r);
        }
        Ok(first.unwrap_or_else(|| dict([("result", "ok".into())])))
    }

    fn list(&self) -> Value {
        let st = self.state();
        let mut ids: Vec<&String> = st.calls.keys().collect();
        ids.sort();
        dict([
            ("result", "ok".into()),
            (
                "calls",
                Value::List(ids.into_iter().map(|s| s.as_str().into()).collect()),
            ),
        ])
    }

    fn statistics(&self) -> Value {
        let st = self.state();
        let nodes = st.registry.nodes().count() as u64;
        dict([
            ("result", "ok".into()),
            (
                "statistics",
                dict([(
                    "currentstatistics",
                    dict([
                        ("sessionsown", (st.calls.len() as u64).into()),
                        ("sessionstotal", (st.calls.len() as u64).into()),
                        ("nodes", nodes.into()),
                    ]),
                )]),
            ),
        ])
    }

    /// Forks a party's media to a resource. A resource in the party's
    /// node's region (or with no `region`) gets the media directly; one in
    /// another region gets it through a tunnel to a node there, and the
    /// party's node also records the leg locally, so nothing is lost if the
    /// tunnel fails.
    fn start_branch(&self, body: &Value, req: &ng::Request, now_ms: u64) -> Result<Value, Failure> {
        let call_id = req.call_id.clone().unwrap_or_default();
        let name = req
            .branch
            .clone()
            .ok_or(Failure::from("No branch in message"))?;
        let dest = req
            .destination
            .ok_or(Failure::from("No destination in message"))?;
        let placed = self
            .placed(&call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let tag = req
            .from_tag
            .clone()
            .unwrap_or_else(|| placed.caller_tag.clone());
        let party = party_node(&placed, &tag).clone();
        let resource_region = text_key(body, "region")?;
        let resource_region = resource_region.as_deref();
        let remote = resource_region.filter(|r| *r != party.region);
        let Some(region_name) = remote else {
            return Ok(self.ask(&party, body)?);
        };
        // A node in the resource's region terminates the branch: its
        // offerer leg is the tunnel, its answerer leg faces the resource.
        let d = region::select(
            &self.usable_registry(),
            now_ms,
            &Query {
                origin: Origin::Region(region_name.to_owned()),
                endpoint: None,
            },
        )
        .map_err(|e| Failure::Error(format!("No node for the branch: {e}")))?;
        let r = self.node_info(&d.node)?;
        let remote_id = format!("{call_id}~branch~{name}");
        let offer = dict([
            ("command", "offer".into()),
            ("call-id", remote_id.as_str().into()),
            ("from-tag", "tunnel".into()),
            ("sdp", placed.offer_sdp.as_str().into()),
            ("tunnel", dict([("side", "offerer".into())])),
        ]);
        let ro = self.ask(&r, &offer)?;
        if !is_ok(&ro) {
            return Ok(ro);
        }
        let answer_sdp = resource_sdp(&placed.offer_sdp, dest)?;
        let answer = dict([
            ("command", "answer".into()),
            ("call-id", remote_id.as_str().into()),
            ("from-tag", "tunnel".into()),
            ("to-tag", "resource".into()),
            ("sdp", answer_sdp.into()),
        ]);
        let ra = self.ask(&r, &answer)?;
        if !is_ok(&ra) {
            self.drop_call(&r, &remote_id);
            return Ok(ra);
        }
        let mut local = body.as_dict().cloned().unwrap_or_default();
        local.remove(&b"destination"[..]);
        local.remove(&b"region"[..]);
        local.insert(b"from-tag".to_vec(), tag.as_str().into());
        if let Some(t) = ro.get("tunnel") {
            local.insert(b"tunnel".to_vec(), t.clone());
        }
        let mut flags = local
            .get(&b"flags"[..])
            .and_then(Value::as_list)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        flags.push("record".into());
        local.insert(b"flags".to_vec(), Value::List(flags));
        let rl = self.ask(&party, &Value::Dict(local))?;
        if !is_ok(&rl) {
            self.drop_call(&r, &remote_id);
            return Ok(rl);
        }
        if let Some(p) = self.state().calls.get_mut(&call_id) {
            p.remote_branches.insert(name, (r.clone(), remote_id));
        }
        self.journal(&call_id);
        let mut reply = rl;
        if let Value::Dict(m) = &mut reply {
            m.insert(b"branch-node".to_vec(), r.id.as_str().into());
        }
        Ok(reply)
    }

    fn stop_branch(&self, body: &Value, req: &ng::Request) -> Result<Value, Failure> {
        let call_id = req.call_id.clone().unwrap_or_default();
        let name = req
            .branch
            .clone()
            .ok_or(Failure::from("No branch in message"))?;
        let placed = self
            .placed(&call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let mut first = None;
        for n in &placed.nodes {
            let r = self.ask(n, body)?;
            first.get_or_insert(r);
        }
        let remote = self
            .state()
            .calls
            .get_mut(&call_id)
            .and_then(|p| p.remote_branches.remove(&name));
        self.journal(&call_id);
        if let Some((node, remote_id)) = remote {
            self.drop_call(&node, &remote_id);
        }
        Ok(first.unwrap_or_else(|| dict([("result", "ok".into())])))
    }
}

/// One of rtpmesh's string keys (`callee`, `gateway`, `region`): absent,
/// or a string; anything else is the proxy's mistake, said in rtpengine's
/// words rather than routed as if the key were missing.
fn text_key(body: &Value, key: &str) -> Result<Option<String>, Failure> {
    match body.get(key) {
        None => Ok(None),
        Some(v) => v.as_str().map(|s| Some(s.to_owned())).ok_or_else(|| {
            Failure::Error(format!(
                "Invalid value for key \"{key}\": expected a string"
            ))
        }),
    }
}

/// The node facing party `tag`: A for the first offerer, else the last.
fn party_node<'a>(placed: &'a Placed, tag: &str) -> &'a NodeInfo {
    if tag == placed.caller_tag {
        &placed.nodes[0]
    } else {
        placed.nodes.last().expect("a placed call has a node")
    }
}

fn is_ok(v: &Value) -> bool {
    v.get("result").and_then(Value::as_str) == Some("ok")
}

/// The request with a `tunnel` key: the side (first offer only) and the
/// peer's address and flows from its reply's `tunnel`.
fn with_tunnel(body: &Value, side: Option<&str>, peer: Option<&Value>) -> Value {
    let mut m: Dict = body.as_dict().cloned().unwrap_or_default();
    for k in ["callee", "gateway", "region"] {
        m.remove(k.as_bytes());
    }
    let mut t = Dict::new();
    if let Some(s) = side {
        t.insert(b"side".to_vec(), s.into());
    }
    if let Some(Value::Dict(p)) = peer {
        t.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    m.insert(b"tunnel".to_vec(), Value::Dict(t));
    Value::Dict(m)
}

fn update_tunnel(call_id: &str, peer: Option<&Value>) -> Value {
    dict([
        ("command", "update tunnel".into()),
        ("call-id", call_id.into()),
        ("tunnel", peer.cloned().unwrap_or_else(|| dict([]))),
    ])
}

/// Tunnel details are between the controller and its nodes.
fn strip_tunnel(reply: &mut Value) {
    if let Value::Dict(m) = reply {
        m.remove(&b"tunnel"[..]);
    }
}

/// The host part of a gateway's `host:port`, when it is an address.
fn sip_host(sip: &str) -> Option<IpAddr> {
    sip.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| sip.parse::<IpAddr>())
        .ok()
}

/// An answer SDP that names the resource: the offer's media, each m= line
/// at `dest`'s address and `dest.port + 2i`.
fn resource_sdp(offer: &str, dest: SocketAddr) -> Result<String, Failure> {
    let parsed = sdp::parse(offer).map_err(|_| Failure::from(reason::FAILED_TO_PARSE_SDP))?;
    let media = crate::call::resource_ports(dest, parsed.media().len())
        .ok_or(Failure::from(crate::node::INVALID_DESTINATION))?
        .into_iter()
        .map(|(rtp, _)| sdp::MediaRewrite::new(rtp.ip(), rtp.port()))
        .collect();
    sdp::rewrite(
        &parsed,
        &sdp::Rewrite {
            origin: Some(dest.ip()),
            session_connection: true,
            media,
        },
    )
    .map_err(|e| Failure::Error(e.to_string()))
}
