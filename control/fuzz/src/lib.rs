//! The checks behind rtpmesh's cargo-fuzz targets.
//!
//! Each target in `fuzz_targets/` is a three-line shim that hands libFuzzer's
//! input to one `check` here. The checks call the crates' real public APIs
//! (nothing in production code exists for fuzzing) and add the properties a
//! crash alone would not show: a decoded value re-encodes to itself, a
//! rewritten SDP parses again, every copy the forward step asks for lies
//! inside the received datagram. A panic or a failed assertion is a finding.
//!
//! Run one: `cargo +nightly fuzz run --fuzz-dir control/fuzz bencode`;
//! `scripts/fuzz-smoke.sh` runs each for a bounded time (CI does).

pub mod api_json;
pub mod bencode;
pub mod flow_step;
pub mod ng_request;
pub mod rtp_views;
pub mod sdp;
pub mod srtp;
pub mod stun;
pub mod tunnel_open;
