//! rtpmesh data plane: the threads and sockets that forward RTP/RTCP.
//!
//! The control plane (crate `rtpmesh-control`) binds a call's sockets and
//! hands them, with `FlowSpec`s that say where each socket's packets go, to
//! one [`worker`]. That worker alone reads and writes those flows: shared
//! nothing, so the per-packet path takes no lock. A packet's way is batch
//! receive ([`backend`]) → the flow core's forward step (crate
//! `rtpmesh-flow`: latch or check the source, account, seal or open a
//! tunnel, one transmit per output) → batch send. Streams the flow core
//! lets the kernel forward ([`offload`], crate `rtpmesh-fastpath`) never
//! reach the worker at all.
#![warn(missing_docs)]

pub mod backend;
pub mod clock;
pub mod handshake;
pub mod offload;
pub mod worker;
