//! ICE credentials and candidates for the SDP (RFC 8445 §5.1.2, §5.3;
//! RFC 8839): the node's control plane uses these, the packet path does not.
//!
//! Formats are rtpengine 10.5's, as it emits them for `ICE=force`:
//! ```text
//! a=ice-ufrag:ZoFRPIfW
//! a=ice-pwd:AmxEusBmZdMnxd7v8Eje4OYp1u
//! a=candidate:Eoy3pA5zRx0wbsxM 1 UDP 2130706431 127.0.0.1 47100 typ host
//! a=candidate:Eoy3pA5zRx0wbsxM 2 UDP 2130706430 127.0.0.1 47101 typ host
//! ```
//! 8-character ufrag, 26-character password, a 16-character foundation per
//! local address, all letters and digits only (no `+` or `/`, though
//! ice-char allows them), transport "UDP", no `generation`.

use std::fmt::Write;
use std::net::IpAddr;

/// The ufrag length rtpengine 10.5 emits (RFC 8445 §5.3 asks for at least 4).
pub const UFRAG_LEN: usize = 8;
/// The password length rtpengine 10.5 emits (RFC 8445 §5.3 asks for at least 22).
pub const PWD_LEN: usize = 26;
/// The candidate foundation length rtpengine 10.5 emits (RFC 8445 allows 1..=32).
pub const FOUNDATION_LEN: usize = 16;

/// Letters and digits: the ice-chars rtpengine uses.
const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// One letter or digit per random byte (byte modulo 62: 8 of the 62 are
/// 5/256 likely rather than 4/256, so a character carries 5.95 of
/// log2(62) = 5.954 bits; a 26-character password keeps over 150 bits).
pub fn ice_chars(random: &[u8]) -> String {
    random
        .iter()
        .map(|&b| char::from(ALNUM[usize::from(b) % ALNUM.len()]))
        .collect()
}

/// A fresh `a=ice-ufrag` value from the caller's random bytes.
pub fn new_ufrag(random: &[u8; UFRAG_LEN]) -> String {
    ice_chars(random)
}

/// A fresh `a=ice-pwd` value from the caller's random bytes.
pub fn new_pwd(random: &[u8; PWD_LEN]) -> String {
    ice_chars(random)
}

/// A fresh candidate foundation from the caller's random bytes: one per
/// local address, shared by its components (RFC 8445 §5.1.1.3), so made once
/// per node address rather than per call, as rtpengine does.
pub fn new_foundation(random: &[u8; FOUNDATION_LEN]) -> String {
    ice_chars(random)
}

/// A host candidate's priority (RFC 8445 §5.1.2.1): type preference 126,
/// `local_preference` (65535 for a single address, as rtpengine; lower for
/// the others of a multihomed relay), and 256 minus the component (1 RTP,
/// 2 RTCP). `host_priority(1, 65535)` is 2130706431.
pub fn host_priority(component: u8, local_preference: u16) -> u32 {
    (126 << 24) | (u32::from(local_preference) << 8) | (256 - u32::from(component))
}

/// An `a=candidate` attribute's value, without the `a=candidate:` prefix, as
/// rtpengine writes it: `foundation component UDP priority address port typ host`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_have_rtpengine_lengths_and_letters_and_digits() {
        let ufrag = new_ufrag(&[0, 1, 61, 62, 63, 127, 200, 255]);
        assert_eq!(ufrag.len(), UFRAG_LEN);
        assert_eq!(ufrag, "AB9ABDOH");
        let pwd = new_pwd(&[0xA5; PWD_LEN]);
        assert_eq!(pwd.len(), PWD_LEN);
        let all: Vec<u8> = (0..=255).collect();
        assert!(ice_chars(&all).bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(new_foundation(&[7; FOUNDATION_LEN]).len(), 16);
    }

    #[test]
    fn host_priorities_are_rtpengines() {
        assert_eq!(host_priority(1, 65535), 2130706431);
        assert_eq!(host_priority(2, 65535), 2130706430);
    }

    #[test]
    fn candidate_lines_are_rtpengines() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            candidate_line("Eoy3pA5zRx0wbsxM", 1, ip, 47100, host_priority(1, 65535)),
            "Eoy3pA5zRx0wbsxM 1 UDP 2130706431 127.0.0.1 47100 typ host"
        );
        let ip6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            candidate_line("F", 2, ip6, 9, 1),
            "F 2 UDP 1 2001:db8::1 9 typ host"
        );
    }
}
