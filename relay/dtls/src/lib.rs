//! DTLS-SRTP (RFC 5763, RFC 5764) for rtpmesh's WebRTC legs: the node's
//! certificate and a sans-IO session per leg that the relay's worker
//! drives — datagrams in, datagrams out, time passed in, SRTP master keys
//! out.
//!
//! The DTLS state machine is [dimpl](https://docs.rs/dimpl) (pure Rust,
//! sans-IO, by str0m's author and used by str0m) with its RustCrypto
//! provider, so building needs no system library. This crate adds what
//! WebRTC asks on top of it: the peer's certificate checked against the
//! SDP fingerprint before any key leaves, the exported keying material
//! split per RFC 5764 §4.2 into [`rtpmesh_srtp::MasterKey`]s, framing
//! checks that turn malformed datagrams into errors, and a session state
//! the caller can read.
//!
//! No threads, no sleeping: the caller passes `now`. dimpl reads the
//! wall clock once per process (to put a Unix time in its hello randoms);
//! [`Certificate::generate`] reads it for the validity period.

mod cert;
mod error;
mod record;
mod session;

pub use cert::{Certificate, FingerprintHash};
pub use error::DtlsError;
pub use record::looks_like_dtls;
pub use session::{Role, Session, SrtpKeys};
