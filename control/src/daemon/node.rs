//! A media node's process: the workers, the node core behind the ng
//! server loop, and with a registry its presence and call records.
//!
//! Everything the core does runs on the thread that calls [`run_node`]:
//! requests are answered inline, worker events and timeouts are applied
//! between datagrams. Call records go to the store on their own thread
//! through a bounded queue, so a slow store never stalls the node.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use rtpmesh_ng_udp::cookies::CacheLimits;
use rtpmesh_ng_udp::server::{Handler, Request, Server, ServerConfig};
use rtpmesh_relay::clock::now_ms;

use crate::config::Config;
use crate::error::StartError;
use crate::node::persist::CallRecord;
use crate::node::{Node, NodeConfig, Now};
use crate::plane::WorkerPlane;
use crate::presence::{Presence, Report};
use crate::region::store::Store;
use crate::region::NodeInfo;

/// How often timeouts and delete delays are checked.
const TICK: Duration = Duration::from_millis(200);

/// Call records waiting for the store; past it a record is skipped.
const RECORD_QUEUE: usize = 65536;

fn now() -> Now {
    Now {
        ms: now_ms(),
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// A call's record to write, or `None` to delete it.
type Record = (String, Option<CallRecord>);

/// The node core as the ng loop's handler: answers inline, and between
/// datagrams applies worker events, timeouts and records.
struct NodeHandler {
    node: Node,
    plane: WorkerPlane,
    /// Current calls, for the presence's heartbeats.
    load: Arc<AtomicU32>,
    records: Option<Sender<Record>>,
    last_tick: Instant,
}

impl NodeHandler {
    fn apply_events(&mut self) {
        for ev in self.plane.events() {
            self.node.on_event(&ev);
        }
    }
}

impl Handler for NodeHandler {
    fn handle(&mut self, request: Request) {
        // A latch reported before the request is applied before it.
        self.apply_events();
        let reply = self.node.handle_body(&request.body, now(), &mut self.plane);
        request.reply.send(&reply);
    }

    fn tick(&mut self) {
        self.apply_events();
        if self.last_tick.elapsed() >= TICK {
            self.last_tick = Instant::now();
            self.node.tick(now(), &mut self.plane);
        }
        self.load
            .store(self.node.call_count() as u32, Ordering::Relaxed);
        if let Some(tx) = &self.records {
            for change in self.node.take_changes() {
                // The store is slower than the packet path: a full queue
                // costs a stale record, never a stalled node.
                if tx.try_send(change).is_err() {
                    tracing::warn!("call record queue full: a record was not written");
                }
            }
        }
    }
}

/// Takes back the calls the store holds for this node.
fn restore_calls(store: &dyn Store, id: &str, node: &mut Node, plane: &mut WorkerPlane) {
    let records = match store.calls(id) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read call records: no calls restored");
            return;
        }
    };
    for (call, json) in records {
        let restored = serde_json::from_str::<CallRecord>(&json)
            .map_err(|e| e.to_string())
            .and_then(|r| node.restore(&r, now(), plane).map_err(|e| e.to_string()));
        match restored {
            Ok(()) => tracing::info!(%call, "call restored"),
            Err(e) => {
                tracing::warn!(%call, error = %e, "call record not restored: dropped");
                let _ = store.delete_call(id, &call);
            }
        }
    }
}

/// Writes call records on their own thread, in order.
fn spawn_records(
    store: Arc<dyn Store>,
    node: String,
) -> std::io::Result<(Sender<Record>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded::<Record>(RECORD_QUEUE);
    let t = std::thread::Builder::new()
        .name("call-records".into())
        .spawn(move || {
            for (call, record) in rx {
                let done = match record {
                    Some(r) => match serde_json::to_string(&r) {
                        Ok(j) => store.put_call(&node, &call, &j),
                        Err(e) => {
                            tracing::error!(%call, error = %e, "call record not serialisable");
                            continue;
                        }
                    },
                    None => store.delete_call(&node, &call),
                };
                if let Err(e) = done {
                    tracing::warn!(%call, error = %e, "call record not written");
                }
            }
        })?;
    Ok((tx, t))
}

/// What a node in a registry runs beside its loop.
struct Registered {
    presence: Presence,
    records: Sender<Record>,
    writer: JoinHandle<()>,
}

/// Joins the registry: takes back this node's calls, starts writing
/// records, registers the node and starts its heartbeats.
fn register(
    config: &Config,
    url: &str,
    handler: &mut NodeHandler,
) -> Result<Registered, StartError> {
    let store = super::open_store(Some(url))?;
    let id = config.node_id.clone().unwrap_or_default();
    restore_calls(&*store, &id, &mut handler.node, &mut handler.plane);
    let (records, writer) = spawn_records(store.clone(), id.clone())?;
    let info = NodeInfo {
        id,
        region: config.region.clone().unwrap_or_default(),
        ng: config.listen_ng,
        tunnel: config
            .tunnel_address
            .unwrap_or_else(|| "0.0.0.0:0".parse().expect("valid")),
        workers: handler.plane.workers() as u16,
        capacity: config.max_sessions as u32,
        load: 0,
        draining: false,
        last_seen_ms: 0,
    };
    let presence = Presence::start(
        store,
        Report {
            info,
            load: handler.load.clone(),
            interval: config.heartbeat,
        },
    )?;
    Ok(Registered {
        presence,
        records,
        writer,
    })
}

/// Runs a media node until `stop` is set (SIGINT/SIGTERM).
pub fn run_node(config: Config, stop: Arc<AtomicBool>) -> Result<(), StartError> {
    config.validate()?;
    let fds = super::raise_fd_limit();
    let socket = UdpSocket::bind(config.listen_ng).map_err(|source| StartError::BindNg {
        addr: config.listen_ng,
        source,
    })?;
    let server = Server::new(
        socket,
        ServerConfig {
            cache: CacheLimits {
                ttl: config.cookie_ttl,
                ..CacheLimits::default()
            },
            ..ServerConfig::default()
        },
    )?;
    let node_config = NodeConfig {
        delete_delay: config.delete_delay,
        media_timeout: config.media_timeout,
        max_sessions: config.max_sessions,
    };
    let plane = WorkerPlane::start(&config).map_err(StartError::Workers)?;
    let mut node = Node::new(node_config, now());
    node.set_dtls_fingerprint(plane.dtls_fingerprint());
    let mut handler = NodeHandler {
        node,
        plane,
        load: Arc::new(AtomicU32::new(0)),
        records: None,
        last_tick: Instant::now(),
    };
    let registered = match &config.registry {
        Some(url) => Some(register(&config, url, &mut handler)?),
        None => None,
    };
    handler.records = registered.as_ref().map(|r| r.records.clone());
    if handler.records.is_some() {
        handler.node.keep_changes();
    }
    tracing::info!(
        ng = %config.listen_ng,
        backend = handler.plane.backend(),
        ports = format!("{}-{}", config.port_min, config.port_max),
        interfaces = ?config.interfaces,
        open_files = fds,
        "rtpmesh node ready"
    );
    server.run(&mut handler, &stop);
    shut_down(handler, registered);
    Ok(())
}

/// Winds the node down: deregistered first, so new calls go elsewhere;
/// with a registry the calls' records stay for the next run to take back.
fn shut_down(mut handler: NodeHandler, registered: Option<Registered>) {
    let (node, plane) = (&mut handler.node, &mut handler.plane);
    tracing::info!(calls = node.call_count(), "shutting down");
    match registered {
        Some(r) => {
            drop(r.presence);
            node.shutdown(plane);
            // Whatever was queued is written before the process goes.
            drop(handler.records.take());
            drop(r.records);
            let _ = r.writer.join();
        }
        None => node.clear(plane),
    }
    handler.plane.stop();
}
