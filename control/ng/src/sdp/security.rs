//! The media-security attributes of an SDP: `a=crypto` (RFC 4568),
//! `a=fingerprint` and `a=setup` (RFC 8122, RFC 5763), ICE's `a=ice-ufrag`,
//! `a=ice-pwd`, `a=ice-options`, `a=ice-lite`, `a=end-of-candidates`
//! (RFC 8839), and `a=mid`; and the lines rtpmesh writes for its own.
//!
//! Malformed `a=crypto` and `a=fingerprint` lines fail the parse (a key
//! that cannot be decoded would otherwise make a leg that never decrypts);
//! well-formed ones rtpmesh cannot use (unknown suite, MKI, session
//! parameters, several keys) are kept and marked, for the node to skip.

use std::fmt::Write as _;

use base64::engine::general_purpose::{STANDARD_NO_PAD, STANDARD_PAD_INDIFFERENT};
use base64::Engine as _;

use super::{Line, SdpError, SessionDescription};

/// One `a=crypto` line.
#[derive(Clone, PartialEq, Eq)]
pub struct Crypto {
    /// The tag the answer names it by.
    pub tag: u32,
    /// Suite name as written (`AES_CM_128_HMAC_SHA1_80`).
    pub suite: String,
    /// Master key and salt (`inline:` decoded).
    pub key: Vec<u8>,
    /// Whether rtpmesh can use it: one key, no MKI, no session parameters.
    /// (A lifetime is ignored, as rtpengine ignores it.)
    pub usable: bool,
}

// Keys stay out of logs.
impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypto")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("usable", &self.usable)
            .finish_non_exhaustive()
    }
}

/// `a=setup` (RFC 4145, RFC 5763).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `active`: the party starts the DTLS handshake.
    Active,
    /// `passive`: the party waits for it.
    Passive,
    /// `actpass`: either; the answerer decides.
    ActPass,
    /// `holdconn`.
    HoldConn,
}

impl Setup {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
            Self::ActPass => "actpass",
            Self::HoldConn => "holdconn",
        }
    }

    fn from_value(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "active" => Self::Active,
            "passive" => Self::Passive,
            "actpass" => Self::ActPass,
            "holdconn" => Self::HoldConn,
            _ => return None,
        })
    }
}

/// An `a=fingerprint` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpFingerprint {
    /// Hash function, lower case (`sha-256`).
    pub hash: String,
    /// The digest.
    pub value: Vec<u8>,
}

impl SdpFingerprint {
    /// The attribute value: `sha-256 AB:CD:...` (upper-case hex, as rtpengine).
    pub fn to_value(&self) -> String {
        let mut s = self.hash.clone();
        for (i, b) in self.value.iter().enumerate() {
            let _ = write!(s, "{}{b:02X}", if i == 0 { ' ' } else { ':' });
        }
        s
    }
}

/// What one m= section says about its media security (session-level
/// fingerprint, setup and ICE credentials apply to every section that has
/// none of its own).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaSecurity {
    /// `a=crypto` lines, in order.
    pub crypto: Vec<Crypto>,
    /// `a=fingerprint` (the first).
    pub fingerprint: Option<SdpFingerprint>,
    /// `a=setup`.
    pub setup: Option<Setup>,
    /// `a=ice-ufrag`.
    pub ice_ufrag: Option<String>,
    /// `a=ice-pwd`.
    pub ice_pwd: Option<String>,
    /// `a=ice-lite`.
    pub ice_lite: bool,
    /// `a=ice-options` lists `trickle`.
    pub trickle: bool,
    /// `a=end-of-candidates` present in the section.
    pub end_of_candidates: bool,
    /// `a=mid`.
    pub mid: Option<String>,
}

/// Bytes of key and salt of the suites RFC 4568, RFC 6188, RFC 7714 and
/// rtpengine name; a suite not listed is kept unchecked (and unusable).
fn key_len(suite: &str) -> Option<usize> {
    Some(match suite {
        "AES_CM_128_HMAC_SHA1_80" | "AES_CM_128_HMAC_SHA1_32" => 30,
        "F8_128_HMAC_SHA1_80" | "F8_128_HMAC_SHA1_32" => 30,
        "NULL_HMAC_SHA1_80" | "NULL_HMAC_SHA1_32" => 30,
        "AES_192_CM_HMAC_SHA1_80" | "AES_192_CM_HMAC_SHA1_32" => 38,
        "AES_256_CM_HMAC_SHA1_80" | "AES_256_CM_HMAC_SHA1_32" => 46,
        "AEAD_AES_128_GCM" => 28,
        "AEAD_AES_256_GCM" => 44,
        _ => return None,
    })
}

/// Parses an `a=crypto` value; `line` is for the error.
pub(crate) fn parse_crypto(value: &str, line: usize) -> Result<Crypto, SdpError> {
    let bad = |why| SdpError::BadCrypto { line, why };
    let mut it = value.split_ascii_whitespace();
    let (Some(tag), Some(suite), Some(params)) = (it.next(), it.next(), it.next()) else {
        return Err(bad("needs a tag, a suite and key parameters"));
    };
    let session_params = it.next().is_some();
    let tag: u32 = match tag.parse() {
        Ok(t) if tag.len() <= 9 => t,
        _ => return Err(bad("the tag is not a number of at most 9 digits")),
    };
    let several_keys = params.contains(';');
    let first = params.split(';').next().unwrap_or("");
    let Some(inline) = first.strip_prefix("inline:") else {
        return Err(bad("the key method is not inline:"));
    };
    let mut parts = inline.split('|');
    let b64 = parts.next().unwrap_or("");
    // After the key: an optional lifetime, then an optional MKI:length.
    let mki = parts.any(|p| p.contains(':'));
    let key = STANDARD_PAD_INDIFFERENT
        .decode(b64)
        .map_err(|_| bad("the key is not base64"))?;
    match key_len(suite) {
        Some(n) if n != key.len() => {
            return Err(bad("the key and salt have the wrong length for the suite"))
        }
        _ => {}
    }
    Ok(Crypto {
        tag,
        suite: suite.to_owned(),
        usable: key_len(suite).is_some() && !mki && !several_keys && !session_params,
        key,
    })
}

/// Parses an `a=fingerprint` value (`sha-256 AB:CD:...`).
pub(crate) fn parse_fingerprint(value: &str, line: usize) -> Result<SdpFingerprint, SdpError> {
    let bad = SdpError::BadFingerprint { line };
    let (hash, hex) = value.trim().split_once(' ').ok_or(bad.clone())?;
    let bytes: Option<Vec<u8>> = hex
        .trim()
        .split(':')
        .map(|b| {
            (b.len() == 2)
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect();
    match bytes {
        Some(value) if !value.is_empty() && value.len() <= 64 => Ok(SdpFingerprint {
            hash: hash.to_ascii_lowercase(),
            value,
        }),
        _ => Err(bad),
    }
}

/// Fails the parse on a malformed `a=crypto` or `a=fingerprint`.
pub(crate) fn check(name: &str, value: Option<&str>, line: usize) -> Result<(), SdpError> {
    match name {
        "crypto" => parse_crypto(value.unwrap_or(""), line).map(drop),
        "fingerprint" => parse_fingerprint(value.unwrap_or(""), line).map(drop),
        _ => Ok(()),
    }
}

/// Reads security attributes from `lines` into `s` (values already
/// checked by [`parse`](super::parse), so errors cannot happen here).
fn read(s: &mut MediaSecurity, lines: &[Line]) {
    for line in lines {
        let Some((name, value)) = line.attr() else {
            continue;
        };
        let value = value.unwrap_or("");
        match name {
            "crypto" => s.crypto.extend(parse_crypto(value, 0).ok()),
            "fingerprint" if s.fingerprint.is_none() => {
                s.fingerprint = parse_fingerprint(value, 0).ok()
            }
            "setup" => s.setup = Setup::from_value(value),
            "ice-ufrag" => s.ice_ufrag = Some(value.trim().to_owned()),
            "ice-pwd" => s.ice_pwd = Some(value.trim().to_owned()),
            "ice-lite" => s.ice_lite = true,
            "ice-options" => s.trickle |= value.split_ascii_whitespace().any(|o| o == "trickle"),
            "end-of-candidates" => s.end_of_candidates = true,
            "mid" => s.mid = Some(value.trim().to_owned()),
            _ => {}
        }
    }
}

impl SessionDescription {
    /// The security attributes of m= section `i` (empty past the last one):
    /// its own, else the session level's.
    pub fn security(&self, i: usize) -> MediaSecurity {
        let mut session = MediaSecurity::default();
        read(&mut session, &self.session);
        let mut s = MediaSecurity::default();
        if let Some(lines) = self.sections.get(i) {
            read(&mut s, lines);
        }
        s.fingerprint = s.fingerprint.or(session.fingerprint);
        s.setup = s.setup.or(session.setup);
        s.ice_ufrag = s.ice_ufrag.or(session.ice_ufrag);
        s.ice_pwd = s.ice_pwd.or(session.ice_pwd);
        s.ice_lite |= session.ice_lite;
        s.trickle |= session.trickle;
        s
    }
}

/// The `a=crypto` value rtpmesh offers or answers with (no padding, as rtpengine).
pub fn crypto_value(tag: u32, suite: &str, key: &[u8]) -> String {
    format!(
        "crypto:{tag} {suite} inline:{}",
        STANDARD_NO_PAD.encode(key)
    )
}

#[cfg(test)]
mod tests {
    use super::super::{parse, rewrite, MediaRewrite, Rewrite};
    use super::*;

    const SAVP: &str = "v=0\r\no=a 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
        a=fingerprint:sha-256 49:66:12:17\r\na=group:BUNDLE 0\r\n\
        m=audio 49170 RTP/SAVP 0\r\n\
        a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:32\r\n\
        a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^31\r\n\
        a=crypto:3 AEAD_AES_128_GCM inline:644oekJ7lbg0IDCgVlWPZYXZQFg4Qe7jthLG6A\r\n\
        a=crypto:4 FOO_SUITE inline:QUJD\r\n\
        a=setup:actpass\r\na=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n\
        a=ice-options:trickle\r\na=mid:0\r\na=end-of-candidates\r\n";

    #[test]
    fn crypto_fingerprint_setup_and_ice_are_read() {
        let sdp = parse(SAVP).unwrap();
        let s = sdp.security(0);
        let tags: Vec<_> = s.crypto.iter().map(|c| (c.tag, c.usable)).collect();
        // MKI: unusable; a lifetime alone is ignored; unknown suites kept, unusable.
        assert_eq!(tags, [(1, false), (2, true), (3, true), (4, false)]);
        assert_eq!(s.crypto[1].key.len(), 30);
        assert_eq!(s.crypto[2].key.len(), 28, "unpadded base64 is accepted");
        let fp = s.fingerprint.as_ref().unwrap();
        assert_eq!(
            (fp.hash.as_str(), fp.value.as_slice()),
            ("sha-256", &[0x49, 0x66, 0x12, 0x17][..])
        );
        assert_eq!(fp.to_value(), "sha-256 49:66:12:17");
        assert_eq!(s.setup, Some(Setup::ActPass));
        assert_eq!(s.ice_ufrag.as_deref(), Some("F7gI"));
        assert_eq!(s.ice_pwd.as_deref(), Some("x9cml/YzichV2+XlhiMu8g"));
        assert!(s.trickle && s.end_of_candidates);
        assert_eq!(s.mid.as_deref(), Some("0"));
    }

    #[test]
    fn malformed_crypto_and_fingerprint_lines_fail_the_parse_with_their_line() {
        let line =
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj";
        for (bad, why) in [
            (
                "inline:!!!!dmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
                "the key is not base64",
            ),
            (
                "inline:d0RmdmcmVCspeEc3",
                "the key and salt have the wrong length for the suite",
            ),
            (
                "key:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
                "the key method is not inline:",
            ),
        ] {
            let text = SAVP.replace(&line[line.find("inline").unwrap()..], bad);
            assert_eq!(
                parse(&text).unwrap_err(),
                SdpError::BadCrypto { line: 9, why },
                "{bad}"
            );
        }
        let text = SAVP.replace("a=crypto:1 ", "a=crypto:x ");
        assert!(matches!(
            parse(&text),
            Err(SdpError::BadCrypto { line: 9, .. })
        ));
        let text = SAVP.replace("49:66:12:17", "49:6G");
        assert_eq!(
            parse(&text).unwrap_err(),
            SdpError::BadFingerprint { line: 6 }
        );
    }

    #[test]
    fn rewrite_drops_the_party_s_security_and_writes_ours_where_rtpengine_does() {
        let sdp = parse(SAVP).unwrap();
        let mut m = MediaRewrite::new("127.0.0.1".parse().unwrap(), 40000);
        m.strip_ice = true;
        m.rtcp_mux = true;
        m.protocol = Some("UDP/TLS/RTP/SAVPF".into());
        m.security = vec!["setup:passive".into(), "fingerprint:sha-256 AB".into()];
        m.ice = vec!["ice-ufrag:abcdefgh".into(), "ice-pwd:p".into()];
        m.ptime = Some(20);
        let rw = Rewrite {
            origin: None,
            session_connection: true,
            media: vec![m],
        };
        let out = rewrite(&sdp, &rw).unwrap();
        assert_eq!(
            out,
            "v=0\r\no=a 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=ice-lite\r\n\
             m=audio 40000 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n\
             a=rtcp:40001\r\na=rtcp-mux\r\na=setup:passive\r\na=fingerprint:sha-256 AB\r\n\
             a=ptime:20\r\na=ice-ufrag:abcdefgh\r\na=ice-pwd:p\r\n"
        );
    }

    #[test]
    fn generate_mid_only_where_none_is() {
        let sdp = parse("v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\nm=audio 3 RTP/AVP 0\r\na=mid:x\r\n").unwrap();
        let mut a = MediaRewrite::new("127.0.0.1".parse().unwrap(), 40000);
        a.mid = super::super::Mid::IfNone("1".into());
        let mut b = MediaRewrite::new("127.0.0.1".parse().unwrap(), 40002);
        b.mid = super::super::Mid::IfNone("2".into());
        let out = rewrite(
            &sdp,
            &Rewrite {
                origin: None,
                session_connection: false,
                media: vec![a, b],
            },
        )
        .unwrap();
        assert!(
            out.contains("m=audio 40000 RTP/AVP 0\r\na=mid:1\r\n"),
            "{out}"
        );
        assert!(
            out.contains("m=audio 40002 RTP/AVP 0\r\na=mid:x\r\n"),
            "{out}"
        );
    }

    #[test]
    fn crypto_values_are_unpadded_like_rtpengine() {
        let v = crypto_value(2, "AEAD_AES_128_GCM", &[0; 28]);
        assert_eq!(
            v,
            format!("crypto:2 AEAD_AES_128_GCM inline:{}", "A".repeat(38))
        );
    }
}
