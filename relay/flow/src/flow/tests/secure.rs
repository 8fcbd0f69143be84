//! Legs whose peer speaks SRTP or ICE: the step unprotects, protects and
//! answers in the receive buffer.

use std::time::Instant;

use rtpmesh_srtp::{MasterKey, SrtpContext, Suite};

use super::*;
use crate::transmit::Transmit;

fn key(suite: Suite, seed: u8) -> MasterKey {
    let bytes: Vec<u8> = (0..44u8).map(|i| i.wrapping_mul(seed) ^ 0x5a).collect();
    MasterKey::new(suite, &bytes[..suite.key_len() + suite.salt_len()]).unwrap()
}

/// Flow 1 faces an SDES-SRTP party (its keys `theirs`/`ours`), flow 2 a
/// plain one; routed to each other. Flow 3 (plain) is a recording's sender.
fn sdes_pair(suite: Suite) -> (FlowTable, Slot, Slot, MasterKey, MasterKey) {
    let theirs = key(suite, 7);
    let ours = key(suite, 13);
    let mut t = FlowTable::new(MediaClock::new(Instant::now()));
    let mut a = spec(
        1,
        Some("10.0.0.1:4000"),
        Latching::Learn,
        Carries::Muxed,
        vec![Output::Peer(FlowId(2))],
    );
    a.security.sdes = Some(SdesKeys {
        inbound: theirs.clone(),
        outbound: ours.clone(),
    });
    let b = spec(
        2,
        Some("10.0.0.2:5000"),
        Latching::Learn,
        Carries::Muxed,
        vec![Output::Peer(FlowId(1))],
    );
    let sa = t.insert(&a);
    let sb = t.insert(&b);
    t.update(&a).unwrap();
    t.update(&b).unwrap();
    (t, sa, sb, theirs, ours)
}

fn body(buf: &[u8], t: &Transmit) -> Vec<u8> {
    t.body(buf, buf.len()).unwrap().to_vec()
}

#[test]
fn srtp_from_the_peer_reaches_the_plain_leg_as_the_rtp_it_protected() {
    for suite in [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::AeadAes128Gcm,
        Suite::AeadAes256Gcm,
    ] {
        let (mut t, sa, sb, theirs, _) = sdes_pair(suite);
        let mut sender = SrtpContext::new(&theirs);
        let mut out = Forwarded::new();
        let now = Instant::now();
        for (seq, plain) in [(1, rtp(1)), (2, rtp(2)), (3, rtcp_rr())] {
            let mut p = plain.clone();
            p.resize(plain.len() + 32, 0);
            let n = if seq == 3 {
                sender.protect_rtcp(&mut p, plain.len()).unwrap()
            } else {
                sender.protect_rtp(&mut p, plain.len()).unwrap()
            };
            let buf = step(&mut t, now, sa, addr("10.0.0.1:4000"), &p[..n], &mut out);
            let [tx] = out.transmits() else {
                panic!("{suite}: one copy expected, got {:?}", out.transmits());
            };
            assert_eq!(tx.via, sb);
            assert_eq!(body(&buf, tx), plain, "{suite}: packet {seq}");
        }
        let c = snap(&t, sa);
        assert_eq!((c.rtp_packets, c.rtcp_packets, c.srtp_failures), (2, 1, 0));
    }
}

#[test]
fn plain_rtp_to_the_srtp_peer_is_protected_with_our_key() {
    let (mut t, sa, sb, _, ours) = sdes_pair(Suite::AesCm128HmacSha1_80);
    let mut receiver = SrtpContext::new(&ours);
    let mut out = Forwarded::new();
    let now = Instant::now();
    for plain in [rtp(9), rtcp_rr()] {
        let buf = step(&mut t, now, sb, addr("10.0.0.2:5000"), &plain, &mut out);
        let [tx] = out.transmits() else {
            panic!("one copy expected");
        };
        assert_eq!((tx.via, tx.dest), (sa, addr("10.0.0.1:4000")));
        let mut got = body(&buf, tx);
        assert_ne!(got, plain, "sent in the clear");
        let n = got.len();
        let n = if plain.len() == 8 {
            receiver.unprotect_rtcp(&mut got, n).unwrap()
        } else {
            receiver.unprotect_rtp(&mut got, n).unwrap()
        };
        assert_eq!(got[..n], plain[..]);
    }
}

#[test]
fn a_protected_copy_leaves_the_plain_bytes_for_the_other_outputs() {
    let (mut t, sa, sb, _, ours) = sdes_pair(Suite::AeadAes128Gcm);
    // Flow 2 also copies what it receives to a recorder, out of its own socket.
    let mut b = spec(
        2,
        Some("10.0.0.2:5000"),
        Latching::Learn,
        Carries::Muxed,
        vec![
            Output::Fixed {
                via: FlowId(2),
                dest: addr("127.0.0.1:9"),
            },
            Output::Peer(FlowId(1)),
        ],
    );
    b.counters = t.get(sb).unwrap().counters.clone();
    t.update(&b).unwrap();
    let mut out = Forwarded::new();
    let plain = rtp(5);
    let buf = step(
        &mut t,
        Instant::now(),
        sb,
        addr("10.0.0.2:5000"),
        &plain,
        &mut out,
    );
    let [rec, peer] = out.transmits() else {
        panic!("two copies expected: {:?}", out.transmits());
    };
    assert_eq!(body(&buf, rec), plain, "the recording gets plain RTP");
    assert_eq!(peer.via, sa);
    assert!(
        usize::from(peer.skip) >= plain.len(),
        "the copy is after the datagram"
    );
    let mut got = body(&buf, peer);
    let n = got.len();
    let n = SrtpContext::new(&ours).unprotect_rtp(&mut got, n).unwrap();
    assert_eq!(got[..n], plain[..]);
}

#[test]
fn forged_and_replayed_srtp_is_dropped_and_counted() {
    let (mut t, sa, _, theirs, _) = sdes_pair(Suite::AesCm128HmacSha1_80);
    let mut sender = SrtpContext::new(&theirs);
    let mut p = rtp(1);
    let len = p.len();
    p.resize(len + 10, 0);
    let n = sender.protect_rtp(&mut p, len).unwrap();
    let mut out = Forwarded::new();
    let now = Instant::now();
    let src = addr("10.0.0.1:4000");
    let mut forged = p[..n].to_vec();
    forged[20] ^= 1;
    step(&mut t, now, sa, src, &forged, &mut out);
    assert!(out.transmits().is_empty());
    step(&mut t, now, sa, src, &p[..n], &mut out);
    assert_eq!(out.transmits().len(), 1);
    step(&mut t, now, sa, src, &p[..n], &mut out);
    assert!(out.transmits().is_empty(), "a replay is not forwarded");
    // Plain RTP on an SRTP leg does not authenticate either.
    step(&mut t, now, sa, src, &rtp(7), &mut out);
    assert!(out.transmits().is_empty());
    let c = snap(&t, sa);
    assert_eq!((c.srtp_failures, c.srtp_replays, c.rtp_packets), (2, 1, 1));
}

/// Gives flow 1 of [`pair`] `security` (its counters kept).
fn secure_flow1(t: &mut FlowTable, sa: Slot, security: Security) {
    let mut a = spec(
        1,
        Some("10.0.0.1:4000"),
        Latching::Learn,
        Carries::Muxed,
        vec![Output::Peer(FlowId(2))],
    );
    a.counters = t.get(sa).unwrap().counters.clone();
    a.security = security;
    t.update(&a).unwrap();
}

/// RFC 5769 §2.1's request: USERNAME "evtj:h6vY", password below.
const STUN_REQ: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
];
const STUN_PWD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

fn ice_pair(pwd: &str) -> (FlowTable, Slot, Slot) {
    let (mut t, sa, sb) = pair(Latching::Learn);
    secure_flow1(
        &mut t,
        sa,
        Security {
            ice: Some(IceCredentials {
                local_ufrag: "evtj".into(),
                local_pwd: pwd.into(),
                remote_ufrag: Some("h6vY".into()),
            }),
            ..Security::default()
        },
    );
    (t, sa, sb)
}

#[test]
fn a_valid_check_is_answered_from_the_room_after_it_and_moves_the_peer() {
    let (mut t, sa, _) = ice_pair(STUN_PWD);
    let mut out = Forwarded::new();
    let browser = addr("192.0.2.1:32853");
    let buf = step(&mut t, Instant::now(), sa, browser, &STUN_REQ, &mut out);
    let [tx] = out.transmits() else {
        panic!("one answer expected: {:?}", out.transmits());
    };
    assert_eq!((tx.via, tx.dest), (sa, browser));
    assert!(usize::from(tx.skip) >= STUN_REQ.len());
    let resp = body(&buf, tx);
    assert_eq!(&resp[..2], &[0x01, 0x01], "a binding success response");
    assert_eq!(resp[8..20], STUN_REQ[8..20], "same transaction");
    assert_eq!(rtpmesh_ice::verify(&resp, STUN_PWD), Ok(()));
    assert_eq!(
        out.events().collect::<Vec<_>>(),
        [Event::Latched {
            flow: FlowId(1),
            addr: browser
        }]
    );
    assert_eq!(t.get(sa).unwrap().peer(), Some(browser));
    assert_eq!(snap(&t, sa).stun_answered, 1);
}

#[test]
fn a_check_with_the_wrong_password_is_refused_and_moves_nothing() {
    let (mut t, sa, _) = ice_pair("another-password-entirely");
    let mut out = Forwarded::new();
    let buf = step(
        &mut t,
        Instant::now(),
        sa,
        addr("192.0.2.1:32853"),
        &STUN_REQ,
        &mut out,
    );
    let [tx] = out.transmits() else {
        panic!("a 401 expected: {:?}", out.transmits());
    };
    let resp = body(&buf, tx);
    assert_eq!(&resp[..2], &[0x01, 0x11], "a binding error response");
    assert_eq!(out.events().count(), 0);
    assert_eq!(t.get(sa).unwrap().peer(), Some(addr("10.0.0.1:4000")));
    assert_eq!(snap(&t, sa).stun_refused, 1);
}

#[test]
fn consent_expires_without_checks_and_the_peer_is_forgotten() {
    let (mut t, sa, _) = ice_pair(STUN_PWD);
    let t0 = Instant::now();
    let mut expired = Vec::new();
    t.expire_consent(t0, &mut expired);
    assert!(expired.is_empty());
    let mut out = Forwarded::new();
    let later = t0 + rtpmesh_ice::CONSENT_TIMEOUT / 2;
    step(
        &mut t,
        later,
        sa,
        addr("192.0.2.1:32853"),
        &STUN_REQ,
        &mut out,
    );
    t.expire_consent(t0 + rtpmesh_ice::CONSENT_TIMEOUT, &mut expired);
    assert!(expired.is_empty(), "the check renewed consent");
    t.expire_consent(later + rtpmesh_ice::CONSENT_TIMEOUT, &mut expired);
    assert_eq!(expired, [FlowId(1)]);
    assert_eq!(t.get(sa).unwrap().peer(), None);
}

#[test]
fn a_peer_that_never_did_ice_is_not_held_to_consent() {
    // `ICE=force` toward a phone: our credentials, no ufrag of its own.
    let (mut t, sa, _) = pair(Latching::Learn);
    secure_flow1(
        &mut t,
        sa,
        Security {
            ice: Some(IceCredentials {
                local_ufrag: "evtj".into(),
                local_pwd: STUN_PWD.into(),
                remote_ufrag: None,
            }),
            ..Security::default()
        },
    );
    let t0 = Instant::now();
    let mut expired = Vec::new();
    t.expire_consent(t0, &mut expired);
    t.expire_consent(t0 + rtpmesh_ice::CONSENT_TIMEOUT * 3, &mut expired);
    assert!(expired.is_empty());
    assert_eq!(t.get(sa).unwrap().peer(), Some(addr("10.0.0.1:4000")));
}

#[test]
fn dtls_records_are_left_to_the_worker_and_media_waits_for_keys() {
    let (mut t, sa, _) = pair(Latching::Learn);
    secure_flow1(
        &mut t,
        sa,
        Security {
            dtls: Some(DtlsSetup {
                role: DtlsRole::Passive,
                fingerprint: None,
            }),
            ..Security::default()
        },
    );
    let mut out = Forwarded::new();
    let src = addr("10.0.0.1:4000");
    let hello = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    step(&mut t, Instant::now(), sa, src, &hello, &mut out);
    let rec = out.take_dtls().expect("the record is handed on");
    assert_eq!(
        (rec.slot, rec.src, rec.start, rec.end),
        (sa, src, 0, hello.len())
    );
    assert!(out.transmits().is_empty());
    // Before the handshake made keys, nothing can be read.
    step(&mut t, Instant::now(), sa, src, &rtp(1), &mut out);
    assert!(out.transmits().is_empty());
    let c = snap(&t, sa);
    assert_eq!((c.dtls_records, c.srtp_failures, c.rtp_packets), (1, 1, 0));
    // With keys, SRTP flows.
    let (local, remote) = (key(Suite::AeadAes128Gcm, 3), key(Suite::AeadAes128Gcm, 5));
    assert!(t.set_dtls_keys(sa, &local, &remote));
    let mut p = rtp(2);
    let len = p.len();
    p.resize(len + 16, 0);
    let n = SrtpContext::new(&remote).protect_rtp(&mut p, len).unwrap();
    step(&mut t, Instant::now(), sa, src, &p[..n], &mut out);
    assert_eq!(out.transmits().len(), 1);
}

#[test]
fn secured_flows_never_go_to_the_kernel() {
    let (mut t, sa, sb, _, _) = sdes_pair(Suite::AesCm128HmacSha1_80);
    let mut out = Forwarded::new();
    let now = Instant::now();
    step(&mut t, now, sb, addr("10.0.0.2:5000"), &rtp(1), &mut out);
    let later = now + CONFIRM_WINDOW * 2;
    assert_eq!(t.shortcut(sa, later), None);
    assert_eq!(t.shortcut(sb, later), None, "its packets need protecting");
}

#[test]
fn on_an_ice_socket_only_the_peer_may_start_a_handshake() {
    let (mut t, sa, _) = pair(Latching::Learn);
    secure_flow1(
        &mut t,
        sa,
        Security {
            dtls: Some(DtlsSetup {
                role: DtlsRole::Passive,
                fingerprint: None,
            }),
            ice: Some(IceCredentials {
                local_ufrag: "evtj".into(),
                local_pwd: STUN_PWD.into(),
                remote_ufrag: Some("h6vY".into()),
            }),
            ..Security::default()
        },
    );
    let hello = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    let mut out = Forwarded::new();
    let browser = addr("192.0.2.1:32853");
    step(&mut t, Instant::now(), sa, browser, &hello, &mut out);
    assert_eq!(
        out.take_dtls(),
        None,
        "not before its checks made it the peer"
    );
    assert_eq!(snap(&t, sa).dtls_refused, 1);
    step(&mut t, Instant::now(), sa, browser, &STUN_REQ, &mut out);
    step(&mut t, Instant::now(), sa, browser, &hello, &mut out);
    assert_eq!(out.take_dtls().map(|r| r.src), Some(browser));
}
