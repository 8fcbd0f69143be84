//! Call state: calls, their two legs, and each leg's media streams.
//!
//! Sans-IO. A [`Call`] knows which local sockets face which party and what
//! each party advertised; [`Call::flow_specs`] turns that into the flow
//! table entries a worker needs. Binding sockets is the [`MediaPlane`](crate::plane::MediaPlane)'s
//! job, so tests drive calls with a fake plane.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rtpmesh_flow::counters::{CounterSnapshot, FlowCounters};
use rtpmesh_flow::flow::{Carries, FlowId, FlowSpec, Latching, Output};

mod security;
pub use security::{PeerSecurity, SdesChoice, StreamSecurity};

/// One local socket of a stream.
#[derive(Debug, Clone)]
pub struct Socket {
    /// The flow that owns the socket.
    pub flow: FlowId,
    /// Local port.
    pub port: u16,
    /// Counters the worker fills.
    pub counters: Arc<FlowCounters>,
    /// Address learned from the party's packets, as the worker reported it.
    pub latched: Option<SocketAddr>,
}

impl Socket {
    /// A socket of flow `flow` on `port` (0 for a socketless flow), with
    /// fresh counters and nothing latched yet.
    pub fn new(flow: FlowId, port: u16) -> Self {
        Self {
            flow,
            port,
            counters: Arc::default(),
            latched: None,
        }
    }
}

/// The relay's sockets facing one party for one m= line: an even RTP port
/// and the odd RTCP port above it (unused while the party muxes).
#[derive(Debug, Clone)]
pub struct Local {
    /// Address the sockets are bound to.
    pub ip: IpAddr,
    /// Address written into SDP for them.
    pub advertised: IpAddr,
    /// RTP (or muxed RTP+RTCP) socket.
    pub rtp: Socket,
    /// RTCP socket.
    pub rtcp: Socket,
    /// The socketless flows of a tunnel leg: a tunnel feeds them, nothing
    /// is sent from them, and `rtp`/`rtcp` have no port.
    pub socketless: bool,
}

/// What a party advertised for one m= line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    /// Where it receives RTP.
    pub rtp: SocketAddr,
    /// Where it receives RTCP.
    pub rtcp: SocketAddr,
}

/// One m= line of a leg: the relay's sockets facing the leg's party, and
/// what the party advertised.
#[derive(Debug, Clone)]
pub struct Stream {
    /// m= line index, from 1 as rtpengine counts.
    pub index: usize,
    /// `audio`, `video`, ...
    pub kind: String,
    /// Transport protocol (`RTP/AVP`).
    pub protocol: String,
    /// Sockets facing this leg's party.
    pub local: Local,
    /// What the party advertised; `None` before its SDP or while on
    /// old-style hold (`c=0.0.0.0`) or rejected (port 0).
    pub remote: Option<Remote>,
    /// Advertised endpoint even when on hold, for `query`.
    pub advertised: Option<SocketAddr>,
    /// The party was offered (or offered) rtcp-mux.
    pub mux_offered: bool,
    /// The party sends RTP and RTCP on one port.
    pub mux: bool,
    /// The offer asked to accept this party's mux whatever the answerer
    /// says (`rtcp-mux: [demux]` or `[accept]`): the relay demultiplexes.
    pub mux_accept: bool,
    /// RTP clock rate of what the party sends (for jitter).
    pub clock_rate: u32,
    /// `a=ptime` the party offered.
    pub ptime: Option<u32>,
    /// SRTP, DTLS-SRTP and ICE toward this leg's party.
    pub security: StreamSecurity,
}

impl Stream {
    /// The socket this leg's party sends RTCP to.
    pub fn rtcp_socket(&self) -> &Socket {
        if self.mux {
            &self.local.rtp
        } else {
            &self.local.rtcp
        }
    }
}

/// One party of a call: its tag and its streams.
#[derive(Debug, Clone)]
pub struct Leg {
    /// From- or to-tag; empty until the answer names it.
    pub tag: String,
    /// Unix seconds of creation.
    pub created: u64,
    /// One per m= line.
    pub streams: Vec<Stream>,
    /// Set when the party is behind another relay node: its streams are
    /// socketless flows fed by the tunnel, and what goes to the party goes
    /// into the tunnel.
    pub tunnel: Option<TunnelLink>,
    /// `block media`: what this party sends is not forwarded to the other.
    pub blocked: bool,
}

/// The far end of a tunnel leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelLink {
    /// The local tunnel socket's flow (on the call's worker).
    pub via: FlowId,
    /// The local tunnel socket's address, as the peer must send to it.
    pub local: SocketAddr,
    /// The peer node's tunnel socket; `None` until the controller says.
    pub peer: Option<SocketAddr>,
    /// The peer's flow ids per m= line: (RTP, RTCP).
    pub flows: Vec<(u32, u32)>,
}

/// A copy of one party's media to a media resource (recorder, analyser,
/// conference), added and removed while the call runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// Name, unique in the call.
    pub name: String,
    /// The leg whose party's media is copied.
    pub leg: usize,
    /// Where the copies go.
    pub target: BranchTarget,
}

/// Where a resource at `dest` receives `streams` m= lines: stream `i`'s
/// RTP at `dest.port + 2i`, its RTCP one port above; `None` when that runs
/// past port 65535.
pub fn resource_ports(dest: SocketAddr, streams: usize) -> Option<Vec<(SocketAddr, SocketAddr)>> {
    (0..streams)
        .map(|i| {
            let rtp = u16::try_from(i)
                .ok()?
                .checked_mul(2)?
                .checked_add(dest.port())?;
            let rtcp = rtp.checked_add(1)?;
            Some((
                SocketAddr::new(dest.ip(), rtp),
                SocketAddr::new(dest.ip(), rtcp),
            ))
        })
        .collect()
}

/// Where a branch sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchTarget {
    /// Straight to addresses, per m= line: (RTP, RTCP).
    Direct(Vec<(SocketAddr, SocketAddr)>),
    /// Into a tunnel to another node, which delivers to the resource.
    Tunnel {
        /// The local tunnel socket's flow.
        via: FlowId,
        /// The peer node's tunnel socket.
        peer: SocketAddr,
        /// The peer's flow ids per m= line: (RTP, RTCP).
        flows: Vec<(u32, u32)>,
    },
}

/// A call: two legs whose streams are forwarded to each other.
#[derive(Debug, Clone)]
pub struct Call {
    /// SIP Call-ID.
    pub id: String,
    /// Unix seconds of creation.
    pub created: u64,
    /// Unix seconds of the last offer/answer.
    pub last_signal: u64,
    /// Media clock ms of the last offer/answer (for the media timeout).
    pub last_signal_ms: u64,
    /// The worker that owns the call's sockets.
    pub worker: usize,
    /// Leg 0 made the first offer; leg 1 answered it.
    pub legs: [Leg; 2],
    /// Source address policy for all flows.
    pub latching: Latching,
    /// Media clock ms at which a delayed `delete` removes the call.
    pub delete_at_ms: Option<u64>,
    /// Branches, in the order they were started.
    pub branches: Vec<Branch>,
    /// Local recordings: the branch that feeds each, and the recorder's id.
    pub recordings: Vec<(String, u64)>,
    /// What the last offer's ng options left for its answer (codecs,
    /// `record call`).
    pub signalled: crate::node::flags::Signalled,
}

impl Call {
    /// The leg whose tag is `tag`.
    pub fn leg_index(&self, tag: &str) -> Option<usize> {
        self.legs
            .iter()
            .position(|l| !l.tag.is_empty() && l.tag == tag)
    }

    /// Every local socket of the call.
    pub fn locals(&self) -> impl Iterator<Item = &Local> {
        self.legs
            .iter()
            .flat_map(|l| l.streams.iter().map(|s| &s.local))
    }

    /// Flow table entries for the whole call: each stream's sockets forward
    /// to the matching stream of the other leg (or into the tunnel that
    /// reaches it), plus the call's branches.
    pub fn flow_specs(&self) -> Vec<FlowSpec> {
        let mut specs = Vec::new();
        for (l, leg) in self.legs.iter().enumerate() {
            let other = &self.legs[1 - l];
            for (i, s) in leg.streams.iter().enumerate() {
                if let Some(o) = other.streams.get(i) {
                    specs.extend(self.stream_specs(l, i, s, o));
                }
            }
        }
        specs
    }

    /// The RTP and RTCP flows of stream `i` of leg `l` (`s`), whose
    /// counterpart on the other leg is `o`.
    fn stream_specs(&self, l: usize, i: usize, s: &Stream, o: &Stream) -> [FlowSpec; 2] {
        let (mut rtp_out, mut rtcp_out) = if self.legs[l].blocked {
            (Vec::new(), Vec::new())
        } else {
            to_other_leg(&self.legs[1 - l], i, o)
        };
        let via = branch_sender(s, o).rtp.flow;
        for b in self.branches.iter().filter(|b| b.leg == l) {
            if let Some((rtp, rtcp)) = b.target.outputs(via, i) {
                rtp_out.push(rtp);
                rtcp_out.push(rtcp);
            }
        }
        // A tunnel leg's flows only receive from the tunnel: no address to
        // learn, none to send to.
        let (peer, latching) = if s.local.socketless {
            (None, Latching::Asymmetric)
        } else {
            (s.remote, self.latching)
        };
        let muxed = s.mux && !s.local.socketless;
        // Between nodes the tunnel is the protection: a tunnel leg's
        // (socketless) flows see plain RTP whatever its SDP said.
        let security = if s.local.socketless {
            Default::default()
        } else {
            s.security.flow_security()
        };
        // A muxed party never uses the RTCP socket: no handshake there.
        let rtcp_security = if muxed {
            Default::default()
        } else {
            security.clone()
        };
        [
            FlowSpec {
                id: s.local.rtp.flow,
                peer: peer.map(|r| r.rtp),
                latching,
                carries: if muxed { Carries::Muxed } else { Carries::Rtp },
                rtp_outputs: rtp_out,
                rtcp_outputs: rtcp_out.clone(),
                clock_rate: s.clock_rate,
                counters: s.local.rtp.counters.clone(),
                security,
            },
            FlowSpec {
                id: s.local.rtcp.flow,
                peer: peer.map(|r| r.rtcp),
                latching,
                carries: Carries::Rtcp,
                rtp_outputs: Vec::new(),
                rtcp_outputs: rtcp_out,
                clock_rate: s.clock_rate,
                counters: s.local.rtcp.counters.clone(),
                security: rtcp_security,
            },
        ]
    }

    /// The local address a branch of stream `i` of leg `l` sends its
    /// copies from (a recording accepts nothing else); `None` when leg `l`
    /// has no stream `i`.
    pub fn branch_source(&self, l: usize, i: usize) -> Option<SocketAddr> {
        let s = self.legs.get(l)?.streams.get(i)?;
        let local = match self.legs[1 - l].streams.get(i) {
            Some(o) => branch_sender(s, o),
            // No counterpart: nothing is forwarded, nor copied, yet.
            None => &s.local,
        };
        Some(SocketAddr::new(local.ip, local.rtp.port))
    }

    /// The flow ids of leg `l`'s streams, as a peer node addresses them
    /// through a tunnel: (RTP, RTCP) per m= line.
    pub fn tunnel_flows(&self, l: usize) -> Vec<(u32, u32)> {
        self.legs[l]
            .streams
            .iter()
            .map(|s| (s.local.rtp.flow.0, s.local.rtcp.flow.0))
            .collect()
    }

    /// Media clock ms of the newest packet on any socket (0: none yet).
    pub fn last_media_ms(&self) -> u64 {
        self.locals()
            .flat_map(|l| [&l.rtp, &l.rtcp])
            .map(|s| {
                s.counters
                    .last_packet_ms
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .max()
            .unwrap_or(0)
    }

    /// Records a latched address reported by a worker.
    pub fn on_latched(&mut self, flow: FlowId, addr: SocketAddr) -> bool {
        for leg in &mut self.legs {
            for s in &mut leg.streams {
                for sock in [&mut s.local.rtp, &mut s.local.rtcp] {
                    if sock.flow == flow {
                        sock.latched = Some(addr);
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Totals over the call: (RTP, RTCP, errors) as counter sums.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for l in self.locals() {
            for s in [&l.rtp, &l.rtcp] {
                let c = s.counters.snapshot();
                t.add(&c);
            }
        }
        t
    }
}

/// Packet and byte sums of a call or a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// RTP packets received.
    pub rtp_packets: u64,
    /// RTP bytes received.
    pub rtp_bytes: u64,
    /// RTCP packets received.
    pub rtcp_packets: u64,
    /// RTCP bytes received.
    pub rtcp_bytes: u64,
    /// Datagrams dropped as malformed or from a wrong source.
    pub errors: u64,
    /// Copies forwarded.
    pub forwarded: u64,
    /// Of the packets, those the kernel's fast path forwarded.
    pub offloaded: u64,
}

impl Totals {
    /// Adds another sum.
    pub fn merge(&mut self, o: &Self) {
        self.rtp_packets += o.rtp_packets;
        self.rtp_bytes += o.rtp_bytes;
        self.rtcp_packets += o.rtcp_packets;
        self.rtcp_bytes += o.rtcp_bytes;
        self.errors += o.errors;
        self.forwarded += o.forwarded;
        self.offloaded += o.offloaded;
    }

    /// RTP and RTCP packets.
    pub fn packets(&self) -> u64 {
        self.rtp_packets + self.rtcp_packets
    }

    /// RTP and RTCP bytes.
    pub fn bytes(&self) -> u64 {
        self.rtp_bytes + self.rtcp_bytes
    }

    /// Adds one socket's counters.
    pub fn add(&mut self, c: &CounterSnapshot) {
        self.rtp_packets += c.rtp_packets;
        self.rtp_bytes += c.rtp_bytes;
        self.rtcp_packets += c.rtcp_packets;
        self.rtcp_bytes += c.rtcp_bytes;
        self.errors += c.errors();
        self.forwarded += c.forwarded;
        self.offloaded += c.offloaded;
    }
}

/// The sockets a branch of stream `s` (whose counterpart on the other leg
/// is `o`) sends from, RTCP copies included: this leg's own RTP socket, or
/// the other's when this one is a tunnel leg (socketless).
fn branch_sender<'a>(s: &'a Stream, o: &'a Stream) -> &'a Local {
    if s.local.socketless {
        &o.local
    } else {
        &s.local
    }
}

/// Where stream `i` of a leg sends its party's RTP and RTCP: to the
/// other leg's stream `o`, or into the tunnel that reaches the other leg's
/// party (nowhere while the peer's end is not known yet).
fn to_other_leg(other: &Leg, i: usize, o: &Stream) -> (Vec<Output>, Vec<Output>) {
    let Some(t) = &other.tunnel else {
        return (
            vec![Output::Peer(o.local.rtp.flow)],
            vec![Output::Peer(o.rtcp_socket().flow)],
        );
    };
    match (t.peer, t.flows.get(i)) {
        (Some(dest), Some(&(rtp, rtcp))) => {
            let into = |flow| Output::Tunnel {
                via: t.via,
                dest,
                flow,
            };
            (vec![into(rtp)], vec![into(rtcp)])
        }
        _ => (Vec::new(), Vec::new()),
    }
}

impl BranchTarget {
    /// The RTP and RTCP outputs that copy stream `i` here, sending from
    /// flow `via` when not through a tunnel; `None` when the target has no
    /// place for stream `i`.
    fn outputs(&self, via: FlowId, i: usize) -> Option<(Output, Output)> {
        match self {
            Self::Direct(addrs) => {
                let &(rtp, rtcp) = addrs.get(i)?;
                Some((
                    Output::Fixed { via, dest: rtp },
                    Output::Fixed { via, dest: rtcp },
                ))
            }
            Self::Tunnel { via, peer, flows } => {
                let &(rtp, rtcp) = flows.get(i)?;
                let into = |flow| Output::Tunnel {
                    via: *via,
                    dest: *peer,
                    flow,
                };
                Some((into(rtp), into(rtcp)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ports_go_up_by_two_and_stop_at_the_top_of_the_range() {
        let d: SocketAddr = "10.0.0.9:6000".parse().unwrap();
        let p = resource_ports(d, 2).unwrap();
        assert_eq!(p[1].0, "10.0.0.9:6002".parse().unwrap());
        assert_eq!(p[1].1, "10.0.0.9:6003".parse().unwrap());
        assert!(resource_ports("10.0.0.9:65534".parse().unwrap(), 1).is_some());
        assert!(resource_ports("10.0.0.9:65535".parse().unwrap(), 1).is_none());
        assert!(resource_ports("10.0.0.9:65532".parse().unwrap(), 2).is_some());
        assert!(resource_ports("10.0.0.9:65533".parse().unwrap(), 2).is_none());
    }
}
