//! The node's DTLS certificate: ECDSA P-256, self-signed, made once at
//! start. WebRTC authenticates it by its SDP fingerprint (RFC 8122), not
//! by a chain, so the certificate itself carries no more than a name.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use p256::ecdsa::{DerSignature, SigningKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::EncodePrivateKey;
use sha2::Digest;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::der::Encode;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};
use x509_cert::TbsCertificate;

use crate::DtlsError;

/// The node's certificate: ECDSA P-256, self-signed, made once at start;
/// cheap to clone (Arc inside), Send + Sync.
#[derive(Clone)]
pub struct Certificate {
    inner: Arc<Inner>,
}

struct Inner {
    dtls: dimpl::DtlsCertificate,
    sha256: [u8; 32],
}

impl Certificate {
    /// A fresh key pair and a self-signed certificate for it.
    pub fn generate() -> Result<Self, DtlsError> {
        let fail =
            |what: &str, e: &dyn fmt::Display| DtlsError::Certificate(format!("{what}: {e}"));
        let key = SigningKey::try_generate().map_err(|e| fail("key generation", &e))?;
        let spki = SubjectPublicKeyInfo::from_key(key.verifying_key())
            .map_err(|e| fail("public key", &e))?;
        // A random positive serial: Firefox refuses two certificates with
        // the same issuer and serial (str0m #517, mediasoup #127).
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).map_err(|e| fail("random serial", &e))?;
        serial[0] = (serial[0] & 0x7F) | 0x40;
        let serial = SerialNumber::new(&serial).map_err(|e| fail("serial", &e))?;
        // Peers check the fingerprint, not the dates; a day back absorbs
        // clock skew, and the end lies beyond any node's uptime.
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let time = |t| Time::try_from(t).map_err(|e| fail("validity", &e));
        let validity = Validity::new(time(now - day)?, time(now + 3650 * day)?);
        let profile = SelfSigned {
            name: "CN=rtpmesh".parse().map_err(|e| fail("name", &e))?,
        };
        let builder = CertificateBuilder::new(profile, serial, validity, spki)
            .map_err(|e| fail("builder", &e))?;
        let cert = builder
            .build::<_, DerSignature>(&key)
            .map_err(|e| fail("signing", &e))?;
        let certificate = cert.to_der().map_err(|e| fail("encoding", &e))?;
        let private_key = key
            .to_pkcs8_der()
            .map_err(|e| fail("key encoding", &e))?
            .as_bytes()
            .to_vec();
        Ok(Self::from_parts(certificate, private_key))
    }

    fn from_parts(certificate: Vec<u8>, private_key: Vec<u8>) -> Self {
        let sha256 = sha2::Sha256::digest(&certificate).into();
        Self {
            inner: Arc::new(Inner {
                dtls: dimpl::DtlsCertificate {
                    certificate,
                    private_key,
                },
                sha256,
            }),
        }
    }

    /// SHA-256 of the DER certificate (what `a=fingerprint:sha-256 AB:CD:..`
    /// carries).
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        self.inner.sha256
    }

    /// The `a=fingerprint` value: `sha-256 AB:CD:...` (RFC 8122 §5).
    pub fn sdp_fingerprint(&self) -> String {
        format!("sha-256 {}", hex_colons(&self.inner.sha256))
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.inner.dtls.certificate
    }

    pub(crate) fn dtls(&self) -> dimpl::DtlsCertificate {
        self.inner.dtls.clone()
    }
}

// The private key stays out of logs.
impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("sha256", &hex_colons(&self.inner.sha256))
            .finish_non_exhaustive()
    }
}

/// `AB:CD:...`, as SDP writes a fingerprint.
fn hex_colons(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// Issuer = subject, no extensions: a WebRTC certificate is pinned by
/// its fingerprint, so constraints and key usages would go unread.
struct SelfSigned {
    name: Name,
}

impl BuilderProfile for SelfSigned {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.name.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(Vec::new())
    }
}

/// A hash function `a=fingerprint` may name (RFC 8122 §5; the MD ones
/// are refused as RFC 8122 says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintHash {
    /// `sha-1`
    Sha1,
    /// `sha-224`
    Sha224,
    /// `sha-256`
    Sha256,
    /// `sha-384`
    Sha384,
    /// `sha-512`
    Sha512,
}

impl FingerprintHash {
    /// The hash SDP calls `name` (case-insensitive, as RFC 8122's
    /// grammar has it).
    pub fn from_sdp_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "sha-1" => Self::Sha1,
            "sha-224" => Self::Sha224,
            "sha-256" => Self::Sha256,
            "sha-384" => Self::Sha384,
            "sha-512" => Self::Sha512,
            _ => return None,
        })
    }

    /// The digest of `der`.
    pub fn digest(self, der: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => sha1::Sha1::digest(der).to_vec(),
            Self::Sha224 => sha2::Sha224::digest(der).to_vec(),
            Self::Sha256 => sha2::Sha256::digest(der).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(der).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(der).to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sha256_of_the_der() {
        let cert = Certificate::generate().unwrap();
        let want: [u8; 32] = sha2::Sha256::digest(cert.der()).into();
        assert_eq!(cert.fingerprint_sha256(), want);
        assert_eq!(FingerprintHash::Sha256.digest(cert.der()), want.to_vec());
        let sdp = cert.sdp_fingerprint();
        assert!(sdp.starts_with("sha-256 "));
        assert_eq!(sdp.len(), "sha-256 ".len() + 32 * 3 - 1);
        // Two certificates never share a key, hence a fingerprint.
        let other = Certificate::generate().unwrap();
        assert_ne!(other.fingerprint_sha256(), cert.fingerprint_sha256());
        assert!(!format!("{cert:?}").contains("private"));
    }

    #[test]
    fn hash_names_are_parsed_as_sdp_spells_them() {
        assert_eq!(
            FingerprintHash::from_sdp_name("SHA-256"),
            Some(FingerprintHash::Sha256)
        );
        assert_eq!(
            FingerprintHash::from_sdp_name("sha-1"),
            Some(FingerprintHash::Sha1)
        );
        assert_eq!(FingerprintHash::from_sdp_name("md5"), None);
        assert_eq!(FingerprintHash::Sha512.digest(b"x").len(), 64);
        assert_eq!(FingerprintHash::Sha1.digest(b"x").len(), 20);
    }
}
