//! `sdp`: parse an SDP body, then rewrite it as a node does for an offer
//! and for an answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtpmesh_ng::sdp::{parse, rewrite, Direction, MediaRewrite, Rewrite, SessionDescription};

const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));

/// Parses `data` (as text; bytes that are not UTF-8 are replaced, as they
/// cannot reach the parser from an ng request either) and rewrites what
/// parses twice: offer-style (ICE stripped, `a=rtcp:` port + 1, origin and
/// session `c=` replaced) and answer-style (mux, forced protocol, direction
/// and ptime, IPv6). Every rewrite must parse again with the same number of
/// `m=` lines: the controller parses what a node rewrote.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(sdp) = parse(&text) else {
        return;
    };
    for rw in [offer(&sdp), answer(&sdp)] {
        let out = rewrite(&sdp, &rw).expect("one MediaRewrite per m= line");
        let again = parse(&out).unwrap_or_else(|e| panic!("rewrite does not parse: {e}\n{out}"));
        assert_eq!(again.media().len(), sdp.media().len(), "{out}");
    }
}

/// What `negotiate.rs` asks for on an offer.
fn offer(sdp: &SessionDescription) -> Rewrite {
    let media = (0u16..)
        .zip(sdp.media())
        .map(|(i, m)| {
            let port = 30000 + 2 * i;
            MediaRewrite {
                rtcp_port: Some(port + 1),
                rtcp_mux: m.rtcp_mux,
                strip_ice: true,
                ..MediaRewrite::new(V4, port)
            }
        })
        .collect();
    Rewrite {
        origin: Some(V4),
        session_connection: true,
        media,
    }
}

/// An answer, with every knob turned.
fn answer(sdp: &SessionDescription) -> Rewrite {
    let media = (0u16..)
        .zip(sdp.media())
        .map(|(i, m)| {
            let port = 65534u16.wrapping_sub(2 * i);
            MediaRewrite {
                address: if i % 2 == 0 { V6 } else { V4 },
                port,
                rtcp_port: Some(port),
                rtcp_mux: true,
                strip_ice: false,
                protocol: Some("RTP/SAVPF".into()),
                direction: Some(Direction::SendOnly).filter(|_| i % 3 == 1),
                ptime: m.ptime.or(Some(20)),
                mid: rtpmesh_ng::sdp::Mid::IfNone("0".into()),
                security: vec!["setup:actpass".into()],
                ice: vec!["ice-ufrag:abcd".into()],
            }
        })
        .collect();
    Rewrite {
        origin: None,
        session_connection: false,
        media,
    }
}
