//! The embedded store: one machine, no server. The registry lives in this
//! process, shared by every clone of the store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};

use super::{unix_ms, Store, StoreError};
use crate::region::model::Change;
use crate::region::registry::Registry;

#[derive(Debug, Default)]
struct Inner {
    registry: Registry,
    subscribers: Vec<Sender<Change>>,
    /// node → call id → record.
    calls: BTreeMap<String, BTreeMap<String, String>>,
}

/// The in-process store. Clones share one registry, so several components
/// of one process (or a test's two "instances") see each other's changes.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data that is
        // still consistent (every change applies whole or not at all).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    /// Applies the change to the shared registry first, so a change it
    /// refuses is an error here and reaches no subscriber.
    fn publish(&self, change: &Change) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.registry.apply(change)?;
        // Subscribers that went away are dropped here.
        inner
            .subscribers
            .retain(|tx| tx.send(change.clone()).is_ok());
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<Change>, StoreError> {
        let mut inner = self.lock();
        inner.registry.prune_routes(unix_ms());
        Ok(inner.registry.snapshot())
    }

    fn subscribe(&self) -> Result<Receiver<Change>, StoreError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.lock().subscribers.push(tx);
        Ok(rx)
    }

    fn put_call(&self, node: &str, call_id: &str, json: &str) -> Result<(), StoreError> {
        self.lock()
            .calls
            .entry(node.to_owned())
            .or_default()
            .insert(call_id.to_owned(), json.to_owned());
        Ok(())
    }

    fn delete_call(&self, node: &str, call_id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(calls) = inner.calls.get_mut(node) {
            calls.remove(call_id);
            if calls.is_empty() {
                inner.calls.remove(node);
            }
        }
        Ok(())
    }

    fn calls(&self, node: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .lock()
            .calls
            .get(node)
            .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::region::model::Region;
    use crate::region::registry::RegistryError;

    fn region(name: &str) -> Change {
        Change::AddRegion(Region { name: name.into() })
    }

    #[test]
    fn clones_fan_out_to_every_subscriber_and_snapshot_rebuilds() {
        let a = MemoryStore::new();
        let b = a.clone();
        let rx_a = a.subscribe().unwrap();
        let rx_b = b.subscribe().unwrap();
        a.publish(&region("r1")).unwrap();
        let wait = Duration::from_secs(1);
        assert_eq!(rx_a.recv_timeout(wait).unwrap(), region("r1"));
        assert_eq!(rx_b.recv_timeout(wait).unwrap(), region("r1"));
        drop(rx_a);
        b.publish(&region("r2")).unwrap();
        assert_eq!(rx_b.recv_timeout(wait).unwrap(), region("r2"));
        let snap = b.snapshot().unwrap();
        assert_eq!(snap, vec![region("r1"), region("r2")]);
    }

    #[test]
    fn refused_change_reaches_nobody() {
        let s = MemoryStore::new();
        let rx = s.subscribe().unwrap();
        let err = s
            .publish(&Change::RemoveNode { id: "x".into() })
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::Rejected(RegistryError::UnknownNode(_))
        ));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn call_records() {
        let s = MemoryStore::new();
        s.put_call("n1", "b", "{\"x\":2}").unwrap();
        s.put_call("n1", "a", "{\"x\":1}").unwrap();
        s.put_call("n2", "c", "{}").unwrap();
        s.put_call("n1", "a", "{\"x\":3}").unwrap();
        assert_eq!(
            s.calls("n1").unwrap(),
            vec![
                ("a".to_owned(), "{\"x\":3}".to_owned()),
                ("b".to_owned(), "{\"x\":2}".to_owned())
            ]
        );
        s.delete_call("n1", "a").unwrap();
        s.delete_call("n1", "zz").unwrap();
        assert_eq!(s.calls("n1").unwrap().len(), 1);
        assert!(s.calls("n3").unwrap().is_empty());
    }
}
