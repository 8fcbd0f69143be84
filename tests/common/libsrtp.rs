//! An independent SRTP peer for the real-node tests: libsrtp2 behind the
//! C program relay/srtp's own interop test uses (one driver for both), plus
//! SDES's base64 (the `base64` crate the SDP parser uses).

#[path = "../../relay/srtp/tests/common/peer.rs"]
pub mod peer;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;

/// Standard base64 with padding (SDES `inline:`).
pub fn base64(b: &[u8]) -> String {
    STANDARD.encode(b)
}

/// Decodes standard base64, padded or not (rtpengine writes it unpadded).
pub fn unbase64(s: &str) -> Vec<u8> {
    STANDARD_NO_PAD
        .decode(s.trim_end_matches('='))
        .expect("base64 key")
}
