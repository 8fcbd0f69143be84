//! rtpmesh data plane.
#![warn(missing_docs)]
