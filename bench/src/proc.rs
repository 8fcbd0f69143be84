//! What the kernel tells about a relay process: CPU time, memory, and the
//! host's UDP socket memory.

use std::fs;

use anyhow::{bail, Context};

/// utime + stime of every thread of `pid`, in seconds (the process line of
/// `/proc/PID/stat` already sums its threads, live and exited).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat (is the relay running?)"))?;
    parse_stat_cpu(&s).map(|ticks| ticks as f64 / clock_ticks())
}

/// CPU time of `pid`'s live threads in seconds, to the nanosecond: the
/// sum of `/proc/PID/task/*/schedstat` run times (the scheduler's
/// `sum_exec_runtime`). Unlike [`cpu_seconds`] (10 ms ticks) it resolves a
/// short window, but it misses threads that exited: for relays whose
/// threads live as long as they do.
pub fn task_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let dir = format!("/proc/{pid}/task");
    let mut ns: u64 = 0;
    for e in
        fs::read_dir(&dir).with_context(|| format!("cannot read {dir} (is the relay running?)"))?
    {
        let path = e?.path().join("schedstat");
        // A thread that ended since the listing: nothing to add.
        let Ok(s) = fs::read_to_string(&path) else {
            continue;
        };
        ns += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("unexpected {}: {s:?}", path.display()))?;
    }
    Ok(ns as f64 / 1e9)
}

/// Clock ticks per second (`USER_HZ`), the unit of `/proc` CPU times.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime in clock ticks from a `/proc/PID/stat` line. The command
/// name may hold spaces and parentheses, so fields are counted after the
/// last `)`.
pub fn parse_stat_cpu(stat: &str) -> anyhow::Result<u64> {
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .context("no ')' in stat")?;
    // After ")": state(3) ppid(4) ... utime(14) stime(15): indexes 11 and 12.
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.len() < 13 {
        bail!("short stat line");
    }
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// Resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// Host-wide UDP sockets in use and their memory in pages (`/proc/net/sockstat`
/// line `UDP: inuse N mem M`).
pub fn udp_sockstat() -> anyhow::Result<(u64, u64)> {
    let s = fs::read_to_string("/proc/net/sockstat")?;
    let line = s
        .lines()
        .find(|l| l.starts_with("UDP:"))
        .context("no UDP line")?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let get = |k: &str| {
        f.iter()
            .position(|x| *x == k)
            .and_then(|i| f.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((get("inuse"), get("mem")))
}

/// Open file descriptors of `pid` (its sockets, mostly).
pub fn fd_count(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// A `perf stat` counting every system call of a process, if perf and the
/// `raw_syscalls` tracepoint are available (they need root or a low
/// `perf_event_paranoid`).
pub struct SyscallCounter(std::process::Child);

impl SyscallCounter {
    /// Starts counting the syscalls of `pid`; `None` if perf cannot run.
    pub fn start(pid: u32) -> Option<Self> {
        let child = std::process::Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(pid.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        // perf needs a moment to attach before the interesting part starts.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Some(Self(child))
    }

    /// Stops perf (SIGINT, as Ctrl-C) and returns the count.
    pub fn stop(self) -> Option<u64> {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let out = self.0.wait_with_output().ok()?;
        parse_perf_count(&String::from_utf8_lossy(&out.stderr))
    }
}

/// The count in `perf stat -x,` output (`COUNT,UNIT,EVENT,...`).
pub fn parse_perf_count(s: &str) -> Option<u64> {
    s.lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .and_then(|l| l.split(',').next())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn perf_csv() {
        assert_eq!(
            parse_perf_count("123456,,raw_syscalls:sys_enter,2000,100.00,,\n"),
            Some(123456)
        );
        assert_eq!(
            parse_perf_count("<not supported>,,raw_syscalls:sys_enter,,"),
            None
        );
    }

    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let line = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1 0 0";
        assert_eq!(parse_stat_cpu(line).unwrap(), 325);
        assert!(parse_stat_cpu("1 (x) S 1").is_err());
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(cpu_seconds(me).unwrap() >= 0.0);
        assert!(rss_kib(me).unwrap() > 0);
        assert!(fd_count(me) > 0);
    }
}
