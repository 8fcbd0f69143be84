//! rtpmesh data plane.
#![warn(missing_docs)]
pub mod rtp;
pub mod stats;
