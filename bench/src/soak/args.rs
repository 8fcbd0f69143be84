//! The soak's options, and the settings lines its report starts with.

use std::net::SocketAddr;
use std::path::PathBuf;

/// `rtpmesh-bench soak` options.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// ng address of the node.
    #[arg(long, default_value = "127.0.0.1:2223")]
    pub ng: SocketAddr,
    /// The node's process id (for RSS, fds and ports).
    #[arg(long)]
    pub pid: u32,
    /// Seconds of churn (the drain comes after).
    #[arg(long, default_value_t = 600.0)]
    pub secs: f64,
    /// New calls per second.
    #[arg(long, default_value_t = 1.25)]
    pub rate: f64,
    /// Shortest call, seconds.
    #[arg(long, default_value_t = 20.0)]
    pub life_min: f64,
    /// Longest call, seconds (lifetimes are uniform in between).
    #[arg(long, default_value_t = 60.0)]
    pub life_max: f64,
    /// RTP packets per second per direction of a call.
    #[arg(long, default_value_t = 50.0)]
    pub pps: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5.0)]
    pub sample: f64,
    /// Warm-up seconds, excluded from the first-vs-last comparison
    /// [default: a quarter of the run, at most 120].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// The node's first media port.
    #[arg(long, default_value_t = 30000)]
    pub port_min: u16,
    /// The node's last media port.
    #[arg(long, default_value_t = 39999)]
    pub port_max: u16,
    /// The node's `--timeout` (seconds), to bound the drain.
    #[arg(long, default_value_t = 10)]
    pub node_timeout: u64,
    /// The node's `--delete-delay` (seconds), to bound the drain.
    #[arg(long, default_value_t = 30)]
    pub node_delete_delay: u64,
    /// Fraction of calls held and resumed (two re-offers each).
    #[arg(long, default_value_t = 0.3)]
    pub reoffer: f64,
    /// Fraction of calls left to time out (media stops, no delete).
    #[arg(long, default_value_t = 0.2)]
    pub timeout_share: f64,
    /// Of the deleted calls, the fraction deleted with `delete-delay` 0
    /// (the rest use the node's default).
    #[arg(long, default_value_t = 0.5)]
    pub delete_now: f64,
    /// Seed of the call mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Markdown output.
    #[arg(long)]
    pub md: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A line about the machine, recorded in the report.
    #[arg(long)]
    pub note: Option<String>,
}

/// The settings lines of the report.
pub(super) fn settings(a: &Args, warmup_s: f64) -> Vec<(String, String)> {
    let mean_life = (a.life_min + a.life_max) / 2.0;
    let mut v = vec![
        ("churn".into(), format!("{:.0} s, {} new calls/s, lifetimes {:.0}-{:.0} s (about {:.0} calls up at once)", a.secs, a.rate, a.life_min, a.life_max, a.rate * mean_life)),
        ("media".into(), format!("G.711 172-byte RTP, {} pps each way per call (about {:.0} pps offered in all)", a.pps, 2.0 * a.pps * a.rate * mean_life)),
        ("call mix".into(), format!("{:.0}% held and resumed; {:.0}% left to time out, the rest deleted ({:.0}% of those with delete-delay 0, the others with the node's default)", a.reoffer * 100.0, a.timeout_share * 100.0, a.delete_now * 100.0)),
        ("node".into(), format!("--timeout {} --delete-delay {} (default), media ports {}-{}", a.node_timeout, a.node_delete_delay, a.port_min, a.port_max)),
        ("sampling".into(), format!("every {} s; ping every 1 s; warm-up {warmup_s:.0} s", a.sample)),
    ];
    if let Some(n) = &a.note {
        v.push(("machine".into(), n.clone()));
    }
    v
}
