//! The request and reply vocabulary the router and the handlers share:
//! the request as read, the reply to send, the errors and how each maps
//! to a status, and the decoding of paths, query strings and bodies.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::ErrorReply;
use crate::region::RegistryError;

/// Largest request body accepted; the biggest real one is a few hundred
/// bytes.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// A request, as the server read it.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The request target: path and query, still percent-encoded.
    pub(crate) url: &'a str,
    /// The `Authorization` header, if any.
    pub(crate) authorization: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

/// A status and its JSON body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
    /// `application/json` but for the few plain-text answers meant for
    /// SIP proxies.
    pub(crate) content_type: &'static str,
}

impl Reply {
    /// A plain-text reply (for proxies that read one line, not JSON).
    pub(crate) fn text(status: u16, body: String) -> Self {
        Self {
            status,
            body,
            content_type: "text/plain; charset=utf-8",
        }
    }

    pub(crate) fn json(status: u16, body: &impl Serialize) -> Self {
        // Our reply types are plain structs and strings: serialising them
        // cannot fail, but an error body is still better than a panic.
        let body = serde_json::to_string(body)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode reply: {e}\"}}"));
        Self {
            status,
            body,
            content_type: "application/json",
        }
    }
}

/// Why a request fails; each maps to one status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ApiError {
    /// No bearer token, or the wrong one.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// No such path, or no such object at that path.
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not for this method.
    #[error("method {0} not allowed here")]
    MethodNotAllowed(String),
    /// The request is malformed or breaks a rule.
    #[error("{0}")]
    BadRequest(String),
    /// The change conflicts with the registry's state.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than [`MAX_BODY`].
    #[error("request body larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The body did not arrive in time.
    #[error("request body not received in time")]
    BodyTimeout,
    /// The backend could not publish the change.
    #[error("cannot publish the change: {0}")]
    Unavailable(String),
    /// A handler panicked; the server goes on.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized => 401,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::BodyTimeout => 408,
            Self::Conflict(_) => 409,
            Self::TooLarge => 413,
            Self::Internal => 500,
            Self::Unavailable(_) => 503,
        }
    }

    pub(crate) fn reply(&self) -> Reply {
        Reply::json(
            self.status(),
            &ErrorReply {
                error: self.to_string(),
            },
        )
    }
}

impl From<RegistryError> for ApiError {
    /// The dry run's verdict. A missing path object was answered 404
    /// before the dry run, so what remains is a bad reference in the
    /// body (400) or a region still in use (409).
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::RegionInUse(_) => Self::Conflict(e.to_string()),
            _ => Self::BadRequest(e.to_string()),
        }
    }
}

pub(crate) type ApiResult = Result<Reply, ApiError>;

/// Decodes `%XX` escapes (and `+` as space when `plus` is set, as in
/// query strings) into UTF-8 text.
pub(crate) fn percent_decode(s: &str, plus: bool) -> Result<String, ApiError> {
    let bad = || ApiError::BadRequest(format!("bad percent-encoding in {s:?}"));
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The query string as decoded `(key, value)` pairs.
pub(crate) fn query_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    query_pairs_with(query, true)
}

/// The query string as decoded `(key, value)` pairs, `+` as itself: SIP
/// user parts (`+4930123`) and Call-IDs carry it, and Kamailio's
/// `{s.escape.param}` leaves it unescaped.
pub(crate) fn query_pairs_sip(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    query_pairs_with(query, false)
}

fn query_pairs_with(query: &str, plus: bool) -> Result<Vec<(String, String)>, ApiError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((percent_decode(k, plus)?, percent_decode(v, plus)?))
        })
        .collect()
}

/// Parses a JSON request body into `T`, with a message a person can act on.
pub(crate) fn body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("missing JSON body".into()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("bad JSON body: {e}")))
}
