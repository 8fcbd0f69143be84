//! The SRTP key derivation function (RFC 3711 §4.3): AES-CM as a PRF,
//! key derivation rate 0, so session keys are derived once, at start.

use aes::cipher::{KeyIvInit, StreamCipher};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;
type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// The labels of RFC 3711 §4.3.1 (and §4.3.2 for SRTCP).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Label {
    RtpEncryption = 0,
    RtpAuth = 1,
    RtpSalt = 2,
    RtcpEncryption = 3,
    RtcpAuth = 4,
    RtcpSalt = 5,
}

/// Fills `out` (at most a few blocks) with PRF(master key, x) where x is
/// the master salt with the label XORed in at byte 7 (key_id = label || r,
/// r = 0 since the derivation rate is 0), then shifted left 16 bits.
///
/// `master_salt` is 14 bytes, or RFC 7714's 12, which is padded with two
/// zero bytes on the right as RFC 7714 §11 has it (libsrtp does the same).
pub(crate) fn derive(master_key: &[u8], master_salt: &[u8], label: Label, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label as u8;
    out.fill(0);
    // Key and IV lengths are fixed by the suite (16 or 32, and 16), checked
    // by MasterKey, so this cannot fail. AES-256 suites use AES-256 as the
    // PRF (RFC 6188 §7, RFC 7714 §11).
    if master_key.len() == 32 {
        let mut prf = Aes256Ctr::new(master_key.into(), &iv.into());
        prf.apply_keystream(out);
    } else {
        let mut prf = Aes128Ctr::new(master_key.into(), &iv.into());
        prf.apply_keystream(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::hex;

    // RFC 3711 Appendix B.3.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut k = [0; 16];
        derive(&key, &salt, Label::RtpEncryption, &mut k);
        assert_eq!(k[..], hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut s = [0; 14];
        derive(&key, &salt, Label::RtpSalt, &mut s);
        assert_eq!(s[..], hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut a = [0; 20];
        derive(&key, &salt, Label::RtpAuth, &mut a);
        assert_eq!(a[..], hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }
}
