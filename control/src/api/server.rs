//! The HTTP/1.1 server under the API: hyper on the API's own small tokio
//! runtime, with the limits a hostile client meets before it is
//! authenticated.
//!
//! The [`Limits`], with their defaults:
//! - Request heads: at most 16 KiB and 64 fields (hyper answers 431 and
//!   closes), read within 10 s (also the longest an idle keep-alive
//!   connection is kept).
//! - The bearer token is checked on the head alone: a request without it
//!   is answered 401 before a byte of its body is read, and hyper closes
//!   the connection rather than wait for a body nobody will read.
//! - Bodies: at most [`MAX_BODY`] (413), read within 10 s (408).
//! - At most 256 connections; one past it is closed as soon as it is
//!   accepted.
//! - A failed accept (EMFILE when the process is out of file descriptors)
//!   is logged and retried after [`ACCEPT_BACKOFF`]: the listener lives as
//!   long as the API.
//!
//! Handlers stay synchronous: everything that asks the backend runs on
//! the runtime's blocking pool (a publish may wait on the store), while
//! health checks and refusals are answered on the connection's own task.

use std::convert::Infallible;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::http::{ApiError, Reply, Request, MAX_BODY};
use super::{router, ApiBackend};

/// The limits every client meets, authenticated or not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest request head (request line and header fields).
    pub(crate) head_bytes: usize,
    /// Most header fields in one request.
    pub(crate) headers: usize,
    /// How long a client has to send a request head, counted from the
    /// connection's start or from the previous reply (keep-alive).
    pub(crate) head_timeout: Duration,
    /// How long an authenticated client has to send its body.
    pub(crate) body_timeout: Duration,
    /// Connections served at once; more are closed on accept.
    pub(crate) connections: usize,
}

impl Default for Limits {
    /// The CLI's and Kamailio's request heads are a few hundred bytes and
    /// arrive at once; an operator interface needs a few connections.
    fn default() -> Self {
        Self {
            head_bytes: 16 * 1024,
            headers: 64,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            connections: 256,
        }
    }
}

/// The pause after a failed accept: long enough not to spin while the
/// process is out of file descriptors, short enough that the API is back
/// soon after one is freed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What every connection shares.
pub(super) struct Shared {
    pub(super) token: Option<Arc<str>>,
    pub(super) backend: Arc<dyn ApiBackend>,
    pub(super) limits: Limits,
}

/// Accepts connections for as long as the runtime runs.
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.limits.connections));
    // Consecutive failed accepts: the first is a warning, the rest (ten a
    // second while they last) debug lines.
    let mut failures = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if failures > 0 {
                    tracing::info!(failures, "api: accepting connections again");
                    failures = 0;
                }
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "api: connection limit reached, closing");
                    continue;
                };
                tokio::spawn(connection(stream, shared.clone(), slot));
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "api: accept failed, retrying");
                } else {
                    tracing::debug!(error = %e, failures, "api: accept failed");
                }
                failures += 1;
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves one connection; its slot is freed when it ends.
async fn connection(stream: TcpStream, shared: Arc<Shared>, _slot: OwnedSemaphorePermit) {
    let limits = shared.limits;
    let service = service_fn(move |rq| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(rq, shared).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_header_size(limits.head_bytes)
        .max_headers(limits.headers)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "api: connection ended");
    }
}

/// One request to its HTTP response.
async fn respond(rq: hyper::Request<Incoming>, shared: Arc<Shared>) -> Response<Full<Bytes>> {
    let (head, body) = rq.into_parts();
    let url = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let authorization = head
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let req = Request {
        method: head.method.as_str(),
        url,
        authorization,
        body: &[],
    };
    let token = shared.token.as_deref();
    let reply = if router::needs_body(token, &req) {
        match read_body(body, shared.limits.body_timeout).await {
            Ok(body) => handle_blocking(&shared, &req, body).await,
            Err(e) => e.reply(),
        }
    } else {
        // Health, a refusal, or a bad path: the backend is not asked and
        // the body is never read.
        router::handle(&*shared.backend, token, &req)
    };
    if reply.status >= 500 {
        tracing::warn!(status = reply.status, url, body = %reply.body, "api: request failed");
    }
    to_response(reply)
}

/// Reads the body: at most [`MAX_BODY`] bytes within `timeout`.
async fn read_body(body: Incoming, timeout: Duration) -> Result<Vec<u8>, ApiError> {
    // A declared length over the limit is refused unread.
    if body
        .size_hint()
        .upper()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(ApiError::TooLarge);
    }
    let read = Limited::new(body, MAX_BODY).collect();
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(ApiError::TooLarge),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!("cannot read body: {e}"))),
        Err(_) => Err(ApiError::BodyTimeout),
    }
}

/// Runs the router on the blocking pool: handlers call the backend,
/// which may wait on the store.
async fn handle_blocking(shared: &Arc<Shared>, req: &Request<'_>, body: Vec<u8>) -> Reply {
    let shared = shared.clone();
    let (method, url) = (req.method.to_owned(), req.url.to_owned());
    let authorization = req.authorization.map(str::to_owned);
    let run = move || {
        let req = Request {
            method: &method,
            url: &url,
            authorization: authorization.as_deref(),
            body: &body,
        };
        // A bug in a handler or a backend must cost one request, not the
        // server.
        catch_unwind(AssertUnwindSafe(|| {
            router::handle(&*shared.backend, shared.token.as_deref(), &req)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(method = req.method, url = req.url, "api: handler panicked");
            ApiError::Internal.reply()
        })
    };
    tokio::task::spawn_blocking(run)
        .await
        .unwrap_or_else(|_| ApiError::Internal.reply())
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if reply.status == 401 {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
