//! Offer/answer with SRTP, DTLS-SRTP and ICE on a node with a fake plane:
//! the SDP each side gets (as rtpengine 10.5 writes it, SDP-NOTES.md
//! "Media security") and the security each flow is given.

use rtpmesh_flow::flow::{Carries, DtlsRole, FlowSpec, Security};
use rtpmesh_ng::bencode::{self, dict, Value};
use rtpmesh_ng::ng;
use rtpmesh_ng::sdp::crypto_value;
use rtpmesh_srtp::{MasterKey, Suite};

use super::{KeySource, KeySourceError};
use crate::node::{Node, NodeConfig, Now};
use crate::testing::FakePlane;

/// Bytes 1, 2, 3, ... : keys differ from each other and from run to run of
/// nothing.
struct Counter(u8);

impl KeySource for Counter {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeySourceError> {
        for b in buf {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
        Ok(())
    }
}

const FP: [u8; 32] = [0xAB; 32];
const FP_LINE: &str = "a=fingerprint:sha-256 AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB\r\n";
const KEY_A: &str = "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj";
const KEY_B: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";

const SAVP: &str = "v=0\r\no=alice 100 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 49170 RTP/SAVP 0 8\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\na=sendrecv\r\n";
const AVP_ANSWER: &str = "v=0\r\no=bob 200 1 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8\r\n";
const AVP_OFFER: &str = "v=0\r\no=alice 100 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8\r\na=ptime:20\r\n";
const BROWSER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS stream\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n\
c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1467250027 1 udp 2122260223 192.0.2.50 46243 typ host generation 0\r\n\
a=end-of-candidates\r\na=ice-ufrag:6F1N\r\na=ice-pwd:0mGd1oURg8Hv3PZ6Wdo+gkp6\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";
const BROWSER_ANSWER: &str = "v=0\r\no=- 4611731400430051337 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1467250027 1 udp 2122260223 192.0.2.50 46243 typ host generation 0\r\n\
a=ice-ufrag:Brws\r\na=ice-pwd:0mGd1oURg8Hv3PZ6Wdo+gkp7\r\n\
a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5F\r\n\
a=setup:active\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n";

fn at(secs: u64) -> Now {
    Now {
        ms: 1 + secs * 1000,
        unix: 1_800_000_000 + secs,
    }
}

struct Rig {
    node: Node,
    plane: FakePlane,
    cookie: u32,
}

impl Rig {
    fn new(fingerprint: Option<[u8; 32]>) -> Self {
        let config = NodeConfig {
            delete_delay: std::time::Duration::from_secs(30),
            media_timeout: std::time::Duration::from_secs(60),
            max_sessions: 0,
        };
        let mut node = Node::new(config, at(0));
        node.set_key_source(Box::new(Counter(0)));
        node.set_dtls_fingerprint(fingerprint);
        Self {
            node,
            plane: FakePlane::new(10),
            cookie: 0,
        }
    }

    fn send(&mut self, items: Vec<(&str, Value)>) -> Value {
        self.cookie += 1;
        let mut d = format!("c{} ", self.cookie).into_bytes();
        dict(items).encode_into(&mut d);
        let reply = self
            .node
            .handle(&d, at(1), &mut self.plane)
            .expect("a reply");
        let (_, body) = ng::split_datagram(&reply).unwrap();
        bencode::decode(body).unwrap()
    }

    /// The offer's SDP, or the error's reason.
    fn offer(&mut self, sdp: &str, extra: Vec<(&str, Value)>) -> Result<String, String> {
        let mut items = vec![
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("sdp", sdp.into()),
        ];
        items.extend(extra);
        outcome(self.send(items))
    }

    fn answer(&mut self, sdp: &str, extra: Vec<(&str, Value)>) -> Result<String, String> {
        let mut items = vec![
            ("command", "answer".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("to-tag", "b".into()),
            ("sdp", sdp.into()),
        ];
        items.extend(extra);
        outcome(self.send(items))
    }

    /// The newest RTP and RTCP specs of leg `l`'s stream 0.
    fn specs(&self, l: usize) -> (&FlowSpec, &FlowSpec) {
        let s = &self.node.call("c").unwrap().legs[l].streams[0];
        (
            self.plane.spec(s.local.rtp.flow),
            self.plane.spec(s.local.rtcp.flow),
        )
    }

    fn ports(&self, l: usize) -> (u16, u16) {
        let s = &self.node.call("c").unwrap().legs[l].streams[0];
        (s.local.rtp.port, s.local.rtcp.port)
    }
}

fn outcome(v: Value) -> Result<String, String> {
    match v.get("sdp").and_then(Value::as_str) {
        Some(s) => Ok(s.to_owned()),
        None => Err(v
            .get("error-reason")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()),
    }
}

fn tp(p: &str) -> (&'static str, Value) {
    ("transport-protocol", p.into())
}

/// The `a=` lines of `sdp` that start with one of `names`.
fn lines<'a>(sdp: &'a str, names: &[&str]) -> Vec<&'a str> {
    sdp.split("\r\n")
        .filter(|l| names.iter().any(|n| l.starts_with(&format!("a={n}"))))
        .collect()
}

fn b64(s: &str) -> Vec<u8> {
    use std::collections::HashMap;
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let idx: HashMap<u8, u32> = alphabet.bytes().zip(0..).collect();
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | idx[&c];
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn key(suite: Suite, b64key: &str) -> MasterKey {
    MasterKey::new(suite, &b64(b64key)).unwrap()
}

#[test]
fn savp_offer_to_a_plain_callee_drops_crypto_and_answers_with_our_own_key() {
    let mut r = Rig::new(Some(FP));
    let offer = r.offer(SAVP, vec![tp("RTP/AVP")]).unwrap();
    assert!(offer.contains(" RTP/AVP 0 8\r\n"), "{offer}");
    assert!(
        lines(&offer, &["crypto", "setup", "fingerprint"]).is_empty(),
        "{offer}"
    );
    // The caller's key already decrypts early media; the callee's side is plain.
    let (a_rtp, a_rtcp) = r.specs(0);
    let sdes = a_rtp.security.sdes.clone().expect("SDES toward the caller");
    assert_eq!(sdes.inbound, key(Suite::AesCm128HmacSha1_80, KEY_A));
    assert_eq!(a_rtcp.security, a_rtp.security, "SRTCP: same keys");
    assert_eq!(r.specs(1).0.security, Security::default());

    let answer = r.answer(AVP_ANSWER, vec![]).unwrap();
    let (p, _) = r.ports(0);
    let want = format!(
        "m=audio {p} RTP/SAVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\na=rtcp:{}\r\na={}\r\n",
        p + 1,
        crypto_value(1, "AES_CM_128_HMAC_SHA1_80", sdes.outbound.key_and_salt())
    );
    assert!(answer.ends_with(&want), "{answer}");
    assert_ne!(sdes.outbound, sdes.inbound, "a fresh key of our own");
    assert_eq!(r.specs(0).0.security.sdes, Some(sdes));
    assert_eq!(r.specs(1).0.security, Security::default());
}

#[test]
fn plain_offer_to_savp_offers_our_suites_and_dtls_and_takes_the_answerers_tag() {
    let mut r = Rig::new(Some(FP));
    let offer = r.offer(AVP_OFFER, vec![tp("RTP/SAVP")]).unwrap();
    let sec = lines(&offer, &["crypto", "setup", "fingerprint", "ptime"]);
    let names: Vec<_> = sec
        .iter()
        .map(|l| l.split(" inline").next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "a=crypto:1 AEAD_AES_128_GCM",
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80",
            "a=crypto:3 AES_CM_128_HMAC_SHA1_32",
            "a=setup:actpass",
            FP_LINE.trim_end(),
            "a=ptime:20",
        ]
    );
    let ours = r.node.call("c").unwrap().legs[1].streams[0]
        .security
        .offered[1]
        .1
        .clone();
    assert!(offer.contains(&crypto_value(
        2,
        "AES_CM_128_HMAC_SHA1_80",
        ours.key_and_salt()
    )));
    let answer_sdp = AVP_ANSWER.replace(
        "RTP/AVP 0 8\r\n",
        &format!("RTP/SAVP 0\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B}\r\n"),
    );
    let answer = r.answer(&answer_sdp, vec![]).unwrap();
    assert!(
        answer.contains(" RTP/AVP 0\r\n") && !answer.contains("crypto"),
        "{answer}"
    );
    let sdes = r.specs(1).0.security.sdes.clone().unwrap();
    assert_eq!(
        (sdes.inbound, sdes.outbound),
        (key(Suite::AesCm128HmacSha1_80, KEY_B), ours)
    );
    assert_eq!(r.specs(0).0.security, Security::default());
}

#[test]
fn a_browser_offer_to_a_plain_callee_gets_dtls_ice_lite_and_rtcp_mux_back() {
    let mut r = Rig::new(Some(FP));
    let ice_remove = ("ICE", Value::from("remove"));
    let offer = r.offer(BROWSER, vec![tp("RTP/AVP"), ice_remove]).unwrap();
    let (q, _) = r.ports(1);
    assert_eq!(
        offer,
        format!(
            "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=msid-semantic: WMS stream\r\n\
             m=audio {q} RTP/AVP 111 0\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
             a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=rtcp:{}\r\na=rtcp-mux\r\na=end-of-candidates\r\n",
            q + 1
        )
    );
    // The plain side refuses mux; the browser gets it anyway (the relay demuxes).
    let answer = r
        .answer(AVP_ANSWER, vec![("DTLS", "passive".into())])
        .unwrap();
    let (p, _) = r.ports(0);
    let c = r.node.call("c").unwrap().legs[0].streams[0]
        .security
        .ice
        .clone()
        .unwrap();
    let f = "c=IN IP4 127.0.0.1";
    let cand = |comp: u32| format!("UDP {} 127.0.0.1 {p} typ host", 2_130_706_432 - comp);
    assert!(answer.contains("t=0 0\r\na=ice-lite\r\nm="), "{answer}");
    assert!(!answer.contains("BUNDLE") && answer.contains(f), "{answer}");
    let tail = answer
        .split(&format!("m=audio {p} UDP/TLS/RTP/SAVPF 0 8\r\n"))
        .nth(1)
        .expect(&answer);
    let want_start = format!(
        "a=mid:0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\na=rtcp:{p}\r\na=rtcp-mux\r\n\
         a=setup:passive\r\n{FP_LINE}a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=ice-options:trickle\r\na=candidate:",
        c.local_ufrag, c.local_pwd
    );
    assert!(tail.starts_with(&want_start), "{tail}");
    assert!(
        tail.ends_with(&format!("{}\r\na=end-of-candidates\r\n", cand(1))),
        "{tail}"
    );
    assert_eq!((c.local_ufrag.len(), c.local_pwd.len()), (8, 26));
    assert_eq!(c.remote_ufrag.as_deref(), Some("6F1N"));

    let (rtp, rtcp) = r.specs(0);
    assert_eq!(rtp.carries, Carries::Muxed);
    let dtls = rtp.security.dtls.clone().unwrap();
    assert_eq!(dtls.role, DtlsRole::Passive);
    let fp = dtls.fingerprint.unwrap();
    assert_eq!(
        (fp.hash.as_str(), fp.value[..2].to_vec()),
        ("sha-256", vec![0x49, 0x66])
    );
    assert_eq!(rtp.security.ice, Some(c));
    assert_eq!(
        rtcp.security,
        Security::default(),
        "a muxed party never uses the RTCP port"
    );
    assert_eq!(r.specs(1).0.security, Security::default());
}

#[test]
fn without_dtls_passive_the_answer_to_a_browser_is_active() {
    let mut r = Rig::new(Some(FP));
    r.offer(BROWSER, vec![tp("RTP/AVP"), ("ICE", "remove".into())])
        .unwrap();
    let answer = r.answer(AVP_ANSWER, vec![]).unwrap();
    assert!(answer.contains("a=setup:active\r\n"), "{answer}");
    assert_eq!(
        r.specs(0).0.security.dtls.clone().unwrap().role,
        DtlsRole::Active
    );
}

#[test]
fn a_plain_offer_to_a_browser_with_ice_force_dtls_passive_and_rtcp_mux_require() {
    let mut r = Rig::new(Some(FP));
    let flags = vec![
        tp("UDP/TLS/RTP/SAVPF"),
        ("ICE", "force".into()),
        ("DTLS", "passive".into()),
        ("rtcp-mux", Value::List(vec!["require".into()])),
        ("SDES", Value::List(vec!["off".into()])),
    ];
    let offer = r.offer(AVP_OFFER, flags).unwrap();
    let (q, _) = r.ports(1);
    let c = r.node.call("c").unwrap().legs[1].streams[0]
        .security
        .ice
        .clone()
        .unwrap();
    let tail = offer
        .split(&format!("m=audio {q} UDP/TLS/RTP/SAVPF 0 8\r\n"))
        .nth(1)
        .expect(&offer);
    let cand = format!("2130706431 127.0.0.1 {q} typ host");
    // rtpengine ignores DTLS=passive in an offer: actpass.
    let want = format!(
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\na=rtcp:{q}\r\na=rtcp-mux\r\n\
         a=setup:actpass\r\n{FP_LINE}a=ptime:20\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
        c.local_ufrag, c.local_pwd
    );
    assert!(tail.starts_with(&want), "{tail}");
    assert!(
        tail.ends_with(&format!("{cand}\r\n")) && tail.matches("a=candidate").count() == 1,
        "{tail}"
    );
    assert!(offer.contains("t=0 0\r\na=ice-lite\r\n"), "{offer}");
    // Before the answer: credentials, no role yet.
    assert_eq!(
        r.specs(1).0.security.ice.as_ref().unwrap().remote_ufrag,
        None
    );
    assert_eq!(r.specs(1).0.security.dtls, None);

    let answer = r
        .answer(
            BROWSER_ANSWER,
            vec![tp("RTP/AVP"), ("ICE", "remove".into())],
        )
        .unwrap();
    assert!(
        answer.contains(" RTP/AVP 0\r\n")
            && !answer.contains("a=ice")
            && !answer.contains("a=setup"),
        "{answer}"
    );
    let (rtp, _) = r.specs(1);
    assert_eq!(rtp.carries, Carries::Muxed);
    let dtls = rtp.security.dtls.clone().unwrap();
    assert_eq!(dtls.role, DtlsRole::Passive, "the browser is active");
    assert_eq!(dtls.fingerprint.unwrap().value[31], 0x5F);
    assert_eq!(
        rtp.security.ice.as_ref().unwrap().remote_ufrag.as_deref(),
        Some("Brws")
    );
    assert_eq!(rtp.security.sdes, None);
    assert_eq!(r.specs(0).0.security, Security::default());
}

#[test]
fn sdes_off_and_sdes_no_suite_shape_the_offered_crypto() {
    let mut r = Rig::new(Some(FP));
    let offer = r
        .offer(
            AVP_OFFER,
            vec![
                tp("RTP/SAVP"),
                ("flags", Value::List(vec!["SDES-off".into()])),
            ],
        )
        .unwrap();
    assert!(lines(&offer, &["crypto"]).is_empty(), "{offer}");
    assert_eq!(lines(&offer, &["setup"]), ["a=setup:actpass"]);

    let mut r = Rig::new(None);
    let no32 = (
        "flags",
        Value::List(vec!["SDES-no-AES_CM_128_HMAC_SHA1_32".into()]),
    );
    let offer = r.offer(AVP_OFFER, vec![tp("RTP/SAVP"), no32]).unwrap();
    let names: Vec<_> = lines(&offer, &["crypto", "setup", "fingerprint"])
        .iter()
        .map(|l| l.split(" inline").next().unwrap().to_owned())
        .collect();
    // No certificate: SDES only, no DTLS offered.
    assert_eq!(
        names,
        [
            "a=crypto:1 AEAD_AES_128_GCM",
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80"
        ]
    );
    // SDES off and no certificate: say so; both off: nothing could protect the leg.
    let sdes_off = || ("SDES", Value::List(vec!["off".into()]));
    let mut r = Rig::new(None);
    let e = r
        .offer(AVP_OFFER, vec![tp("RTP/SAVP"), sdes_off()])
        .unwrap_err();
    assert!(e.contains("no DTLS certificate"), "{e}");
    let dtls_off = ("DTLS", Value::from("off"));
    let e = r
        .offer(AVP_OFFER, vec![tp("RTP/SAVP"), sdes_off(), dtls_off])
        .unwrap_err();
    assert!(e.contains("SDES and DTLS are off"), "{e}");
}

#[test]
fn a_re_offer_keeps_keys_and_credentials_and_a_move_to_avp_drops_crypto() {
    let mut r = Rig::new(Some(FP));
    let force = || ("ICE", Value::from("force"));
    let first = r.offer(SAVP, vec![force()]).unwrap();
    let answer_sdp = AVP_ANSWER.replace(
        "RTP/AVP 0 8\r\n",
        &format!("RTP/SAVP 0\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B}\r\n"),
    );
    let first_answer = r.answer(&answer_sdp, vec![]).unwrap();
    let specs = (r.specs(0).0.security.clone(), r.specs(1).0.security.clone());
    assert!(specs.0.sdes.is_some() && specs.1.sdes.is_some());
    assert!(first.contains("a=ice-ufrag:"), "ICE=force: {first}");
    assert_eq!(specs.1.ice, None, "the callee answered without ICE");
    // The caller's tags first (1, 2), then ours.
    let names: Vec<_> = lines(&first, &["crypto"])
        .iter()
        .map(|l| l.split(" inline").next().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80",
            "a=crypto:2 AES_CM_128_HMAC_SHA1_32",
            "a=crypto:3 AEAD_AES_128_GCM"
        ]
    );

    assert_eq!(
        r.offer(SAVP, vec![force()]).unwrap(),
        first,
        "same keys, ufrag, pwd"
    );
    let sdes = |r: &Rig, l| r.specs(l).0.security.sdes.clone();
    assert_eq!(
        (sdes(&r, 0), sdes(&r, 1)),
        (specs.0.sdes.clone(), specs.1.sdes.clone()),
        "media goes on"
    );
    assert_eq!(r.answer(&answer_sdp, vec![]).unwrap(), first_answer);
    assert_eq!(
        (r.specs(0).0.security.clone(), r.specs(1).0.security.clone()),
        specs
    );

    // The caller moves to plain RTP: its side drops SRTP, the callee keeps it.
    let plain = SAVP.replace("RTP/SAVP", "RTP/AVP");
    let plain = plain.split("a=crypto").next().unwrap().to_owned() + "a=sendrecv\r\n";
    let offer = r.offer(&plain, vec![tp("RTP/SAVP")]).unwrap();
    assert_eq!(lines(&offer, &["crypto"]).len(), 3);
    let answer = r.answer(&answer_sdp, vec![]).unwrap();
    assert!(
        answer.contains(" RTP/AVP 0\r\n") && !answer.contains("a=crypto"),
        "{answer}"
    );
    assert_eq!(r.specs(0).0.security, Security::default());
    assert_eq!(r.specs(1).0.security.sdes, specs.1.sdes);
}

#[test]
fn a_malformed_crypto_line_is_an_error_and_the_node_keeps_serving() {
    let mut r = Rig::new(Some(FP));
    let bad = SAVP.replace(KEY_A, "!!!!notbase64");
    let e = r.offer(&bad, vec![tp("RTP/AVP")]).unwrap_err();
    assert_eq!(
        e,
        "Failed to parse SDP: bad a=crypto line 7: the key is not base64"
    );
    let short = SAVP.replace(KEY_A, "d0RmdmcmVCspeEc3");
    let e = r.offer(&short, vec![tp("RTP/AVP")]).unwrap_err();
    assert!(e.contains("wrong length"), "{e}");
    assert!(r.node.call("c").is_none(), "nothing kept");
    // A suite rtpmesh lacks, alone: refused, not relayed as if it worked.
    let only_mki = SAVP
        .replace("|2^20", "|2^20|1:4")
        .replace("a=crypto:2 ", "a=x-crypto:2 ");
    let e = r.offer(&only_mki, vec![tp("RTP/AVP")]).unwrap_err();
    assert!(e.contains("without a usable a=crypto"), "{e}");
    assert!(r.offer(SAVP, vec![tp("RTP/AVP")]).is_ok(), "still serving");
    // An answer naming a tag never offered changes nothing.
    let before = r.node.call("c").unwrap().legs[0].streams[0]
        .security
        .clone();
    let stray = AVP_ANSWER.replace(
        "RTP/AVP 0 8\r\n",
        &format!("RTP/SAVP 0\r\na=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B}\r\n"),
    );
    let e = r.answer(&stray, vec![]).unwrap_err();
    assert!(e.contains("names no suite rtpmesh offered"), "{e}");
    assert_eq!(
        r.node.call("c").unwrap().legs[0].streams[0].security,
        before
    );
}

#[test]
fn dtls_without_a_certificate_is_refused_with_a_clear_error() {
    let mut r = Rig::new(None);
    let e = r.offer(BROWSER, vec![tp("RTP/AVP")]).unwrap_err();
    assert_eq!(
        e,
        "DTLS-SRTP is not available: the node has no DTLS certificate"
    );
    let e = r
        .offer(AVP_OFFER, vec![tp("UDP/TLS/RTP/SAVPF")])
        .unwrap_err();
    assert_eq!(
        e,
        "DTLS-SRTP is not available: the node has no DTLS certificate"
    );
    assert!(r.node.call("c").is_none());
}

#[test]
fn generate_mid_numbers_sections_that_have_none() {
    let mut r = Rig::new(None);
    let offer = r
        .offer(
            AVP_OFFER,
            vec![("flags", Value::List(vec!["generate-mid".into()]))],
        )
        .unwrap();
    let q = r.ports(1).0;
    assert!(
        offer.contains(&format!("m=audio {q} RTP/AVP 0 8\r\na=mid:1\r\na=rtpmap:0")),
        "{offer}"
    );
}

#[test]
fn an_ipv6_party_gets_ipv6_candidates() {
    let mut r = Rig::new(None);
    let v6 = AVP_OFFER.replace("IN IP4 192.0.2.10", "IN IP6 2001:db8::10");
    let offer = r.offer(&v6, vec![("ICE", "force".into())]).unwrap();
    let q = r.ports(1).0;
    let cands = lines(&offer, &["candidate"]);
    assert_eq!(cands.len(), 2, "{offer}");
    assert!(
        cands[0].ends_with(&format!(" 1 UDP 2130706431 ::1 {q} typ host")),
        "{offer}"
    );
    assert!(
        cands[1].ends_with(&format!(" 2 UDP 2130706430 ::1 {} typ host", q + 1)),
        "{offer}"
    );
}

#[test]
fn the_offerer_is_answered_with_the_suite_the_answerer_took() {
    let mut r = Rig::new(None);
    r.offer(SAVP, vec![]).unwrap();
    let answer_sdp = AVP_ANSWER.replace(
        "RTP/AVP 0 8\r\n",
        &format!("RTP/SAVP 0\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B}\r\n"),
    );
    let answer = r.answer(&answer_sdp, vec![]).unwrap();
    let a = r.specs(0).0.security.sdes.clone().unwrap();
    let b = r.specs(1).0.security.sdes.clone().unwrap();
    assert_eq!(a.inbound.suite(), Suite::AesCm128HmacSha1_32);
    assert_eq!(b.inbound, key(Suite::AesCm128HmacSha1_32, KEY_B));
    assert_ne!(a.outbound, b.inbound, "each hop its own key");
    assert_eq!(
        lines(&answer, &["crypto"]),
        [format!(
            "a={}",
            crypto_value(2, "AES_CM_128_HMAC_SHA1_32", a.outbound.key_and_salt())
        )]
    );
}

#[test]
fn ice_force_relay_writes_relay_candidates_and_optional_is_refused() {
    let mut r = Rig::new(None);
    let offer = r
        .offer(AVP_OFFER, vec![("ICE", "force-relay".into())])
        .unwrap();
    let q = r.ports(1).0;
    let cands = lines(&offer, &["candidate"]);
    let want = format!(" 1 UDP 16777215 127.0.0.1 {q} typ relay raddr 127.0.0.1 rport {q}");
    assert!(cands[0].ends_with(&want), "{offer}");
    let mut r = Rig::new(None);
    let e = r
        .offer(AVP_OFFER, vec![("ICE", "optional".into())])
        .unwrap_err();
    assert_eq!(
        e,
        "ICE=optional is not supported (use force, remove or default)"
    );
}
