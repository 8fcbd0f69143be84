//! The regional registry: regions, their relay nodes and client gateways,
//! the routes endpoints register through gateways, and the latency between
//! regions; and the choice of gateway and nodes for a call.
//!
//! Sans-IO core: [`model`] (records and the [`Change`] vocabulary),
//! [`registry`] (applies changes, answers queries),
//! [`select`](mod@select) (route selection). Every process keeps its own [`Registry`] and applies the
//! changes a store delivers; nothing here reads a clock or a socket.
//!
//! # Run loop
//! A process joins by calling [`Store::subscribe`], then applying
//! [`Store::snapshot`] to a fresh [`Registry`], then applying every
//! [`Change`] the channel brings (logging and dropping those `apply`
//! refuses). To change the registry it publishes a change and applies it
//! when it comes back on its own channel, like everyone else's. Nodes
//! publish a [`Change::Heartbeat`] every [`HEARTBEAT_INTERVAL_MS`];
//! [`select()`](fn@select) is asked with the current Unix time, which
//! decides what is stale or expired.
//!
//! Stores ([`store`]): [`MemoryStore`] for one machine, [`RedisStore`]
//! for several.

pub mod model;
pub mod registry;
pub mod select;
pub mod store;

pub use model::{
    Change, Gateway, GatewayState, Latency, LatencySource, NodeInfo, Region, Route,
    HEARTBEAT_INTERVAL_MS, STALE_AFTER_MS,
};
pub use registry::{GatewayUnusable, NodeUnusable, Registry, RegistryError};
pub use select::{explain, select, CalleeLeg, Decision, NoRoute, NoRouteKind, Origin, Query};
pub use store::{MemoryStore, RedisStore, Store, StoreError};

#[cfg(test)]
mod tests;
