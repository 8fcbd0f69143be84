//! The controller's driver: the ng socket, a pool of request threads, the
//! store subscription that keeps the registry current, and (with the
//! embedded store) health checks of the configured nodes.
//!
//! Requests for one call always go to the same thread, in order; requests
//! for different calls run in parallel, so a cross-region offer waiting on
//! a distant node does not hold up anybody else's.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Controller, ControllerConfig, LinkError, NodeLink};
use crate::error::StartError;
use crate::region::store::{unix_ms, MemoryStore, RedisStore, Store};
use crate::region::{Change, Gateway, GatewayState, Latency, LatencySource, NodeInfo, Region};
use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng::ng;
use rtpmesh_ng_udp::client::{ClientError, NgClient};

/// What `rtpmesh control` needs.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// ng listener.
    pub listen_ng: SocketAddr,
    /// Default caller region (see [`ControllerConfig::region`]).
    pub region: Option<String>,
    /// `redis://HOST:PORT`; `None` for the embedded store.
    pub registry: Option<String>,
    /// Regions, nodes, gateways and latencies to publish at start.
    pub seed: Option<PathBuf>,
    /// HTTP API listener.
    pub http: Option<SocketAddr>,
    /// Token the HTTP API requires.
    pub token: Option<String>,
    /// Request threads.
    pub threads: usize,
    /// How long one try to reach a node waits (two tries are made).
    pub node_timeout: Duration,
    /// With the embedded store: how often configured nodes are checked.
    pub health_interval: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            listen_ng: "127.0.0.1:2222".parse().expect("valid"),
            region: None,
            registry: None,
            seed: None,
            http: None,
            token: None,
            threads: 8,
            node_timeout: Duration::from_millis(400),
            health_interval: Duration::from_secs(2),
        }
    }
}

/// A seed file: the static part of the registry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Region names.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Nodes (for the embedded store; with Redis nodes register
    /// themselves).
    #[serde(default)]
    pub nodes: Vec<SeedNode>,
    /// Gateways.
    #[serde(default)]
    pub gateways: Vec<SeedGateway>,
    /// Configured one-way latencies.
    #[serde(default)]
    pub latency: Vec<SeedLatency>,
    /// Endpoint routes (registered at start, with an expiry).
    #[serde(default)]
    pub routes: Vec<SeedRoute>,
}

/// An endpoint route in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRoute {
    /// Endpoint, e.g. `alice`.
    pub endpoint: String,
    /// Gateway id.
    pub gateway: String,
    /// Seconds until it lapses [default: one day].
    #[serde(default = "default_route_expiry")]
    pub expires_s: u64,
}

fn default_route_expiry() -> u64 {
    86_400
}

/// A node in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNode {
    /// Id.
    pub id: String,
    /// Region.
    pub region: String,
    /// ng address.
    pub ng: SocketAddr,
    /// First tunnel socket.
    pub tunnel: SocketAddr,
    /// Most calls (0: unlimited).
    #[serde(default)]
    pub capacity: u32,
}

/// A gateway in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedGateway {
    /// Id.
    pub id: String,
    /// Region.
    pub region: String,
    /// `host:port` for INVITEs.
    pub sip: String,
    /// Most calls (0: unlimited).
    #[serde(default)]
    pub capacity: u32,
}

/// A latency in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedLatency {
    /// One region.
    pub a: String,
    /// The other.
    pub b: String,
    /// One-way milliseconds.
    pub ms: u32,
}

impl Seed {
    /// Reads a seed file.
    pub fn load(path: &std::path::Path) -> Result<Self, StartError> {
        let text = std::fs::read_to_string(path).map_err(|source| StartError::ReadSeed {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| StartError::Seed {
            path: path.to_owned(),
            source,
        })
    }

    /// The changes that put the seed into a registry, in order.
    pub fn changes(&self, now_ms: u64) -> Vec<Change> {
        let mut out: Vec<Change> = self
            .regions
            .iter()
            .map(|r| Change::AddRegion(Region { name: r.clone() }))
            .collect();
        out.extend(self.nodes.iter().map(|n| {
            Change::RegisterNode(NodeInfo {
                id: n.id.clone(),
                region: n.region.clone(),
                ng: n.ng,
                tunnel: n.tunnel,
                workers: 1,
                capacity: n.capacity,
                load: 0,
                draining: false,
                // Not seen yet: the first health check makes it usable.
                last_seen_ms: 0,
            })
        }));
        out.extend(self.gateways.iter().map(|g| {
            Change::AddGateway(Gateway {
                id: g.id.clone(),
                region: g.region.clone(),
                sip: g.sip.clone(),
                capacity: g.capacity,
                load: 0,
                state: GatewayState::Up,
            })
        }));
        out.extend(self.latency.iter().map(|l| {
            Change::SetLatency(Latency {
                a: l.a.clone(),
                b: l.b.clone(),
                source: LatencySource::Configured,
                ms: l.ms,
            })
        }));
        out.extend(self.routes.iter().map(|r| {
            Change::RegisterRoute(crate::region::Route {
                endpoint: r.endpoint.clone(),
                gateway: r.gateway.clone(),
                expires_unix_ms: now_ms.saturating_add(r.expires_s.saturating_mul(1000)),
            })
        }));
        out
    }
}

/// Reaches nodes with ng over UDP.
pub struct UdpLink {
    timeout: Duration,
}

impl NodeLink for UdpLink {
    fn request(&self, node: &NodeInfo, body: &Value) -> Result<Value, LinkError> {
        let failed = |reason: String| LinkError::Failed {
            node: node.id.clone(),
            reason,
        };
        let mut c = NgClient::new(node.ng)
            .and_then(|c| c.with_retries(self.timeout, 2))
            .map_err(|e| failed(e.to_string()))?;
        c.request(body).map_err(|e| match e {
            ClientError::Timeout(_) => LinkError::Timeout(node.id.clone()),
            e => failed(e.to_string()),
        })
    }
}

/// Opens the store a config names.
pub fn open_store(registry: Option<&str>) -> Result<Arc<dyn Store>, StartError> {
    Ok(match registry {
        None | Some("") | Some("memory") => Arc::new(MemoryStore::new()),
        Some(url) => {
            // A node or controller may start before the registry is up
            // (boot order, a Redis restart): keep trying for a while.
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut wait = Duration::from_millis(100);
            loop {
                match RedisStore::connect(url) {
                    Ok(s) => break Arc::new(s),
                    Err(e) if Instant::now() < deadline => {
                        tracing::warn!(%url, error = %e, "registry not reachable yet, retrying");
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    Err(e) => {
                        return Err(StartError::Registry {
                            url: url.to_owned(),
                            source: e,
                        })
                    }
                }
            }
        }
    })
}

type Ctl = Controller<UdpLink>;

/// Cached replies by cookie, and cookies being worked on.
#[derive(Default)]
struct Cookies {
    done: HashMap<Vec<u8>, (Instant, Vec<u8>)>,
    busy: std::collections::HashSet<Vec<u8>>,
}

const COOKIE_TTL: Duration = Duration::from_secs(30);

/// How often calls that ended on their nodes are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Calls younger than this are not swept (their answer may be pending).
const SWEEP_GRACE_MS: u64 = 60_000;

/// Runs the controller until `stop` is set.
pub fn run(config: ControlConfig, stop: Arc<AtomicBool>) -> Result<(), StartError> {
    let socket = UdpSocket::bind(config.listen_ng).map_err(|source| StartError::BindNg {
        addr: config.listen_ng,
        source,
    })?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let store = open_store(config.registry.as_deref())?;
    let ctl: Arc<Ctl> = Arc::new(
        Controller::new(
            UdpLink {
                timeout: config.node_timeout,
            },
            ControllerConfig {
                region: config.region.clone(),
            },
        )
        // Its ng address names this controller in the journal: stable across
        // restarts, distinct between controllers sharing a registry.
        .with_journal(store.clone(), &config.listen_ng.to_string()),
    );
    let recovered = ctl.recover();
    if recovered > 0 {
        tracing::info!(calls = recovered, "calls recovered from the journal");
    }
    // Subscribe before the snapshot, so nothing falls between them.
    let changes = store.subscribe()?;
    for ch in store.snapshot()? {
        ctl.apply(&ch);
    }
    {
        let ctl = ctl.clone();
        std::thread::Builder::new()
            .name("registry".into())
            .spawn(move || {
                for ch in changes {
                    ctl.apply(&ch);
                }
                tracing::warn!("registry subscription ended");
            })?;
    }
    let seeded_nodes = match &config.seed {
        Some(path) => {
            let seed = Seed::load(path)?;
            for ch in seed.changes(unix_ms()) {
                if let Err(e) = store.publish(&ch) {
                    tracing::warn!(error = %e, ?ch, "seed change refused");
                }
            }
            seed.nodes.len()
        }
        None => 0,
    };
    if config.registry.is_none() && seeded_nodes > 0 {
        spawn_health_checks(ctl.clone(), store.clone(), &config, stop.clone())?;
    }
    let _api = match config.http {
        Some(addr) => Some(
            crate::api::serve(
                addr,
                config.token.clone(),
                Arc::new(ApiBridge {
                    ctl: ctl.clone(),
                    store: store.clone(),
                }),
            )
            .map_err(|source| StartError::Api { addr, source })?,
        ),
        None => None,
    };

    {
        // Calls that ended on their nodes without a delete (media
        // timeout) are forgotten here too.
        let (ctl, stop) = (ctl.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sweep".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= SWEEP_EVERY {
                        last = Instant::now();
                        ctl.sweep(unix_ms(), SWEEP_GRACE_MS);
                    }
                }
            })?;
    }
    let socket = Arc::new(socket);
    let cookies = Arc::new(Mutex::new(Cookies::default()));
    let mut queues = Vec::new();
    for i in 0..config.threads.max(1) {
        let (tx, rx) = crossbeam_channel::bounded::<(Vec<u8>, Value, SocketAddr)>(1024);
        let (ctl, socket, cookies) = (ctl.clone(), socket.clone(), cookies.clone());
        std::thread::Builder::new()
            .name(format!("ng-{i}"))
            .spawn(move || {
                for (cookie, body, from) in rx {
                    let reply = ctl.handle(&body, unix_ms());
                    let out = ng::encode_reply(&cookie, &reply);
                    {
                        let mut c = cookies.lock().unwrap_or_else(|p| p.into_inner());
                        c.busy.remove(&cookie);
                        c.done.insert(cookie, (Instant::now(), out.clone()));
                    }
                    if let Err(e) = socket.send_to(&out, from) {
                        tracing::warn!(%from, error = %e, "cannot send ng reply");
                    }
                }
            })?;
        queues.push(tx);
    }
    tracing::info!(ng = %config.listen_ng, registry = config.registry.as_deref().unwrap_or("embedded"), http = ?config.http, "rtpmesh controller ready");

    let mut buf = vec![0u8; 65536];
    let mut last_prune = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!(error = %e, "ng receive error");
                continue;
            }
        };
        if last_prune.elapsed() > Duration::from_secs(1) {
            last_prune = Instant::now();
            let mut c = cookies.lock().unwrap_or_else(|p| p.into_inner());
            c.done.retain(|_, (t, _)| t.elapsed() < COOKIE_TTL);
        }
        let (cookie, body) = match ng::split_datagram(&buf[..n]) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(%from, error = %e, "ng datagram without cookie ignored");
                continue;
            }
        };
        {
            let mut c = cookies.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, reply)) = c.done.get(cookie) {
                let _ = socket.send_to(reply, from);
                continue;
            }
            // A retransmission of a request still being worked on: the
            // reply goes out when it is done.
            if !c.busy.insert(cookie.to_vec()) {
                continue;
            }
        }
        let value = match ng::decode_body(body) {
            Ok(v) => v,
            Err(e) => {
                let out = ng::encode_reply(cookie, &ng::error(&e.reason()));
                cookies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .busy
                    .remove(cookie);
                let _ = socket.send_to(&out, from);
                continue;
            }
        };
        let mut h = DefaultHasher::new();
        value.get("call-id").and_then(Value::as_bytes).hash(&mut h);
        let q = &queues[(h.finish() as usize) % queues.len()];
        if q.try_send((cookie.to_vec(), value, from)).is_err() {
            tracing::warn!(%from, "controller overloaded: request dropped (the proxy retransmits)");
            cookies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .busy
                .remove(cookie);
        }
    }
    tracing::info!(calls = ctl.call_count(), "controller shutting down");
    Ok(())
}

/// The HTTP API's view of the controller: its registry and selection,
/// and the store for changes (which come back to it like everyone's).
struct ApiBridge {
    ctl: Arc<Ctl>,
    store: Arc<dyn Store>,
}

impl crate::api::ApiBackend for ApiBridge {
    fn registry(&self) -> crate::region::Registry {
        self.ctl.registry()
    }

    fn publish(&self, change: Change) -> Result<(), String> {
        self.store.publish(&change).map_err(|e| e.to_string())
    }

    fn explain(
        &self,
        query: &crate::region::Query,
    ) -> Result<crate::region::Decision, crate::region::NoRoute> {
        self.ctl.explain(query, unix_ms())
    }

    fn route_for_call(
        &self,
        query: &crate::region::Query,
        call_id: Option<&str>,
    ) -> Result<crate::region::Decision, crate::region::NoRoute> {
        let now = unix_ms();
        let d = self.ctl.explain(query, now)?;
        if let Some(c) = call_id {
            self.ctl.pin(c, d.clone(), now);
        }
        Ok(d)
    }

    fn now_ms(&self) -> u64 {
        unix_ms()
    }
}

/// With the embedded store nobody else reports on nodes: ask each
/// configured node for its statistics and publish a heartbeat for it
/// when it answers.
fn spawn_health_checks(
    ctl: Arc<Ctl>,
    store: Arc<dyn Store>,
    config: &ControlConfig,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let every = config.health_interval;
    let timeout = config.node_timeout;
    std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for n in ctl.registry().nodes().cloned().collect::<Vec<_>>() {
                    let link = UdpLink { timeout };
                    let body = dict([("command", "statistics".into())]);
                    if let Ok(r) = link.request(&n, &body) {
                        let load = r
                            .get("statistics")
                            .and_then(|s| s.get("currentstatistics"))
                            .and_then(|s| s.get("sessionsown"))
                            .and_then(Value::as_int)
                            .unwrap_or(0) as u32;
                        let _ = store.publish(&Change::Heartbeat {
                            node: n.id.clone(),
                            load,
                            capacity: n.capacity,
                            draining: n.draining,
                            at_ms: unix_ms(),
                        });
                    }
                }
                std::thread::sleep(every);
            }
        })?;
    Ok(())
}
