//! A controller's process: the store and its subscription that keep the
//! registry current, the seed, (with the embedded store) health checks of
//! the configured nodes, the sweep of calls that ended on their nodes, the
//! HTTP API, and the controller core behind the ng server loop.
//!
//! The loop's thread only reads datagrams and answers retransmissions:
//! requests go to a [`CallPool`], requests for one call to one thread in
//! order, so a cross-region offer waiting on a distant node holds up
//! nobody else's.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng_udp::cookies::CacheLimits;
use rtpmesh_ng_udp::pool::CallPool;
use rtpmesh_ng_udp::server::{Server, ServerConfig};

use crate::config::ControlConfig;
use crate::controller::seed::Seed;
use crate::controller::udp_link::UdpLink;
use crate::controller::{Controller, ControllerConfig, NodeLink};
use crate::error::StartError;
use crate::region::store::{unix_ms, Store};
use crate::region::{Change, Decision, NoRoute, Query, Registry};

type Ctl = Controller<UdpLink>;

/// Requests queued for each request thread; past it they are dropped (the
/// proxy retransmits).
const QUEUE: usize = 1024;

/// Runs the controller until `stop` is set.
pub fn run_controller(config: ControlConfig, stop: Arc<AtomicBool>) -> Result<(), StartError> {
    // Each API connection holds a descriptor: the usual soft limit of 1024 is low.
    let fds = super::raise_fd_limit();
    tracing::debug!(fds, "open-file limit");
    let socket = UdpSocket::bind(config.listen_ng).map_err(|source| StartError::BindNg {
        addr: config.listen_ng,
        source,
    })?;
    let threads = config.threads.max(1);
    let server = Server::new(
        socket,
        ServerConfig {
            cache: CacheLimits {
                ttl: config.cookie_ttl,
                // Every queued request and one in hand per thread.
                max_busy: threads * (QUEUE + 1),
                ..CacheLimits::default()
            },
            ..ServerConfig::default()
        },
    )?;
    let store = super::open_store(config.registry.as_deref())?;
    // Published before the controller takes its snapshot, so that the
    // seed is in its registry before the first request, not whenever the
    // subscription delivers it.
    let seeded_nodes = match &config.seed {
        Some(path) => publish_seed(&Seed::load(path)?, &*store),
        None => 0,
    };
    let ctl = start_controller(&config, store.clone())?;
    if config.registry.is_none() && seeded_nodes > 0 {
        spawn_health_checks(ctl.clone(), store.clone(), &config, stop.clone())?;
    }
    let _api = match config.http {
        Some(addr) => {
            let bridge = ApiBridge {
                ctl: ctl.clone(),
                store: store.clone(),
            };
            let api = crate::api::serve(addr, config.token.clone(), Arc::new(bridge))
                .map_err(|source| StartError::Api { addr, source })?;
            Some(api)
        }
        None => None,
    };
    spawn_sweep(ctl.clone(), &config, stop.clone())?;
    let mut pool = {
        let ctl = ctl.clone();
        CallPool::spawn(threads, QUEUE, move |body: &Value| {
            ctl.handle(body, unix_ms())
        })?
    };
    tracing::info!(ng = %config.listen_ng, registry = config.registry.as_deref().unwrap_or("embedded"), http = ?config.http, "rtpmesh controller ready");
    server.run(&mut pool, &stop);
    tracing::info!(calls = ctl.call_count(), "controller shutting down");
    Ok(())
}

/// The controller core with its journal recovered and the registry
/// current, kept so by a thread that applies the store's changes.
fn start_controller(config: &ControlConfig, store: Arc<dyn Store>) -> Result<Arc<Ctl>, StartError> {
    let ctl = Controller::new(
        UdpLink::new(config.node_timeout),
        ControllerConfig {
            region: config.region.clone(),
        },
    )
    // Its ng address names this controller in the journal: stable across
    // restarts, distinct between controllers sharing a registry.
    .with_journal(store.clone(), &config.listen_ng.to_string());
    let ctl = Arc::new(ctl);
    let recovered = ctl.recover();
    if recovered > 0 {
        tracing::info!(calls = recovered, "calls recovered from the journal");
    }
    // Subscribe before the snapshot, so nothing falls between them.
    let changes = store.subscribe()?;
    for ch in store.snapshot()? {
        ctl.apply(&ch);
    }
    let c = ctl.clone();
    std::thread::Builder::new()
        .name("registry".into())
        .spawn(move || {
            for ch in changes {
                c.apply(&ch);
            }
            tracing::warn!("registry subscription ended");
        })?;
    Ok(ctl)
}

/// Publishes a seed's changes; returns how many nodes it names.
fn publish_seed(seed: &Seed, store: &dyn Store) -> usize {
    for ch in seed.changes(unix_ms()) {
        if let Err(e) = store.publish(&ch) {
            tracing::warn!(error = %e, ?ch, "seed change refused");
        }
    }
    seed.nodes.len()
}

/// Calls that ended on their nodes without a delete (media timeout) are
/// forgotten here too, every `sweep_every` (30 s by default), once older
/// than `sweep_grace` (60 s).
fn spawn_sweep(
    ctl: Arc<Ctl>,
    config: &ControlConfig,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let (every, grace_ms) = (config.sweep_every, config.sweep_grace.as_millis() as u64);
    std::thread::Builder::new()
        .name("sweep".into())
        .spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= every {
                    last = Instant::now();
                    ctl.sweep(unix_ms(), grace_ms);
                }
            }
        })?;
    Ok(())
}

/// The HTTP API's view of the controller: its registry and selection,
/// and the store for changes (which come back to it like everyone's).
struct ApiBridge {
    ctl: Arc<Ctl>,
    store: Arc<dyn Store>,
}

impl crate::api::ApiBackend for ApiBridge {
    fn registry(&self) -> Registry {
        self.ctl.registry()
    }

    fn publish(&self, change: Change) -> Result<(), String> {
        self.store.publish(&change).map_err(|e| e.to_string())
    }

    fn explain(&self, query: &Query) -> Result<Decision, NoRoute> {
        self.ctl.explain(query, unix_ms())
    }

    fn route_for_call(&self, query: &Query, call_id: Option<&str>) -> Result<Decision, NoRoute> {
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
    let link = UdpLink::new(config.node_timeout);
    std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for n in ctl.registry().nodes().cloned().collect::<Vec<_>>() {
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
