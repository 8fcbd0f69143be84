//! Where the registry lives between processes.
//!
//! A store carries [`Change`]s: [`Store::publish`] writes one, every
//! [`Store::subscribe`] channel receives it (the publisher's own too), and
//! [`Store::snapshot`] returns changes that rebuild the current registry.
//! Every process keeps its own [`Registry`](super::Registry) and applies
//! what arrives; nobody polls.
//!
//! To join: subscribe first, then apply the snapshot, then whatever the
//! channel brings. Changes that arrive twice that way are harmless: adds
//! and registrations replace, heartbeats older than the record are
//! ignored, and a removal of something already gone is an error the
//! caller logs and drops.
//!
//! Stores also keep opaque per-node call records, so a node restarting can
//! recover its calls.

use std::time::Duration;

use crossbeam_channel::Receiver;

use super::model::Change;
use super::registry::RegistryError;

pub mod memory;
mod open;
pub mod redis;

pub use self::memory::MemoryStore;
pub use self::open::open;
pub use self::redis::RedisStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A record in the store is not valid JSON for its type.
    #[error("bad record in store: {0}")]
    Json(#[from] serde_json::Error),
    /// The change names something the store does not hold.
    #[error("change rejected: {0}")]
    Rejected(#[from] RegistryError),
    /// A subscriber thread could not be started.
    #[error("cannot start a subscriber thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// A subscription did not start in time.
    #[error("subscription did not start within {0:?}")]
    SubscribeTimeout(Duration),
}

/// Where the registry lives: in this process or in a shared server.
pub trait Store: Send + Sync {
    /// Records a change and delivers it to every subscriber.
    fn publish(&self, change: &Change) -> Result<(), StoreError>;

    /// Changes that rebuild the current registry (expired routes left out).
    fn snapshot(&self) -> Result<Vec<Change>, StoreError>;

    /// A channel that receives every change published from now on, by any
    /// process sharing the store. It closes when the store is dropped.
    fn subscribe(&self) -> Result<Receiver<Change>, StoreError>;

    /// Stores (or replaces) a node's opaque call record.
    fn put_call(&self, node: &str, call_id: &str, json: &str) -> Result<(), StoreError>;

    /// Deletes a node's call record (deleting a missing one is not an error).
    fn delete_call(&self, node: &str, call_id: &str) -> Result<(), StoreError>;

    /// A node's call records as `(call_id, json)`, by call id.
    fn calls(&self, node: &str) -> Result<Vec<(String, String)>, StoreError>;
}

/// Wall-clock Unix milliseconds: the registry's clock (records travel
/// between machines, so they carry wall-clock times).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
