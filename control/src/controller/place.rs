//! Placing a call: the first offer picks its nodes and programs them (two
//! nodes joined by a tunnel for a cross-region call); later offers and
//! answers go to the same nodes, and each side's tunnel flows are passed
//! to the other (`update tunnel`).

use std::collections::HashMap;

use super::{is_ok, text_key, Controller, LinkError, NodeLink, Placed};
use crate::region::{self, Decision, NodeInfo, Query};
use rtpmesh_ng::bencode::{dict, Dict, Value};
use rtpmesh_ng::ng::{reason, Failure, Offer, Options, Relayed, Reply, Route};

/// Why placing on a decision's nodes failed: the node that did not answer
/// (so selection can run again without it), if it was a node's fault.
type PlaceError = (Option<String>, LinkError);

impl<L: NodeLink> Controller<L> {
    pub(super) fn offer(
        &self,
        body: &Value,
        offer: &Offer,
        o: &Options,
        now_ms: u64,
    ) -> Result<Reply, Failure> {
        let call_id = &offer.call_id;
        if self.placed(call_id).is_some() {
            return self.relay_sdp(body, call_id, &offer.from_tag);
        }
        let endpoint = text_key(body, "callee")?;
        // A decision the proxy already acted on (it sent the INVITE to that
        // decision's gateway) is kept if it still can be.
        if let Some(mut d) = self.take_pin(call_id, endpoint.as_deref(), now_ms) {
            d.reasons
                .push("pinned by a route lookup for this call".into());
            self.record_decision(call_id, &Ok(d.clone()));
            match self.place(body, offer, &d, now_ms) {
                Ok(v) => return Ok(v),
                Err((Some(node), e)) => {
                    tracing::warn!(call = %call_id, %node, error = %e, "pinned node failed: selecting again");
                    self.suspect(&node, now_ms);
                }
                Err((None, e)) => return Err(e.into()),
            }
        }
        let origin = self.origin(body, o.received_from)?;
        let query = Query { origin, endpoint };
        // A node that does not answer is set aside and the selection runs
        // again without it: the proxy sees one slower offer, not a failure.
        let mut last = Failure::from("no relay node answered");
        for _ in 0..3 {
            let result = region::select(&self.usable_registry(), now_ms, &query);
            self.record_decision(call_id, &result);
            let decision = match result {
                Ok(d) => d,
                Err(e) if e.is_load_limit() => return Err(Failure::LoadLimit),
                Err(e) => return Err(Failure::Error(format!("No route: {e}"))),
            };
            match self.place(body, offer, &decision, now_ms) {
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

    /// Programs the nodes a decision names and records the placed call.
    fn place(
        &self,
        body: &Value,
        offer: &Offer,
        d: &Decision,
        now_ms: u64,
    ) -> Result<Reply, PlaceError> {
        let call_id = &offer.call_id;
        let fail = |f: Failure| {
            let e = LinkError::Failed {
                node: String::new(),
                reason: f.reason().to_owned(),
            };
            (None, e)
        };
        let a = self.node_info(&d.node).map_err(fail)?;
        let route = d.callee.as_ref().map(|c| Route {
            endpoint: c.endpoint.clone(),
            gateway: c.gateway.clone(),
            sip: c.sip.clone(),
            region: c.region.clone(),
            node: d.node.clone(),
            callee_node: c.node.clone().unwrap_or_else(|| d.node.clone()),
        });
        let b = match d.callee.as_ref().and_then(|c| c.node.as_deref()) {
            Some(b) => Some(self.node_info(b).map_err(fail)?),
            None => None,
        };
        let mut reply = match &b {
            None => self.ask(&a, body).map_err(|e| (Some(a.id.clone()), e))?,
            Some(b) => self.place_pair(body, call_id, &a, b)?,
        };
        if !is_ok(&reply) {
            // A node's own refusal (load limit, bad SDP) goes back to the
            // proxy as it is.
            return Ok(Reply::Relayed(Relayed::of(reply)));
        }
        strip_tunnel(&mut reply);
        let nodes = std::iter::once(a).chain(b).collect();
        self.state().calls.insert(
            call_id.clone(),
            Placed {
                caller_tag: offer.from_tag.clone(),
                nodes,
                route: route.clone(),
                offer_sdp: offer.sdp.clone(),
                remote_branches: HashMap::new(),
                placed_ms: now_ms,
            },
        );
        self.journal(call_id);
        Ok(Reply::Relayed(Relayed {
            route,
            ..Relayed::of(reply)
        }))
    }

    /// The first offer of a cross-region call: A (facing the caller) gets
    /// it with its answerer leg on the tunnel, B with its offerer leg on
    /// the tunnel and A's flows, and A then learns B's flows. Returns B's
    /// reply, which holds the SDP for the callee; a node that refuses
    /// leaves nothing behind on the other.
    fn place_pair(
        &self,
        body: &Value,
        call_id: &str,
        a: &NodeInfo,
        b: &NodeInfo,
    ) -> Result<Value, PlaceError> {
        let ra = self
            .ask(a, &with_tunnel(body, Some("answerer"), None))
            .map_err(|e| (Some(a.id.clone()), e))?;
        if !is_ok(&ra) {
            return Ok(ra);
        }
        let rb = match self.ask(b, &with_tunnel(body, Some("offerer"), ra.get("tunnel"))) {
            Ok(r) => r,
            Err(e) => {
                self.drop_call(a, call_id);
                return Err((Some(b.id.clone()), e));
            }
        };
        if !is_ok(&rb) {
            self.drop_call(a, call_id);
            return Ok(rb);
        }
        let update = update_tunnel(call_id, rb.get("tunnel"));
        if let Err(e) = self.ask(a, &update) {
            self.drop_call(a, call_id);
            self.drop_call(b, call_id);
            return Err((Some(a.id.clone()), e));
        }
        Ok(rb)
    }

    /// Best-effort cleanup of a half-placed call.
    pub(super) fn drop_call(&self, node: &NodeInfo, call_id: &str) {
        let body = dict([
            ("command", "delete".into()),
            ("call-id", call_id.into()),
            ("delete-delay", 0u64.into()),
        ]);
        if let Err(e) = self.ask(node, &body) {
            tracing::warn!(node = %node.id, call = %call_id, error = %e, "cannot clean up half-placed call");
        }
    }

    /// A later offer or an answer on a placed call; `sender` is the party
    /// whose SDP it carries (the offer's from-tag, the answer's to-tag).
    pub(super) fn relay_sdp(
        &self,
        body: &Value,
        call_id: &str,
        sender: &str,
    ) -> Result<Reply, Failure> {
        let placed = self
            .placed(call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let mut reply = if placed.nodes.len() == 1 {
            self.ask(&placed.nodes[0], body)?
        } else {
            // The node facing the sender learns its SDP first.
            let (first, second) = if sender == placed.caller_tag {
                (&placed.nodes[0], &placed.nodes[1])
            } else {
                (&placed.nodes[1], &placed.nodes[0])
            };
            let r1 = self.ask(first, body)?;
            if !is_ok(&r1) {
                return Ok(Reply::Relayed(Relayed::of(r1)));
            }
            let r2 = self.ask(second, &with_tunnel(body, None, r1.get("tunnel")))?;
            if is_ok(&r2) {
                self.ask(first, &update_tunnel(call_id, r2.get("tunnel")))?;
            }
            r2
        };
        strip_tunnel(&mut reply);
        Ok(Reply::Relayed(Relayed {
            route: placed.route,
            ..Relayed::of(reply)
        }))
    }
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
