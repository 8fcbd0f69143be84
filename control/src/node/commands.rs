//! The node's ng commands: each takes its typed request and returns a typed
//! reply or the failure rtpengine would report.

use std::time::Duration;

use rtpmesh_flow::flow::Latching;

use super::negotiate::{build_answer, build_offer};
use super::report::call_report;
use super::{Node, Now, INVALID_DESTINATION, RECORDING};
use crate::call::{Branch, BranchTarget, Call, Leg, TunnelLink};
use crate::plane::MediaPlane;
use rtpmesh_ng::ng::{
    list_page, reason, Answer, BranchRef, CallRef, Failure, Offer, Options, Reply, Statistics,
    TunnelEnd, TunnelSide, DEFAULT_LIST_LIMIT, MAX_MEDIA_SECTIONS,
};
use rtpmesh_ng::sdp;

/// Parses a request's SDP; what was wrong goes to the log, the reply gets
/// rtpengine's text.
/// Refuses SDP with more than [`MAX_MEDIA_SECTIONS`] m= lines, before any
/// port is taken.
fn parse_sdp(text: &str, call_id: &str) -> Result<sdp::SessionDescription, Failure> {
    let parsed = sdp::parse(text).map_err(|e| {
        tracing::info!(error = %e, call = %call_id, "SDP rejected");
        match e {
            // rtpengine ignores a bad key; rtpmesh says which line, since a
            // key it cannot read would make a leg that never decrypts.
            sdp::SdpError::BadCrypto { .. } | sdp::SdpError::BadFingerprint { .. } => {
                Failure::Error(format!("{}: {e}", reason::FAILED_TO_PARSE_SDP))
            }
            _ => Failure::from(reason::FAILED_TO_PARSE_SDP),
        }
    })?;
    if parsed.media().len() > MAX_MEDIA_SECTIONS {
        tracing::info!(call = %call_id, media = parsed.media().len(), "SDP rejected: too many m= lines");
        return Err(reason::TOO_MANY_MEDIA.into());
    }
    Ok(parsed)
}

impl Node {
    pub(super) fn offer(
        &mut self,
        offer: &Offer,
        o: &Options,
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Result<Reply, Failure> {
        let call_id = &offer.call_id;
        let mut parsed = parse_sdp(&offer.sdp, call_id)?;
        let offered = super::flags::offer_codecs(&mut parsed, o)?;
        let is_new = !self.calls.contains_key(call_id);
        if is_new {
            self.admit(offer, o, now, plane)?;
        }
        let call = self.calls.get_mut(call_id).expect("admitted above");
        if !is_new {
            set_tunnel_peer(call, o);
        }
        let offerer = call.leg_index(&offer.from_tag).unwrap_or(0);
        match build_offer(call, offerer, o, &parsed, now, plane, &mut self.security) {
            Ok(sdp) => {
                // A signal after a delayed delete keeps the call, as in
                // rtpengine: Kamailio re-offers on the same Call-ID after a
                // failover or a 401/407 challenge.
                call.delete_at_ms = None;
                call.signalled.offered = offered;
                for l in call.locals() {
                    self.flows.insert(l.rtp.flow, call_id.clone());
                    self.flows.insert(l.rtcp.flow, call_id.clone());
                }
                plane.install(call.worker, call.flow_specs());
                Ok(Reply::Sdp {
                    sdp,
                    tunnel: tunnel_end(call),
                })
            }
            Err(f) => {
                if is_new {
                    self.stats.managed -= 1;
                    self.remove(call_id, plane);
                }
                Err(f)
            }
        }
    }

    /// Creates the call a first offer names, within the session limit,
    /// with its tunnel leg when the controller asks for one.
    fn admit(
        &mut self,
        offer: &Offer,
        o: &Options,
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Result<(), Failure> {
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
            leg(offer.from_tag.clone()),
            leg(offer.to_tag.clone().unwrap_or_default()),
        ];
        if let Some((t, side)) = o.tunnel.as_ref().and_then(|t| Some((t, t.side?))) {
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
            offer.call_id.clone(),
            Call {
                id: offer.call_id.clone(),
                created: now.unix,
                last_signal: now.unix,
                last_signal_ms: now.ms,
                worker,
                legs,
                latching: Latching::Learn,
                delete_at_ms: None,
                branches: Vec::new(),
                recordings: Vec::new(),
                signalled: Default::default(),
            },
        );
        self.stats.managed += 1;
        Ok(())
    }

    pub(super) fn answer(
        &mut self,
        answer: &Answer,
        o: &Options,
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Result<Reply, Failure> {
        let call = self
            .calls
            .get_mut(&answer.call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))?;
        let mut parsed = parse_sdp(&answer.sdp, &answer.call_id)?;
        super::flags::answer_codecs(&mut parsed, o, &call.signalled.offered);
        let offerer = call.leg_index(&answer.from_tag).unwrap_or(0);
        let answerer = 1 - offerer;
        if call.legs[answerer].tag.is_empty() {
            call.legs[answerer].tag = answer.to_tag.clone();
        }
        set_tunnel_peer(call, o);
        let sdp = build_answer(call, offerer, answerer, o, &parsed, now, &mut self.security)?;
        // As an offer does: the answer cancels a pending delete.
        call.delete_at_ms = None;
        plane.install(call.worker, call.flow_specs());
        Ok(Reply::Sdp {
            sdp,
            tunnel: tunnel_end(call),
        })
    }

    /// The call a request names, or rtpengine's error.
    fn call_of(&mut self, c: &CallRef) -> Result<&mut Call, Failure> {
        self.calls
            .get_mut(&c.call_id)
            .ok_or(Failure::from(reason::UNKNOWN_CALL_ID))
    }

    /// The legs a request names by `from-tag`: that party's, or both.
    fn legs_of(call: &Call, c: &CallRef) -> Result<Vec<usize>, Failure> {
        match &c.from_tag {
            Some(tag) => call
                .leg_index(tag)
                .map(|l| vec![l])
                .ok_or(Failure::from(reason::UNKNOWN_TAG)),
            None => Ok(vec![0, 1]),
        }
    }

    pub(super) fn update_tunnel(
        &mut self,
        c: &CallRef,
        o: &Options,
        plane: &mut dyn MediaPlane,
    ) -> Result<Reply, Failure> {
        let call = self.call_of(c)?;
        if o.tunnel.is_none() || !call.legs.iter().any(|l| l.tunnel.is_some()) {
            return Err(Failure::from("No tunnel leg in call"));
        }
        set_tunnel_peer(call, o);
        plane.install(call.worker, call.flow_specs());
        Ok(Reply::Tunnel(tunnel_end(call)))
    }

    pub(super) fn block(
        &mut self,
        c: &CallRef,
        blocked: bool,
        plane: &mut dyn MediaPlane,
    ) -> Result<Reply, Failure> {
        let call = self.call_of(c)?;
        for l in Self::legs_of(call, c)? {
            call.legs[l].blocked = blocked;
        }
        plane.install(call.worker, call.flow_specs());
        Ok(Reply::ok())
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
                // The recording hears the socket the copies leave from
                // and no one else.
                let source = call
                    .branch_source(l, i)
                    .ok_or_else(|| Failure::Error(format!("no stream {}", i + 1)))?;
                let (id, addr) = plane
                    .record(&call.id, &call.legs[l].tag, i + 1, source)
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

    pub(super) fn start_recording(
        &mut self,
        c: &CallRef,
        plane: &mut dyn MediaPlane,
    ) -> Result<Reply, Failure> {
        let call = self.call_of(c)?;
        if !call.branches.iter().any(|b| b.name == RECORDING) {
            let legs = Self::legs_of(call, c)?;
            if let Err(f) = Self::record_legs(call, &legs, RECORDING, plane) {
                drop_branch(call, RECORDING, plane);
                return Err(f);
            }
            plane.install(call.worker, call.flow_specs());
        }
        Ok(Reply::ok())
    }

    pub(super) fn start_branch(
        &mut self,
        b: &BranchRef,
        o: &Options,
        plane: &mut dyn MediaPlane,
    ) -> Result<Reply, Failure> {
        let name = &b.branch;
        if name == RECORDING {
            return Err(Failure::from("Branch name reserved"));
        }
        let call = self.call_of(&b.call)?;
        if call.branches.iter().any(|x| &x.name == name) {
            return Err(Failure::from("Branch exists"));
        }
        let legs = Self::legs_of(call, &b.call)?;
        let target = branch_target(call, legs[0], o, plane)?;
        for &l in &legs {
            call.branches.push(Branch {
                name: name.clone(),
                leg: l,
                target: target.clone(),
            });
        }
        if o.flags.unknown.iter().any(|f| f == "record") {
            if let Err(f) = Self::record_legs(call, &legs, name, plane) {
                drop_branch(call, name, plane);
                return Err(f);
            }
        }
        plane.install(call.worker, call.flow_specs());
        Ok(Reply::ok())
    }

    pub(super) fn stop_branch(
        &mut self,
        c: &CallRef,
        name: &str,
        plane: &mut dyn MediaPlane,
    ) -> Result<Reply, Failure> {
        let call = self.call_of(c)?;
        if drop_branch(call, name, plane) {
            plane.install(call.worker, call.flow_specs());
        }
        Ok(Reply::ok())
    }

    pub(super) fn delete(
        &mut self,
        c: &CallRef,
        o: &Options,
        now: Now,
        plane: &mut dyn MediaPlane,
    ) -> Result<Reply, Failure> {
        let Some(call) = self.calls.get_mut(&c.call_id) else {
            if o.flags.fatal {
                return Err(reason::UNKNOWN_CALL_ID.into());
            }
            return Ok(Reply::ok_with_warning(reason::DELETE_NOT_FOUND));
        };
        let delay = o
            .delete_delay
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(self.config.delete_delay);
        let report = call_report(call, now);
        if delay.is_zero() {
            self.stats.deleted += 1;
            self.remove(&c.call_id, plane);
        } else if call.delete_at_ms.is_none() {
            call.delete_at_ms = Some(now.ms + delay.as_millis() as u64);
        }
        Ok(Reply::Report(report))
    }

    pub(super) fn query(&mut self, c: &CallRef, now: Now) -> Result<Reply, Failure> {
        let call = self.call_of(c)?;
        Ok(Reply::Report(call_report(call, now)))
    }

    /// Call-ids in order, after the `after` cursor, at most `limit` (32
    /// by default, as rtpengine) and never more than fit in one reply.
    pub(super) fn list(&self, limit: Option<u32>, after: Option<&str>) -> Reply {
        let limit = limit.map_or(DEFAULT_LIST_LIMIT, |l| l as usize);
        Reply::Calls(list_page(
            self.calls.keys().map(String::as_str),
            after,
            limit,
        ))
    }

    pub(super) fn statistics(&self, now: Now, plane: &dyn MediaPlane) -> Reply {
        let totals = self.totals();
        let (packetrate, byterate, errorrate) = self.stats.rates;
        let sessions = self.calls.len() as u64;
        let t = plane.tunnel_totals();
        Reply::Statistics(
            Statistics::new()
                .section(
                    "currentstatistics",
                    [
                        ("sessionsown", sessions),
                        ("sessionsforeign", 0),
                        ("sessionstotal", sessions),
                        ("transcodedmedia", 0),
                        ("packetrate", packetrate),
                        ("byterate", byterate),
                        ("errorrate", errorrate),
                    ],
                )
                .section(
                    "totalstatistics",
                    [
                        ("uptime", now.unix.saturating_sub(self.stats.started_unix)),
                        ("managedsessions", self.stats.managed),
                        ("rejectedsessions", self.stats.rejected),
                        ("timeoutsessions", self.stats.timeouts),
                        ("regularterminatedsessions", self.stats.deleted),
                        ("packetsrelayed", totals.packets()),
                        ("bytesrelayed", totals.bytes()),
                        ("packetserrors", totals.errors),
                    ],
                )
                .section(
                    "fastpath",
                    [
                        ("enabled", u64::from(plane.fast_path_entries().is_some())),
                        ("entries", u64::from(plane.fast_path_entries().unwrap_or(0))),
                        ("packets", totals.offloaded),
                    ],
                )
                .section(
                    "tunnel",
                    [
                        ("packets", t.rtp_packets + t.rtcp_packets),
                        ("authfailures", t.tunnel_auth_failures),
                        ("replays", t.tunnel_replays),
                        ("unknownflows", t.tunnel_unknown_flow),
                        ("malformed", t.malformed),
                    ],
                ),
        )
    }
}

/// Where a new branch of leg `leg` sends media: through the tunnel the
/// request names, or to its `destination`.
fn branch_target(
    call: &Call,
    leg: usize,
    o: &Options,
    plane: &mut dyn MediaPlane,
) -> Result<BranchTarget, Failure> {
    match (&o.tunnel, o.destination) {
        (Some(t), _) => {
            let (via, _) = plane
                .tunnel(call.worker)
                .map_err(|e| Failure::Error(e.to_string()))?;
            Ok(BranchTarget::Tunnel {
                via,
                peer: t
                    .address
                    .ok_or(Failure::from("No tunnel address in message"))?,
                flows: t.flows.clone(),
            })
        }
        (None, Some(d)) => {
            let n = call.legs[leg].streams.len();
            Ok(BranchTarget::Direct(
                crate::call::resource_ports(d, n).ok_or(Failure::from(INVALID_DESTINATION))?,
            ))
        }
        (None, None) => Err(Failure::from("No destination in message")),
    }
}

/// Removes branch `name` and finishes its recordings; false if there was
/// none.
pub(super) fn drop_branch(call: &mut Call, name: &str, plane: &mut dyn MediaPlane) -> bool {
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
fn set_tunnel_peer(call: &mut Call, o: &Options) {
    let Some(t) = &o.tunnel else { return };
    if let Some(link) = call.legs.iter_mut().find_map(|l| l.tunnel.as_mut()) {
        if t.address.is_some() {
            link.peer = t.address;
        }
        if !t.flows.is_empty() {
            link.flows = t.flows.clone();
        }
    }
}

/// The call's tunnel end for the `tunnel` reply key: where the peer node
/// sends this call's tunnel leg media, and the flow ids it addresses.
fn tunnel_end(call: &Call) -> Option<TunnelEnd> {
    let l = call.legs.iter().position(|l| l.tunnel.is_some())?;
    let link = call.legs[l].tunnel.as_ref()?;
    Some(TunnelEnd {
        address: link.local,
        flows: call.tunnel_flows(l),
    })
}
