//! A plain-RTP endpoint, the SIP phone's side of a WebRTC bridge: an RTP
//! socket on an even port and an RTCP socket on the next, a thread that
//! checks and counts every datagram, and (when asked) reflects each RTP
//! packet it gets back to the relay.
//!
//! Reflection keeps the payload, sequence number and timestamp of the
//! packet (so a browser gets back valid Opus it can decode) but gives it
//! an SSRC of its own, as a real far end would have: a stream carrying the
//! browser's own sending SSRC back to it would be a collision, not audio.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Party;

/// The SSRC reflected packets carry.
pub const REFLECT_SSRC: u32 = 0x5eed_f00d;

/// What the endpoint has seen and done so far.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Valid RTP packets (version 2, whole header) on the RTP port.
    pub rtp: u64,
    /// Those by payload type.
    pub by_pt: BTreeMap<u8, u64>,
    /// Their SSRCs.
    pub ssrcs: BTreeSet<u32>,
    /// Datagrams on the RTP port that are not RTP (nor RTCP).
    pub invalid: u64,
    /// RTCP packets (on either port).
    pub rtcp: u64,
    /// Where the RTP came from.
    pub sources: BTreeSet<SocketAddr>,
    /// RTP packets sent back.
    pub reflected: u64,
}

struct Shared {
    seen: Mutex<Seen>,
    changed: Condvar,
    /// Where reflected packets go (the relay's port for this side).
    peer: Mutex<Option<SocketAddr>>,
    stop: AtomicBool,
}

/// The running endpoint; its threads stop on drop.
pub struct PlainRtp {
    rtp: SocketAddr,
    sock: UdpSocket,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Whether `d` looks like RTCP (RFC 5761: packet types 192..=223).
fn is_rtcp(d: &[u8]) -> bool {
    d.len() >= 8 && d[0] >> 6 == 2 && (192..=223).contains(&d[1])
}

/// The RTP header length of `d` (fixed part, CSRCs, extension), if it is
/// RTP version 2 and whole.
fn rtp_header_len(d: &[u8]) -> Option<usize> {
    if d.len() < 12 || d[0] >> 6 != 2 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(d[0] & 0x0f);
    if d[0] & 0x10 != 0 {
        let ext = d.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= d.len()).then_some(len)
}

impl PlainRtp {
    /// An endpoint on loopback; reflects RTP once [`PlainRtp::reflect_to`]
    /// names the relay.
    pub fn start() -> Self {
        let (rtp, rtcp) = Party::pair(super::call::LO);
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen::default()),
            changed: Condvar::new(),
            peer: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let addr = rtp.addr();
        let sock = rtp.sock.try_clone().unwrap();
        let threads = vec![
            spawn_loop(rtp.sock, shared.clone(), true),
            spawn_loop(rtcp.sock, shared.clone(), false),
        ];
        Self {
            rtp: addr,
            sock,
            shared,
            threads,
        }
    }

    /// The RTP address (RTCP is on the next port).
    pub fn addr(&self) -> SocketAddr {
        self.rtp
    }

    /// Reflects every RTP packet to `relay` from now on.
    pub fn reflect_to(&self, relay: SocketAddr) {
        *self.shared.peer.lock().unwrap() = Some(relay);
    }

    /// A copy of the counts.
    pub fn seen(&self) -> Seen {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Waits until `ok` holds for the counts; `false` when `limit` passes.
    pub fn wait_until(&self, limit: Duration, mut ok: impl FnMut(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut seen = self.shared.seen.lock().unwrap();
        loop {
            if ok(&seen) {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            seen = self.shared.changed.wait_timeout(seen, left).unwrap().0;
        }
    }

    /// Sends `data` from the RTP port to the relay named by
    /// [`PlainRtp::reflect_to`] (the far end talking on its own, e.g. after
    /// the browser is gone).
    pub fn send(&self, data: &[u8]) {
        let to = self.shared.peer.lock().unwrap().expect("reflect_to first");
        self.sock.send_to(data, to).unwrap();
    }
}

impl Drop for PlainRtp {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn_loop(sock: UdpSocket, shared: Arc<Shared>, is_rtp_port: bool) -> JoinHandle<()> {
    // Short read timeouts only so that the thread sees `stop`.
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !shared.stop.load(Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let reply = account(&shared, &mut buf[..n], from, is_rtp_port);
            if let Some(to) = reply {
                if sock.send_to(&buf[..n], to).is_ok() {
                    shared.seen.lock().unwrap().reflected += 1;
                }
            }
        }
    })
}

/// Counts one datagram; returns where to reflect it (rewritten in place)
/// when it is RTP to reflect.
fn account(
    shared: &Shared,
    d: &mut [u8],
    from: SocketAddr,
    is_rtp_port: bool,
) -> Option<SocketAddr> {
    let mut seen = shared.seen.lock().unwrap();
    let reflect = if is_rtcp(d) {
        seen.rtcp += 1;
        None
    } else if let (true, Some(_)) = (is_rtp_port, rtp_header_len(d)) {
        seen.rtp += 1;
        *seen.by_pt.entry(d[1] & 0x7f).or_default() += 1;
        seen.ssrcs
            .insert(u32::from_be_bytes([d[8], d[9], d[10], d[11]]));
        seen.sources.insert(from);
        d[8..12].copy_from_slice(&REFLECT_SSRC.to_be_bytes());
        *shared.peer.lock().unwrap()
    } else {
        seen.invalid += 1;
        None
    };
    shared.changed.notify_all();
    reflect
}
