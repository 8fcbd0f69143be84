//! The `codec` dictionary (and its `codec-…` flag forms), and the keys and
//! flags rtpengine 10.5 acts on that rtpmesh cannot honour: those are
//! refused with an error that names them, never accepted and ignored.
//!
//! What each entry does is in `control/ng/FLAGS.md`; how rtpengine edits
//! the SDP for `strip`, `mask`, `except` and `offer` is in
//! [`crate::sdp::codecs`].

use super::{NgError, Op, Options};

/// The `codec` dictionary: which codecs to remove from, keep in or restore
/// to an SDP. Entries are codec names (`PCMU`), or names with parameters
/// as in `a=rtpmap` (`opus/48000/2`), matched without regard to case;
/// `all` (and `full`) in `strip`/`mask` means every codec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CodecOptions {
    /// `strip`: removed from the SDP, both towards the answerer and from
    /// what the offerer is answered with.
    pub strip: Vec<String>,
    /// `mask`: removed towards the answerer only (offer only).
    pub mask: Vec<String>,
    /// `except`: kept despite `strip: all` / `mask: all`.
    pub except: Vec<String>,
    /// `offer`: kept despite `all`, in this order, first preferred.
    pub offer: Vec<String>,
    /// `transcode`: like `offer` for codecs the SDP has; any other needs
    /// transcoding and is refused (offer only).
    pub transcode: Vec<String>,
    /// `consume`: `mask` plus transcoding (offer only): refused.
    pub consume: Vec<String>,
    /// `accept`: accept for transcoding (offer only): refused.
    pub accept: Vec<String>,
    /// `set`: options of transcoded codecs; without transcoding there is
    /// nothing they apply to, so they are kept only to be logged.
    pub set: Vec<String>,
    /// The `single codec` flag: an answer keeps only its first codec
    /// (and its `telephone-event`/`CN`).
    pub single_codec: bool,
}

impl CodecOptions {
    /// Whether no entry edits the SDP.
    pub fn is_empty(&self) -> bool {
        self.strip.is_empty()
            && self.mask.is_empty()
            && self.except.is_empty()
            && self.offer.is_empty()
            && self.transcode.is_empty()
    }

    /// The list an entry name (`strip`, `mask`, …) fills; `None` for a name
    /// rtpengine does not know (ignored, as it does).
    pub(super) fn list(&mut self, name: &str) -> Option<&mut Vec<String>> {
        Some(match name.to_ascii_lowercase().as_str() {
            "strip" => &mut self.strip,
            "mask" => &mut self.mask,
            "except" => &mut self.except,
            "offer" => &mut self.offer,
            "transcode" => &mut self.transcode,
            "consume" => &mut self.consume,
            "accept" => &mut self.accept,
            "set" => &mut self.set,
            _ => return None,
        })
    }

    /// Applies a `codec-ACTION-CODEC` flag (`codec-strip-PCMA`), as
    /// rtpengine takes them in the `flags` list. Returns false when it is
    /// not one.
    pub(super) fn apply_flag(&mut self, flag: &str) -> bool {
        let Some(rest) = strip_prefix_ci(flag, "codec-") else {
            return false;
        };
        let Some((action, codec)) = rest.split_once('-') else {
            return false;
        };
        match self.list(action) {
            Some(list) if !codec.is_empty() => {
                list.push(codec.to_owned());
                true
            }
            _ => false,
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Something a request asked for that rtpmesh does not do: the key or
/// flag as written, and whether rtpengine acts on it in offers only (in
/// other commands it ignores it, and so does rtpmesh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// What was asked, e.g. `T.38: decode` or `flags: media-handover`.
    pub what: String,
    /// Why it cannot be done.
    pub why: Why,
    /// rtpengine acts on it in `offer` only.
    pub offer_only: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It needs rtpengine's transcoding engine (decode and re-encode).
    Transcoding,
    /// rtpmesh does not implement it.
    NotImplemented,
}

impl Unsupported {
    /// The `error-reason` text.
    pub fn reason(&self) -> String {
        match self.why {
            Why::Transcoding => format!("Transcoding is not supported ({})", self.what),
            Why::NotImplemented => format!("Not supported by rtpmesh ({})", self.what),
        }
    }
}

/// Keys rtpengine 10.5 acts on and rtpmesh refuses: (normalized key,
/// why, offer only). A key given an "off" value (`no`, `off`, `0`, empty)
/// asks for nothing and is not refused.
const REFUSED_KEYS: &[(&str, Why, bool)] = &[
    ("ptime-reverse", Why::Transcoding, true),
    ("reverse-ptime", Why::Transcoding, true),
    ("t.38", Why::Transcoding, true),
    ("media-echo", Why::NotImplemented, false),
    ("generate-rtcp", Why::NotImplemented, false),
    ("dtmf-security", Why::NotImplemented, false),
    ("dtmf-security-trigger", Why::NotImplemented, false),
    ("dtmf-security-trigger-end", Why::NotImplemented, false),
    ("dtmf-delay", Why::Transcoding, false),
    ("delay-buffer", Why::Transcoding, false),
    ("drop-traffic", Why::NotImplemented, false),
    ("osrtp", Why::NotImplemented, false),
    ("endpoint-learning", Why::NotImplemented, false),
    ("tos", Why::NotImplemented, false),
    ("trigger", Why::NotImplemented, false),
    ("trigger-end", Why::NotImplemented, false),
    ("end-trigger", Why::NotImplemented, false),
    // DTLS: the reverse direction's role, and a fingerprint hash other than
    // SHA-256 (the one rtpmesh announces; `sha-256` itself is accepted).
    ("dtls-reverse", Why::NotImplemented, false),
    ("dtls-fingerprint", Why::NotImplemented, false),
];

/// Flags rtpengine 10.5 acts on and rtpmesh refuses (normalized, lower case).
const REFUSED_FLAGS: &[(&str, Why, bool)] = &[
    ("always-transcode", Why::Transcoding, true),
    ("inject-dtmf", Why::Transcoding, false),
    ("detect-dtmf", Why::Transcoding, false),
    ("generate-rtcp", Why::NotImplemented, false),
    ("media-handover", Why::NotImplemented, false),
    ("reuse-codecs", Why::NotImplemented, false),
    ("no-codec-renegotiation", Why::NotImplemented, false),
    ("original-sendrecv", Why::NotImplemented, false),
    ("full-rtcp-attribute", Why::NotImplemented, false),
    ("loop-protect", Why::NotImplemented, false),
    ("pierce-nat", Why::NotImplemented, false),
    ("nat-wait", Why::NotImplemented, false),
    ("allow-transcoding", Why::Transcoding, false),
    // ICE and SDES details rtpmesh, an ICE-lite relay with its own keys,
    // does not do.
    ("trickle-ice", Why::NotImplemented, false),
    ("reject-ice", Why::NotImplemented, false),
    ("pad-crypto", Why::NotImplemented, false),
    ("reset", Why::NotImplemented, false),
];

/// `replace` entries rtpengine acts on and rtpmesh refuses.
const REFUSED_REPLACE: &[&str] = &["sdp-version", "username", "session-name", "zero-address"];

fn is_off(v: &crate::bencode::Value) -> bool {
    match v {
        crate::bencode::Value::Int(0) => true,
        crate::bencode::Value::List(l) => l.is_empty(),
        v => v.as_str().is_some_and(|s| {
            let s = s.trim();
            s.is_empty()
                || ["no", "off", "0", "stop"]
                    .iter()
                    .any(|o| s.eq_ignore_ascii_case(o))
        }),
    }
}

/// Records key `key` (normalized) when rtpmesh refuses it; otherwise
/// remembers it as unknown, for the debug log. Returns nothing: refusal
/// is decided once the command is known ([`refusal`]).
pub(super) fn other_key(o: &mut Options, key: &str, v: &crate::bencode::Value) {
    let lower = key.to_ascii_lowercase();
    if let Some(&(_, why, offer_only)) = REFUSED_KEYS.iter().find(|(k, ..)| *k == lower) {
        // `T.38: [stop]` (or only `no-…` options) asks for no gateway.
        let t38_off = lower == "t.38"
            && v.as_list().is_some_and(|l| {
                l.iter()
                    .filter_map(|i| i.as_str())
                    .all(|s| !s.eq_ignore_ascii_case("decode") && !s.eq_ignore_ascii_case("force"))
            });
        let sha256 = lower == "dtls-fingerprint"
            && v.as_str()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("sha-256"));
        if !is_off(v) && !t38_off && !sha256 {
            o.unsupported.push(Unsupported {
                what: key.to_owned(),
                why,
                offer_only,
            });
        }
        return;
    }
    o.unknown_keys.push(key.to_owned());
}

/// Records flag `lower` (normalized, lower case) when rtpmesh refuses it;
/// returns whether it did.
pub(super) fn refused_flag(o: &mut Options, raw: &str, lower: &str) -> bool {
    let Some(&(_, why, offer_only)) = REFUSED_FLAGS.iter().find(|(f, ..)| *f == lower) else {
        return false;
    };
    o.unsupported.push(Unsupported {
        what: format!("flags: {}", raw.trim()),
        why,
        offer_only,
    });
    true
}

/// Flags with a value after a prefix that rtpengine acts on:
/// `transcode-CODEC` (an alias of `codec-transcode-CODEC`), `T.38-decode`
/// and `T.38-force` (transcoding: refused), `endpoint-learning-…` and
/// `OSRTP-…` (refused). `lower` is the normalized, lower-case flag; returns
/// whether it was one of them.
pub(super) fn prefixed_flag(o: &mut Options, raw: &str, lower: &str) -> bool {
    let raw = raw.trim();
    if let Some(codec) = strip_prefix_ci(raw, "transcode-") {
        o.codec.transcode.push(codec.to_owned());
        return true;
    }
    let refused = |why, offer_only| Unsupported {
        what: format!("flags: {raw}"),
        why,
        offer_only,
    };
    let t38 = lower.strip_prefix("t.38-").or(lower.strip_prefix("t38-"));
    if let Some(opt) = t38 {
        if opt == "decode" || opt == "force" {
            o.unsupported.push(refused(Why::Transcoding, true));
        }
        return true;
    }
    if lower.starts_with("endpoint-learning-") || lower.starts_with("osrtp-") {
        o.unsupported.push(refused(Why::NotImplemented, false));
        return true;
    }
    false
}

/// Records a `replace` entry (normalized) rtpmesh refuses; returns whether it did.
pub(super) fn refused_replace(o: &mut Options, item: &str) -> bool {
    let lower = item.to_ascii_lowercase();
    if !REFUSED_REPLACE.contains(&lower.as_str()) {
        return false;
    }
    o.unsupported.push(Unsupported {
        what: format!("replace: {item}"),
        why: Why::NotImplemented,
        offer_only: false,
    });
    true
}

/// The first thing `options` asks for that rtpmesh refuses for `op`, if
/// any. Only offers and answers act on these (rtpengine ignores them in
/// other commands); entries rtpengine reads in offers only are refused in
/// offers only.
pub(super) fn refusal(op: &Op, o: &Options) -> Result<(), NgError> {
    let offer = match op {
        Op::Offer(_) => true,
        Op::Answer(_) => false,
        _ => return Ok(()),
    };
    let c = &o.codec;
    let first = |list: &[String], name: &str| {
        list.first().map(|codec| Unsupported {
            what: format!("codec-{name}: {codec}"),
            why: Why::Transcoding,
            offer_only: true,
        })
    };
    let codec = first(&c.consume, "consume").or_else(|| first(&c.accept, "accept"));
    let found = o
        .unsupported
        .iter()
        .find(|u| offer || !u.offer_only)
        .cloned()
        .or(codec.filter(|_| offer));
    match found {
        Some(u) => Err(NgError::Unsupported(u.reason())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
