//! Integration tests: the operator HTTP API of a real controller under
//! hostile and unlucky clients.
//!
//! Each test starts `rtpmesh control --http 127.0.0.1:PORT --token T` and
//! attacks it over loopback: idle connections that announce a body they
//! never send (the API must not wait for bodies of callers without the
//! token), a request with 24 MB of headers (refused, without the memory),
//! and running the process out of file descriptors (the API must come
//! back once they are freed). After each, `/v1/health` and an authorised
//! route lookup must answer promptly. And the controller raises its
//! open-file limit at start, as nodes do.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::process::{Process, Spec};
use common::{eventually, free_port};

const TOKEN: &str = "api-limits-token";

/// How long one request may take while the API is under attack: far
/// longer than an answer takes, far shorter than the stall the attacks
/// used to cause (for ever).
const PROMPT: Duration = Duration::from_secs(5);

/// A controller with the API on a port of its own; its seed file is
/// removed on drop.
struct Controller {
    process: Process,
    http: SocketAddr,
    seed: PathBuf,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.seed);
    }
}

/// A free TCP port on loopback (bound and released at once).
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a controller with region `r1`; `wrap` is a shell prefix the
/// command runs under (`ulimit -n 64;`), empty for none.
fn start_controller(name: &str, wrap: &str) -> Controller {
    let ng = format!("127.0.0.1:{}", free_port());
    let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let seed = std::env::temp_dir().join(format!(
        "rtpmesh-api-limits-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&seed, "regions = [\"r1\"]\n").unwrap();
    let args = [
        "control",
        "--listen-ng",
        &ng,
        "--region",
        "r1",
        "--http",
        &http.to_string(),
        "--token",
        TOKEN,
        "--seed",
        seed.to_str().unwrap(),
    ];
    // sh sets the limit, then becomes the controller (`exec`): the pid
    // the test watches is the controller's.
    let spec = Spec::rtpmesh("controller");
    let spec = if wrap.is_empty() {
        spec.args(args)
    } else {
        Spec::new("controller", "sh")
            .env("RUST_LOG", "info")
            .args(["-c", &format!("{wrap} exec \"$0\" \"$@\"")])
            .arg(env!("CARGO_BIN_EXE_rtpmesh"))
            .args(args)
    };
    let mut process = spec.start();
    process.wait_ready(Duration::from_secs(10), "API health", || {
        get(http, "/v1/health", None, Duration::from_secs(1)).is_some_and(|(s, _)| s == 200)
    });
    Controller {
        process,
        http,
        seed,
    }
}

/// Sends `raw` and reads the reply until the server closes: the status
/// and body, or `None` when it closed without one or did not answer
/// within `wait`.
fn exchange(addr: SocketAddr, raw: &[u8], wait: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, wait).ok()?;
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(raw).ok()?;
    read_reply(&mut s)
}

/// Reads a reply until the server closes; `None` if there is none (closed
/// unanswered, reset, or nothing within the socket's read timeout).
fn read_reply(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&reply);
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_owned()))
}

/// A GET, with the token if given.
fn get(addr: SocketAddr, path: &str, token: Option<&str>, wait: Duration) -> Option<(u16, String)> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{auth}\r\n");
    exchange(addr, raw.as_bytes(), wait)
}

/// Health and an authorised route lookup both answer within [`PROMPT`].
fn assert_api_answers(c: &Controller, when: &str) {
    let t = Instant::now();
    let health = get(c.http, "/v1/health", None, PROMPT);
    assert_eq!(
        health.as_ref().map(|r| r.0),
        Some(200),
        "{when}: health after {:?}: {health:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let route = get(
        c.http,
        "/v1/route/explain?endpoint=bob&from=r1",
        Some(TOKEN),
        PROMPT,
    );
    assert_eq!(
        route.as_ref().map(|r| r.0),
        Some(200),
        "{when}: route lookup after {:?}: {route:?}",
        t.elapsed()
    );
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[test]
fn idle_connections_announcing_a_body_do_not_stall_the_api() {
    let c = start_controller("idle", "");
    // Twenty announce a body and send nothing; four more say chunked.
    let mut idle: Vec<TcpStream> = (0..24)
        .map(|i| {
            let framing = if i < 20 {
                "Content-Length: 100000"
            } else {
                "Transfer-Encoding: chunked"
            };
            let mut s = TcpStream::connect(c.http).unwrap();
            let head = format!("POST /v1/regions HTTP/1.1\r\nHost: t\r\n{framing}\r\n\r\n");
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    assert_api_answers(&c, "with 24 idle connections");
    // Each was refused on its head (or closed), never waited on.
    for (i, s) in idle.iter_mut().enumerate() {
        s.set_read_timeout(Some(PROMPT)).unwrap();
        let reply = read_reply(s);
        assert!(
            matches!(reply, Some((401, _))),
            "idle connection {i} got {reply:?}"
        );
    }
}

#[test]
fn a_request_with_24_mb_of_headers_is_refused_without_the_memory() {
    let c = start_controller("headers", "");
    assert_api_answers(&c, "before");
    let pid = c.process.pid();
    let before = rss_kib(pid);
    let mut s = TcpStream::connect(c.http).unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s.set_write_timeout(Some(PROMPT)).unwrap();
    let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
    let mut head = b"GET /v1/health HTTP/1.1\r\nHost: t\r\n".to_vec();
    while head.len() < 24 << 20 {
        head.extend_from_slice(line.as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    // The server stops reading long before the end: the write fails then.
    let written = s.write_all(&head).is_ok();
    let reply = read_reply(&mut s);
    assert!(
        matches!(reply, None | Some((431, _))),
        "24 MB of headers (all written: {written}) got {reply:?}"
    );
    let grown = rss_kib(pid).saturating_sub(before);
    eprintln!("RSS before {before} KiB, grown by {grown} KiB");
    assert!(grown < 8 * 1024, "RSS grew by {grown} KiB");
    assert_api_answers(&c, "after");
}

#[test]
fn the_api_comes_back_after_the_process_runs_out_of_file_descriptors() {
    const LIMIT: usize = 64;
    let mut c = start_controller("fds", &format!("ulimit -n {LIMIT};"));
    let pid = c.process.pid();
    // More connections than descriptors: the accepted ones fill the
    // table, the rest wait in the listen backlog, and accept fails.
    let conns: Vec<TcpStream> = (0..2 * LIMIT)
        .map(|_| TcpStream::connect(c.http).unwrap())
        .collect();
    assert!(
        eventually(PROMPT, || fds(pid) >= LIMIT),
        "the controller holds {} descriptors, not {LIMIT}",
        fds(pid)
    );
    drop(conns);
    // Backed-up connections are accepted, found closed and dropped; then
    // the API is itself again.
    let t = Instant::now();
    while get(c.http, "/v1/health", None, PROMPT).map(|r| r.0) != Some(200) {
        assert!(t.elapsed() < 2 * PROMPT, "the API did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_api_answers(&c, "after the descriptors were freed");
    assert!(c.process.is_running());
    // The attack did reach the limit.
    assert!(c.process.log_text().contains("accept failed"));
}

/// The soft and hard open-file limits of `pid`.
fn fd_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files in /proc/PID/limits");
    let mut words = line["Max open files".len()..].split_whitespace();
    let soft = words.next().unwrap().to_owned();
    let hard = words.next().unwrap().to_owned();
    (soft, hard)
}

#[test]
fn the_controller_raises_its_open_file_limit_as_nodes_do() {
    // A low soft limit under a higher hard one, as many systems start
    // services: each API connection holds a descriptor.
    let c = start_controller("rlimit", "ulimit -Sn 64;");
    let (soft, hard) = fd_limits(c.process.pid());
    assert_eq!(soft, hard, "the soft limit was left at {soft}");
}
