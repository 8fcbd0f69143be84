//! Commands about placed calls as a whole: delete, the ones forwarded to
//! the nodes, list and statistics, and the sweep that forgets calls their
//! nodes no longer hold.

use std::collections::{HashMap, HashSet};

use super::{is_ok, party_node, Controller, NodeLink, PIN_TTL_MS};
use crate::region::NodeInfo;
use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng::ng::{
    list_page, reason, CallRef, Failure, Options, Relayed, Reply, Statistics, DEFAULT_LIST_LIMIT,
};

/// Call-ids the sweep asks a node for at a time: 256 SIP-length (~100
/// byte) Call-IDs make a reply of about 26 KB, well under a datagram (and
/// a node cuts a page of longer ones to fit).
const SWEEP_PAGE: usize = 256;

impl<L: NodeLink> Controller<L> {
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
            let Some(held) = self.held(&node) else {
                continue;
            };
            gone.extend(ids.into_iter().filter(|id| !held.contains(id)));
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

    /// Every call-id `node` holds, asked for a page at a time (`list` with
    /// `limit` and the `after` cursor), so that no reply comes near the
    /// datagram limit however many calls the node has. `None` when the
    /// node does not answer, or does not page (a node that ignores `after`,
    /// as rtpengine does, would repeat its first page): nothing is known.
    fn held(&self, node: &NodeInfo) -> Option<HashSet<String>> {
        let mut held = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = vec![
                ("command", "list".into()),
                ("limit", (SWEEP_PAGE as u64).into()),
            ];
            if let Some(a) = &after {
                req.push(("after", a.as_str().into()));
            }
            let r = self.ask(node, &dict(req)).ok()?;
            let page: Vec<&str> = r
                .get("calls")
                .and_then(Value::as_list)?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let Some(last) = page.iter().max() else {
                return Some(held);
            };
            if after
                .as_deref()
                .is_some_and(|a| page.iter().any(|id| *id <= a))
            {
                tracing::warn!(node = %node.id, "node does not page its call list: not swept");
                return None;
            }
            after = Some((*last).to_owned());
            held.extend(page.into_iter().map(str::to_owned));
        }
    }

    pub(super) fn delete(&self, body: &Value, c: &CallRef, o: &Options) -> Result<Reply, Failure> {
        let call_id = &c.call_id;
        let placed = {
            let mut st = self.state();
            // A call refused before its offer leaves no pin behind.
            st.pins.remove(call_id);
            st.calls.remove(call_id)
        };
        self.journal(call_id);
        let Some(placed) = placed else {
            if o.flags.fatal {
                return Err(reason::UNKNOWN_CALL_ID.into());
            }
            return Ok(Reply::ok_with_warning(reason::DELETE_NOT_FOUND));
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
        first
            .map(|r| Reply::Relayed(Relayed::of(r)))
            .ok_or_else(|| Failure::from("no node confirmed the delete"))
    }

    /// Commands about one party go to the node facing it; commands about
    /// the whole call go to every node, and the first reply is returned. A
    /// query goes to the caller's node.
    pub(super) fn forward(&self, body: &Value, c: &CallRef, query: bool) -> Result<Reply, Failure> {
        let placed = self
            .placed(&c.call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let targets: Vec<&NodeInfo> = match &c.from_tag {
            _ if query => vec![&placed.nodes[0]],
            Some(tag) => vec![party_node(&placed, tag)],
            None => placed.nodes.iter().collect(),
        };
        let mut first = None;
        for n in targets {
            let r = self.ask(n, body)?;
            if !is_ok(&r) {
                return Ok(Reply::Relayed(Relayed::of(r)));
            }
            first.get_or_insert(r);
        }
        Ok(first.map_or_else(Reply::ok, |r| Reply::Relayed(Relayed::of(r))))
    }

    /// The placed calls' ids, paged as a node pages them (`limit`, 32 by
    /// default as rtpengine; the `after` cursor; cut to fit a datagram).
    pub(super) fn list(&self, limit: Option<u32>, after: Option<&str>) -> Reply {
        let st = self.state();
        let limit = limit.map_or(DEFAULT_LIST_LIMIT, |l| l as usize);
        Reply::Calls(list_page(st.calls.keys().map(String::as_str), after, limit))
    }

    pub(super) fn statistics(&self) -> Reply {
        let st = self.state();
        let calls = st.calls.len() as u64;
        let nodes = st.registry.nodes().count() as u64;
        Reply::Statistics(Statistics::new().section(
            "currentstatistics",
            [
                ("sessionsown", calls),
                ("sessionstotal", calls),
                ("nodes", nodes),
            ],
        ))
    }
}
