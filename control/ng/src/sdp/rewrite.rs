//! Re-emitting a parsed SDP with relay addresses, in rtpengine's layout.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{static_rtpmap, Direction, Family, Line, Media, SdpError, SessionDescription};

/// What to change when rewriting an SDP; see [`rewrite`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rewrite {
    /// `replace-origin`: put this address (and its family) into `o=`.
    pub origin: Option<IpAddr>,
    /// `replace-session-connection`: rewrite the session-level `c=` even when every
    /// `m=` carries its own `c=` (it is always rewritten when some `m=` relies on it).
    pub session_connection: bool,
    /// One entry per `m=` line, same order as [`SessionDescription::media`].
    pub media: Vec<MediaRewrite>,
}

/// Per-`m=` rewrite instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRewrite {
    /// Relay address advertised for this stream (the family may differ per `m=`).
    pub address: IpAddr,
    /// Relay RTP port.
    pub port: u16,
    /// `Some` emits `a=rtcp:PORT` (replacing any existing one); `None` emits none.
    pub rtcp_port: Option<u16>,
    /// Emit `a=rtcp-mux` (otherwise any existing one is removed).
    pub rtcp_mux: bool,
    /// Remove ICE attributes (candidates, ufrag/pwd, options, lite, end-of-candidates).
    pub strip_ice: bool,
    /// Replace the transport protocol on the `m=` line (e.g. `RTP/AVP`).
    pub protocol: Option<String>,
    /// Force the direction attribute; `None` keeps the offered one (hold-adjusted).
    pub direction: Option<Direction>,
    /// Force `a=ptime`; rtpengine copies the offer's ptime into an answer lacking one.
    pub ptime: Option<u32>,
    /// What becomes of the section's `a=mid`.
    pub mid: Mid,
    /// rtpmesh's own `a=crypto`, `a=setup`, `a=fingerprint` (values without
    /// `a=`), written after `a=rtcp-mux` as rtpengine does; the section's
    /// own are always dropped.
    pub security: Vec<String>,
    /// rtpmesh's own ICE attributes (`ice-ufrag`, `ice-pwd`, candidates ...),
    /// written last. When any section has an `ice-ufrag`, the session level
    /// gets `a=ice-lite` (rtpmesh is an ICE-lite agent).
    pub ice: Vec<String>,
}

impl MediaRewrite {
    /// A rewrite to `address:port` with RTCP on `port + 1`, no mux, everything else kept.
    pub fn new(address: IpAddr, port: u16) -> Self {
        Self {
            address,
            port,
            rtcp_port: port.checked_add(1),
            rtcp_mux: false,
            strip_ice: false,
            protocol: None,
            direction: None,
            ptime: None,
            mid: Mid::Keep,
            security: Vec::new(),
            ice: Vec::new(),
        }
    }
}

/// What becomes of a section's `a=mid`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mid {
    /// The section's own, if any.
    #[default]
    Keep,
    /// The section's own, else this one (`generate-mid`).
    IfNone(String),
    /// This one, or none: rtpengine answers with the offer's mid.
    Replace(Option<String>),
}

const ICE_ATTRS: &[&str] = &[
    "candidate",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "end-of-candidates",
    "remote-candidates",
];

fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::Ip4 => Ipv4Addr::UNSPECIFIED.into(),
        Family::Ip6 => Ipv6Addr::UNSPECIFIED.into(),
    }
}

fn c_value(addr: IpAddr) -> String {
    format!("IN {} {addr}", Family::of(&addr).as_str())
}

fn push(out: &mut String, kind: u8, value: &str) {
    out.push(char::from(kind));
    out.push('=');
    out.push_str(value);
    out.push_str("\r\n");
}

/// Rewrite `sdp` so its media goes through the relay; the output always uses CRLF.
///
/// Lines rtpmesh does not manage keep their text and relative order. Per active
/// `m=` section the managed attributes are appended after them in rtpengine's
/// order: `a=mid`, per payload type `a=rtpmap`/`a=fmtp`/`a=rtcp-fb`, direction,
/// `a=rtcp`, `a=rtcp-mux`, `a=ptime`. Rejected (port 0) sections keep port 0 and
/// lose their managed attributes.
pub fn rewrite(sdp: &SessionDescription, rw: &Rewrite) -> Result<String, SdpError> {
    if rw.media.len() != sdp.media.len() {
        return Err(SdpError::MediaCountMismatch {
            expected: sdp.media.len(),
            got: rw.media.len(),
        });
    }
    let pairs = || sdp.media.iter().zip(&rw.media);
    // rtpengine puts the first stream's address into the session-level c=.
    let session_addr = pairs()
        .find(|(m, _)| m.port != 0)
        .or_else(|| pairs().next())
        .map(|(_, r)| r.address);
    let relies_on_session = pairs().any(|(m, _)| m.port != 0 && !m.has_own_connection);
    let session_c = sdp.connection.map(|c| match session_addr {
        _ if c.address.is_unspecified() => c.address,
        Some(a) if rw.session_connection || relies_on_session => a,
        _ => c.address,
    });
    let strip_session_ice = !rw.media.is_empty() && rw.media.iter().all(|r| r.strip_ice);
    let ice_lite = rw
        .media
        .iter()
        .any(|r| r.ice.iter().any(|l| l.starts_with("ice-ufrag:")));

    let mut out = String::with_capacity(sdp.session.len() * 32 + sdp.sections.len() * 256);
    for line in &sdp.session {
        match (line.kind, line.attr()) {
            (b'o', _) => match (rw.origin, &sdp.origin) {
                (Some(addr), Some(o)) => {
                    let v = format!(
                        "{} {} {} IN {} {addr}",
                        o.username,
                        o.session_id,
                        o.session_version,
                        Family::of(&addr).as_str()
                    );
                    push(&mut out, b'o', &v);
                }
                _ => push(&mut out, b'o', &line.value),
            },
            (b'c', _) => match session_c {
                Some(a) => push(&mut out, b'c', &c_value(a)),
                None => push(&mut out, b'c', &line.value),
            },
            // rtpengine folds a session-level direction into every m= section.
            (_, Some((name, _)))
                if Direction::from_attr(name).is_some() && !sdp.media.is_empty() => {}
            (_, Some((name, _))) if strip_session_ice && ICE_ATTRS.contains(&name) => {}
            (_, Some((name, value))) if is_session_security(name, value) => {}
            _ => push(&mut out, line.kind, &line.value),
        }
    }
    if ice_lite {
        push(&mut out, b'a', "ice-lite");
    }
    for ((media, lines), r) in sdp.media.iter().zip(&sdp.sections).zip(&rw.media) {
        if media.port == 0 {
            rejected_section(&mut out, media, lines, r);
        } else {
            active_section(&mut out, media, lines, r, session_c);
        }
    }
    Ok(out)
}

/// The address to advertise in this stream's `c=`: old-style hold (0.0.0.0) stays hold.
fn wanted_address(media: &Media, r: &MediaRewrite) -> IpAddr {
    match media.connection {
        Some(_) if media.on_hold() => unspecified(Family::of(&r.address)),
        _ => r.address,
    }
}

/// Attributes rtpmesh regenerates, so the originals are dropped.
fn is_managed(name: &str) -> bool {
    matches!(
        name,
        "rtpmap" | "fmtp" | "rtcp" | "rtcp-mux" | "ptime" | "mid"
    ) || Direction::from_attr(name).is_some()
        || is_security(name)
}

/// A party's keys and DTLS parameters describe its hop only: never passed on.
fn is_security(name: &str) -> bool {
    matches!(name, "crypto" | "fingerprint" | "setup")
}

/// Session-level lines rtpengine drops: DTLS parameters and the BUNDLE
/// group (each stream keeps its own ports through the relay).
fn is_session_security(name: &str, value: Option<&str>) -> bool {
    is_security(name) || (name == "group" && value.is_some_and(|v| v.starts_with("BUNDLE")))
}

/// The payload type an `a=rtpmap`/`a=fmtp`/`a=rtcp-fb` line belongs to, with its name.
/// The `a=rtcp-fb:*` wildcard belongs to none, so it stays where it was.
pub(super) fn pt_attr(line: &Line) -> Option<(&str, &str)> {
    let (name, value) = line.attr()?;
    let pt = value?.split(' ').next()?;
    match name {
        "rtpmap" | "fmtp" => Some((name, pt)),
        "rtcp-fb" if pt != "*" => Some((name, pt)),
        _ => None,
    }
}

fn rejected_section(out: &mut String, media: &Media, lines: &[Line], r: &MediaRewrite) {
    let mut mid = None;
    for line in lines {
        match line.attr() {
            Some(("mid", _)) => mid = Some(line),
            Some((name, _)) if is_managed(name) || pt_attr(line).is_some() => {}
            Some((name, _)) if r.strip_ice && ICE_ATTRS.contains(&name) => {}
            _ if line.kind == b'c' => push(out, b'c', &c_value(wanted_address(media, r))),
            _ => push(out, line.kind, &line.value),
        }
    }
    if let Some(mid) = mid {
        push(out, b'a', &mid.value);
    }
}

fn active_section(
    out: &mut String,
    media: &Media,
    lines: &[Line],
    r: &MediaRewrite,
    session_c: Option<IpAddr>,
) {
    let want = wanted_address(media, r);
    let mut m_line = format!(
        "{} {} {}",
        media.kind,
        r.port,
        r.protocol.as_deref().unwrap_or(&media.protocol)
    );
    for f in &media.formats {
        let _ = write!(m_line, " {f}");
    }
    push(out, b'm', &m_line);
    // A c= is only added when the session-level one would point elsewhere.
    let mut need_c = !media.has_own_connection && session_c != Some(want);

    let mut mid = None;
    let mut ptime = None;
    for line in &lines[1..] {
        // RFC 8866 order is m, i, c, b, ...: insert our c= after any i= lines.
        if need_c && line.kind != b'i' {
            push(out, b'c', &c_value(want));
            need_c = false;
        }
        match line.attr() {
            Some(("mid", _)) => mid = Some(line),
            Some(("ptime", _)) => ptime = Some(line),
            Some((name, _)) if is_managed(name) || pt_attr(line).is_some() => {}
            Some((name, _)) if r.strip_ice && ICE_ATTRS.contains(&name) => {}
            _ if line.kind == b'c' => push(out, b'c', &c_value(want)),
            _ => push(out, line.kind, &line.value),
        }
    }
    if need_c {
        push(out, b'c', &c_value(want));
    }
    match (&r.mid, mid) {
        (Mid::Replace(Some(m)), _) | (Mid::IfNone(m), None) => push(out, b'a', &format!("mid:{m}")),
        (Mid::Replace(None), _) => {}
        (_, Some(mid)) => push(out, b'a', &mid.value),
        (Mid::Keep, None) => {}
    }
    push_format_attrs(out, media, lines);
    push(out, b'a', written_direction(media, r).as_str());
    if let Some(port) = r.rtcp_port {
        push(out, b'a', &format!("rtcp:{port}"));
    }
    if r.rtcp_mux {
        push(out, b'a', "rtcp-mux");
    }
    for v in &r.security {
        push(out, b'a', v);
    }
    match (r.ptime, ptime) {
        (Some(p), _) => push(out, b'a', &format!("ptime:{p}")),
        (None, Some(l)) => push(out, b'a', &l.value),
        (None, None) => {}
    }
    for v in &r.ice {
        push(out, b'a', v);
    }
}

/// Each format's `rtpmap` (the well-known one when the section has none),
/// `fmtp` and `rtcp-fb` lines, in the order of the `m=` line's formats.
fn push_format_attrs(out: &mut String, media: &Media, lines: &[Line]) {
    // The lines indexed by payload type in one pass, so that a section with
    // many payload types and many attribute lines costs their sum, not their
    // product (a 54 KB SDP once took seconds of the ng thread).
    let mut by_pt: HashMap<&str, [Vec<&Line>; 3]> = HashMap::new();
    for l in lines {
        if let Some((kind, pt)) = pt_attr(l) {
            let i = match kind {
                "rtpmap" => 0,
                "fmtp" => 1,
                _ => 2,
            };
            by_pt.entry(pt).or_default()[i].push(l);
        }
    }
    let none = Default::default();
    // A payload type listed twice on the m= line gets its attributes once:
    // otherwise a hostile SDP's output grows with formats x lines.
    let mut written = HashSet::new();
    for f in media.formats.iter().filter(|f| written.insert(f.as_str())) {
        let [rtpmap, fmtp, rtcp_fb] = by_pt.get(f.as_str()).unwrap_or(&none);
        match rtpmap.first() {
            Some(l) => push(out, b'a', &l.value),
            None => {
                if let Some((map, _)) = f.parse().ok().and_then(static_rtpmap) {
                    push(out, b'a', &format!("rtpmap:{f} {map}"));
                }
            }
        }
        for l in fmtp.iter().chain(rtcp_fb) {
            push(out, b'a', &l.value);
        }
    }
}

/// The direction to write: the rewrite's own, else the section's (or
/// session's), with an old-style hold made explicit.
fn written_direction(media: &Media, r: &MediaRewrite) -> Direction {
    r.direction.unwrap_or_else(|| {
        let d = media.direction.unwrap_or(Direction::SendRecv);
        // Old-style hold: the peer will not receive, so it is at most sendonly.
        match (d, media.connection.map(|_| media.on_hold())) {
            (Direction::SendRecv, Some(true)) => Direction::SendOnly,
            (Direction::RecvOnly, Some(true)) => Direction::Inactive,
            (d, _) => d,
        }
    })
}
