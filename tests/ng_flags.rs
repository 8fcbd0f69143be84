//! Issue #12 point 5, "no silent wrong SDP", against real processes: the
//! `codec` options edit the SDP exactly as rtpengine 10.5 does (both are
//! started and given the same offers and answers), what needs transcoding
//! is refused with an error that names it while the node goes on serving,
//! and `record call` records the call's media.
//!
//! Needs Debian's rtpengine 10.5 (`/usr/bin/rtpengine`,
//! scripts/install-test-deps.sh); without it the comparison fails.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::call::{call, lo};
use common::*;
use rtpmesh_ng::bencode::{dict, Value};

/// An offer with what Kamailio-configured codec handling sends: several
/// codecs with their own attributes, DTMF, ptime.
const OFFER: &str = "v=0\r\no=alice 2890844526 2890844527 IN IP4 192.0.2.10\r\ns=-\r\n\
c=IN IP4 192.0.2.10\r\nt=0 0\r\na=extmap:2 urn:x\r\nm=audio 49170 RTP/AVP 0 8 9 96 13 101\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtcp-fb:96 nack\r\n\
a=rtpmap:13 CN/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";

/// An answer to `offer` (as a relay rewrote it) that accepts `formats`,
/// or everything offered, with the offer's rtpmap and fmtp lines for them.
fn answer_to(offer: &str, formats: Option<&str>) -> String {
    let offered = offer
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .map(|m| m.splitn(3, ' ').nth(2).unwrap_or("").to_owned())
        .expect("an audio m= line");
    let formats = formats.map_or(offered, str::to_owned);
    let pts: Vec<&str> = formats.split(' ').collect();
    let mut sdp = format!(
        "v=0\r\no=bob 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
         m=audio 50000 RTP/AVP {formats}\r\n"
    );
    for l in offer.lines() {
        let pt = ["a=rtpmap:", "a=fmtp:"]
            .iter()
            .find_map(|p| l.strip_prefix(p))
            .and_then(|v| v.split(' ').next());
        if pt.is_some_and(|pt| pts.contains(&pt)) {
            sdp.push_str(l);
            sdp.push_str("\r\n");
        }
    }
    sdp
}

/// Debian's rtpengine 10.5 on loopback, userspace only, as
/// /work/shared/README.md runs it.
fn rtpengine() -> (Process, SocketAddr) {
    let rtpengine = Path::new("/usr/bin/rtpengine");
    assert!(
        rtpengine.exists(),
        "rtpengine 10.5 is needed for the comparison: scripts/install-test-deps.sh"
    );
    let ng: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (lo_port, hi_port) = port_block(200);
    let mut p = Spec::new("rtpengine", rtpengine)
        .args(["--config-file=none", "--foreground", "--table=-1"])
        .args(["--interface=127.0.0.1", "--num-threads=2", "--log-stderr"])
        .arg(format!("--listen-ng={ng}"))
        .arg(format!("--port-min={lo_port}"))
        .arg(format!("--port-max={hi_port}"))
        .start();
    wait_for_ping(&mut p, ng);
    (p, ng)
}

fn strings(items: &[&str]) -> Value {
    Value::List(items.iter().map(|&s| s.into()).collect())
}

/// The SDP with relay ports replaced by `PORT`: the two relays pick theirs
/// at random; everything else must be the same.
fn without_ports(sdp: &str) -> String {
    sdp.lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("m=") {
                let mut f: Vec<&str> = rest.split(' ').collect();
                f[1] = "PORT";
                format!("m={}", f.join(" "))
            } else if l.starts_with("a=rtcp:") {
                "a=rtcp:PORT".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One case: keys for the offer, keys for the answer, and the formats
/// the answerer picks (`None`: all it is offered).
type Case = (
    &'static str,
    Vec<(&'static str, Value)>,
    Vec<(&'static str, Value)>,
    Option<&'static str>,
);

fn cases() -> Vec<Case> {
    let codec = |k: &'static str, v: &[&str]| ("codec", dict([(k, strings(v))]));
    let codec2 = |a: (&'static str, &[&str]), b: (&'static str, &[&str])| {
        ("codec", dict([(a.0, strings(a.1)), (b.0, strings(b.1))]))
    };
    vec![
        ("nothing", vec![], vec![], None),
        ("strip PCMA", vec![codec("strip", &["PCMA"])], vec![], None),
        (
            "strip lower case",
            vec![codec("strip", &["pcma", "opus"])],
            vec![],
            None,
        ),
        (
            "strip with params",
            vec![codec("strip", &["opus/48000/2", "PCMU/8000/1"])],
            vec![],
            None,
        ),
        (
            "strip mono opus",
            vec![codec("strip", &["opus/48000"])],
            vec![],
            None,
        ),
        ("strip all", vec![codec("strip", &["all"])], vec![], None),
        (
            "strip all except",
            vec![codec2(
                ("strip", &["all"]),
                ("except", &["PCMU", "telephone-event"]),
            )],
            vec![],
            None,
        ),
        (
            "strip all offer",
            vec![codec2(("strip", &["all"]), ("offer", &["PCMA", "PCMU"]))],
            vec![],
            None,
        ),
        (
            "strip 8k codecs",
            vec![codec("strip", &["PCMU", "PCMA", "G722"])],
            vec![],
            None,
        ),
        (
            "strip and restore",
            vec![codec2(("strip", &["PCMU"]), ("offer", &["PCMU"]))],
            vec![],
            None,
        ),
        ("mask", vec![codec("mask", &["PCMA"])], vec![], None),
        (
            "mask all offer",
            vec![codec2(("mask", &["all"]), ("offer", &["G722"]))],
            vec![],
            None,
        ),
        (
            "except alone",
            vec![codec("except", &["PCMU"])],
            vec![],
            None,
        ),
        (
            "transcode present",
            vec![codec("transcode", &["PCMA"])],
            vec![],
            None,
        ),
        (
            "flags",
            vec![(
                "flags",
                strings(&["codec-strip-all", "codec-offer-G722", "codec-offer-PCMU"]),
            )],
            vec![],
            None,
        ),
        (
            "flags mask except",
            vec![("flags", strings(&["codec-mask-all", "codec-except-PCMA"]))],
            vec![],
            None,
        ),
        (
            "answer strip all except",
            vec![],
            vec![codec2(("strip", &["all"]), ("except", &["PCMA"]))],
            None,
        ),
        (
            "no rtcp attribute",
            vec![("flags", strings(&["no-rtcp-attribute"]))],
            vec![],
            None,
        ),
        (
            "answer strip",
            vec![],
            vec![codec("strip", &["PCMA"])],
            None,
        ),
        (
            "answer mask ignored",
            vec![],
            vec![codec("mask", &["PCMA"])],
            None,
        ),
        (
            "answer picks one",
            vec![codec("strip", &["G722"])],
            vec![],
            Some("8 101"),
        ),
        (
            "answer picks the masked",
            vec![codec("mask", &["PCMA"])],
            vec![],
            Some("8"),
        ),
        (
            "answer without dtmf",
            vec![codec("strip", &["opus"])],
            vec![],
            Some("0"),
        ),
    ]
}

/// Offer and answer on `ng`; both rewritten SDPs, ports blanked.
fn offer_answer(ng: &mut Ng, id: &str, case: &Case) -> (String, String) {
    let received = ("received-from", strings(&["IP4", "127.0.0.1"]));
    let mut o = case.1.clone();
    o.push(received.clone());
    let offer = sdp_of(&ng.offer(id, "ft", OFFER, o));
    let mut a = case.2.clone();
    a.push(received);
    let answer = sdp_of(&ng.answer(id, "ft", "tt", &answer_to(&offer, case.3), a));
    (without_ports(&offer), without_ports(&answer))
}

/// The same offers and answers through rtpengine 10.5 and rtpmesh give the
/// same SDP, ports aside.
#[test]
fn codec_options_edit_the_sdp_as_rtpengine_does() {
    let (_rtpengine, re_ng) = rtpengine();
    let node = Node::start("epoll");
    let mut re = Ng::new(re_ng);
    let mut us = node.client();
    for (i, case) in cases().iter().enumerate() {
        let id = format!("codec-{i}");
        let want = offer_answer(&mut re, &id, case);
        let got = offer_answer(&mut us, &id, case);
        assert_eq!(got.0, want.0, "{}: offer", case.0);
        assert_eq!(got.1, want.1, "{}: answer", case.0);
    }
}

/// Transcoding is refused with an error naming what was asked, the
/// refused offer leaves no call, and the node serves the next offer.
#[test]
fn transcoding_is_refused_and_the_node_serves_on() {
    let node = Node::start("epoll");
    let mut ng = node.client();
    let refusals: Vec<(Vec<(&str, Value)>, &str)> = vec![
        (
            vec![("flags", strings(&["codec-transcode-G729"]))],
            "Transcoding is not supported (codec-transcode: G729)",
        ),
        (
            vec![("codec", dict([("transcode", strings(&["AMR"]))]))],
            "Transcoding is not supported (codec-transcode: AMR)",
        ),
        (
            vec![("flags", strings(&["always-transcode"]))],
            "Transcoding is not supported (flags: always-transcode)",
        ),
        (
            vec![("ptime", Value::Int(30))],
            "Transcoding is not supported (ptime: 30)",
        ),
        (
            vec![("T.38", strings(&["decode"]))],
            "Transcoding is not supported (T.38)",
        ),
    ];
    for (extra, want) in refusals {
        let r = ng.offer("refused", "ft", OFFER, extra);
        assert_eq!((result(&r), reason(&r)), ("error", want));
        let q = ng.query("refused");
        assert_eq!(reason(&q), "Unknown call-id", "no call left behind");
    }
    let ok = ng.offer("served", "ft", OFFER, vec![]);
    assert_eq!(result(&ok), "ok");
}

/// `record call: yes` in the offer records both parties' media to pcap,
/// as `start recording` does.
#[test]
fn record_call_records_the_calls_media() {
    let dir = std::env::temp_dir().join(format!("rtpmesh-record-call-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let node = Node::builder("epoll")
        .arg("--recording-dir")
        .arg(dir.to_str().unwrap())
        .start();
    let mut ng = node.client();
    let c = call(&mut ng, "rc", vec![("record call", "yes".into())], vec![]);
    for seq in 0..20u16 {
        c.a.send(c.to_a, &rtp(seq, 0xaaaa, 160));
        c.b.recv();
        c.b.send(c.to_b, &rtp(seq, 0xbbbb, 160));
        c.a.recv();
    }
    // `record call: no` finishes the files.
    let r = ng.offer(
        "rc",
        "a",
        &audio_sdp(lo(), c.a.port()),
        vec![("record-call", "no".into())],
    );
    assert_eq!(result(&r), "ok");
    for tag in ["a", "b"] {
        let stem = rtpmesh_control::record::file_stem("rc", tag, 1);
        let n = pcap_records(&dir.join(format!("{stem}.pcap")));
        assert_eq!(n, 20, "{tag}: packets in the pcap");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
