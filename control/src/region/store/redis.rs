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
//! never hears of a change the keys do not hold.
//!
//! This store does not check a change against the registry the way
//! [`MemoryStore`](super::MemoryStore) does (other writers change it
//! concurrently), except that heartbeats and state changes for nodes and
//! gateways it does not hold are refused; every process's
//! [`Registry`](crate::region::Registry) refuses the rest alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use redis::{Client, Connection, RedisError, RedisResult};

use super::{unix_ms, Store, StoreError};
use crate::region::model::{Change, Gateway, GatewayState, Latency, LatencySource, NodeInfo};
use crate::region::registry::RegistryError;

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
    client: Client,
    /// The command connection, opened again after it fails.
    con: Mutex<Option<Connection>>,
    /// Tells subscriber threads to end when the store goes.
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.client.get_connection_info().addr)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn connect(client: &Client) -> RedisResult<Connection> {
    let con = client.get_connection_with_timeout(IO_TIMEOUT)?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(con)
}

/// Whether an error means the connection is gone (and a new one may help).
fn is_lost(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

impl RedisStore {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`) and checks the
    /// server answers.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let client = Client::open(url)?;
        let mut con = connect(&client)?;
        redis::cmd("PING").query::<String>(&mut con)?;
        Ok(Self {
            client,
            con: Mutex::new(Some(con)),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        self.con.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the command connection; when the connection turns out
    /// lost, opens a new one and tries once more (Redis restarted).
    fn with_con<T>(&self, f: impl Fn(&mut Connection) -> RedisResult<T>) -> Result<T, StoreError> {
        let mut guard = self.lock();
        let mut retried = false;
        loop {
            if guard.is_none() {
                *guard = Some(connect(&self.client)?);
            }
            let Some(con) = guard.as_mut() else {
                unreachable!("connection set above")
            };
            match f(con) {
                Ok(v) => return Ok(v),
                Err(e) if is_lost(&e) && !retried => {
                    tracing::warn!("redis store: connection lost ({e}), reconnecting");
                    *guard = None;
                    retried = true;
                }
                Err(e) => {
                    if is_lost(&e) {
                        *guard = None;
                    }
                    return Err(e.into());
                }
            }
        }
    }

    /// Runs a script that answers 0 when its target does not exist.
    fn eval_existing(
        &self,
        script: &str,
        key: &str,
        args: &[String],
        missing: RegistryError,
    ) -> Result<(), StoreError> {
        let found: i64 = self.with_con(|con| {
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

    /// Removes expired routes from the keys.
    fn prune_routes(&self, now_ms: u64) -> Result<(), StoreError> {
        self.with_con(|con| {
            let expired: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(ROUTE_EXPIRY)
                .arg("-inf")
                .arg(now_ms)
                .query(con)?;
            if expired.is_empty() {
                return Ok(());
            }
            redis::pipe()
                .atomic()
                .cmd("HDEL")
                .arg(ROUTES)
                .arg(&expired)
                .ignore()
                .cmd("ZREM")
                .arg(ROUTE_EXPIRY)
                .arg(&expired)
                .ignore()
                .query::<()>(con)
        })
    }

    /// Route members through a gateway (to drop with the gateway).
    fn routes_via(&self, gateway: &str) -> Result<Vec<String>, StoreError> {
        let members: Vec<String> =
            self.with_con(|con| redis::cmd("HKEYS").arg(ROUTES).query(con))?;
        Ok(members
            .into_iter()
            .filter(|m| serde_json::from_str::<[String; 2]>(m).is_ok_and(|[_, gw]| gw == gateway))
            .collect())
    }

    /// Latency fields naming a region (to drop with the region).
    fn latency_of(&self, region: &str) -> Result<Vec<String>, StoreError> {
        let fields: Vec<String> =
            self.with_con(|con| redis::cmd("HKEYS").arg(LATENCY).query(con))?;
        Ok(fields
            .into_iter()
            .filter(|f| {
                serde_json::from_str::<[String; 3]>(f)
                    .is_ok_and(|[a, b, _]| a == region || b == region)
            })
            .collect())
    }
}

/// A pipeline's commands that write one change, before its PUBLISH.
type Writes = Vec<redis::Cmd>;

fn cmd(name: &str) -> redis::Cmd {
    redis::cmd(name)
}

impl Store for RedisStore {
    fn publish(&self, change: &Change) -> Result<(), StoreError> {
        let msg = serde_json::to_string(change)?;
        let mut writes: Writes = Vec::new();
        match change {
            Change::AddRegion(r) => {
                let mut c = cmd("HSETNX");
                c.arg(REGIONS).arg(&r.name).arg(serde_json::to_string(r)?);
                writes.push(c);
            }
            Change::RemoveRegion { name } => {
                let mut c = cmd("HDEL");
                c.arg(REGIONS).arg(name);
                writes.push(c);
                let fields = self.latency_of(name)?;
                if !fields.is_empty() {
                    let mut c = cmd("HDEL");
                    c.arg(LATENCY).arg(fields);
                    writes.push(c);
                }
            }
            Change::RegisterNode(n) => {
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
                    RegistryError::UnknownNode(node.clone()),
                );
            }
            Change::SetDraining { node, draining } => {
                let args = [msg, "draining".into(), u8::from(*draining).to_string()];
                return self.eval_existing(
                    SET_IF_EXISTS,
                    &node_key(node),
                    &args,
                    RegistryError::UnknownNode(node.clone()),
                );
            }
            Change::AddGateway(g) => {
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
                writes.push(cmd("SREM").arg(GATEWAYS).arg(id).clone());
                writes.push(cmd("DEL").arg(gateway_key(id)).clone());
                let routes = self.routes_via(id)?;
                if !routes.is_empty() {
                    writes.push(cmd("HDEL").arg(ROUTES).arg(&routes).clone());
                    writes.push(cmd("ZREM").arg(ROUTE_EXPIRY).arg(&routes).clone());
                }
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
                    RegistryError::UnknownGateway(gateway.clone()),
                );
            }
            Change::RegisterRoute(r) => {
                let member = route_member(&r.endpoint, &r.gateway)?;
                let mut c = cmd("HSET");
                c.arg(ROUTES).arg(&member).arg(serde_json::to_string(r)?);
                writes.push(c);
                let mut c = cmd("ZADD");
                c.arg(ROUTE_EXPIRY).arg(r.expires_unix_ms).arg(&member);
                writes.push(c);
                // Registrations come often; pruning here keeps expired
                // routes from piling up even when nobody takes snapshots.
                self.prune_routes(unix_ms())?;
            }
            Change::UnregisterRoute { endpoint, gateway } => {
                let member = route_member(endpoint, gateway)?;
                writes.push(cmd("HDEL").arg(ROUTES).arg(&member).clone());
                writes.push(cmd("ZREM").arg(ROUTE_EXPIRY).arg(&member).clone());
            }
            Change::SetLatency(l) => {
                let (a, b) = if l.a <= l.b {
                    (&l.a, &l.b)
                } else {
                    (&l.b, &l.a)
                };
                let field = serde_json::to_string(&[a, b, source_name(l.source)])?;
                writes.push(cmd("HSET").arg(LATENCY).arg(field).arg(l.ms).clone());
            }
        }
        self.with_con(|con| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for w in &writes {
                pipe.add_command(w.clone()).ignore();
            }
            pipe.cmd("PUBLISH").arg(CHANNEL).arg(&msg).ignore();
            pipe.query::<()>(con)
        })
    }

    fn snapshot(&self) -> Result<Vec<Change>, StoreError> {
        self.prune_routes(unix_ms())?;
        type Lists = (
            Vec<(String, String)>,
            Vec<String>,
            Vec<String>,
            Vec<(String, String)>,
            Vec<(String, u32)>,
        );
        let (regions, nodes, gateways, routes, latency): Lists = self.with_con(|con| {
            redis::pipe()
                .cmd("HGETALL")
                .arg(REGIONS)
                .cmd("SMEMBERS")
                .arg(NODES)
                .cmd("SMEMBERS")
                .arg(GATEWAYS)
                .cmd("HGETALL")
                .arg(ROUTES)
                .cmd("HGETALL")
                .arg(LATENCY)
                .query(con)
        })?;
        let mut out = Vec::new();
        let mut regions = regions;
        regions.sort();
        for (_, json) in regions {
            out.push(Change::AddRegion(serde_json::from_str(&json)?));
        }
        let mut nodes = nodes;
        nodes.sort();
        let records: Vec<std::collections::HashMap<String, String>> = self.with_con(|con| {
            let mut pipe = redis::pipe();
            for id in &nodes {
                pipe.cmd("HGETALL").arg(node_key(id));
            }
            pipe.query(con)
        })?;
        for (id, rec) in nodes.iter().zip(records) {
            // A node removed between the two reads has no record left.
            let Some(info) = rec.get("info") else {
                tracing::debug!("redis store: node {id} vanished during snapshot");
                continue;
            };
            let mut n: NodeInfo = serde_json::from_str(info)?;
            let num = |f: &str| rec.get(f).and_then(|v| v.parse::<u64>().ok());
            n.load = num("load").map_or(n.load, |v| v as u32);
            n.capacity = num("capacity").map_or(n.capacity, |v| v as u32);
            n.draining = num("draining").map_or(n.draining, |v| v != 0);
            n.last_seen_ms = num("last_seen_ms").unwrap_or(n.last_seen_ms);
            out.push(Change::RegisterNode(n));
        }
        let mut gateways = gateways;
        gateways.sort();
        let records: Vec<std::collections::HashMap<String, String>> = self.with_con(|con| {
            let mut pipe = redis::pipe();
            for id in &gateways {
                pipe.cmd("HGETALL").arg(gateway_key(id));
            }
            pipe.query(con)
        })?;
        for (id, rec) in gateways.iter().zip(records) {
            let Some(info) = rec.get("info") else {
                tracing::debug!("redis store: gateway {id} vanished during snapshot");
                continue;
            };
            let mut g: Gateway = serde_json::from_str(info)?;
            if let Some(state) = rec.get("state") {
                g.state = serde_json::from_value(serde_json::Value::String(state.clone()))?;
            }
            if let Some(load) = rec.get("load").and_then(|v| v.parse().ok()) {
                g.load = load;
            }
            out.push(Change::AddGateway(g));
        }
        let mut routes = routes;
        routes.sort();
        for (_, json) in routes {
            out.push(Change::RegisterRoute(serde_json::from_str(&json)?));
        }
        let mut latency = latency;
        latency.sort();
        for (field, ms) in latency {
            let [a, b, source]: [String; 3] = serde_json::from_str(&field)?;
            let source = serde_json::from_value(serde_json::Value::String(source))?;
            out.push(Change::SetLatency(Latency { a, b, source, ms }));
        }
        Ok(out)
    }

    fn subscribe(&self) -> Result<Receiver<Change>, StoreError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let client = self.client.clone();
        let stop = Arc::clone(&self.stop);
        thread::Builder::new()
            .name("redis-sub".into())
            .spawn(move || subscriber(&client, &tx, &stop, ready_tx))
            .map_err(|e| StoreError::Redis(RedisError::from(e)))?;
        // Wait until SUBSCRIBE is confirmed: a change published after this
        // returns must reach the channel.
        let wait = IO_TIMEOUT * 2;
        match ready_rx.recv_timeout(wait) {
            Ok(Ok(())) => Ok(rx),
            Ok(Err(e)) => Err(StoreError::Redis(e)),
            Err(_) => Err(StoreError::SubscribeTimeout(wait)),
        }
    }

    fn put_call(&self, node: &str, call_id: &str, json: &str) -> Result<(), StoreError> {
        self.with_con(|con| {
            redis::cmd("HSET")
                .arg(calls_key(node))
                .arg(call_id)
                .arg(json)
                .query::<()>(con)
        })
    }

    fn delete_call(&self, node: &str, call_id: &str) -> Result<(), StoreError> {
        self.with_con(|con| {
            redis::cmd("HDEL")
                .arg(calls_key(node))
                .arg(call_id)
                .query::<()>(con)
        })
    }

    fn calls(&self, node: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut calls: Vec<(String, String)> =
            self.with_con(|con| redis::cmd("HGETALL").arg(calls_key(node)).query(con))?;
        calls.sort();
        Ok(calls)
    }
}

/// How a subscription ended.
enum Ended {
    /// The store or the receiver went: the thread ends.
    Done,
    /// Connecting or subscribing failed.
    NotSubscribed(RedisError),
    /// The connection broke after it was subscribed.
    Lost,
}

/// A subscriber thread: (re)connects with backoff, forwards every change
/// on [`CHANNEL`] to `tx`, and ends when the receiver or the store goes.
/// It logs and never panics. The first connection's outcome goes to
/// `ready`; after that, failures only delay delivery.
fn subscriber(
    client: &Client,
    tx: &Sender<Change>,
    stop: &AtomicBool,
    ready: Sender<RedisResult<()>>,
) {
    let mut ready = Some(ready);
    let mut backoff = BACKOFF_FIRST;
    while !stop.load(Ordering::Relaxed) {
        match listen(client, tx, stop, &mut ready) {
            Ended::Done => return,
            Ended::NotSubscribed(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                tracing::warn!(
                    "redis store: subscriber cannot reconnect ({e}), retrying in {backoff:?}"
                );
                thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Ended::Lost => backoff = BACKOFF_FIRST,
        }
    }
}

/// One subscribed connection, until it ends.
fn listen(
    client: &Client,
    tx: &Sender<Change>,
    stop: &AtomicBool,
    ready: &mut Option<Sender<RedisResult<()>>>,
) -> Ended {
    let mut con = match client.get_connection_with_timeout(IO_TIMEOUT) {
        Ok(con) => con,
        Err(e) => return Ended::NotSubscribed(e),
    };
    // The PubSub must live as long as the subscription: dropping it
    // unsubscribes.
    let mut pubsub = con.as_pubsub();
    if let Err(e) = pubsub
        .subscribe(CHANNEL)
        .and_then(|()| pubsub.set_read_timeout(Some(POLL)))
    {
        return Ended::NotSubscribed(e);
    }
    match ready.take() {
        Some(ready) => {
            let _ = ready.send(Ok(()));
        }
        None => tracing::info!(
            "redis store: subscriber reconnected; changes published while it was away were missed"
        ),
    }
    loop {
        match pubsub.get_message() {
            Ok(msg) => {
                let payload: String = match msg.get_payload() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!("redis store: unreadable message: {e}");
                        continue;
                    }
                };
                match serde_json::from_str::<Change>(&payload) {
                    Ok(change) => {
                        if tx.send(change).is_err() {
                            return Ended::Done;
                        }
                    }
                    Err(e) => tracing::warn!("redis store: bad change {payload:?}: {e}"),
                }
            }
            Err(e) if e.is_timeout() => {
                if stop.load(Ordering::Relaxed) {
                    return Ended::Done;
                }
            }
            Err(e) => {
                tracing::warn!("redis store: subscriber lost its connection ({e})");
                return Ended::Lost;
            }
        }
    }
}
