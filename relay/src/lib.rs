//! rtpmesh data plane: a thread-per-core RTP/RTCP forwarder.
//!
//! The control plane (crate `rtpmesh-control`) binds a call's sockets and
//! hands them, with [`flow::FlowSpec`]s that say where each socket's packets
//! go, to one [`worker`]. That worker alone reads and writes those flows:
//! shared nothing, so the per-packet path takes no lock. A packet's way is
//! batch receive ([`backend`]) → look up the flow by the socket's
//! [`flow::Slot`] → latch or check the source → account ([`counters`],
//! RFC 3550 [`stats`]) → one copy per output → batch send.
//!
//! Between nodes, calls travel through [`tunnel`]s: one UDP socket per
//! worker carries many calls' packets to the peer nodes' tunnel sockets,
//! each behind an authenticated header naming the receiving node's flow.
#![warn(missing_docs)]

pub mod backend;
pub mod counters;
pub mod flow;
pub mod pool;
pub mod rtp;
pub mod stats;
pub mod tunnel;
pub mod worker;
