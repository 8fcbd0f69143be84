//! `ng_request`: a whole ng datagram as the server loop takes it apart.

use rtpmesh_ng::ng::{decode_body, error, parse_request, split_datagram, NgError};

/// Splits the datagram into cookie and body, decodes the body and parses
/// the request, as `rtpmesh-ng-udp`'s server does; a refusal must have
/// rtpengine's reason text and encode as an error reply.
pub fn check(data: &[u8]) {
    let Ok((cookie, body)) = split_datagram(data) else {
        return;
    };
    assert!(!cookie.is_empty() && !cookie.contains(&b' '));
    let parsed = decode_body(body).and_then(|v| parse_request(&v).map(|r| (v, r)));
    match parsed {
        Ok((_, req)) => {
            // The command's name is one of ours.
            assert!(!req.op.command().name().is_empty());
        }
        Err(e) => refusal(cookie, &e),
    }
}

fn refusal(cookie: &[u8], e: &NgError) {
    if e.is_silent() {
        return;
    }
    let reason = e.reason();
    assert!(!reason.is_empty());
    let reply = rtpmesh_ng::ng::encode_reply(cookie, &error(&reason));
    assert!(reply.starts_with(cookie));
}
