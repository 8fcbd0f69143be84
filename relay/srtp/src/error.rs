//! Why a packet was refused.

/// Why protecting or unprotecting a packet failed. On any error the
/// context's state is as it was before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Shorter than a header plus what the suite adds.
    #[error("packet too short")]
    TooShort,
    /// The buffer has no room for the tag (and SRTCP index) after the packet.
    #[error("no room in the buffer for the tag")]
    NoRoom,
    /// The authentication tag does not match: forged, damaged or wrong key.
    #[error("authentication failed")]
    AuthFailed,
    /// The packet's index was already received (replay window).
    #[error("replayed packet")]
    Replayed,
    /// The packet's index is older than the replay window reaches.
    #[error("packet older than the replay window")]
    TooOld,
    /// Not an RTP/RTCP packet: bad version, or a header (CSRCs, extension)
    /// running past its end.
    #[error("malformed packet")]
    Malformed,
    /// The sender's SRTCP index reached 2^31 - 1: the leg must be rekeyed.
    #[error("SRTCP index exhausted; rekey")]
    IndexExhausted,
}
