//! `--backend auto` measures instead of assuming: at start, each backend
//! forwards the same packets between loopback sockets on the calling
//! thread, and the one that spends less CPU per packet serves the workers
//! ([`super::choose`] decides from the figures).
//!
//! One round sends [`BURSTS`] bursts of [`BURST`] datagrams of 172 bytes
//! (a G.711 packet) with one `sendmmsg`, lets the backend forward them to a
//! fourth socket, and reads them there with `recvmmsg`; the thread's CPU
//! time (`CLOCK_THREAD_CPUTIME_ID`, which includes the kernel work the
//! thread does, loopback delivery among it) is taken around the round.
//! Sending and reading cost the same for both backends, so they shift both
//! figures alike and the order between them is the backends' own. Rounds
//! alternate between the backends ([`ROUNDS`] each) so that a disturbance
//! hits both, and each backend keeps its cheapest round. It takes a few tens
//! of milliseconds, once per process.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ptr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::choose::{self, Figures};
use super::sys::EventFd;
use super::{epoll, uring, Backend, BackendKind, PacketSink, Transmit};
use rtpmesh_flow::flow::Slot;

/// Datagrams per burst (one `sendmmsg`, one `recvmmsg`).
pub const BURST: usize = 32;
/// Bursts per round.
pub const BURSTS: usize = 8;
/// Measured rounds per backend.
pub const ROUNDS: usize = 7;
/// Bytes per datagram: a 20 ms G.711 RTP packet.
const SIZE: usize = 172;

const IN: Slot = Slot {
    index: 0,
    generation: 1,
};
const OUT: Slot = Slot {
    index: 1,
    generation: 1,
};

/// What the calibration found, for the log.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The figures the choice was made from.
    pub figures: Figures,
    /// The backend chosen.
    pub chosen: BackendKind,
    /// Wall time the whole calibration took.
    pub took: Duration,
    /// CPU time it took on the calling thread, setup included.
    pub cpu: Duration,
}

/// The backend `auto` stands for in this process: measured by the first
/// caller (a worker thread, on its pinned core), logged once, and the same
/// for every worker after.
pub fn auto_choice() -> BackendKind {
    static CHOICE: OnceLock<BackendKind> = OnceLock::new();
    *CHOICE.get_or_init(|| match calibrate() {
        Ok(o) => {
            let (epoll_ns, uring_ns) = o.figures.best();
            tracing::info!(
                chosen = ?o.chosen,
                epoll_ns_per_packet = ?epoll_ns,
                uring_ns_per_packet = ?uring_ns,
                uring_vs_epoll_per_mille = ?o.figures.uring_per_mille(),
                margin_percent = choose::URING_MARGIN_PERCENT,
                packets_per_backend = ROUNDS * BURSTS * BURST,
                took_ms = o.took.as_millis() as u64,
                cpu_ms = o.cpu.as_millis() as u64,
                "backend auto: calibrated, the cheaper per packet serves"
            );
            o.chosen
        }
        Err(e) => {
            // Nothing measured: epoll works wherever a socket does.
            tracing::warn!(error = %e, "backend auto: calibration failed, using epoll");
            BackendKind::Epoll
        }
    })
}

/// Runs the calibration and returns what it found.
pub fn calibrate() -> io::Result<Outcome> {
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    let wake = EventFd::new()?;
    let mut ep = Rig::new(Box::new(epoll::Epoll::new(wake.raw())?), wake)?;
    let wake = EventFd::new()?;
    let mut ur = match uring::Uring::new(wake.raw()) {
        Ok(u) => Some(Rig::new(Box::new(u), wake)?),
        Err(e) => {
            tracing::info!(error = %e, "backend auto: io_uring unavailable");
            None
        }
    };
    let (mut e_ns, mut u_ns) = (Vec::new(), Vec::new());
    ep.round(2)?;
    if let Some(u) = &mut ur {
        u.round(2)?;
    }
    for _ in 0..ROUNDS {
        e_ns.push(ep.round(BURSTS)?);
        if let Some(u) = &mut ur {
            u_ns.push(u.round(BURSTS)?);
        }
    }
    let figures = Figures {
        epoll_ns: e_ns,
        uring_ns: ur.is_some().then_some(u_ns),
    };
    Ok(Outcome {
        chosen: choose::choose(&figures),
        figures,
        took: start.elapsed(),
        cpu: Duration::from_nanos(thread_cpu_ns() - cpu0),
    })
}

/// Forwards everything from `IN` to the destination via `OUT`.
struct Sink {
    out: [Transmit; 1],
}

impl PacketSink for Sink {
    fn on_packet(
        &mut self,
        _: Instant,
        slot: Slot,
        _: SocketAddr,
        _: &mut [u8],
        _: usize,
    ) -> &[Transmit] {
        if slot == IN {
            &self.out
        } else {
            &[]
        }
    }
    fn on_send_error(&mut self, _: Slot, _: io::Error) {}
    fn on_kernel_drops(&mut self, _: Slot, _: u32) {}
    fn on_stale(&mut self, _: Slot) {}
    fn on_closed(&mut self, _: Slot) {}
}

/// One backend with its four sockets: `src` sends to the backend's `IN`
/// socket, which forwards out of `OUT` to `dst`.
struct Rig {
    backend: Box<dyn Backend>,
    sink: Sink,
    src: UdpSocket,
    dst: UdpSocket,
    to: SocketAddr,
    /// Kept alive: the backend watches its fd.
    _wake: EventFd,
}

impl Rig {
    fn new(mut backend: Box<dyn Backend>, wake: EventFd) -> io::Result<Self> {
        let bind = || UdpSocket::bind("127.0.0.1:0");
        let (inp, out, src, dst) = (bind()?, bind()?, bind()?, bind()?);
        dst.set_nonblocking(true)?;
        let to = inp.local_addr()?;
        let sink = Sink {
            out: [Transmit::plain(OUT, dst.local_addr()?)],
        };
        backend.add_socket(IN, inp)?;
        backend.add_socket(OUT, out)?;
        Ok(Self {
            backend,
            sink,
            src,
            dst,
            to,
            _wake: wake,
        })
    }

    /// Forwards `bursts` bursts; the thread's CPU nanoseconds per packet.
    fn round(&mut self, bursts: usize) -> io::Result<u64> {
        let t0 = thread_cpu_ns();
        for _ in 0..bursts {
            self.burst()?;
        }
        Ok((thread_cpu_ns() - t0) / (bursts * BURST) as u64)
    }

    fn burst(&mut self) -> io::Result<()> {
        send_burst(&self.src, self.to)?;
        let mut got = 0;
        // Bounded: a backend that loses datagrams must not hang the start
        // (each wait returns within its own limit).
        for _ in 0..64 {
            got += recv_burst(&self.dst);
            if got >= BURST {
                return Ok(());
            }
            self.backend.poll(&mut self.sink)?;
        }
        Err(io::Error::other(format!(
            "{} forwarded {got} of {BURST} calibration datagrams",
            self.backend.name()
        )))
    }
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into; the clock always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Messages over `bufs` (`len` bytes of each), through `iovs`; the
/// pointers stay valid while both arrays do.
fn mmsgs(
    bufs: &mut [[u8; SIZE + 64]; BURST],
    iovs: &mut [libc::iovec; BURST],
    len: usize,
) -> [libc::mmsghdr; BURST] {
    // SAFETY: an all-zero mmsghdr (null pointers, zero lengths) is valid.
    let mut msgs: [libc::mmsghdr; BURST] = unsafe { std::mem::zeroed() };
    for ((m, iov), buf) in msgs.iter_mut().zip(iovs.iter_mut()).zip(bufs.iter_mut()) {
        *iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    msgs
}

/// One `sendmmsg` of [`BURST`] datagrams from `src` to `to`.
fn send_burst(src: &UdpSocket, to: SocketAddr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut bufs = [[0x80u8; SIZE + 64]; BURST];
    let mut iovs = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; BURST];
    let mut msgs = mmsgs(&mut bufs, &mut iovs, SIZE);
    let mut addr = super::sys::empty_sockaddr();
    let alen = super::sys::write_sockaddr(&to, &mut addr);
    for m in &mut msgs {
        m.msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
        m.msg_hdr.msg_namelen = alen;
    }
    // SAFETY: every message points at live buffers on this stack frame.
    let n = unsafe { libc::sendmmsg(src.as_raw_fd(), msgs.as_mut_ptr(), BURST as _, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads what has reached `dst` (one `recvmmsg`); how many datagrams.
fn recv_burst(dst: &UdpSocket) -> usize {
    use std::os::fd::AsRawFd;
    let mut bufs = [[0u8; SIZE + 64]; BURST];
    let mut iovs = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; BURST];
    let mut msgs = mmsgs(&mut bufs, &mut iovs, SIZE + 64);
    // SAFETY: every message points at live buffers on this stack frame.
    let n = unsafe {
        libc::recvmmsg(
            dst.as_raw_fd(),
            msgs.as_mut_ptr(),
            BURST as _,
            libc::MSG_DONTWAIT,
            ptr::null_mut(),
        )
    };
    usize::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_measures_both_backends_and_chooses_from_the_figures() {
        let o = calibrate().expect("calibration runs on loopback");
        assert_eq!(o.figures.epoll_ns.len(), ROUNDS);
        assert!(o.figures.epoll_ns.iter().all(|n| *n > 0));
        let uring = uring::Uring::new(EventFd::new().unwrap().raw()).is_ok();
        assert_eq!(o.figures.uring_ns.is_some(), uring);
        assert!(o.figures.uring_ns.iter().flatten().all(|n| *n > 0));
        assert_eq!(o.chosen, choose::choose(&o.figures));
        let (e, u) = o.figures.best();
        eprintln!(
            "calibration: epoll {e:?} ns, uring {u:?} ns, uring/epoll {:?} per mille, {:?}, took {:?}, cpu {:?}",
            o.figures.uring_per_mille(),
            o.chosen,
            o.took,
            o.cpu
        );
    }
}
