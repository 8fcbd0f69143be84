//! rtpmesh flow core: what happens to one datagram, with no IO.
//!
//! A worker (crate `rtpmesh-relay`) owns a [`flow::FlowTable`] and hands it
//! every datagram its sockets receive; the table latches or checks the
//! source, accounts ([`counters`], RFC 3550 [`stats`]), opens or seals
//! [`tunnel`] datagrams, and answers with the copies to send
//! ([`transmit::Transmit`]). Nothing here touches a socket, a thread or the
//! clock: time is passed in.
//!
//! # The step
//! [`flow::FlowTable::forward`] is the whole per-packet work:
//! * input: one datagram (the slot of the socket it arrived on, its source
//!   and bytes) and `now`;
//! * output: the transmits (one per route that has somewhere to go) and the
//!   events for the control plane (a flow latching), both left in a
//!   [`flow::Forwarded`] that the caller owns and reuses;
//! * no allocation, no lock, no system call, no clock read: the table's
//!   [`clock::MediaClock`] turns `now` into counter milliseconds, and a
//!   tunnel's sequence base is given when the tunnel is inserted.
//!
//! The caller drains both outputs after every step, before the next one
//! (the step clears them). Changes to the table (insert, update, remove)
//! are the caller's control path, between steps; they may allocate.
#![warn(missing_docs)]

pub mod clock;
pub mod counters;
pub mod flow;
pub mod rtp;
pub mod stats;
pub mod transmit;
pub mod tunnel;
