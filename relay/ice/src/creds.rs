//! ICE credentials and candidates for the SDP (RFC 8445 §5.1.2, §5.3;
//! RFC 8839): the node's control plane uses these, the packet path does not.

use std::fmt::Write;
use std::net::IpAddr;

/// The ufrag length rtpmesh generates (RFC 8445 §5.3 asks for at least 4).
pub const UFRAG_LEN: usize = 8;
/// The password length rtpmesh generates (RFC 8445 §5.3 asks for at least 22).
pub const PWD_LEN: usize = 26;

/// ice-char (RFC 8839 §5.4): ALPHA / DIGIT / "+" / "/", 64 of them, so one
/// random byte modulo 64 picks one uniformly (256 is a multiple of 64).
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// One ice-char per random byte, uniformly.
pub fn ice_chars(random: &[u8]) -> String {
    random
        .iter()
        .map(|&b| char::from(ICE_CHARS[usize::from(b & 63)]))
        .collect()
}

/// A fresh `a=ice-ufrag` value from the caller's random bytes.
pub fn new_ufrag(random: &[u8; UFRAG_LEN]) -> String {
    ice_chars(random)
}

/// A fresh `a=ice-pwd` value from the caller's random bytes (156 bits).
pub fn new_pwd(random: &[u8; PWD_LEN]) -> String {
    ice_chars(random)
}

/// A host candidate's priority (RFC 8445 §5.1.2.1): type preference 126,
/// `local_preference` (65535 for a single address; lower for the others of a
/// multihomed relay), and 256 minus the component (1 RTP, 2 RTCP).
pub fn host_priority(component: u8, local_preference: u16) -> u32 {
    (126 << 24) | (u32::from(local_preference) << 8) | (256 - u32::from(component))
}

/// An `a=candidate` attribute's value, without the `a=candidate:` prefix:
/// `foundation component UDP priority address port typ host`.
pub fn candidate_line(
    foundation: &str,
    component: u8,
    ip: IpAddr,
    port: u16,
    priority: u32,
) -> String {
    let mut s = String::with_capacity(64);
    // Writing into a String cannot fail.
    let _ = write!(
        s,
        "{foundation} {component} UDP {priority} {ip} {port} typ host"
    );
    s
}
