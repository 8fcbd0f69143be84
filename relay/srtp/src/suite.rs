//! The SRTP protection profiles rtpmesh speaks and their master keys.

use std::fmt;

/// An SRTP crypto suite (SDES name, RFC 4568 / RFC 7714) or DTLS-SRTP
/// protection profile (RFC 5764).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 tag of 80 bits.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 tag of 32 bits on SRTP (80 on SRTCP).
    AesCm128HmacSha1_32,
    /// AES-128 GCM, 128-bit tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256 GCM, 128-bit tag (RFC 7714). Not in [`Suite::ALL`] (rtpmesh
    /// does not offer it in SDES) but a DTLS-SRTP peer may select it: a
    /// DTLS server prefers it when the client offers it (dimpl does, and
    /// Chrome offers it when GCM is enabled).
    AeadAes256Gcm,
}

impl Suite {
    /// Every suite, in rtpmesh's order of preference for an offer.
    pub const ALL: [Self; 3] = [
        Self::AeadAes128Gcm,
        Self::AesCm128HmacSha1_80,
        Self::AesCm128HmacSha1_32,
    ];

    /// The name `a=crypto` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Self::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The suite `a=crypto` calls `name` (case-sensitive, as RFC 4568 has it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes.
    pub fn salt_len(self) -> usize {
        match self {
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 12,
            _ => 14,
        }
    }

    /// Bytes an SRTP packet has beyond its RTP packet (the tag).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 16,
        }
    }

    /// Bytes an SRTCP packet has beyond its RTCP packet (E flag + index,
    /// and the tag).
    pub fn rtcp_overhead(self) -> usize {
        match self {
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 4 + 16,
            _ => 4 + 10,
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a master key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Key and salt together are not as long as the suite needs.
    #[error("{suite} needs a {need}-byte key and salt, got {got} bytes")]
    Length {
        /// The suite.
        suite: Suite,
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        got: usize,
    },
}

/// A master key and salt for one direction of one leg.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    suite: Suite,
    // Key then salt, as SDES's `inline:` carries them (44 bytes: the
    // longest, AES-256 GCM's 32 + 12).
    bytes: [u8; 44],
}

impl MasterKey {
    /// A master key from key and salt concatenated (SDES `inline:` after
    /// base64 decoding, or DTLS-SRTP's exported material reassembled).
    pub fn new(suite: Suite, key_and_salt: &[u8]) -> Result<Self, KeyError> {
        let need = suite.key_len() + suite.salt_len();
        if key_and_salt.len() != need {
            return Err(KeyError::Length {
                suite,
                need,
                got: key_and_salt.len(),
            });
        }
        let mut bytes = [0; 44];
        bytes[..need].copy_from_slice(key_and_salt);
        Ok(Self { suite, bytes })
    }

    /// The suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The master key.
    pub fn key(&self) -> &[u8] {
        &self.bytes[..self.suite.key_len()]
    }

    /// The master salt.
    pub fn salt(&self) -> &[u8] {
        let k = self.suite.key_len();
        &self.bytes[k..k + self.suite.salt_len()]
    }

    /// Key then salt, as SDES's `inline:` carries them.
    pub fn key_and_salt(&self) -> &[u8] {
        &self.bytes[..self.suite.key_len() + self.suite.salt_len()]
    }
}

// Keys stay out of logs.
impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lengths_are_checked() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_name(s.name()), Some(s));
        }
        assert_eq!(Suite::from_name("aes_cm_128_hmac_sha1_80"), None);
        let k = MasterKey::new(Suite::AeadAes128Gcm, &[7; 28]).unwrap();
        assert_eq!(k.key(), &[7; 16]);
        assert_eq!(k.salt(), &[7; 12]);
        assert!(matches!(
            MasterKey::new(Suite::AesCm128HmacSha1_80, &[0; 28]),
            Err(KeyError::Length {
                need: 30,
                got: 28,
                ..
            })
        ));
        assert!(!format!("{k:?}").contains('7'));
    }
}
