//! The responder against RFC 5769's vectors and hand-built requests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::*;

/// RFC 5769 §2.1: the sample request (short-term credentials).
const REQ_2_1: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, // header
    0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c,
    0x69, 0x65, 0x6e, 0x74, // SOFTWARE "STUN test client"
    0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, // PRIORITY
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, // ICE-CONTROLLED
    0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
    0x20, // USERNAME "evtj:h6vY"
    0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5,
    0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, // MESSAGE-INTEGRITY
    0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf, // FINGERPRINT
];

/// RFC 5769 §2.2: the sample IPv4 response (to 192.0.2.1:32853).
const RESP_2_2: [u8; 80] = [
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, // header
    0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72,
    0x20, // SOFTWARE
    0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6,
    0x43, // XOR-MAPPED-ADDRESS
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, // MESSAGE-INTEGRITY
    0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96, // FINGERPRINT
];

/// RFC 5769 §2.3: the sample IPv6 response (to [2001:db8:1234:5678:11:2233:4455:6677]:32853).
const RESP_2_3: [u8; 92] = [
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, // header
    0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72,
    0x20, // SOFTWARE
    0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79,
    0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, // XOR-MAPPED-ADDRESS
    0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c,
    0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, // MESSAGE-INTEGRITY
    0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c, // FINGERPRINT
];

/// RFC 5769's password and the ufrags of its USERNAME "evtj:h6vY".
const PWD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const LOCAL: &str = "evtj";
const REMOTE: &str = "h6vY";

fn v4_src() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 32853)
}

fn v6_src() -> SocketAddr {
    let ip: Ipv6Addr = "2001:db8:1234:5678:11:2233:4455:6677".parse().unwrap();
    SocketAddr::new(ip.into(), 32853)
}

/// The attributes of a message, as (type, value) pairs: a second, simpler walk.
fn attrs(msg: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at < msg.len() {
        let typ = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
        out.push((typ, msg[at + 4..at + 4 + len].to_vec()));
        at += 4 + ((len + 3) & !3);
    }
    out
}

/// Builds a Binding request (type `typ`) with `attrs`, then MESSAGE-INTEGRITY
/// keyed with `mi` and FINGERPRINT if asked: written independently of the
/// crate's writer (plain Vec, the hmac crate directly, crc32fast).
fn build(typ: u16, attrs: &[(u16, &[u8])], mi: Option<&str>, fp: bool) -> Vec<u8> {
    let mut m = typ.to_be_bytes().to_vec();
    m.extend([0, 0]);
    m.extend(MAGIC_COOKIE.to_be_bytes());
    m.extend([7u8; 12]);
    let push = |m: &mut Vec<u8>, t: u16, v: &[u8]| {
        m.extend(t.to_be_bytes());
        m.extend((v.len() as u16).to_be_bytes());
        m.extend(v);
        m.resize(m.len() + (4 - v.len() % 4) % 4, 0);
    };
    let set_len = |m: &mut Vec<u8>, extra: usize| {
        let len = (m.len() - HEADER_LEN + extra) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
    };
    for (t, v) in attrs {
        push(&mut m, *t, v);
    }
    if let Some(pwd) = mi {
        set_len(&mut m, 24);
        let mut mac = Hmac::<Sha1>::new_from_slice(pwd.as_bytes()).unwrap();
        mac.update(&m);
        push(
            &mut m,
            attr::MESSAGE_INTEGRITY,
            &mac.finalize().into_bytes(),
        );
    }
    if fp {
        set_len(&mut m, 8);
        let crc = crc32fast::hash(&m) ^ 0x5354_554e;
        push(&mut m, attr::FINGERPRINT, &crc.to_be_bytes());
    }
    set_len(&mut m, 0);
    m
}

/// A request as browsers send it, USERNAME "evtj:h6vY", signed with PWD.
fn request(extra: &[(u16, &[u8])]) -> Vec<u8> {
    let mut a: Vec<(u16, &[u8])> = vec![(attr::USERNAME, b"evtj:h6vY")];
    a.extend_from_slice(extra);
    build(0x0001, &a, Some(PWD), true)
}

fn answer_v4(req: &[u8], remote: Option<&str>) -> Result<Answered, StunError> {
    answer(req, v4_src(), LOCAL, PWD, remote, &mut [0; 128])
}

/// Re-signs FINGERPRINT after a test edited a message (so that the check
/// under test, not the fingerprint, is what fails).
fn refingerprint(m: &mut [u8]) {
    let at = m.len() - 8;
    let crc = crc32fast::hash(&m[..at]) ^ 0x5354_554e;
    m[at + 4..].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn rfc5769_vectors_verify() {
    assert_eq!(verify(&REQ_2_1, PWD), Ok(()));
    assert_eq!(verify(&RESP_2_2, PWD), Ok(()));
    assert_eq!(verify(&RESP_2_3, PWD), Ok(()));
    assert_eq!(verify(&REQ_2_1, "wrong"), Err(StunError::BadIntegrity));
    // Our builder reproduces the sample request's checksums byte for byte.
    let body: Vec<(u16, &[u8])> = vec![
        (attr::SOFTWARE, &REQ_2_1[24..40]),
        (attr::PRIORITY, &REQ_2_1[44..48]),
        (attr::ICE_CONTROLLED, &REQ_2_1[52..60]),
    ];
    let mut ours = build(0x0001, &body, None, false);
    ours[8..20].copy_from_slice(&REQ_2_1[8..20]);
    ours.extend_from_slice(&REQ_2_1[60..76]); // USERNAME with the vector's space padding
    assert_eq!(ours.len(), 76);
    let mut mac = Hmac::<Sha1>::new_from_slice(PWD.as_bytes()).unwrap();
    let mut head = ours.clone();
    head[2..4].copy_from_slice(&(76u16 + 24 - 20).to_be_bytes());
    mac.update(&head);
    assert_eq!(mac.finalize().into_bytes()[..], REQ_2_1[80..100]);
}

#[test]
fn the_rfc5769_request_is_answered_like_its_ipv4_response() {
    let mut out = [0u8; 128];
    let a = answer(&REQ_2_1, v4_src(), LOCAL, PWD, Some(REMOTE), &mut out).unwrap();
    assert_eq!(
        a,
        Answered {
            len: 64,
            use_candidate: false,
            controlling: false
        }
    );
    let resp = &out[..a.len];
    assert_eq!(resp[..2], RESP_2_2[..2]); // Binding success
    assert_eq!(resp[4..20], RESP_2_2[4..20]); // cookie, transaction id
    let got = attrs(resp);
    let want: Vec<_> = attrs(&RESP_2_2)
        .into_iter()
        .filter(|(t, _)| *t != attr::SOFTWARE)
        .collect();
    let types = |v: &[(u16, Vec<u8>)]| v.iter().map(|a| a.0).collect::<Vec<_>>();
    assert_eq!(types(&got), types(&want));
    assert_eq!(got[0], want[0]); // XOR-MAPPED-ADDRESS, byte for byte
    assert_eq!(verify(resp, PWD), Ok(()));
    assert_eq!(verify(resp, "wrong"), Err(StunError::BadIntegrity));
}

#[test]
fn an_ipv6_source_is_answered_like_the_rfc5769_ipv6_response() {
    let mut out = [0u8; 128];
    let a = answer(&REQ_2_1, v6_src(), LOCAL, PWD, Some(REMOTE), &mut out).unwrap();
    assert_eq!(a.len, 76);
    let resp = &out[..a.len];
    assert_eq!(attrs(resp)[0], attrs(&RESP_2_3)[1]);
    assert_eq!(verify(resp, PWD), Ok(()));
}

#[test]
fn a_v4_mapped_v6_source_is_answered_as_ipv4() {
    let mapped = SocketAddr::new(
        IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()),
        32853,
    );
    let mut out = [0u8; 128];
    let a = answer(&REQ_2_1, mapped, LOCAL, PWD, None, &mut out).unwrap();
    assert_eq!(attrs(&out[..a.len])[0], attrs(&RESP_2_2)[1]);
}

#[test]
fn use_candidate_and_controlling_are_reported() {
    let plain = answer_v4(&request(&[]), None).unwrap();
    assert!(!plain.use_candidate && !plain.controlling);
    let nominating = request(&[(attr::ICE_CONTROLLING, &[1; 8]), (attr::USE_CANDIDATE, &[])]);
    let a = answer_v4(&nominating, Some(REMOTE)).unwrap();
    assert!(a.use_candidate && a.controlling);
}

#[test]
fn use_candidate_after_message_integrity_is_not_authenticated() {
    let mut req = request(&[]);
    // Move FINGERPRINT out, slip USE-CANDIDATE in after MESSAGE-INTEGRITY, re-add FINGERPRINT.
    req.truncate(req.len() - 8);
    req.extend([0x00, 0x25, 0x00, 0x00]);
    req.extend([0x80, 0x28, 0x00, 0x04, 0, 0, 0, 0]);
    let len = (req.len() - HEADER_LEN) as u16;
    req[2..4].copy_from_slice(&len.to_be_bytes());
    refingerprint(&mut req);
    assert!(!answer_v4(&req, None).unwrap().use_candidate);
}

#[test]
fn a_chromium_style_request_is_answered() {
    // What Chromium 156 sends (observed): USERNAME, GOOG-NETWORK-INFO (0xC057,
    // comprehension-optional), ICE-CONTROLLING, USE-CANDIDATE (when it
    // nominates), PRIORITY, MESSAGE-INTEGRITY, FINGERPRINT, in that order.
    let req = request(&[
        (0xC057, &[0x00, 0x01, 0x00, 0x0a]),
        (attr::ICE_CONTROLLING, &[0x11; 8]),
        (attr::USE_CANDIDATE, &[]),
        (attr::PRIORITY, &[0x6e, 0x7f, 0x1e, 0xff]),
    ]);
    let mut out = [0u8; 128];
    let a = answer(&req, v4_src(), LOCAL, PWD, Some(REMOTE), &mut out).unwrap();
    assert!(a.use_candidate && a.controlling);
    assert_eq!(out[8..20], req[8..20]);
    assert_eq!(verify(&out[..a.len], PWD), Ok(()));
}

#[test]
fn a_tampered_integrity_is_bad_integrity_and_gets_401() {
    let mut req = request(&[]);
    let mi = req.len() - 8 - 20;
    req[mi] ^= 1;
    refingerprint(&mut req);
    assert_eq!(answer_v4(&req, None), Err(StunError::BadIntegrity));
    let wrong_key = build(0x0001, &[(attr::USERNAME, b"evtj:h6vY")], Some("x"), true);
    assert_eq!(answer_v4(&wrong_key, None), Err(StunError::BadIntegrity));
    assert_error_response(&req, StunError::BadIntegrity, 401, "Unauthorized");
}

#[test]
fn a_wrong_username_is_unknown_user() {
    for user in [
        &b"nope:h6vY"[..],
        b"evtj",
        b"evtj:",
        b"evtjh6vY",
        b"evt:h6vY",
        b"",
    ] {
        let req = build(0x0001, &[(attr::USERNAME, user)], Some(PWD), true);
        assert_eq!(
            answer_v4(&req, None),
            Err(StunError::UnknownUser),
            "{user:?}"
        );
    }
    // The peer's part is checked once its SDP named it, not before.
    let req = request(&[]);
    assert_eq!(answer_v4(&req, Some("othr")), Err(StunError::UnknownUser));
    assert!(answer_v4(&req, None).is_ok());
    assert_error_response(&req, StunError::UnknownUser, 401, "Unauthorized");
}

#[test]
fn a_bad_or_missing_fingerprint_is_dropped() {
    let mut req = request(&[]);
    let last = req.len() - 1;
    req[last] ^= 0x80;
    assert_eq!(answer_v4(&req, None), Err(StunError::BadFingerprint));
    let unprinted = build(0x0001, &[(attr::USERNAME, b"evtj:h6vY")], Some(PWD), false);
    assert_eq!(answer_v4(&unprinted, None), Err(StunError::BadFingerprint));
    assert_eq!(StunError::BadFingerprint.response_code(), None);
    assert_eq!(
        error_response(&req, StunError::BadFingerprint, PWD, &mut [0; 128]),
        None
    );
}

#[test]
fn missing_credentials_get_400() {
    let no_mi = build(0x0001, &[(attr::USERNAME, b"evtj:h6vY")], None, true);
    assert_eq!(answer_v4(&no_mi, None), Err(StunError::MissingCredentials));
    let no_user = build(0x0001, &[], Some(PWD), true);
    assert_eq!(
        answer_v4(&no_user, None),
        Err(StunError::MissingCredentials)
    );
    assert_error_response(&no_mi, StunError::MissingCredentials, 400, "Bad request");
}

#[test]
fn an_unknown_comprehension_required_attribute_gets_420_once_authenticated() {
    let req = request(&[(0x0003, &[0; 4]), (0x7fff, &[1]), (0xC057, &[0; 4])]);
    let err = answer_v4(&req, None).unwrap_err();
    assert_eq!(err, StunError::UnknownAttribute(0x0003));
    let mut out = [0u8; 128];
    let len = error_response(&req, err, PWD, &mut out).unwrap();
    let resp = &out[..len];
    let got = attrs(resp);
    assert_eq!(
        got[0],
        (attr::ERROR_CODE, b"\0\0\x04\x14Unknown attribute".to_vec())
    );
    assert_eq!(
        got[1],
        (attr::UNKNOWN_ATTRIBUTES, vec![0x00, 0x03, 0x7f, 0xff])
    );
    assert_eq!(verify(resp, PWD), Ok(())); // signed: the request was authenticated
                                           // Unauthenticated, the unknown attribute does not matter: 401 first.
    let forged = build(
        0x0001,
        &[(attr::USERNAME, b"evtj:h6vY"), (0x0003, &[0; 4])],
        Some("x"),
        true,
    );
    assert_eq!(answer_v4(&forged, None), Err(StunError::BadIntegrity));
}

/// Checks the error response to `req` for `err`: Binding error, the
/// request's transaction id, ERROR-CODE `code` with `reason`, FINGERPRINT,
/// no MESSAGE-INTEGRITY.
fn assert_error_response(req: &[u8], err: StunError, code: u16, reason: &str) {
    assert_eq!(err.response_code(), Some(code));
    let mut out = [0u8; 128];
    let len = error_response(req, err, PWD, &mut out).unwrap();
    let resp = &out[..len];
    assert_eq!(resp[..2], [0x01, 0x11]);
    assert_eq!(resp[8..20], req[8..20]);
    let got = attrs(resp);
    let mut value = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
    value.extend(reason.as_bytes());
    assert_eq!(got[0], (attr::ERROR_CODE, value));
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].0, attr::FINGERPRINT);
    assert_eq!(verify(resp, PWD), Err(StunError::MissingCredentials)); // fingerprint fine, no MI
    assert_eq!(error_response(req, err, PWD, &mut out[..len - 1]), None);
}

#[test]
fn responses_indications_and_other_methods_are_not_requests() {
    assert_eq!(answer_v4(&RESP_2_2, None), Err(StunError::NotRequest));
    let indication = build(0x0011, &[(attr::USERNAME, b"evtj:h6vY")], Some(PWD), true);
    assert_eq!(answer_v4(&indication, None), Err(StunError::NotRequest));
    let allocate = build(0x0003, &[(attr::USERNAME, b"evtj:h6vY")], Some(PWD), true);
    assert_eq!(answer_v4(&allocate, None), Err(StunError::NotRequest));
    assert_eq!(
        error_response(&allocate, StunError::NotRequest, PWD, &mut [0; 128]),
        None
    );
}

#[test]
fn a_small_buffer_is_no_room() {
    let mut out = [0u8; 63];
    assert_eq!(
        answer(&REQ_2_1, v4_src(), LOCAL, PWD, None, &mut out),
        Err(StunError::NoRoom)
    );
    let mut out = [0u8; 75];
    assert_eq!(
        answer(&REQ_2_1, v6_src(), LOCAL, PWD, None, &mut out),
        Err(StunError::NoRoom)
    );
    let mut out = [0u8; 64];
    assert_eq!(
        answer(&REQ_2_1, v4_src(), LOCAL, PWD, None, &mut out).map(|a| a.len),
        Ok(64)
    );
}

#[test]
fn truncations_are_malformed_and_nothing_panics() {
    let mut out = [0u8; 128];
    for n in 0..REQ_2_1.len() {
        let r = answer(&REQ_2_1[..n], v4_src(), LOCAL, PWD, None, &mut out);
        assert_eq!(r, Err(StunError::Malformed), "prefix of {n}");
        assert_eq!(verify(&REQ_2_1[..n], PWD), Err(StunError::Malformed));
    }
    // A truncated message whose length field was fixed up: attributes run short.
    for n in (HEADER_LEN..REQ_2_1.len()).step_by(4) {
        let mut m = REQ_2_1[..n].to_vec();
        m[2..4].copy_from_slice(&((n - HEADER_LEN) as u16).to_be_bytes());
        let r = answer(&m, v4_src(), LOCAL, PWD, None, &mut out);
        assert!(r.is_err(), "fixed-up prefix of {n}: {r:?}");
    }
}

#[test]
fn every_byte_flip_is_refused_or_answered_verifiably() {
    let req = request(&[(attr::ICE_CONTROLLING, &[1; 8]), (attr::USE_CANDIDATE, &[])]);
    let mut out = [0u8; 128];
    for i in 0..req.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut m = req.clone();
            m[i] ^= flip;
            // With and without the fingerprint re-signed, so later checks are reached.
            for fixed in [false, true] {
                if fixed && m.len() >= 8 {
                    refingerprint(&mut m);
                }
                match answer(&m, v6_src(), LOCAL, PWD, None, &mut out) {
                    Ok(a) => assert_eq!(verify(&out[..a.len], PWD), Ok(())),
                    Err(e) => {
                        if let Some(len) = error_response(&m, e, PWD, &mut out) {
                            assert!(len <= out.len() && is_stun(&out[..len]));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn is_stun_demuxes_by_first_byte_and_cookie() {
    assert!(is_stun(&REQ_2_1));
    assert!(is_stun(&RESP_2_2));
    let mut rtp = REQ_2_1;
    rtp[0] = 0x80;
    assert!(!is_stun(&rtp));
    let mut dtls = REQ_2_1;
    dtls[0] = 22;
    assert!(!is_stun(&dtls));
    let mut no_cookie = REQ_2_1;
    no_cookie[4] ^= 1;
    assert!(!is_stun(&no_cookie));
    assert!(!is_stun(&REQ_2_1[..19]));
    assert!(!is_stun(&[]));
}
