//! Opening the store a configuration names.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{MemoryStore, RedisStore, Store, StoreError};

/// How long a Redis registry may take to come up.
const CONNECT_GRACE: Duration = Duration::from_secs(30);

/// The store `registry` names: `None`, empty or `memory` for the embedded
/// one, else a Redis URL, retried for a while: a node or controller may
/// start before the registry is up (boot order, a Redis restart). The error
/// is the last connection attempt's.
pub fn open(registry: Option<&str>) -> Result<Arc<dyn Store>, StoreError> {
    let url = match registry {
        None | Some("") | Some("memory") => return Ok(Arc::new(MemoryStore::new())),
        Some(url) => url,
    };
    let deadline = Instant::now() + CONNECT_GRACE;
    let mut wait = Duration::from_millis(100);
    loop {
        match RedisStore::connect(url) {
            Ok(s) => return Ok(Arc::new(s)),
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(%url, error = %e, "registry not reachable yet, retrying");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}
