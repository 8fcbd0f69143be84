//! rtpmesh control plane.
#![warn(missing_docs)]
pub mod bencode;
pub mod ng;
