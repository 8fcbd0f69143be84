//! A fake [`ApiBackend`] for tests of the API and of its clients: a
//! registry in a mutex that applies what is published at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{serve, ApiBackend, ApiHandle};
use crate::region::{select, Change, Decision, NoRoute, NodeInfo, Query, Region, Registry};

/// The fake backend's clock.
pub const NOW: u64 = 1_800_000_000_000;

/// The bearer token [`start`] configures when asked to.
pub const TOKEN: &str = "s3cret-token";

/// A registry in a mutex: what is published is applied to it at once, as
/// if the store had delivered it back.
#[derive(Default)]
pub struct FakeBackend {
    reg: Mutex<Registry>,
    /// Every change published, in order.
    pub published: Mutex<Vec<Change>>,
    /// Makes `publish` fail as an unreachable store would.
    pub fail_publish: AtomicBool,
    /// Makes `explain` panic, as a bug in the backend would.
    pub panic_on_explain: AtomicBool,
    /// `(call id, caller node)` of every decision pinned.
    pub pinned: Mutex<Vec<(String, String)>>,
}

impl FakeBackend {
    /// Region `eu` with a fresh node `eu-1`, region `us` with `us-1`.
    pub fn seeded() -> Arc<Self> {
        let mut reg = Registry::new();
        for r in ["eu", "us"] {
            reg.apply(&Change::AddRegion(Region { name: r.into() }))
                .unwrap();
            reg.apply(&Change::RegisterNode(NodeInfo {
                id: format!("{r}-1"),
                region: r.into(),
                ng: "127.0.0.1:2223".parse().unwrap(),
                tunnel: "127.0.0.1:3223".parse().unwrap(),
                workers: 2,
                capacity: 100,
                load: 3,
                draining: false,
                last_seen_ms: NOW - 1000,
            }))
            .unwrap();
        }
        Arc::new(Self {
            reg: Mutex::new(reg),
            ..Self::default()
        })
    }

    /// How many changes were published.
    pub fn published(&self) -> usize {
        self.published.lock().unwrap().len()
    }
}

impl ApiBackend for FakeBackend {
    fn registry(&self) -> Registry {
        self.reg.lock().unwrap().clone()
    }

    fn publish(&self, change: Change) -> Result<(), String> {
        if self.fail_publish.load(Ordering::SeqCst) {
            return Err("store unreachable".into());
        }
        self.reg
            .lock()
            .unwrap()
            .apply(&change)
            .map_err(|e| e.to_string())?;
        self.published.lock().unwrap().push(change);
        Ok(())
    }

    fn explain(&self, query: &Query) -> Result<Decision, NoRoute> {
        assert!(!self.panic_on_explain.load(Ordering::SeqCst), "backend bug");
        select(&self.reg.lock().unwrap(), NOW, query)
    }

    fn route_for_call(&self, query: &Query, call_id: Option<&str>) -> Result<Decision, NoRoute> {
        let d = select(&self.reg.lock().unwrap(), NOW, query)?;
        if let Some(c) = call_id {
            self.pinned
                .lock()
                .unwrap()
                .push((c.to_owned(), d.node.clone()));
        }
        Ok(d)
    }

    fn now_ms(&self) -> u64 {
        NOW
    }
}

/// Serves the API on an ephemeral loopback port over `backend`.
pub fn start(backend: Arc<FakeBackend>, token: Option<&str>) -> ApiHandle {
    serve(
        "127.0.0.1:0".parse().unwrap(),
        token.map(str::to_owned),
        backend,
    )
    .unwrap()
}
