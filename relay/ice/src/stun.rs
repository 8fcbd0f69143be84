//! The STUN wire format (RFC 8489 §5, §14): header, attributes, and the two
//! checksums. Reads borrow the datagram; writes go into the caller's buffer.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The magic cookie every RFC 5389/8489 message carries at bytes 4..8.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// The fixed header: type, length, cookie, 96-bit transaction id.
pub const HEADER_LEN: usize = 20;
/// FINGERPRINT is the CRC-32 of the message XORed with this (RFC 8489 §14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// The length of a MESSAGE-INTEGRITY value (HMAC-SHA1).
pub(crate) const MI_LEN: usize = 20;

/// Message types the responder knows (method Binding).
pub(crate) const BINDING_REQUEST: u16 = 0x0001;
pub(crate) const BINDING_SUCCESS: u16 = 0x0101;
pub(crate) const BINDING_ERROR: u16 = 0x0111;

/// Attribute types (RFC 8489 §18.3, RFC 8445 §16.1).
pub mod attr {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME: "their-ufrag:our-ufrag" from the checked agent's view.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY: HMAC-SHA1 over the message up to it.
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES, in a 420 response.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// REALM (long-term credentials; ignored here).
    pub const REALM: u16 = 0x0014;
    /// NONCE (long-term credentials; ignored here).
    pub const NONCE: u16 = 0x0015;
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489; ICE uses the SHA-1 one, so ignored).
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    /// PASSWORD-ALGORITHM (ignored).
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    /// USERHASH (ignored).
    pub const USERHASH: u16 = 0x001E;
    /// XOR-MAPPED-ADDRESS: the request's source, in the success response.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (RFC 8445 §7.1.1).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE: the controlling agent nominates this pair.
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT: CRC-32 of the message up to it, XOR 0x5354554e; always last.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED, with the sender's tie-breaker.
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING, with the sender's tie-breaker.
    pub const ICE_CONTROLLING: u16 = 0x802A;

    /// Whether a comprehension-required type (below 0x8000) is one this
    /// responder understands (or may safely ignore), so it does not call for 420.
    pub(crate) fn is_known_required(typ: u16) -> bool {
        matches!(
            typ,
            MAPPED_ADDRESS
                | USERNAME
                | MESSAGE_INTEGRITY
                | ERROR_CODE
                | UNKNOWN_ATTRIBUTES
                | REALM
                | NONCE
                | MESSAGE_INTEGRITY_SHA256
                | PASSWORD_ALGORITHM
                | USERHASH
                | XOR_MAPPED_ADDRESS
                | PRIORITY
                | USE_CANDIDATE
        )
    }
}

/// Why a datagram got no success response.
///
/// [`StunError::response_code`] says which errors call for an error response
/// (written by [`crate::error_response`]) and which for silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Not a well-formed STUN message: short, no magic cookie, a length that
    /// disagrees with the datagram, an attribute that runs past the end, or
    /// an attribute after FINGERPRINT. Dropped silently.
    #[error("malformed STUN message")]
    Malformed,
    /// A well-formed message that is not a Binding request (a response, an
    /// indication, another method). Dropped silently.
    #[error("STUN message is not a Binding request")]
    NotRequest,
    /// A request without USERNAME or MESSAGE-INTEGRITY (400 Bad Request,
    /// RFC 8489 §9.1.3).
    #[error("STUN request lacks USERNAME or MESSAGE-INTEGRITY")]
    MissingCredentials,
    /// USERNAME is not "local_ufrag:remote_ufrag" (401 Unauthorized).
    #[error("STUN USERNAME does not name this ICE session")]
    UnknownUser,
    /// MESSAGE-INTEGRITY does not verify with the local password (401).
    #[error("STUN MESSAGE-INTEGRITY does not verify")]
    BadIntegrity,
    /// FINGERPRINT is missing or does not match: not STUN after all
    /// (RFC 8489 §7.3; ICE requires it, RFC 8445 §7.1), dropped silently.
    #[error("STUN FINGERPRINT does not match")]
    BadFingerprint,
    /// An authenticated request with a comprehension-required attribute this
    /// responder does not know (420 Unknown Attribute, RFC 8489 §6.3.1).
    #[error("STUN request has an unknown comprehension-required attribute 0x{0:04x}")]
    UnknownAttribute(u16),
    /// The output buffer is too small for the response.
    #[error("output buffer too small for the STUN response")]
    NoRoom,
}

impl StunError {
    /// The error response code RFC 8489 §6.3 calls for, or `None` when the
    /// datagram is dropped without an answer (it is not a request we can
    /// answer, or the buffer was too small).
    pub fn response_code(self) -> Option<u16> {
        match self {
            Self::MissingCredentials => Some(400),
            Self::UnknownUser | Self::BadIntegrity => Some(401),
            Self::UnknownAttribute(_) => Some(420),
            Self::Malformed | Self::NotRequest | Self::BadFingerprint | Self::NoRoom => None,
        }
    }
}

/// RFC 7983: whether a datagram is STUN by its first byte (0..=3) and the magic cookie.
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= HEADER_LEN && data[0] < 4 && data[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// A message's fixed header, checked against the datagram's length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) msg_type: u16,
    pub(crate) txid: [u8; 12],
}

impl Header {
    /// Parses and checks the header: top two bits zero, magic cookie, and a
    /// length field (a multiple of 4) that covers exactly the rest.
    pub(crate) fn parse(data: &[u8]) -> Result<Self, StunError> {
        if !is_stun(data) {
            return Err(StunError::Malformed);
        }
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if len % 4 != 0 || HEADER_LEN + len != data.len() {
            return Err(StunError::Malformed);
        }
        let mut txid = [0; 12];
        txid.copy_from_slice(&data[8..HEADER_LEN]);
        Ok(Self {
            msg_type: u16::from_be_bytes([data[0], data[1]]),
            txid,
        })
    }
}

/// One attribute: its offset in the message (of the type field), type and value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr<'a> {
    pub(crate) offset: usize,
    pub(crate) typ: u16,
    pub(crate) value: &'a [u8],
}

/// The attributes of a message whose header [`Header::parse`] accepted; an
/// attribute (with its padding) that runs past the end is an error.
pub(crate) struct Attrs<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            offset: HEADER_LEN,
        }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, StunError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.offset..)?;
        if rest.is_empty() {
            return None;
        }
        if rest.len() < 4 {
            self.offset = self.data.len();
            return Some(Err(StunError::Malformed));
        }
        let typ = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let padded = (len + 3) & !3;
        if 4 + padded > rest.len() {
            self.offset = self.data.len();
            return Some(Err(StunError::Malformed));
        }
        let attr = Attr {
            offset: self.offset,
            typ,
            value: &rest[4..4 + len],
        };
        self.offset += 4 + padded;
        Some(Ok(attr))
    }
}

/// The FINGERPRINT value of `msg[..fp_offset]`, whose header length already
/// covers the FINGERPRINT attribute.
pub(crate) fn fingerprint(msg: &[u8]) -> u32 {
    crc32fast::hash(msg) ^ FINGERPRINT_XOR
}

/// The MESSAGE-INTEGRITY value of a message whose MESSAGE-INTEGRITY
/// attribute starts at `mi_offset`: HMAC-SHA1 keyed with `key` over the
/// message up to it, the header's length field counting up to the end of
/// MESSAGE-INTEGRITY (RFC 8489 §14.5), whatever it says in `msg`.
pub(crate) fn integrity(msg: &[u8], mi_offset: usize, key: &[u8]) -> Hmac<Sha1> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    let len = u16::try_from(mi_offset + 4 + MI_LEN - HEADER_LEN).unwrap_or(u16::MAX);
    mac.update(&msg[..2]);
    mac.update(&len.to_be_bytes());
    mac.update(&msg[4..mi_offset]);
    mac
}

/// Writes a message into a caller's buffer, attribute by attribute; every
/// write is bounds-checked up front by [`Writer::new`]'s capacity check.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    /// Starts a message of type `msg_type` with `txid`, refusing a buffer
    /// shorter than `total` (the message's final length, computed by the caller).
    pub(crate) fn new(
        out: &'a mut [u8],
        total: usize,
        msg_type: u16,
        txid: &[u8; 12],
    ) -> Result<Self, StunError> {
        if out.len() < total {
            return Err(StunError::NoRoom);
        }
        out[..2].copy_from_slice(&msg_type.to_be_bytes());
        out[2..4].fill(0);
        out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out[8..HEADER_LEN].copy_from_slice(txid);
        Ok(Self {
            out,
            len: HEADER_LEN,
        })
    }

    /// Appends an attribute, zero-padding the value to 4 bytes; `value`
    /// fills it (its slice is exactly `len` bytes long).
    pub(crate) fn attr(&mut self, typ: u16, len: usize, value: impl FnOnce(&mut [u8])) {
        let at = self.len;
        self.out[at..at + 2].copy_from_slice(&typ.to_be_bytes());
        // Attribute lengths here are small constants or bounded reason phrases.
        self.out[at + 2..at + 4].copy_from_slice(&(len as u16).to_be_bytes());
        value(&mut self.out[at + 4..at + 4 + len]);
        let padded = (len + 3) & !3;
        self.out[at + 4 + len..at + 4 + padded].fill(0);
        self.len = at + 4 + padded;
        self.set_length(self.len);
    }

    fn set_length(&mut self, end: usize) {
        let len = (end - HEADER_LEN) as u16;
        self.out[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends MESSAGE-INTEGRITY keyed with `key`.
    pub(crate) fn integrity(&mut self, key: &[u8]) {
        let at = self.len;
        let tag = integrity(self.out, at, key).finalize().into_bytes();
        self.attr(attr::MESSAGE_INTEGRITY, MI_LEN, |v| v.copy_from_slice(&tag));
    }

    /// Appends FINGERPRINT and returns the message's length.
    pub(crate) fn finish(mut self) -> usize {
        let at = self.len;
        self.set_length(at + 8);
        let crc = fingerprint(&self.out[..at]);
        self.attr(attr::FINGERPRINT, 4, |v| {
            v.copy_from_slice(&crc.to_be_bytes())
        });
        self.len
    }
}

/// Verifies any STUN message's FINGERPRINT (required) and MESSAGE-INTEGRITY
/// (required, keyed with the short-term password `pwd`): what a peer does
/// with the responses [`crate::answer`] writes. For tests, fuzzing and test
/// peers; the responder itself uses [`crate::answer`].
pub fn verify(msg: &[u8], pwd: &str) -> Result<(), StunError> {
    Header::parse(msg)?;
    let (mut mi, mut fp) = (None, None);
    for a in Attrs::new(msg) {
        let a = a?;
        if fp.is_some() {
            return Err(StunError::Malformed);
        }
        match a.typ {
            attr::FINGERPRINT if a.value.len() == 4 => fp = Some(a),
            attr::MESSAGE_INTEGRITY if a.value.len() == MI_LEN && mi.is_none() => mi = Some(a),
            attr::FINGERPRINT | attr::MESSAGE_INTEGRITY if mi.is_none() => {
                return Err(StunError::Malformed)
            }
            _ => {}
        }
    }
    let fp = fp.ok_or(StunError::BadFingerprint)?;
    if fingerprint(&msg[..fp.offset]).to_be_bytes() != fp.value {
        return Err(StunError::BadFingerprint);
    }
    let mi = mi.ok_or(StunError::MissingCredentials)?;
    integrity(msg, mi.offset, pwd.as_bytes())
        .verify_slice(mi.value)
        .map_err(|_| StunError::BadIntegrity)
}
