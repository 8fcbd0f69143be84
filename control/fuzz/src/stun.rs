//! `stun`: the ICE-lite responder (rtpmesh-ice) on arbitrary datagrams.
//!
//! The first byte picks the mode. Even: the rest is the datagram as it came
//! off the wire; the fuzzer cannot forge MESSAGE-INTEGRITY, so this
//! exercises the header and attribute walk and the refusals. Odd: the rest
//! is a Binding request's attributes, put after a USERNAME that names the
//! session and signed here (MESSAGE-INTEGRITY, FINGERPRINT) as a browser
//! would: this reaches the answer. Either way, nothing panics, an answer
//! verifies with the same password and echoes the transaction id, and an
//! error response is a STUN message.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use rtpmesh_ice::{answer, error_response, is_stun, verify, StunError};
use sha1::Sha1;

const UFRAG: &str = "ufrg";
const PEER: &str = "peer";
const PWD: &str = "rtpmesh-fuzz-password-26ch";

pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        respond(rest);
    } else {
        let req = signed(rest);
        for err in respond(&req) {
            // The session's USERNAME comes first (the first one counts) and
            // the request is signed: only a malformed walk, a
            // MESSAGE-INTEGRITY or FINGERPRINT among the fuzzer's attributes,
            // one whose length swallows ours, or an unknown
            // comprehension-required one may refuse it.
            assert!(
                matches!(
                    err,
                    StunError::Malformed
                        | StunError::MissingCredentials
                        | StunError::BadIntegrity
                        | StunError::BadFingerprint
                        | StunError::UnknownAttribute(_)
                ),
                "signed request refused with {err:?}"
            );
        }
    }
}

/// Answers `req` from an IPv4 and an IPv6 source, with and without the
/// peer's ufrag known; checks every answer and error response; returns the
/// refusals.
fn respond(req: &[u8]) -> Vec<StunError> {
    let sources: [SocketAddr; 2] = [
        "192.0.2.1:32853".parse().expect("v4"),
        "[2001:db8::1]:9".parse().expect("v6"),
    ];
    let mut refusals = Vec::new();
    let mut out = [0u8; 256];
    for src in sources {
        for remote in [None, Some(PEER)] {
            match answer(req, src, UFRAG, PWD, remote, &mut out) {
                Ok(a) => {
                    let resp = &out[..a.len];
                    assert!(is_stun(req) && is_stun(resp));
                    assert_eq!(resp[8..20], req[8..20], "transaction id");
                    assert_eq!(resp[..2], [0x01, 0x01]);
                    assert_eq!(verify(resp, PWD), Ok(()), "the answer verifies");
                    assert_eq!(
                        verify(resp, "another password"),
                        Err(StunError::BadIntegrity)
                    );
                    assert_eq!(a.len, if src.is_ipv4() { 64 } else { 76 });
                }
                Err(e) => {
                    if let Some(len) = error_response(req, e, PWD, &mut out) {
                        let resp = &out[..len];
                        assert!(e.response_code().is_some());
                        assert!(is_stun(resp));
                        assert_eq!(resp[8..20], req[8..20], "transaction id");
                        if matches!(e, StunError::UnknownAttribute(_)) {
                            assert_eq!(verify(resp, PWD), Ok(()), "a 420 is signed");
                        }
                    }
                    refusals.push(e);
                }
            }
        }
    }
    refusals
}

/// A Binding request: USERNAME "ufrg:peer", then `attrs` as given (whatever
/// they are), then MESSAGE-INTEGRITY and FINGERPRINT computed over it.
fn signed(attrs: &[u8]) -> Vec<u8> {
    let attrs = &attrs[..attrs.len().min(1024)];
    let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    m.extend([0x5a; 12]);
    m.extend([0x00, 0x06, 0x00, 0x09]);
    m.extend(b"ufrg:peer\0\0\0");
    m.extend(attrs);
    m.resize(m.len().next_multiple_of(4), 0);
    set_len(&mut m, 24);
    let mut mac = Hmac::<Sha1>::new_from_slice(PWD.as_bytes()).expect("any key length");
    mac.update(&m);
    m.extend([0x00, 0x08, 0x00, 0x14]);
    m.extend(mac.finalize().into_bytes());
    set_len(&mut m, 8);
    let crc = crc32fast::hash(&m) ^ 0x5354_554e;
    m.extend([0x80, 0x28, 0x00, 0x04]);
    m.extend(crc.to_be_bytes());
    set_len(&mut m, 0);
    m
}

/// Sets the header's length to what follows it plus `extra`.
fn set_len(m: &mut [u8], extra: usize) {
    let len = u16::try_from(m.len() - 20 + extra).expect("bounded by 1024 + 64");
    m[2..4].copy_from_slice(&len.to_be_bytes());
}
