//! DTLS-SRTP and ICE legs through a real node, without a browser: a DTLS
//! peer in the test (a second, independent certificate) handshakes with
//! the node, and hostile datagrams on the leg's port are dropped, counted
//! and answered only as RFC 8489 says, while the node serves on.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::call::{call, lo, LO};
use common::json::int_at;
use common::ng::Ng;
use common::*;
use rtpmesh_dtls::{Certificate, Role, Session, SrtpKeys};
use rtpmesh_ng::bencode::Value;
use rtpmesh_srtp::SrtpContext;

/// A WebRTC-style offer (DTLS-SRTP, rtcp-mux, ICE credentials) from a
/// party at `port` whose certificate has `fingerprint` ("sha-256 AB:..").
fn webrtc_sdp(port: u16, fingerprint: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {LO}\r\ns=-\r\nc=IN IP4 {LO}\r\nt=0 0\r\n\
         m=audio {port} UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
         a=ice-ufrag:brws\r\na=ice-pwd:browserpasswordbrowserpass\r\n\
         a=fingerprint:{fingerprint}\r\na=setup:actpass\r\na=rtcp-mux\r\na=sendrecv\r\n"
    )
}

fn attr<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {sdp}"))
}

fn unhex_fp(s: &str) -> Vec<u8> {
    s.split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

struct Leg {
    a: Party,
    b: Party,
    to_a: SocketAddr,
    to_b: SocketAddr,
    node_fp: Vec<u8>,
}

/// A call whose caller `a` is a WebRTC party with certificate `cert`,
/// bridged to plain `b`; the node answers `a` as the DTLS server.
fn webrtc_call(ng: &mut Ng, id: &str, cert: &Certificate) -> Leg {
    let a = Party::new(LO);
    let b = Party::new(LO);
    let s = |v: &str| Value::from(v);
    let offer = sdp_of(&ng.offer(
        id,
        "a",
        &webrtc_sdp(a.port(), &cert.sdp_fingerprint()),
        vec![
            ("transport-protocol", s("RTP/AVP")),
            ("ICE", s("remove")),
            ("rtcp-mux", Value::List(vec![s("demux")])),
        ],
    ));
    assert!(!offer.contains("a=fingerprint"), "{offer}");
    let answer = sdp_of(&ng.answer(
        id,
        "a",
        "b",
        &audio_sdp(lo(), b.port()).replace("RTP/AVP 0 8 101", "RTP/AVP 111").replace(
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000",
            "a=rtpmap:111 opus/48000/2",
        ),
        vec![
            ("transport-protocol", s("UDP/TLS/RTP/SAVPF")),
            ("ICE", s("force")),
            ("DTLS", s("passive")),
        ],
    ));
    assert_eq!(attr(&answer, "a=setup:"), "passive", "{answer}");
    let fp = attr(&answer, "a=fingerprint:sha-256 ");
    Leg {
        to_a: media_addr(&answer, 0),
        to_b: media_addr(&offer, 0),
        node_fp: unhex_fp(fp),
        a,
        b,
    }
}

/// Runs the test's DTLS client against the node until it has keys or an
/// error; `None` when the handshake did not complete.
fn handshake(leg: &Leg, cert: &Certificate) -> Option<SrtpKeys> {
    let mut s = Session::new(
        cert,
        Role::Client,
        Some(("sha-256".into(), leg.node_fp.clone())),
        Instant::now(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        while let Some(d) = s.poll_datagram() {
            leg.a.send(leg.to_a, &d);
        }
        if let Some(k) = s.take_keys() {
            return Some(k);
        }
        match leg.a.recv_within(Duration::from_millis(100)) {
            Some((d, _)) => {
                if s.handle_datagram(Instant::now(), &d).is_err() && s.is_closed() {
                    return None;
                }
            }
            None => {
                if s.handle_timeout(Instant::now()).is_err() {
                    return None;
                }
            }
        }
    }
    None
}

fn errors(ng: &mut Ng, id: &str) -> i64 {
    let q = ng.query(id);
    int_at(&q, &["totals", "RTP", "errors"]) + int_at(&q, &["totals", "RTCP", "errors"])
}

fn dtls_keys_carry_srtp_to_the_plain_side(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let cert = Certificate::generate().unwrap();
    let leg = webrtc_call(&mut ng, "d", &cert);
    let keys = handshake(&leg, &cert).expect("the handshake completes");
    let mut tx = SrtpContext::new(&keys.local);
    let mut rx = SrtpContext::new(&keys.remote);
    for seq in 0..10u16 {
        let p = rtp(seq, 0xaaaa, 120);
        let mut buf = p.clone();
        buf.resize(p.len() + 32, 0);
        let n = tx.protect_rtp(&mut buf, p.len()).unwrap();
        leg.a.send(leg.to_a, &buf[..n]);
        assert_eq!(leg.b.recv().0, p, "SRTP from the DTLS leg arrives plain");
        let q = rtp(seq, 0xbbbb, 120);
        leg.b.send(leg.to_b, &q);
        let mut got = leg.a.recv().0;
        let n = got.len();
        let n = rx
            .unprotect_rtp(&mut got, n)
            .expect("protected with the DTLS keys");
        assert_eq!(got[..n], q[..]);
    }
}

fn a_certificate_that_does_not_match_the_fingerprint_gets_no_keys(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let announced = Certificate::generate().unwrap();
    let impostor = Certificate::generate().unwrap();
    let leg = webrtc_call(&mut ng, "m", &announced);
    assert!(
        handshake(&leg, &impostor).is_none(),
        "no keys for an impostor"
    );
    // Nothing the impostor sends reaches the other side.
    leg.a.send(leg.to_a, &rtp(1, 0xaaaa, 100));
    leg.b.expect_nothing(Duration::from_millis(200));
    let log = node.log_text();
    assert!(
        log.contains("DTLS handshake failed"),
        "the node says why:\n{log}"
    );
    assert!(ng.pings());
}

fn hostile_datagrams_on_a_webrtc_leg_are_dropped_and_counted(backend: &str) {
    let node = Node::start(backend);
    let mut ng = node.client();
    let cert = Certificate::generate().unwrap();
    let leg = webrtc_call(&mut ng, "h", &cert);
    let before = errors(&mut ng, "h");
    let mut garbage: Vec<Vec<u8>> = vec![
        // STUN header, magic cookie, nonsense attributes.
        vec![
            0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xff, 0xff,
            0, 9, 1, 2, 3, 4,
        ],
        // A DTLS record header with a length past the end.
        vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0x40, 0x00, 1, 2, 3],
        // "SRTP" before any key.
        rtp(7, 0xaaaa, 50),
    ];
    garbage.push(vec![0x80; 3]);
    for g in &garbage {
        leg.a.send(leg.to_a, g);
    }
    leg.b.expect_nothing(Duration::from_millis(200));
    assert!(errors(&mut ng, "h") > before, "counted");
    // The leg still works for its real peer, and the node for others.
    let keys = handshake(&leg, &cert).expect("the handshake still completes");
    let mut tx = SrtpContext::new(&keys.local);
    let p = rtp(1, 0xaaaa, 80);
    let mut buf = p.clone();
    buf.resize(p.len() + 32, 0);
    let n = tx.protect_rtp(&mut buf, p.len()).unwrap();
    leg.a.send(leg.to_a, &buf[..n]);
    assert_eq!(leg.b.recv().0, p);
    let c = call(&mut ng, "other", vec![], vec![]);
    c.a.send(c.to_a, &rtp(1, 1, 10));
    assert_eq!(c.b.recv().0, rtp(1, 1, 10));
}

both_backends!(
    dtls_keys_carry_srtp_to_the_plain_side,
    a_certificate_that_does_not_match_the_fingerprint_gets_no_keys,
    hostile_datagrams_on_a_webrtc_leg_are_dropped_and_counted,
);
