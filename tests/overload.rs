//! Integration tests: what a real node does after it could not read its
//! sockets for a while (here: the whole process stopped with SIGSTOP while
//! a caller keeps sending), on both IO backends.
//!
//! The node drops, unforwarded, the datagrams that waited in its socket
//! queue longer than its staleness threshold (200 ms,
//! `rtpmesh_relay::backend::stale::STALE_AFTER_NS`) and counts them as
//! errors of the stream; everything sent after the resume goes through.
//! And `--backend auto` runs the backend it measured cheaper at start.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rtpmesh_ng::bencode::Value;

const LO: &str = "127.0.0.1";
/// The node's threshold (see the module doc).
const STALE_AFTER: Duration = Duration::from_millis(200);
/// How long the node is stopped.
const STOPPED: Duration = Duration::from_secs(1);
/// One packet every 10 ms: 100 queue up while the node is stopped, far
/// below a socket's default receive buffer, so the kernel drops none.
const PACE: Duration = Duration::from_millis(10);

/// Sends SIGCONT to a stopped node when dropped, so a failing assertion
/// never leaves it stopped (its SIGTERM would then wait for the grace).
struct Stopped(i32);

impl Stopped {
    fn stop(pid: u32) -> Self {
        let pid = i32::try_from(pid).unwrap();
        // SAFETY: kill(2) on our own live child's pid; no memory involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        // kill(2) returns before the signal has stopped every thread: a
        // worker may still forward a packet sent just after. Wait until
        // all of them are in state T.
        assert!(
            eventually(Duration::from_secs(5), || all_stopped(pid)),
            "the node's threads did not all stop"
        );
        Self(pid)
    }
}

/// Whether every thread of `pid` is stopped (state `T` in its stat).
fn all_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
            .unwrap_or(false)
    })
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as in `stop`.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

fn stream_a(ng: &mut Ng, call: &str) -> Value {
    let q = ng.query(call);
    at(&q, &["tags", "a", "medias"])
        .and_then(Value::as_list)
        .unwrap()[0]
        .get("streams")
        .and_then(Value::as_list)
        .unwrap()[0]
        .clone()
}

/// A call from party A to party B through the node; (A, B, the relay
/// address A sends to).
fn call(ng: &mut Ng, id: &str) -> (Party, Party, SocketAddr) {
    let a = Party::new(LO);
    let b = Party::new(LO);
    sdp_of(&ng.offer(id, "a", &audio_sdp(a.addr().ip(), a.port()), vec![]));
    let answer = sdp_of(&ng.answer(id, "a", "b", &audio_sdp(b.addr().ip(), b.port()), vec![]));
    (a, b, media_addr(&answer, 0))
}

fn stale_packets_after_a_stop_are_dropped_and_fresh_ones_flow(backend: &str) {
    // The socket path's queues: with the kernel fast path a latched stream
    // would keep flowing while the process is stopped.
    let mut node = Node::builder(backend).args(&["--fast-path", "off"]).start();
    let mut ng = node.client();
    let (a, b, to_a) = call(&mut ng, "stop");

    // B reads everything it is sent, on its own thread, so its own queue
    // never overflows.
    let got = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (got, done, sock) = (got.clone(), done.clone(), b.sock.try_clone().unwrap());
        std::thread::spawn(move || {
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    assert!(n >= 4);
                    got.lock()
                        .unwrap()
                        .insert(u16::from_be_bytes([buf[2], buf[3]]));
                }
            }
        })
    };

    // A sends, paced, before, during and after the stop; each packet's send
    // time is kept.
    let mut sent: Vec<Instant> = Vec::new();
    let send = |sent: &mut Vec<Instant>| {
        let seq = sent.len() as u16;
        sent.push(Instant::now());
        a.send(to_a, &rtp(seq, 0x5157, 160));
        std::thread::sleep(PACE);
    };
    for _ in 0..30 {
        send(&mut sent);
    }
    let stopped = Stopped::stop(node.pid());
    let stop_at = Instant::now();
    while stop_at.elapsed() < STOPPED {
        send(&mut sent);
    }
    let resume_at = Instant::now();
    drop(stopped);
    for _ in 0..50 {
        send(&mut sent);
    }
    let last = sent.len() as u16 - 1;
    assert!(
        eventually(Duration::from_secs(5), || got
            .lock()
            .unwrap()
            .contains(&last)),
        "{backend}: the last packet never arrived"
    );
    // Nothing else is on its way: the last one came after all the others.
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let got = got.lock().unwrap().clone();

    // The node read the queue right after the resume: a packet sent more
    // than the threshold (plus a margin for that read) before it was old.
    let margin = Duration::from_millis(100);
    let mut stale = 0;
    for (seq, at) in sent.iter().enumerate() {
        let seq = seq as u16;
        if *at < stop_at {
            assert!(got.contains(&seq), "{backend}: {seq} before the stop lost");
        } else if *at + STALE_AFTER + margin < resume_at {
            assert!(!got.contains(&seq), "{backend}: stale {seq} forwarded");
            stale += 1;
        } else if *at > resume_at {
            assert!(got.contains(&seq), "{backend}: fresh {seq} lost");
        }
    }
    assert!(stale > 50, "{backend}: only {stale} packets were stale");
    // Every datagram not forwarded was dropped as stale and counted: the
    // kernel dropped none, and stale datagrams are the stream's only errors.
    let s = stream_a(&mut ng, "stop");
    assert_eq!(int_at(&s, &["kernel drops"]), 0, "{backend}");
    let not_forwarded = (sent.len() - got.len()) as i64;
    assert_eq!(
        int_at(&s, &["stats", "errors"]),
        not_forwarded,
        "{backend}: sent {}, forwarded {}",
        sent.len(),
        got.len()
    );
    assert_eq!(
        int_at(&s, &["stats", "packets"]),
        got.len() as i64,
        "{backend}"
    );
    eprintln!(
        "{backend}: sent {}, stale dropped {not_forwarded} (at least {stale} by the clock), forwarded {}",
        sent.len(),
        got.len()
    );
    assert!(node.is_running());
}

/// `--backend auto` measures both backends at start, logs the figures and
/// its choice once, and its workers run the backend it chose.
#[test]
fn auto_backend_is_chosen_by_measurement_and_logged() {
    let node = Node::start("auto");
    let mut ng = node.client();
    let (a, b, to_a) = call(&mut ng, "auto");
    a.send(to_a, &rtp(1, 0xa070, 160));
    assert_eq!(b.recv().0, rtp(1, 0xa070, 160));
    let log = node.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("backend auto: calibrated"))
        .collect();
    assert_eq!(lines.len(), 1, "one calibration per process:\n{log}");
    let line = lines[0];
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .to_owned()
    };
    let ns = |name: &str| -> u64 {
        let v = field(name);
        let digits = v.trim_start_matches("Some(").trim_end_matches(')');
        digits
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a figure"))
    };
    assert!(ns("epoll_ns_per_packet") > 0, "{line}");
    assert!(ns("uring_ns_per_packet") > 0, "{line}");
    let chosen = field("chosen");
    let running = match chosen.as_str() {
        "Epoll" => "epoll",
        "Uring" => "io_uring",
        other => panic!("chose {other}"),
    };
    // Every worker runs what was chosen.
    let workers: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("worker started"))
        .collect();
    assert!(!workers.is_empty());
    for w in workers {
        assert!(w.contains(&format!("backend=\"{running}\"")), "{w}");
    }
}

both_backends!(stale_packets_after_a_stop_are_dropped_and_fresh_ones_flow);
