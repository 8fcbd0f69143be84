//! The call journal: placed calls kept in the region store, so that a
//! restarted controller still knows which nodes carry each call.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Controller, NodeLink, Placed};
use crate::region::{store::Store, NodeInfo};
use rtpmesh_ng::ng::Route;

/// A placed call as the journal keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PlacedRecord {
    caller_tag: String,
    nodes: Vec<NodeInfo>,
    route: Option<BTreeMap<String, String>>,
    offer_sdp: String,
    remote_branches: Vec<(String, NodeInfo, String)>,
    placed_ms: u64,
}

impl PlacedRecord {
    fn of(p: &Placed) -> Self {
        let route = p.route.as_ref().map(|r| {
            r.fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
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
            route: self.route.map(|r| route_of(&r)),
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

/// A journaled `route`: the keys in wire spelling, as written by
/// [`PlacedRecord::of`]; a key missing from an old record reads as empty.
fn route_of(r: &BTreeMap<String, String>) -> Route {
    let key = |k: &str| r.get(k).cloned().unwrap_or_default();
    Route {
        endpoint: key("endpoint"),
        gateway: key("gateway"),
        sip: key("sip"),
        region: key("region"),
        node: key("node"),
        callee_node: key("callee-node"),
    }
}

impl<L: NodeLink> Controller<L> {
    /// Keeps placed calls in `store` under `name` (one name per
    /// controller), so that [`Controller::recover`] after a restart knows
    /// which nodes carry them.
    pub fn with_journal(mut self, store: Arc<dyn Store>, name: &str) -> Self {
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
    pub(super) fn journal(&self, call_id: &str) {
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
}
