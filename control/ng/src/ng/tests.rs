use super::*;
use crate::bencode::dict;
use std::net::{IpAddr, Ipv4Addr};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n";

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|&s| s.into()).collect())
}

/// Parse a whole datagram, as the server will.
fn parse(d: &[u8]) -> Result<Request, NgError> {
    let (_, body) = split_datagram(d)?;
    parse_request(&decode_body(body)?)
}

#[test]
fn splits_datagrams() {
    assert_eq!(
        split_datagram(b"abc d7:command4:pinge"),
        Ok((&b"abc"[..], &b"d7:command4:pinge"[..]))
    );
    assert_eq!(split_datagram(b"abc "), Ok((&b"abc"[..], &b""[..])));
    assert_eq!(split_datagram(b"abc  de"), Ok((&b"abc"[..], &b" de"[..])));
    assert_eq!(split_datagram(b"nospace"), Err(NgError::NoCookie));
    assert_eq!(split_datagram(b" de"), Err(NgError::NoCookie));
    assert_eq!(split_datagram(b""), Err(NgError::NoCookie));
    assert!(NgError::NoCookie.is_silent());
    assert!(!NgError::NoPayload.is_silent());
}

#[test]
fn body_errors_match_rtpengine() {
    for (body, err, reason) in [
        (&b""[..], NgError::NoPayload, reason::NO_PAYLOAD),
        (b"xyz", NgError::NotADict, reason::INVALID_FORMAT),
        (b"l4:pinge", NgError::NotADict, reason::INVALID_FORMAT),
        (b"i5e", NgError::NotADict, reason::INVALID_FORMAT),
        (b" de", NgError::NotADict, reason::INVALID_FORMAT),
        (
            b"d7:command4:ping3:fooi03ee",
            NgError::Bencode(DecodeError::InvalidInteger { offset: 21 }),
            reason::DECODE_FAILED,
        ),
    ] {
        let e = decode_body(body).unwrap_err();
        assert_eq!(e, err, "{body:?}");
        assert_eq!(e.reason(), reason);
    }
    assert_eq!(parse_request(&Value::from("x")), Err(NgError::NotADict));
}

#[test]
fn command_names_round_trip() {
    for c in Command::ALL {
        assert_eq!(c.name().parse::<Command>(), Ok(*c));
        assert_eq!(c.to_string(), c.name());
    }
    assert_eq!(Command::ALL.len(), 14);
    let e = "Ping".parse::<Command>().unwrap_err();
    assert_eq!(e, NgError::UnrecognizedCommand("Ping".into()));
    assert_eq!(e.reason(), "Unrecognized command");
}

#[test]
fn command_key_errors() {
    for d in [&b"x de"[..], b"x d7:commandi5ee", b"x d7:commandl4:pingee"] {
        let e = parse(d).unwrap_err();
        assert_eq!(e, NgError::NoCommand);
        assert_eq!(e.reason(), "Dictionary contains no key \"command\"");
    }
    assert_eq!(
        parse(b"x d7:command10:frobnicatee"),
        Err(NgError::UnrecognizedCommand("frobnicate".into()))
    );
    assert_eq!(
        parse(b"x d7:command4:pinge").unwrap().command(),
        Command::Ping
    );
}

#[test]
fn required_keys_in_rtpengine_order() {
    let req = |items: &[(&'static str, &str)]| {
        parse_request(&dict(items.iter().map(|&(k, v)| (k, v.into()))))
    };
    assert_eq!(req(&[("command", "offer")]), Err(NgError::NoSdp));
    assert_eq!(
        req(&[("command", "offer"), ("call-id", "c")]),
        Err(NgError::NoSdp)
    );
    assert_eq!(
        req(&[("command", "offer"), ("sdp", SDP)]),
        Err(NgError::NoCallId)
    );
    assert_eq!(
        req(&[("command", "offer"), ("sdp", SDP), ("call-id", "c")]),
        Err(NgError::NoFromTag)
    );
    assert_eq!(
        req(&[
            ("command", "answer"),
            ("sdp", SDP),
            ("call-id", "c"),
            ("from-tag", "f")
        ]),
        Err(NgError::NoToTag)
    );
    assert_eq!(req(&[("command", "delete")]), Err(NgError::NoCallId));
    assert_eq!(req(&[("command", "query")]), Err(NgError::NoCallId));
    assert!(req(&[("command", "delete"), ("call-id", "c")]).is_ok());
    assert!(req(&[("command", "list")]).is_ok());
    assert!(req(&[("command", "statistics")]).is_ok());

    for (e, r) in [
        (NgError::NoSdp, "No SDP body in message"),
        (NgError::NoCallId, "No call-id in message"),
        (NgError::NoFromTag, "No from-tag in message"),
        (NgError::NoToTag, "No to-tag in message"),
        (NgError::UnknownCallId, "Unknown call-id"),
        (NgError::FailedToParseSdp, "Failed to parse SDP"),
        (NgError::LoadLimit, "Parallel session limit reached"),
        (NgError::NoCookie, "Invalid NG data format"),
    ] {
        assert_eq!(e.reason(), r);
    }
}

/// What Kamailio's rtpengine module actually sends for
/// `rtpengine_offer("replace-origin replace-session-connection ICE=remove RTP/AVP")`.
#[test]
fn kamailio_offer() {
    let body = dict([
        ("sdp", SDP.into()),
        ("call-id", "a84b4c76e66710@pc33".into()),
        ("via-branch", "z9hG4bK776asdhds.0".into()),
        ("received-from", list(&["IP4", "127.0.0.1"])),
        ("from-tag", "1928301774".into()),
        ("command", "offer".into()),
        ("supports", list(&["load limit"])),
        ("flags", list(&["trust-address", "SIP-source-address"])),
        ("replace", list(&["origin", "session-connection"])),
        ("ICE", "remove".into()),
        ("transport-protocol", "RTP/AVP".into()),
        ("rtcp-mux", list(&["demux"])),
        ("direction", list(&["external", "internal"])),
        ("delete delay", Value::Int(0)),
        ("delete-delay", "0".into()),
    ]);
    // Through the wire format, to cover encode/decode too.
    let wire = encode_reply(b"5_1", &body);
    let r = parse(&wire).unwrap();
    assert_eq!(
        r,
        Request {
            op: Op::Offer(Offer {
                call_id: "a84b4c76e66710@pc33".into(),
                from_tag: "1928301774".into(),
                to_tag: None,
                sdp: SDP.into(),
            }),
            options: Options {
                via_branch: Some("z9hG4bK776asdhds.0".into()),
                flags: Flags {
                    trust_address: true,
                    sip_source_address: true,
                    ..Flags::default()
                },
                replace: Replace {
                    origin: true,
                    session_connection: true
                },
                direction: vec!["external".into(), "internal".into()],
                ice: Some(IceMode::Remove),
                rtcp_mux: RtcpMux {
                    demux: true,
                    ..RtcpMux::default()
                },
                transport_protocol: Some("RTP/AVP".into()),
                received_from: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                media_address: None,
                delete_delay: Some(0),
                supports: vec!["load limit".into()],
                address_family: None,
                tunnel: None,
                destination: None,
                ..Options::default()
            },
        }
    );
}

#[test]
fn delete_delay_spellings_and_precedence() {
    for key in ["delete-delay", "delete delay", "delete_delay"] {
        for v in [Value::Int(7), Value::from("7"), Value::from(" 7 ")] {
            let r = parse_request(&dict([
                ("command", "delete".into()),
                ("call-id", "c".into()),
                (key, v),
            ]))
            .unwrap();
            assert_eq!(r.options.delete_delay, Some(7), "{key}");
        }
    }
    // The dashed key beats other spellings, which beat the flags list.
    let r = parse_request(&dict([
        ("command", "delete".into()),
        ("call-id", "c".into()),
        ("flags", list(&["delete-delay=1"])),
        ("delete_delay", Value::Int(2)),
        ("delete-delay", Value::Int(3)),
    ]))
    .unwrap();
    assert_eq!(r.options.delete_delay, Some(3));
    let r = parse_request(&dict([
        ("command", "delete".into()),
        ("call-id", "c".into()),
        ("flags", list(&["delete-delay=1"])),
        ("delete delay", Value::Int(2)),
    ]))
    .unwrap();
    assert_eq!(r.options.delete_delay, Some(2));
}

#[test]
fn kamailio_style_flag_strings() {
    let r = parse_request(&dict([
        ("command", "offer".into()),
        ("sdp", SDP.into()),
        ("call-id", "c".into()),
        ("from-tag", "f".into()),
        (
            "flags",
            list(&[
                "replace-origin",
                "replace-session-connection",
                "ICE=force-relay",
                "RTP/SAVPF",
                "rtcp-mux-offer",
                "rtcp-mux-accept",
                "rtcp-mux-demux",
                "rtcp-mux-require",
                "rtcp-mux-reject",
                "strict-source",
                "asymmetric",
                "symmetric",
                "trust_address",
                "sip-source-address",
                "media-address=10.0.0.1",
                "direction=pub_1",
                "direction=priv",
                "delete-delay=5",
                "fatal",
                "all",
                "port-latching",
                "no-rtcp-attribute",
                "record-call=yes",
                "mystery",
            ]),
        ),
    ]))
    .unwrap();
    assert!(r.options.replace.origin && r.options.replace.session_connection);
    assert_eq!(r.options.ice, Some(IceMode::ForceRelay));
    assert_eq!(r.options.transport_protocol.as_deref(), Some("RTP/SAVPF"));
    let m = r.options.rtcp_mux;
    assert!(m.offer && m.accept && m.demux && m.require && m.reject);
    let f = &r.options.flags;
    assert!(f.strict_source && f.asymmetric && f.symmetric && f.trust_address);
    assert!(f.sip_source_address && f.fatal && f.all && f.port_latching);
    // full-rtcp-attribute and loop-protect are refused (ng/codec/tests.rs).
    assert!(f.no_rtcp_attribute);
    assert_eq!(f.unknown, vec!["record-call=yes", "mystery"]);
    assert_eq!(r.options.media_address, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(r.options.direction, vec!["pub_1", "priv"]);
    assert_eq!(r.options.delete_delay, Some(5));
}

#[test]
fn key_normalization_and_misc_keys() {
    let r = parse_request(&dict([
        ("command", "list".into()),
        ("ice", "Optional".into()),
        ("transport protocol", "RTP/AVPF".into()),
        ("replace", list(&["session connection", "username"])),
        ("rtcp-mux", "offer, require".into()),
        ("media-address", "::1".into()),
        ("received-from", list(&["IP6", "2001:db8::1"])),
        ("limit", "5".into()),
        ("to-tag", "t".into()),
        ("unknown-key", Value::List(vec![])),
    ]))
    .unwrap();
    assert_eq!(r.options.ice, Some(IceMode::Optional));
    assert_eq!(r.options.transport_protocol.as_deref(), Some("RTP/AVPF"));
    assert!(r.options.replace.session_connection && !r.options.replace.origin);
    assert!(r.options.rtcp_mux.offer && r.options.rtcp_mux.require && !r.options.rtcp_mux.accept);
    assert_eq!(r.options.media_address, Some("::1".parse().unwrap()));
    assert_eq!(
        r.options.received_from,
        Some("2001:db8::1".parse().unwrap())
    );
    assert_eq!(
        r.op,
        Op::List {
            limit: Some(5),
            after: None
        }
    );
    for (s, m) in [
        ("remove", IceMode::Remove),
        ("FORCE", IceMode::Force),
        ("default", IceMode::Default),
        ("force_relay", IceMode::ForceRelay),
    ] {
        assert_eq!(IceMode::from_name(s), Some(m));
    }
}

#[test]
fn wrong_types_name_the_key() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("call-id", list(&["x"]), "call-id"),
        ("call-id", Value::Int(5), "call-id"),
        ("from-tag", Value::from(&b"\xff"[..]), "from-tag"),
        (
            "received-from",
            list(&["IP4", "999.1.1.1"]),
            "received-from",
        ),
        (
            "received-from",
            list(&["IP6", "127.0.0.1"]),
            "received-from",
        ),
        ("received-from", "127.0.0.1".into(), "received-from"),
        ("received-from", list(&["IP4"]), "received-from"),
        ("media-address", "bogus".into(), "media-address"),
        ("ICE", "bogus".into(), "ice"),
        ("delete delay", "abc".into(), "delete-delay"),
        ("delete-delay", Value::Int(-1), "delete-delay"),
        ("limit", dict([]), "limit"),
        ("flags", Value::Int(1), "flags"),
        ("flags", Value::List(vec![Value::Int(1)]), "flags"),
        (
            "flags",
            list(&["media-address=nope"]),
            "flags: media-address",
        ),
        ("flags", list(&["ICE=sideways"]), "flags: ice"),
        ("flags", list(&["delete-delay=x"]), "flags: delete-delay"),
        ("direction", list(&["a", "b", "c"]), "direction"),
        (
            "flags",
            list(&["direction=a", "direction=b", "direction=c"]),
            "flags: direction",
        ),
    ];
    for (key, value, named) in cases {
        let e =
            parse_request(&dict([("command", "ping".into()), (key, value.clone())])).unwrap_err();
        let NgError::InvalidValue { key: k, .. } = &e else {
            panic!("{key} {value:?}: {e:?}");
        };
        assert_eq!(k, named);
        assert!(
            e.reason().starts_with("Invalid value for key \""),
            "{}",
            e.reason()
        );
        assert!(e.reason().contains(named));
    }
}

#[test]
fn replies_encode_byte_for_byte() {
    let enc = |cookie: &[u8], r: Reply| r.encode(cookie);
    assert_eq!(enc(b"c1", Reply::Pong), b"c1 d6:result4:ponge");
    assert_eq!(enc(b"c1", Reply::ok()), b"c1 d6:result2:oke");
    assert_eq!(
        enc(b"c2", Reply::error(reason::NO_SDP)),
        b"c2 d12:error-reason22:No SDP body in message6:result5:errore"
    );
    assert_eq!(
        error(reason::NO_SDP),
        Reply::error(reason::NO_SDP).to_value()
    );
    assert_eq!(
        enc(b"c9", Reply::ok_with_warning(reason::DELETE_NOT_FOUND)),
        &b"c9 d6:result2:ok7:warning38:Call-ID not found or tags didn't matche"[..]
    );
    assert_eq!(
        enc(b"x", Reply::LoadLimit),
        &b"x d7:message30:Parallel session limit reached6:result10:load limite"[..]
    );
    assert_eq!(
        enc(
            b"o",
            Reply::Sdp {
                sdp: "v=0\r\n".into(),
                tunnel: None
            }
        ),
        &b"o d6:result2:ok3:sdp5:v=0\r\ne"[..]
    );
    let tunnel = TunnelEnd {
        address: "10.0.0.1:7000".parse().unwrap(),
        flows: vec![(5, 6)],
    };
    assert_eq!(
        enc(
            b"o",
            Reply::Sdp {
                sdp: "v=0\r\n".into(),
                tunnel: Some(tunnel.clone())
            }
        ),
        &b"o d6:result2:ok3:sdp5:v=0\r\n6:tunneld7:address13:10.0.0.1:70005:flowslli5ei6eeeee"[..]
    );
    assert_eq!(enc(b"t", Reply::Tunnel(None)), &b"t d6:result2:oke"[..]);
    assert_eq!(
        enc(b"l", Reply::Calls(vec!["a".into(), "bc".into()])),
        &b"l d5:callsl1:a2:bce6:result2:oke"[..]
    );
    let stats = Statistics::new()
        .section("currentstatistics", [("sessionsown", 2), ("nodes", 1)])
        .section("tunnel", [("packets", 0)]);
    assert_eq!(
        enc(b"s", Reply::Statistics(stats)),
        &b"s d6:result2:ok10:statisticsd17:currentstatisticsd5:nodesi1e11:sessionsowni2ee6:tunneld7:packetsi0eeee"[..]
    );
}

#[test]
fn failures_become_error_or_load_limit_replies() {
    assert_eq!(
        Failure::from(reason::UNKNOWN_TAG).into_reply(true),
        Reply::error(reason::UNKNOWN_TAG)
    );
    assert_eq!(Failure::LoadLimit.into_reply(true), Reply::LoadLimit);
    assert_eq!(
        Failure::LoadLimit.into_reply(false),
        Reply::error(reason::LOAD_LIMIT)
    );
    assert_eq!(
        Failure::from(NgError::NoCallId),
        Failure::Error(reason::NO_CALL_ID.into())
    );
    assert_eq!(Failure::from(NgError::LoadLimit), Failure::LoadLimit);
}

#[test]
fn relayed_replies_carry_the_controllers_keys() {
    let route = Route {
        endpoint: "e".into(),
        gateway: "g".into(),
        sip: "s".into(),
        region: "r".into(),
        node: "n".into(),
        callee_node: "m".into(),
    };
    let node_reply = dict([("result", "ok".into()), ("sdp", "x".into())]);
    let r = Relayed {
        route: Some(route),
        branch_node: Some("b".into()),
        ..Relayed::of(node_reply.clone())
    };
    assert_eq!(
        Reply::Relayed(r).encode(b"c"),
        &b"c d11:branch-node1:b6:result2:ok5:routed11:callee-node1:m8:endpoint1:e7:gateway1:g4:node1:n6:region1:r3:sip1:se3:sdp1:xe"[..]
    );
    assert_eq!(
        Reply::Relayed(Relayed::of(node_reply.clone())).to_value(),
        node_reply
    );
}

#[test]
fn call_reports_keep_rtpengines_shape() {
    let stream = |port: u16, endpoint: Option<&str>| StreamReport {
        local_port: port,
        local_address: "10.0.0.1".parse().unwrap(),
        endpoint: endpoint.map(|e| e.parse().unwrap()),
        advertised: None,
        last_packet: 7,
        confirmed: endpoint.is_some(),
        stats: PacketStats {
            packets: 1,
            bytes: 2,
            errors: 3,
        },
        ssrc: 4,
        packets_lost: 5,
        jitter: 6,
        kernel_drops: 8,
        foreign_source_packets: 9,
    };
    let report = CallReport {
        created: 100,
        last_signal: 101,
        tags: vec![TagReport {
            tag: "a".into(),
            created: 100,
            in_dialogue_with: "b".into(),
            medias: vec![MediaReport {
                index: 1,
                kind: "audio".into(),
                protocol: "RTP/AVP".into(),
                rtp: stream(30000, Some("10.0.0.2:4000")),
                rtcp: stream(30001, None),
                rtcp_mux: true,
            }],
        }],
        rtp: PacketStats::default(),
        rtcp: PacketStats::default(),
    };
    let v = Reply::Report(report).to_value();
    let media = &v
        .get("tags")
        .unwrap()
        .get("a")
        .unwrap()
        .get("medias")
        .unwrap()
        .as_list()
        .unwrap()[0];
    assert_eq!(
        media.get("flags"),
        Some(&Value::List(vec!["rtcp-mux".into()]))
    );
    let streams = media.get("streams").unwrap().as_list().unwrap();
    let flags = |i: usize| streams[i].get("flags").unwrap().clone();
    assert_eq!(
        flags(0),
        Value::List(vec!["RTP".into(), "filled".into(), "confirmed".into()])
    );
    assert_eq!(flags(1), Value::List(vec!["RTCP".into()]));
    assert_eq!(
        streams[0].get("endpoint").unwrap().encode(),
        b"d7:address8:10.0.0.26:family4:IPv44:porti4000ee"
    );
    assert_eq!(streams[1].get("endpoint").unwrap().encode(), b"de");
    assert_eq!(
        streams[1].get("stats").unwrap().encode(),
        b"d5:bytesi2e6:errorsi3e7:packetsi1ee"
    );
    assert_eq!(v.get("last signal"), Some(&Value::Int(101)));
    assert_eq!(v.get("result").and_then(Value::as_str), Some("ok"));
}

// Long: one case per command and per required key, in a table-like list.
#[test]
fn required_keys_are_present_by_construction() {
    let req = |items: Vec<(&'static str, Value)>| parse_request(&dict(items)).map(|r| r.op);
    assert_eq!(
        req(vec![
            ("command", "offer".into()),
            ("sdp", SDP.into()),
            ("call-id", "c".into()),
            ("from-tag", "f".into()),
            ("to-tag", "t".into()),
        ]),
        Ok(Op::Offer(Offer {
            call_id: "c".into(),
            from_tag: "f".into(),
            to_tag: Some("t".into()),
            sdp: SDP.into(),
        }))
    );
    assert_eq!(
        req(vec![
            ("command", "answer".into()),
            ("sdp", SDP.into()),
            ("call-id", "c".into()),
            ("from-tag", "f".into()),
            ("to-tag", "t".into()),
        ]),
        Ok(Op::Answer(Answer {
            call_id: "c".into(),
            from_tag: "f".into(),
            to_tag: "t".into(),
            sdp: SDP.into(),
        }))
    );
    let call = |from_tag: Option<&str>| CallRef {
        call_id: "c".into(),
        from_tag: from_tag.map(Into::into),
    };
    assert_eq!(
        req(vec![
            ("command", "block media".into()),
            ("call-id", "c".into()),
            ("from-tag", "f".into())
        ]),
        Ok(Op::BlockMedia(call(Some("f"))))
    );
    assert_eq!(
        req(vec![("command", "query".into()), ("call-id", "c".into())]),
        Ok(Op::Query(call(None)))
    );
    assert_eq!(req(vec![("command", "ping".into())]), Ok(Op::Ping));
    assert_eq!(
        req(vec![("command", "list".into())]),
        Ok(Op::List {
            limit: None,
            after: None
        })
    );
    assert_eq!(
        req(vec![
            ("command", "list".into()),
            ("limit", 10u64.into()),
            ("after", "c-41".into()),
        ]),
        Ok(Op::List {
            limit: Some(10),
            after: Some("c-41".into())
        })
    );
    // Branches need a call-id first, then a name.
    for c in ["start branch", "stop branch"] {
        assert_eq!(req(vec![("command", c.into())]), Err(NgError::NoCallId));
        assert_eq!(
            req(vec![("command", c.into()), ("call-id", "c".into())]),
            Err(NgError::NoBranch)
        );
    }
    assert_eq!(NgError::NoBranch.reason(), "No branch in message");
    // A malformed key is reported before a missing one.
    assert_eq!(
        req(vec![
            ("command", "offer".into()),
            ("call-id", Value::Int(1))
        ]),
        Err(NgError::InvalidValue {
            key: "call-id".into(),
            expected: "a UTF-8 string"
        })
    );
    let r = parse_request(&dict([
        ("command", "offer".into()),
        ("sdp", SDP.into()),
        ("call-id", "c".into()),
        ("from-tag", "f".into()),
        ("supports", list(&["load limit"])),
    ]))
    .unwrap();
    assert_eq!(r.command(), Command::Offer);
    assert_eq!(r.call_id(), Some("c"));
    assert!(r.supports_load_limit());
}

#[test]
fn error_display() {
    let e = NgError::from(DecodeError::TrailingData { offset: 4 });
    assert_eq!(
        e.to_string(),
        "could not decode bencode dictionary: trailing data at byte 4"
    );
    assert_eq!(NgError::NotADict.reason(), reason::INVALID_FORMAT);
    assert_eq!(
        NgError::UnrecognizedCommand("x".into()).to_string(),
        "unrecognized command \"x\""
    );
}

/// Arbitrary bytes through the whole pipeline must never panic.
#[test]
fn never_panics() {
    let mut state: u64 = 42;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let seed = encode_reply(
        b"c",
        &dict([
            ("command", "offer".into()),
            ("received-from", list(&["IP4", "1.2.3.4"])),
            ("flags", list(&["ICE=remove", "delete-delay=3"])),
            ("delete delay", "0".into()),
        ]),
    );
    for _ in 0..10_000 {
        let mut d = seed[..next() % (seed.len() + 1)].to_vec();
        for _ in 0..next() % 3 {
            if !d.is_empty() {
                let i = next() % d.len();
                d[i] = (next() % 256) as u8;
            }
        }
        if let Err(e) = parse(&d) {
            let _ = e.reason();
        }
    }
}

// Long: one case per key and per way it can be wrong, in a table-like list.
#[test]
fn the_tunnel_branch_and_destination_keys_parse_or_say_what_is_wrong() {
    let req = |items: Vec<(&str, Value)>| {
        let mut all = vec![
            ("command", Value::from("start branch")),
            ("call-id", "c".into()),
        ];
        all.extend(items);
        parse_request(&dict(all))
    };
    let t = dict([
        ("side", "answerer".into()),
        ("address", "10.0.0.1:7000".into()),
        (
            "flows",
            Value::List(vec![Value::List(vec![Value::Int(5), Value::Int(6)])]),
        ),
    ]);
    let r = req(vec![
        ("tunnel", t),
        ("branch", "rec".into()),
        ("destination", "10.0.0.9:6000".into()),
    ])
    .unwrap();
    assert_eq!(
        r.options.tunnel,
        Some(TunnelParams {
            side: Some(TunnelSide::Answerer),
            address: Some("10.0.0.1:7000".parse().unwrap()),
            flows: vec![(5, 6)],
        })
    );
    assert_eq!(
        r.op,
        Op::StartBranch(BranchRef {
            call: CallRef {
                call_id: "c".into(),
                from_tag: None
            },
            branch: "rec".into()
        })
    );
    assert_eq!(
        r.options.destination,
        Some("10.0.0.9:6000".parse().unwrap())
    );

    let bad = [
        (
            vec![("tunnel", Value::from("x"))],
            "Invalid value for key \"tunnel\": expected {side, address, flows: [[RTP, RTCP], ...]}",
        ),
        (
            vec![("tunnel", dict([("side", "middle".into())]))],
            "Invalid value for key \"tunnel.side\": expected offerer or answerer",
        ),
        (
            vec![("tunnel", dict([("address", "nowhere".into())]))],
            "Invalid value for key \"tunnel.address\": expected an address:port",
        ),
        (
            vec![(
                "tunnel",
                dict([("flows", Value::List(vec![Value::List(vec![Value::Int(1)])]))]),
            )],
            "Invalid value for key \"tunnel\": expected {side, address, flows: [[RTP, RTCP], ...]}",
        ),
        (
            vec![("destination", "10.0.0.9".into())],
            "Invalid value for key \"destination\": expected an address:port",
        ),
    ];
    for (items, reason) in bad {
        let e = req(items).unwrap_err();
        assert_eq!(e.reason(), reason);
    }
    // Commands about a call need its id.
    for c in [
        "start recording",
        "block media",
        "start branch",
        "update tunnel",
    ] {
        let e = parse_request(&dict([("command", c.into())])).unwrap_err();
        assert_eq!(e, NgError::NoCallId, "{c}");
    }
}

#[test]
fn a_list_page_is_sorted_starts_after_the_cursor_and_stops_at_the_limit() {
    let ids = ["d", "b", "a", "c", "e"];
    assert_eq!(list_page(ids, None, 3), ["a", "b", "c"]);
    assert_eq!(list_page(ids, Some("b"), 2), ["c", "d"]);
    assert_eq!(list_page(ids, Some("e"), 32), Vec::<String>::new());
}

#[test]
fn a_list_page_always_fits_in_one_datagram() {
    // 1,000 Call-IDs of 100 bytes are 100 KB: the page stops where the
    // reply would no longer fit, and paging on from its last id gets the
    // rest.
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("{i:04}{}", "x".repeat(96)))
        .collect();
    let first = list_page(ids.iter().map(String::as_str), None, usize::MAX);
    assert!(first.len() < 1000);
    let body = Reply::Calls(first.clone()).to_value().encode();
    assert!(body.len() <= MAX_REPLY_BODY, "{} bytes", body.len());
    let rest = list_page(
        ids.iter().map(String::as_str),
        first.last().map(String::as_str),
        usize::MAX,
    );
    assert_eq!(first.len() + rest.len(), 1000);
    assert_eq!(rest[0], ids[first.len()]);
}
