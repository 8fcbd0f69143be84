//! ng over UDP: [`client`] speaks to a node or controller as a SIP proxy
//! does.
#![warn(missing_docs)]

pub mod client;
