//! Shared by this crate's interop test and the workspace's real-node SRTP
//! tests (tests/common/libsrtp.rs includes `peer.rs`).

pub mod peer;
