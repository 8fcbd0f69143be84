//! The one ng server loop, shared by the media node and the controller.
//!
//! # Run loop
//! [`Server::run`] owns the ng socket and the [`CookieCache`], and blocks
//! its thread until `stop` is set. For each datagram it splits the cookie
//! from the body (no cookie, or one over [`MAX_COOKIE`]: dropped, as
//! rtpengine drops the first), answers a retransmission from the cache (or
//! drops it while the original is still being worked on), answers a body
//! that is not a bencoded dictionary with rtpengine's error reply, and hands
//! everything else to the [`Handler`] as a [`Request`]. The handler answers
//! through [`Request::reply`], now or later and from any thread: the reply
//! is encoded with the cookie, cached and sent. A request dropped unanswered
//! (overload, a panic) is forgotten, so the proxy's retransmission is
//! handled afresh. After each datagram, and at least every
//! [`ServerConfig::tick`] when none comes, the loop calls
//! [`Handler::tick`]. Nothing here knows a node from a controller: a node
//! answers inline on the loop's thread, a controller passes requests to a
//! [`CallPool`](crate::pool::CallPool). The cache is behind a mutex, held
//! only to look up or store one reply, never while a request is handled.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rtpmesh_ng::bencode::Value;
use rtpmesh_ng::ng;

use crate::cookies::{CacheLimits, CookieCache, Lookup, MAX_COOKIE};

// The node core sizes its replies for the longest cookie accepted here.
const _: () = assert!(MAX_COOKIE == ng::MAX_COOKIE);

/// What handles the requests the loop takes off the socket.
pub trait Handler {
    /// Handles one request; answers it through [`Request::reply`], now or
    /// later from another thread, or drops it unanswered.
    fn handle(&mut self, request: Request);

    /// Called after each datagram and at least every
    /// [`ServerConfig::tick`]: timeouts, worker events, bookkeeping.
    fn tick(&mut self) {}
}

/// One request: its decoded body and the way back to its sender.
pub struct Request {
    /// The bencoded dictionary after the cookie.
    pub body: Value,
    /// Answers it (once).
    pub reply: Reply,
}

/// The way back to a request's sender. Dropped unanswered, the request is
/// forgotten and its retransmission handled afresh.
pub struct Reply {
    cookie: Box<[u8]>,
    to: SocketAddr,
    shared: Arc<Shared>,
    sent: bool,
}

impl Reply {
    /// Where the request came from.
    pub fn peer(&self) -> SocketAddr {
        self.to
    }

    /// Sends `body` with the request's cookie, and caches it for the
    /// request's retransmissions.
    pub fn send(mut self, body: &Value) {
        let mut out = ng::encode_reply(&self.cookie, body);
        if out.len() > ng::MAX_DATAGRAM {
            // It could never be sent: say so rather than stay silent (a
            // node core checks its own replies and undoes the request).
            tracing::warn!(to = %self.to, size = out.len(), "ng reply too large for a datagram");
            out = ng::encode_reply(&self.cookie, &ng::error(ng::reason::REPLY_TOO_LARGE));
        }
        let out: Arc<[u8]> = out.into();
        let now = self.shared.now_ms();
        self.shared.cache().finish(&self.cookie, out.clone(), now);
        self.sent = true;
        if let Err(e) = self.shared.socket.send_to(&out, self.to) {
            tracing::warn!(to = %self.to, error = %e, "cannot send ng reply");
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.sent {
            self.shared.cache().abandon(&self.cookie);
        }
    }
}

/// Settings of a [`Server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// The cookie cache's bounds.
    pub cache: CacheLimits,
    /// Longest wait between [`Handler::tick`]s.
    pub tick: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            cache: CacheLimits::default(),
            tick: Duration::from_millis(200),
        }
    }
}

/// What the loop and the replies (on any thread) share.
struct Shared {
    socket: UdpSocket,
    cache: Mutex<CookieCache>,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The cache; a thread that panicked holding it left it consistent
    /// (every mutation completes before it can panic), so poison is
    /// ignored.
    fn cache(&self) -> MutexGuard<'_, CookieCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An ng server on a bound UDP socket.
pub struct Server {
    shared: Arc<Shared>,
    tick: Duration,
}

impl Server {
    /// A server on `socket`.
    pub fn new(socket: UdpSocket, config: ServerConfig) -> io::Result<Self> {
        socket.set_read_timeout(Some(config.tick))?;
        Ok(Self {
            shared: Arc::new(Shared {
                socket,
                cache: Mutex::new(CookieCache::new(config.cache)),
                epoch: Instant::now(),
            }),
            tick: config.tick,
        })
    }

    /// The address it serves.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.local_addr()
    }

    /// Serves until `stop` is set; see the module doc.
    pub fn run<H: Handler + ?Sized>(&self, handler: &mut H, stop: &AtomicBool) {
        let mut buf = vec![0u8; 65536];
        let mut last_tick = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match self.shared.socket.recv_from(&mut buf) {
                Ok((n, from)) => self.on_datagram(&buf[..n], from, handler),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                // An ICMP error from an earlier reply's destination: not
                // ours to stop for.
                Err(e) => tracing::debug!(error = %e, "ng receive error"),
            }
            handler.tick();
            if last_tick.elapsed() >= self.tick {
                last_tick = Instant::now();
                let now = self.shared.now_ms();
                self.shared.cache().expire(now);
            }
        }
    }

    fn on_datagram<H: Handler + ?Sized>(&self, datagram: &[u8], from: SocketAddr, handler: &mut H) {
        let (cookie, body) = match ng::split_datagram(datagram) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(%from, error = %e, "ng datagram without cookie ignored");
                return;
            }
        };
        let now = self.shared.now_ms();
        let lookup = self.shared.cache().begin(cookie, now);
        match lookup {
            Lookup::New => {}
            Lookup::Cached(reply) => {
                tracing::debug!(%from, cookie = %String::from_utf8_lossy(cookie), "retransmission: cached reply");
                if let Err(e) = self.shared.socket.send_to(&reply, from) {
                    tracing::warn!(%from, error = %e, "cannot send ng reply");
                }
                return;
            }
            Lookup::InProgress => return,
            Lookup::Overloaded => {
                tracing::warn!(%from, "too many ng requests in progress: dropped (the proxy retransmits)");
                return;
            }
            // A flood of them must not flood the log.
            Lookup::TooLong => {
                tracing::debug!(%from, len = cookie.len(), max = MAX_COOKIE, "ng cookie too long: ignored");
                return;
            }
        }
        let reply = Reply {
            cookie: cookie.into(),
            to: from,
            shared: self.shared.clone(),
            sent: false,
        };
        match ng::decode_body(body) {
            Ok(body) => handler.handle(Request { body, reply }),
            Err(e) => {
                tracing::warn!(%from, error = %e, "malformed ng message");
                reply.send(&ng::error(&e.reason()));
            }
        }
    }
}

#[cfg(test)]
mod tests;
