//! Call records: what a node keeps in the registry's store about each call,
//! so that a restarted node can take its calls back on the same ports and
//! the same flow ids (peers address tunnel legs by flow id).
//!
//! Counters and latched addresses are not kept: a restored call counts
//! from zero and learns its peers again from their next packets.
//! Recordings are not resumed (their files were finalized when the node
//! stopped); other branches are.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rtpmesh_flow::flow::{FlowId, Latching};
use serde::{Deserialize, Serialize};

use crate::call::{Branch, BranchTarget, Call, Leg, Local, Remote, Socket, Stream, TunnelLink};
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
    bound: bool,
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
                            bound: s.local.bound,
                            rtp_flow: s.local.rtp.flow.0,
                            rtcp_flow: s.local.rtcp.flow.0,
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

    /// Every flow id the record names (the plane must not hand them out
    /// again).
    pub fn flow_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.legs
            .iter()
            .flat_map(|l| l.streams.iter().flat_map(|s| [s.rtp_flow, s.rtcp_flow]))
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
        let worker = self.worker;
        let mut taken: Vec<Local> = Vec::new();
        let mut legs = Vec::new();
        for l in [l0, l1] {
            let tunnel = match &l.tunnel {
                Some(t) => {
                    let (via, local) = match plane.tunnel(worker) {
                        Ok(x) => x,
                        Err(e) => {
                            plane.close(worker, taken);
                            return Err(e);
                        }
                    };
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
            for s in &l.streams {
                let flows = (FlowId(s.rtp_flow), FlowId(s.rtcp_flow));
                let port = s.bound.then_some(s.port);
                let local = match plane.reopen(worker, s.ip, s.advertised_ip, port, flows) {
                    Ok(x) => x,
                    Err(e) => {
                        plane.close(worker, taken);
                        return Err(e);
                    }
                };
                taken.push(local.clone());
                streams.push(Stream {
                    index: s.index,
                    kind: s.kind.clone(),
                    protocol: s.protocol.clone(),
                    local,
                    remote: s.remote.map(|(rtp, rtcp)| Remote { rtp, rtcp }),
                    advertised: s.advertised,
                    mux_offered: s.mux_offered,
                    mux: s.mux,
                    mux_accept: s.mux_accept,
                    clock_rate: s.clock_rate,
                    ptime: s.ptime,
                });
            }
            legs.push(Leg {
                tag: l.tag.clone(),
                created: l.created,
                streams,
                tunnel,
                blocked: l.blocked,
            });
        }
        let via = plane.tunnel(worker).map(|(v, _)| v).ok();
        let branches = self
            .branches
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
            .collect();
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
            branches,
            recordings: Vec::new(),
        })
    }
}

/// A socket of a restored stream, as the plane builds it.
pub fn socket(flow: FlowId, port: u16) -> Socket {
    Socket {
        flow,
        port,
        counters: Arc::default(),
        latched: None,
    }
}
