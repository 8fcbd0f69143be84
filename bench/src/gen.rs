//! The load generator: one thread that sends every stream on schedule and
//! receives everything the relay forwards, on the same core.
//!
//! Each party has its own socket (a relay latches on the source address,
//! so streams cannot share one), hence a send is one `send` on a connected
//! socket: `sendmmsg` only batches within a socket, and a 50 pps stream has
//! one packet due at a time. Receiving is epoll (edge-triggered) plus
//! `recvmmsg` per ready socket, so a burst queued on one socket is one call.
//! Packets carry their send time and sequence ([`crate::rtp::Probe`]), so
//! nothing is remembered per packet.
//!
//! With SRTP calls ([`crate::setup::Media::Srtp`]) the caller's socket
//! protects what it sends with the caller's key and unprotects what it
//! receives with the relay's key (from the answer) before reading the
//! probe, so the generator checks every packet's tag as a real SRTP peer
//! would; that crypto is the generator's CPU, not the relay's.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use std::sync::Arc;

use rtpmesh_srtp::{MasterKey, SrtpContext, Suite};

use crate::latency::{Latency, Summary};
use crate::nscpu::{Meter, Sample, Split};
use crate::rtp::{self, now_ns, Probe, G711_PACKET};
use crate::setup::Call;

const RX_BATCH: usize = 32;
/// Receive buffer per datagram: what is longer is cut (a plain probe is
/// still read; an SRTP packet then fails its tag).
pub const RX_MAX: usize = 256;
const EVENTS: usize = 1024;
/// Most sends between two receive passes, so receiving is never starved.
const SEND_BUDGET: u64 = 256;

/// One stretch of a run.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Packets per second over all active streams; `None` sends as fast as
    /// the generator can (overload).
    pub rate: Option<f64>,
    /// How long.
    pub dur: Duration,
}

/// What a run is: phases back to back, the streams used, and the window
/// (offsets from the start, by send time) whose packets are measured.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The phases.
    pub phases: Vec<Phase>,
    /// Streams sending (the first ones; 2 per call).
    pub active: usize,
    /// Measured window start, from the run's start.
    pub window_start: Duration,
    /// Measured window end.
    pub window_end: Duration,
    /// Receive-only time after the last phase, for packets in flight.
    pub drain: Duration,
    /// Packet size in bytes.
    pub size: usize,
    /// Relay process whose CPU time is read at the window edges.
    pub relay_pid: Option<u32>,
    /// Read the relay's CPU time to the nanosecond from its threads'
    /// schedstat ([`crate::proc::task_cpu_seconds`]) rather than in 10 ms
    /// ticks from `/proc/PID/stat`.
    pub exact_cpu: bool,
    /// More processes whose CPU time is read at the window edges, each on
    /// its own (the nodes of a multi-node path): [`Outcome::pids_cpu_s`].
    pub cpu_pids: Vec<u32>,
    /// Exact accounting of the relay's CPU, read at the window edges:
    /// [`Outcome::relay_split`].
    pub meter: Option<Arc<Meter>>,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Packets sent in the window.
    pub sent: u64,
    /// Of those, received at the far end.
    pub received: u64,
    /// Packets received out of order (sequence below the stream's highest).
    pub reordered: u64,
    /// Sends the generator's own socket refused (EAGAIN, ICMP errors).
    pub send_errors: u64,
    /// SRTP packets received that failed to unprotect (bad tag, replayed,
    /// malformed), or sent packets the generator could not protect; whole
    /// run. Always 0 for plain calls.
    pub srtp_errors: u64,
    /// Streams that lost at least one window packet.
    pub streams_with_loss: u64,
    /// Streams in the run.
    pub streams: u64,
    /// Latency of window packets.
    pub latency: Summary,
    /// Window length in seconds.
    pub window_s: f64,
    /// Relay CPU seconds over the window.
    pub relay_cpu_s: Option<f64>,
    /// Generator CPU seconds (this thread) over the window.
    pub gen_cpu_s: f64,
    /// The paced phases sent less than 99% of their schedule: the generator
    /// itself was the bottleneck, so a loss-free result is a lower bound.
    pub gen_limited: bool,
    /// Packets received, whole run (for syscall-per-packet figures).
    pub received_total: u64,
    /// CPU seconds over the window of each of [`Plan::cpu_pids`], in order
    /// (`None` where `/proc` could not be read).
    pub pids_cpu_s: Vec<Option<f64>>,
    /// The relay CPU's time over the window by where it went, from
    /// [`Plan::meter`] (`None` without one, or if a read failed).
    pub relay_split: Option<Split>,
}

impl Outcome {
    /// Lost fraction of window packets.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        1.0 - self.received as f64 / self.sent as f64
    }

    /// Window packets forwarded per second.
    pub fn pps(&self) -> f64 {
        self.received as f64 / self.window_s.max(1e-9)
    }

    /// Packets forwarded per relay CPU-second.
    pub fn per_cpu_s(&self) -> Option<f64> {
        self.relay_cpu_s
            .filter(|c| *c > 0.0)
            .map(|c| self.received as f64 / c)
    }
}

/// Per-stream receive state.
#[derive(Clone, Default)]
struct Rx {
    sent_in_window: u64,
    got_in_window: u64,
    max_seq: Option<u32>,
}

impl Outcome {
    /// Adds one stream's window to the totals (duplicates never count as
    /// more than was sent).
    fn count(&mut self, r: &Rx) {
        self.sent += r.sent_in_window;
        self.received += r.got_in_window.min(r.sent_in_window);
        if r.got_in_window < r.sent_in_window {
            self.streams_with_loss += 1;
        }
    }
}

/// Sockets of every party, registered with one epoll instance.
pub struct Generator {
    epfd: RawFd,
    /// Socket `s` sends stream `s`; stream `s` arrives on socket `s ^ 1`.
    fds: Vec<RawFd>,
    next_seq: Vec<u32>,
    rx: Vec<Rx>,
    /// Per socket: the SRTP context that protects what it sends (an SRTP
    /// caller's), if any.
    tx_srtp: Vec<Option<SrtpContext>>,
    /// Per socket: the SRTP context that unprotects what it receives (an
    /// SRTP caller's, keyed by the relay's answer), if any.
    rx_srtp: Vec<Option<SrtpContext>>,
}

/// An SRTP context for `key` (key || salt of our suite).
fn srtp_context(key: &[u8]) -> io::Result<SrtpContext> {
    let k = MasterKey::new(Suite::AesCm128HmacSha1_80, key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("SRTP key: {e}")))?;
    Ok(SrtpContext::new(&k))
}

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// When each phase ends (ns), starting at `t0`.
fn phase_ends(t0: u64, phases: &[Phase]) -> Vec<u64> {
    let mut ends = Vec::with_capacity(phases.len());
    let mut acc = t0;
    for p in phases {
        acc += p.dur.as_nanos() as u64;
        ends.push(acc);
    }
    ends
}

/// Whether `sent` packets in a phase of `dur_ns` fell more than 1% short
/// of its `rate` (a phase with no rate cannot).
fn fell_short(sent: u64, dur_ns: u64, rate: Option<f64>) -> bool {
    match rate {
        Some(rate) => {
            let due = (dur_ns as f64 * rate / 1e9) as u64;
            (sent as f64) < 0.99 * due as f64
        }
        None => false,
    }
}

/// Takes the CPU samples of each window edge (start, end) that `now` has
/// reached and that has none yet.
fn sample_edges(plan: &Plan, now: u64, edges: [u64; 2], e: &mut Edges) {
    for (i, w) in edges.into_iter().enumerate() {
        if e.cpu[i].is_none() && now >= w {
            e.meter[i] = Some(meter_sample(plan));
            e.pids[i] = Some(pids_cpu(plan));
            e.cpu[i] = Some(relay_and_own_cpu(plan));
        }
    }
}

/// CPU readings taken at the window's start and end.
#[derive(Default)]
struct Edges {
    cpu: [Option<(Option<f64>, f64)>; 2],
    pids: [Option<Vec<Option<f64>>>; 2],
    meter: [Option<Option<Sample>>; 2],
}

/// A reading of the plan's meter, if it has one and it could be read.
fn meter_sample(plan: &Plan) -> Option<Sample> {
    plan.meter.as_ref().and_then(|m| m.sample().ok())
}

/// CPU seconds used so far by each of `plan.cpu_pids`.
fn pids_cpu(plan: &Plan) -> Vec<Option<f64>> {
    plan.cpu_pids
        .iter()
        .map(|&p| crate::proc::cpu_seconds(p).ok())
        .collect()
}

/// CPU seconds used so far by the relay (if known) and by this thread.
fn relay_and_own_cpu(plan: &Plan) -> (Option<f64>, f64) {
    (
        plan.relay_pid.and_then(|p| {
            if plan.exact_cpu {
                crate::proc::task_cpu_seconds(p).ok()
            } else {
                crate::proc::cpu_seconds(p).ok()
            }
        }),
        thread_cpu_s(),
    )
}

/// Fills `out`'s CPU figures from the samples taken at the window's edges;
/// an edge not reached is sampled now.
fn record_cpu(out: &mut Outcome, plan: &Plan, edges: Edges) {
    let last_meter = meter_sample(plan);
    let [m0, m1] = edges.meter;
    if let (Some(m), Some(a), Some(b)) = (
        &plan.meter,
        m0.unwrap_or(last_meter),
        m1.unwrap_or(last_meter),
    ) {
        out.relay_split = Some(m.split(&a, &b));
    }
    let edge_cpu = edges.cpu;
    let last = relay_and_own_cpu(plan);
    let last_pids = pids_cpu(plan);
    let [p0, p1] = edges.pids;
    let (p0, p1) = (
        p0.unwrap_or_else(|| last_pids.clone()),
        p1.unwrap_or(last_pids),
    );
    out.pids_cpu_s = p0
        .iter()
        .zip(&p1)
        .map(|(x, y)| x.zip(*y).map(|(x, y)| y - x))
        .collect();
    let (a, b) = (edge_cpu[0].unwrap_or(last), edge_cpu[1].unwrap_or(last));
    out.relay_cpu_s = a.0.zip(b.0).map(|(x, y)| y - x);
    out.gen_cpu_s = b.1 - a.1;
}

impl Generator {
    /// A generator over `calls` (which must outlive it: it keeps their fds).
    pub fn new(calls: &[Call]) -> io::Result<Self> {
        // SAFETY: plain syscall.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fds = Vec::with_capacity(calls.len() * 2);
        let mut tx_srtp = Vec::with_capacity(calls.len() * 2);
        let mut rx_srtp = Vec::with_capacity(calls.len() * 2);
        for c in calls {
            fds.push(c.a.as_raw_fd());
            fds.push(c.b.as_raw_fd());
            match &c.srtp {
                Some(k) => {
                    tx_srtp.push(Some(srtp_context(&k.caller_tx)?));
                    rx_srtp.push(Some(srtp_context(&k.caller_rx)?));
                }
                None => {
                    tx_srtp.push(None);
                    rx_srtp.push(None);
                }
            }
            // The callee is plain.
            tx_srtp.push(None);
            rx_srtp.push(None);
        }
        for (i, &fd) in fds.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: i as u64,
            };
            // SAFETY: valid epoll fd, socket fd and event.
            if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let n = fds.len();
        Ok(Self {
            epfd,
            fds,
            next_seq: vec![0; n],
            rx: vec![Rx::default(); n],
            tx_srtp,
            rx_srtp,
        })
    }

    /// Streams available (2 per call).
    pub fn streams(&self) -> usize {
        self.fds.len()
    }

    /// Runs `plan` and reports on its window.
    pub fn run(&mut self, plan: &Plan) -> Outcome {
        let active = plan.active.clamp(1, self.fds.len());
        for r in &mut self.rx {
            *r = Rx::default();
        }
        let mut lat = Latency::new();
        let mut out = Outcome {
            streams: active as u64,
            ..Outcome::default()
        };
        let t0 = now_ns();
        let w0 = t0 + plan.window_start.as_nanos() as u64;
        let w1 = t0 + plan.window_end.as_nanos() as u64;
        let ends = phase_ends(t0, &plan.phases);
        let end = ends.last().copied().unwrap_or(t0);
        let mut buf = [0u8; 2048];
        let size = plan.size.min(buf.len());
        let mut phase = 0usize;
        let mut phase_start = t0;
        let mut k: u64 = 0; // packets sent in this phase
        let mut stream = 0usize; // next stream to send, round robin
        let mut edges = Edges::default();
        let mut short_phases = false;
        let mut now = t0;
        // Bounded: every pass advances the clock; the run ends at `end` +
        // drain.
        while now < end {
            while phase + 1 < ends.len() && now >= ends[phase] {
                short_phases |= fell_short(k, ends[phase] - phase_start, plan.phases[phase].rate);
                phase_start = ends[phase];
                phase += 1;
                k = 0;
            }
            sample_edges(plan, now, [w0, w1], &mut edges);
            let target = match plan.phases[phase].rate {
                Some(rate) => ((now - phase_start) as f64 * rate / 1e9) as u64,
                None => u64::MAX,
            };
            let burst = target.saturating_sub(k).min(SEND_BUDGET);
            self.send_burst(
                burst,
                active,
                &mut stream,
                &mut buf,
                size,
                (w0, w1),
                &mut out,
            );
            k += burst;
            let got = self.receive(0, w0, w1, &mut lat, &mut out);
            now = now_ns();
            if burst == 0 && got == 0 {
                if let Some(rate) = plan.phases[phase].rate {
                    let next = phase_start + ((k + 1) as f64 * 1e9 / rate) as u64;
                    now = self.idle_until(next, now, (w0, w1), &mut lat, &mut out);
                }
            }
        }
        short_phases |= fell_short(k, end - phase_start, plan.phases[phase].rate);
        // Drain what is still in flight, then stop.
        let stop = now_ns() + plan.drain.as_nanos() as u64;
        while now_ns() < stop {
            self.receive(10, w0, w1, &mut lat, &mut out);
        }
        record_cpu(&mut out, plan, edges);
        out.window_s = (w1.min(end) - w0.min(end)) as f64 / 1e9;
        out.gen_limited = short_phases;
        for r in &self.rx[..active] {
            out.count(r);
        }
        out.latency = lat.summary();
        out
    }

    /// Replays `items` (send offset from the start in ns, stream, packet)
    /// in order: with their own timing divided by `speed`, or as fast as
    /// possible when `speed` is `None`. Each packet gets a probe written
    /// after its RTP header (it is extended to hold one if shorter).
    pub fn replay(
        &mut self,
        items: &[(u64, usize, Vec<u8>)],
        speed: Option<f64>,
        drain: Duration,
    ) -> Outcome {
        for r in &mut self.rx {
            *r = Rx::default();
        }
        let mut lat = Latency::new();
        let mut out = Outcome::default();
        let mut used = vec![false; self.fds.len()];
        let t0 = now_ns();
        let mut buf = [0u8; 2048];
        for (i, (at, s, pkt)) in items.iter().enumerate() {
            let s = *s;
            if s >= self.fds.len() {
                continue;
            }
            used[s] = true;
            if let Some(speed) = speed {
                let due = t0 + (*at as f64 / speed) as u64;
                // Bounded by the pcap's duration; receive while waiting.
                while now_ns() < due {
                    let left = due.saturating_sub(now_ns());
                    self.receive(
                        if left > 2_000_000 { 1 } else { 0 },
                        0,
                        u64::MAX,
                        &mut lat,
                        &mut out,
                    );
                }
            } else if i % 64 == 0 {
                self.receive(0, 0, u64::MAX, &mut lat, &mut out);
            }
            let n = pkt.len().clamp(rtp::RTP_HEADER + rtp::PROBE_LEN, buf.len());
            buf[..pkt.len().min(n)].copy_from_slice(&pkt[..pkt.len().min(n)]);
            let seq = self.next_seq[s];
            let t = now_ns();
            rtp::write_probe(
                &mut buf[rtp::RTP_HEADER..],
                Probe {
                    sent_ns: t,
                    stream: s as u32,
                    seq,
                },
            );
            let Some(n) = self.seal(s, &mut buf, n, &mut out) else {
                continue;
            };
            if !self.send_on(s, &buf[..n], &mut out) {
                continue;
            }
            self.rx[s].sent_in_window += 1;
        }
        // The rate is over the sending time, not the drain.
        out.window_s = (now_ns() - t0) as f64 / 1e9;
        let stop = now_ns() + drain.as_nanos() as u64;
        while now_ns() < stop {
            self.receive(10, 0, u64::MAX, &mut lat, &mut out);
        }
        for (r, _) in self.rx.iter().zip(&used).filter(|(_, u)| **u) {
            out.streams += 1;
            out.count(r);
        }
        out.latency = lat.summary();
        out
    }

    /// One epoll pass (waiting up to `timeout_ms`), reading every ready
    /// socket dry. Returns datagrams read.
    fn receive(
        &mut self,
        timeout_ms: i32,
        w0: u64,
        w1: u64,
        lat: &mut Latency,
        out: &mut Outcome,
    ) -> usize {
        // SAFETY: an all-zero epoll_event array is valid.
        let mut evs: [libc::epoll_event; EVENTS] = unsafe { std::mem::zeroed() };
        // SAFETY: valid epoll fd and a live event array of EVENTS entries.
        let n = unsafe { libc::epoll_wait(self.epfd, evs.as_mut_ptr(), EVENTS as i32, timeout_ms) };
        if n <= 0 {
            return 0;
        }
        let mut bufs = [[0u8; RX_MAX]; RX_BATCH];
        let mut iovs: [libc::iovec; RX_BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: bufs[i].as_mut_ptr().cast(),
            iov_len: RX_MAX,
        });
        // SAFETY: an all-zero mmsghdr is valid.
        let mut msgs: [libc::mmsghdr; RX_BATCH] = unsafe { std::mem::zeroed() };
        for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut total = 0;
        for ev in &evs[..n as usize] {
            let sock = ev.u64 as usize;
            // Each stream arrives on its peer's socket.
            let fd = self.fds[sock];
            // Bounded: a socket cannot be refilled faster than we read for
            // long; 64 batches is far beyond any queue.
            for _ in 0..64 {
                // SAFETY: msgs point at live iovecs and buffers.
                let r = unsafe {
                    libc::recvmmsg(
                        fd,
                        msgs.as_mut_ptr(),
                        RX_BATCH as u32,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::WouldBlock {
                        break;
                    }
                    // ECONNREFUSED from an earlier send: read on.
                    continue;
                }
                let t = now_ns();
                let r = r as usize;
                for (m, b) in msgs[..r].iter().zip(bufs.iter_mut()) {
                    let mut len = (m.msg_len as usize).min(b.len());
                    if let Some(ctx) = self.rx_srtp[sock].as_mut() {
                        match ctx.unprotect_rtp(b, len) {
                            Ok(n) => len = n,
                            Err(_) => {
                                out.srtp_errors += 1;
                                continue;
                            }
                        }
                    }
                    if let Some(p) = rtp::parse(&b[..len]) {
                        self.count_arrival(sock, &p, t, (w0, w1), lat, out);
                    }
                }
                total += r;
                if r < RX_BATCH {
                    break;
                }
            }
        }
        total
    }

    /// Sends `burst` packets round robin over the first `active` streams,
    /// from `*stream` on; counts send errors, and packets sent in `window`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn send_burst(
        &mut self,
        burst: u64,
        active: usize,
        stream: &mut usize,
        buf: &mut [u8],
        size: usize,
        (w0, w1): (u64, u64),
        out: &mut Outcome,
    ) {
        for _ in 0..burst {
            let s = *stream;
            *stream = if s + 1 == active { 0 } else { s + 1 };
            let seq = self.next_seq[s];
            let t = now_ns();
            let n = rtp::build(
                buf,
                size,
                s as u32,
                Probe {
                    sent_ns: t,
                    stream: s as u32,
                    seq,
                },
            );
            let Some(n) = self.seal(s, buf, n, out) else {
                continue;
            };
            if !self.send_on(s, &buf[..n], out) {
                continue;
            }
            if (w0..w1).contains(&t) {
                self.rx[s].sent_in_window += 1;
            }
        }
    }

    /// Protects buf[..n] in place when stream `s` is SRTP; returns the
    /// length to send, or `None` (counted) if it cannot be protected.
    #[inline]
    fn seal(&mut self, s: usize, buf: &mut [u8], n: usize, out: &mut Outcome) -> Option<usize> {
        let Some(ctx) = self.tx_srtp[s].as_mut() else {
            return Some(n);
        };
        match ctx.protect_rtp(buf, n) {
            Ok(n) => Some(n),
            Err(_) => {
                out.srtp_errors += 1;
                // Never the same sequence number twice: the context
                // refuses an index it has protected.
                self.next_seq[s] = self.next_seq[s].wrapping_add(1);
                None
            }
        }
    }

    /// Sends `pkt` on stream `s` without blocking: a refusal is counted as
    /// a send error, a datagram sent moves the stream's sequence number on.
    /// Returns whether it was sent.
    fn send_on(&mut self, s: usize, pkt: &[u8], out: &mut Outcome) -> bool {
        // SAFETY: a valid fd and a live buffer of pkt.len() bytes.
        let r = unsafe {
            libc::send(
                self.fds[s],
                pkt.as_ptr().cast(),
                pkt.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            out.send_errors += 1;
            // A protected packet's index is spent whether or not it left.
            if self.tx_srtp[s].is_some() {
                self.next_seq[s] = self.next_seq[s].wrapping_add(1);
            }
            return false;
        }
        self.next_seq[s] = self.next_seq[s].wrapping_add(1);
        true
    }

    /// Idles until `next` (the next packet due; at most 1 ms), receiving
    /// meanwhile, so the generator's CPU time says how busy it really is.
    /// Returns the time now.
    fn idle_until(
        &mut self,
        next: u64,
        now: u64,
        (w0, w1): (u64, u64),
        lat: &mut Latency,
        out: &mut Outcome,
    ) -> u64 {
        let wait = next.saturating_sub(now).min(1_000_000);
        if wait > 20_000 {
            self.receive(((wait / 1_000_000) as i32).max(1), w0, w1, lat, out);
            return now_ns();
        }
        now
    }

    /// Counts probe `p`, read at `t` on socket `sock`, unless it belongs
    /// to no stream that arrives there.
    #[inline]
    fn count_arrival(
        &mut self,
        sock: usize,
        p: &Probe,
        t: u64,
        (w0, w1): (u64, u64),
        lat: &mut Latency,
        out: &mut Outcome,
    ) {
        let s = p.stream as usize;
        if s >= self.rx.len() || s ^ 1 != sock {
            return;
        }
        out.received_total += 1;
        let rx = &mut self.rx[s];
        match rx.max_seq {
            Some(m) if p.seq < m => out.reordered += 1,
            _ => rx.max_seq = Some(p.seq),
        }
        if (w0..w1).contains(&p.sent_ns) {
            rx.got_in_window += 1;
            lat.record(p.sent_ns, t);
        }
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        // SAFETY: our own epoll fd, closed once.
        unsafe { libc::close(self.epfd) };
    }
}

/// The default packet: G.711, 20 ms.
pub const DEFAULT_SIZE: usize = G711_PACKET;

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::setup::SrtpKeys;

    /// A stand-in for an SRTP-bridging relay: unprotects what the caller
    /// sends (caller's key) toward the callee, protects what the callee
    /// sends (answer's key) toward the caller.
    fn bridge(ra: UdpSocket, rb: UdpSocket, keys: SrtpKeys, stop: Arc<AtomicBool>) -> u64 {
        let mut from_a = srtp_context(&keys.caller_tx).unwrap();
        let mut to_a = srtp_context(&keys.caller_rx).unwrap();
        let (mut a, mut b) = (None, None);
        let mut buf = [0u8; 2048];
        let mut bad = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut idle = true;
            if let Ok((n, from)) = ra.recv_from(&mut buf) {
                idle = false;
                a = Some(from);
                match from_a.unprotect_rtp(&mut buf, n) {
                    Ok(n) => {
                        if let Some(b) = b {
                            let _ = rb.send_to(&buf[..n], b);
                        }
                    }
                    Err(_) => bad += 1,
                }
            }
            if let Ok((n, from)) = rb.recv_from(&mut buf) {
                idle = false;
                b = Some(from);
                let n = to_a.protect_rtp(&mut buf, n).unwrap();
                if let Some(a) = a {
                    let _ = ra.send_to(&buf[..n], a);
                }
            }
            if idle {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        bad
    }

    #[test]
    fn srtp_caller_protects_and_unprotects_through_a_bridge() {
        let lo = |_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        let (ra, rb, a, b) = (lo(0), lo(1), lo(2), lo(3));
        a.connect(ra.local_addr().unwrap()).unwrap();
        b.connect(rb.local_addr().unwrap()).unwrap();
        let keys = SrtpKeys {
            caller_tx: (0..30).collect(),
            caller_rx: (100..130).collect(),
        };
        let call = Call {
            id: "t".into(),
            a_dest: ra.local_addr().unwrap(),
            b_dest: rb.local_addr().unwrap(),
            a,
            b,
            route: None,
            srtp: Some(keys.clone()),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let relay = {
            let stop = stop.clone();
            std::thread::spawn(move || bridge(ra, rb, keys, stop))
        };
        let calls = [call];
        let mut g = Generator::new(&calls).unwrap();
        // Both parties send from the start, so each is latched before the
        // window opens.
        let o = g.run(&crate::suite::paced(2, 400.0, 0.3, 0.5, G711_PACKET, None));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            relay.join().unwrap(),
            0,
            "the bridge authenticated every packet"
        );
        assert!(o.sent >= 150, "{o:?}");
        assert_eq!(o.received, o.sent, "{o:?}");
        assert_eq!(o.srtp_errors, 0, "{o:?}");
        assert_eq!(o.streams_with_loss, 0);
    }
}
