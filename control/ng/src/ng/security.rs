//! The ng keys and flags that choose a leg's media security: `transport-protocol`,
//! `DTLS`, `SDES`, `generate-mid`, as rtpengine 10.5 takes them (see
//! `control/ng/SDP-NOTES.md`, "Media security").

use super::NgError;

/// The transport protocols a `transport-protocol` key (or a bare protocol
/// flag) may name: those rtpengine 10.5 converts between.
pub const TRANSPORT_PROTOCOLS: [&str; 6] = [
    "RTP/AVP",
    "RTP/SAVP",
    "RTP/AVPF",
    "RTP/SAVPF",
    "UDP/TLS/RTP/SAVP",
    "UDP/TLS/RTP/SAVPF",
];

const TRANSPORT_EXPECTED: &str =
    "RTP/AVP, RTP/SAVP, RTP/AVPF, RTP/SAVPF, UDP/TLS/RTP/SAVP or UDP/TLS/RTP/SAVPF";
const DTLS_EXPECTED: &str = "passive, active, off or no";
const SDES_EXPECTED: &str = "off, no or no-<suite> (other SDES options are not supported)";

/// The protocol `s` names, spelled as SDP spells it, if it is one rtpmesh
/// converts to. rtpengine matches these case-insensitively.
pub fn transport_protocol(s: &str) -> Option<&'static str> {
    TRANSPORT_PROTOCOLS
        .into_iter()
        .find(|p| p.eq_ignore_ascii_case(s.trim()))
}

/// [`transport_protocol`], or the error naming `key`.
pub(super) fn parse_transport(key: &str, s: &str) -> Result<String, NgError> {
    transport_protocol(s)
        .map(str::to_owned)
        .ok_or_else(|| invalid(key, TRANSPORT_EXPECTED))
}

/// The `DTLS` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsMode {
    /// `passive`: in an answer, rtpmesh takes the DTLS server role
    /// (`a=setup:passive`).
    Passive,
    /// `active`: in an answer, rtpmesh takes the client role (the default
    /// there). rtpengine ignores it in an offer, which says `actpass`.
    Active,
    /// `off` / `no` / `disable`: no DTLS-SRTP toward this side.
    Off,
}

impl DtlsMode {
    /// Parses a `DTLS` value as rtpengine does (any case).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "passive" => Self::Passive,
            "active" => Self::Active,
            "off" | "no" | "disable" => Self::Off,
            _ => return None,
        })
    }
}

/// `SDES` options (the `SDES` list, or `SDES-…` flags).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesOptions {
    /// `off` / `no` / `disable`: offer no `a=crypto`.
    pub off: bool,
    /// `no-<suite>`: suites not to offer, as spelled.
    pub no: Vec<String>,
}

impl SdesOptions {
    /// Whether `suite` may be offered or accepted.
    pub fn allows(&self, suite: &str) -> bool {
        !self.off && !self.no.iter().any(|n| n.eq_ignore_ascii_case(suite))
    }
}

/// The media-security keys of a request, gathered in one place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityOptions {
    /// `DTLS`.
    pub dtls: Option<DtlsMode>,
    /// `SDES`.
    pub sdes: SdesOptions,
    /// `generate-mid` flag: give each m= section an `a=mid` if it has none.
    pub generate_mid: bool,
}

fn invalid(key: &str, expected: &'static str) -> NgError {
    NgError::InvalidValue {
        key: key.to_owned(),
        expected,
    }
}

/// `DTLS: VALUE` (or the `DTLS=VALUE` flag).
pub(super) fn apply_dtls(s: &mut SecurityOptions, key: &str, value: &str) -> Result<(), NgError> {
    s.dtls = Some(DtlsMode::from_name(value).ok_or_else(|| invalid(key, DTLS_EXPECTED))?);
    Ok(())
}

/// One `SDES` entry (`off`, `no-AES_CM_128_HMAC_SHA1_32`). rtpengine 10.5
/// ignores `only-<suite>` (a later version's option; observed), so does
/// rtpmesh; the other options it acts on (`static`, `pad`, `nonew`,
/// `unencrypted_srtp`, ...) are refused rather than silently ignored.
/// Returns `false` for an entry ignored as rtpengine ignores it.
pub(super) fn apply_sdes(s: &mut SecurityOptions, key: &str, item: &str) -> Result<bool, NgError> {
    let item = item.trim();
    let lower = item.to_ascii_lowercase();
    match lower.as_str() {
        "off" | "no" | "disable" => s.sdes.off = true,
        _ if lower.starts_with("no-") => s.sdes.no.push(item[3..].to_owned()),
        _ if lower.starts_with("only-") => return Ok(false),
        _ => return Err(invalid(key, SDES_EXPECTED)),
    }
    Ok(true)
}

/// A flag of the `flags` list that concerns media security (`flag` as
/// sent, not normalized); returns whether it was one.
pub(super) fn apply_flag(
    s: &mut SecurityOptions,
    transport: &mut Option<String>,
    flag: &str,
) -> Result<bool, NgError> {
    if let Some(p) = transport_protocol(flag) {
        *transport = Some(p.to_owned());
        return Ok(true);
    }
    // Suite names keep their '_'; only the switch's name is normalized.
    let lower = flag.to_ascii_lowercase();
    if super::parse::normalize(&lower) == "generate-mid" {
        s.generate_mid = true;
        return Ok(true);
    }
    match lower.strip_prefix("sdes-") {
        Some(_) => apply_sdes(s, &format!("flags: {flag}"), &flag[5..]),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_protocols_are_matched_in_any_case_and_others_refused() {
        assert_eq!(
            transport_protocol("udp/tls/rtp/savpf"),
            Some("UDP/TLS/RTP/SAVPF")
        );
        assert_eq!(transport_protocol("RTP/SAVP"), Some("RTP/SAVP"));
        assert_eq!(transport_protocol("RTP/FOO"), None);
        let e = parse_transport("transport-protocol", "RTP/FOO").unwrap_err();
        assert!(e.to_string().contains("UDP/TLS/RTP/SAVPF"), "{e}");
    }

    #[test]
    fn sdes_entries_as_rtpengine_takes_them() {
        let mut s = SecurityOptions::default();
        assert!(apply_sdes(&mut s, "SDES", "no-AES_CM_128_HMAC_SHA1_32").unwrap());
        assert!(!s.sdes.allows("AES_CM_128_HMAC_SHA1_32"));
        assert!(s.sdes.allows("AES_CM_128_HMAC_SHA1_80"));
        assert!(!apply_sdes(&mut s, "SDES", "only-AEAD_AES_128_GCM").unwrap());
        assert!(apply_sdes(&mut s, "SDES", "static").is_err());
        assert!(apply_sdes(&mut s, "SDES", "off").unwrap());
        assert!(!s.sdes.allows("AES_CM_128_HMAC_SHA1_80"));
    }

    fn request(
        items: Vec<(&str, crate::bencode::Value)>,
    ) -> Result<super::super::Request, NgError> {
        let mut all = vec![
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "f".into()),
            ("sdp", "v=0".into()),
        ];
        all.extend(items);
        super::super::parse_request(&crate::bencode::dict(all))
    }

    #[test]
    fn keys_and_flags_as_kamailio_and_rtpengine_send_them() {
        use crate::bencode::Value;
        let r = request(vec![
            ("DTLS", "passive".into()),
            (
                "SDES",
                Value::List(vec!["no-AES_CM_128_HMAC_SHA1_32".into()]),
            ),
            ("transport protocol", "udp/tls/rtp/savpf".into()),
        ])
        .unwrap();
        let o = &r.options;
        assert_eq!(o.security.dtls, Some(DtlsMode::Passive));
        assert_eq!(o.security.sdes.no, ["AES_CM_128_HMAC_SHA1_32"]);
        assert_eq!(o.transport_protocol.as_deref(), Some("UDP/TLS/RTP/SAVPF"));
        let flags = Value::List(vec![
            "SDES-off".into(),
            "SDES-no-AEAD_AES_128_GCM".into(),
            "generate-mid".into(),
            "DTLS=off".into(),
            "UDP/TLS/RTP/SAVP".into(),
            "SDES-only-AEAD_AES_128_GCM".into(),
        ]);
        let r = request(vec![("flags", flags)]).unwrap();
        let s = &r.options.security;
        assert!(s.sdes.off && s.generate_mid);
        assert_eq!(
            s.sdes.no,
            ["AEAD_AES_128_GCM"],
            "suite names keep their '_'"
        );
        assert_eq!(s.dtls, Some(DtlsMode::Off));
        assert_eq!(
            r.options.transport_protocol.as_deref(),
            Some("UDP/TLS/RTP/SAVP")
        );
        assert_eq!(r.options.flags.unknown, ["SDES-only-AEAD_AES_128_GCM"]);
        for bad in [
            ("DTLS", Value::from("bogus")),
            ("transport-protocol", Value::from("RTP/FOO")),
            ("SDES", Value::List(vec!["static".into()])),
            ("flags", Value::List(vec!["DTLS=maybe".into()])),
        ] {
            let key = bad.0;
            let e = request(vec![bad]).unwrap_err();
            assert!(matches!(e, NgError::InvalidValue { .. }), "{key}: {e}");
        }
    }

    #[test]
    fn dtls_values() {
        assert_eq!(DtlsMode::from_name("Passive"), Some(DtlsMode::Passive));
        assert_eq!(DtlsMode::from_name("no"), Some(DtlsMode::Off));
        assert_eq!(DtlsMode::from_name("bogus"), None);
    }
}
