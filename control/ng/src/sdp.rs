//! SDP (RFC 8866) parsing and rewriting so that media flows through the relay.
//!
//! Sans-IO: [`parse`] turns a body into a [`SessionDescription`] that keeps every
//! original line, and [`rewrite`] re-emits it with relay addresses and ports. The
//! output layout mirrors rtpengine 10.5 byte for byte (see `control/ng/SDP-NOTES.md`),
//! because Kamailio setups and their tests are written against rtpengine's output.

use std::net::IpAddr;

pub mod codecs;
mod rewrite;
mod security;
#[cfg(test)]
mod tests;

pub use rewrite::{rewrite, MediaRewrite, Mid, Rewrite};
pub use security::{crypto_value, Crypto, MediaSecurity, SdpFingerprint, Setup};

/// Why an SDP body could not be parsed or rewritten. Line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is empty or only whitespace.
    #[error("empty SDP body")]
    Empty,
    /// The body does not look like SDP at all (first line is not `x=...`).
    #[error("not an SDP body (line {line})")]
    NotSdp {
        /// Offending line.
        line: usize,
    },
    /// The first line is a valid SDP line but not `v=`.
    #[error("SDP does not start with v= (line {line})")]
    MissingVersion {
        /// Offending line.
        line: usize,
    },
    /// A line is not of the form `x=value`.
    #[error("malformed SDP line {line}")]
    MalformedLine {
        /// Offending line.
        line: usize,
    },
    /// An `o=` line does not have its six fields.
    #[error("bad o= line {line}")]
    BadOrigin {
        /// Offending line.
        line: usize,
    },
    /// An `m=` line does not have media, port, protocol and at least one format.
    #[error("bad m= line {line}")]
    BadMedia {
        /// Offending line.
        line: usize,
    },
    /// A port (in `m=` or `a=rtcp`) is not a number in 0..=65535.
    #[error("bad port on line {line}")]
    BadPort {
        /// Offending line.
        line: usize,
    },
    /// A `c=` line with an unknown nettype/addrtype or an unparsable address.
    #[error("bad c= line {line}")]
    BadConnection {
        /// Offending line.
        line: usize,
    },
    /// An `a=crypto` line rtpmesh cannot read: a key that would never
    /// decrypt anything is refused rather than relayed.
    #[error("bad a=crypto line {line}: {why}")]
    BadCrypto {
        /// Offending line.
        line: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An `a=fingerprint` line that is not `HASH XX:XX:...`.
    #[error("bad a=fingerprint line {line}")]
    BadFingerprint {
        /// Offending line.
        line: usize,
    },
    /// [`Rewrite::media`] does not have one entry per `m=` line.
    #[error("rewrite has {got} media entries, SDP has {expected}")]
    MediaCountMismatch {
        /// Number of `m=` lines in the SDP.
        expected: usize,
        /// Number of entries in the rewrite.
        got: usize,
    },
}

/// Address family of a `c=` or `o=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `IP4`
    Ip4,
    /// `IP6`
    Ip6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::Ip4,
            IpAddr::V6(_) => Self::Ip6,
        }
    }

    /// The SDP addrtype token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip4 => "IP4",
            Self::Ip6 => "IP6",
        }
    }
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv`
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    /// The attribute name, without `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    fn from_attr(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Self::SendRecv,
            "sendonly" => Self::SendOnly,
            "recvonly" => Self::RecvOnly,
            "inactive" => Self::Inactive,
            _ => return None,
        })
    }
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username (`-` when unset).
    pub username: String,
    /// Session id, kept as text: it may exceed 64 bits.
    pub session_id: String,
    /// Session version, kept as text for the same reason.
    pub session_version: String,
    /// Address family, `None` for an addrtype other than IP4/IP6.
    pub family: Option<Family>,
    /// Unicast address, as written (may be a host name).
    pub address: String,
}

/// A parsed `c=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// Address family.
    pub family: Family,
    /// Address; `0.0.0.0` means old-style hold (RFC 2543).
    pub address: IpAddr,
}

/// A parsed `a=rtcp:` attribute (RFC 3605).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpAttr {
    /// RTCP port.
    pub port: u16,
    /// Optional explicit address.
    pub address: Option<IpAddr>,
}

/// A parsed `a=rtpmap:` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name, as written.
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, when given.
    pub channels: Option<u8>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Media type: `audio`, `video`, ...
    pub kind: String,
    /// Port; 0 means a rejected/disabled stream.
    pub port: u16,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub protocol: String,
    /// Format list (payload types for RTP).
    pub formats: Vec<String>,
    /// Effective connection: media-level `c=`, else session-level.
    pub connection: Option<Connection>,
    /// `a=rtcp:` if present.
    pub rtcp: Option<RtcpAttr>,
    /// `a=rtcp-mux` present.
    pub rtcp_mux: bool,
    /// Direction attribute: media-level, else session-level.
    pub direction: Option<Direction>,
    /// `a=ptime:` in milliseconds, if present.
    pub ptime: Option<u32>,
    /// `a=rtpmap:` attributes in order.
    pub rtpmaps: Vec<RtpMap>,
    /// ICE attributes present (media- or session-level ufrag, or candidates).
    pub has_ice: bool,
    /// `a=ice-options:trickle` (media or session level): a `0.0.0.0`
    /// address is then a placeholder (RFC 8838), not a hold, as rtpengine
    /// takes it.
    pub trickle_ice: bool,
    /// Whether this section carries its own `c=`.
    has_own_connection: bool,
}

impl Media {
    /// Old-style hold: `c=0.0.0.0` (unless a trickle-ICE placeholder).
    pub fn on_hold(&self) -> bool {
        !self.trickle_ice && self.connection.is_some_and(|c| c.address.is_unspecified())
    }

    /// Clock rate of a payload type, from `a=rtpmap` or the RFC 3551 static table.
    pub fn clock_rate(&self, pt: u8) -> Option<u32> {
        self.rtpmaps
            .iter()
            .find(|m| m.pt == pt)
            .map(|m| m.clock_rate)
            .or_else(|| static_rtpmap(pt).map(|(_, clock)| clock))
    }
}

/// RFC 3551 static payload types: (rtpmap value, clock rate).
pub(crate) fn static_rtpmap(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU/8000", 8000),
        3 => ("GSM/8000", 8000),
        4 => ("G723/8000", 8000),
        5 => ("DVI4/8000", 8000),
        6 => ("DVI4/16000", 16000),
        7 => ("LPC/8000", 8000),
        8 => ("PCMA/8000", 8000),
        // G.722's RTP clock is 8000 despite 16 kHz sampling (RFC 3551 4.5.2).
        9 => ("G722/8000", 8000),
        10 => ("L16/44100/2", 44100),
        11 => ("L16/44100", 44100),
        12 => ("QCELP/8000", 8000),
        13 => ("CN/8000", 8000),
        14 => ("MPA/90000", 90000),
        15 => ("G728/8000", 8000),
        16 => ("DVI4/11025", 11025),
        17 => ("DVI4/22050", 22050),
        18 => ("G729/8000", 8000),
        25 => ("CelB/90000", 90000),
        26 => ("JPEG/90000", 90000),
        28 => ("nv/90000", 90000),
        31 => ("H261/90000", 90000),
        32 => ("MPV/90000", 90000),
        33 => ("MP2T/90000", 90000),
        34 => ("H263/90000", 90000),
        _ => return None,
    })
}

/// One original line: its type letter, value and 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) kind: u8,
    pub(crate) value: String,
}

impl Line {
    /// For `a=` lines: (name, value) split at the first `:`.
    pub(crate) fn attr(&self) -> Option<(&str, Option<&str>)> {
        if self.kind != b'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (self.value.as_str(), None),
        })
    }
}

/// A parsed SDP body that keeps its original lines for faithful re-emission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    session: Vec<Line>,
    sections: Vec<Vec<Line>>,
    origin: Option<Origin>,
    connection: Option<Connection>,
    media: Vec<Media>,
}

impl SessionDescription {
    /// The `o=` line, if present.
    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// The session-level `c=` line, if present.
    pub fn connection(&self) -> Option<&Connection> {
        self.connection.as_ref()
    }

    /// One entry per `m=` line, in order.
    pub fn media(&self) -> &[Media] {
        &self.media
    }
}

/// Parse an SDP body; CRLF and bare LF line endings are both accepted.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.trim().is_empty() {
        return Err(SdpError::Empty);
    }
    let mut session = Vec::new();
    let mut sections: Vec<Vec<Line>> = Vec::new();
    let mut media: Vec<Media> = Vec::new();
    let mut origin = None;
    let mut connection = None;
    let mut session_direction = None;
    let mut session_ice = false;
    let mut session_trickle = false;
    let mut first = true;

    for (idx, raw) in text.split('\n').enumerate() {
        let n = idx + 1;
        let Some(line) = split_line(raw, n, first)? else {
            continue;
        };
        first = false;
        match line.kind {
            b'm' => {
                media.push(parse_m(&line.value, n)?);
                sections.push(vec![line]);
                continue;
            }
            b'c' => {
                let c = parse_c(&line.value, n)?;
                match media.last_mut() {
                    Some(m) => {
                        m.connection = Some(c);
                        m.has_own_connection = true;
                    }
                    None => connection = Some(c),
                }
            }
            b'o' if media.is_empty() => origin = Some(parse_o(&line.value, n)?),
            b'a' => {
                let (name, value) = line.attr().unwrap_or_default();
                match media.last_mut() {
                    Some(m) => parse_media_attr(m, name, value, n)?,
                    None => {
                        security::check(name, value, n)?;
                        if let Some(d) = Direction::from_attr(name) {
                            session_direction = Some(d);
                        }
                        session_ice |= name == "ice-ufrag";
                        session_trickle |= name == "ice-options"
                            && value.is_some_and(|v| {
                                v.split_ascii_whitespace().any(|o| o == "trickle")
                            });
                    }
                }
            }
            _ => {}
        }
        match sections.last_mut() {
            Some(s) => s.push(line),
            None => session.push(line),
        }
    }

    inherit_session_level(&mut media, connection, session_direction, session_ice);
    for m in &mut media {
        m.trickle_ice |= session_trickle;
    }
    Ok(SessionDescription {
        session,
        sections,
        origin,
        connection,
        media,
    })
}

/// Line `n` (its `\r` stripped) as a [`Line`], or `None` when blank.
///
/// The `first` non-blank line must be `v=`; every line must be `<letter>=`.
fn split_line(raw: &str, n: usize, first: bool) -> Result<Option<Line>, SdpError> {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    // Tolerate blank lines (trailing newlines, sloppy generators) rather than reject.
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let bytes = raw.as_bytes();
    let well_formed = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'=';
    if first {
        if !well_formed {
            return Err(SdpError::NotSdp { line: n });
        }
        if bytes[0] != b'v' {
            return Err(SdpError::MissingVersion { line: n });
        }
    } else if !well_formed {
        return Err(SdpError::MalformedLine { line: n });
    }
    Ok(Some(Line {
        kind: bytes[0],
        value: raw[2..].to_string(),
    }))
}

/// Gives each media section the session-level `c=`, direction and ICE it
/// does not set itself.
fn inherit_session_level(
    media: &mut [Media],
    connection: Option<Connection>,
    direction: Option<Direction>,
    ice: bool,
) {
    for m in media {
        if !m.has_own_connection {
            m.connection = connection;
        }
        m.direction = m.direction.or(direction);
        m.has_ice |= ice;
    }
}

fn parse_port(s: &str, line: usize) -> Result<u16, SdpError> {
    s.parse().map_err(|_| SdpError::BadPort { line })
}

fn parse_m(value: &str, line: usize) -> Result<Media, SdpError> {
    let mut it = value.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(protocol)) = (it.next(), it.next(), it.next()) else {
        return Err(SdpError::BadMedia { line });
    };
    let formats: Vec<String> = it.map(str::to_string).collect();
    if formats.is_empty() {
        return Err(SdpError::BadMedia { line });
    }
    // `port/count` (RFC 8866 5.14): only the base port matters to us.
    let port = parse_port(port.split('/').next().unwrap_or(port), line)?;
    Ok(Media {
        kind: kind.to_string(),
        port,
        protocol: protocol.to_string(),
        formats,
        connection: None,
        rtcp: None,
        rtcp_mux: false,
        direction: None,
        ptime: None,
        rtpmaps: Vec::new(),
        has_ice: false,
        trickle_ice: false,
        has_own_connection: false,
    })
}

fn parse_addr(family: &str, addr: &str) -> Option<(Family, IpAddr)> {
    // Multicast `addr/ttl[/n]`: the address part is all we relay to.
    let addr: IpAddr = addr.split('/').next()?.parse().ok()?;
    let family = match family {
        "IP4" => Family::Ip4,
        "IP6" => Family::Ip6,
        _ => return None,
    };
    (Family::of(&addr) == family).then_some((family, addr))
}

fn parse_c(value: &str, line: usize) -> Result<Connection, SdpError> {
    let t: Vec<&str> = value.split_ascii_whitespace().collect();
    match t.as_slice() {
        ["IN", family, addr] => parse_addr(family, addr)
            .map(|(family, address)| Connection { family, address })
            .ok_or(SdpError::BadConnection { line }),
        _ => Err(SdpError::BadConnection { line }),
    }
}

fn parse_o(value: &str, line: usize) -> Result<Origin, SdpError> {
    let t: Vec<&str> = value.split_ascii_whitespace().collect();
    let [username, session_id, session_version, _net, family, address] = t.as_slice() else {
        return Err(SdpError::BadOrigin { line });
    };
    Ok(Origin {
        username: username.to_string(),
        session_id: session_id.to_string(),
        session_version: session_version.to_string(),
        family: match *family {
            "IP4" => Some(Family::Ip4),
            "IP6" => Some(Family::Ip6),
            _ => None,
        },
        address: address.to_string(),
    })
}

fn parse_media_attr(
    m: &mut Media,
    name: &str,
    value: Option<&str>,
    line: usize,
) -> Result<(), SdpError> {
    if let Some(d) = Direction::from_attr(name) {
        m.direction = Some(d);
        return Ok(());
    }
    security::check(name, value, line)?;
    let value = value.unwrap_or("");
    match name {
        "rtcp-mux" => m.rtcp_mux = true,
        "rtcp" => {
            let mut it = value.split_ascii_whitespace();
            let port = parse_port(it.next().unwrap_or(""), line)?;
            let address = match (it.next(), it.next(), it.next()) {
                (Some("IN"), Some(f), Some(a)) => parse_addr(f, a).map(|(_, a)| a),
                _ => None,
            };
            m.rtcp = Some(RtcpAttr { port, address });
        }
        "ptime" => m.ptime = value.trim().parse().ok(),
        "rtpmap" => {
            // Unparsable rtpmaps are kept verbatim but not interpreted.
            if let Some(r) = parse_rtpmap(value) {
                m.rtpmaps.push(r);
            }
        }
        "ice-ufrag" | "candidate" => m.has_ice = true,
        "ice-options" => m.trickle_ice |= value.split_ascii_whitespace().any(|o| o == "trickle"),
        _ => {}
    }
    Ok(())
}

fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.split_once(' ')?;
    let mut parts = rest.trim().split('/');
    Some(RtpMap {
        pt: pt.parse().ok()?,
        encoding: parts.next()?.to_string(),
        clock_rate: parts.next()?.parse().ok()?,
        channels: parts.next().and_then(|c| c.parse().ok()),
    })
}
