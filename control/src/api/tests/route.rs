//! Route selection: the explanation for operators and the answer for
//! SIP proxies.

use super::*;

#[test]
fn explain_names_the_chosen_gateway_and_the_failures() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    add_gateway(&h, "gw-us", "us");
    call(
        &h,
        "POST",
        "/v1/endpoints/bob/routes",
        Some(json!({"gateway": "gw-us", "expires_s": 600})),
    );
    call(
        &h,
        "POST",
        "/v1/latency",
        Some(json!({"a": "eu", "b": "us", "ms": 80})),
    );
    let (s, v) = call(&h, "GET", "/v1/route/explain?endpoint=bob&from=eu", None);
    assert_eq!(s, 200);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["decision"]["callee"]["gateway"], "gw-us");
    assert_eq!(v["decision"]["callee"]["node"], "us-1");
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("via gateway gw-us"), "{text}");
    assert!(text.contains("80 ms"), "{text}");

    // From a gateway, and with no endpoint: only the caller's node.
    let (_, v) = call(&h, "GET", "/v1/route/explain?gateway=gw-us", None);
    assert_eq!(v["decision"]["node"], "us-1");
    assert_eq!(v["decision"]["callee"], Value::Null);

    let (s, v) = call(&h, "GET", "/v1/route/explain?endpoint=carol&from=eu", None);
    assert_eq!(s, 200);
    assert_eq!(v["decision"], Value::Null);
    assert_eq!(v["error"]["kind"], "no_route");
    assert!(v["text"].as_str().unwrap().contains("no route"));

    for q in [
        "endpoint=bob",
        "endpoint=bob&from=eu&gateway=gw-us",
        "endpoint=bob&from=eu&from=us",
        "endpoint=bob&to=eu",
        "endpoint=%zz&from=eu",
    ] {
        let (s, v) = call(&h, "GET", &format!("/v1/route/explain?{q}"), None);
        assert_eq!(s, 400, "{q}: {v}");
    }
}

#[test]
fn route_sip_answers_the_gateway_as_text_and_pins_the_call() {
    let b = FakeBackend::seeded();
    let h = start(b.clone(), Some(TOKEN));
    add_gateway(&h, "gw-us", "us");
    call(
        &h,
        "POST",
        "/v1/endpoints/bob/routes",
        Some(json!({"gateway": "gw-us", "expires_s": 600})),
    );
    let (s, ctype, body) = get_text(&h, "/v1/route/sip?endpoint=bob&from=eu&call-id=c1%40host");
    assert_eq!((s, body.as_str()), (200, "gw-us.example:5060\n"), "{ctype}");
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    assert_eq!(
        *b.pinned.lock().unwrap(),
        [("c1@host".to_owned(), "eu-1".to_owned())]
    );
    // `+` is itself here (Kamailio's s.escape.param leaves it).
    let (s, _, _) = get_text(&h, "/v1/route/sip?endpoint=bob&from=eu&call-id=a+b%25c");
    assert_eq!(s, 200);
    assert_eq!(b.pinned.lock().unwrap()[1].0, "a+b%c");
    b.pinned.lock().unwrap().pop();
    // Without a call id nothing is pinned.
    let (s, _, _) = get_text(&h, "/v1/route/sip?endpoint=bob&gateway=gw-us");
    assert_eq!(s, 200);
    assert_eq!(b.pinned.lock().unwrap().len(), 1);

    // No route: 404, a line saying so, then the reasons.
    let (s, ctype, body) = get_text(&h, "/v1/route/sip?endpoint=carol&from=eu&call-id=c2");
    assert_eq!(s, 404);
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    assert!(body.starts_with("no route: "), "{body}");
    assert_eq!(b.pinned.lock().unwrap().len(), 1);

    // Every gateway for bob full: 503 (a load limit, not a missing route).
    call(
        &h,
        "POST",
        "/v1/gateways/gw-us/state",
        Some(json!({"state": "draining"})),
    );
    let (s, _, body) = get_text(&h, "/v1/route/sip?endpoint=bob&from=eu");
    assert_eq!(s, 503, "{body}");

    for q in [
        "from=eu",
        "endpoint=bob",
        "endpoint=bob&from=eu&call-id=",
        "endpoint=bob&from=eu&call-id=a&call-id=b",
    ] {
        let (s, _, body) = get_text(&h, &format!("/v1/route/sip?{q}"));
        assert_eq!(s, 400, "{q}: {body}");
    }
    assert_eq!(
        request(
            h.local_addr(),
            "POST",
            "/v1/route/sip",
            Some(TOKEN),
            Some("{}")
        )
        .0,
        405
    );
    assert_eq!(
        request(
            h.local_addr(),
            "GET",
            "/v1/route/sip?endpoint=bob&from=eu",
            None,
            None
        )
        .0,
        401
    );
}
