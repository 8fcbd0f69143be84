//! Golden tests: each expected output is verbatim rtpengine 10.5 output for the
//! same input (flags `replace: [origin, session-connection]` unless noted), fed
//! the ports rtpengine picked. See `control/ng/SDP-NOTES.md`.

use super::*;
use std::net::Ipv6Addr;

const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const LO6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fn crlf(s: &str) -> String {
    s.lines().map(|l| format!("{l}\r\n")).collect()
}

/// Kamailio-style rewrite: replace origin and session c=, one stream per port.
fn kam(ports: &[u16]) -> Rewrite {
    Rewrite {
        origin: Some(LO),
        session_connection: true,
        media: ports.iter().map(|&p| MediaRewrite::new(LO, p)).collect(),
    }
}

fn check(input: &str, rw: &Rewrite, expected: &str) {
    // Inputs are written with LF; rtpengine saw CRLF. Both must give CRLF output.
    for text in [input.to_string(), crlf(input)] {
        let sdp = parse(&text).unwrap();
        assert_eq!(rewrite(&sdp, rw).unwrap(), crlf(expected));
    }
}

#[test]
fn plain_offer_adds_static_rtpmaps_direction_and_rtcp() {
    let input = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
";
    let out = "v=0
o=alice 2890844526 2890844527 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
a=rtcp:40001
a=ptime:20
";
    check(input, &kam(&[40000]), out);
}

#[test]
fn answer_gets_offer_ptime() {
    let input = "v=0
o=bob 123 456 IN IP4 198.51.100.20
s=-
c=IN IP4 198.51.100.20
t=0 0
m=audio 30000 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
";
    let out = "v=0
o=bob 123 456 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40012 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
a=rtcp:40013
a=ptime:20
";
    let mut rw = kam(&[40012]);
    rw.media[0].ptime = Some(20);
    check(input, &rw, out);
}

#[test]
fn unknown_lines_keep_order_managed_ones_move_to_the_end() {
    let input = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.10
s=Talk
i=info
c=IN IP4 192.0.2.10
b=AS:64
t=0 0
a=tool:foo
a=recvonly
m=audio 49170 RTP/AVP 0 8 101
i=media info
b=AS:80
a=x-first:1
a=rtpmap:101 telephone-event/8000
a=x-mid:2
a=fmtp:101 0-16
a=maxptime:40
a=ptime:20
a=mid:1
a=x-last:3
";
    let out = "v=0
o=alice 2890844526 2890844527 IN IP4 127.0.0.1
s=Talk
i=info
c=IN IP4 127.0.0.1
b=AS:64
t=0 0
a=tool:foo
m=audio 40032 RTP/AVP 0 8 101
i=media info
b=AS:80
a=x-first:1
a=x-mid:2
a=maxptime:40
a=x-last:3
a=mid:1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=recvonly
a=rtcp:40033
a=ptime:20
";
    check(input, &kam(&[40032]), out);
}

#[test]
fn audio_video_groups_rtcp_fb_with_its_payload_type() {
    let input = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0 96
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
m=video 51372 RTP/AVP 97 31
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42e01f;packetization-mode=1
a=rtcp-fb:97 nack pli
";
    let out = "v=0
o=alice 100 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40098 RTP/AVP 0 96
a=rtpmap:0 PCMU/8000
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=sendrecv
a=rtcp:40099
m=video 40136 RTP/AVP 97 31
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42e01f;packetization-mode=1
a=rtcp-fb:97 nack pli
a=rtpmap:31 H261/90000
a=sendrecv
a=rtcp:40137
";
    check(input, &kam(&[40098, 40136]), out);
}

#[test]
fn existing_rtcp_with_address_is_replaced() {
    let input = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 8
a=rtcp:53020 IN IP4 192.0.2.11
";
    let out = "v=0
o=alice 100 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40196 RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=sendrecv
a=rtcp:40197
";
    let sdp = parse(input).unwrap();
    let m = &sdp.media()[0];
    assert_eq!(m.rtcp.unwrap().port, 53020);
    assert_eq!(m.clock_rate(8), Some(8000));
    check(input, &kam(&[40196]), out);
}

const MUX_OFFER: &str = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0
a=rtcp-mux
a=rtcp:49170
";

#[test]
fn rtcp_mux_offer_keeps_mux_and_offers_separate_rtcp() {
    let out = "v=0
o=alice 100 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40222 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
a=rtcp:40223
a=rtcp-mux
";
    let mut rw = kam(&[40222]);
    rw.media[0].rtcp_mux = true;
    check(MUX_OFFER, &rw, out);
}

#[test]
fn rtcp_mux_demux_drops_mux() {
    let out = "v=0
o=alice 100 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40250 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
a=rtcp:40251
";
    check(MUX_OFFER, &kam(&[40250]), out);
}

#[test]
fn rtcp_mux_answer_points_rtcp_at_rtp_port() {
    let input = "v=0
o=bob 200 1 IN IP4 198.51.100.20
s=-
c=IN IP4 198.51.100.20
t=0 0
m=audio 30000 RTP/AVP 0
a=rtcp-mux
";
    let out = "v=0
o=bob 200 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40234 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
a=rtcp:40234
a=rtcp-mux
";
    let mut rw = kam(&[40234]);
    rw.media[0].rtcp_port = Some(40234);
    rw.media[0].rtcp_mux = true;
    check(input, &rw, out);
}

#[test]
fn ice_remove_strips_ice_everywhere() {
    let input = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
a=ice-lite
m=audio 49170 RTP/AVP 0
a=ice-ufrag:F7gI
a=ice-pwd:x9cml/YzichV2+XlhiMu8g
a=ice-options:trickle
a=candidate:1 1 UDP 2130706431 192.0.2.10 49170 typ host
a=candidate:1 2 UDP 2130706430 192.0.2.10 49171 typ host
a=end-of-candidates
";
    // rtpengine (ICE: remove) also re-emits a stray a=end-of-candidates last; we don't.
    let out = "v=0
o=alice 100 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40332 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
a=rtcp:40333
";
    assert!(parse(input).unwrap().media()[0].has_ice);
    let mut rw = kam(&[40332]);
    rw.media[0].strip_ice = true;
    check(input, &rw, out);
}

#[test]
fn old_style_hold_keeps_zero_address_and_becomes_sendonly() {
    let input = "v=0
o=alice 100 2 IN IP4 192.0.2.10
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 49170 RTP/AVP 0
";
    let out = "v=0
o=alice 100 2 IN IP4 127.0.0.1
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 40406 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendonly
a=rtcp:40407
";
    check(input, &kam(&[40406]), out);
    // c=0.0.0.0 with recvonly: nobody sends, rtpengine says inactive.
    let sdp = parse(&format!("{input}a=recvonly\n")).unwrap();
    let text = rewrite(&sdp, &kam(&[40406])).unwrap();
    assert!(text.contains("\r\na=inactive\r\n"), "{text}");
}

#[test]
fn media_level_hold_and_rejected_first_stream() {
    let input = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 0 RTP/AVP 0
m=audio 49170 RTP/AVP 0
c=IN IP4 0.0.0.0
m=video 49172 RTP/AVP 31
";
    let out = "v=0
o=alice 100 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 0 RTP/AVP 0
m=audio 40710 RTP/AVP 0
c=IN IP4 0.0.0.0
a=rtpmap:0 PCMU/8000
a=sendonly
a=rtcp:40711
m=video 40734 RTP/AVP 31
a=rtpmap:31 H261/90000
a=sendrecv
a=rtcp:40735
";
    check(input, &kam(&[0, 40710, 40734]), out);
}

#[test]
fn sendonly_is_kept() {
    let input = "v=0
o=alice 1 1 IN IP4 192.0.2.10
s=-
t=0 0
m=audio 49170 RTP/AVP 0
c=IN IP4 192.0.2.10
a=sendonly
";
    let out = "v=0
o=alice 1 1 IN IP4 127.0.0.1
s=-
t=0 0
m=audio 40066 RTP/AVP 0
c=IN IP4 127.0.0.1
a=rtpmap:0 PCMU/8000
a=sendonly
a=rtcp:40067
";
    assert_eq!(
        parse(input).unwrap().media()[0].direction,
        Some(Direction::SendOnly)
    );
    check(input, &kam(&[40066]), out);
}

#[test]
fn ipv6_offer() {
    let input = "v=0
o=alice 100 1 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 49170 RTP/AVP 0
";
    let out = "v=0
o=alice 100 1 IN IP6 ::1
s=-
c=IN IP6 ::1
t=0 0
m=audio 40050 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
a=rtcp:40051
";
    let sdp = parse(input).unwrap();
    assert_eq!(sdp.origin().unwrap().family, Some(Family::Ip6));
    let rw = Rewrite {
        origin: Some(LO6),
        session_connection: true,
        media: vec![MediaRewrite::new(LO6, 40050)],
    };
    check(input, &rw, out);
}

#[test]
fn mixed_families_get_their_own_c_lines() {
    let input = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0
m=video 49172 RTP/AVP 31
c=IN IP6 2001:db8::10
";
    let out = "v=0
o=alice 100 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40494 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
a=rtcp:40495
m=video 40128 RTP/AVP 31
c=IN IP6 ::1
a=rtpmap:31 H261/90000
a=sendrecv
a=rtcp:40129
";
    let mut rw = kam(&[40494, 40128]);
    rw.media[1].address = LO6;
    check(input, &rw, out);
    // Not in rtpengine's repertoire: a stream moved to another family than the
    // session c= (which follows the first stream) gets a media-level c= after m=/i=.
    let sdp = parse(
        "v=0\no=a 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n\
         m=audio 5 RTP/AVP 0\nm=audio 6 RTP/AVP 0\ni=x\na=y\n",
    )
    .unwrap();
    let rw = Rewrite {
        media: vec![MediaRewrite::new(LO, 7), MediaRewrite::new(LO6, 9)],
        ..Rewrite::default()
    };
    let text = rewrite(&sdp, &rw).unwrap();
    assert!(text.contains("c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7 RTP/AVP 0\r\na=rtpmap"));
    assert!(text.contains("m=audio 9 RTP/AVP 0\r\ni=x\r\nc=IN IP6 ::1\r\na=y\r\n"));
}

#[test]
fn rejected_stream_stays_port_zero_and_loses_managed_attributes() {
    let input = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0
m=video 0 RTP/AVP 31
i=vid
c=IN IP4 192.0.2.10
b=AS:100
a=mid:2
a=x-foo
a=rtcp-mux
a=rtpmap:31 H261/90000
a=sendonly
";
    let out = "v=0
o=alice 100 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40648 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
a=rtcp:40649
m=video 0 RTP/AVP 31
i=vid
c=IN IP4 127.0.0.1
b=AS:100
a=x-foo
a=mid:2
";
    check(input, &kam(&[40648, 0]), out);
}

#[test]
fn without_replace_flags() {
    // No replace-origin: o= untouched. No replace session-connection: session c=
    // is still rewritten when a stream relies on it...
    let input = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0
";
    let out = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40594 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
a=rtcp:40595
";
    let rw = Rewrite {
        media: vec![MediaRewrite::new(LO, 40594)],
        ..Rewrite::default()
    };
    check(input, &rw, out);
    // ...but left alone when every stream has its own c=.
    let input = format!("{input}c=IN IP4 192.0.2.10\n");
    let out = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 40618 RTP/AVP 0
c=IN IP4 127.0.0.1
a=rtpmap:0 PCMU/8000
a=sendrecv
a=rtcp:40619
";
    let rw = Rewrite {
        media: vec![MediaRewrite::new(LO, 40618)],
        ..Rewrite::default()
    };
    check(&input, &rw, out);
}

#[test]
fn t38_image_stream_without_rtcp() {
    let input = "v=0
o=alice 100 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=image 49170 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=sendrecv
";
    let out = "v=0
o=alice 100 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=image 40000 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=sendrecv
";
    let mut rw = kam(&[40000]);
    rw.media[0].rtcp_port = None;
    check(input, &rw, out);
}

#[test]
fn overrides_protocol_and_direction() {
    let sdp = parse(
        "v=0\no=a 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 5 RTP/SAVP 0\n",
    )
    .unwrap();
    let mut rw = kam(&[6]);
    rw.media[0].protocol = Some("RTP/AVP".into());
    rw.media[0].direction = Some(Direction::Inactive);
    let text = rewrite(&sdp, &rw).unwrap();
    assert!(text.contains("m=audio 6 RTP/AVP 0\r\n") && text.contains("a=inactive\r\n"));
    rw.media.push(MediaRewrite::new(LO, 8));
    assert_eq!(
        rewrite(&sdp, &rw),
        Err(SdpError::MediaCountMismatch {
            expected: 1,
            got: 2
        })
    );
}

#[test]
fn parse_errors_carry_line_numbers() {
    let base = "v=0\no=a 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n";
    let cases: &[(&str, SdpError)] = &[
        ("", SdpError::Empty),
        (" \r\n\n", SdpError::Empty),
        ("hello", SdpError::NotSdp { line: 1 }),
        (
            "o=a 1 1 IN IP4 1.2.3.4\n",
            SdpError::MissingVersion { line: 1 },
        ),
        ("v=0\nnonsense\n", SdpError::MalformedLine { line: 2 }),
        ("v=0\no=a 1 IN IP4\n", SdpError::BadOrigin { line: 2 }),
        ("m=audio 5 RTP/AVP\n", SdpError::BadMedia { line: 5 }),
        ("m=audio 70000 RTP/AVP 0\n", SdpError::BadPort { line: 5 }),
        ("m=audio x RTP/AVP 0\n", SdpError::BadPort { line: 5 }),
        ("c=IN IP4 ::1\n", SdpError::BadConnection { line: 5 }),
        ("c=ATM NSAP 47\n", SdpError::BadConnection { line: 5 }),
        (
            "c=IN IP4 example.com\n",
            SdpError::BadConnection { line: 5 },
        ),
        (
            "m=audio 5 RTP/AVP 0\na=rtcp:x\n",
            SdpError::BadPort { line: 6 },
        ),
    ];
    for (text, err) in cases {
        let text = if text.starts_with("m=") || text.starts_with("c=") {
            format!("{base}{text}")
        } else {
            text.to_string()
        };
        assert_eq!(parse(&text).as_ref().err(), Some(err), "{text:?}");
    }
}

#[test]
fn clock_rates_from_rtpmap_and_static_table() {
    let sdp =
        parse("v=0\nc=IN IP4 1.2.3.4\nm=audio 5 RTP/AVP 0 9 96 97\na=rtpmap:96 opus/48000/2\n")
            .unwrap();
    let m = &sdp.media()[0];
    assert_eq!(m.clock_rate(0), Some(8000));
    assert_eq!(m.clock_rate(9), Some(8000));
    assert_eq!(m.clock_rate(96), Some(48000));
    assert_eq!(m.clock_rate(97), None);
    assert_eq!(m.rtpmaps[0].channels, Some(2));
    assert_eq!(
        m.connection.unwrap().address,
        "1.2.3.4".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn never_panics_on_garbage_or_truncation() {
    let good = "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\nm=audio 5 RTP/AVP 0 96\r\nc=IN IP6 ::1\r\na=rtpmap:96 x/1/2\r\na=rtcp:6 IN IP4 1.1.1.1\r\na=rtcp-fb:96 nack\r\na=mid:0\r\nm=video 0 RTP/AVP 31\r\na=mid:1\r\n";
    let exercise = |text: &str| {
        if let Ok(sdp) = parse(text) {
            let rw = Rewrite {
                origin: Some(LO6),
                session_connection: true,
                media: sdp
                    .media()
                    .iter()
                    .map(|_| MediaRewrite::new(LO, 0))
                    .collect(),
            };
            let out = rewrite(&sdp, &rw).unwrap();
            // Our own output must always parse again.
            parse(&out).unwrap();
        }
    };
    for i in 0..=good.len() {
        exercise(&good[..i]);
        exercise(&good[i..]);
    }
    const ALPHABET: &[u8] = b"vocmat=: \r\n0123456789./INP46-audiortpmapRTP/AVPsendonly";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as usize
    };
    for _ in 0..3000 {
        // Mutate the good body at a few spots, or build from the alphabet.
        let mut bytes = good.as_bytes().to_vec();
        for _ in 0..1 + next() % 4 {
            let at = next() % bytes.len();
            bytes[at] = ALPHABET[next() % ALPHABET.len()];
        }
        exercise(&String::from_utf8_lossy(&bytes));
        let len = next() % 64;
        let junk: Vec<u8> = (0..len)
            .map(|_| ALPHABET[next() % ALPHABET.len()])
            .collect();
        exercise(&String::from_utf8_lossy(&junk));
    }
}

/// The worst a 54 KB offer can do to the rewrite: one m= line listing one
/// payload type thousands of times and thousands of attribute lines for
/// it. The rewrite indexes the lines once and writes a payload type's
/// attributes once, so its output stays the size of its input.
#[test]
fn a_hostile_sdp_costs_the_rewrite_its_size_not_formats_times_lines() {
    let mut text = String::from(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 5000 RTP/AVP",
    );
    for _ in 0..6000 {
        text.push_str(" 0");
    }
    text.push('\n');
    for i in 0..1500 {
        text.push_str(&format!("a=fmtp:0 x={i}\na=rtcp-fb:0 nack\n"));
    }
    let sdp = parse(&text).unwrap();
    let out = rewrite(&sdp, &kam(&[40000])).unwrap();
    assert!(text.len() > 50_000, "{}", text.len());
    assert!(
        out.len() < 2 * text.len(),
        "{} bytes out of {} in",
        out.len(),
        text.len()
    );
    assert_eq!(out.matches("a=fmtp:0 ").count(), 1500);
}
