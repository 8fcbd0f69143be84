//! The regional registry: regions, their relay nodes and client gateways,
//! the routes endpoints register through gateways, and the latency between
//! regions; and the choice of gateway and nodes for a call.
//!
//! Sans-IO core: [`model`] (records and the [`Change`] vocabulary),
//! [`registry`] (applies changes, answers queries), [`select`] (route
//! selection). Every process keeps its own [`Registry`] and applies the
//! changes a store delivers; nothing here reads a clock or a socket.

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
