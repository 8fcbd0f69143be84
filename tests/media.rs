//! Integration tests: media.

mod common;
