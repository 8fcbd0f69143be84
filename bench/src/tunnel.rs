//! Tunnel overhead: packets delivered per relay CPU-second through a
//! 2-node path (caller → node A → authenticated tunnel → node B → callee)
//! against a 1-node path (caller → node A → callee), on loopback.
//!
//! A regional controller (`rtpmesh control`, embedded store) is seeded with
//! regions r1 and r2, node A in r1 and node B in r2, a gateway in each, and
//! two endpoints: `local` behind r1's gateway (a same-region call: A only)
//! and `remote` behind r2's (a cross-region call: A and B joined by a
//! tunnel). Calls are set up through the controller's ng as a proxy would
//! (offer with `callee` and `region`, then answer), and the generator drives
//! the same offered rate through each set of calls in turn, alternating the
//! paths so that drift on a shared machine falls on both.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng_udp::client::NgClient;

use crate::gen::{Generator, Outcome, Phase, Plan};
use crate::setup::{self, Call};

/// Where everything listens.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Node A (region r1): media interface, ng on `ng_port`, tunnel on
    /// `tunnel_port`.
    pub a_ip: Ipv4Addr,
    /// Node B (region r2).
    pub b_ip: Ipv4Addr,
    /// The controller's ng.
    pub controller: SocketAddr,
    /// Nodes' ng port.
    pub ng_port: u16,
    /// Nodes' tunnel port (worker 0).
    pub tunnel_port: u16,
    /// Nodes' media port range.
    pub ports: (u16, u16),
    /// The cluster secret both nodes derive tunnel keys from.
    pub secret: String,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            a_ip: Ipv4Addr::new(127, 0, 0, 2),
            b_ip: Ipv4Addr::new(127, 0, 0, 3),
            controller: SocketAddr::from(([127, 0, 0, 4], 22222)),
            ng_port: 22223,
            tunnel_port: 27000,
            ports: (41000, 42999),
            secret: "rtpmesh-bench tunnel secret".into(),
        }
    }
}

/// Endpoint behind r1's gateway: a same-region call, relayed by A alone.
pub const LOCAL: &str = "local";
/// Endpoint behind r2's gateway: a cross-region call, A → tunnel → B.
pub const REMOTE: &str = "remote";

impl Topology {
    /// Node A's ng address.
    pub fn a_ng(&self) -> SocketAddr {
        SocketAddr::from((self.a_ip, self.ng_port))
    }

    /// Node B's ng address.
    pub fn b_ng(&self) -> SocketAddr {
        SocketAddr::from((self.b_ip, self.ng_port))
    }

    /// The controller's seed: regions, the two nodes, a gateway per region,
    /// a configured latency and the two endpoints' routes.
    pub fn seed_toml(&self) -> String {
        let node = |id: &str, region: &str, ip: Ipv4Addr| {
            format!(
                "[[nodes]]\nid = \"{id}\"\nregion = \"{region}\"\nng = \"{ip}:{}\"\ntunnel = \"{ip}:{}\"\n",
                self.ng_port, self.tunnel_port
            )
        };
        format!(
            "regions = [\"r1\", \"r2\"]\n{}{}\
             [[gateways]]\nid = \"gw1\"\nregion = \"r1\"\nsip = \"127.0.1.1:5060\"\n\
             [[gateways]]\nid = \"gw2\"\nregion = \"r2\"\nsip = \"127.0.1.2:5060\"\n\
             [[latency]]\na = \"r1\"\nb = \"r2\"\nms = 10\n\
             [[routes]]\nendpoint = \"{LOCAL}\"\ngateway = \"gw1\"\n\
             [[routes]]\nendpoint = \"{REMOTE}\"\ngateway = \"gw2\"\n",
            node("a", "r1", self.a_ip),
            node("b", "r2", self.b_ip),
        )
    }

    /// Arguments of `rtpmesh node` for node `ip` (one worker, epoll,
    /// tunnels on, long media timeout: a set of calls idles while the
    /// other path is measured).
    pub fn node_args(&self, ip: Ipv4Addr) -> Vec<String> {
        [
            "node".to_owned(),
            "--listen-ng".into(),
            format!("{ip}:{}", self.ng_port),
            "--interface".into(),
            ip.to_string(),
            "--port-min".into(),
            self.ports.0.to_string(),
            "--port-max".into(),
            self.ports.1.to_string(),
            "--workers".into(),
            "1".into(),
            "--backend".into(),
            "epoll".into(),
            "--timeout".into(),
            "3600".into(),
            "--tunnel-address".into(),
            format!("{ip}:{}", self.tunnel_port),
            "--tunnel-secret".into(),
            self.secret.clone(),
        ]
        .into()
    }

    /// Arguments of `rtpmesh control` with the seed at `seed`.
    pub fn controller_args(&self, seed: &Path) -> Vec<String> {
        vec![
            "control".into(),
            "--listen-ng".into(),
            self.controller.to_string(),
            "--seed".into(),
            seed.display().to_string(),
            "--threads".into(),
            "2".into(),
        ]
    }
}

/// The two paths compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path2 {
    /// Same-region calls: caller → A → callee.
    OneNode,
    /// Cross-region calls: caller → A → tunnel → B → callee.
    TwoNode,
}

impl Path2 {
    /// Name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::OneNode => "1-node",
            Self::TwoNode => "2-node (tunnel)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::OneNode => "one_node",
            Self::TwoNode => "two_node",
        }
    }
}

/// One measured run of one path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunResult {
    /// Offered packets per second (all streams).
    pub offered_pps: f64,
    /// Round number (0-based).
    pub round: usize,
    /// Window seconds.
    pub window_s: f64,
    /// Packets sent in the window.
    pub sent: u64,
    /// Of those, delivered.
    pub delivered: u64,
    /// Node A's CPU seconds in the window.
    pub a_cpu_s: f64,
    /// Node B's CPU seconds in the window.
    pub b_cpu_s: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// The generator could not keep the schedule.
    pub gen_limited: bool,
    /// The generator's CPU seconds in the window.
    pub gen_cpu_s: f64,
}

impl RunResult {
    fn from_outcome(offered_pps: f64, round: usize, o: &Outcome) -> Self {
        let cpu = |i: usize| o.pids_cpu_s.get(i).copied().flatten().unwrap_or(0.0);
        Self {
            offered_pps,
            round,
            window_s: o.window_s,
            sent: o.sent,
            delivered: o.received,
            a_cpu_s: cpu(0),
            b_cpu_s: cpu(1),
            p50_us: o.latency.p50_us,
            p99_us: o.latency.p99_us,
            gen_limited: o.gen_limited,
            gen_cpu_s: o.gen_cpu_s,
        }
    }
}

/// Runs of one path at one rate, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Runs.
    pub runs: usize,
    /// Window seconds.
    pub window_s: f64,
    /// Packets sent in the windows.
    pub sent: u64,
    /// Delivered.
    pub delivered: u64,
    /// A's CPU seconds.
    pub a_cpu_s: f64,
    /// B's CPU seconds.
    pub b_cpu_s: f64,
    /// Mean of the runs' medians, µs.
    pub p50_us: f64,
    /// Mean of the runs' 99th percentiles, µs.
    pub p99_us: f64,
    /// Any run was generator-limited.
    pub gen_limited: bool,
}

impl Totals {
    /// Sums `runs`.
    pub fn of<'a>(runs: impl IntoIterator<Item = &'a RunResult>) -> Self {
        let mut t = Self::default();
        for r in runs {
            t.runs += 1;
            t.window_s += r.window_s;
            t.sent += r.sent;
            t.delivered += r.delivered;
            t.a_cpu_s += r.a_cpu_s;
            t.b_cpu_s += r.b_cpu_s;
            t.p50_us += r.p50_us;
            t.p99_us += r.p99_us;
            t.gen_limited |= r.gen_limited;
        }
        if t.runs > 0 {
            t.p50_us /= t.runs as f64;
            t.p99_us /= t.runs as f64;
        }
        t
    }

    /// Relay CPU seconds charged to `path`: A alone for the 1-node path
    /// (B holds no call of it), A + B for the 2-node path.
    pub fn relay_cpu_s(&self, path: Path2) -> f64 {
        match path {
            Path2::OneNode => self.a_cpu_s,
            Path2::TwoNode => self.a_cpu_s + self.b_cpu_s,
        }
    }

    /// Delivered packets per relay CPU-second.
    pub fn per_cpu_s(&self, path: Path2) -> Option<f64> {
        let c = self.relay_cpu_s(path);
        (c > 0.0).then(|| self.delivered as f64 / c)
    }

    /// µs of `cpu_s` per delivered packet.
    pub fn us_per_pkt(&self, cpu_s: f64) -> Option<f64> {
        (self.delivered > 0).then(|| cpu_s * 1e6 / self.delivered as f64)
    }

    /// Lost fraction.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            1.0 - self.delivered as f64 / self.sent as f64
        }
    }

    /// Delivered packets per second.
    pub fn pps(&self) -> f64 {
        self.delivered as f64 / self.window_s.max(1e-9)
    }
}

/// One rate: both paths' runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RatePoint {
    /// Offered pps.
    pub offered_pps: f64,
    /// 1-node runs.
    pub one: Vec<RunResult>,
    /// 2-node runs.
    pub two: Vec<RunResult>,
}

/// In-process cost of the tunnel's per-packet cryptography, for scale
/// against the nodes' CPU per packet.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CryptoCost {
    /// Inner datagram size.
    pub size: usize,
    /// `tunnel::seal` (header + HMAC-SHA256 tag), ns per packet.
    pub seal_ns: f64,
    /// `tunnel::open` (header check + constant-time tag check), ns per packet.
    pub open_ns: f64,
}

/// Times the relay's own `seal` and `open` on a `size`-byte datagram: the
/// best of 20 batches of 20,000 (the best, because preemption on a shared
/// machine only ever adds).
pub fn crypto_cost(size: usize) -> CryptoCost {
    use rtpmesh_flow::rtp::PacketKind;
    use rtpmesh_flow::tunnel::{derive_key, open, seal, HEADER_LEN};
    use std::hint::black_box;
    let key = derive_key(
        b"rtpmesh-bench",
        SocketAddr::from(([127, 0, 0, 2], 27000)),
        SocketAddr::from(([127, 0, 0, 3], 27000)),
    );
    let payload = vec![0x5au8; size];
    let mut datagram = vec![0u8; HEADER_LEN + size];
    datagram[..HEADER_LEN].copy_from_slice(&seal(&key, PacketKind::Rtp, 7, 1, &payload));
    datagram[HEADER_LEN..].copy_from_slice(&payload);
    const N: u32 = 20_000;
    let best = |f: &mut dyn FnMut(u64)| {
        (0..20)
            .map(|_| {
                let t = Instant::now();
                for i in 0..N {
                    f(u64::from(i));
                }
                t.elapsed().as_nanos() as f64 / f64::from(N)
            })
            .fold(f64::INFINITY, f64::min)
    };
    let seal_ns = best(&mut |i| {
        black_box(seal(
            black_box(&key),
            PacketKind::Rtp,
            7,
            i,
            black_box(&payload),
        ));
    });
    let open_ns = best(&mut |_| {
        let r = open(black_box(&key), black_box(&datagram));
        assert!(r.is_ok());
        black_box(r.ok());
    });
    CryptoCost {
        size,
        seal_ns,
        open_ns,
    }
}

/// Everything a tunnel run produced, and how it was made.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The measured rates.
    pub points: Vec<RatePoint>,
    /// Calls per path.
    pub calls: usize,
    /// Packet size.
    pub size: usize,
    /// Measured seconds per run.
    pub secs: f64,
    /// `YYYY-MM-DDTHH:MMZ`.
    pub date: String,
    /// CPUs, model, kernel.
    pub machine: String,
    /// The command that made it.
    pub command: String,
    /// CPUs the nodes ran on (`taskset` list), if pinned.
    pub node_cpus: Option<String>,
    /// Node A's tunnel packet counter (`statistics` `tunnel` `packets`: one
    /// direction, about half of the 2-node packets), as a check that the
    /// 2-node calls did use the tunnel.
    pub tunnel_packets: Option<i64>,
    /// Tunnel packets that failed authentication on A and B.
    pub auth_failures: Option<i64>,
    /// Seal/open cost measured in-process.
    pub crypto: Option<CryptoCost>,
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

impl Report {
    /// The markdown table (summary per rate, then every run).
    pub fn markdown(&self) -> String {
        let mut s = String::from("# Tunnel overhead\n\n");
        let _ = writeln!(
            s,
            "{} calls per path (2 streams each, {}-byte packets), {} s measured per run after 1 s of warm-up; \
             paths alternated 1-node, 2-node, ... Relay CPU: utime+stime from /proc/PID/stat at the window's edges, \
             node A alone for the 1-node path, A + B for the 2-node path.\n",
            self.calls, self.size, self.secs
        );
        self.summary_table(&mut s);
        self.runs_table(&mut s);
        self.crypto_notes(&mut s);
        let _ = writeln!(
            s,
            "Measured {} on {}; nodes and controller on CPU(s) {}, the generator on the CPUs the bench was started on.",
            self.date,
            self.machine,
            self.node_cpus.as_deref().unwrap_or("(not pinned)")
        );
        let _ = writeln!(s, "Command: `{}`", self.command);
        s
    }

    /// Per rate and path: totals over the rounds, relative to the 1-node path.
    fn summary_table(&self, s: &mut String) {
        s.push_str("| offered pps | path | runs | delivered pps | loss | relay CPU (% of a core) | pkts per relay CPU-s | x 1-node | A CPU µs/pkt | x 1-node | B CPU µs/pkt | p50 / p99 µs |\n");
        s.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for p in &self.points {
            let one = Totals::of(&p.one);
            let two = Totals::of(&p.two);
            let base_eff = one.per_cpu_s(Path2::OneNode);
            let base_a = one.us_per_pkt(one.a_cpu_s);
            for (path, t) in [(Path2::OneNode, one), (Path2::TwoNode, two)] {
                let eff = t.per_cpu_s(path);
                let a = t.us_per_pkt(t.a_cpu_s);
                let _ = writeln!(
                    s,
                    "| {:.0} | {} | {} | {:.0}{} | {:.3}% | {:.1}% | {} | {} | {} | {} | {} | {:.0} / {:.0} |",
                    p.offered_pps,
                    path.name(),
                    t.runs,
                    t.pps(),
                    if t.gen_limited { " (gen-limited)" } else { "" },
                    t.loss() * 100.0,
                    100.0 * t.relay_cpu_s(path) / t.window_s.max(1e-9),
                    fmt_opt(eff, 0),
                    fmt_opt(ratio(eff, base_eff), 2),
                    fmt_opt(a, 2),
                    fmt_opt(ratio(a, base_a), 2),
                    match path {
                        Path2::OneNode => "(idle)".to_owned(),
                        Path2::TwoNode => fmt_opt(t.us_per_pkt(t.b_cpu_s), 2),
                    },
                    t.p50_us,
                    t.p99_us
                );
            }
        }
    }

    /// Every run, in the order measured.
    fn runs_table(&self, s: &mut String) {
        s.push_str("\nEvery run, in the order measured:\n\n");
        s.push_str("| offered pps | round | path | delivered | loss | A CPU s | B CPU s | generator CPU s | pkts per relay CPU-s | p50 / p99 µs |\n");
        s.push_str("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n");
        for p in &self.points {
            let mut runs: Vec<(Path2, &RunResult)> = p
                .one
                .iter()
                .map(|r| (Path2::OneNode, r))
                .chain(p.two.iter().map(|r| (Path2::TwoNode, r)))
                .collect();
            runs.sort_by_key(|(path, r)| (r.round, *path == Path2::TwoNode));
            for (path, r) in runs {
                let t = Totals::of([r]);
                let _ = writeln!(
                    s,
                    "| {:.0} | {} | {} | {}{} | {:.3}% | {:.3} | {:.3} | {:.3} | {} | {:.0} / {:.0} |",
                    p.offered_pps,
                    r.round + 1,
                    path.name(),
                    r.delivered,
                    if r.gen_limited { " (gen-limited)" } else { "" },
                    t.loss() * 100.0,
                    r.a_cpu_s,
                    r.b_cpu_s,
                    r.gen_cpu_s,
                    fmt_opt(t.per_cpu_s(path), 0),
                    r.p50_us,
                    r.p99_us
                );
            }
        }
    }

    /// The tunnel counters and the in-process cost of its cryptography.
    fn crypto_notes(&self, s: &mut String) {
        s.push('\n');
        if let Some(n) = self.tunnel_packets {
            let _ = writeln!(
                s,
                "Node A's tunnel counter (`statistics.tunnel.packets`, one direction) read {n} at the end; tunnel packets failing authentication on A and B: {}.",
                self.auth_failures
                    .map_or_else(|| "?".into(), |v| v.to_string())
            );
        }
        if let Some(c) = self.crypto {
            let a_us = self
                .points
                .first()
                .and_then(|p| Totals::of(&p.two).us_per_pkt(Totals::of(&p.two).a_cpu_s));
            let _ = writeln!(
                s,
                "Tunnel cryptography in-process (the relay's `tunnel::seal` / `tunnel::open`, {}-byte datagram, best of 20 x 20,000): \
                 seal {:.0} ns, open {:.0} ns per packet{}.\n",
                c.size,
                c.seal_ns,
                c.open_ns,
                a_us.map_or_else(String::new, |a| format!(
                    "; A seals every packet towards B and opens every packet from B, so on average {:.0} ns per delivered packet, {:.1}% of A's {a:.2} µs per packet on the 2-node path at the first rate",
                    (c.seal_ns + c.open_ns) / 2.0,
                    100.0 * (c.seal_ns + c.open_ns) / 2.0 / (a * 1000.0)
                ))
            );
        }
    }

    /// The same as JSON.
    pub fn json(&self) -> String {
        let esc = |t: &str| t.replace('\\', "\\\\").replace('"', "\\\"");
        let num = |v: Option<f64>| {
            v.filter(|v| v.is_finite())
                .map_or_else(|| "null".into(), |v| format!("{v}"))
        };
        let mut s = String::from("{\n");
        let _ = writeln!(s, "  \"date\": \"{}\",", esc(&self.date));
        let _ = writeln!(s, "  \"machine\": \"{}\",", esc(&self.machine));
        let _ = writeln!(s, "  \"command\": \"{}\",", esc(&self.command));
        let _ = writeln!(
            s,
            "  \"node_cpus\": {},",
            self.node_cpus
                .as_deref()
                .map_or_else(|| "null".into(), |c| format!("\"{}\"", esc(c)))
        );
        let _ = writeln!(
            s,
            "  \"calls\": {}, \"size\": {}, \"secs\": {},",
            self.calls, self.size, self.secs
        );
        let _ = writeln!(
            s,
            "  \"tunnel_packets\": {}, \"auth_failures\": {},",
            num(self.tunnel_packets.map(|v| v as f64)),
            num(self.auth_failures.map(|v| v as f64))
        );
        if let Some(c) = self.crypto {
            let _ = writeln!(
                s,
                "  \"crypto\": {{\"size\": {}, \"seal_ns\": {}, \"open_ns\": {}}},",
                c.size, c.seal_ns, c.open_ns
            );
        }
        s.push_str("  \"points\": [\n");
        for (i, p) in self.points.iter().enumerate() {
            let one = Totals::of(&p.one);
            let two = Totals::of(&p.two);
            let _ = write!(s, "    {{\"offered_pps\": {}", p.offered_pps);
            for (path, t) in [(Path2::OneNode, one), (Path2::TwoNode, two)] {
                let k = path.key();
                let _ = write!(
                    s,
                    ", \"{k}\": {{\"runs\": {}, \"delivered_pps\": {}, \"loss\": {}, \"relay_cpu_s\": {}, \"a_cpu_s\": {}, \"b_cpu_s\": {}, \"per_cpu_s\": {}, \"a_us_per_pkt\": {}, \"b_us_per_pkt\": {}, \"p50_us\": {}, \"p99_us\": {}, \"gen_limited\": {}}}",
                    t.runs,
                    t.pps(),
                    t.loss(),
                    t.relay_cpu_s(path),
                    t.a_cpu_s,
                    t.b_cpu_s,
                    num(t.per_cpu_s(path)),
                    num(t.us_per_pkt(t.a_cpu_s)),
                    num(t.us_per_pkt(t.b_cpu_s)),
                    t.p50_us,
                    t.p99_us,
                    t.gen_limited
                );
            }
            let _ = write!(
                s,
                ", \"per_cpu_s_ratio\": {}, \"a_us_per_pkt_ratio\": {}}}",
                num(ratio(
                    two.per_cpu_s(Path2::TwoNode),
                    one.per_cpu_s(Path2::OneNode)
                )),
                num(ratio(
                    two.us_per_pkt(two.a_cpu_s),
                    one.us_per_pkt(one.a_cpu_s)
                ))
            );
            s.push_str(if i + 1 < self.points.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        s.push_str("  ]\n}\n");
        s
    }
}

/// `YYYY-MM-DDTHH:MMZ` for Unix seconds (UTC, proleptic Gregorian).
pub fn utc_stamp(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// CPUs, model and kernel of this machine.
pub fn machine() -> String {
    // Online CPUs, not this process's affinity mask (the bench is pinned).
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), kernel {kernel}")
}

/// What `rtpmesh-bench tunnel` is asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `rtpmesh` binary.
    pub rtpmesh: PathBuf,
    /// Calls per path.
    pub calls: usize,
    /// Packets per second per stream, one measured point each.
    pub pps: Vec<f64>,
    /// Measured seconds per run.
    pub secs: f64,
    /// Rounds (each: 1-node, then 2-node).
    pub rounds: usize,
    /// Packet size.
    pub size: usize,
    /// `taskset` CPU list for the nodes and the controller.
    pub node_cpus: Option<String>,
    /// Addresses and ports.
    pub topo: Topology,
    /// Logs and the seed go here.
    pub dir: PathBuf,
}

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(
        name: &'static str,
        bin: &Path,
        args: &[String],
        cpus: Option<&str>,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        // Through taskset, which execs the program: the pid is the node's.
        let mut cmd = match cpus {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {} for {name}", bin.display()))?;
        Ok(Self { name, child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!(
                "{} exited ({st}): {}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(ng: SocketAddr) -> bool {
    NgClient::new(ng)
        .and_then(|c| c.with_retries(Duration::from_millis(200), 1))
        .ok()
        .and_then(|mut c| c.request(&dict([("command", "ping".into())])).ok())
        .and_then(|v| v.get("result").and_then(Value::as_str).map(str::to_owned))
        .is_some_and(|r| r == "pong")
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{what} not ready after {secs} s")
}

fn offer_extra(callee: &str) -> [(&'static str, Value); 2] {
    [("callee", callee.into()), ("region", "r1".into())]
}

/// The controller places calls on both nodes once both have answered a
/// health check: a cross-region probe call must land on A and B.
fn wait_placeable(ctl: SocketAddr) -> anyhow::Result<()> {
    let mut n = 0;
    wait_for("controller placement on nodes a and b", 30, || {
        n += 1;
        let id = format!("tunnel-ready-{n}");
        let Ok(c) = NgClient::new(ctl) else {
            return false;
        };
        let Ok(mut c) = c.with_retries(Duration::from_millis(1000), 2) else {
            return false;
        };
        let body = setup::offer_body(
            &id,
            SocketAddr::from(([127, 0, 0, 1], 9)),
            0,
            &offer_extra(REMOTE),
        );
        let route = c.request(&body).ok().and_then(|v| setup::route_of(&v));
        let _ = c.request(&dict([
            ("command", "delete".into()),
            ("call-id", id.as_str().into()),
            ("delete-delay", 0u64.into()),
        ]));
        route == Some(("a".into(), "b".into()))
    })
}

fn tunnel_stats(ng: SocketAddr) -> Option<(i64, i64)> {
    let mut c = NgClient::new(ng)
        .ok()?
        .with_retries(Duration::from_millis(1000), 2)
        .ok()?;
    let v = c.request(&dict([("command", "statistics".into())])).ok()?;
    let t = v.get("statistics")?.get("tunnel")?;
    Some((
        t.get("packets").and_then(Value::as_int)?,
        t.get("authfailures").and_then(Value::as_int).unwrap_or(0),
    ))
}

fn plan(active: usize, rate: f64, secs: f64, size: usize, pids: &[u32]) -> Plan {
    Plan {
        phases: vec![Phase {
            rate: Some(rate),
            dur: Duration::from_secs_f64(1.0 + secs),
        }],
        active,
        window_start: Duration::from_secs(1),
        window_end: Duration::from_secs_f64(1.0 + secs),
        drain: Duration::from_millis(300),
        size,
        relay_pid: None,
        exact_cpu: false,
        cpu_pids: pids.to_vec(),
        meter: None,
    }
}

fn check_routes(calls: &[Call], want: (&str, &str)) -> anyhow::Result<()> {
    for c in calls {
        match &c.route {
            Some((a, b)) if a == want.0 && b == want.1 => {}
            r => bail!("call {} placed on {r:?}, expected nodes {want:?}", c.id),
        }
    }
    Ok(())
}

/// Starts the nodes and the controller, sets up both sets of calls and
/// measures every rate, alternating the paths.
pub fn run(o: &Options) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&o.dir)?;
    let crypto = crypto_cost(o.size);
    eprintln!(
        "[tunnel] in-process: seal {:.0} ns, open {:.0} ns per {}-byte packet",
        crypto.seal_ns, crypto.open_ns, o.size
    );
    let t = &o.topo;
    let (mut a, mut b, mut ctl) = start_fabric(o)?;
    let pids = [a.pid(), b.pid()];
    eprintln!(
        "[tunnel] node a pid {}, node b pid {}, controller pid {}; logs in {}",
        pids[0],
        pids[1],
        ctl.pid(),
        o.dir.display()
    );

    let (one_calls, two_calls) = setup_both_paths(o)?;
    let mut g1 = Generator::new(&one_calls)?;
    let mut g2 = Generator::new(&two_calls)?;
    let mut points = Vec::new();
    for &pps in &o.pps {
        let active = g1.streams();
        let rate = active as f64 * pps;
        let mut pt = RatePoint {
            offered_pps: rate,
            ..RatePoint::default()
        };
        for round in 0..o.rounds {
            for path in [Path2::OneNode, Path2::TwoNode] {
                a.alive()?;
                b.alive()?;
                let g = match path {
                    Path2::OneNode => &mut g1,
                    Path2::TwoNode => &mut g2,
                };
                let out = g.run(&plan(active, rate, o.secs, o.size, &pids));
                let r = RunResult::from_outcome(rate, round, &out);
                log_run(rate, round, path, &r);
                match path {
                    Path2::OneNode => pt.one.push(r),
                    Path2::TwoNode => pt.two.push(r),
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        points.push(pt);
    }
    drop((g1, g2));
    let stats_a = tunnel_stats(t.a_ng());
    let stats_b = tunnel_stats(t.b_ng());
    setup::teardown(t.controller, &one_calls);
    setup::teardown(t.controller, &two_calls);
    ctl.alive()?;
    Ok(Report {
        points,
        calls: o.calls,
        size: o.size,
        secs: o.secs,
        date: utc_stamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        machine: machine(),
        command: String::new(),
        node_cpus: o.node_cpus.clone(),
        tunnel_packets: stats_a.map(|s| s.0),
        auth_failures: stats_a.zip(stats_b).map(|(x, y)| x.1 + y.1),
        crypto: Some(crypto),
    })
}

/// Starts nodes a and b and the controller (seeded with the topology), and
/// waits until the controller can place calls.
fn start_fabric(o: &Options) -> anyhow::Result<(Proc, Proc, Proc)> {
    let t = &o.topo;
    let seed = o.dir.join("seed.toml");
    std::fs::write(&seed, t.seed_toml())?;
    let cpus = o.node_cpus.as_deref();
    let a = Proc::spawn("node-a", &o.rtpmesh, &t.node_args(t.a_ip), cpus, &o.dir)?;
    let b = Proc::spawn("node-b", &o.rtpmesh, &t.node_args(t.b_ip), cpus, &o.dir)?;
    wait_for("node a", 15, || ping(t.a_ng()))?;
    wait_for("node b", 15, || ping(t.b_ng()))?;
    let ctl = Proc::spawn(
        "controller",
        &o.rtpmesh,
        &t.controller_args(&seed),
        cpus,
        &o.dir,
    )?;
    wait_for("controller", 15, || ping(t.controller))?;
    wait_placeable(t.controller)?;
    Ok((a, b, ctl))
}

/// Sets up the same-region calls (on node a alone) and the cross-region
/// ones (a to b through the tunnel), checking where each was placed.
fn setup_both_paths(o: &Options) -> anyhow::Result<(Vec<Call>, Vec<Call>)> {
    let t = &o.topo;
    let lo = [Ipv4Addr::LOCALHOST];
    let tag = format!("bench-tunnel-{}", std::process::id());
    let one_calls = setup::setup_calls_with(
        t.controller,
        o.calls,
        &lo,
        &format!("{tag}-1n"),
        &offer_extra(LOCAL),
    )?;
    check_routes(&one_calls, ("a", "a"))?;
    let two_calls = setup::setup_calls_with(
        t.controller,
        o.calls,
        &lo,
        &format!("{tag}-2n"),
        &offer_extra(REMOTE),
    )?;
    check_routes(&two_calls, ("a", "b"))?;
    eprintln!(
        "[tunnel] {} same-region calls on a, {} cross-region calls on a -> b",
        one_calls.len(),
        two_calls.len()
    );
    Ok((one_calls, two_calls))
}

/// One progress line per run, on stderr.
fn log_run(rate: f64, round: usize, path: Path2, r: &RunResult) {
    let tot = Totals::of([r]);
    eprintln!(
        "[tunnel] {rate:>7.0} pps round {} {:<16} delivered {:>8.0} pps, loss {:.3}%, A {:.3} s B {:.3} s gen {:.3} s CPU, {} pkts/CPU-s, p50 {:.0} p99 {:.0} us{}",
        round + 1,
        path.name(),
        tot.pps(),
        tot.loss() * 100.0,
        r.a_cpu_s,
        r.b_cpu_s,
        r.gen_cpu_s,
        fmt_opt(tot.per_cpu_s(path), 0),
        r.p50_us,
        r.p99_us,
        if r.gen_limited { " GENERATOR-LIMITED" } else { "" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_parses_as_the_controller_reads_it() {
        let t = Topology::default();
        let dir = std::env::temp_dir().join(format!("rtpmesh-bench-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seed.toml");
        std::fs::write(&path, t.seed_toml()).unwrap();
        let seed = rtpmesh_control::controller::seed::Seed::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(seed.regions, ["r1", "r2"]);
        let nodes: Vec<_> = seed
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n.region.as_str(), n.ng, n.tunnel))
            .collect();
        assert_eq!(
            nodes,
            [
                (
                    "a",
                    "r1",
                    "127.0.0.2:22223".parse().unwrap(),
                    "127.0.0.2:27000".parse().unwrap()
                ),
                (
                    "b",
                    "r2",
                    "127.0.0.3:22223".parse().unwrap(),
                    "127.0.0.3:27000".parse().unwrap()
                ),
            ]
        );
        let gws: Vec<_> = seed
            .gateways
            .iter()
            .map(|g| (g.id.as_str(), g.region.as_str()))
            .collect();
        assert_eq!(gws, [("gw1", "r1"), ("gw2", "r2")]);
        let routes: Vec<_> = seed
            .routes
            .iter()
            .map(|r| (r.endpoint.as_str(), r.gateway.as_str()))
            .collect();
        assert_eq!(routes, [(LOCAL, "gw1"), (REMOTE, "gw2")]);
        assert_eq!(seed.latency.len(), 1);
        // Both nodes' tunnels on, the same secret, one worker.
        for ip in [t.a_ip, t.b_ip] {
            let args = t.node_args(ip).join(" ");
            assert!(
                args.contains(&format!("--tunnel-address {ip}:27000")),
                "{args}"
            );
            assert!(args.contains("--tunnel-secret rtpmesh-bench tunnel secret"));
            assert!(args.contains("--workers 1"));
            assert!(args.contains(&format!("--interface {ip}")));
        }
    }

    fn run(round: usize, delivered: u64, a: f64, b: f64, p50: f64) -> RunResult {
        RunResult {
            offered_pps: 10_000.0,
            round,
            window_s: 5.0,
            sent: 50_000,
            delivered,
            a_cpu_s: a,
            b_cpu_s: b,
            p50_us: p50,
            p99_us: 2.0 * p50,
            gen_limited: false,
            gen_cpu_s: 1.0,
        }
    }

    #[test]
    fn totals_and_ratios() {
        let one = [
            run(0, 50_000, 1.0, 0.01, 30.0),
            run(1, 50_000, 1.5, 0.01, 50.0),
        ];
        let t = Totals::of(&one);
        assert_eq!(t.runs, 2);
        assert_eq!(t.delivered, 100_000);
        assert_eq!(t.loss(), 0.0);
        assert!((t.pps() - 10_000.0).abs() < 1e-9);
        // 1-node: A alone; B's idle time is not charged.
        assert_eq!(t.per_cpu_s(Path2::OneNode), Some(40_000.0));
        assert_eq!(t.per_cpu_s(Path2::TwoNode), Some(100_000.0 / 2.52));
        assert_eq!(t.us_per_pkt(t.a_cpu_s), Some(25.0));
        assert_eq!(t.p50_us, 40.0);
        assert_eq!(t.p99_us, 80.0);
        let lossy = Totals::of(&[run(0, 49_000, 1.0, 1.0, 1.0)]);
        assert!((lossy.loss() - 0.02).abs() < 1e-12);
        assert_eq!(Totals::default().per_cpu_s(Path2::OneNode), None);
        assert_eq!(Totals::default().us_per_pkt(1.0), None);
    }

    #[test]
    fn report_tables() {
        let r = Report {
            points: vec![RatePoint {
                offered_pps: 10_000.0,
                one: vec![
                    run(0, 50_000, 1.0, 0.0, 30.0),
                    run(1, 50_000, 1.0, 0.0, 30.0),
                ],
                two: vec![
                    run(0, 50_000, 1.2, 1.3, 40.0),
                    run(1, 50_000, 1.2, 1.3, 40.0),
                ],
            }],
            calls: 100,
            size: 172,
            secs: 5.0,
            date: "2026-11-25T22:00Z".into(),
            machine: "2 CPUs (x), kernel y".into(),
            command: "bench/tunnel.sh".into(),
            node_cpus: Some("1".into()),
            tunnel_packets: Some(100_000),
            auth_failures: Some(0),
            crypto: Some(CryptoCost {
                size: 172,
                seal_ns: 1000.0,
                open_ns: 1400.0,
            }),
        };
        let md = r.markdown();
        // 1-node: 100k packets / 2 s of A = 50k; 2-node: 100k / 5 s = 20k.
        assert!(
            md.contains("| 10000 | 1-node | 2 | 10000 | 0.000% | 20.0% | 50000 | 1.00 | 20.00 | 1.00 | (idle) | 30 / 60 |"),
            "{md}"
        );
        assert!(
            md.contains("| 10000 | 2-node (tunnel) | 2 | 10000 | 0.000% | 50.0% | 20000 | 0.40 | 24.00 | 1.20 | 26.00 | 40 / 80 |"),
            "{md}"
        );
        // Runs in the order measured: round 1 both paths, then round 2.
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| 10000 | ")).collect();
        assert!(rows[2].starts_with("| 10000 | 1 | 1-node |"), "{md}");
        assert!(rows[3].starts_with("| 10000 | 1 | 2-node"), "{md}");
        assert!(rows[4].starts_with("| 10000 | 2 | 1-node |"), "{md}");
        assert!(md.contains("Command: `bench/tunnel.sh`"));
        assert!(md.contains("2026-11-25T22:00Z on 2 CPUs (x), kernel y"));
        assert!(md.contains("tunnel.packets`, one direction) read 100000"));
        // 1.2 µs per packet of A's 24 µs.
        assert!(md.contains("seal 1000 ns, open 1400 ns per packet; A seals every packet towards B and opens every packet from B, so on average 1200 ns per delivered packet, 5.0% of A's 24.00 µs"), "{md}");
        let j = r.json();
        assert!(
            j.contains("\"crypto\": {\"size\": 172, \"seal_ns\": 1000, \"open_ns\": 1400}"),
            "{j}"
        );
        assert!(j.contains("\"per_cpu_s_ratio\": 0.4"), "{j}");
        assert!(j.contains("\"a_us_per_pkt_ratio\": 1.2"), "{j}");
        assert!(j.contains("\"command\": \"bench/tunnel.sh\""), "{j}");
        assert_eq!(j.matches('{').count(), j.matches('}').count());
    }

    #[test]
    fn crypto_is_timed() {
        let c = crypto_cost(172);
        assert!(c.seal_ns > 0.0 && c.seal_ns.is_finite(), "{c:?}");
        assert!(c.open_ns > 0.0 && c.open_ns.is_finite(), "{c:?}");
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "1970-01-01T00:00Z");
        assert_eq!(utc_stamp(951_782_400), "2000-02-29T00:00Z");
        assert_eq!(utc_stamp(1_795_644_000 + 59), "2026-11-25T22:00Z");
    }
}
