//! The measurements one relay gets in a comparison: a fixed load, a search
//! for the highest loss-free rate, latency at half that rate, and recovery
//! after an overload.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::setup::{self, Media};

use crate::gen::{Generator, Outcome, Phase, Plan};

/// Loss allowed for a rate to count as sustained.
pub const MAX_LOSS: f64 = 0.001;

/// A paced run: `warm` unmeasured seconds, then `secs` measured.
pub fn paced(
    active: usize,
    rate: f64,
    warm: f64,
    secs: f64,
    size: usize,
    pid: Option<u32>,
) -> Plan {
    Plan {
        phases: vec![Phase {
            rate: Some(rate),
            dur: Duration::from_secs_f64(warm + secs),
        }],
        active,
        window_start: Duration::from_secs_f64(warm),
        window_end: Duration::from_secs_f64(warm + secs),
        drain: Duration::from_millis(300),
        size,
        relay_pid: pid,
        exact_cpu: false,
        cpu_pids: Vec::new(),
        meter: None,
    }
}

/// Result of [`search`].
#[derive(Debug, Clone, Default)]
pub struct SearchResult {
    /// Highest rate (pps offered, all streams) with loss <= [`MAX_LOSS`].
    pub max_pps: f64,
    /// The run at that rate.
    pub at_max: Outcome,
    /// The generator could not go higher: `max_pps` is a lower bound.
    pub gen_limited: bool,
    /// Every probe: (offered pps, loss, generator-limited).
    pub probes: Vec<(f64, f64, bool)>,
}

/// Finds the highest offered rate with at most 0.1% loss: doubling from
/// `start` until a probe fails, then `bisect` halvings of the interval.
/// Every probe sets up `calls` fresh calls (and deletes them after): a relay
/// that gave up on streams during an overloaded probe (rtpengine does) must
/// not fail every later probe for that. The calls carry `media`. Bounded: at most 12 doublings plus
/// `bisect` probes.
#[allow(clippy::too_many_arguments)]
pub fn search(
    ng: SocketAddr,
    calls: usize,
    start: f64,
    bisect: u32,
    secs: f64,
    size: usize,
    pid: Option<u32>,
    tag: &str,
    media: Media,
) -> anyhow::Result<SearchResult> {
    let mut r = SearchResult::default();
    let mut n = 0;
    let mut probe = |rate: f64, r: &mut SearchResult| -> anyhow::Result<bool> {
        n += 1;
        let cs = setup::setup_calls_media(
            ng,
            calls,
            &[Ipv4Addr::LOCALHOST],
            &format!("{tag}-{n}"),
            media,
        )?;
        let mut g = Generator::new(&cs)?;
        let active = g.streams();
        let o = g.run(&paced(active, rate, 1.0, secs, size, pid));
        drop(g);
        setup::teardown(ng, &cs);
        let pass = o.loss() <= MAX_LOSS;
        log_probe(rate, &o, pass);
        r.probes.push((rate, o.loss(), o.gen_limited));
        // Let queues empty before the next probe.
        std::thread::sleep(Duration::from_millis(300));
        // What counts is what was forwarded: a generator-limited probe
        // offered less than asked.
        if pass && o.pps() > r.max_pps {
            r.max_pps = o.pps();
            r.gen_limited = o.gen_limited;
            r.at_max = o;
        }
        Ok(pass)
    };
    let mut lo = 0.0;
    let mut hi = None;
    let mut rate = start;
    let mut retried = false;
    for _ in 0..12 {
        if probe(rate, &mut r)? {
            lo = rate;
            if r.gen_limited {
                // On a shared machine the generator may have lost its core
                // for a moment: try once more before concluding that the
                // generator, not the relay, is the limit.
                if !retried {
                    retried = true;
                    r.gen_limited = false;
                    continue;
                }
                return Ok(r);
            }
            rate *= 2.0;
        } else {
            hi = Some(rate);
            break;
        }
    }
    let Some(mut hi) = hi else { return Ok(r) };
    for _ in 0..bisect {
        let mid = (lo + hi) / 2.0;
        if probe(mid, &mut r)? {
            lo = mid;
            if r.gen_limited {
                break;
            }
        } else {
            hi = mid;
        }
    }
    Ok(r)
}

/// One line per probe, on stderr.
fn log_probe(rate: f64, o: &Outcome, pass: bool) {
    eprintln!(
        "  probe {rate:>9.0} pps: forwarded {:>9.0} pps, loss {:.4}% {}{}",
        o.pps(),
        o.loss() * 100.0,
        if pass { "pass" } else { "FAIL" },
        if o.gen_limited {
            " (generator-limited)"
        } else {
            ""
        }
    );
}

/// Overload recovery: `blast_s` seconds as fast as the generator can, then
/// 50 pps per stream; measures the first second after the blast ends.
pub fn overload(
    g: &mut Generator,
    active: usize,
    blast_s: f64,
    pps: f64,
    size: usize,
    pid: Option<u32>,
) -> Outcome {
    let plan = Plan {
        phases: vec![
            Phase {
                rate: Some(active as f64 * pps),
                dur: Duration::from_secs(1),
            },
            Phase {
                rate: None,
                dur: Duration::from_secs_f64(blast_s),
            },
            Phase {
                rate: Some(active as f64 * pps),
                dur: Duration::from_secs(3),
            },
        ],
        active,
        window_start: Duration::from_secs_f64(1.0 + blast_s),
        window_end: Duration::from_secs_f64(2.0 + blast_s),
        drain: Duration::from_millis(500),
        size,
        relay_pid: pid,
        exact_cpu: false,
        cpu_pids: Vec::new(),
        meter: None,
    };
    g.run(&plan)
}
