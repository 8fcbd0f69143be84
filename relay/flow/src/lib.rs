//! rtpmesh flow core: what happens to one datagram, with no IO.
//!
//! A worker (crate `rtpmesh-relay`) owns a [`flow::FlowTable`] and hands it
//! every datagram its sockets receive; the table latches or checks the
//! source, accounts ([`counters`], RFC 3550 [`stats`]), opens or seals
//! [`tunnel`] datagrams, and answers with the copies to send
//! ([`transmit::Transmit`]). Nothing here touches a socket, a thread or the
//! clock: time is passed in.
#![warn(missing_docs)]

pub mod counters;
pub mod flow;
pub mod rtp;
pub mod stats;
pub mod transmit;
pub mod tunnel;
