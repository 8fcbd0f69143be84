//! The `codec` dictionary, its flag forms, `record call`, and what is
//! refused (and when).

use crate::bencode::{dict, Value};
use crate::ng::{parse_request, NgError, Request};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n";

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|&s| s.into()).collect())
}

/// An offer (or answer) with `extra` keys.
fn request(command: &str, extra: Vec<(&str, Value)>) -> Result<Request, NgError> {
    let mut keys = vec![
        ("command", command.into()),
        ("sdp", SDP.into()),
        ("call-id", "c".into()),
        ("from-tag", "f".into()),
        ("to-tag", "t".into()),
    ];
    keys.extend(extra);
    parse_request(&dict(keys))
}

fn offer(extra: Vec<(&str, Value)>) -> Result<Request, NgError> {
    request("offer", extra)
}

fn refused(r: Result<Request, NgError>) -> String {
    match r {
        Err(NgError::Unsupported(reason)) => reason,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn codec_dictionary_and_flag_forms() {
    let codec = dict([
        ("strip", list(&["PCMA", "G722"])),
        ("mask", list(&["opus"])),
        ("except", list(&["PCMU"])),
        ("offer", list(&["PCMU"])),
        ("set", list(&["opus/48000/2/32000"])),
        ("frobnicate", list(&["x"])),
    ]);
    let r = offer(vec![("codec", codec)]).unwrap();
    let c = &r.options.codec;
    assert_eq!(c.strip, ["PCMA", "G722"]);
    assert_eq!(c.mask, ["opus"]);
    assert_eq!(c.except, ["PCMU"]);
    assert_eq!(c.offer, ["PCMU"]);
    assert_eq!(c.set, ["opus/48000/2/32000"]);

    let flags = list(&[
        "codec-strip-PCMA",
        "codec-mask-all",
        "codec-except-opus/48000/2",
        "codec offer PCMU",
        "CODEC-strip-G722",
        "codec_strip_GSM",
    ]);
    let r = offer(vec![("flags", flags)]).unwrap();
    let c = &r.options.codec;
    assert_eq!(c.strip, ["PCMA", "G722"]);
    assert_eq!(c.mask, ["all"]);
    assert_eq!(c.except, ["opus/48000/2"]);
    assert_eq!(c.offer, ["PCMU"]);
    // rtpengine ignores the '_' spelling; so does rtpmesh, with a log line.
    assert_eq!(r.options.flags.unknown, ["codec_strip_GSM"]);
}

#[test]
fn record_call_key_and_flag() {
    for (key, v, want) in [
        ("record call", "yes", Some(true)),
        ("record-call", "on", Some(true)),
        ("record-call", "no", Some(false)),
        ("record_call", "off", Some(false)),
        ("record-call", "maybe", None),
    ] {
        let r = offer(vec![(key, v.into())]).unwrap();
        assert_eq!(r.options.record_call, want, "{key}: {v}");
    }
    let r = offer(vec![("flags", list(&["record-call"]))]).unwrap();
    assert_eq!(r.options.record_call, Some(true));
    let r = offer(vec![("flags", list(&["record call"]))]).unwrap();
    assert_eq!(r.options.record_call, Some(true));
}

#[test]
fn transcoding_is_refused_in_offers_and_names_what_was_asked() {
    let consume = dict([("consume", list(&["PCMA"]))]);
    assert_eq!(
        refused(offer(vec![("codec", consume)])),
        "Transcoding is not supported (codec-consume: PCMA)"
    );
    assert_eq!(
        refused(offer(vec![("flags", list(&["codec-accept-opus"]))])),
        "Transcoding is not supported (codec-accept: opus)"
    );
    assert_eq!(
        refused(offer(vec![("flags", list(&["always-transcode"]))])),
        "Transcoding is not supported (flags: always-transcode)"
    );
    assert_eq!(
        refused(offer(vec![("T.38", list(&["decode"]))])),
        "Transcoding is not supported (T.38)"
    );
    // Whether `transcode` needs transcoding depends on the SDP: the node
    // decides (sdp/codecs.rs). The flag alias lands in the same list.
    let r = offer(vec![("flags", list(&["transcode-G729"]))]).unwrap();
    assert_eq!(r.options.codec.transcode, ["G729"]);
    assert_eq!(
        refused(offer(vec![("flags", list(&["T.38-decode"]))])),
        "Transcoding is not supported (flags: T.38-decode)"
    );
    assert_eq!(
        refused(offer(vec![("flags", list(&["inject-DTMF"]))])),
        "Transcoding is not supported (flags: inject-DTMF)"
    );
    // rtpengine reads these in offers only: answers pass.
    assert!(request("answer", vec![("flags", list(&["always-transcode"]))]).is_ok());
    assert!(request("answer", vec![("T.38", list(&["decode"]))]).is_ok());
    // An inert value asks for nothing.
    assert!(offer(vec![("T.38", list(&["stop"]))]).is_ok());
    assert!(offer(vec![("media-echo", "off".into())]).is_ok());
    // Other commands ignore them, as rtpengine does.
    assert!(request("delete", vec![("T.38", list(&["decode"]))]).is_ok());
}

#[test]
fn other_unsupported_features_are_refused() {
    assert_eq!(
        refused(request("answer", vec![("media echo", "forward".into())])),
        "Not supported by rtpmesh (media-echo)"
    );
    assert_eq!(
        refused(offer(vec![("replace", list(&["origin", "SDP-version"]))])),
        "Not supported by rtpmesh (replace: SDP-version)"
    );
    assert_eq!(
        refused(offer(vec![("flags", list(&["media-handover"]))])),
        "Not supported by rtpmesh (flags: media-handover)"
    );
    assert_eq!(
        refused(offer(vec![("flags", list(&["loop protect"]))])),
        "Not supported by rtpmesh (flags: loop protect)"
    );
}

#[test]
fn unknown_keys_and_flags_are_kept_for_the_log() {
    let r = offer(vec![
        ("flags", list(&["frobnicate", "SIP-source-address"])),
        ("label", "callee".into()),
        ("frobnicate", "1".into()),
    ])
    .unwrap();
    assert_eq!(r.options.flags.unknown, ["frobnicate"]);
    assert!(r.options.flags.sip_source_address);
    assert_eq!(r.options.unknown_keys, ["frobnicate", "label"]);
}

#[test]
fn ice_and_dtls_details_rtpmesh_does_not_do_are_refused_not_ignored() {
    for flag in ["trickle ICE", "reject-ICE", "pad crypto", "reset"] {
        let why = refused(offer(vec![("flags", list(&[flag]))]));
        assert_eq!(why, format!("Not supported by rtpmesh (flags: {flag})"));
    }
    let why = refused(offer(vec![("DTLS-reverse", "active".into())]));
    assert!(why.contains("DTLS-reverse"), "{why}");
    let why = refused(offer(vec![("DTLS-fingerprint", "sha-1".into())]));
    assert!(why.contains("DTLS-fingerprint"), "{why}");
    // SHA-256 is what rtpmesh announces anyway.
    assert!(offer(vec![("DTLS-fingerprint", "sha-256".into())]).is_ok());
}
