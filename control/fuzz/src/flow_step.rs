//! `flow_step`: the forward step over a small table of flows, two tunnel
//! sockets between them, and control-path changes in between.
//!
//! The input is a [`Script`] that `arbitrary` builds from libFuzzer's
//! bytes: datagrams of any bytes from any source to any socket, datagrams
//! sealed with a real tunnel key (the fuzzer cannot forge a tag, so this is
//! how it reaches the far side of a tunnel), delivery of the copies the
//! previous step sealed, and updates, removals and reinsertions of flows.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use rtpmesh_flow::clock::MediaClock;
use rtpmesh_flow::flow::{
    Carries, FlowId, FlowKind, FlowSpec, FlowTable, Forwarded, Latching, Output, MAX_OUTPUTS,
};
use rtpmesh_flow::rtp::PacketKind;
use rtpmesh_flow::tunnel::{derive_key, open, seal, WallClock};

/// Wall-clock µs the tunnels start at.
const WALL_START_US: u64 = 1_700_000_000_000_000;

/// A run of steps on one fresh table.
#[derive(Arbitrary, Debug)]
pub struct Script {
    steps: Vec<Step>,
}

/// One thing that happens to the table.
#[derive(Arbitrary, Debug)]
enum Step {
    /// Any bytes arrive on flow `to`'s socket from `from`, `after_ms` later.
    Datagram {
        to: u8,
        from: Source,
        after_ms: u16,
        data: Vec<u8>,
    },
    /// A datagram sealed with the key tunnel `to_t2 ? T2 : T1` shares with
    /// `from` arrives on that tunnel.
    Sealed {
        to_t2: bool,
        from: Source,
        rtcp: bool,
        flow: Pick,
        seq: u64,
        inner: Vec<u8>,
    },
    /// The sealed copies the last step produced reach the tunnels they name.
    Deliver,
    /// Flow `flow` gets a new policy and peer.
    Update {
        flow: u8,
        latching: u8,
        peer: Option<Source>,
    },
    /// Flow `flow` goes; its slot goes stale.
    Remove { flow: u8 },
    /// Flow `flow` comes back (a new slot), and every flow is updated.
    Reinsert { flow: u8 },
}

/// A source address: one the table knows, or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Source {
    Known(u8),
    V4([u8; 4], u16),
    V6([u8; 16], u16),
}

/// A flow id in a tunnel header: one of ours, or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Pick {
    Known(u8),
    Any(u32),
}

const SECRET: &[u8] = b"fuzz cluster secret";
const T1: FlowId = FlowId(50);
const T2: FlowId = FlowId(51);
const IDS: [u32; 8] = [1, 2, 3, 4, 100, 101, 50, 51];

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a literal address")
}

fn t1_addr() -> SocketAddr {
    addr("10.0.0.1:7000")
}

fn t2_addr() -> SocketAddr {
    addr("10.0.0.2:7000")
}

fn known_addrs() -> [SocketAddr; 8] {
    [
        addr("192.0.2.1:4000"),
        addr("192.0.2.2:4000"),
        addr("192.0.2.3:5000"),
        addr("192.0.2.4:5001"),
        t1_addr(),
        t2_addr(),
        addr("198.51.100.9:9000"),
        addr("[2001:db8::66]:6666"),
    ]
}

impl Source {
    fn resolve(self) -> SocketAddr {
        match self {
            Self::Known(i) => known_addrs()[usize::from(i) % 8],
            Self::V4(ip, port) => SocketAddr::new(IpAddr::from(ip), port),
            Self::V6(ip, port) => SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port),
        }
    }
}

fn spec(id: u32, peer: Option<&str>, latching: Latching, carries: Carries) -> FlowSpec {
    let tun = |via, dest: SocketAddr, flow| Output::Tunnel { via, dest, flow };
    let out = match id {
        1 => vec![
            tun(T1, t2_addr(), 100),
            Output::Fixed {
                via: FlowId(1),
                dest: addr("198.51.100.9:9000"),
            },
        ],
        2 => vec![tun(T2, t1_addr(), 101)],
        3 => vec![Output::Peer(FlowId(4))],
        4 => vec![Output::Peer(FlowId(3))],
        100 => vec![Output::Peer(FlowId(2))],
        _ => vec![Output::Peer(FlowId(1)), Output::Peer(FlowId(3))],
    };
    FlowSpec {
        id: FlowId(id),
        peer: peer.map(addr),
        latching,
        carries,
        rtp_outputs: out.clone(),
        rtcp_outputs: out,
        clock_rate: 8000,
        counters: Arc::default(),
        security: Default::default(),
    }
}

/// The table's flows: like two legs of a tunnelled call (1 → T1 → T2 → 100
/// → 2 and back through 101, which also copies to 3), plus a strict RTP
/// flow and an asymmetric RTCP flow routed to each other.
struct Harness {
    table: FlowTable,
    specs: Vec<FlowSpec>,
    now: Instant,
    out: Forwarded,
    /// The last step's sealed copies: (tunnel it left, dest, bytes).
    sealed: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
}

impl Harness {
    fn new() -> Self {
        let now = Instant::now();
        let specs = vec![
            spec(1, Some("192.0.2.1:4000"), Latching::Learn, Carries::Muxed),
            spec(2, Some("192.0.2.2:4000"), Latching::Learn, Carries::Muxed),
            spec(3, Some("192.0.2.3:5000"), Latching::Strict, Carries::Rtp),
            spec(4, None, Latching::Asymmetric, Carries::Rtcp),
            spec(100, None, Latching::Asymmetric, Carries::Muxed),
            spec(101, None, Latching::Asymmetric, Carries::Muxed),
        ];
        let mut h = Self {
            table: FlowTable::new(MediaClock::new(now)),
            specs,
            now,
            out: Forwarded::new(),
            sealed: Vec::new(),
        };
        for id in IDS {
            h.insert(FlowId(id));
        }
        h.update_all();
        h
    }

    fn insert(&mut self, id: FlowId) {
        let wall = WallClock::new(self.now, WALL_START_US);
        match id {
            T1 | T2 => {
                let local = if id == T1 { t1_addr() } else { t2_addr() };
                let secret: Arc<[u8]> = Arc::from(SECRET);
                self.table
                    .insert_tunnel(id, local, secret, Arc::default(), wall);
            }
            FlowId(100 | 101) => {
                let s = self.spec(id).clone();
                self.table.insert_socketless(&s);
            }
            _ => {
                let s = self.spec(id).clone();
                self.table.insert(&s);
            }
        }
    }

    fn spec(&mut self, id: FlowId) -> &mut FlowSpec {
        self.specs
            .iter_mut()
            .find(|s| s.id == id)
            .expect("a media flow")
    }

    /// Routes resolve at update time; a flow naming one that is gone is
    /// refused, which is the control path's business, not a finding.
    fn update_all(&mut self) {
        for s in &self.specs {
            if self.table.slot(s.id).is_some() {
                let _ = self.table.update(s);
            }
        }
    }

    fn local_of(&self, tunnel: FlowId) -> SocketAddr {
        if tunnel == T1 {
            t1_addr()
        } else {
            t2_addr()
        }
    }

    /// One datagram through the step, and what must hold of its output.
    fn forward(&mut self, to: FlowId, src: SocketAddr, data: &[u8]) {
        let Some(slot) = self.table.slot(to) else {
            return;
        };
        // As a backend receives it: into a buffer with room after it.
        let mut buf = vec![0u8; data.len().max(2048)];
        buf[..data.len()].copy_from_slice(data);
        let len = data.len();
        self.table
            .forward(self.now, slot, src, &mut buf, len, &mut self.out);
        let transmits = self.out.transmits().to_vec();
        assert!(transmits.len() <= MAX_OUTPUTS);
        assert!(self.out.events().count() <= 1);
        self.sealed.clear();
        for t in transmits {
            let body = t.body(&buf, len).expect("a transmit within the buffer");
            let via = self.table.get(t.via).expect("a transmit via a live flow");
            assert_ne!(via.kind(), FlowKind::Socketless, "a socketless flow sent");
            let Some(head) = t.head else {
                assert_ne!(via.kind(), FlowKind::Tunnel, "a tunnel sent a plain copy");
                continue;
            };
            assert_eq!(via.kind(), FlowKind::Tunnel, "a head on a plain copy");
            let local = self.local_of(via.id());
            let mut bytes = head.to_vec();
            bytes.extend_from_slice(body);
            let key = derive_key(SECRET, local, t.dest);
            open(&key, &bytes).expect("a sealed copy opens at its peer");
            self.sealed.push((local, t.dest, bytes));
        }
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Datagram {
                to,
                from,
                after_ms,
                data,
            } => {
                self.now += Duration::from_millis(after_ms.into());
                let to = FlowId(IDS[usize::from(to) % IDS.len()]);
                self.forward(to, from.resolve(), &data);
            }
            Step::Sealed {
                to_t2,
                from,
                rtcp,
                flow,
                seq,
                inner,
            } => {
                let (to, local) = if to_t2 {
                    (T2, t2_addr())
                } else {
                    (T1, t1_addr())
                };
                let src = from.resolve();
                let kind = if rtcp {
                    PacketKind::Rtcp
                } else {
                    PacketKind::Rtp
                };
                let flow = match flow {
                    Pick::Known(i) => IDS[usize::from(i) % IDS.len()],
                    Pick::Any(f) => f,
                };
                // Most sequence numbers land around the tunnel's start, some far off.
                let seq = WALL_START_US.wrapping_add(seq % (1 << 24)).wrapping_sub(1 << 22) ^ (seq >> 40 << 40);
                let mut d = seal(&derive_key(SECRET, src, local), kind, flow, seq, &inner).to_vec();
                d.extend_from_slice(&inner);
                self.forward(to, src, &d);
            }
            Step::Deliver => {
                for (from, dest, bytes) in std::mem::take(&mut self.sealed) {
                    let to = if dest == t1_addr() { T1 } else { T2 };
                    if dest == t1_addr() || dest == t2_addr() {
                        self.forward(to, from, &bytes);
                    }
                }
            }
            Step::Update {
                flow,
                latching,
                peer,
            } => {
                let s = &mut self.specs[usize::from(flow) % 6];
                s.latching = match latching % 3 {
                    0 => Latching::Learn,
                    1 => Latching::Strict,
                    _ => Latching::Asymmetric,
                };
                s.peer = peer.map(Source::resolve);
                let s = s.clone();
                if self.table.slot(s.id).is_some() {
                    let _ = self.table.update(&s);
                }
            }
            Step::Remove { flow } => {
                self.table
                    .remove(FlowId(IDS[usize::from(flow) % IDS.len()]));
            }
            Step::Reinsert { flow } => {
                let id = FlowId(IDS[usize::from(flow) % IDS.len()]);
                if self.table.slot(id).is_none() {
                    self.insert(id);
                    self.update_all();
                }
            }
        }
    }
}

/// Runs `script` on a fresh table.
pub fn check(script: Script) {
    let mut h = Harness::new();
    for step in script.steps {
        h.step(step);
    }
}
