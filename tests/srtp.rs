//! SDES-SRTP legs through a real node, checked with an independent SRTP
//! implementation (libsrtp2): SRTP <-> plain RTP both ways, SRTP <-> SRTP
//! with different keys, and forged or replayed packets dropped and counted.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::call::{call, lo, LO};
use common::json::*;
use common::libsrtp::peer::LibSrtp;
use common::libsrtp::{base64, unbase64};
use common::ng::{reason, result, Ng};
use common::*;
use rtpmesh_ng::bencode::Value;

/// An SAVP audio SDP for a party at `port` offering `crypto` lines
/// (tag, suite, key and salt).
fn savp_sdp(port: u16, crypto: &[(u32, &str, &[u8])]) -> String {
    let mut s = format!(
        "v=0\r\no=- 1545997027 1 IN IP4 {LO}\r\ns=tester\r\nc=IN IP4 {LO}\r\nt=0 0\r\nm=audio {port} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    for (tag, suite, key) in crypto {
        s.push_str(&format!(
            "a=crypto:{tag} {suite} inline:{}\r\n",
            base64(key)
        ));
    }
    s.push_str("a=sendrecv\r\n");
    s
}

/// The `a=crypto` lines of `sdp`: (tag, suite, key and salt).
fn crypto_lines(sdp: &str) -> Vec<(u32, String, Vec<u8>)> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=crypto:"))
        .map(|v| {
            let mut it = v.split(' ');
            let tag = it.next().unwrap().parse().unwrap();
            let suite = it.next().unwrap().to_owned();
            let key = it.next().unwrap().strip_prefix("inline:").unwrap();
            let key = key.split('|').next().unwrap();
            (tag, suite, unbase64(key))
        })
        .collect()
}

fn m_line(sdp: &str) -> &str {
    sdp.lines().find(|l| l.starts_with("m=")).expect("m= line")
}

fn key_of(seed: u8, len: usize) -> Vec<u8> {
    (0..len as u8)
        .map(|i| i.wrapping_mul(seed) ^ 0xa5)
        .collect()
}

fn str_(s: &str) -> Value {
    Value::from(s)
}

/// Errors the node counted on call `id` (query's RTP and RTCP totals).
fn errors(ng: &mut Ng, id: &str) -> i64 {
    let q = ng.query(id);
    int_at(&q, &["totals", "RTP", "errors"]) + int_at(&q, &["totals", "RTCP", "errors"])
}

fn srtp_caller_to_plain_callee(backend: &str, suite: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let (a, a_rtcp) = Party::pair(LO);
    let (b, b_rtcp) = Party::pair(LO);
    let len = if suite == "AEAD_AES_128_GCM" { 28 } else { 30 };
    let ka = key_of(7, len);
    let offer = sdp_of(&ng.offer(
        "s",
        "a",
        &savp_sdp(a.port(), &[(1, suite, &ka)]),
        vec![("transport-protocol", str_("RTP/AVP"))],
    ));
    assert!(m_line(&offer).contains(" RTP/AVP "), "{offer}");
    assert!(
        crypto_lines(&offer).is_empty(),
        "no crypto to a plain callee: {offer}"
    );
    let answer = sdp_of(&ng.answer("s", "a", "b", &audio_sdp(lo(), b.port()), vec![]));
    assert!(m_line(&answer).contains(" RTP/SAVP "), "{answer}");
    let ours = crypto_lines(&answer);
    let [(1, got_suite, kr)] = &ours[..] else {
        panic!("one crypto line with the offer's tag expected: {answer}");
    };
    assert_eq!(got_suite, suite);
    assert_ne!(kr, &ka, "a fresh key for our direction");
    let to_b = media_addr(&offer, 0);
    let to_a = media_addr(&answer, 0);
    let mut a_tx = LibSrtp::start(suite, &ka);
    let mut a_rx = LibSrtp::start(suite, kr);
    for seq in 0..20u16 {
        let p = rtp(seq, 0xaaaa, 160);
        a.send(to_a, &a_tx.protect_rtp(&p));
        assert_eq!(
            b.recv().0,
            p,
            "{suite}: A's SRTP reaches B as the RTP it protected"
        );
        let q = rtp(seq, 0xbbbb, 160);
        b.send(to_b, &q);
        let (srtp, from) = a.recv();
        assert_eq!(from, to_a);
        assert_ne!(srtp, q, "not in the clear");
        assert_eq!(
            a_rx.unprotect_rtp(&srtp),
            Ok(q),
            "{suite}: libsrtp reads B's RTP"
        );
    }
    let rr = rtcp_rr(0xaaaa);
    a_rtcp.send(
        SocketAddr::new(to_a.ip(), to_a.port() + 1),
        &a_tx.protect_rtcp(&rr),
    );
    assert_eq!(b_rtcp.recv().0, rr, "SRTCP arrives as RTCP");
    let rr = rtcp_rr(0xbbbb);
    b_rtcp.send(SocketAddr::new(to_b.ip(), to_b.port() + 1), &rr);
    let srtcp = a_rtcp.recv().0;
    assert_eq!(a_rx.unprotect_rtcp(&srtcp), Ok(rr), "RTCP leaves as SRTCP");

    // A forged packet and a replayed one go nowhere, and are counted.
    let before = errors(&mut ng, "s");
    let good = a_tx.protect_rtp(&rtp(100, 0xaaaa, 160));
    let mut forged = good.clone();
    forged[30] ^= 0x40;
    a.send(to_a, &forged);
    a.send(to_a, &good);
    assert_eq!(b.recv().0, rtp(100, 0xaaaa, 160));
    a.send(to_a, &good);
    b.expect_nothing(Duration::from_millis(200));
    assert_eq!(
        errors(&mut ng, "s") - before,
        2,
        "forgery and replay counted"
    );
    assert!(ng.pings(), "the node keeps serving");
}

fn srtp_to_srtp_with_different_keys(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let a = Party::new(LO);
    let b = Party::new(LO);
    let suite = "AES_CM_128_HMAC_SHA1_80";
    let ka = key_of(3, 30);
    let kb = key_of(5, 30);
    let offer = sdp_of(&ng.offer("ss", "a", &savp_sdp(a.port(), &[(1, suite, &ka)]), vec![]));
    let to_b_keys = crypto_lines(&offer);
    let (_, _, k_to_b) = to_b_keys
        .iter()
        .find(|(_, s, _)| s == suite)
        .unwrap_or_else(|| panic!("the callee is offered {suite}: {offer}"));
    assert_ne!(
        k_to_b, &ka,
        "the callee gets rtpmesh's key, not the caller's"
    );
    let answer = sdp_of(&ng.answer(
        "ss",
        "a",
        "b",
        &savp_sdp(b.port(), &[(1, suite, &kb)]),
        vec![],
    ));
    let [(_, _, k_to_a)] = &crypto_lines(&answer)[..] else {
        panic!("one crypto line in the answer: {answer}");
    };
    let (to_a, to_b) = (media_addr(&answer, 0), media_addr(&offer, 0));
    let (mut a_tx, mut b_tx) = (LibSrtp::start(suite, &ka), LibSrtp::start(suite, &kb));
    let (mut a_rx, mut b_rx) = (LibSrtp::start(suite, k_to_a), LibSrtp::start(suite, k_to_b));
    for seq in 0..10u16 {
        let p = rtp(seq, 0xaaaa, 100);
        a.send(to_a, &a_tx.protect_rtp(&p));
        assert_eq!(b_rx.unprotect_rtp(&b.recv().0), Ok(p));
        let q = rtp(seq, 0xbbbb, 100);
        b.send(to_b, &b_tx.protect_rtp(&q));
        assert_eq!(a_rx.unprotect_rtp(&a.recv().0), Ok(q));
    }
}

fn a_bad_crypto_line_is_refused_and_the_node_serves_on(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let a = Party::new(LO);
    for bad in [
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:!!!notbase64!!!",
    ] {
        let sdp = savp_sdp(a.port(), &[]).replace("a=sendrecv", &format!("{bad}\r\na=sendrecv"));
        let r = ng.offer(
            "bad",
            "a",
            &sdp,
            vec![("transport-protocol", str_("RTP/AVP"))],
        );
        assert_eq!(result(&r), "error", "{bad}: {r:?}");
        assert!(!reason(&r).is_empty());
    }
    let c = call(&mut ng, "good", vec![], vec![]);
    c.a.send(c.to_a, &rtp(1, 1, 10));
    assert_eq!(c.b.recv().0, rtp(1, 1, 10));
}

fn aes_cm_80(backend: &str) {
    srtp_caller_to_plain_callee(backend, "AES_CM_128_HMAC_SHA1_80");
}
fn aes_cm_32(backend: &str) {
    srtp_caller_to_plain_callee(backend, "AES_CM_128_HMAC_SHA1_32");
}
fn aead_aes_128_gcm(backend: &str) {
    srtp_caller_to_plain_callee(backend, "AEAD_AES_128_GCM");
}

both_backends!(
    aes_cm_80,
    aes_cm_32,
    aead_aes_128_gcm,
    srtp_to_srtp_with_different_keys,
    a_bad_crypto_line_is_refused_and_the_node_serves_on,
);
