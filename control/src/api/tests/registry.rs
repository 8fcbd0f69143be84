//! The registry's resources: regions, nodes, gateways, endpoint routes
//! and latency.

use super::*;

#[test]
fn regions_add_list_remove() {
    let b = FakeBackend::seeded();
    let h = start(b.clone(), Some(TOKEN));
    let (s, v) = call(&h, "POST", "/v1/regions", Some(json!({"name": "ap"})));
    assert_eq!((s, v), (201, json!({"name": "ap"})));
    // Adding it again is harmless, and says so.
    assert_eq!(
        call(&h, "POST", "/v1/regions", Some(json!({"name": "ap"}))).0,
        200
    );
    let (s, v) = call(&h, "GET", "/v1/regions", None);
    assert_eq!(s, 200);
    assert_eq!(
        v["regions"],
        json!([
            {"name": "ap", "nodes": 0, "gateways": 0},
            {"name": "eu", "nodes": 1, "gateways": 0},
            {"name": "us", "nodes": 1, "gateways": 0},
        ])
    );
    assert_eq!(
        call(&h, "DELETE", "/v1/regions/ap", None),
        (200, json!({"removed": "ap"}))
    );
    let (s, v) = call(&h, "DELETE", "/v1/regions/ap", None);
    assert_eq!(s, 404);
    assert_eq!(error_of(&v), "no region ap");
    let (s, v) = call(&h, "DELETE", "/v1/regions/eu", None);
    assert_eq!(s, 409);
    assert!(error_of(&v).contains("still has nodes"), "{v}");
    let (s, v) = call(&h, "POST", "/v1/regions", Some(json!({"name": "a b"})));
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("whitespace"), "{v}");
    // ap added twice (the second a no-op the store still carries), removed once.
    assert_eq!(b.published(), 3);
}

#[test]
fn nodes_list_drain_remove() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    let (s, v) = call(&h, "GET", "/v1/nodes", None);
    assert_eq!(s, 200);
    let eu = &v["nodes"][0];
    assert_eq!(eu["id"], "eu-1");
    assert_eq!(eu["usable"], true);
    assert_eq!(eu["reason"], Value::Null);
    assert_eq!(eu["age_ms"], 1000);
    assert_eq!(eu["ng"], "127.0.0.1:2223");

    let (s, v) = call(
        &h,
        "POST",
        "/v1/nodes/eu-1/drain",
        Some(json!({"draining": true})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        (v["usable"].clone(), v["reason"].clone()),
        (json!(false), json!("draining"))
    );
    let (_, v) = call(&h, "GET", "/v1/nodes", None);
    assert_eq!(v["nodes"][0]["reason"], "draining");
    let (_, v) = call(
        &h,
        "POST",
        "/v1/nodes/eu-1/drain",
        Some(json!({"draining": false})),
    );
    assert_eq!(v["usable"], true);

    let (s, v) = call(
        &h,
        "POST",
        "/v1/nodes/nope/drain",
        Some(json!({"draining": true})),
    );
    assert_eq!((s, error_of(&v)), (404, "no node nope"));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/nodes/eu-1/drain",
        Some(json!({"draining": "yes"})),
    );
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("invalid type"), "{v}");

    assert_eq!(
        call(&h, "DELETE", "/v1/nodes/us-1", None),
        (200, json!({"removed": "us-1"}))
    );
    let (_, v) = call(&h, "GET", "/v1/nodes", None);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(call(&h, "DELETE", "/v1/nodes/us-1", None).0, 404);
}

#[test]
fn gateways_with_an_unknown_region_or_a_bad_sip_address_are_refused() {
    let b = FakeBackend::seeded();
    let h = start(b.clone(), Some(TOKEN));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways",
        Some(json!({"id": "gw-a", "region": "mars", "sip": "gw-a.example:5060"})),
    );
    assert_eq!(s, 400);
    assert_eq!(
        error_of(&v),
        "region \"mars\" does not exist; add it first (POST /v1/regions)"
    );
    for sip in [
        "gw-a.example",
        "gw-a.example:0",
        ":5060",
        "a b:5060",
        "[zz]:5060",
    ] {
        let (s, v) = call(
            &h,
            "POST",
            "/v1/gateways",
            Some(json!({"id": "gw-a", "region": "eu", "sip": sip})),
        );
        assert_eq!(s, 400, "{sip}");
        assert!(error_of(&v).contains("host:port"), "{v}");
    }
    assert_eq!(b.published(), 0, "nothing invalid was published");
}

#[test]
fn gateways_add_list_state_remove() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways",
        Some(json!({"id": "gw-a", "region": "eu", "sip": "gw-a.example:5060", "capacity": 2})),
    );
    assert_eq!(s, 201);
    assert_eq!(
        v,
        json!({"id": "gw-a", "region": "eu", "sip": "gw-a.example:5060", "capacity": 2,
               "load": 0, "state": "up", "usable": true, "reason": null})
    );
    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways/gw-a/state",
        Some(json!({"state": "draining"})),
    );
    assert_eq!(s, 200);
    assert_eq!(v["state"], "draining");
    assert_eq!(v["reason"], "gateway draining");
    // Redefining keeps the state it reported.
    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways",
        Some(json!({"id": "gw-a", "region": "eu", "sip": "[::1]:5070"})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        (v["state"].clone(), v["capacity"].clone()),
        (json!("draining"), json!(0))
    );
    let (s, v) = call(
        &h,
        "POST",
        "/v1/gateways/gw-a/state",
        Some(json!({"state": "sideways"})),
    );
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("unknown variant"), "{v}");
    assert_eq!(
        call(
            &h,
            "POST",
            "/v1/gateways/gw-x/state",
            Some(json!({"state": "up"}))
        )
        .0,
        404
    );
    let (_, v) = call(&h, "GET", "/v1/gateways", None);
    assert_eq!(v["gateways"][0]["id"], "gw-a");
    assert_eq!(v["gateways"][0]["usable"], false);
    assert_eq!(
        call(&h, "DELETE", "/v1/gateways/gw-a", None),
        (200, json!({"removed": "gw-a"}))
    );
    assert_eq!(call(&h, "DELETE", "/v1/gateways/gw-a", None).0, 404);
}

#[test]
fn gateway_records_round_trip_through_the_wire_types() {
    // The CLI reads replies with the same types the server writes.
    let v = wire::GatewayView {
        gateway: Gateway {
            id: "g".into(),
            region: "eu".into(),
            sip: "g:5060".into(),
            capacity: 0,
            load: 0,
            state: GatewayState::Down,
        },
        usable: false,
        reason: Some("gateway down".into()),
    };
    let text = serde_json::to_string(&v).unwrap();
    assert_eq!(serde_json::from_str::<wire::GatewayView>(&text).unwrap(), v);
}

#[test]
fn endpoint_routes_register_list_unregister() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    add_gateway(&h, "gw-a", "eu");
    let (s, v) = call(
        &h,
        "POST",
        "/v1/endpoints/alice/routes",
        Some(json!({"gateway": "gw-a", "expires_s": 60})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"endpoint": "alice", "gateway": "gw-a", "expires_unix_ms": NOW + 60_000,
               "expired": false, "expires_in_ms": 60_000})
    );
    let (s, v) = call(&h, "GET", "/v1/endpoints/alice/routes", None);
    assert_eq!(s, 200);
    assert_eq!(v["endpoint"], "alice");
    assert_eq!(v["routes"][0]["gateway"], "gw-a");
    let (_, v) = call(&h, "GET", "/v1/endpoints/bob/routes", None);
    assert_eq!(v["routes"], json!([]));

    let (s, v) = call(
        &h,
        "POST",
        "/v1/endpoints/alice/routes",
        Some(json!({"gateway": "gw-zz", "expires_s": 60})),
    );
    assert_eq!((s, error_of(&v)), (400, "gateway \"gw-zz\" does not exist"));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/endpoints/alice/routes",
        Some(json!({"gateway": "gw-a", "expires_s": 0})),
    );
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("at least 1"));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/endpoints/alice/routes",
        Some(json!({"gateway": "gw-a", "expires_s": -5})),
    );
    assert_eq!(s, 400, "{v}");

    // Path segments are percent-decoded: an E.164 number with a plus.
    assert_eq!(
        call(
            &h,
            "POST",
            "/v1/endpoints/%2B4930123/routes",
            Some(json!({"gateway": "gw-a", "expires_s": 5})),
        )
        .0,
        200
    );
    let (_, v) = call(&h, "GET", "/v1/endpoints/%2B4930123/routes", None);
    assert_eq!(v["endpoint"], "+4930123");

    assert_eq!(
        call(&h, "DELETE", "/v1/endpoints/alice/routes/gw-a", None),
        (200, json!({"removed": "alice via gw-a"}))
    );
    let (s, v) = call(&h, "DELETE", "/v1/endpoints/alice/routes/gw-a", None);
    assert_eq!((s, error_of(&v)), (404, "no route for alice via gw-a"));
}

#[test]
fn latency_set_and_matrix() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    let (s, v) = call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "us", "b": "eu", "ms": 80})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"a": "eu", "b": "us", "ms": 80, "source": "configured",
               "configured_ms": 80, "measured_ms": null})
    );
    let (_, v) = call(&h, "GET", "/v1/latency", None);
    assert_eq!(v["regions"], json!(["eu", "us"]));
    assert_eq!(v["pairs"][0]["ms"], 80);
    let (s, v) = call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "eu", "b": "eu", "ms": 1})),
    );
    assert_eq!(
        (s, error_of(&v)),
        (400, "latency within region eu cannot be set")
    );
    let (s, v) = call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "eu", "b": "mars", "ms": 1})),
    );
    assert_eq!((s, error_of(&v)), (400, "unknown region mars"));
    let (s, _) = call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "eu", "b": "us", "ms": 1, "source": "measured"})),
    );
    assert_eq!(s, 400, "unknown fields are refused");
}
