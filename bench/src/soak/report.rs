//! The soak's record: one row per sample, ng latency per minute, totals,
//! and the end-of-run checks, written as markdown and JSON.

use std::fmt::Write as _;

use super::probe::{NodeStats, Resources};
use crate::latency::Summary;

/// Whether calls were still being made when a sample was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Churn: new calls at the set rate.
    Run,
    /// No new calls; the last ones are ended and the node empties.
    Drain,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Drain => "drain",
        }
    }
}

/// One sample: the node's state and the interval since the previous one.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the soak began.
    pub t_s: f64,
    /// Churn or drain.
    pub phase: Phase,
    /// Calls the generator has up (offered, answered, not yet ended).
    pub calls: usize,
    /// The node's own counters (`statistics`); `None` if it did not answer.
    pub node: Option<NodeStats>,
    /// RSS, fds and ports of the node process.
    pub res: Resources,
    /// `ping` round trips in the interval.
    pub ping: Summary,
    /// `offer` round trips in the interval (new calls and re-offers).
    pub offer: Summary,
    /// RTP packets sent / received by the generator in the interval.
    pub sent: u64,
    /// See `sent`.
    pub received: u64,
}

/// ng latency over one minute of the run.
#[derive(Debug, Clone, Copy)]
pub struct Minute {
    /// Minute index from the soak's start (0 = first minute).
    pub minute: usize,
    /// `ping` round trips.
    pub ping: Summary,
    /// `offer` round trips.
    pub offer: Summary,
}

/// Counts over the whole soak.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Calls set up (offer + answer both ok).
    pub started: u64,
    /// Calls whose setup failed.
    pub failed_setups: u64,
    /// Calls put on hold and resumed (two re-offers each).
    pub reoffered: u64,
    /// Re-offers whose reply named another relay port than before.
    pub port_changes: u64,
    /// Calls deleted with `delete-delay` 0.
    pub deleted_now: u64,
    /// Calls deleted with the node's default delete delay.
    pub deleted_default: u64,
    /// Calls whose media stopped without a `delete`, for the node to time out.
    pub left_to_time_out: u64,
    /// ng requests that got no reply or an error.
    pub ng_errors: u64,
    /// RTP packets sent and received by the generator.
    pub sent: u64,
    /// See `sent`.
    pub received: u64,
}

/// Everything a soak measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Settings, one `key: value` line each, for the header.
    pub settings: Vec<(String, String)>,
    /// The node before the first call.
    pub baseline: Resources,
    /// Samples before this many seconds are warm-up.
    pub warmup_s: f64,
    /// One per sample interval.
    pub samples: Vec<Sample>,
    /// ng latency per minute of churn.
    pub minutes: Vec<Minute>,
    /// Whole-run counts.
    pub totals: Totals,
    /// The node after the drain.
    pub end: Resources,
    /// Calls the node held after the drain (`None`: it did not answer).
    pub end_sessions: Option<u64>,
    /// Seconds from the end of churn until the node was empty (or gave up).
    pub drain_s: f64,
}

impl Report {
    /// Run samples after warm-up.
    fn steady(&self) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(|s| s.phase == Phase::Run && s.t_s >= self.warmup_s)
    }

    /// Anonymous RSS of the first and last steady samples, KiB.
    pub fn anon_first_last(&self) -> Option<(u64, u64)> {
        Some((
            self.steady().next()?.res.rss_anon_kib,
            self.steady().last()?.res.rss_anon_kib,
        ))
    }

    /// RSS of the first and last steady samples, KiB.
    pub fn rss_first_last(&self) -> Option<(u64, u64)> {
        Some((
            self.steady().next()?.res.rss_kib,
            self.steady().last()?.res.rss_kib,
        ))
    }

    /// fds of the first and last steady samples.
    pub fn fds_first_last(&self) -> Option<(u64, u64)> {
        Some((self.steady().next()?.res.fds, self.steady().last()?.res.fds))
    }

    /// Least-squares slope of steady RSS, KiB per minute.
    pub fn rss_slope_kib_per_min(&self) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .steady()
            .map(|s| (s.t_s / 60.0, s.res.rss_kib as f64))
            .collect();
        slope(&pts)
    }

    /// What failed at the end; empty when the node came back clean: no
    /// calls, no media ports, no more fds than before the first call.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        match self.end_sessions {
            Some(0) => {}
            Some(n) => f.push(format!("node still holds {n} calls after the drain")),
            None => f.push("node did not answer statistics after the drain".into()),
        }
        if self.end.media_ports != 0 {
            f.push(format!(
                "node still holds {} media ports after the drain",
                self.end.media_ports
            ));
        }
        if self.end.fds > self.baseline.fds {
            f.push(format!(
                "node has {} fds after the drain, {} before the first call",
                self.end.fds, self.baseline.fds
            ));
        }
        f
    }

    /// The markdown record.
    pub fn markdown(&self) -> String {
        let mut s = String::from("# Soak: one node under call churn\n\n");
        for (k, v) in &self.settings {
            let _ = writeln!(s, "- {k}: {v}");
        }
        s.push_str("\n## Summary\n\n");
        self.summary_md(&mut s);
        s.push_str("\n## ng latency per minute (µs)\n\n");
        s.push_str("| minute | pings | ping p50 | ping p99 | ping max | offers | offer p50 | offer p99 | offer max |\n");
        s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for m in &self.minutes {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {:.0} |",
                m.minute + 1,
                m.ping.count,
                m.ping.p50_us,
                m.ping.p99_us,
                m.ping.max_us,
                m.offer.count,
                m.offer.p50_us,
                m.offer.p99_us,
                m.offer.max_us
            );
        }
        s.push_str("\n## Samples\n\n");
        s.push_str("| t (s) | phase | calls up | node calls | RSS (KiB) | anon (KiB) | fds | media ports | UDP sockets | ping p50/p99 (µs) | offer p50/p99 (µs) | RTP sent | RTP recv |\n");
        s.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for x in &self.samples {
            let _ = writeln!(
                s,
                "| {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}/{:.0} | {:.0}/{:.0} | {} | {} |",
                x.t_s,
                x.phase.name(),
                x.calls,
                x.node.map_or("-".into(), |n| n.sessions.to_string()),
                x.res.rss_kib,
                x.res.rss_anon_kib,
                x.res.fds,
                x.res.media_ports,
                x.res.udp_sockets,
                x.ping.p50_us,
                x.ping.p99_us,
                x.offer.p50_us,
                x.offer.p99_us,
                x.sent,
                x.received
            );
        }
        s
    }

    fn summary_md(&self, s: &mut String) {
        let t = &self.totals;
        let fail = self.failures();
        let _ = writeln!(
            s,
            "- verdict: **{}**",
            if fail.is_empty() {
                "clean".to_owned()
            } else {
                fail.join("; ")
            }
        );
        let _ = writeln!(
            s,
            "- calls: {} set up ({} failed), {} held and resumed (2 re-offers each, {} changed a relay port), {} deleted with delete-delay 0, {} deleted with the default delay, {} left to time out; ng errors {}",
            t.started, t.failed_setups, t.reoffered, t.port_changes, t.deleted_now, t.deleted_default, t.left_to_time_out, t.ng_errors
        );
        if let Some(n) = self.samples.iter().rev().find_map(|x| x.node) {
            let _ = writeln!(
                s,
                "- node counters at the end: {} calls managed, {} deleted, {} timed out",
                n.managed, n.deleted, n.timeouts
            );
        }
        let _ = writeln!(
            s,
            "- RTP: {} sent, {} received ({:.3}% not received, including packets in flight when calls ended)",
            t.sent,
            t.received,
            100.0 * (1.0 - t.received as f64 / t.sent.max(1) as f64)
        );
        let b = &self.baseline;
        let _ = writeln!(
            s,
            "- before the first call: RSS {} KiB, {} fds, {} media ports",
            b.rss_kib, b.fds, b.media_ports
        );
        if let (Some((r0, r1)), Some((f0, f1))) = (self.rss_first_last(), self.fds_first_last()) {
            let _ = writeln!(
                s,
                "- after warm-up ({:.0} s), first vs last sample under churn: RSS {r0} → {r1} KiB ({:+.1}%), slope {:+.1} KiB/min; fds {f0} → {f1}",
                self.warmup_s,
                100.0 * (r1 as f64 - r0 as f64) / r0.max(1) as f64,
                self.rss_slope_kib_per_min().unwrap_or(0.0)
            );
        }
        let peak = self
            .samples
            .iter()
            .map(|x| x.res.rss_kib)
            .max()
            .unwrap_or(0);
        let e = &self.end;
        let _ = writeln!(
            s,
            "- after the drain ({:.0} s): node calls {}, media ports {}, fds {} (baseline {}), RSS {} KiB (peak {peak})",
            self.drain_s,
            self.end_sessions.map_or("?".into(), |n| n.to_string()),
            e.media_ports,
            e.fds,
            b.fds,
            e.rss_kib
        );
        let p99 = |f: fn(&Minute) -> &Summary| -> String {
            self.minutes
                .iter()
                .map(|m| format!("{:.0}", f(m).p99_us))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "- ping p99 per minute (µs): {}", p99(|m| &m.ping));
        let _ = writeln!(s, "- offer p99 per minute (µs): {}", p99(|m| &m.offer));
    }

    /// The JSON record (same content as the markdown).
    pub fn json(&self) -> String {
        let mut s = String::from("{\n  \"settings\": {");
        let kv: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{}: {}", quote(k), quote(v)))
            .collect();
        s.push_str(&kv.join(", "));
        s.push_str("},\n");
        let t = &self.totals;
        let _ = writeln!(
            s,
            "  \"totals\": {{\"started\": {}, \"failed_setups\": {}, \"reoffered\": {}, \"port_changes\": {}, \"deleted_now\": {}, \"deleted_default\": {}, \"left_to_time_out\": {}, \"ng_errors\": {}, \"rtp_sent\": {}, \"rtp_received\": {}}},",
            t.started, t.failed_setups, t.reoffered, t.port_changes, t.deleted_now, t.deleted_default, t.left_to_time_out, t.ng_errors, t.sent, t.received
        );
        let _ = writeln!(s, "  \"baseline\": {},", res_json(&self.baseline));
        let _ = writeln!(s, "  \"end\": {},", res_json(&self.end));
        let _ = writeln!(
            s,
            "  \"end_sessions\": {},\n  \"drain_s\": {:.1},\n  \"warmup_s\": {:.0},",
            self.end_sessions.map_or("null".into(), |n| n.to_string()),
            self.drain_s,
            self.warmup_s
        );
        if let Some((r0, r1)) = self.rss_first_last() {
            let _ = writeln!(
                s,
                "  \"rss_after_warmup_kib\": [{r0}, {r1}],\n  \"rss_slope_kib_per_min\": {:.2},",
                self.rss_slope_kib_per_min().unwrap_or(0.0)
            );
        }
        let fail: Vec<String> = self.failures().iter().map(|f| quote(f)).collect();
        let _ = writeln!(s, "  \"failures\": [{}],", fail.join(", "));
        let minutes: Vec<String> = self
            .minutes
            .iter()
            .map(|m| {
                format!(
                    "    {{\"minute\": {}, \"ping\": {}, \"offer\": {}}}",
                    m.minute + 1,
                    lat_json(&m.ping),
                    lat_json(&m.offer)
                )
            })
            .collect();
        let _ = writeln!(s, "  \"minutes\": [\n{}\n  ],", minutes.join(",\n"));
        let samples: Vec<String> = self.samples.iter().map(sample_json).collect();
        let _ = writeln!(s, "  \"samples\": [\n{}\n  ]\n}}", samples.join(",\n"));
        s
    }
}

fn sample_json(x: &Sample) -> String {
    format!(
        "    {{\"t_s\": {:.1}, \"phase\": \"{}\", \"calls\": {}, \"node_calls\": {}, \"res\": {}, \"ping\": {}, \"offer\": {}, \"rtp_sent\": {}, \"rtp_received\": {}}}",
        x.t_s,
        x.phase.name(),
        x.calls,
        x.node.map_or("null".into(), |n| n.sessions.to_string()),
        res_json(&x.res),
        lat_json(&x.ping),
        lat_json(&x.offer),
        x.sent,
        x.received
    )
}

fn res_json(r: &Resources) -> String {
    format!(
        "{{\"rss_kib\": {}, \"rss_anon_kib\": {}, \"fds\": {}, \"media_ports\": {}, \"udp_sockets\": {}}}",
        r.rss_kib, r.rss_anon_kib, r.fds, r.media_ports, r.udp_sockets
    )
}

fn lat_json(l: &Summary) -> String {
    format!(
        "{{\"count\": {}, \"p50_us\": {:.1}, \"p99_us\": {:.1}, \"max_us\": {:.1}}}",
        l.count, l.p50_us, l.p99_us, l.max_us
    )
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Least-squares slope of `pts` (x, y); `None` under two distinct x.
pub(super) fn slope(pts: &[(f64, f64)]) -> Option<f64> {
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (pts.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, phase: Phase, rss: u64, fds: u64) -> Sample {
        Sample {
            t_s,
            phase,
            calls: 1,
            node: Some(NodeStats::default()),
            res: Resources {
                rss_kib: rss,
                rss_anon_kib: rss / 2,
                fds,
                media_ports: 4,
                udp_sockets: 5,
            },
            ping: Summary::default(),
            offer: Summary::default(),
            sent: 0,
            received: 0,
        }
    }

    #[test]
    fn slope_of_a_line_and_of_too_little() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn steady_window_skips_warmup_and_drain() {
        let r = Report {
            warmup_s: 10.0,
            samples: vec![
                sample(5.0, Phase::Run, 100, 10),
                sample(10.0, Phase::Run, 200, 20),
                sample(70.0, Phase::Run, 260, 21),
                sample(75.0, Phase::Drain, 900, 90),
            ],
            ..Report::default()
        };
        assert_eq!(r.rss_first_last(), Some((200, 260)));
        assert_eq!(r.anon_first_last(), Some((100, 130)));
        assert_eq!(r.fds_first_last(), Some((20, 21)));
        let k = r.rss_slope_kib_per_min().unwrap();
        assert!((k - 60.0).abs() < 1e-9, "{k}");
    }

    #[test]
    fn failures_name_what_is_left() {
        let mut r = Report {
            baseline: Resources {
                fds: 12,
                ..Resources::default()
            },
            end: Resources {
                fds: 12,
                ..Resources::default()
            },
            end_sessions: Some(0),
            ..Report::default()
        };
        assert!(r.failures().is_empty());
        r.end.fds = 13;
        r.end.media_ports = 4;
        r.end_sessions = Some(2);
        let f = r.failures().join("; ");
        assert!(f.contains("2 calls") && f.contains("4 media ports") && f.contains("13 fds"));
        let md = r.markdown();
        assert!(md.contains("verdict: **node still holds 2 calls"));
        assert!(r
            .json()
            .contains("\"failures\": [\"node still holds 2 calls"));
    }
}
