//! Reading the few SDP facts the WebRTC test checks, and the plain
//! endpoint's own SDP.

use std::net::SocketAddr;

/// The transport protocol of the first `m=` line.
pub(crate) fn proto(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m="))
        .and_then(|m| m.split(' ').nth(2))
        .unwrap_or("")
}

/// The payload type `sdp` maps to Opus (`a=rtpmap:PT opus/48000/2`).
pub(crate) fn opus_pt(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let (pt, codec) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        codec
            .eq_ignore_ascii_case("opus/48000/2")
            .then(|| pt.parse().ok())?
    })
}

/// What an SDP toward a browser must have for Chromium to take it: the
/// WebRTC profile, ICE credentials and a candidate, a DTLS fingerprint and
/// role, RTP/RTCP multiplexing. Returns what is missing (empty: nothing).
pub(crate) fn missing_for_webrtc(sdp: &str) -> Vec<&'static str> {
    let has = |prefix: &str| sdp.lines().any(|l| l.starts_with(prefix));
    let mut missing = Vec::new();
    if proto(sdp) != "UDP/TLS/RTP/SAVPF" {
        missing.push("m= ... UDP/TLS/RTP/SAVPF");
    }
    for (prefix, what) in [
        ("a=ice-ufrag:", "a=ice-ufrag"),
        ("a=ice-pwd:", "a=ice-pwd"),
        ("a=candidate:", "a=candidate"),
        ("a=fingerprint:sha-256 ", "a=fingerprint:sha-256"),
        ("a=setup:", "a=setup"),
        ("a=rtcp-mux", "a=rtcp-mux"),
    ] {
        if !has(prefix) {
            missing.push(what);
        }
    }
    missing
}

/// What a plain-RTP SDP must not carry: anything of WebRTC's.
pub(crate) fn webrtc_leftovers(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter(|l| {
            [
                "a=ice-",
                "a=candidate",
                "a=fingerprint",
                "a=setup",
                "a=crypto",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .collect()
}

/// A SIP phone's plain audio SDP at `at`, offering or accepting Opus as
/// payload type `pt` only (so no transcoding is ever needed).
pub(crate) fn plain_opus(at: SocketAddr, pt: u8) -> String {
    let ip = at.ip();
    let port = at.port();
    format!(
        "v=0\r\no=- 4242 1 IN IP4 {ip}\r\ns=plain\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} opus/48000/2\r\n\
         a=fmtp:{pt} minptime=10;useinbandfec=1\r\na=sendrecv\r\n"
    )
}
