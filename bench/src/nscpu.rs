//! Exact CPU accounting of one relay CPU, kernel work included.
//!
//! The busy fields of `/proc/stat` (user, system, softirq) are tick samples
//! on a kernel with tick accounting: a kernel fast path's short softirq
//! bursts on an otherwise idle CPU are mostly never sampled, so summing them
//! undercounts it 1.3-2.7x (../shared/FASTPATH-NOTES.md). Two sources are
//! exact instead:
//! - the CPU's idle, iowait and steal time (`/proc/stat`): with NO_HZ idle
//!   the kernel keeps idle time from clock reads at idle entry and exit, and
//!   an interrupt taken while idle ends the idle period, so `wall - idle -
//!   iowait - steal` is the CPU's exact busy time, softirqs in interrupt
//!   context included;
//! - task run time (`sum_exec_runtime`, updated at every context switch):
//!   per CPU and cgroup in cgroup-v1 `cpuacct.usage_percpu`, per task in
//!   `/proc/PID/schedstat`.
//!
//! The relay's share of the CPU is its busy time minus what other tasks ran
//! there: other = every task's run time on the CPU (the root cpuacct group)
//! minus the relay's cgroup and minus the kernel threads that do the relay's
//! packet work (NAPI threads of the relay-side devices, the CPU's
//! ksoftirqd). [`Split`] keeps every part, so a report shows where the time
//! went and how much was subtracted as noise.
//!
//! A softirq that fires while another task runs is charged to that task;
//! with [`crate::softirq`] on, the NET_RX softirq time that interrupted
//! other tasks is measured and given back to the relay.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::proc::clock_ticks;
use crate::softirq::SoftirqClock;

/// Where cgroup-v1 cpuacct is mounted on Debian and most distributions.
pub const CPUACCT_ROOT: &str = "/sys/fs/cgroup/cpuacct";

/// Reads the relay CPU's counters; see the module doc.
#[derive(Debug)]
pub struct Meter {
    cpu: usize,
    root: PathBuf,
    relay_cgroup: PathBuf,
    kthreads: Vec<(u32, String)>,
    tick_s: f64,
    softirq: Option<SoftirqClock>,
    /// Thread groups whose interrupted softirq time is already the
    /// relay's: its processes, its kernel threads, and 0 (idle: counted in
    /// [`Split::untasked`]).
    relay_tgids: HashSet<u32>,
}

/// One reading of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// CLOCK_MONOTONIC, ns.
    pub t_ns: u64,
    /// idle + iowait of the CPU, in clock ticks.
    pub idle_ticks: u64,
    /// steal of the CPU, in clock ticks.
    pub steal_ticks: u64,
    /// Every task's run time on the CPU, ns.
    pub all_tasks_ns: u64,
    /// The relay cgroup's run time on the CPU, ns.
    pub relay_ns: u64,
    /// Run time of the relay's kernel threads (all on the CPU), ns.
    pub kthreads_ns: u64,
    /// NET_RX softirq time on the CPU that interrupted other tasks, ns
    /// (0 without [`crate::softirq`]).
    pub softirq_others_ns: u64,
}

/// The relay CPU's time over a window, in seconds, by where it went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Split {
    /// Window length.
    pub wall: f64,
    /// Exact busy time: wall - idle - iowait - steal.
    pub busy: f64,
    /// Time the hypervisor took (subtracted from busy; a noisy host shows
    /// here).
    pub steal: f64,
    /// The relay processes (its cgroup), with the softirqs that ran in
    /// their context.
    pub relay_tasks: f64,
    /// NAPI threads of the relay-side devices and the CPU's ksoftirqd.
    pub kthreads: f64,
    /// Busy time charged to no task: interrupts and softirqs taken while
    /// the CPU idled (where RPS and TC put most of a kernel path).
    pub untasked: f64,
    /// Other tasks on the CPU: subtracted.
    pub others: f64,
    /// Of `others`, NET_RX softirqs that interrupted them: given back.
    pub softirq_in_others: f64,
    /// The relay's CPU time: busy - others + softirq_in_others.
    pub relay: f64,
}

impl Split {
    /// The split between two samples (`tick_s`: seconds per clock tick).
    pub fn between(a: &Sample, b: &Sample, tick_s: f64) -> Self {
        let ns = |x: u64, y: u64| y.saturating_sub(x) as f64 / 1e9;
        let wall = ns(a.t_ns, b.t_ns);
        let idle = b.idle_ticks.saturating_sub(a.idle_ticks) as f64 * tick_s;
        let steal = b.steal_ticks.saturating_sub(a.steal_ticks) as f64 * tick_s;
        let busy = (wall - idle - steal).max(0.0);
        let tasks = ns(a.all_tasks_ns, b.all_tasks_ns);
        let relay_tasks = ns(a.relay_ns, b.relay_ns);
        let kthreads = ns(a.kthreads_ns, b.kthreads_ns);
        let others = (tasks - relay_tasks - kthreads).max(0.0);
        let softirq_in_others = ns(a.softirq_others_ns, b.softirq_others_ns).min(others);
        Self {
            wall,
            busy,
            steal,
            relay_tasks,
            kthreads,
            // Signed: idle time is kept in whole ticks, so this is exact
            // only to a tick or so.
            untasked: busy - tasks,
            others,
            softirq_in_others,
            relay: (busy - others + softirq_in_others).max(0.0),
        }
    }
}

impl Meter {
    /// A meter of `cpu`, with the relay's processes in the cpuacct group
    /// `relay_cgroup` and its kernel threads named by `kthread_prefixes`
    /// (`/proc/PID/comm` equal to one, or starting with one that ends in
    /// `*`; the threads must exist now). With `softirq`, NET_RX softirq
    /// time that interrupted other tasks is timed and given back (an error
    /// if the BPF programs cannot load).
    pub fn new(
        cpu: usize,
        relay_cgroup: &Path,
        kthread_prefixes: &[String],
        softirq: bool,
    ) -> anyhow::Result<Self> {
        let root = PathBuf::from(CPUACCT_ROOT);
        let relay_cgroup = if relay_cgroup.is_absolute() {
            relay_cgroup.to_owned()
        } else {
            root.join(relay_cgroup)
        };
        let kthreads = find_threads(kthread_prefixes)?;
        let procs = relay_cgroup.join("cgroup.procs");
        let mut relay_tgids: HashSet<u32> = fs::read_to_string(&procs)
            .with_context(|| format!("read {}", procs.display()))?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        relay_tgids.extend(kthreads.iter().map(|(p, _)| *p));
        relay_tgids.insert(0);
        let softirq = match softirq {
            true => Some(SoftirqClock::start(cpu as u32).context(
                "load the NET_RX softirq timer (BPF; root needed; SOFTIRQ_BPF=0 to run without)",
            )?),
            false => None,
        };
        let m = Self {
            cpu,
            relay_cgroup,
            root,
            kthreads,
            tick_s: 1.0 / clock_ticks(),
            softirq,
            relay_tgids,
        };
        m.sample().context("relay CPU meter")?;
        Ok(m)
    }

    /// Whether NET_RX softirq time that interrupted other tasks is timed.
    pub fn times_softirqs(&self) -> bool {
        self.softirq.is_some()
    }

    /// The kernel threads counted as the relay's (pid, name).
    pub fn kthreads(&self) -> &[(u32, String)] {
        &self.kthreads
    }

    /// Seconds per clock tick of `/proc/stat`.
    pub fn tick_s(&self) -> f64 {
        self.tick_s
    }

    /// Reads every counter now.
    pub fn sample(&self) -> anyhow::Result<Sample> {
        let stat = fs::read_to_string("/proc/stat").context("read /proc/stat")?;
        let (idle_ticks, steal_ticks) = parse_proc_stat(&stat, self.cpu)?;
        let usage = |dir: &Path| -> anyhow::Result<u64> {
            let p = dir.join("cpuacct.usage_percpu");
            let s = fs::read_to_string(&p)
                .with_context(|| format!("read {} (cgroup-v1 cpuacct needed)", p.display()))?;
            parse_percpu(&s, self.cpu)
        };
        let mut kthreads_ns = 0;
        for (pid, name) in &self.kthreads {
            let s = fs::read_to_string(format!("/proc/{pid}/schedstat"))
                .with_context(|| format!("kernel thread {name} ({pid}) is gone"))?;
            kthreads_ns += parse_schedstat(&s)?;
        }
        let softirq_others_ns = match &self.softirq {
            Some(c) => c
                .totals()
                .context("read the softirq totals")?
                .into_iter()
                .filter(|(tgid, _)| !self.relay_tgids.contains(tgid))
                .map(|(_, ns)| ns)
                .sum(),
            None => 0,
        };
        Ok(Sample {
            t_ns: crate::rtp::now_ns(),
            idle_ticks,
            steal_ticks,
            all_tasks_ns: usage(&self.root)?,
            relay_ns: usage(&self.relay_cgroup)?,
            kthreads_ns,
            softirq_others_ns,
        })
    }

    /// The split between two of this meter's samples.
    pub fn split(&self, a: &Sample, b: &Sample) -> Split {
        Split::between(a, b, self.tick_s)
    }
}

/// `pattern` is a name, or a prefix followed by `*`.
fn name_matches(comm: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => comm.starts_with(prefix),
        None => comm == pattern,
    }
}

/// Threads whose `comm` matches one of `prefixes` ([`name_matches`];
/// kernel threads have no other name to find them by).
fn find_threads(prefixes: &[String]) -> anyhow::Result<Vec<(u32, String)>> {
    let mut out = Vec::new();
    if prefixes.is_empty() {
        return Ok(out);
    }
    for e in fs::read_dir("/proc").context("read /proc")? {
        let e = e?;
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(comm) = fs::read_to_string(e.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim_end();
        if prefixes.iter().any(|p| name_matches(comm, p)) {
            out.push((pid, comm.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

/// idle + iowait and steal of `cpu`, in ticks, from `/proc/stat`.
pub fn parse_proc_stat(stat: &str, cpu: usize) -> anyhow::Result<(u64, u64)> {
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))
        .with_context(|| format!("no {label} line in /proc/stat"))?;
    // user nice system idle iowait irq softirq steal ...
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad /proc/stat line {line:?}"))?;
    if f.len() < 8 {
        bail!("short /proc/stat line {line:?}");
    }
    Ok((f[3] + f[4], f[7]))
}

/// Entry `cpu` of a `cpuacct.usage_percpu` file (ns per CPU).
pub fn parse_percpu(s: &str, cpu: usize) -> anyhow::Result<u64> {
    s.split_whitespace()
        .nth(cpu)
        .with_context(|| format!("no CPU {cpu} in cpuacct.usage_percpu {s:?}"))?
        .parse()
        .context("bad cpuacct.usage_percpu")
}

/// Run time (ns) from `/proc/PID/schedstat` (`runtime wait slices`).
pub fn parse_schedstat(s: &str) -> anyhow::Result<u64> {
    s.split_whitespace()
        .next()
        .context("empty schedstat")?
        .parse()
        .context("bad schedstat")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_files() {
        let stat = "cpu  10 0 5 100 3 0 1 2 0 0\ncpu0 1 0 1 50 1 0 0 1 0 0\ncpu1 9 0 4 50 2 0 1 7 0 0\nintr 1\n";
        assert_eq!(parse_proc_stat(stat, 1).unwrap(), (52, 7));
        assert_eq!(parse_proc_stat(stat, 0).unwrap(), (51, 1));
        assert!(parse_proc_stat(stat, 2).is_err());
        assert!(parse_proc_stat("cpu1 1 2 3\n", 1).is_err());
        assert_eq!(parse_percpu("100 200 \n", 1).unwrap(), 200);
        assert!(parse_percpu("100\n", 1).is_err());
        assert_eq!(
            parse_schedstat("177249872 31324353 708\n").unwrap(),
            177249872
        );
    }

    #[test]
    fn split_subtracts_others_and_keeps_untasked_time() {
        let a = Sample {
            t_ns: 0,
            idle_ticks: 100,
            steal_ticks: 10,
            all_tasks_ns: 0,
            relay_ns: 0,
            kthreads_ns: 0,
            softirq_others_ns: 0,
        };
        // 2 s: 1.0 s idle, 0.1 s stolen, so 0.9 s busy; tasks ran 0.7 s of
        // it: the relay 0.4, its kernel threads 0.1, others 0.2.
        let b = Sample {
            t_ns: 2_000_000_000,
            idle_ticks: 200,
            steal_ticks: 20,
            all_tasks_ns: 700_000_000,
            relay_ns: 400_000_000,
            kthreads_ns: 100_000_000,
            // Of the others' 0.2 s, 0.05 s were NET_RX softirqs.
            softirq_others_ns: 50_000_000,
        };
        let s = Split::between(&a, &b, 0.01);
        let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
        assert!(
            close(s.wall, 2.0) && close(s.busy, 0.9) && close(s.steal, 0.1),
            "{s:?}"
        );
        assert!(close(s.others, 0.2) && close(s.untasked, 0.2), "{s:?}");
        assert!(close(s.softirq_in_others, 0.05), "{s:?}");
        assert!(close(s.relay, 0.75), "{s:?}");
    }

    #[test]
    fn finds_threads_by_name_prefix() {
        let me = fs::read_to_string("/proc/self/comm").unwrap();
        let found = find_threads(&[me.trim_end().to_owned()]).unwrap();
        assert!(
            found.iter().any(|(p, _)| *p == std::process::id()),
            "{found:?}"
        );
        assert!(find_threads(&[]).unwrap().is_empty());
    }
}
