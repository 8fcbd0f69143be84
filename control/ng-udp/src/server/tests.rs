//! The loop on a loopback socket, with handlers that count what they do.

use std::sync::atomic::AtomicUsize;

use rtpmesh_ng::bencode::{self, dict};

use super::*;
use crate::pool::CallPool;

/// Answers `pong` with how many requests it has handled.
struct Counting(Arc<AtomicUsize>);

impl Handler for Counting {
    fn handle(&mut self, request: Request) {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let call = request
            .body
            .get("call-id")
            .cloned()
            .unwrap_or(Value::Int(0));
        request.reply.send(&dict([
            ("result", "pong".into()),
            ("n", Value::Int(n as i64)),
            ("call", call),
        ]));
    }
}

/// A server running `handler` on its own thread until the guard drops.
struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().map(|t| t.join());
    }
}

fn serve(mut handler: impl Handler + Send + 'static) -> Running {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = ServerConfig {
        tick: Duration::from_millis(20),
        ..ServerConfig::default()
    };
    let server = Server::new(socket, config).unwrap();
    let addr = server.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || server.run(&mut handler, &s));
    Running {
        addr,
        stop,
        thread: Some(thread),
    }
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    c
}

fn ask(c: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    c.send_to(datagram, to).unwrap();
    let mut buf = vec![0u8; 65536];
    c.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

fn body(reply: &[u8]) -> Value {
    let (_, b) = ng::split_datagram(reply).unwrap();
    bencode::decode(b).unwrap()
}

#[test]
fn a_retransmission_gets_the_cached_reply_and_is_not_handled_again() {
    let handled = Arc::new(AtomicUsize::new(0));
    let s = serve(Counting(handled.clone()));
    let c = client();
    let first = ask(&c, s.addr, b"k d7:call-id1:ce").unwrap();
    assert!(first.starts_with(b"k d"));
    for _ in 0..3 {
        assert_eq!(ask(&c, s.addr, b"k d7:call-id1:ce").unwrap(), first);
    }
    // Same cookie, other body: still the cached reply.
    assert_eq!(ask(&c, s.addr, b"k d7:call-id5:othere").unwrap(), first);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    let other = ask(&c, s.addr, b"j d7:call-id5:othere").unwrap();
    assert_eq!(body(&other).get("n"), Some(&Value::Int(2)));
}

#[test]
fn datagrams_without_cookie_or_with_a_long_one_get_no_reply() {
    let handled = Arc::new(AtomicUsize::new(0));
    let s = serve(Counting(handled.clone()));
    let c = client();
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert_eq!(ask(&c, s.addr, b"d7:command4:pinge"), None);
    assert_eq!(ask(&c, s.addr, b" d7:command4:pinge"), None);
    let mut long = vec![b'k'; MAX_COOKIE + 1];
    long.extend_from_slice(b" d7:command4:pinge");
    assert_eq!(ask(&c, s.addr, &long), None);
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(ask(&c, s.addr, &long[1..]).is_some());
}

#[test]
fn bad_bencode_gets_rtpengine_error_and_the_loop_serves_on() {
    let handled = Arc::new(AtomicUsize::new(0));
    let s = serve(Counting(handled.clone()));
    let c = client();
    let r = ask(&c, s.addr, b"k1 d7:command").unwrap();
    assert_eq!(
        body(&r).get("result").and_then(Value::as_str),
        Some("error")
    );
    let r = ask(&c, s.addr, b"k2 l4:pinge").unwrap();
    assert_eq!(
        body(&r).get("result").and_then(Value::as_str),
        Some("error")
    );
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    assert!(ask(&c, s.addr, b"k3 d7:command4:pinge").is_some());
}

#[test]
fn a_pool_answers_and_retransmissions_come_from_the_cache() {
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let pool = CallPool::spawn(4, 16, move |b: &Value| {
        let n = h.fetch_add(1, Ordering::SeqCst) + 1;
        dict([
            ("n", Value::Int(n as i64)),
            ("call", b.get("call-id").cloned().unwrap_or(Value::Int(0))),
        ])
    })
    .unwrap();
    let s = serve(pool);
    let c = client();
    let mut replies = Vec::new();
    for i in 0..20 {
        let d = format!("c{i} d7:call-id2:x{}e", i % 10);
        replies.push(ask(&c, s.addr, d.as_bytes()).unwrap());
    }
    for (i, r) in replies.iter().enumerate() {
        let d = format!("c{i} d7:call-id2:x{}e", i % 10);
        assert_eq!(&ask(&c, s.addr, d.as_bytes()).unwrap(), r);
    }
    assert_eq!(handled.load(Ordering::SeqCst), 20);
}

/// Holds every request unanswered until told, so a retransmission finds
/// it in progress.
struct Holding(Arc<Mutex<Vec<Request>>>, Arc<AtomicUsize>);

impl Handler for Holding {
    fn handle(&mut self, request: Request) {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.lock().unwrap().push(request);
    }
}

#[test]
fn a_retransmission_while_in_progress_is_dropped_and_a_dropped_request_forgotten() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let handled = Arc::new(AtomicUsize::new(0));
    let s = serve(Holding(held.clone(), handled.clone()));
    let c = client();
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert_eq!(ask(&c, s.addr, b"k d4:spam4:eggse"), None);
    assert_eq!(ask(&c, s.addr, b"k d4:spam4:eggse"), None);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    // Answered late: the retransmission gets that answer.
    let r = held.lock().unwrap().pop().unwrap();
    r.reply.send(&dict([("result", "ok".into())]));
    let mut buf = [0u8; 100];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(ask(&c, s.addr, b"k d4:spam4:eggse").unwrap(), &buf[..n]);
    // Dropped unanswered: the retransmission is handled afresh.
    assert_eq!(ask(&c, s.addr, b"j d4:spam4:eggse"), None);
    drop(held.lock().unwrap().pop().unwrap());
    assert_eq!(ask(&c, s.addr, b"j d4:spam4:eggse"), None);
    assert_eq!(handled.load(Ordering::SeqCst), 3);
}
