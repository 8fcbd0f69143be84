//! SRTP and SRTCP (RFC 3711, RFC 7714) for rtpmesh's legs: the suites a
//! leg may use, their master keys, and the per-direction contexts that
//! protect and unprotect packets in place.
//!
//! Sans-IO: bytes in, bytes out, nothing allocated per packet. The
//! ciphers are RustCrypto's (`aes`, `ctr`, `aes-gcm`, `hmac`, `sha1`,
//! `subtle`): pure Rust, constant-time where it matters, AES-NI and
//! CLMUL when the CPU has them, and no system library to build.

mod context;
mod error;
mod kdf;
mod replay;
mod streams;
mod suite;
mod transform;

#[cfg(test)]
mod tests;

pub use context::SrtpContext;
pub use error::SrtpError;
pub use suite::{KeyError, MasterKey, Suite};
