use super::*;

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

// ---- registry ----

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

// ---- selection ----

#[test]
fn same_region_is_preferred_even_over_lower_load() {
    let mut reg = three_regions();
    apply(&mut reg, gateway("gw-a", "r1", 90, 100));
    apply(&mut reg, route("alice", "gw-a", NOW + 1000));
    apply(&mut reg, route("alice", "gw-b", NOW + 1000));
    let d = ask(&reg, "gw-a", "alice");
    assert_eq!(chosen_gateway(&d), "gw-a");
    let d = d.unwrap();
    assert_eq!(d.node, "r1-a");
    let callee = d.callee.unwrap();
    assert_eq!(callee.node, None, "no callee node within one region");
    assert_eq!(callee.latency_ms, Some(0));
    assert_eq!(callee.sip, "gw-a.example:5060");
}

#[test]
fn same_region_wins_over_a_zero_latency_region() {
    let mut reg = three_regions();
    apply(&mut reg, latency("r1", "r2", LatencySource::Measured, 0));
    apply(&mut reg, gateway("gw-a", "r1", 9, 10));
    apply(&mut reg, route("alice", "gw-b", NOW + 1000));
    apply(&mut reg, route("alice", "gw-a", NOW + 1000));
    assert_eq!(chosen_gateway(&ask(&reg, "gw-a", "alice")), "gw-a");
}

#[test]
fn lowest_latency_region_next() {
    let mut reg = three_regions();
    apply(&mut reg, route("bob", "gw-b", NOW + 1000));
    apply(&mut reg, route("bob", "gw-c", NOW + 1000));
    let d = ask(&reg, "gw-a", "bob");
    assert_eq!(chosen_gateway(&d), "gw-b");
    let callee = d.unwrap().callee.unwrap();
    assert_eq!(callee.node.as_deref(), Some("r2-a"));
    assert_eq!(callee.latency_ms, Some(20));
}

#[test]
fn measured_latency_overrides_configured() {
    let mut reg = three_regions();
    apply(&mut reg, route("bob", "gw-b", NOW + 1000));
    apply(&mut reg, route("bob", "gw-c", NOW + 1000));
    apply(&mut reg, latency("r1", "r3", LatencySource::Measured, 5));
    let d = ask(&reg, "gw-a", "bob");
    assert_eq!(chosen_gateway(&d), "gw-c");
    assert!(d
        .unwrap()
        .reasons
        .contains(&"route via gw-c (r3): 5 ms from r1 (measured)".to_owned()));
}

#[test]
fn endpoint_in_two_regions_reached_through_the_better() {
    let mut reg = three_regions();
    apply(&mut reg, route("carol", "gw-c", NOW + 1000));
    apply(&mut reg, route("carol", "gw-b", NOW + 1000));
    // From r3 the own region wins; from r1 the nearer r2.
    assert_eq!(chosen_gateway(&ask(&reg, "gw-c", "carol")), "gw-c");
    assert_eq!(chosen_gateway(&ask(&reg, "gw-a", "carol")), "gw-b");
    // From a region name, the same as from its gateway.
    let d = select(
        &reg,
        NOW,
        &Query {
            origin: Origin::Region("r1".into()),
            endpoint: Some("carol".into()),
        },
    );
    assert_eq!(chosen_gateway(&d), "gw-b");
}

#[test]
fn expired_route_is_ignored() {
    let mut reg = three_regions();
    apply(&mut reg, route("dave", "gw-a", NOW));
    apply(&mut reg, route("dave", "gw-c", NOW + 1));
    let d = ask(&reg, "gw-a", "dave");
    assert_eq!(chosen_gateway(&d), "gw-c");
    assert!(d
        .unwrap()
        .reasons
        .contains(&"gw-a (r1): skipped: route expired 0 ms ago".to_owned()));
    apply(&mut reg, route("erin", "gw-b", NOW - 5));
    let e = ask(&reg, "gw-a", "erin").unwrap_err();
    assert_eq!(e.kind, NoRouteKind::NoRoute);
    assert!(!e.is_load_limit());
}

#[test]
fn stale_node_is_skipped() {
    let mut reg = three_regions();
    apply(&mut reg, node("r1-b", "r1", 0, 100));
    // r1-b is emptier but has not reported for 7 s.
    apply(
        &mut reg,
        Change::Heartbeat {
            node: "r1-a".into(),
            load: 3,
            capacity: 100,
            draining: false,
            at_ms: NOW + 6500,
        },
    );
    let d = select(
        &reg,
        NOW + 6500,
        &Query {
            origin: Origin::Region("r1".into()),
            endpoint: None,
        },
    )
    .unwrap();
    assert_eq!(d.node, "r1-a");
    assert!(d
        .reasons
        .contains(&"node r1-b: skipped: stale heartbeat (7500 ms old)".to_owned()));
    assert!(d
        .reasons
        .contains(&"node r1-a: chosen: load 3/100".to_owned()));
}

#[test]
fn draining_node_and_gateway_are_skipped() {
    let mut reg = three_regions();
    apply(&mut reg, node("r1-b", "r1", 50, 100));
    apply(
        &mut reg,
        Change::SetDraining {
            node: "r1-a".into(),
            draining: true,
        },
    );
    apply(&mut reg, route("bob", "gw-b", NOW + 1000));
    apply(&mut reg, route("bob", "gw-c", NOW + 1000));
    apply(
        &mut reg,
        Change::SetGatewayState {
            gateway: "gw-b".into(),
            state: GatewayState::Draining,
            load: None,
        },
    );
    let d = ask(&reg, "gw-a", "bob").unwrap();
    assert_eq!(d.node, "r1-b");
    assert_eq!(d.callee.as_ref().unwrap().gateway, "gw-c");
    assert!(d
        .reasons
        .contains(&"node r1-a: skipped: draining".to_owned()));
    assert!(d
        .reasons
        .contains(&"gw-b (r2): skipped: gateway draining".to_owned()));
}

#[test]
fn full_node_and_callee_region_without_usable_node_are_skipped() {
    let mut reg = three_regions();
    apply(&mut reg, node("r1-b", "r1", 100, 100));
    // r2's only node is full, so gw-b cannot be used despite its latency.
    apply(&mut reg, node("r2-a", "r2", 10, 10));
    apply(&mut reg, route("bob", "gw-b", NOW + 1000));
    apply(&mut reg, route("bob", "gw-c", NOW + 1000));
    let d = ask(&reg, "gw-a", "bob").unwrap();
    assert_eq!(d.node, "r1-a");
    assert_eq!(d.callee.as_ref().unwrap().gateway, "gw-c");
    assert!(d
        .reasons
        .contains(&"node r1-b: skipped: full (100/100)".to_owned()));
    assert!(d
        .reasons
        .contains(&"gw-b (r2): skipped: no usable node in r2".to_owned()));
}

#[test]
fn all_full_is_a_load_limit() {
    let mut reg = three_regions();
    apply(&mut reg, node("r1-a", "r1", 100, 100));
    let e = select(
        &reg,
        NOW,
        &Query {
            origin: Origin::Gateway("gw-a".into()),
            endpoint: None,
        },
    )
    .unwrap_err();
    assert!(e.is_load_limit());

    // Caller side fine, every callee candidate full or draining.
    let mut reg = three_regions();
    apply(&mut reg, node("r2-a", "r2", 10, 10));
    apply(&mut reg, gateway("gw-c", "r3", 5, 5));
    apply(&mut reg, route("bob", "gw-b", NOW + 1000));
    apply(&mut reg, route("bob", "gw-c", NOW + 1000));
    let e = ask(&reg, "gw-a", "bob").unwrap_err();
    assert_eq!(e.kind, NoRouteKind::LoadLimit);
    assert!(e
        .reasons
        .contains(&"gw-c (r3): skipped: gateway full (5/5)".to_owned()));
}

#[test]
fn no_route_and_unknown_origin_are_told_apart() {
    let reg = three_regions();
    assert_eq!(
        ask(&reg, "gw-a", "nobody").unwrap_err().kind,
        NoRouteKind::NoRoute
    );
    assert_eq!(
        ask(&reg, "gw-zz", "nobody").unwrap_err().kind,
        NoRouteKind::UnknownOrigin
    );
    let mut reg = three_regions();
    apply(&mut reg, route("bob", "gw-b", NOW + 1000));
    apply(
        &mut reg,
        Change::SetGatewayState {
            gateway: "gw-b".into(),
            state: GatewayState::Down,
            load: None,
        },
    );
    assert_eq!(
        ask(&reg, "gw-a", "bob").unwrap_err().kind,
        NoRouteKind::NoRoute,
        "a gateway that is down is no route, not a load limit"
    );
}

#[test]
fn ties_are_deterministic() {
    let mut reg = three_regions();
    // Two gateways in r2 at equal latency: lower load ratio first, then id.
    apply(&mut reg, gateway("gw-b2", "r2", 1, 10));
    apply(&mut reg, gateway("gw-b", "r2", 10, 100));
    apply(&mut reg, gateway("gw-b3", "r2", 2, 20));
    for g in ["gw-b3", "gw-b2", "gw-b"] {
        apply(&mut reg, route("bob", g, NOW + 1000));
    }
    // 10/100 = 2/20 = 1/10: all tie on ratio, so the id decides.
    assert_eq!(chosen_gateway(&ask(&reg, "gw-a", "bob")), "gw-b");
    apply(&mut reg, gateway("gw-b", "r2", 11, 100));
    assert_eq!(chosen_gateway(&ask(&reg, "gw-a", "bob")), "gw-b2");

    // Nodes: equal ratio, the id decides; unlimited counts as empty.
    apply(&mut reg, node("r2-c", "r2", 1, 10));
    apply(&mut reg, node("r2-b", "r2", 10, 100));
    apply(&mut reg, node("r2-a", "r2", 2, 20));
    let d = ask(&reg, "gw-a", "bob").unwrap();
    assert_eq!(d.callee.unwrap().node.as_deref(), Some("r2-a"));
    apply(&mut reg, node("r2-z", "r2", 500, 0));
    let d = ask(&reg, "gw-a", "bob").unwrap();
    assert_eq!(d.callee.unwrap().node.as_deref(), Some("r2-z"));
    // The same question twice gives the same answer, reasons included.
    assert_eq!(ask(&reg, "gw-a", "bob"), ask(&reg, "gw-a", "bob"));
}

#[test]
fn unknown_latency_sorts_last() {
    let mut reg = three_regions();
    apply(&mut reg, region("r4"));
    apply(&mut reg, node("r4-a", "r4", 0, 0));
    apply(&mut reg, gateway("gw-d", "r4", 0, 0));
    apply(&mut reg, route("bob", "gw-d", NOW + 1000));
    apply(&mut reg, route("bob", "gw-c", NOW + 1000));
    assert_eq!(chosen_gateway(&ask(&reg, "gw-a", "bob")), "gw-c");
    apply(&mut reg, Change::RemoveGateway { id: "gw-c".into() });
    let d = ask(&reg, "gw-a", "bob");
    assert_eq!(chosen_gateway(&d), "gw-d");
    assert!(explain(&d).contains("latency unknown"));
}

#[test]
fn explain_tells_the_choice_and_every_candidate() {
    let mut reg = three_regions();
    apply(&mut reg, route("bob", "gw-c", NOW + 1000));
    apply(&mut reg, route("bob", "gw-b", NOW - 1));
    let text = explain(&ask(&reg, "gw-a", "bob"));
    assert!(text.contains("caller region r1: node r1-a"), "{text}");
    assert!(
        text.contains("via gateway gw-c (r3, sip gw-c.example:5060), 45 ms away, node r3-a"),
        "{text}"
    );
    assert!(
        text.contains("route via gw-c (r3): 45 ms from r1 (configured)"),
        "{text}"
    );
    assert!(
        text.contains("gw-b (r2): skipped: route expired 1 ms ago"),
        "{text}"
    );
    let text = explain(&ask(&reg, "gw-a", "nobody"));
    assert!(
        text.starts_with("no route: no route for endpoint"),
        "{text}"
    );
    assert!(
        text.contains("endpoint nobody: no unexpired route"),
        "{text}"
    );
}
