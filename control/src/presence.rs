//! A node's presence in the regional registry: it registers itself,
//! reports its load with heartbeats, probes the latency to the other
//! regions' nodes, and says goodbye when it stops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::StartError;
use crate::region::store::{unix_ms, Store, StoreError};
use crate::region::{Change, Latency, LatencySource, NodeInfo, Registry};
use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng_udp::client::NgClient;

/// How many probe results the latency estimate looks back on: the
/// smallest of them is the path's latency without queueing noise.
const PROBE_WINDOW: usize = 5;

/// The running presence; dropping it deregisters the node.
pub struct Presence {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    store: Arc<dyn Store>,
    id: String,
}

/// What a node reports about itself.
pub struct Report {
    /// The node's record (its `load` and `last_seen_ms` are filled in).
    pub info: NodeInfo,
    /// Current calls, kept up to date by the node's loop.
    pub load: Arc<AtomicU32>,
    /// Time between heartbeats.
    pub interval: Duration,
}

impl Presence {
    /// Registers the node and starts heartbeats and probes.
    pub fn start(store: Arc<dyn Store>, report: Report) -> Result<Self, StartError> {
        let mut info = report.info.clone();
        info.last_seen_ms = unix_ms();
        let (id, region) = (info.id.clone(), info.region.clone());
        let registry = Arc::new(Mutex::new(Registry::new()));
        let changes = store.subscribe()?;
        {
            let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
            for ch in store.snapshot()? {
                let _ = reg.apply(&ch);
            }
        }
        register(&*store, &info)?;
        {
            let registry = registry.clone();
            std::thread::Builder::new()
                .name("registry".into())
                .spawn(move || {
                    for ch in changes {
                        let _ = registry
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .apply(&ch);
                    }
                })?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, store) = (stop.clone(), store.clone());
            std::thread::Builder::new()
                .name("heartbeat".into())
                .spawn(move || beat(&*store, &report, &info, &registry, &stop))?
        };
        tracing::info!(node = %id, region = %region, "registered in the regional registry");
        Ok(Self {
            stop,
            thread: Some(thread),
            store,
            id,
        })
    }
}

/// How long a node waits for its region to appear in the registry: a
/// node may start before the controller has written the seed (boot order).
const REGION_WAIT: Duration = Duration::from_secs(30);

/// Publishes the node's registration, retrying while the store refuses it
/// (its region not there yet) for at most [`REGION_WAIT`].
fn register(store: &dyn Store, info: &NodeInfo) -> Result<(), StartError> {
    let deadline = Instant::now() + REGION_WAIT;
    let mut wait = Duration::from_millis(100);
    loop {
        match store.publish(&Change::RegisterNode(info.clone())) {
            Err(StoreError::Rejected(e)) if Instant::now() < deadline => {
                tracing::warn!(node = %info.id, error = %e, "registration refused, retrying");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            done => return Ok(done?),
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // New calls go elsewhere at once, not after the heartbeat lapses.
        match self.store.publish(&Change::RemoveNode {
            id: self.id.clone(),
        }) {
            Ok(()) => tracing::info!(node = %self.id, "deregistered"),
            Err(e) => tracing::warn!(node = %self.id, error = %e, "cannot deregister"),
        }
    }
}

/// The heartbeat thread: a heartbeat every interval, with the latency to
/// the other regions measured after it.
fn beat(
    store: &dyn Store,
    report: &Report,
    info: &NodeInfo,
    registry: &Mutex<Registry>,
    stop: &AtomicBool,
) {
    let mut latency = Latencies::default();
    let mut drained_said = false;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        next = Instant::now() + report.interval;
        let hb = Change::Heartbeat {
            node: info.id.clone(),
            load: report.load.load(Ordering::Relaxed),
            capacity: info.capacity,
            draining: false,
            at_ms: unix_ms(),
        };
        if let Err(e) = store.publish(&hb) {
            tracing::warn!(error = %e, "heartbeat not published");
        }
        let load = report.load.load(Ordering::Relaxed);
        say_when_drained(registry, info, load, &mut drained_said);
        for p in peers_to_probe(registry, info) {
            latency.probe(store, info, &p);
        }
    }
}

/// A draining node says when its last call is gone: the operator may stop
/// it then without cutting anyone off.
fn say_when_drained(registry: &Mutex<Registry>, info: &NodeInfo, load: u32, said: &mut bool) {
    let draining = registry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .node(&info.id)
        .is_some_and(|n| n.draining);
    match (draining, load, *said) {
        (true, 0, false) => {
            tracing::info!(node = %info.id, "drained: no calls left, safe to stop");
            *said = true;
        }
        (true, n, _) if n > 0 => *said = false,
        (false, _, _) => *said = false,
        _ => {}
    }
}

/// One usable node per other region: regions are close inside.
fn peers_to_probe(registry: &Mutex<Registry>, info: &NodeInfo) -> Vec<NodeInfo> {
    let reg = registry.lock().unwrap_or_else(|p| p.into_inner());
    let mut by_region: HashMap<String, NodeInfo> = HashMap::new();
    for n in reg.nodes().filter(|n| n.region != info.region) {
        if reg.node_usable(&n.id, unix_ms()).is_ok() {
            by_region
                .entry(n.region.clone())
                .or_insert_with(|| n.clone());
        }
    }
    by_region.into_values().collect()
}

/// Latency samples by region, and what was last published for each.
#[derive(Default)]
struct Latencies {
    samples: HashMap<String, Vec<u32>>,
    published: HashMap<String, u32>,
}

impl Latencies {
    /// Probes `peer`; publishes the latency to its region when the
    /// estimate changed.
    fn probe(&mut self, store: &dyn Store, info: &NodeInfo, peer: &NodeInfo) {
        let Some(rtt) = probe(peer) else { return };
        let s = self.samples.entry(peer.region.clone()).or_default();
        s.push(rtt.div_ceil(2).max(1));
        if s.len() > PROBE_WINDOW {
            s.remove(0);
        }
        let ms = *s.iter().min().expect("just pushed");
        if self.published.get(&peer.region) == Some(&ms) {
            return;
        }
        let ch = Change::SetLatency(Latency {
            a: info.region.clone(),
            b: peer.region.clone(),
            source: LatencySource::Measured,
            ms,
        });
        if store.publish(&ch).is_ok() {
            tracing::debug!(to = %peer.region, ms, "latency measured");
            self.published.insert(peer.region.clone(), ms);
        }
    }
}

/// Round-trip time of an ng ping to `node`, in milliseconds.
fn probe(node: &NodeInfo) -> Option<u32> {
    let mut c = NgClient::new(node.ng)
        .and_then(|c| c.with_retries(Duration::from_millis(1000), 1))
        .ok()?;
    let t = Instant::now();
    let r = c.request(&dict([("command", "ping".into())])).ok()?;
    (r.get("result").and_then(Value::as_str) == Some("pong"))
        .then(|| t.elapsed().as_millis().min(u128::from(u32::MAX)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::{MemoryStore, Region};

    #[test]
    fn a_node_started_before_its_region_exists_registers_once_it_does() {
        let store = Arc::new(MemoryStore::new());
        let info = NodeInfo {
            id: "n1".into(),
            region: "late".into(),
            ng: "127.0.0.1:2223".parse().unwrap(),
            tunnel: "127.0.0.1:3223".parse().unwrap(),
            workers: 1,
            capacity: 10,
            load: 0,
            draining: false,
            last_seen_ms: unix_ms(),
        };
        assert!(matches!(
            store.publish(&Change::RegisterNode(info.clone())),
            Err(StoreError::Rejected(_))
        ));
        let seeder = {
            let store = store.clone();
            // The controller writing its seed a moment after the node started.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                store
                    .publish(&Change::AddRegion(Region {
                        name: "late".into(),
                    }))
                    .unwrap();
            })
        };
        register(&*store, &info).unwrap();
        seeder.join().unwrap();
        let mut reg = Registry::new();
        for ch in store.snapshot().unwrap() {
            reg.apply(&ch).unwrap();
        }
        assert!(reg.nodes().any(|n| n.id == "n1"));
    }
}
