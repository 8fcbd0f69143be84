//! A flow whose peer speaks SRTP, DTLS or ICE: the state that needs, and
//! the forward step's share of it.
//!
//! The peer side of such a flow is protected; everything behind the relay
//! (the other leg, tunnels, recordings) sees plain RTP. So a packet the peer
//! sends is unprotected in place before the flow accepts it, and a packet
//! that leaves through this flow's socket to its peer is protected on the
//! way out ([`FlowTable::protect_for`]). RFC 7983 tells the datagrams on
//! such a socket apart by their first byte: STUN (0..=3) is answered here
//! from the flow's ICE credentials, DTLS (20..=63) is handed to the worker,
//! which runs the handshake and gives the table the keys it made
//! ([`FlowTable::set_dtls_keys`]).

use std::net::SocketAddr;
use std::time::Instant;

use rtpmesh_ice::Consent;
use rtpmesh_srtp::{MasterKey, SrtpContext, SrtpError};

use super::spec::{Security, Slot};
use super::step::{DtlsRecord, Event, Forwarded};
use super::FlowTable;
use crate::counters::{bump, FlowCounters};
use crate::rtp::PacketKind;
use crate::transmit::Transmit;

/// The protection state of one flow's peer side.
#[derive(Debug)]
pub(super) struct Secured {
    /// The security the control plane asked for, as last applied (so an
    /// unchanged update keeps the contexts' rollover counters and replay
    /// windows).
    pub(super) spec: Security,
    /// Unprotects what the peer sends.
    pub(super) inbound: Option<SrtpContext>,
    /// Protects what goes to the peer.
    pub(super) outbound: Option<SrtpContext>,
    /// The peer's ICE consent (RFC 7675), when the flow does ICE; started
    /// at the first tick after the flow got ICE credentials.
    pub(super) consent: Option<Consent>,
}

impl Secured {
    /// State for `spec`, or `None` for plain RTP.
    pub(super) fn new(spec: &Security) -> Option<Box<Self>> {
        if spec.is_plain() && spec.ice.is_none() {
            return None;
        }
        let (inbound, outbound) = match &spec.sdes {
            Some(k) => (
                Some(SrtpContext::new(&k.inbound)),
                Some(SrtpContext::new(&k.outbound)),
            ),
            None => (None, None),
        };
        Some(Box::new(Self {
            spec: spec.clone(),
            inbound,
            outbound,
            consent: None,
        }))
    }

    /// Brings `this` to `spec`, keeping what did not change.
    pub(super) fn apply(this: &mut Option<Box<Self>>, spec: &Security) {
        match this {
            Some(s) if s.spec == *spec => {}
            Some(s) if s.spec.sdes == spec.sdes && s.spec.dtls == spec.dtls => {
                // Only ICE changed (a re-offer's new credentials): keys and
                // the DTLS session's keys stay.
                s.spec.ice = spec.ice.clone();
                if spec.ice.is_none() {
                    s.consent = None;
                }
            }
            _ => *this = Self::new(spec),
        }
    }
}

/// What kind of datagram arrived on a secured socket (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Demux {
    Stun,
    Dtls,
    Media,
}

pub(super) fn demux(first: u8) -> Demux {
    match first {
        0..=3 => Demux::Stun,
        20..=63 => Demux::Dtls,
        _ => Demux::Media,
    }
}

/// Counts an SRTP failure on `c`.
fn count(c: &FlowCounters, e: SrtpError) {
    match e {
        SrtpError::Replayed | SrtpError::TooOld => bump(&c.srtp_replays, 1),
        _ => bump(&c.srtp_failures, 1),
    }
}

/// A STUN answer of `len` bytes at `start` in the receive buffer, back out
/// of `slot`'s socket to `src`.
fn answer_at(slot: Slot, src: SocketAddr, start: usize, len: usize) -> Transmit {
    Transmit {
        via: slot,
        dest: src,
        skip: start as u16,
        end: (start + len) as u16,
        head: None,
    }
}

/// The first free 8-byte aligned offset at or after `n`: where a copy or
/// an answer goes in the receive buffer's room after the datagram.
pub(super) fn room_after(n: usize) -> usize {
    n.next_multiple_of(8)
}

impl FlowTable {
    /// Handles a datagram on a secured socket before the flow accepts it:
    /// answers STUN, hands DTLS on, unprotects SRTP in place. Returns the
    /// end of the (now plain) packet in `buf`, or `None` when the datagram
    /// was consumed or dropped.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn unprotect(
        &mut self,
        slot: Slot,
        src: SocketAddr,
        buf: &mut [u8],
        skip: usize,
        len: usize,
        kind: Option<PacketKind>,
        now: Instant,
        out: &mut Forwarded,
    ) -> Option<usize> {
        let flow = self.get_mut(slot)?;
        let secured = flow.secured.as_deref_mut()?;
        let c = &*flow.counters;
        match demux(buf[skip]) {
            Demux::Stun => {
                self.answer_stun(slot, src, buf, skip, len, now, out);
                None
            }
            Demux::Dtls => {
                bump(&c.dtls_records, 1);
                // On an ICE socket the handshake is only for the party
                // whose checks made it the peer: a stranger's ClientHello
                // would cost the worker an ECDHE and a signature each.
                if secured.spec.ice.is_some() && flow.peer != Some(src) {
                    bump(&c.dtls_refused, 1);
                    return None;
                }
                if secured.spec.dtls.is_some() {
                    out.dtls = Some(DtlsRecord {
                        slot,
                        src,
                        start: skip,
                        end: len,
                    });
                }
                None
            }
            Demux::Media => {
                let Some(ctx) = secured.inbound.as_mut() else {
                    // DTLS not finished yet: nothing can be read.
                    if secured.spec.dtls.is_some() {
                        bump(&c.srtp_failures, 1);
                        return None;
                    }
                    return Some(len);
                };
                let r = match kind? {
                    PacketKind::Rtp => ctx.unprotect_rtp(&mut buf[skip..], len - skip),
                    PacketKind::Rtcp => ctx.unprotect_rtcp(&mut buf[skip..], len - skip),
                };
                match r {
                    Ok(n) => Some(skip + n),
                    Err(e) => {
                        count(c, e);
                        None
                    }
                }
            }
        }
    }

    /// Answers a STUN binding request on an ICE socket from the buffer's
    /// room after it, and follows the nominated (or first valid) pair.
    #[allow(clippy::too_many_arguments)]
    fn answer_stun(
        &mut self,
        slot: Slot,
        src: SocketAddr,
        buf: &mut [u8],
        skip: usize,
        len: usize,
        now: Instant,
        out: &mut Forwarded,
    ) {
        let Some(flow) = self.get_mut(slot) else {
            return;
        };
        let c = flow.counters.clone();
        let Some(secured) = flow.secured.as_deref_mut() else {
            return;
        };
        let Some(ice) = secured.spec.ice.as_ref() else {
            bump(&c.stun_refused, 1);
            return;
        };
        let start = room_after(len);
        if start >= buf.len() {
            bump(&c.stun_refused, 1);
            return;
        }
        let (req, room) = buf.split_at_mut(start);
        let answered = rtpmesh_ice::answer(
            &req[skip..len],
            src,
            &ice.local_ufrag,
            &ice.local_pwd,
            ice.remote_ufrag.as_deref(),
            room,
        );
        let a = match answered {
            Ok(a) => a,
            Err(e) => {
                bump(&c.stun_refused, 1);
                // 400/401/420 where RFC 8489 wants one; the rest is dropped.
                let pwd = &ice.local_pwd;
                if let Some(n) = rtpmesh_ice::error_response(&req[skip..len], e, pwd, room) {
                    out.transmits.push(answer_at(slot, src, start, n));
                }
                return;
            }
        };
        bump(&c.stun_answered, 1);
        if let Some(consent) = secured.consent.as_mut() {
            consent.on_valid_check(now);
        }
        out.transmits.push(answer_at(slot, src, start, a.len));
        // The browser's nominated pair is where its media comes from and
        // where ours must go; before nomination, its first valid check.
        if flow.peer != Some(src) && (a.use_candidate || !flow.latched) {
            flow.peer = Some(src);
            flow.latched = true;
            flow.confirm_until = None;
            out.events.push(Event::Latched {
                flow: flow.id,
                addr: src,
            });
        }
    }

    /// Protects the plain packet `buf[start..end]` of `kind` for `via`'s
    /// peer, in place when `in_place`, else as a copy at `*room` (which
    /// moves past it). Returns the transmit's `(skip, end)`, or `None` when
    /// `via` has no keys yet or protecting failed (counted on `via`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn protect_for(
        &mut self,
        via: Slot,
        kind: PacketKind,
        buf: &mut [u8],
        start: usize,
        end: usize,
        in_place: bool,
        room: &mut usize,
    ) -> Option<(usize, usize)> {
        let flow = self.get_mut(via)?;
        let c = &*flow.counters;
        let ctx = flow.secured.as_deref_mut()?.outbound.as_mut()?;
        let at = if in_place {
            start
        } else {
            let at = *room;
            let n = end - start;
            if at + n > buf.len() {
                bump(&c.srtp_failures, 1);
                return None;
            }
            buf.copy_within(start..end, at);
            at
        };
        let n = end - start;
        let r = match kind {
            PacketKind::Rtp => ctx.protect_rtp(&mut buf[at..], n),
            PacketKind::Rtcp => ctx.protect_rtcp(&mut buf[at..], n),
        };
        match r {
            Ok(len) => {
                if !in_place {
                    *room = room_after(at + len);
                }
                Some((at, at + len))
            }
            Err(e) => {
                count(c, e);
                None
            }
        }
    }

    /// Whether packets that `via`'s socket sends to its peer are protected
    /// (or must be, once DTLS has made the keys).
    pub(super) fn protects(&self, via: Slot) -> bool {
        self.get(via)
            .and_then(|f| f.secured.as_deref())
            .is_some_and(|s| s.outbound.is_some() || s.spec.dtls.is_some())
    }

    /// Installs the keys a finished DTLS handshake on `slot`'s socket made:
    /// `local` protects what goes to the peer, `remote` unprotects what it
    /// sends. Returns `false` if the flow is gone or does no DTLS.
    pub fn set_dtls_keys(&mut self, slot: Slot, local: &MasterKey, remote: &MasterKey) -> bool {
        let Some(s) = self.get_mut(slot).and_then(|f| f.secured.as_deref_mut()) else {
            return false;
        };
        if s.spec.dtls.is_none() {
            return false;
        }
        s.outbound = Some(SrtpContext::new(local));
        s.inbound = Some(SrtpContext::new(remote));
        true
    }

    /// ICE flows whose peer's consent has expired at `now` (RFC 7675: no
    /// valid check for 30 s; only peers that do ICE themselves). Their peer is forgotten, so nothing more is
    /// sent to it; the caller tells the control plane.
    pub fn expire_consent(&mut self, now: Instant, expired: &mut Vec<super::FlowId>) {
        let slots: Vec<Slot> = self.socket_slots().collect();
        for slot in slots {
            let Some(flow) = self.get_mut(slot) else {
                continue;
            };
            let Some(s) = flow.secured.as_deref_mut() else {
                continue;
            };
            // Only a peer that does ICE itself (its SDP gave a ufrag) is
            // held to consent: a phone offered our candidates under
            // `ICE=force` ignores them and never sends a check.
            if s.spec.ice.as_ref().is_none_or(|i| i.remote_ufrag.is_none()) {
                continue;
            }
            let consent = s.consent.get_or_insert_with(|| Consent::new(now));
            if consent.expired(now) && flow.peer.is_some() {
                flow.peer = None;
                expired.push(flow.id);
            }
        }
    }
}
