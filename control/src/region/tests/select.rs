//! Route selection: the order of preference, what is skipped and why,
//! and the reasons text.

use super::*;

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
