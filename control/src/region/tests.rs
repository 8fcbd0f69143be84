//! The registry and route selection, on registries built in memory.

use super::*;

mod registry;
mod select;

const NOW: u64 = 1_800_000_000_000;

fn region(name: &str) -> Change {
    Change::AddRegion(Region { name: name.into() })
}

fn node(id: &str, region: &str, load: u32, capacity: u32) -> Change {
    let port = 2000 + id.len() as u16;
    Change::RegisterNode(NodeInfo {
        id: id.into(),
        region: region.into(),
        ng: format!("127.0.0.1:{port}").parse().unwrap(),
        tunnel: format!("127.0.0.1:{}", port + 1000).parse().unwrap(),
        workers: 2,
        capacity,
        load,
        draining: false,
        last_seen_ms: NOW - 1000,
    })
}

fn gateway(id: &str, region: &str, load: u32, capacity: u32) -> Change {
    Change::AddGateway(Gateway {
        id: id.into(),
        region: region.into(),
        sip: format!("{id}.example:5060"),
        capacity,
        load,
        state: GatewayState::Up,
    })
}

fn route(endpoint: &str, gateway: &str, expires: u64) -> Change {
    Change::RegisterRoute(Route {
        endpoint: endpoint.into(),
        gateway: gateway.into(),
        expires_unix_ms: expires,
    })
}

fn latency(a: &str, b: &str, source: LatencySource, ms: u32) -> Change {
    Change::SetLatency(Latency {
        a: a.into(),
        b: b.into(),
        source,
        ms,
    })
}

fn build(changes: &[Change]) -> Registry {
    Registry::from_changes(changes).unwrap()
}

/// Three regions, a node and a gateway in each; r1-r2 20 ms, r1-r3 45 ms.
fn three_regions() -> Registry {
    build(&[
        region("r1"),
        region("r2"),
        region("r3"),
        node("r1-a", "r1", 3, 100),
        node("r2-a", "r2", 0, 100),
        node("r3-a", "r3", 0, 100),
        gateway("gw-a", "r1", 0, 0),
        gateway("gw-b", "r2", 0, 0),
        gateway("gw-c", "r3", 0, 0),
        latency("r1", "r2", LatencySource::Configured, 20),
        latency("r3", "r1", LatencySource::Configured, 45),
        latency("r2", "r3", LatencySource::Configured, 30),
    ])
}

fn ask(reg: &Registry, from: &str, endpoint: &str) -> Result<Decision, NoRoute> {
    select(
        reg,
        NOW,
        &Query {
            origin: Origin::Gateway(from.into()),
            endpoint: Some(endpoint.into()),
        },
    )
}

fn chosen_gateway(d: &Result<Decision, NoRoute>) -> &str {
    &d.as_ref().unwrap().callee.as_ref().unwrap().gateway
}

fn apply(reg: &mut Registry, c: Change) {
    reg.apply(&c).unwrap();
}
