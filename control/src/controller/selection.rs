//! Node selection as the controller runs it: explanations, decisions
//! pinned ahead of their offer, and where a call comes from.

use std::net::{IpAddr, SocketAddr};

use super::{text_key, Controller, NodeLink, Pin, DECISIONS_KEPT, PIN_TTL_MS};
use crate::region::{self, Decision, NoRoute, NodeInfo, Origin, Query};
use rtpmesh_ng::bencode::Value;
use rtpmesh_ng::ng::Failure;

impl<L: NodeLink> Controller<L> {
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
    pub(super) fn take_pin(
        &self,
        call_id: &str,
        endpoint: Option<&str>,
        now_ms: u64,
    ) -> Option<Decision> {
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

    /// Where the call comes from: an explicit `gateway` or `region` key,
    /// else the gateway whose SIP address is the request's
    /// `received-from`, else this controller's region.
    pub(super) fn origin(
        &self,
        body: &Value,
        received_from: Option<IpAddr>,
    ) -> Result<Origin, Failure> {
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

    pub(super) fn record_decision(&self, call_id: &str, result: &Result<Decision, NoRoute>) {
        let text = region::explain(result);
        tracing::info!(call = %call_id, decision = %text.replace('\n', "; "), "route selected");
        let mut st = self.state();
        st.decisions.push_back((call_id.to_owned(), text));
        if st.decisions.len() > DECISIONS_KEPT {
            st.decisions.pop_front();
        }
    }

    pub(super) fn node_info(&self, id: &str) -> Result<NodeInfo, Failure> {
        self.state()
            .registry
            .node(id)
            .cloned()
            .ok_or_else(|| Failure::Error(format!("node {id} vanished from the registry")))
    }
}

/// The host part of a gateway's `host:port`, when it is an address.
fn sip_host(sip: &str) -> Option<IpAddr> {
    sip.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| sip.parse::<IpAddr>())
        .ok()
}
