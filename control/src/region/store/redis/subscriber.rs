//! The subscriber threads: one per subscription, each on its own
//! connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::Sender;
use redis::Client;

use super::conn::Conn;
use super::{BACKOFF_FIRST, BACKOFF_MAX, CHANNEL, IO_TIMEOUT, POLL};
use crate::region::model::Change;
use crate::region::store::StoreError;

/// How a subscription ended.
enum Ended {
    /// The store or the receiver went: the thread ends.
    Done,
    /// Connecting, subscribing or the snapshot after a reconnect failed.
    NotSubscribed(StoreError),
    /// The connection broke after it was subscribed.
    Lost,
}

/// A subscriber thread: (re)connects with backoff, forwards every change
/// on [`CHANNEL`] to `tx`, and ends when the receiver or the store goes.
/// It logs and never panics. The first connection's outcome goes to
/// `ready`; after that, failures only delay delivery.
///
/// After a reconnect it sends the store's snapshot before going on, so
/// additions and updates published while it was away still arrive.
/// Removals in that time do not: a process that must not keep a removed
/// entry rebuilds its registry from a snapshot.
pub(super) fn run(
    client: Client,
    tx: &Sender<Change>,
    stop: &AtomicBool,
    ready: Sender<Result<(), StoreError>>,
) {
    let client = &client;
    let mut ready = Some(ready);
    let mut backoff = BACKOFF_FIRST;
    while !stop.load(Ordering::Relaxed) {
        match listen(client, tx, stop, &mut ready) {
            Ended::Done => return,
            Ended::NotSubscribed(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                tracing::warn!(
                    "redis store: subscriber cannot reconnect ({e}), retrying in {backoff:?}"
                );
                thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Ended::Lost => backoff = BACKOFF_FIRST,
        }
    }
}

/// One subscribed connection, until it ends.
fn listen(
    client: &Client,
    tx: &Sender<Change>,
    stop: &AtomicBool,
    ready: &mut Option<Sender<Result<(), StoreError>>>,
) -> Ended {
    let mut con = match client.get_connection_with_timeout(IO_TIMEOUT) {
        Ok(con) => con,
        Err(e) => return Ended::NotSubscribed(e.into()),
    };
    // The redis crate's SUBSCRIBE drops an error reply (NOAUTH, say) and
    // reports success; a PING through the ordinary path surfaces it.
    if let Err(e) = redis::cmd("PING").query::<String>(&mut con) {
        return Ended::NotSubscribed(e.into());
    }
    // The PubSub must live as long as the subscription: dropping it
    // unsubscribes.
    let mut pubsub = con.as_pubsub();
    if let Err(e) = pubsub
        .subscribe(CHANNEL)
        .and_then(|()| pubsub.set_read_timeout(Some(POLL)))
    {
        return Ended::NotSubscribed(e.into());
    }
    match ready.take() {
        Some(ready) => {
            let _ = ready.send(Ok(()));
        }
        None => {
            // Subscribed before reading, so nothing falls between the two.
            tracing::info!("redis store: subscriber reconnected, resending the snapshot");
            let snapshot = Conn::open(client.clone()).and_then(|c| c.snapshot());
            match snapshot {
                Ok(changes) => {
                    for change in changes {
                        if tx.send(change).is_err() {
                            return Ended::Done;
                        }
                    }
                }
                // Without it the gap stays open: try the whole reconnect again.
                Err(e) => return Ended::NotSubscribed(e),
            }
        }
    }
    loop {
        match pubsub.get_message() {
            Ok(msg) => {
                let payload: String = match msg.get_payload() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!("redis store: unreadable message: {e}");
                        continue;
                    }
                };
                match serde_json::from_str::<Change>(&payload) {
                    Ok(change) => {
                        if tx.send(change).is_err() {
                            return Ended::Done;
                        }
                    }
                    Err(e) => tracing::warn!("redis store: bad change {payload:?}: {e}"),
                }
            }
            Err(e) if e.is_timeout() => {
                if stop.load(Ordering::Relaxed) {
                    return Ended::Done;
                }
            }
            Err(e) => {
                tracing::warn!("redis store: subscriber lost its connection ({e})");
                return Ended::Lost;
            }
        }
    }
}
