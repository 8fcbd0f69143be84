//! Applying changes: what is refused, what a heartbeat may change, expiry,
//! latency pairs, snapshots and the changes' JSON.

use super::*;

#[test]
fn unknown_names_are_errors_and_leave_the_registry_unchanged() {
    let mut reg = three_regions();
    let before = reg.clone();
    assert_eq!(
        reg.apply(&node("x", "nowhere", 0, 0)),
        Err(RegistryError::UnknownRegion("nowhere".into()))
    );
    assert_eq!(
        reg.apply(&route("alice", "gw-z", NOW)),
        Err(RegistryError::UnknownGateway("gw-z".into()))
    );
    assert_eq!(
        reg.apply(&Change::Heartbeat {
            node: "ghost".into(),
            load: 0,
            capacity: 0,
            draining: false,
            at_ms: NOW
        }),
        Err(RegistryError::UnknownNode("ghost".into()))
    );
    assert_eq!(
        reg.apply(&Change::UnregisterRoute {
            endpoint: "alice".into(),
            gateway: "gw-a".into()
        }),
        Err(RegistryError::UnknownRoute {
            endpoint: "alice".into(),
            gateway: "gw-a".into()
        })
    );
    assert_eq!(
        reg.apply(&Change::RemoveRegion { name: "r1".into() }),
        Err(RegistryError::RegionInUse("r1".into()))
    );
    assert_eq!(
        reg.apply(&latency("r1", "r1", LatencySource::Measured, 1)),
        Err(RegistryError::SameRegionLatency("r1".into()))
    );
    assert_eq!(reg, before);
}

#[test]
fn heartbeat_updates_but_never_rolls_back_nor_ends_draining() {
    let mut reg = three_regions();
    let hb = |load, draining, at_ms| Change::Heartbeat {
        node: "r1-a".into(),
        load,
        capacity: 50,
        draining,
        at_ms,
    };
    apply(&mut reg, hb(7, false, NOW));
    let n = reg.node("r1-a").unwrap();
    assert_eq!((n.load, n.capacity, n.last_seen_ms), (7, 50, NOW));
    // An older report arriving late changes nothing.
    apply(&mut reg, hb(1, false, NOW - 500));
    assert_eq!(reg.node("r1-a").unwrap().load, 7);
    apply(
        &mut reg,
        Change::SetDraining {
            node: "r1-a".into(),
            draining: true,
        },
    );
    apply(&mut reg, hb(7, false, NOW + 2000));
    assert!(reg.node("r1-a").unwrap().draining);
    apply(
        &mut reg,
        Change::SetDraining {
            node: "r1-a".into(),
            draining: false,
        },
    );
    assert!(!reg.node("r1-a").unwrap().draining);
}

#[test]
fn node_usable_gives_the_reason() {
    let mut reg = three_regions();
    assert_eq!(reg.node_usable("r1-a", NOW), Ok(()));
    // Exactly three intervals old is still in; one ms more is out.
    assert_eq!(reg.node_usable("r1-a", NOW - 1000 + STALE_AFTER_MS), Ok(()));
    assert_eq!(
        reg.node_usable("r1-a", NOW - 999 + STALE_AFTER_MS),
        Err(NodeUnusable::Stale {
            age_ms: STALE_AFTER_MS + 1
        })
    );
    assert_eq!(reg.node_usable("nope", NOW), Err(NodeUnusable::Unknown));
    apply(&mut reg, node("r1-a", "r1", 100, 100));
    assert_eq!(
        reg.node_usable("r1-a", NOW),
        Err(NodeUnusable::Full {
            load: 100,
            capacity: 100
        })
    );
    apply(&mut reg, node("r1-a", "r1", 1_000_000, 0));
    assert_eq!(
        reg.node_usable("r1-a", NOW),
        Ok(()),
        "capacity 0 is unlimited"
    );
    apply(
        &mut reg,
        Change::SetDraining {
            node: "r1-a".into(),
            draining: true,
        },
    );
    assert_eq!(reg.node_usable("r1-a", NOW), Err(NodeUnusable::Draining));
}

#[test]
fn routes_expire_and_refresh() {
    let mut reg = three_regions();
    apply(&mut reg, route("alice", "gw-a", NOW + 10));
    apply(&mut reg, route("alice", "gw-b", NOW + 20));
    apply(&mut reg, route("alicia", "gw-b", NOW + 20));
    assert_eq!(reg.routes("alice", NOW).count(), 2);
    assert_eq!(reg.routes("alice", NOW + 10).count(), 1);
    // Re-registration moves the expiry.
    apply(&mut reg, route("alice", "gw-a", NOW + 100));
    assert_eq!(reg.routes("alice", NOW + 50).count(), 1);
    assert_eq!(reg.prune_routes(NOW + 50), 2);
    assert_eq!(reg.all_routes("alice").count(), 1);
    // Removing a gateway removes its routes.
    apply(&mut reg, Change::RemoveGateway { id: "gw-a".into() });
    assert_eq!(reg.all_routes("alice").count(), 0);
}

#[test]
fn latency_is_symmetric_and_measured_wins() {
    let mut reg = three_regions();
    assert_eq!(reg.latency("r1", "r1"), Some(0));
    assert_eq!(reg.latency("r1", "r3"), Some(45));
    assert_eq!(reg.latency("r3", "r1"), Some(45));
    apply(&mut reg, latency("r1", "r3", LatencySource::Measured, 12));
    assert_eq!(reg.latency("r3", "r1"), Some(12));
    // A later configured figure does not hide the measured one.
    apply(&mut reg, latency("r3", "r1", LatencySource::Configured, 60));
    assert_eq!(
        reg.latency_source("r1", "r3"),
        Some((12, LatencySource::Measured))
    );
    apply(&mut reg, region("r4"));
    assert_eq!(reg.latency("r1", "r4"), None);
}

#[test]
fn snapshot_rebuilds_an_equal_registry() {
    let mut reg = three_regions();
    apply(&mut reg, route("alice", "gw-b", NOW + 10));
    apply(&mut reg, latency("r1", "r2", LatencySource::Measured, 7));
    apply(
        &mut reg,
        Change::SetGatewayState {
            gateway: "gw-c".into(),
            state: GatewayState::Draining,
            load: Some(4),
        },
    );
    apply(
        &mut reg,
        Change::SetDraining {
            node: "r2-a".into(),
            draining: true,
        },
    );
    let snap = reg.snapshot();
    assert_eq!(build(&snap), reg);
    // And through JSON, as stores carry it.
    let json = serde_json::to_string(&snap).unwrap();
    let back: Vec<Change> = serde_json::from_str(&json).unwrap();
    assert_eq!(build(&back), reg);
}

#[test]
fn change_json_is_tagged() {
    let c = Change::Heartbeat {
        node: "r1-a".into(),
        load: 3,
        capacity: 100,
        draining: false,
        at_ms: 5,
    };
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(
        json,
        r#"{"op":"heartbeat","node":"r1-a","load":3,"capacity":100,"draining":false,"at_ms":5}"#
    );
    let json = serde_json::to_string(&region("r1")).unwrap();
    assert_eq!(json, r#"{"op":"add_region","name":"r1"}"#);
    let back: Change =
        serde_json::from_str(r#"{"op":"set_gateway_state","gateway":"gw-a","state":"draining"}"#)
            .unwrap();
    assert_eq!(
        back,
        Change::SetGatewayState {
            gateway: "gw-a".into(),
            state: GatewayState::Draining,
            load: None
        }
    );
}
