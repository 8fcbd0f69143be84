//! Integration tests: robustness.

mod common;
