//! Issue #12 point 5 on the node core: codec edits reach the SDP, what
//! needs transcoding is refused before anything changes (a refused offer
//! leaves no call and no port behind, the node serves the next one), and
//! `record call` starts and stops recording.

use super::*;

const OPUS_PCMU_PCMA: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 96 0 8 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n";

fn offer_with(
    node: &mut Node,
    plane: &mut FakePlane,
    cookie: &str,
    call: &str,
    extra: Vec<(&str, Value)>,
) -> Value {
    let mut items = vec![
        ("command", "offer".into()),
        ("call-id", call.into()),
        ("from-tag", "a".into()),
        ("sdp", OPUS_PCMU_PCMA.into()),
    ];
    items.extend(extra);
    send(node, plane, at(0), cookie, items)
}

fn m_line(reply: &Value) -> String {
    let sdp = reply.get("sdp").and_then(Value::as_str).expect("an sdp");
    sdp.lines()
        .find(|l| l.starts_with("m="))
        .unwrap()
        .to_owned()
}

fn error_reason(reply: &Value) -> &str {
    assert_eq!(result(reply), "error");
    reply.get("error-reason").and_then(Value::as_str).unwrap()
}

#[test]
fn codec_strip_and_offer_edit_the_offer_sdp() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    let flags = Value::List(vec!["codec-strip-all".into(), "codec-offer-PCMA".into()]);
    let r = offer_with(&mut node, &mut plane, "1", "c", vec![("flags", flags)]);
    assert!(m_line(&r).ends_with(" RTP/AVP 8"), "{}", m_line(&r));
    let codec = dict([("mask", Value::List(vec!["opus".into()]))]);
    let r = offer_with(&mut node, &mut plane, "2", "d", vec![("codec", codec)]);
    assert!(m_line(&r).ends_with(" RTP/AVP 0 8 101"), "{}", m_line(&r));
}

#[test]
fn a_refused_offer_leaves_nothing_behind_and_the_node_serves_on() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    let refusals: Vec<(Vec<(&str, Value)>, &str)> = vec![
        (
            vec![(
                "codec",
                dict([("transcode", Value::List(vec!["G729".into()]))]),
            )],
            "Transcoding is not supported (codec-transcode: G729)",
        ),
        (
            vec![("flags", Value::List(vec!["codec-transcode-G722".into()]))],
            "Transcoding is not supported (codec-transcode: G722)",
        ),
        (
            vec![("ptime", Value::Int(30))],
            "Transcoding is not supported (ptime: 30)",
        ),
        (
            vec![("T.38", Value::List(vec!["force".into()]))],
            "Transcoding is not supported (T.38)",
        ),
    ];
    for (i, (extra, reason)) in refusals.into_iter().enumerate() {
        let r = offer_with(&mut node, &mut plane, &format!("r{i}"), "refused", extra);
        assert_eq!(error_reason(&r), reason);
        assert!(node.call("refused").is_none());
        assert_eq!(plane.opened, 0, "no port taken");
    }
    // A re-offer on a live call that asks for transcoding changes nothing.
    let r = offer_with(&mut node, &mut plane, "ok1", "live", vec![]);
    assert_eq!(result(&r), "ok");
    let ports = |node: &Node| {
        let c = node.call("live").unwrap();
        c.locals().map(|l| l.rtp.port).collect::<Vec<_>>()
    };
    let before = ports(&node);
    let opened = plane.opened;
    let flags = Value::List(vec!["codec-transcode-G729".into()]);
    let r = offer_with(&mut node, &mut plane, "ok2", "live", vec![("flags", flags)]);
    assert_eq!(result(&r), "error");
    assert_eq!(ports(&node), before);
    assert_eq!(plane.opened, opened);
    // And the node serves the next request.
    assert_eq!(
        result(&offer(&mut node, &mut plane, at(1), "ok3", "next")),
        "ok"
    );
}

#[test]
fn record_call_starts_and_stops_recording() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    let r = offer_with(
        &mut node,
        &mut plane,
        "1",
        "c",
        vec![("record call", "yes".into())],
    );
    assert_eq!(result(&r), "ok");
    // Files are named by tag: the answerer's is known with the answer.
    assert!(plane.recordings.is_empty());
    assert_eq!(
        result(&answer(&mut node, &mut plane, at(1), "2", "c")),
        "ok"
    );
    assert_eq!(plane.recordings.len(), 2, "both parties recorded");
    let mut tags: Vec<_> = plane.recordings.values().map(|r| r.1.clone()).collect();
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
    // Asked again (here as the flag): still one recording per party.
    let flags = Value::List(vec!["record-call".into()]);
    let r = offer_with(&mut node, &mut plane, "3", "c", vec![("flags", flags)]);
    assert_eq!(result(&r), "ok");
    assert_eq!(plane.recordings.len(), 2);
    let r = offer_with(
        &mut node,
        &mut plane,
        "4",
        "c",
        vec![("record-call", "no".into())],
    );
    assert_eq!(result(&r), "ok");
    assert!(plane.recordings.is_empty());
}

/// rtpengine 10.5 with one unnamed interface: `internal`/`external` are
/// legacy selectors, other names fall back to the default interface;
/// the offer goes on either way.
#[test]
fn direction_names_fall_back_to_the_one_interface() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    for (i, names) in [["internal", "external"], ["priv", "pub"]]
        .iter()
        .enumerate()
    {
        let dirs = Value::List(names.iter().map(|&n| n.into()).collect());
        let call = format!("dir{i}");
        let r = offer_with(
            &mut node,
            &mut plane,
            &call,
            &call,
            vec![("direction", dirs)],
        );
        assert_eq!(result(&r), "ok");
    }
}
