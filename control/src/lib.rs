//! rtpmesh control plane.
#![warn(missing_docs)]
pub mod sdp;
