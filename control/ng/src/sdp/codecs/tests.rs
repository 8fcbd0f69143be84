//! Each codec operation on offer and answer SDPs; the expected format
//! lists are what rtpengine 10.5 wrote for the same input and options
//! (SDP-NOTES.md, "codec").

use super::{apply, Side};
use crate::ng::codec::CodecOptions;
use crate::sdp::{parse, rewrite, MediaRewrite, Rewrite};

const OFFER: &str =
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 9 96 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n\
a=rtcp-fb:96 nack\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";

fn list(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn ops(f: impl FnOnce(&mut CodecOptions)) -> CodecOptions {
    let mut o = CodecOptions::default();
    f(&mut o);
    o
}

/// The m= format list after `ops` on `sdp`.
fn formats_of(sdp: &str, ops: &CodecOptions, side: Side) -> String {
    let mut p = parse(sdp).unwrap();
    apply(&mut p, ops, None, side).unwrap();
    p.media()[0].formats.join(" ")
}

fn offer(ops: &CodecOptions) -> String {
    formats_of(OFFER, ops, Side::Offer)
}

#[test]
fn strip_by_name_any_case_and_with_parameters() {
    assert_eq!(offer(&ops(|o| o.strip = list(&["PCMA"]))), "0 9 96 101");
    assert_eq!(offer(&ops(|o| o.strip = list(&["pcma"]))), "0 9 96 101");
    assert_eq!(offer(&ops(|o| o.strip = list(&["opus"]))), "0 8 9 101");
    assert_eq!(
        offer(&ops(|o| o.strip = list(&["opus/48000/2"]))),
        "0 8 9 101"
    );
    // Parameters must all match: mono opus is not stereo opus.
    assert_eq!(
        offer(&ops(|o| o.strip = list(&["opus/48000"]))),
        "0 8 9 96 101"
    );
    assert_eq!(
        offer(&ops(|o| o.strip = list(&["opus/48000/1"]))),
        "0 8 9 96 101"
    );
    assert_eq!(
        offer(&ops(
            |o| o.strip = list(&["PCMU/8000/1", "telephone-event/8000"])
        )),
        "8 9 96"
    );
    // Payload type numbers are not names in rtpengine 10.5.
    assert_eq!(offer(&ops(|o| o.strip = list(&["8"]))), "0 8 9 96 101");
}

#[test]
fn strip_all_keeps_except_and_never_leaves_nothing() {
    assert_eq!(offer(&ops(|o| o.strip = list(&["all"]))), "0 8 9 96 101");
    let only_pcmu = ops(|o| {
        o.strip = list(&["all"]);
        o.except = list(&["PCMU"]);
    });
    assert_eq!(offer(&only_pcmu), "0");
    let with = ops(|o| {
        o.strip = list(&["all"]);
        o.except = list(&["opus/48000/2", "G722/8000/1"]);
    });
    assert_eq!(offer(&with), "9 96");
    assert_eq!(offer(&ops(|o| o.except = list(&["PCMU"]))), "0 8 9 96 101");
    // Only telephone-event would be left: the original list stays.
    let all_main = ops(|o| o.strip = list(&["PCMU", "PCMA", "G722", "opus"]));
    assert_eq!(offer(&all_main), "0 8 9 96 101");
}

#[test]
fn supplemental_codecs_follow_their_clock_rate() {
    assert_eq!(
        offer(&ops(|o| o.strip = list(&["PCMU", "PCMA", "G722"]))),
        "96"
    );
    let te = ops(|o| {
        o.strip = list(&["all"]);
        o.except = list(&["opus", "telephone-event"]);
    });
    assert_eq!(offer(&te), "96");
}

#[test]
fn offer_restores_in_its_order_before_supplementals() {
    let reorder = ops(|o| {
        o.strip = list(&["all"]);
        o.offer = list(&["PCMA", "PCMU"]);
    });
    assert_eq!(offer(&reorder), "8 0");
    let back = ops(|o| {
        o.strip = list(&["PCMU"]);
        o.offer = list(&["PCMU"]);
    });
    assert_eq!(offer(&back), "8 9 96 0 101");
    // Present codecs are not moved.
    assert_eq!(offer(&ops(|o| o.offer = list(&["PCMA"]))), "0 8 9 96 101");
    // A codec the SDP lacks is not added.
    assert_eq!(offer(&ops(|o| o.offer = list(&["G729"]))), "0 8 9 96 101");
    let dtmf = ops(|o| {
        o.strip = list(&["all"]);
        o.offer = list(&["PCMA"]);
        o.except = list(&["telephone-event"]);
    });
    assert_eq!(offer(&dtmf), "8 101");
}

#[test]
fn mask_strips_towards_the_answerer_only_in_offers() {
    let mask = ops(|o| o.mask = list(&["PCMA"]));
    assert_eq!(offer(&mask), "0 9 96 101");
    let masked_all = ops(|o| {
        o.mask = list(&["all"]);
        o.offer = list(&["PCMA"]);
    });
    assert_eq!(offer(&masked_all), "8");
    let answer = "v=0\r\no=bob 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
        m=audio 50000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    assert_eq!(formats_of(answer, &mask, Side::Answer), "0 8 101");
    let strip = ops(|o| o.strip = list(&["PCMA"]));
    assert_eq!(formats_of(answer, &strip, Side::Answer), "0 101");
    let except = ops(|o| {
        o.strip = list(&["all"]);
        o.except = list(&["PCMA"]);
    });
    assert_eq!(formats_of(answer, &except, Side::Answer), "8");
}

#[test]
fn transcode_of_a_present_codec_is_offer_any_other_is_refused() {
    assert_eq!(
        offer(&ops(|o| o.transcode = list(&["PCMA"]))),
        "0 8 9 96 101"
    );
    let back = ops(|o| {
        o.strip = list(&["all"]);
        o.transcode = list(&["PCMA"]);
    });
    assert_eq!(offer(&back), "8");
    let mut p = parse(OFFER).unwrap();
    let e = apply(
        &mut p,
        &ops(|o| o.transcode = list(&["G729"])),
        None,
        Side::Offer,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Transcoding is not supported (codec-transcode: G729)"
    );
    let full = ops(|o| {
        o.strip = list(&["full"]);
        o.transcode = list(&["PCMA"]);
    });
    assert!(apply(&mut p, &full, None, Side::Offer).is_err());
    // Answers ignore transcode, as rtpengine does.
    let g729 = ops(|o| o.transcode = list(&["G729"]));
    assert!(apply(&mut p, &g729, None, Side::Answer).is_ok());
}

#[test]
fn ptime_may_not_change_in_an_offer() {
    let mut p = parse(OFFER).unwrap();
    let none = CodecOptions::default();
    assert!(apply(&mut p, &none, Some(20), Side::Offer).is_ok());
    let e = apply(&mut p, &none, Some(30), Side::Offer).unwrap_err();
    assert_eq!(e.to_string(), "Transcoding is not supported (ptime: 30)");
    assert!(apply(&mut p, &none, Some(30), Side::Answer).is_ok());
}

#[test]
fn rejected_and_non_rtp_sections_are_untouched() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
        m=audio 0 RTP/AVP 0 8\r\nm=image 5000 udptl t38\r\nm=audio 6000 RTP/AVP 0 8\r\n";
    let mut p = parse(sdp).unwrap();
    apply(
        &mut p,
        &ops(|o| o.strip = list(&["PCMA"])),
        None,
        Side::Offer,
    )
    .unwrap();
    let f: Vec<String> = p.media().iter().map(|m| m.formats.join(" ")).collect();
    assert_eq!(f, ["0 8", "t38", "0"]);
}

/// The rewritten text: stripped payload types lose their rtpmap, fmtp and
/// rtcp-fb lines, restored ones are written in their new place.
#[test]
fn rewrite_writes_only_the_kept_formats_attributes() {
    let mut p = parse(OFFER).unwrap();
    let o = ops(|o| {
        o.strip = list(&["all"]);
        o.offer = list(&["opus", "PCMU"]);
    });
    apply(&mut p, &o, None, Side::Offer).unwrap();
    let addr = "127.0.0.1".parse().unwrap();
    let rw = Rewrite {
        origin: Some(addr),
        session_connection: true,
        media: vec![MediaRewrite::new(addr, 40000)],
    };
    let out = rewrite(&p, &rw).unwrap();
    let media: Vec<&str> = out
        .split("\r\n")
        .skip_while(|l| !l.starts_with("m="))
        .collect();
    assert_eq!(
        media,
        [
            "m=audio 40000 RTP/AVP 96 0",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 useinbandfec=1",
            "a=rtcp-fb:96 nack",
            "a=rtpmap:0 PCMU/8000",
            "a=sendrecv",
            "a=rtcp:40001",
            "a=ptime:20",
            "",
        ]
    );
}

const ANSWER: &str =
    "v=0\r\no=bob 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 50000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// The answer's m= line and attribute lines after an offer with `offer_ops`
/// and an answer with `answer_ops`.
fn answered(offer_ops: &CodecOptions, answer_ops: &CodecOptions) -> Vec<String> {
    let mut o = parse(OFFER).unwrap();
    let offered = super::offer(&mut o, offer_ops, None).unwrap();
    let mut a = parse(ANSWER).unwrap();
    super::answer(&mut a, answer_ops, &offered);
    let addr = "127.0.0.1".parse().unwrap();
    let rw = Rewrite {
        origin: None,
        session_connection: false,
        media: vec![MediaRewrite::new(addr, 40000)],
    };
    rewrite(&a, &rw)
        .unwrap()
        .split("\r\n")
        .skip_while(|l| !l.starts_with("m="))
        .filter(|l| l.starts_with("m=") || l.starts_with("a=rtpmap") || l.starts_with("a=fmtp"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_untouched_answer_passes_through() {
    let none = CodecOptions::default();
    assert_eq!(
        answered(&none, &none),
        [
            "m=audio 40000 RTP/AVP 0 8 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
        ]
    );
}

/// rtpengine 10.5: a codec stripped in the offer is not answered to the
/// offerer, and once codecs were touched the offerer's telephone-event
/// lines (with its fmtp) are the ones written.
#[test]
fn a_touched_answer_follows_the_offerers_codecs_and_lines() {
    let strip = ops(|o| o.strip = list(&["PCMA"]));
    let none = CodecOptions::default();
    let want = [
        "m=audio 40000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
    ];
    assert_eq!(answered(&strip, &none), want);
    assert_eq!(answered(&none, &strip), want);
    // Masked codecs are still the offerer's: answered as they come.
    let mask = ops(|o| o.mask = list(&["PCMA"]));
    assert_eq!(answered(&mask, &none)[0], "m=audio 40000 RTP/AVP 0 8 101");
}

#[test]
fn an_answer_of_only_stripped_codecs_passes_through() {
    // rtpengine would transcode to a codec the offerer kept; rtpmesh
    // cannot, and the offerer did offer what was answered.
    let strip = ops(|o| o.strip = list(&["PCMU", "PCMA"]));
    let none = CodecOptions::default();
    assert_eq!(answered(&strip, &none)[0], "m=audio 40000 RTP/AVP 0 8 101");
}

#[test]
fn single_codec_keeps_the_first_answered_codec_and_dtmf() {
    let single = ops(|o| o.single_codec = true);
    let none = CodecOptions::default();
    assert_eq!(answered(&none, &single)[0], "m=audio 40000 RTP/AVP 0 101");
    // In offers rtpengine ignores it.
    assert_eq!(offer(&single), "0 8 9 96 101");
}

#[test]
fn strip_extmap_removes_session_and_media_extmaps() {
    let sdp = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=extmap:2 urn:x\r\n")
        + "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n";
    let mut p = parse(&sdp).unwrap();
    super::strip_extmap(&mut p);
    let addr = "127.0.0.1".parse().unwrap();
    let rw = Rewrite {
        origin: None,
        session_connection: false,
        media: vec![MediaRewrite::new(addr, 40000)],
    };
    assert!(!rewrite(&p, &rw).unwrap().contains("extmap"));
}
