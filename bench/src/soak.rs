//! Soak: one node under steady call churn for a set time, watched for
//! leaks. New calls arrive at a steady rate (offer + answer), each carries
//! RTP both ways for its lifetime, some are held and resumed (re-offers),
//! most end with a `delete` (with `delete-delay` 0 or the node's default)
//! and the rest just go quiet for the node's media timeout to remove. Every
//! few seconds the node's RSS, fds, media ports and calls are sampled with
//! the ng round trips of the interval. After the churn every call is ended
//! and the node must come back to no calls, no media ports and its first
//! fd count.

mod args;
mod probe;
mod report;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng_udp::client::NgClient;

pub use args::Args;
pub use probe::{NodeStats, Resources};
pub use report::{Minute, Phase, Report, Sample, Totals};

use crate::latency::Latency;
use crate::rtp::{self, Probe, G711_PACKET};
use crate::setup::{media_addr, offer_body, sdp};

/// `soak`: runs, writes the report, fails if the node did not come back clean.
pub fn main(a: Args) -> anyhow::Result<()> {
    let rep = run(&a)?;
    let md = rep.markdown();
    if let Some(p) = &a.md {
        std::fs::write(p, &md).with_context(|| format!("write {}", p.display()))?;
    }
    if let Some(p) = &a.json {
        std::fs::write(p, rep.json()).with_context(|| format!("write {}", p.display()))?;
    }
    let summary = md.split("\n## ng latency").next().unwrap_or("");
    println!("{summary}");
    let fail = rep.failures();
    if !fail.is_empty() {
        bail!("soak: {}", fail.join("; "));
    }
    Ok(())
}

/// Runs the soak against the node `a.pid` at `a.ng`.
pub fn run(a: &Args) -> anyhow::Result<Report> {
    anyhow::ensure!(
        a.rate > 0.0 && a.pps > 0.0 && a.life_max >= a.life_min,
        "rate and pps must be positive, life-max at least life-min"
    );
    let mut s = Soak::new(a)?;
    s.report.baseline = probe::resources(a.pid, (a.port_min, a.port_max))?;
    s.churn()?;
    s.drain()?;
    Ok(s.report)
}

/// How a call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    DeleteNow,
    DeleteDefault,
    TimeOut,
}

/// A call the generator has up.
struct Live {
    id: String,
    n: u64,
    a: UdpSocket,
    b: UdpSocket,
    end_at: Instant,
    fate: Fate,
    /// Hold at the first instant, resume at the second.
    hold: Option<(Instant, Instant)>,
    held: bool,
    seq: u32,
}

/// A small xorshift generator: the call mix only needs to be repeatable.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Soak<'a> {
    a: &'a Args,
    ng: NgClient,
    rng: Rng,
    t0: Instant,
    live: Vec<Live>,
    next_n: u64,
    tag: String,
    ping: Latency,
    offer: Latency,
    min_ping: Latency,
    min_offer: Latency,
    minute: usize,
    sent: u64,
    received: u64,
    report: Report,
    buf: Vec<u8>,
}

impl<'a> Soak<'a> {
    fn new(a: &'a Args) -> anyhow::Result<Self> {
        let ng = NgClient::new(a.ng)?.with_retries(Duration::from_millis(500), 4)?;
        let warmup_s = a.warmup.unwrap_or((a.secs / 4.0).min(120.0));
        let report = Report {
            warmup_s,
            settings: args::settings(a, warmup_s),
            ..Report::default()
        };
        Ok(Self {
            a,
            ng,
            rng: Rng(a.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            t0: Instant::now(),
            live: Vec::new(),
            next_n: 0,
            tag: format!("soak-{}-{}", std::process::id(), rtp::now_ns() % 1_000_000),
            ping: Latency::new(),
            offer: Latency::new(),
            min_ping: Latency::new(),
            min_offer: Latency::new(),
            minute: 0,
            sent: 0,
            received: 0,
            report,
            buf: vec![0; 2048],
        })
    }

    /// New calls at the set rate, media every tick, events when due.
    fn churn(&mut self) -> anyhow::Result<()> {
        let tick = Duration::from_secs_f64(1.0 / self.a.pps);
        let end = self.t0 + Duration::from_secs_f64(self.a.secs);
        let every = Duration::from_secs_f64(1.0 / self.a.rate);
        let (mut next_call, mut next_ping, mut next_sample) = (self.t0, self.t0, self.t0);
        let mut next_tick = Instant::now();
        while Instant::now() < end {
            self.receive();
            let now = Instant::now();
            while next_call <= now {
                self.start_call(now);
                next_call += every;
            }
            self.events(now);
            self.periodic(&mut next_ping, &mut next_sample, Phase::Run)?;
            self.send();
            next_tick = pace(next_tick, tick);
        }
        Ok(())
    }

    /// Ends every call as fated, then samples until the node is empty or
    /// its timeouts have surely passed.
    fn drain(&mut self) -> anyhow::Result<()> {
        self.receive();
        self.roll_minute();
        let start = Instant::now();
        for c in std::mem::take(&mut self.live) {
            self.end_call(c);
        }
        let limit = Duration::from_secs(self.a.node_timeout + self.a.node_delete_delay + 30);
        let (mut next_ping, mut next_sample) = (start, start + Duration::from_secs(1));
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let sampled = self.periodic(&mut next_ping, &mut next_sample, Phase::Drain)?;
            let empty =
                self.report.samples.last().is_some_and(|s| {
                    s.node.is_some_and(|n| n.sessions == 0) && s.res.media_ports == 0
                });
            if sampled && empty || start.elapsed() > limit {
                break;
            }
        }
        self.report.drain_s = start.elapsed().as_secs_f64();
        // The node closes the last sockets as it removes the calls; give it a
        // moment past the sample that saw them gone.
        std::thread::sleep(Duration::from_millis(500));
        self.report.end = probe::resources(self.a.pid, (self.a.port_min, self.a.port_max))?;
        self.report.end_sessions = self.statistics().map(|n| n.sessions);
        Ok(())
    }

    /// A ping every second, a sample every `sample` seconds, a minute row
    /// every 60 s. Returns whether a sample was taken.
    fn periodic(
        &mut self,
        next_ping: &mut Instant,
        next_sample: &mut Instant,
        phase: Phase,
    ) -> anyhow::Result<bool> {
        let now = Instant::now();
        if now >= *next_ping {
            let t = rtp::now_ns();
            match self.ng.request(&dict([("command", "ping".into())])) {
                Ok(_) => {
                    let d = rtp::now_ns();
                    self.ping.record(t, d);
                    if phase == Phase::Run {
                        self.min_ping.record(t, d);
                    }
                }
                Err(_) => self.report.totals.ng_errors += 1,
            }
            *next_ping += Duration::from_secs(1);
        }
        if phase == Phase::Run && (now - self.t0).as_secs() / 60 > self.minute as u64 {
            self.roll_minute();
        }
        if now < *next_sample {
            return Ok(false);
        }
        *next_sample += Duration::from_secs_f64(self.a.sample);
        let node = self.statistics();
        let res = probe::resources(self.a.pid, (self.a.port_min, self.a.port_max))
            .context("the node is gone")?;
        let s = Sample {
            t_s: self.t0.elapsed().as_secs_f64(),
            phase,
            calls: self.live.len(),
            node,
            res,
            ping: self.ping.summary(),
            offer: self.offer.summary(),
            sent: std::mem::take(&mut self.sent),
            received: std::mem::take(&mut self.received),
        };
        eprintln!(
            "[soak] t={:.0}s {} calls={} node={} rss={}KiB fds={} ports={} ping p99={:.0}us offer p99={:.0}us",
            s.t_s,
            if phase == Phase::Run { "run" } else { "drain" },
            s.calls,
            node.map_or(-1, |n| n.sessions as i64),
            res.rss_kib,
            res.fds,
            res.media_ports,
            s.ping.p99_us,
            s.offer.p99_us
        );
        self.report.samples.push(s);
        self.ping.reset();
        self.offer.reset();
        Ok(true)
    }

    /// Closes the current minute's latency row (empty minutes leave none).
    fn roll_minute(&mut self) {
        if self.min_ping.summary().count + self.min_offer.summary().count > 0 {
            self.report.minutes.push(Minute {
                minute: self.minute,
                ping: self.min_ping.summary(),
                offer: self.min_offer.summary(),
            });
        }
        self.min_ping.reset();
        self.min_offer.reset();
        self.minute += 1;
    }

    fn statistics(&mut self) -> Option<NodeStats> {
        match self.ng.request(&dict([("command", "statistics".into())])) {
            Ok(r) => probe::node_stats(&r),
            Err(_) => {
                self.report.totals.ng_errors += 1;
                None
            }
        }
    }

    /// One ng request that must answer `ok`; offers are timed.
    fn request(&mut self, body: &Value, timed: bool) -> anyhow::Result<Value> {
        let t = rtp::now_ns();
        let r = self.ng.request(body);
        let d = rtp::now_ns();
        let r = match r {
            Ok(r) if r.get("result").and_then(Value::as_str) == Some("ok") => r,
            Ok(r) => {
                self.report.totals.ng_errors += 1;
                bail!("{:?}", r.get("error-reason").and_then(Value::as_str));
            }
            Err(e) => {
                self.report.totals.ng_errors += 1;
                return Err(e.into());
            }
        };
        if timed {
            self.offer.record(t, d);
            self.min_offer.record(t, d);
        }
        Ok(r)
    }

    fn start_call(&mut self, now: Instant) {
        let n = self.next_n;
        self.next_n += 1;
        let id = format!("{}-{n}", self.tag);
        match self.setup(&id, n, now) {
            Ok(c) => {
                self.report.totals.started += 1;
                self.live.push(c);
            }
            Err(e) => {
                eprintln!("[soak] call {id}: {e:#}");
                self.report.totals.failed_setups += 1;
                self.delete(&id, Some(0));
            }
        }
    }

    fn setup(&mut self, id: &str, n: u64, now: Instant) -> anyhow::Result<Live> {
        let (a, b) = (bind()?, bind()?);
        let offer = self.request(&offer_body(id, a.local_addr()?, n as usize, &[]), true)?;
        let b_dest = media_addr(offer.get("sdp").and_then(Value::as_str).unwrap_or(""))?;
        let answer = self.request(&answer_body(id, b.local_addr()?, n, 1, "sendrecv"), false)?;
        let a_dest = media_addr(answer.get("sdp").and_then(Value::as_str).unwrap_or(""))?;
        a.connect(a_dest)?;
        b.connect(b_dest)?;
        let life = self.a.life_min + (self.a.life_max - self.a.life_min) * self.rng.unit();
        let at = |f: f64| now + Duration::from_secs_f64(life * f);
        let hold = (self.rng.unit() < self.a.reoffer).then(|| (at(1.0 / 3.0), at(2.0 / 3.0)));
        let fate = if self.rng.unit() < self.a.timeout_share {
            Fate::TimeOut
        } else if self.rng.unit() < self.a.delete_now {
            Fate::DeleteNow
        } else {
            Fate::DeleteDefault
        };
        Ok(Live {
            id: id.to_owned(),
            n,
            a,
            b,
            end_at: at(1.0),
            fate,
            hold,
            held: false,
            seq: 0,
        })
    }

    /// Holds, resumes and ends the calls whose time has come.
    fn events(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.live.len() {
            if self.live[i].end_at <= now {
                let c = self.live.swap_remove(i);
                self.end_call(c);
                continue;
            }
            match self.live[i].hold {
                Some((h, _)) if h <= now && !self.live[i].held => self.reoffer(i, true),
                Some((_, r)) if r <= now && self.live[i].held => {
                    self.reoffer(i, false);
                    self.live[i].hold = None;
                    self.report.totals.reoffered += 1;
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// A re-INVITE from the caller: hold (sendonly / recvonly) or resume.
    fn reoffer(&mut self, i: usize, hold: bool) {
        let (id, n) = (self.live[i].id.clone(), self.live[i].n);
        let version = if hold { 2 } else { 3 };
        let (offer_dir, answer_dir) = if hold {
            ("sendonly", "recvonly")
        } else {
            ("sendrecv", "sendrecv")
        };
        let r = (|| -> anyhow::Result<()> {
            let c = &self.live[i];
            let (a_local, b_local) = (c.a.local_addr()?, c.b.local_addr()?);
            let (a_old, b_old) = (c.a.peer_addr()?, c.b.peer_addr()?);
            let body = dict([
                ("command", "offer".into()),
                ("call-id", id.as_str().into()),
                ("from-tag", "caller".into()),
                ("to-tag", "callee".into()),
                ("sdp", party_sdp(a_local, n, version, offer_dir).into()),
            ]);
            let offer = self.request(&body, true)?;
            let b_dest = media_addr(offer.get("sdp").and_then(Value::as_str).unwrap_or(""))?;
            let answer_sdp = answer_body(&id, b_local, n, version, answer_dir);
            let answer = self.request(&answer_sdp, false)?;
            let a_dest = media_addr(answer.get("sdp").and_then(Value::as_str).unwrap_or(""))?;
            if (a_dest, b_dest) != (a_old, b_old) {
                self.report.totals.port_changes += 1;
                self.live[i].a.connect(a_dest)?;
                self.live[i].b.connect(b_dest)?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("[soak] re-offer {id}: {e:#}");
        }
        self.live[i].held = hold;
    }

    fn end_call(&mut self, c: Live) {
        let t = &mut self.report.totals;
        match c.fate {
            Fate::DeleteNow => {
                t.deleted_now += 1;
                self.delete(&c.id, Some(0));
            }
            Fate::DeleteDefault => {
                t.deleted_default += 1;
                self.delete(&c.id, None);
            }
            Fate::TimeOut => t.left_to_time_out += 1,
        }
    }

    fn delete(&mut self, id: &str, delay: Option<u64>) {
        let mut items: Vec<(&str, Value)> = vec![
            ("command", "delete".into()),
            ("call-id", id.into()),
            ("from-tag", "caller".into()),
        ];
        if let Some(d) = delay {
            items.push(("delete-delay", d.into()));
        }
        // A delete of a call whose setup failed may find nothing: not an error.
        if self.ng.request(&dict(items)).is_err() {
            self.report.totals.ng_errors += 1;
        }
    }

    /// One packet each way per call (caller only while held: the callee
    /// answered recvonly).
    fn send(&mut self) {
        let now = rtp::now_ns();
        let mut sent = 0;
        for c in &mut self.live {
            let probe = Probe {
                sent_ns: now,
                stream: c.n as u32,
                seq: c.seq,
            };
            c.seq = c.seq.wrapping_add(1);
            let len = rtp::build(&mut self.buf, G711_PACKET, c.n as u32, probe);
            sent += u64::from(c.a.send(&self.buf[..len]).is_ok());
            if !c.held {
                let len = rtp::build(&mut self.buf, G711_PACKET, !(c.n as u32), probe);
                sent += u64::from(c.b.send(&self.buf[..len]).is_ok());
            }
        }
        self.sent += sent;
        self.report.totals.sent += sent;
    }

    /// Everything that arrived since the last tick.
    fn receive(&mut self) {
        let mut got = 0;
        for c in &self.live {
            for s in [&c.a, &c.b] {
                while let Ok(n) = s.recv(&mut self.buf) {
                    got += u64::from(rtp::parse(&self.buf[..n]).is_some());
                }
            }
        }
        self.received += got;
        self.report.totals.received += got;
    }
}

/// Sleeps until the next tick; a late loop starts the schedule again from now.
fn pace(next: Instant, tick: Duration) -> Instant {
    let next = next + tick;
    let now = Instant::now();
    if next > now {
        std::thread::sleep(next - now);
        next
    } else {
        now
    }
}

fn bind() -> anyhow::Result<UdpSocket> {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A party's SDP at `version` with direction `dir`.
fn party_sdp(addr: SocketAddr, n: u64, version: u32, dir: &str) -> String {
    sdp(addr, n + 1)
        .replacen(
            &format!("o=- {} 1 ", n + 1),
            &format!("o=- {} {version} ", n + 1),
            1,
        )
        .replace("a=sendrecv", &format!("a={dir}"))
}

fn answer_body(id: &str, callee: SocketAddr, n: u64, version: u32, dir: &str) -> Value {
    dict([
        ("command", "answer".into()),
        ("call-id", id.into()),
        ("from-tag", "caller".into()),
        ("to-tag", "callee".into()),
        ("sdp", party_sdp(callee, n, version, dir).into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_sdp_changes_direction_and_version() {
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let s = party_sdp(addr, 4, 2, "sendonly");
        assert!(s.contains("o=- 5 2 IN IP4 127.0.0.1"), "{s}");
        assert!(s.contains("a=sendonly") && !s.contains("a=sendrecv"));
        assert_eq!(media_addr(&s).unwrap(), addr);
        assert_eq!(party_sdp(addr, 4, 1, "sendrecv"), sdp(addr, 5));
    }

    #[test]
    fn rng_is_uniform_enough_and_repeatable() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15 | 1);
        let v: Vec<f64> = (0..10_000).map(|_| r.unit()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        let below = v.iter().filter(|x| **x < 0.3).count();
        assert!((2700..3300).contains(&below), "{below}");
        let mut again = Rng(0x9e37_79b9_7f4a_7c15 | 1);
        assert_eq!(again.unit(), v[0]);
    }
}
