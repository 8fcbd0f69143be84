//! STUN (RFC 8489) and the ICE-lite responder (RFC 8445 §2.5, RFC 7675), sans-IO.
//!
//! The relay is an ICE-lite agent: it never sends checks of its own, it answers
//! the browser's Binding requests on each media socket and watches them for
//! consent. Everything here is a pure function of the bytes and the time it is
//! given; the flow core (relay/flow) calls it for every datagram whose first
//! byte is 0..=3 (RFC 7983 demux) on a socket whose flow carries ICE
//! credentials.
//!
//! - [`is_stun`]: the demux test (first byte and magic cookie).
//! - [`answer`]: checks a Binding request (FINGERPRINT, USERNAME, MESSAGE-INTEGRITY,
//!   comprehension-required attributes) and writes the success response in place
//!   into the caller's buffer; it allocates nothing. A refused request gives a
//!   [`StunError`]; [`error_response`] then writes the 400/401/420 error
//!   response the RFC calls for, or says that the datagram is to be dropped.
//! - [`Consent`]: RFC 7675 from the lite side: valid checks keep it fresh,
//!   [`CONSENT_TIMEOUT`] without one ends it.
//! - [`new_ufrag`], [`new_pwd`], [`host_priority`], [`candidate_line`]: the
//!   control plane's SDP material (not on the packet path), formatted as
//!   rtpengine 10.5 formats it.
//!
//! On the packet path, per datagram of an ICE socket (a sketch of the flow's use):
//!
//! ```
//! # use std::net::SocketAddr;
//! # use std::time::Instant;
//! # use rtpmesh_ice::{answer, error_response, is_stun, Consent};
//! # let (data, src, now): (&[u8], SocketAddr, Instant) = (&[0; 4], "192.0.2.1:9".parse().unwrap(), Instant::now());
//! # let mut consent = Consent::new(now);
//! let mut out = [0u8; 128]; // answers are 64 (IPv4) or 76 (IPv6) bytes, errors under 128
//! if is_stun(data) {
//!     match answer(data, src, "ufrag", "password-of-at-least-22", Some("peer"), &mut out) {
//!         Ok(a) => {
//!             consent.on_valid_check(now);
//!             // if a.use_candidate: latch `src`; then send out[..a.len] to src
//!         }
//!         Err(e) => {
//!             // count e; then send what error_response writes, if anything
//!             let _reply = error_response(data, e, "password-of-at-least-22", &mut out);
//!         }
//!     }
//! }
//! // On the worker's tick: consent.expired(now) ends the leg.
//! ```
//!
//! Crates: RustCrypto's `hmac` + `sha1` for MESSAGE-INTEGRITY (pure Rust, the
//! `hmac` the flow core already uses) and `crc32fast` for FINGERPRINT; nothing
//! else, no IO.

mod answer;
mod consent;
mod creds;
mod stun;

pub use answer::{answer, error_response, Answered};
pub use consent::{Consent, CONSENT_TIMEOUT};
pub use creds::{
    candidate_line, host_priority, ice_chars, new_foundation, new_pwd, new_ufrag, FOUNDATION_LEN,
    PWD_LEN, UFRAG_LEN,
};
pub use stun::{attr, is_stun, verify, StunError, HEADER_LEN, MAGIC_COOKIE};

#[cfg(test)]
mod tests;
