//! rtpmesh's in-kernel fast path.
//!
//! A BPF program (`bpf/fastpath.bpf.c`, compiled object committed beside
//! it) sits at the ingress of the host's interfaces. For a datagram
//! addressed to one of the relay's media sockets that has an entry in its
//! `routes` map, it checks the source, checks that the payload is RTP or
//! RTCP, counts it and keeps the RFC 3550 receiver state, rewrites the
//! addresses, ports and checksums as the relay's own socket would have sent
//! it, and sends it on, without waking the relay. Everything else goes up
//! to the sockets as before.
//!
//! [`FastPath::load`] loads and attaches it; workers then
//! [`install`](FastPath::install) a [`Entry`] per latched stream, read its
//! counters with [`FastPath::read`] (a load from a shared mapping, no system
//! call) and [`remove`](FastPath::remove) it when the stream changes or
//! ends. The decision *which* streams qualify is the flow core's
//! (`rtpmesh_flow::flow::Shortcut`); this crate only does what it is told.
//!
//! What the node attaches goes away with its file descriptors: XDP and
//! TCX links are owned by the process, so even a crashed node leaves
//! nothing behind on kernels with TCX (6.6+). On older kernels TC filters
//! are netlink objects that outlive the process; [`FastPath::load`] removes
//! a previous run's before it attaches.

mod area;
mod layout;
mod nexthop;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Mutex;

use aya::maps::{HashMap, Map, MapData};
use aya::programs::{tc, SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

use area::StatsArea;
pub use layout::Stats;
use layout::{Key, Route};

/// Where and how the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// clsact ingress (TCX links where the kernel has them). Handles
    /// partially checksummed packets from local senders; needs nothing of
    /// the receiving side.
    Tc,
    /// XDP, native where the driver has it, generic where not. Assumes full
    /// UDP checksums (as a NIC delivers them).
    Xdp,
}

/// Which sources a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Any source (the relay does not latch: `asymmetric`).
    Any,
    /// The latched one; others go up to the socket, which forwards and
    /// counts them as it always has.
    Learn(SocketAddrV4),
    /// The latched one; others are dropped and counted (`strict-source`).
    Strict(SocketAddrV4),
}

/// One stream's shortcut: datagrams to `local` from the expected source
/// leave as if sent from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The relay's socket the stream arrives at.
    pub local: SocketAddrV4,
    /// Which sources are forwarded.
    pub source: Source,
    /// The socket carries RTP.
    pub rtp: bool,
    /// The socket carries RTCP.
    pub rtcp: bool,
    /// The relay's socket the stream leaves from.
    pub from: SocketAddrV4,
    /// The other party.
    pub to: SocketAddrV4,
    /// RTP clock rate, for jitter.
    pub clock_rate: u32,
}

/// An entry the program holds: its key and its counters' index.
#[derive(Debug, PartialEq, Eq)]
pub struct Installed {
    key: Key,
    index: u32,
}

/// Why the fast path could not be loaded or an entry installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FastPathError {
    /// The kernel refused the object (no CAP_BPF / CAP_NET_ADMIN, no BPF).
    #[error("cannot load the BPF program: {0}")]
    Load(#[from] aya::EbpfError),
    /// The kernel refused the program or an attachment.
    #[error("BPF program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    /// A map operation failed.
    #[error("BPF map: {0}")]
    Map(#[from] aya::maps::MapError),
    /// Nothing could be attached anywhere.
    #[error("could not attach to any interface ({0})")]
    NoInterface(String),
    /// The counters could not be mapped.
    #[error("cannot map the counters: {0}")]
    Mmap(std::io::Error),
    /// Every entry is taken.
    #[error("all {0} fast-path entries are in use")]
    Full(u32),
    /// The kernel has no route to the party.
    #[error("no route from {from} to {to}: {error}")]
    NoRoute {
        /// The relay's address.
        from: Ipv4Addr,
        /// The party's.
        to: Ipv4Addr,
        /// What rtnetlink said.
        error: std::io::Error,
    },
    /// XDP needs the next hop's MAC, and the neighbour table has none yet
    /// (the socket path's first sends resolve it).
    #[error("no neighbour entry for {0} yet")]
    NoNeighbour(Ipv4Addr),
}

/// The loaded, attached program and its maps.
pub struct FastPath {
    mode: Mode,
    capacity: u32,
    epoch_ns: u64,
    routes: Mutex<HashMap<MapData, Key, Route>>,
    stats: StatsArea,
    free: Mutex<Vec<u32>>,
    interfaces: Vec<(String, &'static str)>,
    // Holds the programs and their links: dropping it detaches them.
    _ebpf: Mutex<Ebpf>,
}

static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/fastpath.bpf.o");

impl FastPath {
    /// Loads the program with room for `capacity` entries and attaches it
    /// in `mode` to `interfaces` (every interface that is up when `None`,
    /// loopback included). `epoch_ns` is the CLOCK_MONOTONIC time of the
    /// media clock's zero, so that RTP arrival times agree with the
    /// relay's.
    ///
    /// An interface that refuses is logged and skipped; none at all is an
    /// error.
    pub fn load(
        mode: Mode,
        capacity: u32,
        interfaces: Option<&[String]>,
        epoch_ns: u64,
    ) -> Result<Self, FastPathError> {
        let capacity = capacity.max(1);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("routes", capacity)
            .map_max_entries("stats", capacity)
            .load(OBJECT)?;
        let names = match interfaces {
            Some(list) => list.to_vec(),
            None => up_interfaces(),
        };
        let attached = match mode {
            Mode::Tc => attach_tc(&mut ebpf, &names)?,
            Mode::Xdp => attach_xdp(&mut ebpf, &names)?,
        };
        if attached.is_empty() {
            return Err(FastPathError::NoInterface(names.join(", ")));
        }
        let routes = HashMap::try_from(ebpf.take_map("routes").expect("object defines routes"))?;
        let Some(Map::Array(stats)) = ebpf.take_map("stats") else {
            unreachable!("the object defines stats as an array")
        };
        let area = StatsArea::map(std::os::fd::AsFd::as_fd(stats.fd()), capacity)
            .map_err(FastPathError::Mmap)?;
        // The mapping keeps the map alive; the MapData may go.
        drop(stats);
        Ok(Self {
            mode,
            capacity,
            epoch_ns,
            routes: Mutex::new(routes),
            stats: area,
            free: Mutex::new((0..capacity).rev().collect()),
            interfaces: attached,
            _ebpf: Mutex::new(ebpf),
        })
    }

    /// The attach mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The interfaces attached, each with how (`tcx`, `tc`, `xdp-native`,
    /// `xdp-generic`).
    pub fn interfaces(&self) -> &[(String, &'static str)] {
        &self.interfaces
    }

    /// Most entries at once.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Entries installed now.
    pub fn installed(&self) -> u32 {
        self.capacity - self.free.lock().expect("fast path lock").len() as u32
    }

    /// Puts `entry` in the program's table, its counters starting from
    /// `initial` (the receiver state the socket path had reached).
    pub fn install(&self, entry: &Entry, initial: Stats) -> Result<Installed, FastPathError> {
        let route = self.route_for(entry)?;
        let index = self
            .free
            .lock()
            .expect("fast path lock")
            .pop()
            .ok_or(FastPathError::Full(self.capacity))?;
        self.stats.write(index, initial);
        let key = Key::new(entry.local);
        let value = Route {
            stats: index,
            ..route
        };
        if let Err(e) = self
            .routes
            .lock()
            .expect("fast path lock")
            .insert(key, value, 0)
        {
            self.free.lock().expect("fast path lock").push(index);
            return Err(e.into());
        }
        Ok(Installed { key, index })
    }

    /// Takes an entry out; returns its final counters. Nothing is forwarded
    /// for it once this returns (but a datagram the program was handling on
    /// another CPU at that moment).
    pub fn remove(&self, installed: Installed) -> Stats {
        if let Err(e) = self
            .routes
            .lock()
            .expect("fast path lock")
            .remove(&installed.key)
        {
            tracing::warn!(error = %e, "fast path entry already gone");
        }
        let last = self.stats.read(installed.index);
        self.free
            .lock()
            .expect("fast path lock")
            .push(installed.index);
        last
    }

    /// An entry's counters and receiver state now.
    pub fn read(&self, installed: &Installed) -> Stats {
        self.stats.read(installed.index)
    }

    fn route_for(&self, e: &Entry) -> Result<Route, FastPathError> {
        let hop =
            nexthop::route(*e.from.ip(), *e.to.ip()).map_err(|error| FastPathError::NoRoute {
                from: *e.from.ip(),
                to: *e.to.ip(),
                error,
            })?;
        let mut flags = 0;
        if e.rtp {
            flags |= layout::CARRIES_RTP;
        }
        if e.rtcp {
            flags |= layout::CARRIES_RTCP;
        }
        let expect = match e.source {
            Source::Any => None,
            Source::Learn(a) => {
                flags |= layout::SOURCE_LEARN;
                Some(a)
            }
            Source::Strict(a) => {
                flags |= layout::SOURCE_STRICT;
                Some(a)
            }
        };
        let (mut smac, mut dmac) = ([0; 6], [0; 6]);
        if hop.local {
            flags |= layout::DELIVER_LOCAL;
        } else if self.mode == Mode::Xdp {
            let ifname = nexthop::interface_name(hop.oif).unwrap_or_default();
            let next = hop.gateway.unwrap_or(*e.to.ip());
            dmac = nexthop::neighbour(&ifname, next).ok_or(FastPathError::NoNeighbour(next))?;
            smac = nexthop::interface_mac(&ifname).unwrap_or_default();
            flags |= layout::HAVE_L2;
        }
        Ok(Route {
            expect_addr: expect.map(layout::be_addr).unwrap_or(0),
            expect_port: expect.map(|a| a.port().to_be()).unwrap_or(0),
            flags,
            from_addr: layout::be_addr(e.from),
            from_port: e.from.port().to_be(),
            to_addr: layout::be_addr(e.to),
            to_port: e.to.port().to_be(),
            clock_rate: e.clock_rate.max(1),
            epoch_ns: self.epoch_ns,
            oif: hop.oif,
            smac,
            dmac,
            ..Route::default()
        })
    }
}

/// Interfaces that are up (IFF_UP in sysfs), loopback included.
fn up_interfaces() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            std::fs::read_to_string(format!("/sys/class/net/{n}/flags"))
                .ok()
                .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
                .is_some_and(|f| f & libc::IFF_UP as u32 != 0)
        })
        .collect();
    names.sort();
    names
}

fn attach_tc(
    ebpf: &mut Ebpf,
    names: &[String],
) -> Result<Vec<(String, &'static str)>, FastPathError> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut("fastpath_tc")
        .expect("object defines fastpath_tc")
        .try_into()?;
    prog.load()?;
    let tcx = aya::util::KernelVersion::current()
        .map(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
        .unwrap_or(false);
    let mut done = Vec::new();
    for name in names {
        if !tcx {
            // Netlink filters outlive a crashed node: take a previous
            // run's off first, and make sure the clsact qdisc is there.
            let _ = tc::qdisc_detach_program(name, TcAttachType::Ingress, "fastpath_tc");
            let _ = tc::qdisc_add_clsact(name);
        }
        match prog.attach(name, TcAttachType::Ingress) {
            Ok(_) => done.push((name.clone(), if tcx { "tcx" } else { "tc" })),
            Err(e) => tracing::warn!(interface = %name, error = %e, "fast path: cannot attach tc"),
        }
    }
    Ok(done)
}

fn attach_xdp(
    ebpf: &mut Ebpf,
    names: &[String],
) -> Result<Vec<(String, &'static str)>, FastPathError> {
    let prog: &mut Xdp = ebpf
        .program_mut("fastpath_xdp")
        .expect("object defines fastpath_xdp")
        .try_into()?;
    prog.load()?;
    let mut done = Vec::new();
    for name in names {
        let how = match prog.attach(name, XdpMode::Driver) {
            Ok(_) => "xdp-native",
            Err(native) => match prog.attach(name, XdpMode::Skb) {
                Ok(_) => "xdp-generic",
                Err(e) => {
                    tracing::warn!(interface = %name, native = %native, generic = %e,
                        "fast path: cannot attach xdp");
                    continue;
                }
            },
        };
        done.push((name.clone(), how));
    }
    Ok(done)
}
