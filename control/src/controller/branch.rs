//! Branches: forking a party's media to a resource, here or (through a
//! tunnel to a node there) in another region.

use std::net::SocketAddr;

use super::{is_ok, party_node, text_key, Controller, NodeLink};
use crate::region::{self, NodeInfo, Origin, Query};
use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng::ng::{reason, BranchRef, Failure, Options, Relayed, Reply};
use rtpmesh_ng::sdp;

impl<L: NodeLink> Controller<L> {
    /// Forks a party's media to a resource. A resource in the party's
    /// node's region (or with no `region`) gets the media directly; one in
    /// another region gets it through a tunnel to a node there, and the
    /// party's node also records the leg locally, so nothing is lost if the
    /// tunnel fails.
    pub(super) fn start_branch(
        &self,
        body: &Value,
        b: &BranchRef,
        o: &Options,
        now_ms: u64,
    ) -> Result<Reply, Failure> {
        let dest = o
            .destination
            .ok_or(Failure::from("No destination in message"))?;
        let placed = self
            .placed(&b.call.call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let tag = b
            .call
            .from_tag
            .clone()
            .unwrap_or_else(|| placed.caller_tag.clone());
        let party = party_node(&placed, &tag).clone();
        let resource_region = text_key(body, "region")?;
        let remote = resource_region.filter(|r| *r != party.region);
        let Some(region_name) = remote else {
            return Ok(Reply::Relayed(Relayed::of(self.ask(&party, body)?)));
        };
        let branch = RemoteBranch {
            body,
            b,
            tag: &tag,
            party: &party,
            dest,
            offer_sdp: &placed.offer_sdp,
        };
        self.start_remote_branch(&branch, &region_name, now_ms)
    }

    /// A branch to a resource in `region_name`: a node there terminates
    /// it (its offerer leg is the tunnel, its answerer leg faces the
    /// resource), and the party's node sends the leg into the tunnel and
    /// records it.
    fn start_remote_branch(
        &self,
        rb: &RemoteBranch<'_>,
        region_name: &str,
        now_ms: u64,
    ) -> Result<Reply, Failure> {
        let call_id = &rb.b.call.call_id;
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
        let remote_id = format!("{call_id}~branch~{}", rb.b.branch);
        let offer = dict([
            ("command", "offer".into()),
            ("call-id", remote_id.as_str().into()),
            ("from-tag", "tunnel".into()),
            ("sdp", rb.offer_sdp.into()),
            ("tunnel", dict([("side", "offerer".into())])),
        ]);
        let ro = self.ask(&r, &offer)?;
        if !is_ok(&ro) {
            return Ok(Reply::Relayed(Relayed::of(ro)));
        }
        let answer = dict([
            ("command", "answer".into()),
            ("call-id", remote_id.as_str().into()),
            ("from-tag", "tunnel".into()),
            ("to-tag", "resource".into()),
            ("sdp", resource_sdp(rb.offer_sdp, rb.dest)?.into()),
        ]);
        let ra = self.ask(&r, &answer)?;
        if !is_ok(&ra) {
            self.drop_call(&r, &remote_id);
            return Ok(Reply::Relayed(Relayed::of(ra)));
        }
        let rl = self.ask(rb.party, &rb.local_request(ro.get("tunnel")))?;
        if !is_ok(&rl) {
            self.drop_call(&r, &remote_id);
            return Ok(Reply::Relayed(Relayed::of(rl)));
        }
        if let Some(p) = self.state().calls.get_mut(call_id) {
            p.remote_branches
                .insert(rb.b.branch.clone(), (r.clone(), remote_id));
        }
        self.journal(call_id);
        Ok(Reply::Relayed(Relayed {
            branch_node: Some(r.id),
            ..Relayed::of(rl)
        }))
    }

    pub(super) fn stop_branch(&self, body: &Value, b: &BranchRef) -> Result<Reply, Failure> {
        let call_id = &b.call.call_id;
        let placed = self
            .placed(call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let mut first = None;
        for n in &placed.nodes {
            let r = self.ask(n, body)?;
            first.get_or_insert(r);
        }
        let remote = self
            .state()
            .calls
            .get_mut(call_id)
            .and_then(|p| p.remote_branches.remove(&b.branch));
        self.journal(call_id);
        if let Some((node, remote_id)) = remote {
            self.drop_call(&node, &remote_id);
        }
        Ok(first.map_or_else(Reply::ok, |r| Reply::Relayed(Relayed::of(r))))
    }
}

/// What a cross-region branch needs from the `start branch` request.
struct RemoteBranch<'a> {
    body: &'a Value,
    b: &'a BranchRef,
    /// The party whose media is forked.
    tag: &'a str,
    /// The node facing that party.
    party: &'a NodeInfo,
    dest: SocketAddr,
    /// The call's first offer, which the branch's node is offered too.
    offer_sdp: &'a str,
}

impl RemoteBranch<'_> {
    /// The request for the party's node: the branch goes into the tunnel
    /// to the remote node (`tunnel` from its offer reply) and is recorded
    /// locally too.
    fn local_request(&self, tunnel: Option<&Value>) -> Value {
        let mut local = self.body.as_dict().cloned().unwrap_or_default();
        local.remove(&b"destination"[..]);
        local.remove(&b"region"[..]);
        local.insert(b"from-tag".to_vec(), self.tag.into());
        if let Some(t) = tunnel {
            local.insert(b"tunnel".to_vec(), t.clone());
        }
        let mut flags = local
            .get(&b"flags"[..])
            .and_then(Value::as_list)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        flags.push("record".into());
        local.insert(b"flags".to_vec(), Value::List(flags));
        Value::Dict(local)
    }
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
