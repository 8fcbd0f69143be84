//! DTLS-SRTP handshakes on a worker's sockets.
//!
//! A flow whose peer does DTLS-SRTP (`FlowSpec.security.dtls`) gets a
//! [`Session`] here, owned by the worker that owns the flow: the forward
//! step hands it the DTLS datagrams its socket receives
//! ([`rtpmesh_flow::flow::DtlsRecord`]), the worker's tick drives its
//! retransmission timer, and the keys it exports go straight into the
//! flow's SRTP contexts ([`FlowTable::set_dtls_keys`]). What a session has
//! to send is queued and sent after the receive batch, from the flow's own
//! socket, with one `sendto` each: a handshake is a handful of datagrams
//! per call, not worth the batch machinery.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crossbeam_channel::Sender;
use rtpmesh_dtls::{Certificate, Role, Session};
use rtpmesh_flow::flow::{DtlsRole, DtlsSetup, Event, FlowId, FlowSpec, FlowTable, Slot};

use crate::backend::{sys, Backend};

/// One flow's handshake.
struct Handshake {
    id: FlowId,
    setup: DtlsSetup,
    session: Session,
    /// Where the last record came from (answers go back there), until the
    /// flow knows its peer.
    last_src: Option<SocketAddr>,
}

/// A worker's DTLS handshakes, by flow slot.
pub struct Handshakes {
    cert: Option<Certificate>,
    sessions: HashMap<Slot, Handshake>,
    /// Datagrams to send after the batch: out of `Slot`'s socket, to the
    /// address given or else the flow's peer.
    outgoing: Vec<(Slot, Option<SocketAddr>, Vec<u8>)>,
}

impl Handshakes {
    /// Handshakes that present `cert` (none possible without one).
    pub fn new(cert: Option<Certificate>) -> Self {
        Self {
            cert,
            sessions: HashMap::new(),
            outgoing: Vec::new(),
        }
    }

    /// Starts, restarts or ends `slot`'s handshake to match `spec` (after
    /// an Add or Update). A session whose role and peer fingerprint are
    /// unchanged continues.
    pub fn on_spec(&mut self, slot: Slot, spec: &FlowSpec, now: Instant, events: &Sender<Event>) {
        let Some(setup) = spec.security.dtls.clone() else {
            self.sessions.remove(&slot);
            return;
        };
        if self.sessions.get(&slot).is_some_and(|h| h.setup == setup) {
            return;
        }
        let Some(cert) = &self.cert else {
            fail(events, spec.id, "this node has no DTLS certificate".into());
            return;
        };
        let role = match setup.role {
            DtlsRole::Active => Role::Client,
            DtlsRole::Passive => Role::Server,
        };
        let fingerprint = setup
            .fingerprint
            .as_ref()
            .map(|f| (f.hash.clone(), f.value.clone()));
        match Session::new(cert, role, fingerprint, now) {
            Ok(session) => {
                let mut h = Handshake {
                    id: spec.id,
                    setup,
                    session,
                    last_src: None,
                };
                self.drain(slot, &mut h);
                self.sessions.insert(slot, h);
            }
            Err(e) => fail(events, spec.id, e.to_string()),
        }
    }

    /// Forgets `slot`'s handshake (the flow is gone).
    pub fn remove(&mut self, slot: Slot) {
        self.sessions.remove(&slot);
    }

    /// Feeds a DTLS datagram from `src` to `slot`'s session.
    pub fn on_record(
        &mut self,
        table: &mut FlowTable,
        slot: Slot,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
        events: &Sender<Event>,
    ) {
        let Some(mut h) = self.sessions.remove(&slot) else {
            return;
        };
        h.last_src = Some(src);
        let r = h.session.handle_datagram(now, data);
        self.settle(table, slot, h, r, events);
    }

    /// Retransmits what is due at `now`.
    pub fn tick(&mut self, table: &mut FlowTable, now: Instant, events: &Sender<Event>) {
        let due: Vec<Slot> = self
            .sessions
            .iter()
            .filter(|(_, h)| h.session.next_timeout().is_some_and(|t| t <= now))
            .map(|(s, _)| *s)
            .collect();
        for slot in due {
            if let Some(mut h) = self.sessions.remove(&slot) {
                let r = h.session.handle_timeout(now);
                self.settle(table, slot, h, r, events);
            }
        }
    }

    /// After input: queue what the session has to send, install its keys,
    /// or report its failure (and drop it).
    fn settle(
        &mut self,
        table: &mut FlowTable,
        slot: Slot,
        mut h: Handshake,
        r: Result<(), rtpmesh_dtls::DtlsError>,
        events: &Sender<Event>,
    ) {
        match r {
            Err(e) if e.is_fatal() => {
                tracing::info!(flow = ?h.id, error = %e, "DTLS handshake failed");
                fail(events, h.id, e.to_string());
                self.drain(slot, &mut h);
                return;
            }
            // A datagram that is not DTLS after all: dropped (the step
            // counted it), the handshake goes on.
            Err(e) => tracing::debug!(flow = ?h.id, error = %e, "DTLS datagram ignored"),
            Ok(()) => {}
        }
        self.drain(slot, &mut h);
        if let Some(keys) = h.session.take_keys() {
            if table.set_dtls_keys(slot, &keys.local, &keys.remote) {
                tracing::debug!(flow = ?h.id, suite = %keys.local.suite(), "DTLS-SRTP keys installed");
            }
        }
        self.sessions.insert(slot, h);
    }

    fn drain(&mut self, slot: Slot, h: &mut Handshake) {
        while let Some(d) = h.session.poll_datagram() {
            self.outgoing.push((slot, h.last_src, d));
        }
    }

    /// Sends the queued datagrams (after a receive batch or a tick).
    pub fn flush(&mut self, table: &FlowTable, backend: &dyn Backend) {
        for (slot, to, data) in self.outgoing.drain(..) {
            let Some(flow) = table.get(slot) else {
                continue;
            };
            let Some(dest) = to.or(flow.peer()) else {
                continue;
            };
            let Some(fd) = backend.socket_fd(slot) else {
                continue;
            };
            // SAFETY: an all-zero sockaddr_storage is valid.
            let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let alen = sys::write_sockaddr(&dest, &mut addr);
            // SAFETY: `data` and `addr` are live for the call.
            let n = unsafe {
                libc::sendto(
                    fd,
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_DONTWAIT,
                    (&addr as *const libc::sockaddr_storage).cast(),
                    alen,
                )
            };
            if n < 0 {
                // A lost flight is retransmitted by the session's timer.
                tracing::debug!(flow = ?flow.id(), error = %std::io::Error::last_os_error(), "DTLS send failed");
            }
        }
    }

    /// Whether anything waits to be sent.
    pub fn has_outgoing(&self) -> bool {
        !self.outgoing.is_empty()
    }
}

fn fail(events: &Sender<Event>, flow: FlowId, reason: String) {
    let _ = events.try_send(Event::DtlsFailed { flow, reason });
}
