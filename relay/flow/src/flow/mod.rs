//! Flows: one local socket's forwarding entry, and the table a worker keeps
//! of them.
//!
//! Everything here is sans-IO: a worker hands the table the bytes, source
//! and arrival time of a datagram, and the forward step
//! ([`FlowTable::forward`]) says what
//! to send where. The table is owned by exactly one worker thread, so it
//! needs no lock: the control plane never touches it and changes it only by
//! sending the worker commands.
//!
//! A table holds three kinds of entries (see [`FlowKind`]): media flows with
//! a socket of their own, socketless flows that only a tunnel feeds, and
//! tunnel sockets, whose per-peer state (key, sequence numbers, replay
//! window) lives here too, so that the table stays the
//! worker's only per-packet state.
//!
//! Modules: `spec` (what the control plane asks for: ids, slots, outputs,
//! routes), `accept` (one flow's decision about a datagram), `table`
//! (insert, update, remove), `tunnels` (tunnel sockets: seal and open),
//! `step` (the forward step), `shortcut` (which flows the kernel's fast
//! path may forward).

mod accept;
mod secure;
mod shortcut;
mod spec;
mod step;
mod table;
mod tunnels;

#[cfg(test)]
mod tests;

pub use accept::{Flow, Verdict, CONFIRM_WINDOW};
pub use shortcut::{Shortcut, SourceRule};
pub use spec::{
    Carries, DtlsRole, DtlsSetup, Fingerprint, FlowId, FlowKind, FlowSpec, IceCredentials,
    Latching, Output, Route, Routes, SdesKeys, Security, Slot, MAX_OUTPUTS, MAX_TUNNEL_PEERS,
};
pub use step::{DtlsRecord, Event, Forwarded};
pub use table::{FlowTable, UpdateError};
