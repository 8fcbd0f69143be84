//! rtpmesh control plane.
#![warn(missing_docs)]
