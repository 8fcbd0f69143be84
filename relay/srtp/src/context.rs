//! One direction of one leg: session keys and per-SSRC state.

use crate::kdf::{derive, Label};
use crate::replay::{estimate_index, ReplayWindow};
use crate::streams::Streams;
use crate::transform::Transform;
use crate::{MasterKey, SrtpError, Suite};

/// SRTCP indices are 31 bits; the last one may not be used again.
const MAX_SRTCP_INDEX: u32 = 0x7FFF_FFFF;
/// An SRTCP packet's E flag and index.
const E_INDEX_LEN: usize = 4;

/// One direction of one leg: derives the SRTP and SRTCP session keys from
/// a master key.
///
/// Everything a packet needs is ready after `new` (key schedules, HMAC
/// states, a fixed table of up to 16 SSRCs): protecting or unprotecting
/// allocates nothing. A packet that fails any check (too short, malformed,
/// replayed, too old, forged) leaves the context as it was.
pub struct SrtpContext {
    suite: Suite,
    rtp: Transform,
    rtcp: Transform,
    streams: Streams,
}

impl SrtpContext {
    /// A context for `key`, its session keys derived now (RFC 3711 §4.3,
    /// key derivation rate 0).
    pub fn new(key: &MasterKey) -> Self {
        let suite = key.suite();
        let session = |enc: Label, auth: Label, salt: Label, tag_len: usize| {
            let mut k = [0u8; 16];
            derive(key.key(), key.salt(), enc, &mut k);
            match suite {
                Suite::AeadAes128Gcm => {
                    let mut s = [0u8; 12];
                    derive(key.key(), key.salt(), salt, &mut s);
                    Transform::gcm(&k, &s)
                }
                Suite::AeadAes256Gcm => {
                    let mut k = [0u8; 32];
                    derive(key.key(), key.salt(), enc, &mut k);
                    let mut s = [0u8; 12];
                    derive(key.key(), key.salt(), salt, &mut s);
                    Transform::gcm(&k, &s)
                }
                Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 => {
                    let mut s = [0u8; 14];
                    derive(key.key(), key.salt(), salt, &mut s);
                    let mut a = [0u8; 20];
                    derive(key.key(), key.salt(), auth, &mut a);
                    Transform::cm(&k, &s, &a, tag_len)
                }
            }
        };
        // SRTCP's tag is 80 bits in both HMAC suites (RFC 4568 §6.2.1).
        let rtcp_tag = suite.rtcp_overhead() - E_INDEX_LEN;
        Self {
            suite,
            rtp: session(
                Label::RtpEncryption,
                Label::RtpAuth,
                Label::RtpSalt,
                suite.rtp_overhead(),
            ),
            rtcp: session(
                Label::RtcpEncryption,
                Label::RtcpAuth,
                Label::RtcpSalt,
                rtcp_tag,
            ),
            streams: Streams::new(),
        }
    }

    /// The suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Unprotects the SRTP packet buf[..len] in place (auth check, replay
    /// check, decrypt); returns the RTP length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let buf = buf.get_mut(..len).ok_or(SrtpError::TooShort)?;
        let tag_len = self.rtp.tag_len();
        let plen = len.checked_sub(tag_len).ok_or(SrtpError::TooShort)?;
        let (pkt, tag) = buf.split_at_mut(plen);
        let (hlen, seq, ssrc) = rtp_header(pkt)?;
        let mut stream = self.streams.peek(ssrc);
        let index = match &stream.rtp_in {
            Some(w) => {
                let index = estimate_index(w.highest(), seq);
                w.check(index)?;
                index
            }
            // A new SSRC starts at ROC 0 (RFC 3711 §3.3.1).
            None => u64::from(seq),
        };
        self.rtp.unprotect_rtp(pkt, hlen, tag, ssrc, index)?;
        match &mut stream.rtp_in {
            Some(w) => w.accept(index),
            None => stream.rtp_in = Some(ReplayWindow::starting_at(index)),
        }
        self.streams.commit(stream);
        Ok(plen)
    }

    /// Same for SRTCP (E flag + 31-bit index + tag), returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let buf = buf.get_mut(..len).ok_or(SrtpError::TooShort)?;
        let trailer = self.rtcp.tag_len() + E_INDEX_LEN;
        let plen = len
            .checked_sub(trailer)
            .filter(|&p| p >= 8)
            .ok_or(SrtpError::TooShort)?;
        let ssrc = rtcp_header(&buf[..plen])?;
        // CM: E||index, then tag. GCM: tag, then E||index (RFC 7714 §9.3).
        let at = match self.rtcp {
            Transform::Cm { .. } => plen,
            Transform::Gcm { .. } => len - E_INDEX_LEN,
        };
        let e_index = u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        let index = u64::from(e_index & MAX_SRTCP_INDEX);
        let mut stream = self.streams.peek(ssrc);
        if let Some(w) = &stream.rtcp_in {
            w.check(index)?;
        }
        self.rtcp.unprotect_rtcp(buf, plen, ssrc, e_index)?;
        match &mut stream.rtcp_in {
            Some(w) => w.accept(index),
            None => stream.rtcp_in = Some(ReplayWindow::starting_at(index)),
        }
        self.streams.commit(stream);
        Ok(plen)
    }

    /// Protects the RTP packet buf[..len] in place; buf.len() must be >=
    /// len + suite.rtp_overhead(); returns the SRTP length.
    ///
    /// The ROC follows the sender's sequence numbers across wraps. A
    /// sequence number whose index was already sent (or is older than the
    /// window) is refused: sending it again would reuse keystream.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.rtp.tag_len();
        let pkt = buf.get(..len).ok_or(SrtpError::TooShort)?;
        let (hlen, seq, ssrc) = rtp_header(pkt)?;
        if buf.len() < len + tag_len {
            return Err(SrtpError::NoRoom);
        }
        let mut stream = self.streams.peek(ssrc);
        let index = match &stream.rtp_out {
            Some(w) => {
                let index = estimate_index(w.highest(), seq);
                w.check(index)?;
                index
            }
            None => u64::from(seq),
        };
        let (pkt, rest) = buf.split_at_mut(len);
        self.rtp
            .protect_rtp(pkt, hlen, &mut rest[..tag_len], ssrc, index);
        match &mut stream.rtp_out {
            Some(w) => w.accept(index),
            None => stream.rtp_out = Some(ReplayWindow::starting_at(index)),
        }
        self.streams.commit(stream);
        Ok(len + tag_len)
    }

    /// Protects the RTCP packet buf[..len] (encrypted, E=1, own 31-bit
    /// index per SSRC, the first being 1 as libsrtp has it); returns the
    /// SRTCP length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let trailer = self.rtcp.tag_len() + E_INDEX_LEN;
        let ssrc = rtcp_header(buf.get(..len).ok_or(SrtpError::TooShort)?)?;
        if buf.len() < len + trailer {
            return Err(SrtpError::NoRoom);
        }
        let mut stream = self.streams.peek(ssrc);
        if stream.rtcp_out >= MAX_SRTCP_INDEX {
            return Err(SrtpError::IndexExhausted);
        }
        stream.rtcp_out += 1;
        let (pkt, rest) = buf.split_at_mut(len);
        self.rtcp
            .protect_rtcp(pkt, &mut rest[..trailer], ssrc, stream.rtcp_out);
        self.streams.commit(stream);
        Ok(len + trailer)
    }
}

/// An RTP header's length (CSRCs and extension included: encryption starts
/// after them), sequence number and SSRC.
fn rtp_header(pkt: &[u8]) -> Result<(usize, u16, u32), SrtpError> {
    if pkt.len() < 12 {
        return Err(SrtpError::TooShort);
    }
    if pkt[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut hlen = 12 + 4 * usize::from(pkt[0] & 0x0F);
    if pkt[0] & 0x10 != 0 {
        let words = pkt.get(hlen + 2..hlen + 4).ok_or(SrtpError::Malformed)?;
        hlen += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if hlen > pkt.len() {
        return Err(SrtpError::Malformed);
    }
    let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
    let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
    Ok((hlen, seq, ssrc))
}

/// The sender SSRC of an RTCP (compound) packet; its first packet's header.
fn rtcp_header(pkt: &[u8]) -> Result<u32, SrtpError> {
    if pkt.len() < 8 {
        return Err(SrtpError::TooShort);
    }
    if pkt[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    Ok(u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]))
}

// Keys stay out of logs.
impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("ssrcs", &self.streams.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srtcp_index_stops_at_2_31_minus_1() {
        let key = MasterKey::new(Suite::AesCm128HmacSha1_80, &[1; 30]).unwrap();
        let mut ctx = SrtpContext::new(&key);
        let mut s = ctx.streams.peek(9);
        s.rtcp_out = MAX_SRTCP_INDEX - 1;
        ctx.streams.commit(s);
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 9];
        let mut buf = [0u8; 64];
        buf[..8].copy_from_slice(&rr);
        let n = ctx.protect_rtcp(&mut buf, 8).unwrap();
        assert_eq!(
            buf[8..12],
            0xFFFF_FFFFu32.to_be_bytes()[..],
            "E=1, index 2^31-1"
        );
        assert_eq!(n, 8 + 14);
        buf[..8].copy_from_slice(&rr);
        assert_eq!(
            ctx.protect_rtcp(&mut buf, 8),
            Err(SrtpError::IndexExhausted)
        );
    }
}
