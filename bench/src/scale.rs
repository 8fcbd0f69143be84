//! Scale runs: many provisioned streams, a fixed subset active, to see
//! what idle streams cost a relay (throughput, latency, memory).

use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddr};

use crate::gen::Generator;
use crate::{proc, setup, suite};

/// One scale point.
#[derive(Debug, Clone, Default)]
pub struct Point {
    /// Streams provisioned (2 per call).
    pub streams: usize,
    /// Streams sending.
    pub active: usize,
    /// Offered pps.
    pub offered: f64,
    /// Forwarded pps.
    pub pps: f64,
    /// Loss fraction.
    pub loss: f64,
    /// Packets per relay CPU-second.
    pub per_cpu_s: Option<f64>,
    /// p50 / p99 / p99.9 latency, µs.
    pub lat: (f64, f64, f64),
    /// Relay RSS growth per provisioned stream, bytes.
    pub rss_per_stream: f64,
    /// Relay fds per provisioned stream.
    pub fds_per_stream: f64,
    /// Host UDP sockets (relay and generator) per provisioned stream.
    pub udp_socks_per_stream: f64,
    /// Host UDP buffer memory (sockstat pages) per stream, bytes, during load.
    pub udp_mem_per_stream: f64,
    /// Generator-limited run.
    pub gen_limited: bool,
    /// Call setup rate, calls per second.
    pub setup_cps: f64,
}

/// Generator addresses: 10k calls (20k sockets) per loopback address, so
/// the ephemeral range (~28k ports per address) never runs out.
pub fn parties(calls: usize) -> Vec<Ipv4Addr> {
    (0..calls.div_ceil(10_000).max(1))
        .map(|i| Ipv4Addr::new(127, 0, 1, 1 + i as u8))
        .collect()
}

/// Provisions `streams` streams, drives `active` of them at `pps` each for
/// `secs`, and measures.
pub fn point(
    ng: SocketAddr,
    pid: Option<u32>,
    streams: usize,
    active: usize,
    pps: f64,
    secs: f64,
    tag: &str,
) -> anyhow::Result<Point> {
    let calls = streams.div_ceil(2);
    let rss0 = pid.and_then(|p| proc::rss_kib(p).ok()).unwrap_or(0);
    let fds0 = pid.map_or(0, proc::fd_count);
    let (udp0, _) = proc::udp_sockstat().unwrap_or((0, 0));
    let t = std::time::Instant::now();
    let cs = setup::setup_calls(ng, calls, &parties(calls), tag)?;
    let setup_cps = calls as f64 / t.elapsed().as_secs_f64();
    let rss1 = pid.and_then(|p| proc::rss_kib(p).ok()).unwrap_or(0);
    let fds1 = pid.map_or(0, proc::fd_count);
    let (udp1, _) = proc::udp_sockstat().unwrap_or((0, 0));
    let mut g = Generator::new(&cs)?;
    let active = active.min(g.streams());
    // Active streams are spread over the whole set: stream i of the run is
    // every (streams / active)-th provisioned one would be nicer, but the
    // first ones are as good for the relay (it cannot tell).
    let o = g.run(&suite::paced(
        active,
        active as f64 * pps,
        1.0,
        secs,
        crate::gen::DEFAULT_SIZE,
        pid,
    ));
    let (_, mem) = proc::udp_sockstat().unwrap_or((0, 0));
    drop(g);
    setup::teardown(ng, &cs);
    let n = streams.max(1) as f64;
    Ok(Point {
        streams,
        active,
        offered: active as f64 * pps,
        pps: o.pps(),
        loss: o.loss(),
        per_cpu_s: o.per_cpu_s(),
        lat: (o.latency.p50_us, o.latency.p99_us, o.latency.p999_us),
        rss_per_stream: (rss1.saturating_sub(rss0) * 1024) as f64 / n,
        fds_per_stream: fds1.saturating_sub(fds0) as f64 / n,
        udp_socks_per_stream: udp1.saturating_sub(udp0) as f64 / n,
        udp_mem_per_stream: (mem * 4096) as f64 / n,
        gen_limited: o.gen_limited,
        setup_cps,
    })
}

/// The scale table in Markdown.
pub fn markdown(name: &str, points: &[Point]) -> String {
    let mut s = format!(
        "Relay: {name}\n\n| provisioned streams | active | offered pps | forwarded pps | loss | pkts/CPU-s | x first row | p50 / p99 / p99.9 µs | relay RSS per stream | relay fds per stream | host UDP sockets per stream | host UDP buffer mem per stream | call setup/s |\n|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n"
    );
    let first = points.first().and_then(|p| p.per_cpu_s);
    for p in points {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0}{} | {:.3}% | {} | {} | {:.0} / {:.0} / {:.0} | {:.0} B | {:.2} | {:.2} | {:.0} B | {:.0} |",
            p.streams,
            p.active,
            p.offered,
            p.pps,
            if p.gen_limited { " (gen-limited)" } else { "" },
            p.loss * 100.0,
            p.per_cpu_s.map_or("-".into(), |v| format!("{v:.0}")),
            match (p.per_cpu_s, first) {
                (Some(v), Some(f)) if f > 0.0 => format!("{:.2}", v / f),
                _ => "-".into(),
            },
            p.lat.0,
            p.lat.1,
            p.lat.2,
            p.rss_per_stream,
            p.fds_per_stream,
            p.udp_socks_per_stream,
            p.udp_mem_per_stream,
            p.setup_cps,
        );
    }
    s
}
