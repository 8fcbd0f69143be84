//! The SRTP table (`bench/srtp.sh`): each relay with plain calls and with
//! SRTP calls (an SDES-SRTP caller, a plain callee), packets per relay
//! CPU-second summed over interleaved runs, the ratio to rtpengine in the
//! same mode, and what SRTP costs each relay against its own plain figure.

use std::fmt::Write;

use crate::report::Record;

/// One relay in one mode, summed over its runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// Relay name.
    pub name: String,
    /// SRTP calls (else plain).
    pub srtp: bool,
    /// Fixed-load runs summed.
    pub runs: usize,
    /// Packets sent in the runs' windows.
    pub sent: f64,
    /// Of those, received.
    pub received: f64,
    /// Relay CPU seconds over the windows.
    pub relay_cpu_s: f64,
    /// Window seconds.
    pub window_s: f64,
    /// Generator CPU seconds over the windows.
    pub gen_cpu_s: f64,
    /// Lowest and highest single-run packets per relay CPU-second.
    pub range: Option<(f64, f64)>,
    /// Packets the generator could not unprotect (or protect).
    pub srtp_errors: f64,
    /// Runs marked generator-limited.
    pub gen_limited_runs: usize,
    /// Highest rate with <= 0.1% loss, and whether the search was
    /// generator-limited (a lower bound then).
    pub max_pps: Option<(f64, bool)>,
}

impl Row {
    /// Packets per relay CPU-second over all runs.
    pub fn per_cpu_s(&self) -> Option<f64> {
        (self.relay_cpu_s > 0.0).then(|| self.received / self.relay_cpu_s)
    }

    /// Lost fraction over all runs.
    pub fn loss(&self) -> f64 {
        if self.sent > 0.0 {
            1.0 - self.received / self.sent
        } else {
            0.0
        }
    }
}

fn mode(srtp: bool) -> &'static str {
    if srtp {
        "srtp"
    } else {
        "plain"
    }
}

/// Sums `recs` (outputs of `run --out` and `search --out`) into one row per
/// relay and mode, in the order each first appears; plain before SRTP.
pub fn rows(recs: &[Record]) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for r in recs {
        let srtp = r.get("srtp").unwrap_or(0.0) > 0.5;
        let i = match out.iter().position(|o| o.name == r.name && o.srtp == srtp) {
            Some(i) => i,
            None => {
                out.push(Row {
                    name: r.name.clone(),
                    srtp,
                    ..Row::default()
                });
                out.len() - 1
            }
        };
        let row = &mut out[i];
        if let (Some(rx), Some(cpu)) = (r.get("fixed_received"), r.get("fixed_relay_cpu_s")) {
            row.runs += 1;
            row.sent += r.get("fixed_sent").unwrap_or(0.0);
            row.received += rx;
            row.relay_cpu_s += cpu;
            let w = r.get("fixed_window_s").unwrap_or(0.0);
            row.window_s += w;
            row.gen_cpu_s += r.get("fixed_gen_cpu").unwrap_or(0.0) * w;
            row.srtp_errors += r.get("fixed_srtp_errors").unwrap_or(0.0);
            if r.get("fixed_gen_limited").unwrap_or(0.0) > 0.5 {
                row.gen_limited_runs += 1;
            }
            if cpu > 0.0 {
                let v = rx / cpu;
                row.range = Some(match row.range {
                    Some((lo, hi)) => (lo.min(v), hi.max(v)),
                    None => (v, v),
                });
            }
        }
        if let Some(m) = r.get("max_pps") {
            let limited = r.get("max_search_gen_limited").unwrap_or(0.0) > 0.5;
            row.max_pps = Some((m, limited));
        }
    }
    // Stable: relays keep their order, plain first within each.
    let names: Vec<String> = out.iter().fold(Vec::new(), |mut v, r| {
        if !v.contains(&r.name) {
            v.push(r.name.clone());
        }
        v
    });
    out.sort_by_key(|r| (names.iter().position(|n| *n == r.name), r.srtp));
    out
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_owned(), f)
}

/// The markdown table (rtpengine's row in each mode is the baseline of
/// "x rtpengine"), `load` describing the fixed load.
pub fn markdown(rows: &[Row], load: &str) -> String {
    let base = |srtp: bool| {
        rows.iter()
            .find(|r| r.name == "rtpengine" && r.srtp == srtp)
            .and_then(Row::per_cpu_s)
    };
    let own_plain = |name: &str| {
        rows.iter()
            .find(|r| r.name == name && !r.srtp)
            .and_then(Row::per_cpu_s)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# SRTP cost: plain RTP and SDES-SRTP calls through each relay\n"
    );
    let _ = writeln!(
        s,
        "Fixed load: {load}. SRTP calls: the caller's leg is SDES-SRTP (AES_CM_128_HMAC_SHA1_80), the \
callee's plain RTP, so every call has one SRTP->RTP stream (the relay unprotects) and one \
RTP->SRTP stream (the relay protects). Packets per relay CPU-second are summed over the \
interleaved runs (packets forwarded / relay CPU seconds in the measured windows); \"SRTP cost\" = \
own plain figure / own SRTP figure (CPU per packet, SRTP over plain).\n"
    );
    let _ = writeln!(
        s,
        "| relay | mode | runs | pkts per relay CPU-s | per-run range | relay CPU µs/pkt | x rtpengine | SRTP cost vs own plain | loss | SRTP errors | generator CPU | max pps (<= 0.1% loss) |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let v = r.per_cpu_s();
        let x = v.zip(base(r.srtp)).map(|(v, b)| v / b);
        let cost = if r.srtp {
            fmt_opt(own_plain(&r.name).zip(v).map(|(p, v)| p / v), |c| {
                format!("**{c:.2}**")
            })
        } else {
            "1.00".to_owned()
        };
        let range = r
            .range
            .map_or_else(|| "–".to_owned(), |(lo, hi)| format!("{lo:.0}–{hi:.0}"));
        let gen = if r.window_s > 0.0 {
            format!("{:.0}%", 100.0 * r.gen_cpu_s / r.window_s)
        } else {
            "–".to_owned()
        };
        let max = r.max_pps.map_or_else(
            || "–".to_owned(),
            |(m, lim)| format!("{m:.0}{}", if lim { " (gen-limited)" } else { "" }),
        );
        let _ = writeln!(
            s,
            "| {} | {} | {}{} | {} | {range} | {} | {} | {cost} | {:.3}% | {:.0} | {gen} | {max} |",
            r.name,
            mode(r.srtp),
            r.runs,
            if r.gen_limited_runs > 0 {
                format!(" ({} gen-limited)", r.gen_limited_runs)
            } else {
                String::new()
            },
            fmt_opt(v, |v| format!("{v:.0}")),
            fmt_opt(v, |v| format!("{:.2}", 1e6 / v)),
            fmt_opt(x, |x| format!("{x:.2}")),
            100.0 * r.loss(),
            r.srtp_errors,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(name: &str, srtp: bool, rx: f64, cpu: f64) -> Record {
        let mut r = Record::new(name);
        r.set("srtp", f64::from(u8::from(srtp)));
        r.set("fixed_sent", rx);
        r.set("fixed_received", rx);
        r.set("fixed_relay_cpu_s", cpu);
        r.set("fixed_window_s", 5.0);
        r.set("fixed_gen_cpu", 0.1);
        r
    }

    #[test]
    fn sums_runs_and_computes_ratios() {
        let mut search = Record::new("rtpmesh-auto");
        search.set("srtp", 1.0);
        search.set("max_pps", 40_000.0);
        search.set("max_search_gen_limited", 1.0);
        let recs = vec![
            fixed("rtpengine", true, 1000.0, 0.1),
            fixed("rtpengine", false, 1000.0, 0.05),
            fixed("rtpmesh-auto", false, 1000.0, 0.02),
            fixed("rtpmesh-auto", true, 1000.0, 0.04),
            fixed("rtpmesh-auto", true, 3000.0, 0.08),
            search,
        ];
        let rows = rows(&recs);
        let order: Vec<_> = rows.iter().map(|r| (r.name.as_str(), r.srtp)).collect();
        assert_eq!(
            order,
            [
                ("rtpengine", false),
                ("rtpengine", true),
                ("rtpmesh-auto", false),
                ("rtpmesh-auto", true)
            ]
        );
        let m = &rows[3];
        assert_eq!(m.runs, 2);
        assert_eq!(m.per_cpu_s(), Some(4000.0 / 0.12));
        assert_eq!(m.range, Some((25_000.0, 37_500.0)));
        assert_eq!(m.max_pps, Some((40_000.0, true)));
        let md = markdown(&rows, "test");
        // rtpmesh SRTP: 33333 vs rtpengine SRTP 10000 = 3.33; cost 50000/33333 = 1.50.
        let line = md
            .lines()
            .find(|l| l.starts_with("| rtpmesh-auto | srtp |"))
            .unwrap();
        assert!(line.contains("| 3.33 |"), "{line}");
        assert!(line.contains("**1.50**"), "{line}");
        assert!(line.contains("40000 (gen-limited)"), "{line}");
        let eng = md
            .lines()
            .find(|l| l.starts_with("| rtpengine | srtp |"))
            .unwrap();
        assert!(eng.contains("**2.00**"), "{eng}");
    }
}
