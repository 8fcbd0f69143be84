//! Suite results: a flat `key=value` record per relay, and the comparison
//! table built from several (ratios to rtpengine and to the best minimal
//! forwarder).

use std::collections::BTreeMap;
use std::fmt::Write;

/// One relay's figures.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Relay name as shown in the table.
    pub name: String,
    /// Figures by key.
    pub values: BTreeMap<String, f64>,
}

impl Record {
    /// An empty record for `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            values: BTreeMap::new(),
        }
    }

    /// Sets a figure.
    pub fn set(&mut self, key: &str, v: f64) {
        self.values.insert(key.to_owned(), v);
    }

    /// A figure, if measured.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied().filter(|v| v.is_finite())
    }

    /// `name=...` then one `key=value` line per figure.
    pub fn to_kv(&self) -> String {
        let mut s = format!("name={}\n", self.name);
        for (k, v) in &self.values {
            let _ = writeln!(s, "{k}={v}");
        }
        s
    }

    /// Parses [`Record::to_kv`] output; unparsable lines are skipped.
    pub fn from_kv(s: &str) -> Self {
        let mut r = Self::default();
        for l in s.lines() {
            let Some((k, v)) = l.split_once('=') else {
                continue;
            };
            if k == "name" {
                v.clone_into(&mut r.name);
            } else if let Ok(v) = v.trim().parse() {
                r.values.insert(k.to_owned(), v);
            }
        }
        r
    }
}

/// Merges records of the same name (a relay measured in several passes).
pub fn merge(recs: Vec<Record>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for r in recs {
        match out.iter_mut().find(|o| o.name == r.name) {
            Some(o) => o.values.extend(r.values),
            None => out.push(r),
        }
    }
    out
}

fn is_fwd(r: &Record) -> bool {
    r.name.starts_with("fwd-")
}

/// The best value of `key` among the minimal forwarders (`higher`: larger is
/// better).
fn best_fwd(recs: &[Record], key: &str, higher: bool) -> Option<f64> {
    recs.iter()
        .filter(|r| is_fwd(r))
        .filter_map(|r| r.get(key))
        .reduce(|a, b| if (b > a) == higher { b } else { a })
}

fn baseline(recs: &[Record]) -> Option<&Record> {
    recs.iter().find(|r| r.name == "rtpengine")
}

fn ratio(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}", v / b),
        _ => "-".into(),
    }
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// The comparison as a Markdown table (plus notes).
pub fn markdown(recs: &[Record]) -> String {
    let base = baseline(recs);
    let b = |k: &str| base.and_then(|r| r.get(k));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| relay | max pps (<=0.1% loss) | x rtpengine | x best fwd | max pps on half a core | x rtpengine | x best fwd | pkts per relay CPU-s at max | x rtpengine | x best fwd | pkts/CPU-s at fixed 10k pps | relay CPU at max | half-load p50 / p99 / p99.9 / max (µs) | p99 x rtpengine | syscalls/pkt (fixed) | loss in 1st s after overload (streams hit) |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
    );
    for r in recs {
        let g = |k: &str| r.get(k);
        let max = g("max_offered_pps");
        let lim = if g("max_gen_limited") == Some(1.0) {
            " (gen-limited)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "| {} | {}{} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} / {} | {} | {} | {:.3}% ({}/{}) |",
            r.name,
            num(max, 0),
            lim,
            ratio(max, b("max_offered_pps")),
            ratio(max, best_fwd(recs, "max_offered_pps", true)),
            num(g("halfcore_offered_pps"), 0),
            if g("halfcore_gen_limited") == Some(1.0) { " (gen-limited)" } else { "" },
            ratio(g("halfcore_offered_pps"), b("halfcore_offered_pps")),
            ratio(g("halfcore_offered_pps"), best_fwd(recs, "halfcore_offered_pps", true)),
            num(g("max_per_cpu_s"), 0),
            ratio(g("max_per_cpu_s"), b("max_per_cpu_s")),
            ratio(g("max_per_cpu_s"), best_fwd(recs, "max_per_cpu_s", true)),
            num(g("fixed_per_cpu_s"), 0),
            g("max_relay_cpu").map_or("-".into(), |c| format!("{:.0}%", c * 100.0)),
            num(g("half_p50_us"), 0),
            num(g("half_p99_us"), 0),
            num(g("half_p999_us"), 0),
            num(g("half_max_us"), 0),
            ratio(g("half_p99_us"), b("half_p99_us")),
            num(g("fixed_syscalls_per_pkt"), 2),
            g("ovl_loss").unwrap_or(f64::NAN) * 100.0,
            num(g("ovl_streams_with_loss"), 0),
            num(g("ovl_streams"), 0),
        );
    }
    s
}

/// Every record's figures, plus the ratios of the table, as JSON.
pub fn json(recs: &[Record]) -> String {
    let base = baseline(recs);
    let mut s = String::from("{\n  \"relays\": [\n");
    for (i, r) in recs.iter().enumerate() {
        let _ = write!(s, "    {{\"name\": \"{}\"", r.name.replace('"', ""));
        for (k, v) in &r.values {
            if v.is_finite() {
                let _ = write!(s, ", \"{k}\": {v}");
            }
        }
        for (k, higher) in [
            ("max_offered_pps", true),
            ("halfcore_offered_pps", true),
            ("max_per_cpu_s", true),
            ("half_p99_us", false),
        ] {
            let v = r.get(k);
            if let (Some(v), Some(b)) = (v, base.and_then(|b| b.get(k))) {
                let _ = write!(s, ", \"{k}_x_rtpengine\": {}", v / b);
            }
            if let (Some(v), Some(b)) = (v, best_fwd(recs, k, higher)) {
                let _ = write!(s, ", \"{k}_x_best_fwd\": {}", v / b);
            }
        }
        s.push('}');
        s.push_str(if i + 1 < recs.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_round_trip_and_ratios() {
        let mut e = Record::new("rtpengine");
        e.set("max_offered_pps", 100.0);
        e.set("half_p99_us", 50.0);
        let mut f = Record::new("fwd-epoll");
        f.set("max_offered_pps", 200.0);
        let mut m = Record::new("rtpmesh-epoll");
        m.set("max_offered_pps", 180.0);
        m.set("half_p99_us", 20.0);
        let back = Record::from_kv(&m.to_kv());
        assert_eq!(back.name, "rtpmesh-epoll");
        assert_eq!(back.get("max_offered_pps"), Some(180.0));
        let recs = [e, f, back];
        let md = markdown(&recs);
        assert!(
            md.contains("| rtpmesh-epoll | 180 | 1.80 | 0.90 | - |"),
            "{md}"
        );
        let merged = merge(vec![Record::new("a"), Record::new("b"), {
            let mut r = Record::new("a");
            r.set("x", 1.0);
            r
        }]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].get("x"), Some(1.0));
        let j = json(&recs);
        assert!(j.contains("\"half_p99_us_x_rtpengine\": 0.4"), "{j}");
    }
}
