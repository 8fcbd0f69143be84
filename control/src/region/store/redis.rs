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
use crate::region::model::{Change, GatewayState, LatencySource};
use crate::region::registry::RegistryError;

mod conn;
mod guard;
mod snapshot;
mod subscriber;

use conn::Conn;
use guard::{Check, Extra};

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

fn route_member(endpoint: &str, gateway: &str) -> Result<String, StoreError> {
    Ok(serde_json::to_string(&[endpoint, gateway])?)
}

fn source_name(s: LatencySource) -> &'static str {
    match s {
        LatencySource::Configured => "configured",
        LatencySource::Measured => "measured",
    }
}

fn state_name(s: GatewayState) -> &'static str {
    match s {
        GatewayState::Up => "up",
        GatewayState::Draining => "draining",
        GatewayState::Down => "down",
    }
}

/// A heartbeat: only for a registered node, never rolls it back, may start
/// draining but not end it (as `Registry::apply` does).
const HEARTBEAT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local last = tonumber(redis.call('HGET', KEYS[1], 'last_seen_ms')) or 0
if tonumber(ARGV[4]) < last then return 1 end
redis.call('HSET', KEYS[1], 'load', ARGV[1], 'capacity', ARGV[2], 'last_seen_ms', ARGV[4])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'draining', '1') end
redis.call('PUBLISH', KEYS[2], ARGV[5])
return 1
";

/// Sets fields of an existing hash and publishes; 0 when it does not exist.
/// ARGV: the message, then field/value pairs.
const SET_IF_EXISTS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
";

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

/// A pipeline's commands that write one change, before its PUBLISH.
type Writes = Vec<redis::Cmd>;

fn cmd(name: &str) -> redis::Cmd {
    redis::cmd(name)
}

impl Store for RedisStore {
    fn publish(&self, change: &Change) -> Result<(), StoreError> {
        use RegistryError as E;
        let msg = serde_json::to_string(change)?;
        let region_known =
            |name: &String| Check::InHash(REGIONS, name.clone(), E::UnknownRegion(name.clone()));
        let mut checks = Vec::new();
        let mut extra = Extra::None;
        let mut writes: Writes = Vec::new();
        match change {
            Change::AddRegion(r) => {
                let mut c = cmd("HSETNX");
                c.arg(REGIONS).arg(&r.name).arg(serde_json::to_string(r)?);
                writes.push(c);
            }
            Change::RemoveRegion { name } => {
                checks.push(region_known(name));
                checks.push(Check::RegionUnused(name.clone()));
                extra = Extra::LatencyOf(name.clone());
                writes.push(cmd("HDEL").arg(REGIONS).arg(name).clone());
            }
            Change::RegisterNode(n) => {
                checks.push(region_known(&n.region));
                let key = node_key(&n.id);
                writes.push(cmd("DEL").arg(&key).clone());
                let mut c = cmd("HSET");
                c.arg(&key)
                    .arg("info")
                    .arg(serde_json::to_string(n)?)
                    .arg("load")
                    .arg(n.load)
                    .arg("capacity")
                    .arg(n.capacity)
                    .arg("draining")
                    .arg(u8::from(n.draining))
                    .arg("last_seen_ms")
                    .arg(n.last_seen_ms);
                writes.push(c);
                writes.push(cmd("SADD").arg(NODES).arg(&n.id).clone());
            }
            Change::RemoveNode { id } => {
                checks.push(Check::InSet(NODES, id.clone(), E::UnknownNode(id.clone())));
                writes.push(cmd("SREM").arg(NODES).arg(id).clone());
                writes.push(cmd("DEL").arg(node_key(id)).clone());
            }
            Change::Heartbeat {
                node,
                load,
                capacity,
                draining,
                at_ms,
            } => {
                let args = [
                    load.to_string(),
                    capacity.to_string(),
                    u8::from(*draining).to_string(),
                    at_ms.to_string(),
                    msg,
                ];
                return self.eval_existing(
                    HEARTBEAT,
                    &node_key(node),
                    &args,
                    E::UnknownNode(node.clone()),
                );
            }
            Change::SetDraining { node, draining } => {
                let args = [msg, "draining".into(), u8::from(*draining).to_string()];
                return self.eval_existing(
                    SET_IF_EXISTS,
                    &node_key(node),
                    &args,
                    E::UnknownNode(node.clone()),
                );
            }
            Change::AddGateway(g) => {
                checks.push(region_known(&g.region));
                let key = gateway_key(&g.id);
                writes.push(cmd("DEL").arg(&key).clone());
                let mut c = cmd("HSET");
                c.arg(&key)
                    .arg("info")
                    .arg(serde_json::to_string(g)?)
                    .arg("state")
                    .arg(state_name(g.state))
                    .arg("load")
                    .arg(g.load);
                writes.push(c);
                writes.push(cmd("SADD").arg(GATEWAYS).arg(&g.id).clone());
            }
            Change::RemoveGateway { id } => {
                checks.push(Check::InSet(
                    GATEWAYS,
                    id.clone(),
                    E::UnknownGateway(id.clone()),
                ));
                extra = Extra::RoutesVia(id.clone());
                writes.push(cmd("SREM").arg(GATEWAYS).arg(id).clone());
                writes.push(cmd("DEL").arg(gateway_key(id)).clone());
            }
            Change::SetGatewayState {
                gateway,
                state,
                load,
            } => {
                let mut args = vec![msg, "state".into(), state_name(*state).into()];
                if let Some(load) = load {
                    args.extend(["load".into(), load.to_string()]);
                }
                return self.eval_existing(
                    SET_IF_EXISTS,
                    &gateway_key(gateway),
                    &args,
                    E::UnknownGateway(gateway.clone()),
                );
            }
            Change::RegisterRoute(r) => {
                checks.push(Check::InSet(
                    GATEWAYS,
                    r.gateway.clone(),
                    E::UnknownGateway(r.gateway.clone()),
                ));
                let member = route_member(&r.endpoint, &r.gateway)?;
                let mut c = cmd("HSET");
                c.arg(ROUTES).arg(&member).arg(serde_json::to_string(r)?);
                writes.push(c);
                let mut c = cmd("ZADD");
                c.arg(ROUTE_EXPIRY).arg(r.expires_unix_ms).arg(&member);
                writes.push(c);
                // Registrations come often; pruning here keeps expired
                // routes from piling up even when nobody takes snapshots.
                self.conn.prune_routes(unix_ms())?;
            }
            Change::UnregisterRoute { endpoint, gateway } => {
                let member = route_member(endpoint, gateway)?;
                checks.push(Check::InHash(
                    ROUTES,
                    member.clone(),
                    E::UnknownRoute {
                        endpoint: endpoint.clone(),
                        gateway: gateway.clone(),
                    },
                ));
                writes.push(cmd("HDEL").arg(ROUTES).arg(&member).clone());
                writes.push(cmd("ZREM").arg(ROUTE_EXPIRY).arg(&member).clone());
            }
            Change::SetLatency(l) => {
                if l.a == l.b {
                    return Err(E::SameRegionLatency(l.a.clone()).into());
                }
                checks.push(region_known(&l.a));
                checks.push(region_known(&l.b));
                let (a, b) = if l.a <= l.b {
                    (&l.a, &l.b)
                } else {
                    (&l.b, &l.a)
                };
                let field = serde_json::to_string(&[a, b, source_name(l.source)])?;
                writes.push(cmd("HSET").arg(LATENCY).arg(field).arg(l.ms).clone());
            }
        }
        self.conn.publish_checked(&checks, &extra, &writes, &msg)
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
