//! One direction of one leg: session keys and per-SSRC state.

use crate::{MasterKey, SrtpError, Suite};

/// One direction of one leg: derives the SRTP and SRTCP session keys from
/// a master key.
pub struct SrtpContext {
    suite: Suite,
}

impl SrtpContext {
    /// A context for `key`, its session keys derived now.
    pub fn new(key: &MasterKey) -> Self {
        Self { suite: key.suite() }
    }

    /// The suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Unprotects the SRTP packet buf[..len] in place (auth check, replay
    /// check, decrypt); returns the RTP length.
    pub fn unprotect_rtp(&mut self, _buf: &mut [u8], _len: usize) -> Result<usize, SrtpError> {
        Err(SrtpError::Malformed)
    }

    /// Same for SRTCP (E flag + 31-bit index + tag), returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, _buf: &mut [u8], _len: usize) -> Result<usize, SrtpError> {
        Err(SrtpError::Malformed)
    }

    /// Protects the RTP packet buf[..len] in place; buf.len() must be >=
    /// len + suite.rtp_overhead(); returns the SRTP length.
    pub fn protect_rtp(&mut self, _buf: &mut [u8], _len: usize) -> Result<usize, SrtpError> {
        Err(SrtpError::Malformed)
    }

    /// Protects the RTCP packet buf[..len] (encrypted, E=1, own 31-bit
    /// index per SSRC); returns the SRTCP length.
    pub fn protect_rtcp(&mut self, _buf: &mut [u8], _len: usize) -> Result<usize, SrtpError> {
        Err(SrtpError::Malformed)
    }
}

// Keys stay out of logs.
impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}
