//! A real browser through the relay: headless Chromium (Debian's
//! `chromium`, fake microphone) loads tests/webrtc/page.html, which opens
//! an RTCPeerConnection; the relay bridges it (ICE, DTLS-SRTP, rtcp-mux)
//! to a plain-RTP endpoint played by this test with UDP sockets, using the
//! ng flags a Kamailio WebRTC <-> SIP setup sends. Both directions must
//! carry audio: the plain side counts the browser's Opus packets and
//! reflects them, the browser's getStats shows them received and decoded.
//!
//! The relay is an rtpmesh node, or rtpengine 10.5 with
//! `RTPMESH_WEBRTC_RELAY=rtpengine` (what the test was checked against;
//! tests/webrtc/README.md holds rtpengine's SDPs). Needs `chromium`;
//! a missing browser fails the test, it never skips.

mod common;
#[path = "webrtc/sdp.rs"]
mod sdp;

use std::time::Duration;

use common::browser::Chromium;
use common::ng::{reason, result, Items};
use common::page_server::PageServer;
use common::plain_rtp::PlainRtp;
use common::relay::Relay;
use common::{media_addr, Ng};
use rtpmesh_ng::bencode::Value;
use serde_json::Value as Json;

/// The page; `?role=offerer` or `?role=answerer`.
const PAGE: &str = include_str!("webrtc/page.html");

/// Packets each way that make "audio flows" (about a second of 20 ms
/// Opus frames).
const PACKETS: u64 = 50;

/// How long Chromium gets to start and post its SDP, and media to flow:
/// a bound on a hung test, not a performance threshold.
const LIMIT: Duration = Duration::from_secs(30);

/// Flags of an offer from the browser toward SIP (Kamailio's
/// `rtpengine_offer("ICE=remove RTP/AVP rtcp-mux-demux replace-origin
/// replace-session-connection")`), plus `DTLS=passive` when `dtls` says
/// so: the relay's DTLS role toward the browser must be fixed by the
/// offer, because rtpengine's ICE checks the browser's candidates as soon
/// as it has the offer and starts DTLS when they succeed, which may be
/// before the answer arrives (with `DTLS=passive` only on the answer both
/// ends can end up as DTLS clients, and the call never connects).
fn toward_plain<'a>(dtls: Option<&str>) -> Items<'a> {
    let mut flags = vec![
        ("ICE", "remove".into()),
        ("transport-protocol", "RTP/AVP".into()),
        ("rtcp-mux", Value::List(vec!["demux".into()])),
    ];
    flags.extend(dtls.map(|d| ("DTLS", d.into())));
    flags
}

/// Flags of a message from SIP toward the browser (`ICE=force
/// UDP/TLS/RTP/SAVPF rtcp-mux-... [DTLS=...]`): `mux` is `offer` in an
/// offer, `require` in an answer.
fn toward_browser<'a>(mux: &str, dtls: Option<&str>) -> Items<'a> {
    let mut flags = vec![
        ("ICE", "force".into()),
        ("transport-protocol", "UDP/TLS/RTP/SAVPF".into()),
        ("rtcp-mux", Value::List(vec![mux.into()])),
    ];
    flags.extend(dtls.map(|d| ("DTLS", d.into())));
    flags
}

/// `ICE-lite: <side>` for rtpengine only: rtpmesh is always an ICE-lite
/// agent (RFC 8445 lite: it answers checks, never sends them); rtpengine
/// is a full agent unless told so, and as a full agent it checks the
/// browser's candidates as soon as it has the offer and starts DTLS as the
/// client when they succeed, possibly before the answer has made it the
/// passive side (then both ends are DTLS clients and the call never
/// connects). `side` is `backward` toward an offering browser, `forward`
/// toward an answering one.
fn lite_for_rtpengine<'a>(relay: &Relay, side: &str) -> Option<(&'a str, Value)> {
    matches!(relay, Relay::Rtpengine(..)).then(|| ("ICE-lite", side.into()))
}

/// One call's cast: the relay, the page server, the plain endpoint, the
/// browser. On a failed test it prints what was exchanged.
struct Scene {
    call: String,
    /// The SDPs in the order they were exchanged, labelled.
    sdps: Vec<(&'static str, String)>,
    ng: Ng,
    plain: PlainRtp,
    browser: Option<Chromium>,
    server: PageServer,
    relay: Relay,
}

impl Scene {
    /// Starts the relay, the plain endpoint and the page server, and opens
    /// the page in the browser as `role`.
    fn open(backend: &str, call: &str, role: &str) -> Self {
        let relay = Relay::start(backend);
        let server = PageServer::start();
        server.page("/", "text/html; charset=utf-8", PAGE);
        // Asked for by every page load; answered at once, not held.
        server.page("/favicon.ico", "image/x-icon", "");
        let browser = Chromium::open(&server.url(&format!("/?role={role}")));
        Self {
            call: format!("{call}-{}", relay.name()),
            sdps: Vec::new(),
            ng: relay.client(),
            plain: PlainRtp::start(),
            browser: Some(browser),
            server,
            relay,
        }
    }

    /// The SDP the page posts (its offer or answer).
    fn page_sdp(&mut self, what: &'static str) -> String {
        let got = self.server.wait(LIMIT, |posts| {
            if let Some(e) = posts.get("/error") {
                panic!("the page failed before posting its {what}: {e:?}");
            }
            posts.get("/local")?.first().cloned()
        });
        let sdp = got.unwrap_or_else(|| panic!("the page posted no {what} within {LIMIT:?}"));
        self.sdps.push((what, sdp.clone()));
        sdp
    }

    /// Sends an ng offer or answer; returns the relay's SDP.
    fn signal(&mut self, what: &'static str, items: Items<'_>) -> String {
        let reply = self.ng.req(items);
        assert_eq!(
            result(&reply),
            "ok",
            "{} refused the {what}: {} ({reply:?})",
            self.relay.name(),
            reason(&reply)
        );
        let sdp = reply.get("sdp").and_then(Value::as_str).expect("sdp");
        self.sdps.push((what, sdp.to_owned()));
        sdp.to_owned()
    }

    /// ng `offer` of `sdp` from `from`, with the flags a Kamailio sends.
    fn offer(&mut self, what: &'static str, from: &str, sdp: &str, flags: Items<'_>) -> String {
        let mut items = common::ng::offer(&self.call, from, sdp);
        items.push(replace());
        items.extend(flags);
        self.signal(what, items)
    }

    /// ng `answer` of `sdp` from `to` to `from`'s offer.
    fn answer(
        &mut self,
        what: &'static str,
        from: &str,
        to: &str,
        sdp: &str,
        flags: Items<'_>,
    ) -> String {
        let mut items = common::ng::answer(&self.call, from, to, sdp);
        items.push(replace());
        items.extend(flags);
        self.signal(what, items)
    }

    /// Waits until both directions carried audio: the plain side got
    /// `PACKETS` RTP packets of payload type `pt` from the relay, and the
    /// page's stats show as many received and decoded, over a connected
    /// DTLS transport. Returns the page's stats.
    fn expect_audio_both_ways(&self, pt: u8, browser_dtls_role: &str) -> Json {
        let to_plain = self
            .plain
            .wait_until(LIMIT, |s| s.by_pt.get(&pt).copied().unwrap_or(0) >= PACKETS);
        assert!(
            to_plain,
            "the plain endpoint did not get {PACKETS} RTP packets of payload type {pt} from \
             the browser through {} within {LIMIT:?}: {:?}",
            self.relay.name(),
            self.plain.seen()
        );
        let stats = self.server.wait(LIMIT, |posts| {
            if let Some(e) = posts.get("/error") {
                panic!("the page failed: {e:?}");
            }
            let last: Json = serde_json::from_str(posts.get("/stats")?.last()?).ok()?;
            audio_flowed(&last).then_some(last)
        });
        let stats = stats.unwrap_or_else(|| {
            panic!(
                "the browser's stats never showed audio both ways through {} within {LIMIT:?}",
                self.relay.name()
            )
        });
        let seen = self.plain.seen();
        assert_eq!(
            seen.invalid, 0,
            "non-RTP datagrams reached the plain side: {seen:?}"
        );
        assert_eq!(
            seen.by_pt.keys().copied().collect::<Vec<_>>(),
            [pt],
            "payload types other than the negotiated {pt}: {seen:?}"
        );
        assert_eq!(
            stats.pointer("/transport/dtlsRole"),
            Some(&Json::from(browser_dtls_role)),
            "the browser's DTLS role: {stats:#}"
        );
        // Shown with --nocapture: what a working exchange looks like.
        for (what, sdp) in &self.sdps {
            eprintln!("--- {what} ---\n{sdp}");
        }
        eprintln!("--- browser's stats ---\n{stats:#}\n--- plain side ---\n{seen:?}");
        stats
    }
}

/// Kamailio sends `replace: [origin, session-connection]` with every offer
/// and answer.
fn replace<'a>() -> (&'a str, Value) {
    (
        "replace",
        Value::List(vec!["origin".into(), "session-connection".into()]),
    )
}

/// Whether a page's stats summary shows audio both ways: packets sent and
/// received, received samples decoded (not all of them concealment), over
/// a connected DTLS transport.
fn audio_flowed(s: &Json) -> bool {
    let n = |path: &str| s.pointer(path).and_then(Json::as_f64).unwrap_or(0.0);
    let packets = PACKETS as f64;
    s.pointer("/transport/dtlsState") == Some(&Json::from("connected"))
        && n("/outbound/packetsSent") >= packets
        && n("/inbound/packetsReceived") >= packets
        && n("/inbound/totalSamplesReceived") > n("/inbound/concealedSamples")
}

impl Drop for Scene {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!(
            "=== WebRTC scene {} through {} ===",
            self.call,
            self.relay.name()
        );
        for (what, sdp) in &self.sdps {
            eprintln!("--- {what} ---\n{sdp}");
        }
        for path in ["/error", "/event"] {
            eprintln!("--- page {path} ---\n{:#?}", self.server.posts(path));
        }
        eprintln!(
            "--- page's last /stats ---\n{:?}",
            self.server.last_post("/stats")
        );
        eprintln!("--- page server requests ---\n{:?}", self.server.requests());
        eprintln!("--- plain endpoint ---\n{:?}", self.plain.seen());
        // Chromium's stderr and the relay's log follow, from their guards.
    }
}

/// A: the browser calls a plain SIP phone. Its offer goes through the
/// relay with `ICE=remove RTP/AVP rtcp-mux-demux`; the phone answers
/// plain Opus; the answer goes back with `ICE=force UDP/TLS/RTP/SAVPF
/// rtcp-mux-require`; both carry `DTLS=<dtls>` when given (see
/// [`toward_plain`]). Returns the scene with the browser told the answer,
/// and the Opus payload type.
fn browser_calls_plain_scene(backend: &str, call: &str, dtls: Option<&str>) -> (Scene, u8) {
    let mut s = Scene::open(backend, call, "offerer");
    let offer = s.page_sdp("browser's offer");
    let mut flags = toward_plain(dtls);
    flags.extend(lite_for_rtpengine(&s.relay, "backward"));
    let plain_offer = s.offer("offer toward the plain phone", "browser", &offer, flags);
    assert_plain(&s, &plain_offer);
    let pt = sdp::opus_pt(&plain_offer).expect("the offer toward the phone keeps Opus");
    let plain_answer = sdp::plain_opus(s.plain.addr(), pt);
    s.sdps.push(("plain phone's answer", plain_answer.clone()));
    let answer = s.answer(
        "answer toward the browser",
        "browser",
        "plain",
        &plain_answer,
        toward_browser("require", dtls),
    );
    assert_webrtc(&s, &answer);
    s.plain.reflect_to(media_addr(&plain_offer, 0));
    s.server.put("/remote", &answer);
    (s, pt)
}

/// A with `DTLS=passive`: the relay is the DTLS server, the browser the
/// client.
fn browser_calls_plain(backend: &str) {
    let (s, pt) = browser_calls_plain_scene(backend, "browser-calls-plain", Some("passive"));
    s.expect_audio_both_ways(pt, "client");
}

/// A without a DTLS flag: the browser offered `actpass` and the relay
/// picks its own role; rtpengine answers `a=setup:active`, so the browser
/// is the DTLS server.
fn browser_calls_plain_relay_dtls_client(backend: &str) {
    let (s, pt) = browser_calls_plain_scene(backend, "browser-calls-plain-active", None);
    s.expect_audio_both_ways(pt, "server");
}

/// B: a plain SIP phone calls the browser: the phone's offer goes toward
/// the browser with `ICE=force DTLS=passive UDP/TLS/RTP/SAVPF
/// rtcp-mux-offer`, the browser's answer back with `ICE=remove RTP/AVP
/// rtcp-mux-demux`.
fn plain_calls_browser(backend: &str) {
    let mut s = Scene::open(backend, "plain-calls-browser", "answerer");
    let pt = 111;
    let plain_offer = sdp::plain_opus(s.plain.addr(), pt);
    s.sdps.push(("plain phone's offer", plain_offer.clone()));
    let mut flags = toward_browser("offer", Some("passive"));
    flags.extend(lite_for_rtpengine(&s.relay, "forward"));
    let offer = s.offer("offer toward the browser", "plain", &plain_offer, flags);
    assert_webrtc(&s, &offer);
    s.server.put("/remote", &offer);
    let answer = s.page_sdp("browser's answer");
    let plain_answer = s.answer(
        "answer toward the plain phone",
        "plain",
        "browser",
        &answer,
        toward_plain(None),
    );
    assert_plain(&s, &plain_answer);
    assert_eq!(
        sdp::opus_pt(&plain_answer),
        Some(pt),
        "the answer keeps Opus as {pt}"
    );
    s.plain.reflect_to(media_addr(&plain_answer, 0));
    s.expect_audio_both_ways(pt, "client");
}

/// The relay's SDP toward the browser has what Chromium needs.
fn assert_webrtc(s: &Scene, sdp: &str) {
    let missing = sdp::missing_for_webrtc(sdp);
    assert!(
        missing.is_empty(),
        "{}'s SDP toward the browser lacks {missing:?} (ICE, DTLS-SRTP and rtcp-mux are what \
         a WebRTC leg needs; see tests/webrtc/README.md for rtpengine's):\n{sdp}",
        s.relay.name()
    );
}

/// The relay's SDP toward the plain phone is plain RTP/AVP, nothing of
/// WebRTC left in it.
fn assert_plain(s: &Scene, sdp: &str) {
    assert_eq!(
        sdp::proto(sdp),
        "RTP/AVP",
        "{}: not plain RTP:\n{sdp}",
        s.relay.name()
    );
    let left = sdp::webrtc_leftovers(sdp);
    assert!(
        left.is_empty(),
        "{}: WebRTC lines toward the plain phone: {left:?}\n{sdp}",
        s.relay.name()
    );
}

/// The consent timeout rtpmesh applies (RFC 7675: 30 s), overridable with
/// `RTPMESH_WEBRTC_CONSENT_S` for a node started with a shorter one.
fn consent_timeout() -> Duration {
    let s = std::env::var("RTPMESH_WEBRTC_CONSENT_S").map_or(30, |v| v.parse().expect("seconds"));
    Duration::from_secs(s)
}

/// C: a browser that vanishes (killed: no DTLS close_notify, no goodbye)
/// loses its leg by consent timeout, though the phone keeps talking: the
/// relay's `query` stops knowing the browser's leg, or the call.
fn vanished_browser_ends_its_leg(backend: &str) {
    let (mut s, pt) = browser_calls_plain_scene(backend, "vanished-browser", Some("passive"));
    s.expect_audio_both_ways(pt, "client");
    s.browser.as_mut().expect("browser").kill();
    let limit = consent_timeout() + Duration::from_secs(15);
    let mut seq = 0u16;
    let mut last = Value::from("no query yet");
    let ended = common::eventually(limit, || {
        // The phone keeps sending (a frame per 20 ms poll), so only the
        // browser's side can end the leg; the relay is asked every 25th.
        seq = seq.wrapping_add(1);
        s.plain.send(&plain_frame(pt, seq));
        if seq % 25 != 1 {
            return false;
        }
        last = s.ng.query(&s.call);
        browser_leg_gone(&last)
    });
    assert!(
        ended,
        "{} still holds the vanished browser's leg {limit:?} after it was killed \
         (the consent timeout is {:?}; RTPMESH_WEBRTC_CONSENT_S sets it): {}",
        s.relay.name(),
        consent_timeout(),
        show(&last)
    );
}

/// A bencode value as readable text (byte strings as text where they are
/// UTF-8), for failure messages.
fn show(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(t) => format!("{t:?}"),
            Err(_) => format!("{b:?}"),
        },
        Value::List(l) => format!("[{}]", l.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Dict(d) => format!(
            "{{{}}}",
            d.iter()
                .map(|(k, v)| format!("{}: {}", String::from_utf8_lossy(k), show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An RTP packet of payload type `pt` with a silent Opus frame (TOC byte
/// 0xf8: CELT fullband 20 ms, mono, one frame; no data means silence).
fn plain_frame(pt: u8, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    p.push(0xf8);
    p
}

/// Whether a `query` reply no longer has the browser's leg: the call is
/// gone, or its `browser` tag is.
fn browser_leg_gone(q: &Value) -> bool {
    if result(q) != "ok" {
        return reason(q) == "Unknown call-id";
    }
    q.get("tags")
        .and_then(Value::as_dict)
        .is_none_or(|tags| !tags.contains_key(b"browser".as_slice()))
}

both_backends!(
    browser_calls_plain,
    browser_calls_plain_relay_dtls_client,
    plain_calls_browser
);

mod consent {
    /// Separate from the media tests: it waits out a consent timeout.
    #[test]
    fn vanished_browser_ends_its_leg() {
        super::vanished_browser_ends_its_leg("epoll")
    }
}
