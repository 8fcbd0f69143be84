//! SRTP, DTLS-SRTP and ICE in the SDP of a real node, against rtpengine
//! 10.5's on the same offers and answers with the same keys.
//!
//! tests/sdp_security/cases.json holds the cases; capture.py sent them to
//! rtpengine (as /work/shared/README.md runs it, interfaces 127.0.0.1 and
//! ::1) and stored its replies as CASE.offer.sdp / CASE.answer.sdp. Both
//! sides are normalised before comparing: random keys, ufrags, passwords,
//! fingerprints and candidate foundations become placeholders, ports become
//! RTP/RTP+1 of their m= line, `a=crypto` tags go (rtpengine numbers its 12
//! suites, rtpmesh its 3) and rtpengine's suites that rtpmesh-srtp lacks
//! are dropped, as are its candidates on its second interface (::1;
//! rtpmesh gives a stream one address). Everything else must match line for
//! line: order, protocols, setup roles, rtcp-mux, mid, ice-lite, trickle.

mod common;

use common::*;
use rtpmesh_ng::bencode::Value;

const OURS: [&str; 3] = [
    "AEAD_AES_128_GCM",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
];

fn cases() -> Vec<serde_json::Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sdp_security");
    let text = std::fs::read_to_string(format!("{dir}/cases.json")).expect("cases.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("cases.json is JSON");
    doc["cases"].as_array().expect("cases").clone()
}

fn captured(name: &str, which: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sdp_security");
    std::fs::read_to_string(format!("{dir}/{name}.{which}.sdp")).expect("captured SDP")
}

/// ng keys from a JSON object of strings and lists of strings.
fn keys(v: &serde_json::Value) -> Vec<(&str, Value)> {
    let obj = v.as_object().expect("keys object");
    obj.iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => Value::from(s.as_str()),
                serde_json::Value::Array(a) => {
                    Value::List(a.iter().map(|s| s.as_str().unwrap().into()).collect())
                }
                _ => panic!("key {k}: string or list"),
            };
            (k.as_str(), value)
        })
        .collect()
}

/// `{tag:SUITE}` in `answer` becomes the tag `offer` gave SUITE.
fn fill_tags(answer: &str, offer: &str) -> String {
    let mut out = answer.to_owned();
    while let Some(start) = out.find("{tag:") {
        let end = start + out[start..].find('}').unwrap();
        let suite = &out[start + 5..end];
        let tag = offer
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix("a=crypto:")?;
                let (tag, s) = rest.split_once(' ')?;
                s.starts_with(&format!("{suite} ")).then_some(tag)
            })
            .unwrap_or_else(|| panic!("{suite} not offered:\n{offer}"));
        out.replace_range(start..=end, tag);
    }
    out
}

/// The lines of `sdp` with everything random or relay-specific replaced.
fn normalise(sdp: &str) -> Vec<String> {
    let mut port = 0u16;
    let ports = |s: &str, port: u16| {
        let (rtp, rtcp) = (port.to_string(), (port + 1).to_string());
        s.split(' ')
            .map(|w| match w {
                _ if w == rtp => "RTP".to_owned(),
                _ if w == rtcp => "RTP+1".to_owned(),
                _ => w.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = Vec::new();
    for l in sdp.lines() {
        let line = if let Some(m) = l.strip_prefix("m=") {
            let mut w: Vec<&str> = m.split(' ').collect();
            port = w[1].parse().unwrap();
            w[1] = "RTP";
            format!("m={}", w.join(" "))
        } else if let Some(p) = l.strip_prefix("a=rtcp:") {
            format!("a=rtcp:{}", ports(p, port))
        } else if let Some(c) = l.strip_prefix("a=crypto:") {
            let suite = c.split(' ').nth(1).unwrap();
            if !OURS.contains(&suite) {
                continue;
            }
            format!("a=crypto:{suite} KEY")
        } else if let Some(f) = l.strip_prefix("a=fingerprint:") {
            format!("a=fingerprint:{} FP", f.split(' ').next().unwrap())
        } else if l.starts_with("a=ice-ufrag:") || l.starts_with("a=ice-pwd:") {
            let (name, v) = l.split_once(':').unwrap();
            format!("{name}:<{}>", v.len())
        } else if let Some(c) = l.strip_prefix("a=candidate:") {
            let w: Vec<&str> = c.split(' ').collect();
            if w[4] == "::1" {
                continue;
            }
            let rest = ports(&w[1..].join(" "), port);
            format!("a=candidate:F {rest}")
        } else {
            l.to_owned()
        };
        out.push(line);
    }
    out
}

fn compare(name: &str, which: &str, ours: &str) {
    let want = normalise(&captured(name, which));
    let got = normalise(ours);
    assert_eq!(
        got,
        want,
        "{name} {which}:\nrtpmesh:\n{ours}\nrtpengine:\n{}",
        captured(name, which)
    );
}

/// Runs the cases whose names are in `names` through `node`.
fn run(node: &Node, names: &[&str]) {
    let mut ng = node.client();
    let all = cases();
    for &name in names {
        let c = all.iter().find(|c| c["name"] == name).expect(name);
        let offer = ng.offer(
            name,
            "ft",
            c["offer"].as_str().unwrap(),
            keys(&c["offer_keys"]),
        );
        let offer = sdp_of(&offer);
        compare(name, "offer", &offer);
        let answer_sdp = fill_tags(c["answer"].as_str().unwrap(), &offer);
        let answer = ng.answer(name, "ft", "tt", &answer_sdp, keys(&c["answer_keys"]));
        compare(name, "answer", &sdp_of(&answer));
    }
}

/// SDES-SRTP both ways and between two SRTP legs, `SDES-no-…`, and ICE
/// (forced toward a plain callee; by default toward both sides of a
/// caller that offered ICE).
fn sdes_and_ice_match_rtpengine(backend: &str) {
    let node = Node::start(backend);
    run(
        &node,
        &[
            "savp_to_avp",
            "avp_to_savp",
            "avp_to_savp_no_32",
            "savp_to_savp",
            "ice_force",
            "ice_default",
        ],
    );
}

/// A malformed key is refused naming the line, and the node goes on.
fn a_malformed_key_is_refused_and_the_node_keeps_serving(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let bad = cases()[0]["offer"]
        .as_str()
        .unwrap()
        .replace("inline:d0Rm", "inline:!!!!");
    let r = ng.offer("bad", "ft", &bad, vec![]);
    assert_eq!(
        reason(&r),
        "Failed to parse SDP: bad a=crypto line 7: the key is not base64"
    );
    assert!(ng.pings());
    run(&node, &["savp_to_avp"]);
}

const DTLS_CASES: [&str; 4] = [
    "avp_to_savp_dtls",
    "sdes_off",
    "browser_to_avp",
    "avp_to_browser",
];

/// DTLS-SRTP toward a plain callee, `SDES-off`, and the WebRTC cases
/// (browser to plain, plain to browser): the node's certificate announced.
fn dtls_and_webrtc_match_rtpengine(backend: &str) {
    let node = Node::start(backend);
    run(&node, &DTLS_CASES);
}

both_backends!(
    sdes_and_ice_match_rtpengine,
    dtls_and_webrtc_match_rtpengine,
    a_malformed_key_is_refused_and_the_node_keeps_serving,
);
