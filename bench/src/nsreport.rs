//! The namespace comparison's report (`bench/results/ns-latest.{md,json}`):
//! every relay's ladder ([`crate::ladder::record`]) side by side, with
//! ratios against rtpengine's figures from the same run.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::report::Record;

/// One step of a relay's ladder, by key (`rate`, `pps`, `loss`, ...).
pub type StepFigures = BTreeMap<String, f64>;

/// The steps of a ladder record, in order.
pub fn steps(r: &Record) -> Vec<StepFigures> {
    let n = r.get("steps").unwrap_or(0.0) as usize;
    (0..n)
        .map(|i| {
            let p = format!("s{i}_");
            let mut st: StepFigures = r
                .values
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_owned(), *v)))
                .collect();
            // Other tasks' time less the softirqs given back from it.
            if let Some(o) = st.get("others").copied() {
                let back = st.get("softirq_in_others").copied().unwrap_or(0.0);
                st.insert("not_counted".into(), o - back);
            }
            st
        })
        .collect()
}

/// The step at offered `rate`, if the ladder got there.
pub fn step_at(r: &Record, rate: f64) -> Option<StepFigures> {
    steps(r)
        .into_iter()
        .find(|s| s.get("rate").is_some_and(|x| (x - rate).abs() < 0.5))
}

fn passed(s: &StepFigures) -> bool {
    s.get("loss").is_some_and(|l| *l <= crate::suite::MAX_LOSS)
}

/// Packets per relay CPU-second at `rate` (a step that lost more than
/// 0.1% does not count: its relay was past its limit).
fn per_cpu_at(r: &Record, rate: f64) -> Option<f64> {
    step_at(r, rate)
        .filter(passed)
        .and_then(|s| s.get("per_cpu_s").copied())
}

fn base(recs: &[Record]) -> Option<&Record> {
    recs.iter().find(|r| r.name == "rtpengine")
}

fn ratio(v: Option<f64>, b: Option<f64>) -> Option<f64> {
    v.zip(b).filter(|(_, b)| *b > 0.0).map(|(v, b)| v / b)
}

fn x(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// Max pps with its qualifier: `>=` where the generator or the ladder ran
/// out before the relay did.
fn max_text(r: &Record) -> String {
    // `stop` is ladder::Stop as a number.
    match (r.get("max_pps"), r.get("stop").map(|s| s as u8)) {
        (None, _) => "none (lost > 0.1% at the first step)".into(),
        (Some(m), Some(2)) => format!(">= {m:.0} (generator-limited)"),
        (Some(m), Some(0)) => format!(">= {m:.0} (ladder top)"),
        (Some(m), _) => format!("{m:.0}"),
    }
}

fn pct(s: &StepFigures, k: &str) -> String {
    match (s.get(k), s.get("wall")) {
        (Some(v), Some(w)) if *w > 0.0 => format!("{:.1}%", 100.0 * v / w),
        _ => "-".into(),
    }
}

/// The headline table at `ref_rate` plus the per-step matrix, as Markdown.
pub fn markdown(recs: &[Record], skipped: &[(String, String)], ref_rate: f64) -> String {
    let b = base(recs);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| relay | max pps (<=0.1% loss) | x rtpengine | µs relay CPU/pkt at {ref_rate:.0} pps | pkts per relay CPU-s at {ref_rate:.0} | x rtpengine | relay CPU at {ref_rate:.0}: relay tasks / kernel threads / untasked softirq / NET_RX softirq in other tasks | not counted: other tasks / steal |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|---|");
    for r in recs {
        let at = step_at(r, ref_rate).filter(passed);
        let g = |k: &str| at.as_ref().and_then(|s| s.get(k).copied());
        let split = at.as_ref().map_or("-".into(), |st| {
            format!(
                "{} / {} / {} / {}",
                pct(st, "relay_tasks"),
                pct(st, "kthreads"),
                pct(st, "untasked"),
                pct(st, "softirq_in_others"),
            )
        });
        let noise = at.as_ref().map_or("-".into(), |st| {
            format!("{} / {}", pct(st, "not_counted"), pct(st, "steal"))
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {split} | {noise} |",
            r.name,
            max_text(r),
            x(ratio(r.get("max_pps"), b.and_then(|b| b.get("max_pps")))),
            g("us_per_pkt").map_or("-".into(), |v| format!("{v:.2}")),
            g("per_cpu_s").map_or("-".into(), |v| format!("{v:.0}")),
            x(ratio(
                g("per_cpu_s"),
                b.and_then(|b| per_cpu_at(b, ref_rate))
            )),
        );
    }
    noise_note(&mut s, recs);
    matrix(&mut s, recs, b);
    if !skipped.is_empty() {
        let _ = writeln!(s, "\nNot measured:");
        for (name, why) in skipped {
            let _ = writeln!(s, "- {name}: {why}");
        }
    }
    s
}

/// Share of a step's wall time that other tasks ran on the relay CPU above
/// which the step is called noisy.
pub const NOISY: f64 = 0.02;

/// Warns where other tasks ran on the relay CPU: a softirq that fires while
/// another task runs is charged to that task and subtracted with it, so a
/// kernel path's figure is low there (and the max rate may be too).
fn noise_note(s: &mut String, recs: &[Record]) {
    let mut worst: f64 = 0.0;
    let (mut noisy, mut untimed, mut total) = (0, 0, 0);
    for r in recs {
        let timed = r.get("softirq_bpf") == Some(1.0);
        for st in steps(r) {
            if let (Some(o), Some(w)) = (st.get("others"), st.get("wall")) {
                total += 1;
                let f = o / w.max(1e-9);
                worst = worst.max(f);
                if f > NOISY {
                    noisy += 1;
                    untimed += usize::from(!timed);
                }
            }
        }
    }
    if untimed > 0 {
        let _ = writeln!(
            s,
            "\n**Noisy:** other tasks ran on the relay CPU in {noisy} of {total} steps (up to {:.0}% of a step), and softirq timing was off for {untimed} of them: softirqs that fired while those tasks ran were charged to them and subtracted with them, so kernel-path figures are too low there. Rerun on a quiet machine, or with SOFTIRQ_BPF=1.",
            100.0 * worst
        );
    } else if noisy > 0 {
        let _ = writeln!(
            s,
            "\n**Noisy:** other tasks ran on the relay CPU in {noisy} of {total} steps (up to {:.0}% of a step). The NET_RX softirqs that interrupted them were timed (BPF) and counted as the relay's, but they shared the CPU's caches and its scheduler with the relay: trust a quiet machine's run over this one.",
            100.0 * worst
        );
    }
}

/// Every rate any ladder ran, ascending.
fn all_rates(recs: &[Record]) -> Vec<f64> {
    let mut rates: Vec<f64> = recs
        .iter()
        .flat_map(steps)
        .filter_map(|s| s.get("rate").copied())
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup_by(|a, b| (*a - *b).abs() < 0.5);
    rates
}

/// Per step: relay µs per packet and, in brackets, pkts per relay CPU-s
/// against rtpengine's at the same step; a failed step shows its loss.
fn matrix(s: &mut String, recs: &[Record], b: Option<&Record>) {
    let rates = all_rates(recs);
    let _ = writeln!(
        s,
        "\nPer step (offered pps): relay CPU µs per forwarded packet (x rtpengine's packets per relay CPU-second at that step); `lost N%` where the step failed; `*` generator-limited, `r` passed on a retry with fresh calls.\n"
    );
    let _ = write!(s, "| relay |");
    for r in &rates {
        let _ = write!(s, " {r:.0} |");
    }
    let _ = write!(s, "\n|---|");
    for _ in &rates {
        let _ = write!(s, "---:|");
    }
    s.push('\n');
    for r in recs {
        let _ = write!(s, "| {} |", r.name);
        for &rate in &rates {
            let cell = match step_at(r, rate) {
                None => String::new(),
                Some(st) if !passed(&st) => {
                    format!(
                        "lost {:.2}%",
                        100.0 * st.get("loss").copied().unwrap_or(f64::NAN)
                    )
                }
                Some(st) => {
                    let mark = |k: &str, m: &str| {
                        if st.get(k) == Some(&1.0) {
                            m.to_owned()
                        } else {
                            String::new()
                        }
                    };
                    format!(
                        "{} ({}){}{}",
                        st.get("us_per_pkt")
                            .map_or("-".into(), |v| format!("{v:.2}")),
                        x(ratio(
                            st.get("per_cpu_s").copied(),
                            b.and_then(|b| per_cpu_at(b, rate))
                        )),
                        mark("gen_limited", "*"),
                        mark("retried", "r"),
                    )
                }
            };
            let _ = write!(s, " {cell} |");
        }
        s.push('\n');
    }
}

/// `s{i}_...`: a step's figure.
fn is_step_key(k: &str) -> bool {
    let mut c = k.chars();
    c.next() == Some('s') && c.next().is_some_and(|d| d.is_ascii_digit())
}

fn json_str(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_map<'a>(s: &mut String, m: impl Iterator<Item = (&'a String, &'a f64)>) {
    let items: Vec<String> = m
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| format!("{}: {v}", json_str(k)))
        .collect();
    let _ = write!(s, "{{{}}}", items.join(", "));
}

/// Everything as JSON: per relay its top-level figures, its steps (each
/// with `per_cpu_s_x_rtpengine` where both passed) and the ratios.
pub fn json(
    recs: &[Record],
    skipped: &[(String, String)],
    ref_rate: f64,
    meta: &[(String, String)],
) -> String {
    let b = base(recs);
    let mut s = format!("{{\n  \"ref_rate\": {ref_rate},\n  \"meta\": {{");
    let m: Vec<String> = meta
        .iter()
        .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
        .collect();
    let _ = write!(s, "{}}},\n  \"relays\": [", m.join(", "));
    for (i, r) in recs.iter().enumerate() {
        let _ = write!(
            s,
            "{}\n    {{\"name\": {}, \"figures\": ",
            if i > 0 { "," } else { "" },
            json_str(&r.name)
        );
        let mut top: BTreeMap<String, f64> = r
            .values
            .iter()
            .filter(|(k, _)| !is_step_key(k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if let Some(v) = ratio(r.get("max_pps"), b.and_then(|b| b.get("max_pps"))) {
            top.insert("max_pps_x_rtpengine".into(), v);
        }
        if let Some(v) = ratio(
            per_cpu_at(r, ref_rate),
            b.and_then(|b| per_cpu_at(b, ref_rate)),
        ) {
            top.insert("ref_per_cpu_s_x_rtpengine".into(), v);
        }
        json_map(&mut s, top.iter());
        s.push_str(", \"steps\": [");
        for (j, mut st) in steps(r).into_iter().enumerate() {
            let rate = st.get("rate").copied().unwrap_or(0.0);
            let here = passed(&st).then(|| st.get("per_cpu_s").copied()).flatten();
            if let Some(v) = ratio(here, b.and_then(|b| per_cpu_at(b, rate))) {
                st.insert("per_cpu_s_x_rtpengine".into(), v);
            }
            if j > 0 {
                s.push_str(", ");
            }
            json_map(&mut s, st.iter());
        }
        s.push_str("]}");
    }
    s.push_str("\n  ],\n  \"skipped\": [");
    let sk: Vec<String> = skipped
        .iter()
        .map(|(n, w)| format!("{{\"name\": {}, \"reason\": {}}}", json_str(n), json_str(w)))
        .collect();
    let _ = writeln!(s, "{}]\n}}", sk.join(", "));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, steps: &[(f64, f64, f64)], stop: f64) -> Record {
        // (rate, loss, per_cpu_s)
        let mut r = Record::new(name);
        r.set("steps", steps.len() as f64);
        r.set("stop", stop);
        for (i, (rate, loss, per)) in steps.iter().enumerate() {
            r.set(&format!("s{i}_rate"), *rate);
            r.set(&format!("s{i}_pps"), *rate);
            r.set(&format!("s{i}_loss"), *loss);
            r.set(&format!("s{i}_per_cpu_s"), *per);
            r.set(&format!("s{i}_us_per_pkt"), 1e6 / per);
            r.set(&format!("s{i}_wall"), 3.0);
            r.set(&format!("s{i}_relay_tasks"), 0.3);
            r.set(
                &format!("s{i}_others"),
                if name == "rtpengine" { 0.3 } else { 0.0 },
            );
            if *loss <= 0.001 {
                r.set("max_pps", *rate);
            }
        }
        r
    }

    #[test]
    fn ratios_against_rtpengine_at_the_same_step() {
        let e = rec(
            "rtpengine",
            &[(20e3, 0.0, 50e3), (40e3, 0.0, 45e3), (60e3, 0.3, 40e3)],
            1.0,
        );
        let t = rec(
            "rtpmesh-tc",
            &[(20e3, 0.0, 200e3), (40e3, 0.0, 225e3), (60e3, 0.0, 250e3)],
            0.0,
        );
        let skipped = vec![("rtpmesh-xdp".to_owned(), "no --fast-path".to_owned())];
        let md = markdown(&[e.clone(), t.clone()], &skipped, 40e3);
        assert!(
            md.contains("| rtpengine | 40000 | 1.00 | 22.22 | 45000 | 1.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| rtpmesh-tc | >= 60000 (ladder top) | 1.50 | 4.44 | 225000 | 5.00 |"),
            "{md}"
        );
        // rtpengine failed at 60k: no ratio there, its loss shown.
        assert!(md.contains("| lost 30.00% |"), "{md}");
        assert!(md.contains("| 4.00 (-) |"), "{md}");
        assert!(md.contains("- rtpmesh-xdp: no --fast-path"), "{md}");
        assert!(
            md.contains("relay CPU in 3 of 6 steps (up to 10% of a step)"),
            "{md}"
        );
        let j = json(
            &[e, t],
            &skipped,
            40e3,
            &[("kernel".into(), "6.18 \"x\"".into())],
        );
        assert!(j.contains("\"ref_per_cpu_s_x_rtpengine\": 5"), "{j}");
        assert!(j.contains("\"per_cpu_s_x_rtpengine\": 4"), "{j}");
        assert!(j.contains("\"kernel\": \"6.18 \\\"x\\\"\""), "{j}");
        assert!(!j.contains("\"s0_rate\""), "{j}");
    }
}
