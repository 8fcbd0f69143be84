//! DTLS record framing checks (RFC 6347 §4.1, RFC 9147 §4), done before
//! the datagram reaches dimpl: dimpl silently drops what it cannot parse
//! (as RFC 6347 §4.1.2.7 wants for records that fail to authenticate), but
//! a datagram that is not even framed as DTLS is worth an error the
//! caller counts.

use crate::DtlsError;

/// Bytes of a DTLS 1.2 record header: type, version, epoch, sequence
/// number, length.
const HEADER_LEN: usize = 13;

/// Whether a datagram's first byte says DTLS (20..=63, RFC 7983 §7), as
/// the demultiplexer of a port shared with STUN and SRTP sees it.
pub fn looks_like_dtls(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(20..=63))
}

/// Checks that `datagram` is a sequence of whole DTLS records.
pub(crate) fn check_framing(datagram: &[u8]) -> Result<(), DtlsError> {
    if datagram.is_empty() {
        return Err(DtlsError::Malformed("empty datagram"));
    }
    if !looks_like_dtls(datagram) {
        return Err(DtlsError::Malformed("first byte is not DTLS (RFC 7983)"));
    }
    let mut rest = datagram;
    while !rest.is_empty() {
        rest = check_record(rest)?;
    }
    Ok(())
}

/// Checks the record at the start of `rest`; returns what follows it.
fn check_record(rest: &[u8]) -> Result<&[u8], DtlsError> {
    let first = rest[0];
    // DTLS 1.3's unified header (RFC 9147 §4): 0b001CSLEE. Its length is
    // optional (L bit); without it the record runs to the datagram's end.
    if first & 0b1110_0000 == 0b0010_0000 {
        let seq_len = if first & 0b0000_1000 != 0 { 2 } else { 1 };
        let cid = first & 0b0001_0000 != 0;
        if cid {
            // No connection IDs are negotiated, so none may appear.
            return Err(DtlsError::Malformed("DTLS 1.3 record with a connection ID"));
        }
        let header = 1 + seq_len;
        if first & 0b0000_0100 == 0 {
            return if rest.len() > header {
                Ok(&[])
            } else {
                Err(DtlsError::Malformed("truncated DTLS 1.3 record"))
            };
        }
        let len_at = header;
        let Some(len) = rest.get(len_at..len_at + 2) else {
            return Err(DtlsError::Malformed("truncated DTLS 1.3 record header"));
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        return rest
            .get(len_at + 2 + len..)
            .ok_or(DtlsError::Malformed("truncated DTLS 1.3 record"));
    }
    if !(20..=25).contains(&first) {
        return Err(DtlsError::Malformed("unknown record content type"));
    }
    if rest.len() < HEADER_LEN {
        return Err(DtlsError::Malformed("truncated record header"));
    }
    // DTLS versions are 254.x (1.0 = 254.255, 1.2 = 254.253).
    if rest[1] != 0xFE {
        return Err(DtlsError::Malformed("record version is not DTLS"));
    }
    let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
    rest.get(HEADER_LEN + len..)
        .ok_or(DtlsError::Malformed("truncated record"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![content, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 1];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn whole_records_pass_and_broken_framing_is_malformed() {
        let mut two = record(22, &[1, 2, 3]);
        two.extend(record(21, &[2, 0]));
        assert!(check_framing(&two).is_ok());
        assert!(check_framing(&two[..two.len() - 1]).is_err());
        assert!(check_framing(&two[..5]).is_err());
        assert!(check_framing(&[]).is_err());
        assert!(check_framing(&[0x80, 0, 0]).is_err(), "RTP is not DTLS");
        assert!(check_framing(&[0, 1, 0, 0]).is_err(), "STUN is not DTLS");
        let mut bad_version = record(22, &[1]);
        bad_version[1] = 3;
        assert!(check_framing(&bad_version).is_err());
        assert!(
            check_framing(&record(27, &[1])).is_err(),
            "no content type 27"
        );
    }

    #[test]
    fn dtls13_unified_headers_are_framed() {
        // C=0 S=1 L=1: 2-byte sequence, 2-byte length.
        assert!(check_framing(&[0b0010_1100, 0, 1, 0, 2, 9, 9]).is_ok());
        assert!(check_framing(&[0b0010_1100, 0, 1, 0, 3, 9, 9]).is_err());
        // L=0: runs to the end.
        assert!(check_framing(&[0b0010_0000, 7, 9]).is_ok());
        assert!(check_framing(&[0b0011_0000, 7, 9]).is_err());
    }
}
