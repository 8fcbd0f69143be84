//! One relay's run in the namespace comparison (`bench/ns-compare.sh`): a
//! fixed ladder of offered rates over one set of calls, the relay CPU
//! measured exactly at every step ([`crate::nscpu`]).
//!
//! A fixed ladder rather than a search, so that every relay is measured at
//! the same offered rates: CPU per packet depends on the load (batching
//! makes a busier relay cheaper per packet), and only figures at the same
//! rate compare. The ladder's highest step with <= 0.1% loss is the max
//! rate, to the ladder's resolution.
//!
//! The calls are set up once and kept across steps: a kernel fast path
//! takes a stream over only once it is latched, so fresh calls per step
//! would measure the socket path's first packets too. A failed step is
//! retried once on fresh calls (a relay that gave up on streams in an
//! overload, as rtpengine does, is not judged by it twice; a noisy moment
//! on a shared machine gets a second chance); the ladder stops at a step
//! that fails again, or that the generator could not offer in full.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::gen::{Generator, Outcome, Plan};
use crate::nscpu::Meter;
use crate::report::Record;
use crate::setup::{self, Call};
use crate::suite::{self, MAX_LOSS};

/// What a ladder run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The relay's ng address.
    pub ng: SocketAddr,
    /// Address every caller binds.
    pub caller: Ipv4Addr,
    /// Address every callee binds.
    pub callee: Ipv4Addr,
    /// Calls (2 streams each).
    pub calls: usize,
    /// Offered rates (pps over all streams), ascending.
    pub rates: Vec<f64>,
    /// Unmeasured seconds after calls are set up (streams latch, a fast
    /// path takes them over).
    pub warm_first: f64,
    /// Unmeasured seconds at the start of each step.
    pub warm: f64,
    /// Measured seconds per step.
    pub secs: f64,
    /// Packet size.
    pub size: usize,
    /// Relay process (for its utime+stime, shown beside the exact figure).
    pub pid: Option<u32>,
    /// The relay CPU's exact accounting.
    pub meter: Option<Arc<Meter>>,
}

/// Why a ladder ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Every step passed.
    Done = 0,
    /// A step lost more than 0.1%, on a retry too.
    Loss = 1,
    /// The generator could not offer a step in full: the max is a lower
    /// bound.
    Generator = 2,
}

/// One measured step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Offered rate.
    pub rate: f64,
    /// The (last) run at that rate.
    pub outcome: Outcome,
    /// Whether this is a retry on fresh calls after a failed first try.
    pub retried: bool,
}

impl Step {
    /// Loss within the limit.
    pub fn passed(&self) -> bool {
        self.outcome.loss() <= MAX_LOSS
    }
}

/// A whole ladder.
#[derive(Debug, Clone)]
pub struct Ladder {
    /// The steps run, in order.
    pub steps: Vec<Step>,
    /// Why it ended.
    pub stop: Stop,
}

impl Ladder {
    /// The highest step that passed.
    pub fn max(&self) -> Option<&Step> {
        self.steps.iter().rev().find(|s| s.passed())
    }
}

/// Traffic goes on this long after the measured window, so that the
/// window's end is sampled on time, under load, and not after the drain
/// (which would add idle time to the relay's CPU).
const TAIL: f64 = 0.2;

fn plan(o: &Options, rate: f64, warm: f64, secs: f64, meter: bool) -> Plan {
    let mut p = suite::paced(usize::MAX, rate, warm, secs + TAIL, o.size, o.pid);
    p.window_end = Duration::from_secs_f64(warm + secs);
    if meter {
        p.meter.clone_from(&o.meter);
    }
    p
}

/// Calls set up and warmed at `rate`.
fn fresh(o: &Options, tag: &str, rate: f64) -> anyhow::Result<Vec<Call>> {
    let calls = setup::setup_calls_between(o.ng, o.calls, o.caller, o.callee, tag)?;
    let mut g = Generator::new(&calls)?;
    g.run(&plan(o, rate, 0.0, o.warm_first, false));
    Ok(calls)
}

/// Runs the ladder; `tag` prefixes call-ids.
pub fn run(o: &Options, tag: &str) -> anyhow::Result<Ladder> {
    anyhow::ensure!(!o.rates.is_empty(), "no rates to run");
    let mut sets = 0;
    let mut calls = fresh(o, &format!("{tag}-{sets}"), o.rates[0])?;
    let mut steps = Vec::new();
    let mut stop = Stop::Done;
    for &rate in &o.rates {
        let mut step = measure(o, &calls, rate, false)?;
        if !step.passed() {
            setup::teardown(o.ng, &calls);
            drop(calls);
            // Let full queues empty before fresh calls start.
            std::thread::sleep(Duration::from_millis(500));
            sets += 1;
            calls = fresh(o, &format!("{tag}-{sets}"), o.rates[0])?;
            step = measure(o, &calls, rate, true)?;
        }
        let (passed, limited) = (step.passed(), step.outcome.gen_limited);
        steps.push(step);
        if !passed {
            stop = Stop::Loss;
            break;
        }
        if limited {
            stop = Stop::Generator;
            break;
        }
    }
    setup::teardown(o.ng, &calls);
    Ok(Ladder { steps, stop })
}

fn measure(o: &Options, calls: &[Call], rate: f64, retried: bool) -> anyhow::Result<Step> {
    let mut g = Generator::new(calls)?;
    let outcome = g.run(&plan(o, rate, o.warm, o.secs, true));
    log_step(rate, &outcome, retried);
    Ok(Step {
        rate,
        outcome,
        retried,
    })
}

fn log_step(rate: f64, o: &Outcome, retried: bool) {
    let cpu = o.relay_split.map_or_else(String::new, |s| {
        format!(
            ", relay CPU {:.1}% = {:.2} µs/pkt (tasks {:.1}%, kthreads {:.1}%, untasked {:.1}%, softirq in others {:.1}%; others {:.1}% and steal {:.1}% not counted)",
            100.0 * s.relay / s.wall,
            1e6 * s.relay / (o.received.max(1) as f64),
            100.0 * s.relay_tasks / s.wall,
            100.0 * s.kthreads / s.wall,
            100.0 * s.untasked / s.wall,
            100.0 * s.softirq_in_others / s.wall,
            100.0 * (s.others - s.softirq_in_others) / s.wall,
            100.0 * s.steal / s.wall,
        )
    });
    eprintln!(
        "  step {rate:>7.0} pps{}: forwarded {:>7.0} pps, loss {:.4}%{}{cpu}",
        if retried { " (retry, fresh calls)" } else { "" },
        o.pps(),
        o.loss() * 100.0,
        if o.gen_limited {
            " GENERATOR-LIMITED"
        } else {
            ""
        },
    );
}

/// The ladder as a flat record (`s{i}_*` per step); see [`crate::nsreport`].
pub fn record(name: &str, l: &Ladder) -> Record {
    let mut r = Record::new(name);
    r.set("steps", l.steps.len() as f64);
    r.set("stop", l.stop as u8 as f64);
    if let Some(m) = l.max() {
        r.set("max_rate", m.rate);
        r.set("max_pps", m.outcome.pps());
        // Below the relay's limit: the generator or the ladder ran out.
        r.set("max_lower_bound", f64::from(u8::from(l.stop != Stop::Loss)));
    }
    for (i, s) in l.steps.iter().enumerate() {
        let o = &s.outcome;
        let mut put = |k: &str, v: f64| r.set(&format!("s{i}_{k}"), v);
        put("rate", s.rate);
        put("pps", o.pps());
        put("loss", o.loss());
        put("retried", f64::from(u8::from(s.retried)));
        put("gen_limited", f64::from(u8::from(o.gen_limited)));
        put("gen_cpu", o.gen_cpu_s / o.window_s.max(1e-9));
        put("p50_us", o.latency.p50_us);
        put("p99_us", o.latency.p99_us);
        if let Some(c) = o.relay_cpu_s {
            put("proc_cpu", c / o.window_s.max(1e-9));
        }
        if let Some(x) = o.relay_split {
            let pkts = o.received.max(1) as f64;
            put("wall", x.wall);
            put("busy", x.busy);
            put("steal", x.steal);
            put("relay_tasks", x.relay_tasks);
            put("kthreads", x.kthreads);
            put("untasked", x.untasked);
            put("others", x.others);
            put("softirq_in_others", x.softirq_in_others);
            put("relay_cpu", x.relay);
            put("us_per_pkt", 1e6 * x.relay / pkts);
            if x.relay > 0.0 {
                put("per_cpu_s", pkts / x.relay);
            }
        }
    }
    r
}
