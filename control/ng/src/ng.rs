//! rtpengine "ng" protocol, sans-IO: datagram framing ([`split_datagram`],
//! [`decode_body`], [`encode_reply`]), typed requests ([`parse_request`]
//! makes a [`Request`] whose command carries its required keys) and typed
//! replies ([`Reply`]; [`Reply::to_value`] is the one place a reply becomes
//! bencode).
//!
//! A datagram is `COOKIE SP BENCODED-DICT`; the reply echoes the cookie. What
//! rtpengine 10.5 actually does with odd input is written down in
//! `control/ng/NG-NOTES.md`; the behaviour here follows it except where noted.

use std::str::FromStr;

use crate::bencode::{self, DecodeError, Value};

pub mod codec;
mod parse;
mod reply;
mod report;
mod request;
mod security;

pub use parse::parse_request;
pub use reply::{Failure, Relayed, Reply, Route, Statistics, TunnelEnd};
pub use report::{CallReport, MediaReport, PacketStats, StreamReport, TagReport};
pub use request::{
    Answer, BranchRef, CallRef, Flags, IceMode, Offer, Op, Options, Replace, Request, RtcpMux,
    TunnelParams, TunnelSide,
};
pub use security::{
    transport_protocol, DtlsMode, SdesOptions, SecurityOptions, TRANSPORT_PROTOCOLS,
};

/// `error-reason` / `warning` texts, byte for byte as rtpengine 10.5.3 sends
/// them (each one was observed on the wire, see `NG-NOTES.md`). Kamailio logs
/// them and some scripts match on them, so never reword.
pub mod reason {
    /// `command` names no known command (matching is case-sensitive: `Ping` gets this).
    pub const UNRECOGNIZED_COMMAND: &str = "Unrecognized command";
    /// offer/answer without a string `sdp`; checked before call-id and tags.
    pub const NO_SDP: &str = "No SDP body in message";
    /// Missing (or non-string) `call-id`.
    pub const NO_CALL_ID: &str = "No call-id in message";
    /// Missing `from-tag` on offer/answer.
    pub const NO_FROM_TAG: &str = "No from-tag in message";
    /// Missing `to-tag` on answer; rtpengine checks it before looking the call up.
    pub const NO_TO_TAG: &str = "No to-tag in message";
    /// answer/query for a call we do not have. (rtpengine's binary also has
    /// `Unknown call-ID`, but answer and query send this spelling.)
    pub const UNKNOWN_CALL_ID: &str = "Unknown call-id";
    /// Sent as `warning` on a `result: ok` reply when delete finds nothing.
    pub const DELETE_NOT_FOUND: &str = "Call-ID not found or tags didn't match";
    /// A `from-tag` that names no party of the call.
    pub const UNKNOWN_TAG: &str = "Unknown tag";
    /// The SDP body could not be parsed.
    pub const FAILED_TO_PARSE_SDP: &str = "Failed to parse SDP";
    /// Session limit hit. With `supports: [load limit]` rtpengine sends it as
    /// `{result: "load limit", message: …}` instead of as an error; see [`super::Reply::LoadLimit`].
    pub const LOAD_LIMIT: &str = "Parallel session limit reached";
    /// Body is a dict that does not decode (truncated strings, `i03e`, …).
    pub const DECODE_FAILED: &str = "Could not decode bencode dictionary";
    /// Body does not start with `d` (a list, a string, garbage, a second space).
    pub const INVALID_FORMAT: &str = "Invalid NG data format";
    /// start/stop branch without `branch` (rtpmesh's own text).
    pub const NO_BRANCH: &str = "No branch in message";
    /// Nothing after the cookie's space.
    pub const NO_PAYLOAD: &str = "Invalid data (no payload)";
    /// The port range is exhausted (rtpengine's text).
    pub const NO_PORTS: &str = "Ran out of ports";
    /// An answer with more m= lines than its offer (rtpmesh's own text).
    pub const ANSWER_MEDIA_MISMATCH: &str = "Answer has more media streams than the offer";
    /// The dict has no `command`, or it is not a string.
    pub const NO_COMMAND: &str = "Dictionary contains no key \"command\"";
    /// An offer or answer with more than [`super::MAX_MEDIA_SECTIONS`] m=
    /// lines (rtpmesh's own text; rtpengine has no such cap).
    pub const TOO_MANY_MEDIA: &str = "Too many media sections in SDP (at most 32)";
    /// The reply would not fit in one datagram ([`super::MAX_REPLY_BODY`]);
    /// the request was undone (rtpmesh's own text).
    pub const REPLY_TOO_LARGE: &str = "Reply too large for a datagram";
}

/// Most m= lines one offer or answer may carry. Each takes a port pair per
/// leg, so without a cap one 6 KB offer could take a node's whole port
/// range. No real call comes near it (audio, video, a screen share and a
/// few data channels are under ten); rtpengine has no cap.
pub const MAX_MEDIA_SECTIONS: usize = 32;

/// The largest UDP payload over IPv4 (65,535 less the IP and UDP headers).
pub const MAX_DATAGRAM: usize = 65_507;

/// The longest cookie the ng server accepts (`rtpmesh_ng_udp`'s
/// `MAX_COOKIE`, which checks that they agree).
pub const MAX_COOKIE: usize = 256;

/// The largest reply body that fits in one datagram with any accepted
/// cookie and its space. A node's reply over it cannot be sent, so the node
/// answers [`reason::REPLY_TOO_LARGE`] instead and undoes the request; a
/// `list` reply is cut to fit.
pub const MAX_REPLY_BODY: usize = MAX_DATAGRAM - MAX_COOKIE - 1;

/// rtpengine's `list` limit when the request names none.
pub const DEFAULT_LIST_LIMIT: usize = 32;

/// One page of a `list` reply: from the sorted `ids`, those after `after`
/// (the rtpmesh cursor), at most `limit`, and no more than fit in one
/// datagram's reply, so that a caller pages on from the last id it got.
pub fn list_page<'a>(
    ids: impl IntoIterator<Item = &'a str>,
    after: Option<&str>,
    limit: usize,
) -> Vec<String> {
    let mut ids: Vec<&str> = ids
        .into_iter()
        .filter(|id| after.is_none_or(|a| *id > a))
        .collect();
    ids.sort_unstable();
    // The rest of `{calls: [...], result: ok}` and a warning's worth.
    let mut room = MAX_REPLY_BODY - 128;
    let mut page = Vec::new();
    for id in ids.into_iter().take(limit) {
        // `LEN:ID`
        let cost = id.len() + id.len().to_string().len() + 1;
        if cost > room {
            break;
        }
        room -= cost;
        page.push(id.to_owned());
    }
    page
}

/// Anything that turns a datagram into an error reply (or into silence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NgError {
    /// No space in the datagram, or nothing before it. rtpengine drops these
    /// without a reply; see [`NgError::is_silent`].
    #[error("datagram has no cookie")]
    NoCookie,
    /// Nothing after the cookie.
    #[error("datagram has no payload")]
    NoPayload,
    /// The body does not start with a bencoded dictionary.
    #[error("body is not a bencoded dictionary")]
    NotADict,
    /// The body looked like a dictionary but did not decode.
    #[error("could not decode bencode dictionary: {0}")]
    Bencode(#[from] DecodeError),
    /// No string `command` key.
    #[error("dictionary contains no key \"command\"")]
    NoCommand,
    /// `command` is not one we implement.
    #[error("unrecognized command {0:?}")]
    UnrecognizedCommand(String),
    /// offer/answer without SDP.
    #[error("no SDP body in message")]
    NoSdp,
    /// A command that needs a call-id lacks one.
    #[error("no call-id in message")]
    NoCallId,
    /// offer/answer without from-tag.
    #[error("no from-tag in message")]
    NoFromTag,
    /// answer without to-tag.
    #[error("no to-tag in message")]
    NoToTag,
    /// start/stop branch without `branch`.
    #[error("no branch in message")]
    NoBranch,
    /// A key is present with the wrong type or an unparsable value. rtpengine
    /// mostly ignores such keys; we refuse them so a typo in a Kamailio
    /// config shows up instead of silently changing media handling.
    #[error("invalid value for key \"{key}\": expected {expected}")]
    InvalidValue {
        /// The key (normalized, e.g. `received-from`), or `flags: NAME` for a flag string.
        key: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// The call-id names no call we know (answer, query).
    #[error("unknown call-id")]
    UnknownCallId,
    /// The SDP body could not be parsed.
    #[error("failed to parse SDP")]
    FailedToParseSdp,
    /// No room for another session.
    #[error("parallel session limit reached")]
    LoadLimit,
    /// The request asks for something rtpengine does and rtpmesh does not
    /// (transcoding, T.38 ...): refused rather than ignored. The text names it.
    #[error("{0}")]
    Unsupported(String),
}

impl NgError {
    /// The `error-reason` text to send back: rtpengine's exact wording where it has one.
    pub fn reason(&self) -> String {
        use reason::*;
        match self {
            Self::NoCookie | Self::NotADict => INVALID_FORMAT.into(),
            Self::NoPayload => NO_PAYLOAD.into(),
            Self::Bencode(_) => DECODE_FAILED.into(),
            Self::NoCommand => NO_COMMAND.into(),
            Self::UnrecognizedCommand(_) => UNRECOGNIZED_COMMAND.into(),
            Self::NoSdp => NO_SDP.into(),
            Self::NoCallId => NO_CALL_ID.into(),
            Self::NoFromTag => NO_FROM_TAG.into(),
            Self::NoToTag => NO_TO_TAG.into(),
            Self::NoBranch => NO_BRANCH.into(),
            Self::UnknownCallId => UNKNOWN_CALL_ID.into(),
            Self::FailedToParseSdp => FAILED_TO_PARSE_SDP.into(),
            Self::LoadLimit => LOAD_LIMIT.into(),
            Self::Unsupported(what) => what.clone(),
            // rtpengine has no text for this; ours names the key so the
            // Kamailio log alone is enough to find the culprit.
            Self::InvalidValue { key, expected } => {
                format!("Invalid value for key \"{key}\": expected {expected}")
            }
        }
    }

    /// True when rtpengine sends nothing back (there is no cookie to echo).
    pub fn is_silent(&self) -> bool {
        matches!(self, Self::NoCookie)
    }
}

/// Splits a datagram into `(cookie, body)` at the first space.
///
/// An empty body is not an error here, so the caller still has the cookie
/// to send [`NgError::NoPayload`] back with; [`decode_body`] reports it.
pub fn split_datagram(d: &[u8]) -> Result<(&[u8], &[u8]), NgError> {
    match d.iter().position(|&b| b == b' ') {
        Some(0) | None => Err(NgError::NoCookie),
        Some(i) => Ok((&d[..i], &d[i + 1..])),
    }
}

/// Decodes a body into its dictionary, with rtpengine's distinctions between
/// "no payload", "not a dict" and "a dict that does not decode".
pub fn decode_body(body: &[u8]) -> Result<Value, NgError> {
    match body.first() {
        None => Err(NgError::NoPayload),
        Some(b'd') => Ok(bencode::decode(body)?),
        Some(_) => Err(NgError::NotADict),
    }
}

// The single list of commands: variant, wire name, doc.
macro_rules! commands {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// An ng command we implement.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Command {
            $($(#[$doc])* $variant,)*
        }

        impl Command {
            /// Every command, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The wire name, as sent in `command`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }
        }

        /// Exact, case-sensitive match on the wire name, as rtpengine does.
        impl FromStr for Command {
            type Err = NgError;

            fn from_str(s: &str) -> Result<Self, NgError> {
                match s {
                    $($wire => Ok(Self::$variant),)*
                    _ => Err(NgError::UnrecognizedCommand(s.to_owned())),
                }
            }
        }
    };
}

commands! {
    /// Liveness check; answered with `result: pong`.
    Ping = "ping",
    /// SDP offer: allocate ports, rewrite SDP.
    Offer = "offer",
    /// SDP answer for an offered call.
    Answer = "answer",
    /// Tear a call (or one branch of it) down.
    Delete = "delete",
    /// Report a call's state and counters.
    Query = "query",
    /// List call-ids.
    List = "list",
    /// Global counters.
    Statistics = "statistics",
    /// Record the call (every leg, or the `from-tag` party's) to local pcap
    /// and WAV files.
    StartRecording = "start recording",
    /// Stop recording; the files stay.
    StopRecording = "stop recording",
    /// Stop forwarding media from the `from-tag` party (every party without
    /// one).
    BlockMedia = "block media",
    /// Undo `block media`.
    UnblockMedia = "unblock media",
    /// rtpmesh: tell a call's tunnel leg where the peer node's end is.
    UpdateTunnel = "update tunnel",
    /// rtpmesh: fork a party's media to a resource (`destination`, or
    /// through a `tunnel`), optionally recording it here too.
    StartBranch = "start branch",
    /// rtpmesh: stop a branch.
    StopBranch = "stop branch",
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `{result: error, error-reason: …}`, for a driver that answers a
/// datagram the core never saw (one that does not decode).
pub fn error(reason: &str) -> Value {
    Reply::error(reason).to_value()
}

/// `COOKIE SP bencode`, ready to send.
pub fn encode_reply(cookie: &[u8], reply: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 64);
    out.extend_from_slice(cookie);
    out.push(b' ');
    reply.encode_into(&mut out);
    out
}

#[cfg(test)]
mod tests;
