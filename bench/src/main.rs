//! `rtpmesh-bench`: load generator, comparison suite, scale runs and pcap
//! replay for relays driven over ng.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rtpmesh_bench::gen::{Generator, Outcome};
use rtpmesh_bench::report::Record;
use rtpmesh_bench::setup::Media;
use rtpmesh_bench::{pcap, proc, report, scale, setup, srtpreport, suite, tunnel};

#[derive(Parser)]
#[command(
    name = "rtpmesh-bench",
    about = "Load, compare and replay RTP through ng relays"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Relay {
    /// ng address of the relay.
    #[arg(long, default_value = "127.0.0.1:2223")]
    ng: SocketAddr,
    /// Relay process id, for its CPU time (and syscalls).
    #[arg(long)]
    pid: Option<u32>,
    /// Packet size in bytes (172 = G.711 20 ms).
    #[arg(long, default_value_t = 172)]
    size: usize,
    /// What the calls carry: plain RTP, or an SDES-SRTP caller
    /// (AES_CM_128_HMAC_SHA1_80) and a plain callee, so the relay
    /// unprotects one stream of each call and protects the other.
    #[arg(long, value_enum, default_value = "plain")]
    media: Media,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fixed rate: CALLS calls, PPS packets per second per stream, both ways.
    Run {
        #[command(flatten)]
        relay: Relay,
        #[arg(long, default_value_t = 100)]
        calls: usize,
        #[arg(long, default_value_t = 50.0)]
        pps: f64,
        /// Measured seconds (after 1 s of warm-up).
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Also write the result as key=value (keys `fixed_*`, `name`,
        /// and `srtp`: 1 for SRTP calls) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Name recorded in `--out`.
        #[arg(long, default_value = "relay")]
        name: String,
        /// Read the relay's CPU to the nanosecond (its threads'
        /// `/proc/PID/task/*/schedstat`) instead of in 10 ms ticks
        /// (`/proc/PID/stat`); misses threads that exit during the run.
        #[arg(long)]
        exact_cpu: bool,
    },
    /// Highest rate with <= 0.1% loss (per-stream rate raised over CALLS calls).
    Search {
        #[command(flatten)]
        relay: Relay,
        #[arg(long, default_value_t = 250)]
        calls: usize,
        #[arg(long, default_value_t = 2.0)]
        secs: f64,
        /// Also write the result as key=value (keys `max_*`, `name`, and
        /// `srtp`: 1 for SRTP calls) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Name recorded in `--out`.
        #[arg(long, default_value = "relay")]
        name: String,
    },
    /// Loss in the first second after an overload ends.
    Overload {
        #[command(flatten)]
        relay: Relay,
        #[arg(long, default_value_t = 100)]
        calls: usize,
        #[arg(long, default_value_t = 2.0)]
        blast_secs: f64,
    },
    /// Everything the comparison needs from one relay, written as key=value.
    Suite {
        #[command(flatten)]
        relay: Relay,
        /// Name in the table.
        #[arg(long)]
        name: String,
        /// Where to write the results.
        #[arg(long)]
        out: PathBuf,
        /// Calls for the fixed run (50 pps per stream).
        #[arg(long, default_value_t = 100)]
        calls: usize,
        /// Calls for the rate search.
        #[arg(long, default_value_t = 250)]
        search_calls: usize,
        /// Only the rate search, recorded under this prefix (for a pass
        /// with the relay under a CPU quota).
        #[arg(long)]
        search_only: Option<String>,
    },
    /// Many provisioned streams, a subset active: throughput, latency, memory.
    Scale(ScaleArgs),
    /// Writes the shipped capture (a G.711 call and a video-sized stream).
    MakePcap {
        /// Output file.
        out: PathBuf,
    },
    /// Replays the RTP streams of a pcap/pcapng through the relay.
    Replay {
        #[command(flatten)]
        relay: Relay,
        /// The capture.
        pcap: PathBuf,
        /// Send as fast as possible instead of with the capture's timing.
        #[arg(long)]
        fast: bool,
        /// Timing speed-up factor (2 = twice as fast).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Tunnel overhead: starts a controller and two nodes (regions r1, r2)
    /// on loopback, sets up same-region (1-node) and cross-region (2-node,
    /// tunnelled) calls through the controller, and compares packets per
    /// relay CPU-second at the same offered rate, alternating the paths.
    Tunnel(TunnelArgs),
    /// Soak: one node under call churn for a set time; samples its RSS,
    /// fds, media ports and ng latency, and checks it ends clean.
    Soak(rtpmesh_bench::soak::Args),
    /// One relay's rate ladder in the namespace topology, relay CPU
    /// accounted exactly (run by bench/ns-compare.sh in the generator's
    /// namespace).
    NsLadder(rtpmesh_bench::nscmd::LadderArgs),
    /// Builds bench/results/ns-latest.{md,json} from ns-ladder outputs.
    NsReport(rtpmesh_bench::nscmd::ReportArgs),
    /// Checks that the relay CPU's accounting counts a spinner in the
    /// relay's cgroup as the relay's and one outside as another task's.
    NsMeterCheck(rtpmesh_bench::nscmd::MeterCheckArgs),
    /// Builds bench/results/srtp.md from `run --out` / `search --out`
    /// outputs (plain and `--media srtp`, several relays).
    SrtpReport {
        /// Markdown output.
        #[arg(long)]
        md: PathBuf,
        /// The fixed load, as the table's text describes it.
        #[arg(long, default_value = "")]
        load: String,
        /// `run --out` and `search --out` files.
        files: Vec<PathBuf>,
    },
    /// Builds bench/results/latest.{md,json} from suite outputs.
    Report {
        /// latest.md path.
        #[arg(long)]
        md: PathBuf,
        /// latest.json path.
        #[arg(long)]
        json: PathBuf,
        /// Suite outputs; the first named "rtpengine" is the baseline.
        files: Vec<PathBuf>,
    },
}

/// `scale` options.
#[derive(Args)]
struct ScaleArgs {
    #[command(flatten)]
    relay: Relay,
    /// Relay name for the table.
    #[arg(long, default_value = "rtpmesh-epoll")]
    name: String,
    /// Provisioned stream counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    streams: Vec<usize>,
    /// Active streams at each point.
    #[arg(long, default_value_t = 1000)]
    active: usize,
    /// Packets per second per active stream.
    #[arg(long, default_value_t = 50.0)]
    pps: f64,
    /// Measured seconds per point.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Markdown output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `tunnel` options.
#[derive(Args)]
struct TunnelArgs {
    /// The `rtpmesh` binary [default: next to this one].
    #[arg(long)]
    rtpmesh: Option<PathBuf>,
    /// Calls per path (2 streams each).
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Packets per second per stream, comma-separated: one point each.
    #[arg(long, value_delimiter = ',', default_value = "50,100")]
    pps: Vec<f64>,
    /// Measured seconds per run (after 1 s of warm-up).
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Rounds; each measures the 1-node path, then the 2-node path.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Packet size in bytes.
    #[arg(long, default_value_t = 172)]
    size: usize,
    /// `taskset` CPU list for the nodes and the controller.
    #[arg(long)]
    node_cpus: Option<String>,
    /// Markdown output.
    #[arg(long)]
    md: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The command line to record in the report [default: this one].
    #[arg(long)]
    command: Option<String>,
}

impl Relay {
    /// Refuses what `--media srtp` cannot measure: packets whose SRTP form
    /// the generator's receive buffer would cut, or a subcommand (`what`)
    /// that does not set up SRTP calls.
    fn check_media(&self, what: Option<&str>) -> anyhow::Result<()> {
        if self.media != Media::Srtp {
            return Ok(());
        }
        if let Some(what) = what {
            anyhow::bail!("{what} does not support --media srtp");
        }
        let max = rtpmesh_bench::gen::RX_MAX - 10;
        anyhow::ensure!(
            self.size <= max,
            "--media srtp: --size {} is above {max} (the generator receives at most {} bytes, and SRTP adds a 10-byte tag)",
            self.size,
            rtpmesh_bench::gen::RX_MAX
        );
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtpmesh-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.cmd {
        Cmd::Run { relay, .. }
        | Cmd::Search { relay, .. }
        | Cmd::Overload { relay, .. }
        | Cmd::Suite { relay, .. } => relay.check_media(None)?,
        Cmd::Replay { relay, .. } => relay.check_media(Some("replay"))?,
        Cmd::Scale(a) => a.relay.check_media(Some("scale"))?,
        _ => {}
    }
    match cli.cmd {
        Cmd::Run {
            relay,
            calls,
            pps,
            secs,
            out,
            name,
            exact_cpu,
        } => {
            let rec = fixed_rate(&relay, &name, calls, pps, secs, exact_cpu)?;
            write_kv(out.as_deref(), &rec)
        }
        Cmd::Search {
            relay,
            calls,
            secs,
            out,
            name,
        } => {
            let rec = search(&relay, &name, calls, secs)?;
            write_kv(out.as_deref(), &rec)
        }
        Cmd::Overload {
            relay,
            calls,
            blast_secs,
        } => overload(&relay, calls, blast_secs),
        Cmd::Suite {
            relay,
            name,
            out,
            calls,
            search_calls,
            search_only,
        } => {
            let rec = match search_only {
                Some(prefix) => search_record(&relay, &name, &prefix, search_calls)?,
                None => run_suite(&relay, &name, calls, search_calls)?,
            };
            std::fs::write(&out, rec.to_kv()).with_context(|| format!("write {}", out.display()))
        }
        Cmd::Scale(args) => scale_points(args),
        Cmd::MakePcap { out } => {
            let n = pcap::make(&out)?;
            println!("wrote {n} packets to {}", out.display());
            Ok(())
        }
        Cmd::Replay {
            relay,
            pcap: path,
            fast,
            speed,
        } => replay(&relay, &path, (!fast).then_some(speed)),
        Cmd::Tunnel(args) => tunnel_overhead(args),
        Cmd::Soak(args) => rtpmesh_bench::soak::main(args),
        Cmd::Report { md, json, files } => write_report(&md, &json, &files),
        Cmd::SrtpReport { md, load, files } => {
            let recs = files
                .iter()
                .map(|f| {
                    std::fs::read_to_string(f)
                        .with_context(|| format!("read {}", f.display()))
                        .map(|s| Record::from_kv(&s))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let text = srtpreport::markdown(&srtpreport::rows(&recs), &load);
            print!("{text}");
            std::fs::write(&md, text).with_context(|| format!("write {}", md.display()))
        }
        Cmd::NsLadder(a) => rtpmesh_bench::nscmd::ladder_main(a),
        Cmd::NsReport(a) => rtpmesh_bench::nscmd::report_main(a),
        Cmd::NsMeterCheck(a) => rtpmesh_bench::nscmd::meter_check_main(a),
    }
}

/// Writes `rec` as key=value to `out`, if given.
fn write_kv(out: Option<&Path>, rec: &Record) -> anyhow::Result<()> {
    match out {
        Some(p) => std::fs::write(p, rec.to_kv()).with_context(|| format!("write {}", p.display())),
        None => Ok(()),
    }
}

/// A record named `name` for calls carrying `media`.
fn media_record(name: &str, media: Media) -> Record {
    let mut rec = Record::new(name);
    rec.set("srtp", f64::from(u8::from(media == Media::Srtp)));
    rec
}

/// `run`: a fixed rate over fresh calls.
fn fixed_rate(
    relay: &Relay,
    name: &str,
    calls: usize,
    pps: f64,
    secs: f64,
    exact_cpu: bool,
) -> anyhow::Result<Record> {
    let calls = setup::setup_calls_media(
        relay.ng,
        calls,
        &[Ipv4Addr::LOCALHOST],
        &tag("run"),
        relay.media,
    )?;
    let mut g = Generator::new(&calls)?;
    let n = g.streams();
    let mut plan = suite::paced(n, n as f64 * pps, 1.0, secs, relay.size, relay.pid);
    plan.exact_cpu = exact_cpu;
    let o = g.run(&plan);
    print_outcome("fixed", n as f64 * pps, &o);
    setup::teardown(relay.ng, &calls);
    let mut rec = media_record(name, relay.media);
    put_outcome(&mut rec, "fixed", n as f64 * pps, &o);
    Ok(rec)
}

/// `search`: the highest rate with little loss.
fn search(relay: &Relay, name: &str, calls: usize, secs: f64) -> anyhow::Result<Record> {
    let r = suite::search(
        relay.ng,
        calls,
        20_000.0,
        5,
        secs,
        relay.size,
        relay.pid,
        &tag("search"),
        relay.media,
    )?;
    print_outcome("max", r.max_pps, &r.at_max);
    if r.gen_limited {
        println!("(generator-limited: the relay may go higher)");
    }
    let mut rec = media_record(name, relay.media);
    put_outcome(&mut rec, "max", r.max_pps, &r.at_max);
    rec.set("max_search_gen_limited", f64::from(u8::from(r.gen_limited)));
    Ok(rec)
}

/// `overload`: loss right after an overload.
fn overload(relay: &Relay, calls: usize, blast_secs: f64) -> anyhow::Result<()> {
    let calls = setup::setup_calls_media(
        relay.ng,
        calls,
        &[Ipv4Addr::LOCALHOST],
        &tag("ovl"),
        relay.media,
    )?;
    let mut g = Generator::new(&calls)?;
    let n = g.streams();
    let o = suite::overload(&mut g, n, blast_secs, 50.0, relay.size, relay.pid);
    print_outcome("after-overload", n as f64 * 50.0, &o);
    setup::teardown(relay.ng, &calls);
    Ok(())
}

/// `suite --search-only PREFIX`: only the rate search, under `prefix`.
fn search_record(
    relay: &Relay,
    name: &str,
    prefix: &str,
    search_calls: usize,
) -> anyhow::Result<Record> {
    let mut rec = Record::new(name);
    let r = suite::search(
        relay.ng,
        search_calls,
        10_000.0,
        5,
        2.0,
        relay.size,
        relay.pid,
        &tag("q"),
        relay.media,
    )?;
    print_outcome("max", r.max_pps, &r.at_max);
    put_outcome(&mut rec, prefix, r.max_pps, &r.at_max);
    Ok(rec)
}

/// `scale`: one point per provisioned stream count, until one fails.
fn scale_points(a: ScaleArgs) -> anyhow::Result<()> {
    let mut points = Vec::new();
    for n in a.streams {
        eprintln!(
            "[scale] {n} provisioned streams, {} active at {} pps",
            a.active, a.pps
        );
        match scale::point(
            a.relay.ng,
            a.relay.pid,
            n,
            a.active,
            a.pps,
            a.secs,
            &tag(&format!("scale{n}")),
        ) {
            Ok(p) => points.push(p),
            Err(e) => {
                eprintln!("[scale] {n} streams: {e:#}");
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let md = scale::markdown(&a.name, &points);
    print!("{md}");
    if let Some(out) = a.out {
        std::fs::write(out, md)?;
    }
    Ok(())
}

/// `tunnel`: packets per relay CPU-second, one node against two.
fn tunnel_overhead(a: TunnelArgs) -> anyhow::Result<()> {
    let rtpmesh = match a.rtpmesh {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("no directory for this binary")?
            .join("rtpmesh"),
    };
    let opts = tunnel::Options {
        rtpmesh,
        calls: a.calls,
        pps: a.pps,
        secs: a.secs,
        rounds: a.rounds,
        size: a.size,
        node_cpus: a.node_cpus,
        topo: tunnel::Topology::default(),
        dir: std::env::temp_dir().join(format!("rtpmesh-bench-tunnel-{}", std::process::id())),
    };
    let mut rep = tunnel::run(&opts)?;
    rep.command = a
        .command
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let text = rep.markdown();
    print!("{text}");
    if let Some(md) = a.md {
        std::fs::write(&md, text).with_context(|| format!("write {}", md.display()))?;
    }
    if let Some(json) = a.json {
        std::fs::write(&json, rep.json()).with_context(|| format!("write {}", json.display()))?;
    }
    Ok(())
}

/// `report`: merges suite outputs into latest.md and latest.json.
fn write_report(md: &Path, json: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    let recs = report::merge(
        files
            .iter()
            .map(|f| {
                std::fs::read_to_string(f)
                    .with_context(|| format!("read {}", f.display()))
                    .map(|s| Record::from_kv(&s))
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    std::fs::write(md, report::markdown(&recs))?;
    std::fs::write(json, report::json(&recs))?;
    print!("{}", report::markdown(&recs));
    Ok(())
}

fn tag(what: &str) -> String {
    format!(
        "bench-{what}-{}-{}",
        std::process::id(),
        rtpmesh_bench::rtp::now_ns() % 1_000_000
    )
}

fn print_outcome(what: &str, offered: f64, o: &Outcome) {
    let l = &o.latency;
    println!(
        "{what}: offered {offered:.0} pps, forwarded {:.0} pps, loss {:.4}% ({} of {} streams lost packets), reordered {}, send errors {}, SRTP errors {}{}",
        o.pps(),
        o.loss() * 100.0,
        o.streams_with_loss,
        o.streams,
        o.reordered,
        o.send_errors,
        o.srtp_errors,
        if o.gen_limited { ", GENERATOR-LIMITED" } else { "" }
    );
    println!(
        "  latency us: p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
        l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
    );
    if let Some(c) = o.relay_cpu_s {
        println!(
            "  relay CPU {:.3} s over {:.1} s ({:.0}% of a core): {:.0} packets per CPU-second; generator CPU {:.0}%",
            c,
            o.window_s,
            100.0 * c / o.window_s,
            o.per_cpu_s().unwrap_or(0.0),
            100.0 * o.gen_cpu_s / o.window_s
        );
    }
}

fn put_outcome(rec: &mut Record, p: &str, offered: f64, o: &Outcome) {
    rec.set(&format!("{p}_offered_pps"), offered);
    rec.set(&format!("{p}_pps"), o.pps());
    rec.set(&format!("{p}_loss"), o.loss());
    rec.set(
        &format!("{p}_streams_with_loss"),
        o.streams_with_loss as f64,
    );
    rec.set(&format!("{p}_streams"), o.streams as f64);
    rec.set(&format!("{p}_reordered"), o.reordered as f64);
    rec.set(&format!("{p}_srtp_errors"), o.srtp_errors as f64);
    rec.set(&format!("{p}_sent"), o.sent as f64);
    rec.set(&format!("{p}_received"), o.received as f64);
    rec.set(&format!("{p}_window_s"), o.window_s);
    rec.set(&format!("{p}_p50_us"), o.latency.p50_us);
    rec.set(&format!("{p}_p90_us"), o.latency.p90_us);
    rec.set(&format!("{p}_p99_us"), o.latency.p99_us);
    rec.set(&format!("{p}_p999_us"), o.latency.p999_us);
    rec.set(&format!("{p}_max_us"), o.latency.max_us);
    rec.set(&format!("{p}_gen_cpu"), o.gen_cpu_s / o.window_s.max(1e-9));
    rec.set(
        &format!("{p}_gen_limited"),
        f64::from(u8::from(o.gen_limited)),
    );
    if let Some(c) = o.relay_cpu_s {
        rec.set(&format!("{p}_relay_cpu"), c / o.window_s.max(1e-9));
        rec.set(&format!("{p}_relay_cpu_s"), c);
    }
    if let Some(v) = o.per_cpu_s() {
        rec.set(&format!("{p}_per_cpu_s"), v);
    }
}

fn run_suite(
    relay: &Relay,
    name: &str,
    calls: usize,
    search_calls: usize,
) -> anyhow::Result<Record> {
    let mut rec = Record::new(name);
    let lo = [Ipv4Addr::LOCALHOST];
    eprintln!("[{name}] fixed: {calls} calls x 50 pps x 2 directions");
    let fixed = setup::setup_calls_media(relay.ng, calls, &lo, &tag("fixed"), relay.media)?;
    let mut g = Generator::new(&fixed)?;
    let n = g.streams();
    let counter = relay.pid.and_then(proc::SyscallCounter::start);
    let o = g.run(&suite::paced(
        n,
        n as f64 * 50.0,
        1.0,
        5.0,
        relay.size,
        relay.pid,
    ));
    if let Some(sc) = counter.and_then(proc::SyscallCounter::stop) {
        rec.set(
            "fixed_syscalls_per_pkt",
            sc as f64 / o.received_total.max(1) as f64,
        );
    }
    print_outcome("fixed", n as f64 * 50.0, &o);
    put_outcome(&mut rec, "fixed", n as f64 * 50.0, &o);
    eprintln!("[{name}] overload: {calls} calls, 2 s blast, then 50 pps per stream");
    let o = suite::overload(&mut g, n, 2.0, 50.0, relay.size, relay.pid);
    print_outcome("after-overload", n as f64 * 50.0, &o);
    put_outcome(&mut rec, "ovl", n as f64 * 50.0, &o);
    drop(g);
    setup::teardown(relay.ng, &fixed);
    drop(fixed);

    eprintln!("[{name}] search: {search_calls} calls");
    let r = suite::search(
        relay.ng,
        search_calls,
        20_000.0,
        5,
        2.0,
        relay.size,
        relay.pid,
        &tag("search"),
        relay.media,
    )?;
    print_outcome("max", r.max_pps, &r.at_max);
    put_outcome(&mut rec, "max", r.max_pps, &r.at_max);
    let half = r.max_pps / 2.0;
    eprintln!("[{name}] half load: {half:.0} pps");
    let sc = setup::setup_calls_media(relay.ng, search_calls, &lo, &tag("half"), relay.media)?;
    let mut g = Generator::new(&sc)?;
    let n = g.streams();
    let o = g.run(&suite::paced(n, half, 1.0, 4.0, relay.size, relay.pid));
    print_outcome("half", half, &o);
    put_outcome(&mut rec, "half", half, &o);
    drop(g);
    setup::teardown(relay.ng, &sc);
    Ok(rec)
}

fn replay(relay: &Relay, path: &Path, speed: Option<f64>) -> anyhow::Result<()> {
    let cap = pcap::read(path)?;
    let pcap::CallMap {
        legs: map,
        calls: ncalls,
        streams,
    } = pcap::map_calls(&cap);
    anyhow::ensure!(
        ncalls > 0,
        "{}: no RTP over IPv4/UDP in the capture",
        path.display()
    );
    println!(
        "{}: {} UDP datagrams ({} other packets skipped), {} RTP streams on {} address pairs",
        path.display(),
        cap.datagrams.len(),
        cap.skipped,
        streams.len(),
        ncalls
    );
    let calls = setup::setup_calls(relay.ng, ncalls, &[Ipv4Addr::LOCALHOST], &tag("replay"))?;
    let mut g = Generator::new(&calls)?;
    let t0 = cap.datagrams.first().map(|d| d.ts).unwrap_or_default();
    let items: Vec<(u64, usize, Vec<u8>)> = cap
        .datagrams
        .iter()
        .zip(&map)
        .filter_map(|(d, m)| {
            let (call, fwd) = (*m)?;
            let at = d.ts.saturating_sub(t0).as_nanos() as u64;
            // Caller -> callee leaves the caller's socket (2c).
            Some((at, 2 * call + usize::from(!fwd), d.payload.clone()))
        })
        .collect();
    let o = g.replay(&items, speed, std::time::Duration::from_millis(500));
    print_outcome(
        if speed.is_some() {
            "replay (original timing)"
        } else {
            "replay (as fast as possible)"
        },
        o.sent as f64 / o.window_s.max(1e-9),
        &o,
    );
    drop(g);
    setup::teardown(relay.ng, &calls);
    Ok(())
}
