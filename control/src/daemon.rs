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

/// Raises the open-file limit to the hard limit: every stream holds two
/// sockets, so the usual soft limit of 1024 caps a node at ~250 calls, and a
/// controller's API and node links need descriptors too.
pub fn raise_fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r = want;
            }
        }
    }
    r.rlim_cur
}
