//! The processes: [`node::run_node`] (a media node) and
//! [`controller::run_controller`] (a regional controller). Each builds its
//! core, starts what runs beside it (workers, registry, persistence, API)
//! and serves ng on the one loop of `rtpmesh_ng_udp::server` until told to
//! stop.

pub mod controller;
pub mod node;

use crate::error::StartError;
use crate::region::store::{self, Store};

/// Opens the store a config names, or says which registry was unreachable.
fn open_store(registry: Option<&str>) -> Result<std::sync::Arc<dyn Store>, StartError> {
    store::open(registry).map_err(|source| StartError::Registry {
        url: registry.unwrap_or_default().to_owned(),
        source,
    })
}
