//! A [`Handler`] that works on requests on a pool of threads: requests
//! for one call (one `call-id`) go to the same thread, in order; requests
//! for different calls run in parallel, so one that waits on a distant
//! node holds up nobody else's.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use rtpmesh_ng::bencode::Value;

use crate::server::{Handler, Request};

/// Requests handed to threads by call; see the module doc. Dropping it
/// lets the threads finish what is queued and end.
pub struct CallPool {
    queues: Vec<SyncSender<Request>>,
}

impl CallPool {
    /// Starts `threads` threads named `ng-N`, each with a queue of `queue`
    /// requests, answering each request with `work(body)`.
    pub fn spawn<F>(threads: usize, queue: usize, work: F) -> io::Result<Self>
    where
        F: Fn(&Value) -> Value + Send + Sync + 'static,
    {
        let work = std::sync::Arc::new(work);
        let mut queues = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = mpsc::sync_channel::<Request>(queue);
            let work = work.clone();
            std::thread::Builder::new()
                .name(format!("ng-{i}"))
                .spawn(move || {
                    for request in rx {
                        let reply = work(&request.body);
                        request.reply.send(&reply);
                    }
                })?;
            queues.push(tx);
        }
        Ok(Self { queues })
    }
}

impl Handler for CallPool {
    fn handle(&mut self, request: Request) {
        let mut h = DefaultHasher::new();
        request
            .body
            .get("call-id")
            .and_then(Value::as_bytes)
            .hash(&mut h);
        let q = &self.queues[(h.finish() as usize) % self.queues.len()];
        match q.try_send(request) {
            Ok(()) => {}
            // Dropped unanswered: its retransmission is handled afresh.
            Err(TrySendError::Full(r)) => {
                tracing::warn!(from = %r.reply.peer(), "overloaded: ng request dropped (the proxy retransmits)");
            }
            Err(TrySendError::Disconnected(r)) => {
                tracing::error!(from = %r.reply.peer(), "ng request thread gone: request dropped");
            }
        }
    }
}
