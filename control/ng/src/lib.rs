//! The ng protocol's vocabulary, with no IO: [`bencode`], typed requests and
//! replies ([`ng`]), and SDP parsing and rewriting ([`sdp`]).
//!
//! What rtpengine 10.5 does on the wire, where these follow it, is written
//! down in `NG-NOTES.md` and `SDP-NOTES.md` beside this crate.
#![warn(missing_docs)]

pub mod bencode;
pub mod ng;
pub mod sdp;
