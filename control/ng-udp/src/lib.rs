//! ng over UDP: [`client`] speaks to a node or controller as a SIP proxy
//! does; [`server`] is the one loop that serves ng for both, with its
//! [`cookies`] cache, and [`pool`] the handler that spreads a controller's
//! requests over threads by call.
#![warn(missing_docs)]

pub mod client;
pub mod cookies;
pub mod pool;
pub mod server;
