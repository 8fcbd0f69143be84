//! A tiny HTTP/1.1 server for a test page: it serves fixed pages, holds
//! values the test puts for the page to fetch (`GET` waits until one is
//! there), and records what the page POSTs, which the test awaits.
//!
//! One thread accepts; one short-lived thread per connection answers a
//! single request and closes (`Connection: close`), so nothing here needs
//! an HTTP crate. Bound to loopback only.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a `GET` of a value the test has not put yet is held before
/// it is answered `204 No Content` (the page asks again).
const HOLD: Duration = Duration::from_secs(5);

/// The largest request body accepted (an SDP or a stats summary).
const MAX_BODY: usize = 1 << 20;

#[derive(Default)]
struct State {
    pages: HashMap<String, (&'static str, Vec<u8>)>,
    values: HashMap<String, String>,
    posts: HashMap<String, Vec<String>>,
    /// Every request, in order: `METHOD PATH`.
    requests: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

/// The running server; stopped on drop.
pub struct PageServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl PageServer {
    /// Starts a server on an ephemeral loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(&s, conn));
            }
        });
        Self {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The URL of `path_and_query` on this server.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// Serves `body` as `content_type` at `path` (any query string).
    pub fn page(&self, path: &str, content_type: &'static str, body: impl Into<Vec<u8>>) {
        let mut st = self.shared.state.lock().unwrap();
        st.pages
            .insert(path.to_owned(), (content_type, body.into()));
    }

    /// Makes `GET path` answer `value` (as text) from now on, and wakes
    /// a request already waiting for it.
    pub fn put(&self, path: &str, value: &str) {
        let mut st = self.shared.state.lock().unwrap();
        st.values.insert(path.to_owned(), value.to_owned());
        self.shared.changed.notify_all();
    }

    /// Everything POSTed to `path` so far, oldest first.
    pub fn posts(&self, path: &str) -> Vec<String> {
        let st = self.shared.state.lock().unwrap();
        st.posts.get(path).cloned().unwrap_or_default()
    }

    /// The latest body POSTed to `path`.
    pub fn last_post(&self, path: &str) -> Option<String> {
        self.posts(path).pop()
    }

    /// Every request so far (`METHOD PATH`), for failure messages.
    pub fn requests(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Waits until `f`, shown everything POSTed so far (path -> bodies,
    /// oldest first), returns `Some`; `None` when `limit` passes first.
    /// `f` runs again after every POST.
    pub fn wait<T>(
        &self,
        limit: Duration,
        mut f: impl FnMut(&HashMap<String, Vec<String>>) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        let mut st = self.shared.state.lock().unwrap();
        loop {
            if let Some(t) = f(&st.posts) {
                return Some(t);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            st = self.shared.changed.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Waits for the first body POSTed to `path`.
    pub fn wait_post(&self, path: &str, limit: Duration) -> Option<String> {
        self.wait(limit, |posts| posts.get(path)?.first().cloned())
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A parsed request: method, path (without query), body.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(conn: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let target = words.next()?;
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    if length > MAX_BODY {
        return None;
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some(Request { method, path, body })
}

fn respond(mut conn: &TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
}

fn serve(shared: &Shared, conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_request(&conn) else {
        return;
    };
    let mut st = shared.state.lock().unwrap();
    st.requests.push(format!("{} {}", req.method, req.path));
    if req.method == "POST" {
        let body = String::from_utf8_lossy(&req.body).into_owned();
        st.posts.entry(req.path).or_default().push(body);
        shared.changed.notify_all();
        drop(st);
        return respond(&conn, "200 OK", "text/plain", b"");
    }
    if let Some((ctype, body)) = st.pages.get(&req.path).cloned() {
        drop(st);
        return respond(&conn, "200 OK", ctype, &body);
    }
    let deadline = Instant::now() + HOLD;
    loop {
        if let Some(v) = st.values.get(&req.path).cloned() {
            drop(st);
            return respond(&conn, "200 OK", "text/plain", v.as_bytes());
        }
        let left = deadline.checked_duration_since(Instant::now());
        match left {
            Some(left) if !shared.stop.load(Ordering::SeqCst) => {
                st = shared.changed.wait_timeout(st, left).unwrap().0;
            }
            _ => break,
        }
    }
    drop(st);
    respond(&conn, "204 No Content", "text/plain", b"");
}
