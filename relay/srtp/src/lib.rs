//! SRTP and SRTCP (RFC 3711, RFC 7714) for rtpmesh's legs: the suites a
//! leg may use, their master keys, and the per-direction contexts that
//! protect and unprotect packets in place.
//!
//! Sans-IO: bytes in, bytes out, nothing allocated per packet.

mod context;
mod error;
mod suite;

pub use context::SrtpContext;
pub use error::SrtpError;
pub use suite::{KeyError, MasterKey, Suite};
