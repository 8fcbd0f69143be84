//! Why a DTLS operation failed.

/// A DTLS-SRTP failure. [`DtlsError::is_fatal`] tells whether the session
/// is over (every error but [`DtlsError::Malformed`]).
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    /// The peer's certificate does not hash to the SDP's `a=fingerprint`.
    #[error("the peer's certificate does not match its a=fingerprint")]
    FingerprintMismatch,
    /// The handshake completed without a DTLS-SRTP protection profile
    /// (the peer sent no use_srtp extension or none in common).
    #[error("the handshake negotiated no SRTP protection profile")]
    NoSrtpProfile,
    /// The negotiated profile has no rtpmesh SRTP suite.
    #[error("unsupported SRTP protection profile {0}")]
    UnsupportedSrtpProfile(String),
    /// The SDP fingerprint's hash function is not one rtpmesh computes.
    #[error("unsupported fingerprint hash {0:?}")]
    UnsupportedHash(String),
    /// A datagram that is not well-framed DTLS; dropped, the session goes on.
    #[error("malformed DTLS datagram: {0}")]
    Malformed(&'static str),
    /// The DTLS handshake or record layer failed (a fatal alert received,
    /// a bad signature, a handshake timeout...).
    #[error("DTLS handshake failed: {0}")]
    Handshake(String),
    /// Making our certificate failed, or the peer presented none.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The peer closed the session (close_notify), or an earlier error
    /// ended it.
    #[error("the DTLS session is closed")]
    Closed,
}

impl DtlsError {
    /// Whether the session that returned this error is over.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Malformed(_))
    }
}
