//! Loading the kernel fast path for a node, and falling back to the
//! sockets when it cannot be had.

use std::sync::Arc;
use std::time::Duration;

use rtpmesh_fastpath::{FastPath, Mode};

use crate::config::{Config, FastPathSetting};

/// Entries the program's maps are sized for: one per stream direction in
/// the kernel at once (a call with audio and video takes four). The maps
/// cost about 14 MB of locked kernel memory at this size.
pub const ENTRIES: u32 = 65_536;

/// How often workers fold the kernel's counters into their flows and move
/// newly settled streams into it: the most `query` and the media timeout
/// lag behind the kernel.
pub const SYNC_EVERY: Duration = Duration::from_millis(100);

/// Loads the fast path as `config` asks, or says once, at start, why the
/// sockets will forward everything.
pub(crate) fn load(config: &Config) -> Option<Arc<FastPath>> {
    let mode = match config.fast_path {
        FastPathSetting::Off => return None,
        FastPathSetting::Auto | FastPathSetting::Tc => Mode::Tc,
        FastPathSetting::Xdp => Mode::Xdp,
    };
    let local = match config.interface(false) {
        None => Err("no IPv4 media interface (the fast path is IPv4 only)".to_string()),
        Some(i) if i.local.is_unspecified() => Err(format!(
            "media sockets bind {} (a wildcard), which the program cannot match: give --interface a specific address",
            i.local
        )),
        Some(i) => Ok(i.local),
    };
    let local = match local {
        Ok(l) => l,
        Err(why) => {
            tracing::warn!(reason = %why, "fast path off; the sockets forward everything");
            return None;
        }
    };
    // Media for a loopback address arrives on `lo` only; any other address
    // may arrive on any interface (Linux answers for its addresses on all).
    let only_lo = ["lo".to_string()];
    let interfaces = local.is_loopback().then_some(&only_lo[..]);
    let epoch = rtpmesh_relay::clock::media_epoch_ns();
    match FastPath::load(mode, ENTRIES, interfaces, epoch) {
        Ok(fp) => {
            tracing::info!(mode = ?fp.mode(), interfaces = ?fp.interfaces(), entries = ENTRIES,
                program = fp.program_id(),
                "fast path on: latched streams are forwarded in the kernel");
            Some(Arc::new(fp))
        }
        Err(e) => {
            let level_auto = config.fast_path == FastPathSetting::Auto;
            if level_auto {
                tracing::info!(error = %e, "fast path off (needs CAP_BPF and CAP_NET_ADMIN); the sockets forward everything");
            } else {
                tracing::warn!(error = %e, "fast path off; the sockets forward everything");
            }
            None
        }
    }
}
