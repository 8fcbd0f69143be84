//! Call records: what a node keeps in the registry's store about each call,
//! so that a restarted node can take its calls back on the same ports and
//! the same flow ids (peers address tunnel legs by flow id).
//!
//! Counters and latched addresses are not kept: a restored call counts
//! from zero and learns its peers again from their next packets.
//! Recordings are not resumed (their files were finalized when the node
//! stopped); other branches are.

use std::net::{IpAddr, SocketAddr};

use rtpmesh_flow::flow::{FlowId, Latching};
use serde::{Deserialize, Serialize};

use crate::call::{Branch, BranchTarget, Call, Leg, Local, Remote, Stream, TunnelLink};
use crate::plane::{MediaPlane, PlaneError};

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    id: String,
    created: u64,
    worker: usize,
    latching: String,
    legs: Vec<LegRecord>,
    #[serde(default)]
    branches: Vec<BranchRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LegRecord {
    tag: String,
    created: u64,
    blocked: bool,
    tunnel: Option<TunnelRecord>,
    streams: Vec<StreamRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TunnelRecord {
    peer: Option<SocketAddr>,
    flows: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StreamRecord {
    index: usize,
    kind: String,
    protocol: String,
    ip: IpAddr,
    advertised_ip: IpAddr,
    port: u16,
    /// Whether the stream has sockets: the inverse of
    /// [`Local::socketless`], kept under its first name and meaning so
    /// that records written before the rename still read the same.
    bound: bool,
    /// Flow ids, stored as u64 since before flow ids were 32 bits; one
    /// beyond 32 bits is refused on restore.
    rtp_flow: u64,
    rtcp_flow: u64,
    remote: Option<(SocketAddr, SocketAddr)>,
    advertised: Option<SocketAddr>,
    mux_offered: bool,
    mux: bool,
    mux_accept: bool,
    clock_rate: u32,
    ptime: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BranchRecord {
    name: String,
    leg: usize,
    direct: Vec<(SocketAddr, SocketAddr)>,
    tunnel: Option<(SocketAddr, Vec<(u32, u32)>)>,
}

fn latching_name(l: Latching) -> &'static str {
    match l {
        Latching::Learn => "learn",
        Latching::Strict => "strict",
        Latching::Asymmetric => "asymmetric",
    }
}

impl CallRecord {
    /// The record of a call.
    pub fn of(call: &Call) -> Self {
        let recorded: Vec<&str> = call.recordings.iter().map(|(b, _)| b.as_str()).collect();
        Self {
            id: call.id.clone(),
            created: call.created,
            worker: call.worker,
            latching: latching_name(call.latching).into(),
            legs: call
                .legs
                .iter()
                .map(|l| LegRecord {
                    tag: l.tag.clone(),
                    created: l.created,
                    blocked: l.blocked,
                    tunnel: l.tunnel.as_ref().map(|t| TunnelRecord {
                        peer: t.peer,
                        flows: t.flows.clone(),
                    }),
                    streams: l
                        .streams
                        .iter()
                        .map(|s| StreamRecord {
                            index: s.index,
                            kind: s.kind.clone(),
                            protocol: s.protocol.clone(),
                            ip: s.local.ip,
                            advertised_ip: s.local.advertised,
                            port: s.local.rtp.port,
                            bound: !s.local.socketless,
                            rtp_flow: u64::from(s.local.rtp.flow.0),
                            rtcp_flow: u64::from(s.local.rtcp.flow.0),
                            remote: s.remote.map(|r| (r.rtp, r.rtcp)),
                            advertised: s.advertised,
                            mux_offered: s.mux_offered,
                            mux: s.mux,
                            mux_accept: s.mux_accept,
                            clock_rate: s.clock_rate,
                            ptime: s.ptime,
                        })
                        .collect(),
                })
                .collect(),
            branches: call
                .branches
                .iter()
                // A recording's branch points at a recorder socket that
                // died with the process.
                .filter(|b| !recorded.contains(&b.name.as_str()))
                .map(|b| match &b.target {
                    BranchTarget::Direct(a) => BranchRecord {
                        name: b.name.clone(),
                        leg: b.leg,
                        direct: a.clone(),
                        tunnel: None,
                    },
                    BranchTarget::Tunnel { peer, flows, .. } => BranchRecord {
                        name: b.name.clone(),
                        leg: b.leg,
                        direct: Vec::new(),
                        tunnel: Some((*peer, flows.clone())),
                    },
                })
                .collect(),
        }
    }

    /// The call's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Rebuilds the call, taking its ports and flow ids back from the plane.
    /// On failure every socket taken so far is given back.
    pub fn restore(
        &self,
        plane: &mut dyn MediaPlane,
        now_unix: u64,
        now_ms: u64,
    ) -> Result<Call, PlaneError> {
        let [l0, l1] = self.legs.as_slice() else {
            return Err(PlaneError::Socket("call record without two legs".into()));
        };
        // SRTP keys are never written to the store (and a DTLS session
        // cannot outlive its process): such a call restored plain would
        // send its media in the clear, so it is not restored at all.
        if self
            .legs
            .iter()
            .flat_map(|l| &l.streams)
            .any(|s| s.protocol.contains("SAVP"))
        {
            return Err(PlaneError::Socket(
                "a call with SRTP legs is not restored: its keys are not stored".into(),
            ));
        }
        let worker = self.worker;
        let mut taken: Vec<Local> = Vec::new();
        let mut legs = Vec::new();
        for l in [l0, l1] {
            match l.restore(plane, worker, &mut taken) {
                Ok(leg) => legs.push(leg),
                Err(e) => {
                    plane.close(worker, taken);
                    return Err(e);
                }
            }
        }
        let [a, b]: [Leg; 2] = legs.try_into().expect("two legs");
        Ok(Call {
            id: self.id.clone(),
            created: self.created,
            last_signal: now_unix,
            last_signal_ms: now_ms,
            worker,
            legs: [a, b],
            latching: match self.latching.as_str() {
                "strict" => Latching::Strict,
                "asymmetric" => Latching::Asymmetric,
                _ => Latching::Learn,
            },
            delete_at_ms: None,
            branches: self.restore_branches(plane),
            recordings: Vec::new(),
            signalled: Default::default(),
        })
    }

    /// The branches, less those through a tunnel when the node has none
    /// any more.
    fn restore_branches(&self, plane: &dyn MediaPlane) -> Vec<Branch> {
        let via = plane.tunnel(self.worker).map(|(v, _)| v).ok();
        self.branches
            .iter()
            .filter_map(|b| {
                let target = match &b.tunnel {
                    Some((peer, flows)) => BranchTarget::Tunnel {
                        via: via?,
                        peer: *peer,
                        flows: flows.clone(),
                    },
                    None => BranchTarget::Direct(b.direct.clone()),
                };
                Some(Branch {
                    name: b.name.clone(),
                    leg: b.leg,
                    target,
                })
            })
            .collect()
    }
}

impl LegRecord {
    /// Rebuilds the leg; every stream's sockets it takes are added to
    /// `taken` (for the caller to give back should a later one fail).
    fn restore(
        &self,
        plane: &mut dyn MediaPlane,
        worker: usize,
        taken: &mut Vec<Local>,
    ) -> Result<Leg, PlaneError> {
        let tunnel = match &self.tunnel {
            Some(t) => {
                let (via, local) = plane.tunnel(worker)?;
                Some(TunnelLink {
                    via,
                    local,
                    peer: t.peer,
                    flows: t.flows.clone(),
                })
            }
            None => None,
        };
        let mut streams = Vec::new();
        for s in &self.streams {
            let stream = s.restore(plane, worker)?;
            taken.push(stream.local.clone());
            streams.push(stream);
        }
        Ok(Leg {
            tag: self.tag.clone(),
            created: self.created,
            streams,
            tunnel,
            blocked: self.blocked,
        })
    }
}

impl StreamRecord {
    /// Takes the stream's port and flow ids back from the plane.
    fn restore(&self, plane: &mut dyn MediaPlane, worker: usize) -> Result<Stream, PlaneError> {
        let id = |v: u64| {
            u32::try_from(v)
                .map(FlowId)
                .map_err(|_| PlaneError::Socket(format!("flow id {v} is beyond 32 bits")))
        };
        let flows = (id(self.rtp_flow)?, id(self.rtcp_flow)?);
        let port = self.bound.then_some(self.port);
        let local = plane.reopen(worker, self.ip, self.advertised_ip, port, flows)?;
        Ok(Stream {
            index: self.index,
            kind: self.kind.clone(),
            protocol: self.protocol.clone(),
            local,
            remote: self.remote.map(|(rtp, rtcp)| Remote { rtp, rtcp }),
            advertised: self.advertised,
            mux_offered: self.mux_offered,
            mux: self.mux,
            mux_accept: self.mux_accept,
            clock_rate: self.clock_rate,
            ptime: self.ptime,
            // Keys are not written to the store (see call/security.rs), and
            // a DTLS session cannot outlive the process anyway.
            security: Default::default(),
        })
    }
}
