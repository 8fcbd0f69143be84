//! Turning a change into the Redis commands that write it.
//!
//! Heartbeats, draining marks and gateway states update fields of one
//! existing record, so a Lua script checks that it exists and writes them
//! in one step. Everything else is a set of checks and writes that
//! [`Conn::publish_checked`](super::conn::Conn::publish_checked) runs
//! under WATCH.

use super::guard::{Check, Extra};
use super::{gateway_key, node_key, GATEWAYS, LATENCY, NODES, REGIONS, ROUTES, ROUTE_EXPIRY};
use crate::region::model::{
    Change, Gateway, GatewayState, Latency, LatencySource, NodeInfo, Route,
};
use crate::region::registry::RegistryError as E;
use crate::region::store::StoreError;

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

/// How one change is written, with its PUBLISH.
pub(super) enum Plan {
    /// A script that answers 0, and writes nothing, when `key` is missing.
    Script {
        /// The Lua source.
        script: &'static str,
        /// The record it updates.
        key: String,
        /// Its ARGV.
        args: Vec<String>,
        /// The error when `key` is missing.
        missing: E,
    },
    /// Writes done in one transaction if every check holds.
    Checked {
        /// What must hold.
        checks: Vec<Check>,
        /// Writes that depend on what the store holds.
        extra: Extra,
        /// The writes, before the PUBLISH.
        writes: Vec<redis::Cmd>,
    },
}

impl Plan {
    fn checked(checks: Vec<Check>, writes: Vec<redis::Cmd>) -> Self {
        Self::Checked {
            checks,
            extra: Extra::None,
            writes,
        }
    }
}

fn cmd(name: &str) -> redis::Cmd {
    redis::cmd(name)
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

fn region_known(name: &str) -> Check {
    Check::InHash(REGIONS, name.to_owned(), E::UnknownRegion(name.to_owned()))
}

/// The plan for `change`, whose JSON is `msg`.
pub(super) fn plan(change: &Change, msg: &str) -> Result<Plan, StoreError> {
    Ok(match change {
        Change::AddRegion(r) => {
            let mut c = cmd("HSETNX");
            c.arg(REGIONS).arg(&r.name).arg(serde_json::to_string(r)?);
            Plan::checked(Vec::new(), vec![c])
        }
        Change::RemoveRegion { name } => Plan::Checked {
            checks: vec![region_known(name), Check::RegionUnused(name.clone())],
            extra: Extra::LatencyOf(name.clone()),
            writes: vec![cmd("HDEL").arg(REGIONS).arg(name).clone()],
        },
        Change::RegisterNode(n) => register_node(n)?,
        Change::RemoveNode { id } => Plan::checked(
            vec![Check::InSet(NODES, id.clone(), E::UnknownNode(id.clone()))],
            vec![
                cmd("SREM").arg(NODES).arg(id).clone(),
                cmd("DEL").arg(node_key(id)).clone(),
            ],
        ),
        Change::Heartbeat {
            node,
            load,
            capacity,
            draining,
            at_ms,
        } => {
            let args = vec![
                load.to_string(),
                capacity.to_string(),
                u8::from(*draining).to_string(),
                at_ms.to_string(),
                msg.to_owned(),
            ];
            node_script(HEARTBEAT, node, args)
        }
        Change::SetDraining { node, draining } => {
            let args = vec![
                msg.to_owned(),
                "draining".into(),
                u8::from(*draining).to_string(),
            ];
            node_script(SET_IF_EXISTS, node, args)
        }
        Change::AddGateway(g) => add_gateway(g)?,
        Change::RemoveGateway { id } => Plan::Checked {
            checks: vec![Check::InSet(
                GATEWAYS,
                id.clone(),
                E::UnknownGateway(id.clone()),
            )],
            extra: Extra::RoutesVia(id.clone()),
            writes: vec![
                cmd("SREM").arg(GATEWAYS).arg(id).clone(),
                cmd("DEL").arg(gateway_key(id)).clone(),
            ],
        },
        Change::SetGatewayState {
            gateway,
            state,
            load,
        } => set_gateway_state(gateway, *state, *load, msg),
        Change::RegisterRoute(r) => register_route(r)?,
        Change::UnregisterRoute { endpoint, gateway } => unregister_route(endpoint, gateway)?,
        Change::SetLatency(l) => set_latency(l)?,
    })
}

/// Fields of an existing node record, set by `script` (a heartbeat or
/// the operator's draining flag).
fn node_script(script: &'static str, node: &str, args: Vec<String>) -> Plan {
    Plan::Script {
        script,
        key: node_key(node),
        args,
        missing: E::UnknownNode(node.to_owned()),
    }
}

fn set_gateway_state(gateway: &str, state: GatewayState, load: Option<u32>, msg: &str) -> Plan {
    let mut args = vec![msg.to_owned(), "state".into(), state_name(state).into()];
    if let Some(load) = load {
        args.extend(["load".into(), load.to_string()]);
    }
    Plan::Script {
        script: SET_IF_EXISTS,
        key: gateway_key(gateway),
        args,
        missing: E::UnknownGateway(gateway.to_owned()),
    }
}

fn unregister_route(endpoint: &str, gateway: &str) -> Result<Plan, StoreError> {
    let member = route_member(endpoint, gateway)?;
    let missing = E::UnknownRoute {
        endpoint: endpoint.to_owned(),
        gateway: gateway.to_owned(),
    };
    Ok(Plan::checked(
        vec![Check::InHash(ROUTES, member.clone(), missing)],
        vec![
            cmd("HDEL").arg(ROUTES).arg(&member).clone(),
            cmd("ZREM").arg(ROUTE_EXPIRY).arg(&member).clone(),
        ],
    ))
}

/// One field per pair and source, the pair in name order, so either
/// direction names the same field.
fn set_latency(l: &Latency) -> Result<Plan, StoreError> {
    if l.a == l.b {
        return Err(E::SameRegionLatency(l.a.clone()).into());
    }
    let (a, b) = if l.a <= l.b {
        (&l.a, &l.b)
    } else {
        (&l.b, &l.a)
    };
    let field = serde_json::to_string(&[a, b, source_name(l.source)])?;
    Ok(Plan::checked(
        vec![region_known(&l.a), region_known(&l.b)],
        vec![cmd("HSET").arg(LATENCY).arg(field).arg(l.ms).clone()],
    ))
}

/// Replaces the node's whole record: the registration and the fields
/// heartbeats update later.
fn register_node(n: &NodeInfo) -> Result<Plan, StoreError> {
    let key = node_key(&n.id);
    let mut set = cmd("HSET");
    set.arg(&key)
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
    Ok(Plan::checked(
        vec![region_known(&n.region)],
        vec![
            cmd("DEL").arg(&key).clone(),
            set,
            cmd("SADD").arg(NODES).arg(&n.id).clone(),
        ],
    ))
}

/// Replaces the gateway's whole record, as [`register_node`] does.
fn add_gateway(g: &Gateway) -> Result<Plan, StoreError> {
    let key = gateway_key(&g.id);
    let mut set = cmd("HSET");
    set.arg(&key)
        .arg("info")
        .arg(serde_json::to_string(g)?)
        .arg("state")
        .arg(state_name(g.state))
        .arg("load")
        .arg(g.load);
    Ok(Plan::checked(
        vec![region_known(&g.region)],
        vec![
            cmd("DEL").arg(&key).clone(),
            set,
            cmd("SADD").arg(GATEWAYS).arg(&g.id).clone(),
        ],
    ))
}

fn register_route(r: &Route) -> Result<Plan, StoreError> {
    let member = route_member(&r.endpoint, &r.gateway)?;
    let mut set = cmd("HSET");
    set.arg(ROUTES).arg(&member).arg(serde_json::to_string(r)?);
    let mut expiry = cmd("ZADD");
    expiry.arg(ROUTE_EXPIRY).arg(r.expires_unix_ms).arg(&member);
    Ok(Plan::checked(
        vec![Check::InSet(
            GATEWAYS,
            r.gateway.clone(),
            E::UnknownGateway(r.gateway.clone()),
        )],
        vec![set, expiry],
    ))
}
