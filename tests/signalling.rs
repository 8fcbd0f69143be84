//! Integration tests: signalling.

mod common;
