//! The shared store: a Redis server, through the `redis` crate's
//! synchronous API.
//!
//! # Layout
//! - `rtpmesh:regions`: hash, region name → `Region` JSON.
//! - `rtpmesh:nodes`: set of node ids; `rtpmesh:node:{id}`: hash with the
//!   registration (`info`, `NodeInfo` JSON) and the fields heartbeats and
//!   the operator change (`load`, `capacity`, `draining`, `last_seen_ms`),
//!   so a heartbeat never rewrites the registration.
//! - `rtpmesh:gateways`: set of gateway ids; `rtpmesh:gateway:{id}`: hash
//!   with `info` (`Gateway` JSON), `state` and `load`.
//! - `rtpmesh:routes`: hash, `["endpoint","gateway"]` → `Route` JSON;
//!   `rtpmesh:route-expiry`: sorted set of the same members scored by
//!   expiry, so expired routes are found and pruned without a scan.
//! - `rtpmesh:latency`: hash, `["a","b","measured"|"configured"]` (a < b)
//!   → ms.
//! - `rtpmesh:calls:{node}`: hash, call id → opaque record.
//!
//! Every change is written together with its `PUBLISH` on
//! `rtpmesh:changes` in one transaction (or one script), so a subscriber
//! never hears of a change the keys do not hold. Like
//! [`MemoryStore`](super::MemoryStore), it refuses a change that names a
//! region, node, gateway or route it does not hold (checked under WATCH,
//! or inside the script), so its snapshot always replays.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::Receiver;
use redis::Client;

use super::{unix_ms, Store, StoreError};
use crate::region::model::Change;
use crate::region::registry::RegistryError;

mod conn;
mod guard;
mod snapshot;
mod subscriber;
mod write;

use conn::Conn;
use write::Plan;

/// The pub/sub channel changes travel on.
pub const CHANNEL: &str = "rtpmesh:changes";

const REGIONS: &str = "rtpmesh:regions";
const NODES: &str = "rtpmesh:nodes";
const GATEWAYS: &str = "rtpmesh:gateways";
const ROUTES: &str = "rtpmesh:routes";
const ROUTE_EXPIRY: &str = "rtpmesh:route-expiry";
const LATENCY: &str = "rtpmesh:latency";

/// How long connecting and each command may take: a Redis that hangs must
/// turn into an error, not a stuck control plane.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a subscriber thread looks up from its socket to see whether
/// its store was dropped.
const POLL: Duration = Duration::from_millis(250);
/// Reconnect backoff: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

fn node_key(id: &str) -> String {
    format!("rtpmesh:node:{id}")
}

fn gateway_key(id: &str) -> String {
    format!("rtpmesh:gateway:{id}")
}

fn calls_key(node: &str) -> String {
    format!("rtpmesh:calls:{node}")
}

/// The shared Redis store.
pub struct RedisStore {
    conn: Conn,
    /// Tells subscriber threads to end when the store goes.
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.conn.client.get_connection_info().addr)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl RedisStore {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`) and checks the
    /// server answers.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let conn = Conn::open(Client::open(url)?)?;
        conn.with_con(|con| redis::cmd("PING").query::<String>(con))?;
        Ok(Self {
            conn,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs a script that answers 0 when its target does not exist.
    fn eval_existing(
        &self,
        script: &str,
        key: &str,
        args: &[String],
        missing: RegistryError,
    ) -> Result<(), StoreError> {
        let found: i64 = self.conn.with_con(|con| {
            redis::cmd("EVAL")
                .arg(script)
                .arg(2)
                .arg(key)
                .arg(CHANNEL)
                .arg(args)
                .query(con)
        })?;
        if found == 0 {
            return Err(missing.into());
        }
        Ok(())
    }
}

impl Store for RedisStore {
    fn publish(&self, change: &Change) -> Result<(), StoreError> {
        let msg = serde_json::to_string(change)?;
        match write::plan(change, &msg)? {
            Plan::Script {
                script,
                key,
                args,
                missing,
            } => self.eval_existing(script, &key, &args, missing),
            Plan::Checked {
                checks,
                extra,
                writes,
            } => {
                if matches!(change, Change::RegisterRoute(_)) {
                    // Registrations come often; pruning here keeps expired
                    // routes from piling up even when nobody takes snapshots.
                    self.conn.prune_routes(unix_ms())?;
                }
                self.conn.publish_checked(&checks, &extra, &writes, &msg)
            }
        }
    }

    fn snapshot(&self) -> Result<Vec<Change>, StoreError> {
        self.conn.snapshot()
    }

    fn subscribe(&self) -> Result<Receiver<Change>, StoreError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let client = self.conn.client.clone();
        let stop = Arc::clone(&self.stop);
        thread::Builder::new()
            .name("redis-sub".into())
            .spawn(move || subscriber::run(client, &tx, &stop, ready_tx))
            .map_err(StoreError::Spawn)?;
        // Wait until SUBSCRIBE is confirmed: a change published after this
        // returns must reach the channel.
        let wait = IO_TIMEOUT * 2;
        match ready_rx.recv_timeout(wait) {
            Ok(Ok(())) => Ok(rx),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::SubscribeTimeout(wait)),
        }
    }

    fn put_call(&self, node: &str, call_id: &str, json: &str) -> Result<(), StoreError> {
        self.conn.with_con(|con| {
            redis::cmd("HSET")
                .arg(calls_key(node))
                .arg(call_id)
                .arg(json)
                .query::<()>(con)
        })
    }

    fn delete_call(&self, node: &str, call_id: &str) -> Result<(), StoreError> {
        self.conn.with_con(|con| {
            redis::cmd("HDEL")
                .arg(calls_key(node))
                .arg(call_id)
                .query::<()>(con)
        })
    }

    fn calls(&self, node: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut calls: Vec<(String, String)> = self
            .conn
            .with_con(|con| redis::cmd("HGETALL").arg(calls_key(node)).query(con))?;
        calls.sort();
        Ok(calls)
    }
}
