//! The operator HTTP JSON API: regions, nodes, gateways, routes, latency
//! and route explanations, over HTTP/1.1 on threads of its own; and, for
//! SIP proxies, the gateway to send a call's INVITE to (`/v1/route/sip`).
//!
//! It reads and changes the registry only through an [`ApiBackend`], so it
//! runs, and is tested, without the store or the media plane. Mutations
//! are checked against a copy of the registry before they are published
//! (see `handlers`), so a change the registry would refuse never reaches
//! the store. The endpoints are listed in `control/API.md`.
//!
//! [`tiny_http`] serves it: a small, synchronous server, which suits an
//! operator interface that answers a few requests a minute and should not
//! bring an async runtime into a process whose hot path is its own event
//! loops.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Response, Server};

use crate::region::{Change, Decision, NoRoute, Query, Registry};

#[cfg(any(test, feature = "fakes"))]
pub mod fake;
mod handlers;
mod http;
mod router;
pub mod wire;

use http::{ApiError, MAX_BODY};

/// What the API needs from the rest of the process.
pub trait ApiBackend: Send + Sync + 'static {
    /// The registry as this process sees it now.
    fn registry(&self) -> Registry;
    /// Publishes a change to the store (it reaches every process, this one
    /// included).
    fn publish(&self, change: Change) -> Result<(), String>;
    /// Route selection now, with reasons.
    fn explain(&self, query: &Query) -> Result<Decision, NoRoute>;
    /// Route selection now for a call about to be offered; with a call id
    /// the decision is pinned, so that the call's ng offer uses exactly
    /// these nodes and gateway (`GET /v1/route/sip`).
    fn route_for_call(&self, query: &Query, call_id: Option<&str>) -> Result<Decision, NoRoute>;
    /// Wall clock, Unix ms (tests pass a fixed one).
    fn now_ms(&self) -> u64;
}

/// Threads taking requests off the server's queue: two, so one slow
/// publish (a store round trip) does not hold up a health check.
const WORKERS: usize = 2;

/// A running API server. Dropping it stops the server and waits for its
/// threads.
pub struct ApiHandle {
    server: Arc<Server>,
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl ApiHandle {
    /// The address it listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Each unblock releases one waiting worker; they queue, so a worker
        // busy with a request now still finds its own afterwards.
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for ApiHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Starts the API on `addr`. With a `token`, every endpoint but
/// `/v1/health` asks for `Authorization: Bearer <token>`.
pub fn serve(
    addr: SocketAddr,
    token: Option<String>,
    backend: Arc<dyn ApiBackend>,
) -> io::Result<ApiHandle> {
    if token.as_deref() == Some("") {
        // An empty token would make `Bearer ` the password.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the API token is empty",
        ));
    }
    let server = Server::http(addr).map_err(|e| io::Error::other(format!("api on {addr}: {e}")))?;
    let local_addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("api server has no IP address"))?;
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let token: Option<Arc<str>> = token.map(Into::into);
    let workers = (0..WORKERS)
        .map(|i| {
            let (server, stop, token, backend) =
                (server.clone(), stop.clone(), token.clone(), backend.clone());
            std::thread::Builder::new()
                .name(format!("api-{i}"))
                .spawn(move || work(&server, &stop, token.as_deref(), &*backend))
        })
        .collect::<io::Result<Vec<_>>>()?;
    tracing::info!(%local_addr, auth = token.is_some(), "operator API listening");
    Ok(ApiHandle {
        server,
        local_addr,
        stop,
        workers,
    })
}

/// One worker: take a request, answer it, until stopped.
fn work(server: &Server, stop: &AtomicBool, token: Option<&str>, backend: &dyn ApiBackend) {
    while !stop.load(Ordering::SeqCst) {
        match server.recv() {
            Ok(rq) => answer(rq, token, backend),
            // An unblock meant for stopping, or a failed accept: the loop
            // condition tells which.
            Err(e) => tracing::debug!(error = %e, "api: recv"),
        }
    }
}

/// Reads the body (at most [`MAX_BODY`]).
fn read_body(rq: &mut tiny_http::Request) -> Result<Vec<u8>, ApiError> {
    if rq.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(ApiError::TooLarge);
    }
    let mut body = Vec::new();
    // One byte past the limit tells a chunked body that is too long from
    // one that is exactly at it.
    rq.as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::BadRequest(format!("cannot read body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge);
    }
    Ok(body)
}

fn answer(mut rq: tiny_http::Request, token: Option<&str>, backend: &dyn ApiBackend) {
    let reply = match read_body(&mut rq) {
        Ok(body) => {
            let authorization = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.as_str());
            let req = http::Request {
                method: rq.method().as_str(),
                url: rq.url(),
                authorization,
                body: &body,
            };
            // A bug in a handler or a backend must cost one request, not
            // the server thread.
            catch_unwind(AssertUnwindSafe(|| router::handle(backend, token, &req))).unwrap_or_else(
                |_| {
                    tracing::error!(method = req.method, url = req.url, "api: handler panicked");
                    ApiError::Internal.reply()
                },
            )
        }
        Err(e) => e.reply(),
    };
    if reply.status >= 500 {
        tracing::warn!(status = reply.status, url = rq.url(), body = %reply.body, "api: request failed");
    }
    let mut response = Response::from_string(reply.body).with_status_code(reply.status);
    if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], reply.content_type.as_bytes()) {
        response = response.with_header(h);
    }
    if reply.status == 401 {
        if let Ok(h) = Header::from_bytes(&b"WWW-Authenticate"[..], &b"Bearer"[..]) {
            response = response.with_header(h);
        }
    }
    if let Err(e) = rq.respond(response) {
        tracing::debug!(error = %e, "api: cannot send reply");
    }
}

#[cfg(test)]
pub(crate) mod tests;
