//! The node driver: the ng socket, the clock, worker events, shutdown.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtpmesh_relay::clock::now_ms;

use crate::config::Config;
use crate::error::StartError;
use crate::node::{Node, NodeConfig, Now};
use crate::plane::WorkerPlane;

/// How often timeouts and delete delays are checked.
const TICK: Duration = Duration::from_millis(200);

fn now() -> Now {
    Now {
        ms: now_ms(),
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// Raises the open-file limit to the hard limit: every stream holds two
/// sockets, so the usual soft limit of 1024 caps a node at ~250 calls.
pub fn raise_fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r = want;
            }
        }
    }
    r.rlim_cur
}

type Record = (String, Option<crate::node::persist::CallRecord>);

/// Takes back the calls the store holds for this node.
fn restore_calls(
    store: &dyn crate::region::store::Store,
    id: &str,
    node: &mut Node,
    plane: &mut WorkerPlane,
) {
    let records = match store.calls(id) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read call records: no calls restored");
            return;
        }
    };
    for (call, json) in records {
        let restored = serde_json::from_str::<crate::node::persist::CallRecord>(&json)
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
fn spawn_persistence(
    store: Arc<dyn crate::region::store::Store>,
    node: String,
) -> std::io::Result<(
    crossbeam_channel::Sender<Record>,
    std::thread::JoinHandle<()>,
)> {
    let (tx, rx) = crossbeam_channel::bounded::<Record>(65536);
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

/// Runs a media node until `stop` is set (SIGINT/SIGTERM).
pub fn run(config: Config, stop: Arc<AtomicBool>) -> Result<(), StartError> {
    config.validate()?;
    let fds = raise_fd_limit();
    let socket = UdpSocket::bind(config.listen_ng).map_err(|source| StartError::BindNg {
        addr: config.listen_ng,
        source,
    })?;
    socket.set_read_timeout(Some(TICK))?;
    let mut plane = WorkerPlane::start(&config).map_err(StartError::Workers)?;
    let mut node = Node::new(
        NodeConfig {
            delete_delay: config.delete_delay,
            media_timeout: config.media_timeout,
            max_sessions: config.max_sessions,
            cookie_ttl: config.cookie_ttl,
        },
        now(),
    );
    let load = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut presence = None;
    let mut persist = None;
    if let Some(url) = &config.registry {
        let store = crate::controller::server::open_store(Some(url))?;
        let id = config.node_id.clone().unwrap_or_default();
        restore_calls(&*store, &id, &mut node, &mut plane);
        persist = Some(spawn_persistence(store.clone(), id.clone())?);
        let info = crate::region::NodeInfo {
            id,
            region: config.region.clone().unwrap_or_default(),
            ng: config.listen_ng,
            tunnel: config
                .tunnel_address
                .unwrap_or_else(|| "0.0.0.0:0".parse().expect("valid")),
            workers: plane.workers() as u16,
            capacity: config.max_sessions as u32,
            load: 0,
            draining: false,
            last_seen_ms: 0,
        };
        presence = Some(crate::presence::Presence::start(
            store,
            crate::presence::Report {
                info,
                load: load.clone(),
                interval: config.heartbeat,
            },
        )?);
    }
    tracing::info!(
        ng = %config.listen_ng,
        backend = plane.backend(),
        ports = format!("{}-{}", config.port_min, config.port_max),
        interfaces = ?config.interfaces,
        open_files = fds,
        "rtpmesh node ready"
    );
    let mut buf = vec![0u8; 65536];
    let mut last_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                for ev in plane.events() {
                    node.on_event(&ev);
                }
                if let Some(reply) = node.handle(&buf[..n], now(), &mut plane) {
                    if let Err(e) = socket.send_to(&reply, from) {
                        tracing::warn!(%from, error = %e, "cannot send ng reply");
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            // An ICMP error from an earlier reply's destination: not ours to
            // stop for.
            Err(e) => tracing::debug!(error = %e, "ng receive error"),
        }
        for ev in plane.events() {
            node.on_event(&ev);
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            node.tick(now(), &mut plane);
        }
        load.store(node.call_count() as u32, Ordering::Relaxed);
        if let Some((tx, _)) = &persist {
            for change in node.take_changes() {
                // The store is slower than the packet path: a full queue
                // costs a stale record, never a stalled node.
                if tx.try_send(change).is_err() {
                    tracing::warn!("call record queue full: a record was not written");
                }
            }
        }
    }
    // Deregister first: new calls go elsewhere while this one winds down.
    drop(presence);
    tracing::info!(calls = node.call_count(), "shutting down");
    if persist.is_some() {
        // The records stay in the store: the next run takes the calls back.
        node.shutdown(&mut plane);
    } else {
        node.clear(&mut plane);
    }
    if let Some((tx, t)) = persist {
        // Whatever was queued is written before the process goes.
        drop(tx);
        let _ = t.join();
    }
    plane.stop();
    Ok(())
}
