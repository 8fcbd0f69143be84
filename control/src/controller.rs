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
//!
//! Handlers return typed [`Reply`]s (a node's reply passed on is a
//! [`Relayed`](rtpmesh_ng::ng::Relayed)); [`Controller::handle`] turns
//! them into bencode. By concern: `place` (first offer, later offers and
//! answers), `calls` (delete, forwarded commands, list, statistics,
//! sweep), `branch`, `selection` (pins, explanations, the caller's
//! origin), `journal` (placed calls in the store), `seed` (the seed file),
//! `udp_link` (nodes over UDP); the process is `crate::daemon::controller`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::region::{store::Store, Change, Decision, NodeInfo, Registry};
use rtpmesh_ng::bencode::Value;
use rtpmesh_ng::ng::{self, Failure, Op, Reply, Route};

mod branch;
mod calls;
mod journal;
mod place;
pub mod seed;
mod selection;
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
    route: Option<Route>,
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
    journal: Option<(Arc<dyn Store>, String)>,
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

    /// Handles one decoded ng request and returns the reply: the one place
    /// the controller's typed replies become bencode.
    pub fn handle(&self, body: &Value, now_ms: u64) -> Value {
        self.reply(body, now_ms).to_value()
    }

    /// Handles one decoded ng request. `body` is what the nodes are sent,
    /// with the controller's additions.
    pub fn reply(&self, body: &Value, now_ms: u64) -> Reply {
        let req = match ng::parse_request(body) {
            Ok(r) => r,
            Err(e) => return Reply::Error(e.reason()),
        };
        let o = &req.options;
        let result = match &req.op {
            Op::Ping => Ok(Reply::Pong),
            Op::Offer(offer) => self.offer(body, offer, o, now_ms),
            Op::Answer(a) => self.relay_sdp(body, &a.call_id, &a.to_tag),
            Op::Delete(c) => self.delete(body, c, o),
            Op::List { limit, after } => Ok(self.list(*limit, after.as_deref())),
            Op::Statistics => Ok(self.statistics()),
            Op::StartBranch(b) => self.start_branch(body, b, o, now_ms),
            Op::StopBranch(b) => self.stop_branch(body, b),
            Op::Query(c) => self.forward(body, c, true),
            Op::StartRecording(c)
            | Op::StopRecording(c)
            | Op::BlockMedia(c)
            | Op::UnblockMedia(c)
            | Op::UpdateTunnel(c) => self.forward(body, c, false),
        };
        result.unwrap_or_else(|f| {
            if let Failure::Error(r) = &f {
                tracing::info!(command = req.command().name(), call = ?req.call_id(), reason = %r, "ng error");
            }
            f.into_reply(req.supports_load_limit())
        })
    }

    fn placed(&self, call_id: &str) -> Option<Placed> {
        self.state().calls.get(call_id).cloned()
    }

    fn ask(&self, node: &NodeInfo, body: &Value) -> Result<Value, LinkError> {
        self.link.request(node, body)
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
