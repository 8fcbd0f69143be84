//! The ICE-lite responder: checks a Binding request and writes its answer.
//!
//! Checks go in RFC 8489 §6.3's order: the message is well formed and a
//! Binding request; FINGERPRINT is there and matches, or the datagram was
//! not STUN (dropped); USERNAME and MESSAGE-INTEGRITY are present (400), name
//! this session (401) and verify with our password (401); only then do
//! unknown comprehension-required attributes count (420). Attributes after
//! MESSAGE-INTEGRITY other than FINGERPRINT are not authenticated and are
//! ignored (RFC 8489 §14.5), so a USE-CANDIDATE there does not nominate.
//!
//! FINGERPRINT is required: RFC 8445 §7.1 makes every ICE agent send it, and
//! rtpengine 10.5 drops a request without one (tried: no answer), so does this.
//!
//! rtpengine 10.5 answers 420 before it looks at the credentials (tried: an
//! unknown attribute with a bad USERNAME or MESSAGE-INTEGRITY gets 420); this
//! responder keeps RFC 8489 §6.3.1's order, so a stranger learns nothing but
//! 401. Its reason phrases are rtpengine's ("Bad request", "Unauthorized",
//! "Unknown attribute"); its 420 also carries MESSAGE-INTEGRITY, as RFC 8489
//! §9.1.3 wants for a response to an authenticated request.

use std::net::{IpAddr, SocketAddr};

use hmac::Mac;

use crate::stun::{
    attr, fingerprint, integrity, Attrs, Header, StunError, Writer, BINDING_ERROR, BINDING_REQUEST,
    BINDING_SUCCESS, HEADER_LEN, MAGIC_COOKIE, MI_LEN,
};

/// The outcome of a valid Binding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// The length of the success response written at the start of `out`.
    pub len: usize,
    /// The request carried USE-CANDIDATE (authenticated): the controlling
    /// agent nominates the pair this request arrived on.
    pub use_candidate: bool,
    /// The request carried ICE-CONTROLLING. A lite agent is always controlled
    /// (RFC 8445 §6.1.1), and its full peer must be controlling. A peer that
    /// says otherwise (ICE-CONTROLLED, or neither) is still answered, with no
    /// 487 Role Conflict (a lite agent cannot switch roles); the caller may
    /// decide not to trust its nominations.
    pub controlling: bool,
}

/// How many unknown comprehension-required types a 420 response lists.
const MAX_UNKNOWN: usize = 8;

/// What a request says, gathered in one walk over its attributes.
#[derive(Debug, Default)]
struct Request<'a> {
    username: Option<&'a [u8]>,
    integrity: Option<(usize, &'a [u8])>,
    fingerprint: Option<(usize, &'a [u8])>,
    use_candidate: bool,
    controlling: bool,
    /// The first unknown comprehension-required type before MESSAGE-INTEGRITY.
    unknown: Option<u16>,
}

impl<'a> Request<'a> {
    /// Walks the attributes of a message with a valid header.
    fn gather(data: &'a [u8]) -> Result<Self, StunError> {
        let mut req = Self::default();
        for a in Attrs::new(data) {
            let a = a?;
            if req.fingerprint.is_some() {
                // FINGERPRINT is the last attribute (RFC 8489 §14.7).
                return Err(StunError::Malformed);
            }
            if a.typ == attr::FINGERPRINT {
                if a.value.len() != 4 {
                    return Err(StunError::Malformed);
                }
                req.fingerprint = Some((a.offset, a.value));
                continue;
            }
            if req.integrity.is_some() {
                continue; // not covered by MESSAGE-INTEGRITY: ignored
            }
            match a.typ {
                attr::MESSAGE_INTEGRITY if a.value.len() != MI_LEN => {
                    return Err(StunError::Malformed)
                }
                attr::MESSAGE_INTEGRITY => req.integrity = Some((a.offset, a.value)),
                // Only the first of a repeated attribute counts (RFC 8489 §14).
                attr::USERNAME if req.username.is_none() => req.username = Some(a.value),
                attr::USE_CANDIDATE => req.use_candidate = true,
                attr::ICE_CONTROLLING => req.controlling = true,
                t if t < 0x8000 && !attr::is_known_required(t) && req.unknown.is_none() => {
                    req.unknown = Some(t)
                }
                _ => {}
            }
        }
        Ok(req)
    }
}

/// Checks a Binding request up to (not including) what the answer needs:
/// everything but the output buffer.
fn check<'a>(
    req: &'a [u8],
    local_ufrag: &str,
    local_pwd: &str,
    remote_ufrag: Option<&str>,
) -> Result<(Header, Request<'a>), StunError> {
    let header = Header::parse(req)?;
    if header.msg_type != BINDING_REQUEST {
        return Err(StunError::NotRequest);
    }
    let r = Request::gather(req)?;
    match r.fingerprint {
        Some((at, value)) if fingerprint(&req[..at]).to_be_bytes() == value => {}
        _ => return Err(StunError::BadFingerprint),
    }
    let (Some(username), Some((mi_at, mi))) = (r.username, r.integrity) else {
        return Err(StunError::MissingCredentials);
    };
    if !username_matches(username, local_ufrag, remote_ufrag) {
        return Err(StunError::UnknownUser);
    }
    integrity(req, mi_at, local_pwd.as_bytes())
        .verify_slice(mi)
        .map_err(|_| StunError::BadIntegrity)?;
    if let Some(t) = r.unknown {
        return Err(StunError::UnknownAttribute(t));
    }
    Ok((header, r))
}

/// USERNAME of a check sent to us is "our-ufrag:their-ufrag" (RFC 8445 §7.2.2).
fn username_matches(username: &[u8], local: &str, remote: Option<&str>) -> bool {
    let Some(colon) = username.iter().position(|&b| b == b':') else {
        return false;
    };
    let (ours, theirs) = (&username[..colon], &username[colon + 1..]);
    // An empty peer part is refused even before the peer's SDP named it
    // (rtpengine 10.5 answers "ufrag:" with 401 too).
    ours == local.as_bytes() && !theirs.is_empty() && remote.is_none_or(|r| theirs == r.as_bytes())
}

/// Answers a Binding request `req` from `src` to the local ICE credentials: checks USERNAME
/// ("local_ufrag:remote_ufrag", the remote part checked when `remote_ufrag` is Some), MESSAGE-INTEGRITY
/// (HMAC-SHA1 keyed with local_pwd) and FINGERPRINT (CRC-32 ^ 0x5354554e), and writes the success response
/// (same transaction id, XOR-MAPPED-ADDRESS of src, MESSAGE-INTEGRITY, FINGERPRINT) into `out`.
/// Allocates nothing.
///
/// A refused request writes nothing: [`StunError::response_code`] says
/// whether an error response is due and [`error_response`] writes it. An
/// IPv4-mapped IPv6 `src` (a dual-stack socket) is answered as the IPv4
/// address it is, so the browser matches it with its IPv4 candidate. The
/// success response is 64 bytes for an IPv4 source, 76 for IPv6.
pub fn answer(
    req: &[u8],
    src: SocketAddr,
    local_ufrag: &str,
    local_pwd: &str,
    remote_ufrag: Option<&str>,
    out: &mut [u8],
) -> Result<Answered, StunError> {
    let (header, r) = check(req, local_ufrag, local_pwd, remote_ufrag)?;
    let ip = src.ip().to_canonical();
    let addr_len = match ip {
        IpAddr::V4(_) => 8,
        IpAddr::V6(_) => 20,
    };
    let total = HEADER_LEN + (4 + addr_len) + (4 + MI_LEN) + 8;
    let mut w = Writer::new(out, total, BINDING_SUCCESS, &header.txid)?;
    w.attr(attr::XOR_MAPPED_ADDRESS, addr_len, |v| {
        xor_address(v, ip, src.port(), &header.txid)
    });
    w.integrity(local_pwd.as_bytes());
    let len = w.finish();
    debug_assert_eq!(len, total);
    Ok(Answered {
        len,
        use_candidate: r.use_candidate,
        controlling: r.controlling,
    })
}

/// Fills an XOR-MAPPED-ADDRESS value (RFC 8489 §14.2): the port XORed with
/// the cookie's top half, the address with the cookie (and the transaction id
/// for IPv6).
fn xor_address(v: &mut [u8], ip: IpAddr, port: u16, txid: &[u8; 12]) {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    v[0] = 0;
    v[2..4].copy_from_slice(&(port ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
    let mut octets = [0; 16];
    let (family, octets) = match ip {
        IpAddr::V4(a) => {
            octets[..4].copy_from_slice(&a.octets());
            (1, &octets[..4])
        }
        IpAddr::V6(a) => {
            octets.copy_from_slice(&a.octets());
            (2, &octets[..])
        }
    };
    v[1] = family;
    let pad = cookie.iter().chain(txid.iter());
    for ((dst, &b), &k) in v[4..].iter_mut().zip(octets).zip(pad) {
        *dst = b ^ k;
    }
}

/// Writes into `out` the error response RFC 8489 §6.3 calls for when
/// [`answer`] refused `req` with `err`, and returns its length; `None` when
/// `err` calls for silence (see [`StunError::response_code`]) or `out` is too
/// small. Allocates nothing.
///
/// 400 and 401 carry ERROR-CODE and FINGERPRINT only: the request did not
/// prove it knows our password, so the response is not integrity-protected
/// (RFC 8489 §9.1.3). A 420 answers an authenticated request: it lists the
/// unknown comprehension-required types (up to 8) and carries
/// MESSAGE-INTEGRITY keyed with `local_pwd`.
pub fn error_response(
    req: &[u8],
    err: StunError,
    local_pwd: &str,
    out: &mut [u8],
) -> Option<usize> {
    let code = err.response_code()?;
    let header = Header::parse(req).ok()?;
    if header.msg_type != BINDING_REQUEST {
        return None;
    }
    let reason = reason(code);
    let mut unknown = [0u16; MAX_UNKNOWN];
    let mut n_unknown = 0;
    if code == 420 {
        for a in Attrs::new(req) {
            let a = a.ok()?;
            if a.typ == attr::MESSAGE_INTEGRITY || a.typ == attr::FINGERPRINT {
                break;
            }
            if a.typ < 0x8000 && !attr::is_known_required(a.typ) && n_unknown < MAX_UNKNOWN {
                unknown[n_unknown] = a.typ;
                n_unknown += 1;
            }
        }
    }
    let padded = |n: usize| (n + 3) & !3;
    let mut total = HEADER_LEN + 4 + padded(4 + reason.len()) + 8;
    if code == 420 {
        total += 4 + padded(2 * n_unknown) + 4 + MI_LEN;
    }
    let mut w = Writer::new(out, total, BINDING_ERROR, &header.txid).ok()?;
    w.attr(attr::ERROR_CODE, 4 + reason.len(), |v| {
        v[..2].fill(0);
        v[2] = (code / 100) as u8;
        v[3] = (code % 100) as u8;
        v[4..].copy_from_slice(reason.as_bytes());
    });
    if code == 420 {
        w.attr(attr::UNKNOWN_ATTRIBUTES, 2 * n_unknown, |v| {
            for (dst, t) in v.chunks_exact_mut(2).zip(&unknown) {
                dst.copy_from_slice(&t.to_be_bytes());
            }
        });
        w.integrity(local_pwd.as_bytes());
    }
    Some(w.finish())
}

/// The reason phrases, as rtpengine 10.5 writes them (RFC 8489 §14.8 only
/// suggests its own).
fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad request",
        401 => "Unauthorized",
        420 => "Unknown attribute",
        _ => "Server Error",
    }
}
