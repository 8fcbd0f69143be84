//! The subcommands `bench/ns-compare.sh` drives: `ns-ladder` (one relay's
//! ladder, run inside the generator's network namespace), `ns-report` (the
//! side-by-side report) and `ns-meter-check` (that the relay CPU's
//! accounting sees what runs there).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use crate::ladder;
use crate::nscpu::{Meter, CPUACCT_ROOT};
use crate::nsreport;
use crate::report::Record;

/// `ns-ladder` options.
#[derive(Args, Debug)]
pub struct LadderArgs {
    /// The relay's ng address.
    #[arg(long)]
    pub ng: SocketAddr,
    /// Relay name in the report.
    #[arg(long)]
    pub name: String,
    /// Where to write the record (key=value).
    #[arg(long)]
    pub out: PathBuf,
    /// Address the callers bind.
    #[arg(long)]
    pub caller: Ipv4Addr,
    /// Address the callees bind.
    #[arg(long)]
    pub callee: Ipv4Addr,
    /// Calls (2 streams each).
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Offered rates, pps over all streams, ascending.
    #[arg(long, value_delimiter = ',', required = true)]
    pub rates: Vec<f64>,
    /// Warm-up seconds after the calls are set up.
    #[arg(long, default_value_t = 3.0)]
    pub warm_first: f64,
    /// Warm-up seconds at the start of each step.
    #[arg(long, default_value_t = 0.5)]
    pub warm: f64,
    /// Measured seconds per step.
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
    /// Packet size in bytes (172 = G.711 20 ms).
    #[arg(long, default_value_t = 172)]
    pub size: usize,
    /// Relay process id (its utime+stime is recorded beside the exact
    /// figure).
    #[arg(long)]
    pub pid: Option<u32>,
    /// The relay's CPU.
    #[arg(long)]
    pub cpu: usize,
    /// cpuacct cgroup holding the relay's processes (relative to the
    /// cpuacct root, or absolute).
    #[arg(long)]
    pub cgroup: PathBuf,
    /// Kernel threads whose time is the relay's (NAPI threads of the
    /// relay-side devices, the CPU's ksoftirqd): a name, or a prefix
    /// ending in `*`; repeat.
    #[arg(long)]
    pub kthread: Vec<String>,
    /// Time NET_RX softirqs that interrupt other tasks on the relay CPU
    /// (BPF) and give that time back to the relay.
    #[arg(long)]
    pub softirq_bpf: bool,
}

/// `ns-report` options.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Markdown output.
    #[arg(long)]
    pub md: PathBuf,
    /// JSON output.
    #[arg(long)]
    pub json: PathBuf,
    /// The rate of the headline columns (a ladder step).
    #[arg(long, default_value_t = 40_000.0)]
    pub ref_rate: f64,
    /// A relay not measured: `NAME=REASON`; repeat.
    #[arg(long)]
    pub skip: Vec<String>,
    /// A line of context: `KEY=VALUE`; repeat (machine, kernel, command).
    #[arg(long)]
    pub meta: Vec<String>,
    /// Text put first in the Markdown (a title, a warning).
    #[arg(long)]
    pub title: Option<String>,
    /// `ns-ladder` outputs, rtpengine's among them for the ratios.
    pub files: Vec<PathBuf>,
}

/// `ns-meter-check` options.
#[derive(Args, Debug)]
pub struct MeterCheckArgs {
    /// The relay's CPU.
    #[arg(long)]
    pub cpu: usize,
    /// The relay's cpuacct cgroup.
    #[arg(long)]
    pub cgroup: PathBuf,
    /// Seconds each spinner runs.
    #[arg(long, default_value_t = 1.0)]
    pub secs: f64,
    /// Also load the NET_RX softirq timer (fails here, not in the first
    /// ladder, if it cannot).
    #[arg(long)]
    pub softirq_bpf: bool,
}

/// `ns-ladder`: one relay's ladder, written as a record.
pub fn ladder_main(a: LadderArgs) -> anyhow::Result<()> {
    let meter = Meter::new(a.cpu, &a.cgroup, &a.kthread, a.softirq_bpf)?;
    eprintln!(
        "[{}] relay CPU {}; its kernel threads: {}",
        a.name,
        a.cpu,
        meter
            .kthreads()
            .iter()
            .map(|(p, n)| format!("{n} ({p})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let o = ladder::Options {
        ng: a.ng,
        caller: a.caller,
        callee: a.callee,
        calls: a.calls,
        rates: a.rates,
        warm_first: a.warm_first,
        warm: a.warm,
        secs: a.secs,
        size: a.size,
        pid: a.pid,
        meter: Some(Arc::new(meter)),
    };
    let tag = format!("ns-{}-{}", a.name, std::process::id());
    let l = ladder::run(&o, &tag)?;
    let mut rec = ladder::record(&a.name, &l);
    rec.set("softirq_bpf", f64::from(u8::from(a.softirq_bpf)));
    std::fs::write(&a.out, rec.to_kv()).with_context(|| format!("write {}", a.out.display()))
}

fn split_kv(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .with_context(|| format!("{what} {s:?} is not KEY=VALUE"))
}

/// `ns-report`: the Markdown and JSON reports from ladder records.
pub fn report_main(a: ReportArgs) -> anyhow::Result<()> {
    let recs = a
        .files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .with_context(|| format!("read {}", f.display()))
                .map(|s| Record::from_kv(&s))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let skip = a
        .skip
        .iter()
        .map(|s| split_kv(s, "--skip"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let meta = a
        .meta
        .iter()
        .map(|s| split_kv(s, "--meta"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut md = a.title.map(|t| format!("{t}\n\n")).unwrap_or_default();
    md.push_str(&nsreport::markdown(&recs, &skip, a.ref_rate));
    if !meta.is_empty() {
        md.push('\n');
        for (k, v) in &meta {
            md.push_str(&format!("- {k}: {v}\n"));
        }
    }
    std::fs::write(&a.md, &md).with_context(|| format!("write {}", a.md.display()))?;
    std::fs::write(&a.json, nsreport::json(&recs, &skip, a.ref_rate, &meta))
        .with_context(|| format!("write {}", a.json.display()))?;
    print!("{md}");
    Ok(())
}

/// Spins a thread on `cpu` for `secs` (moved into `cgroup` first if
/// given) and returns its exact CPU time.
fn spin(cpu: usize, cgroup: Option<PathBuf>, secs: f64) -> anyhow::Result<f64> {
    std::thread::spawn(move || -> anyhow::Result<f64> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        if let Some(cg) = cgroup {
            std::fs::write(cg.join("tasks"), tid.to_string())
                .with_context(|| format!("move a thread into {}", cg.display()))?;
        }
        // SAFETY: a zeroed cpu_set_t is valid; CPU_SET on it is in bounds
        // for any real CPU number.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
                bail!("pin to CPU {cpu}: {}", std::io::Error::last_os_error());
            }
        }
        let t0 = thread_cpu();
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
        Ok(thread_cpu() - t0)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("spinner panicked"))?
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// `ns-meter-check`: a spinner in the relay's cgroup must count as the
/// relay's (within 2% of its own exact CPU time), one outside it as another
/// task's (at least 98% of it). Catches a wrong cgroup or CPU before a long run.
pub fn meter_check_main(a: MeterCheckArgs) -> anyhow::Result<()> {
    let meter = Meter::new(a.cpu, &a.cgroup, &[], a.softirq_bpf)?;
    let cg = if a.cgroup.is_absolute() {
        a.cgroup.clone()
    } else {
        PathBuf::from(CPUACCT_ROOT).join(&a.cgroup)
    };
    let mut failed = Vec::new();
    for inside in [true, false] {
        let s0 = meter.sample()?;
        let ran = spin(a.cpu, inside.then(|| cg.clone()), a.secs)?;
        let s1 = meter.sample()?;
        let x = meter.split(&s0, &s1);
        let (seen, what) = if inside {
            (x.relay_tasks, "relay tasks")
        } else {
            (x.others, "other tasks")
        };
        println!(
            "spinner {} the relay cgroup ran {ran:.3} s on CPU {}: counted {seen:.3} s as {what}; busy {:.3} s of {:.3} s, relay {:.3} s, others {:.3} s, steal {:.3} s",
            if inside { "inside" } else { "outside" },
            a.cpu,
            x.busy,
            x.wall,
            x.relay,
            x.others,
            x.steal,
        );
        // Other people's tasks may add to `others`, never to the relay's.
        let off = if inside {
            (seen - ran).abs()
        } else {
            ran - seen
        };
        if off > 0.02 * ran.max(0.1) {
            failed.push(format!(
                "{what}: counted {seen:.3} s, spinner ran {ran:.3} s"
            ));
        }
    }
    if !failed.is_empty() {
        bail!("relay CPU accounting is off: {}", failed.join("; "));
    }
    Ok(())
}
