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
//! hyper serves it (`server`) on a small tokio runtime the API owns, so
//! the rest of the process stays synchronous; the server's limits (head
//! size, body size, read timeouts, connections, the token checked before
//! a body is read) are listed there.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::region::{Change, Decision, NoRoute, Query, Registry};

#[cfg(any(test, feature = "fakes"))]
pub mod fake;
mod handlers;
mod http;
mod router;
mod server;
pub mod wire;

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

/// The runtime's threads: they accept, read and write; handlers that
/// ask the backend run on its blocking pool.
const WORKERS: usize = 2;

/// Handlers running at once on the blocking pool (a publish waits on the
/// store); more wait their turn.
const BLOCKING: usize = 4;

/// How long dropping the handle waits for handlers still running.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// A running API server. Dropping it stops the server: the listener and
/// every connection are closed.
pub struct ApiHandle {
    local_addr: SocketAddr,
    runtime: Option<Runtime>,
}

impl ApiHandle {
    /// The address it listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(STOP_WAIT);
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
    serve_with(addr, token, backend, server::Limits::default())
}

/// [`serve`] with other limits (tests make them small).
fn serve_with(
    addr: SocketAddr,
    token: Option<String>,
    backend: Arc<dyn ApiBackend>,
    limits: server::Limits,
) -> io::Result<ApiHandle> {
    if token.as_deref() == Some("") {
        // An empty token would make `Bearer ` the password.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the API token is empty",
        ));
    }
    let in_context = |e: io::Error| io::Error::new(e.kind(), format!("api on {addr}: {e}"));
    // Bound here, so that a taken port is an error of `serve`.
    let listener = std::net::TcpListener::bind(addr).map_err(in_context)?;
    listener.set_nonblocking(true).map_err(in_context)?;
    let local_addr = listener.local_addr().map_err(in_context)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(BLOCKING)
        .thread_name("api")
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(in_context)?
    };
    let shared = Arc::new(server::Shared {
        token: token.map(Into::into),
        backend,
        limits,
    });
    let auth = shared.token.is_some();
    runtime.spawn(server::accept_loop(listener, shared));
    tracing::info!(%local_addr, auth, "operator API listening");
    Ok(ApiHandle {
        local_addr,
        runtime: Some(runtime),
    })
}

#[cfg(test)]
pub(crate) mod tests;
