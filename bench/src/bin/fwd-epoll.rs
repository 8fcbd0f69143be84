//! Minimal forwarder, epoll edition: the machine's practical limit for
//! rtpmesh's epoll backend. Same IO as that backend (edge-triggered epoll,
//! `recvmmsg` until a short batch, one `sendmmsg` per batch), and nothing
//! else: no flow table, no counters, no timeouts.
//!
//! `fwd-epoll [NG_ADDR] [IFACE]` (default 127.0.0.1:22400 127.0.0.1).

use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddr};

use rtpmesh_bench::fwd::{self, from_sockaddr, from_token, sockaddr, token, Port};

const BATCH: usize = 32;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let ng = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:22400".into())
        .parse()?;
    let iface = args.next().unwrap_or_else(|| "127.0.0.1".into()).parse()?;
    let ep = epoll_serving_ng(ng, iface)?;
    let mut batch = Batch::new();
    // SAFETY: all-zero epoll_events are valid.
    let mut evs: Vec<libc::epoll_event> = vec![unsafe { std::mem::zeroed() }; 1024];
    loop {
        // SAFETY: valid epoll fd and event buffer.
        let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, -1) };
        for ev in &evs[..n.max(0) as usize] {
            // SAFETY: only tokens from `token` are registered.
            let (pair, side) = unsafe { from_token(ev.u64) };
            batch.forward(&pair.ports[side], &pair.ports[side ^ 1]);
        }
    }
}

/// An epoll instance, and the ng thread that registers every new pair's
/// sockets with it (edge-triggered).
fn epoll_serving_ng(ng: SocketAddr, iface: Ipv4Addr) -> anyhow::Result<libc::c_int> {
    // SAFETY: plain syscall.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    anyhow::ensure!(
        ep >= 0,
        "epoll_create1: {}",
        std::io::Error::last_os_error()
    );
    std::thread::spawn(move || {
        // epoll_ctl is thread-safe: the ng thread registers pairs itself.
        let r = fwd::serve_ng(ng, iface, |pair| {
            for side in 0..2 {
                let mut ev = libc::epoll_event {
                    events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                    u64: token(pair, side),
                };
                // SAFETY: valid fds and event.
                unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, pair.ports[side].fd(), &mut ev) };
            }
        });
        eprintln!("fwd-epoll: ng: {r:?}");
        std::process::exit(1);
    });
    Ok(ep)
}

/// The receive buffers, shared by every socket, with the `mmsghdr`s that
/// point into them (heap memory: the pointers survive moves of `Batch`).
struct Batch {
    bufs: Vec<[u8; 2048]>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Self {
        let mut bufs = vec![[0u8; 2048]; BATCH];
        // SAFETY: all-zero sockaddr_in / mmsghdr are valid.
        let mut addrs: Vec<libc::sockaddr_in> = vec![unsafe { std::mem::zeroed() }; BATCH];
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
        for i in 0..BATCH {
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        Self {
            bufs,
            addrs,
            iovs,
            msgs,
        }
    }

    /// Reads `rx` until a short batch and sends everything to `tx`'s party.
    #[inline]
    fn forward(&mut self, rx: &Port, tx: &Port) {
        let Self {
            bufs,
            addrs,
            iovs,
            msgs,
        } = self;
        // Bounded: 64 batches per readiness event; edge-triggered, so a
        // socket left non-empty is picked up by the next event only if
        // more arrives: 64 x 32 is far beyond a socket's queue.
        for _ in 0..64 {
            for m in msgs.iter_mut() {
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
            }
            for (i, iov) in iovs.iter_mut().enumerate() {
                iov.iov_len = bufs[i].len();
            }
            // SAFETY: msgs point at live buffers, iovecs and addresses.
            let got = unsafe {
                libc::recvmmsg(
                    rx.fd(),
                    msgs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if got <= 0 {
                break;
            }
            let got = got as usize;
            // Latch to the last source, then send everything to the
            // other side's party, straight out of the receive buffers.
            rx.latch(from_sockaddr(&addrs[got - 1]));
            if let Some(dest) = tx.remote() {
                for i in 0..got {
                    iovs[i].iov_len = msgs[i].msg_len as usize;
                    addrs[i] = sockaddr(dest);
                }
                // SAFETY: as above; errors (full buffer, unreachable
                // peer) drop the batch, as a relay would.
                unsafe {
                    libc::sendmmsg(tx.fd(), msgs.as_mut_ptr(), got as u32, libc::MSG_DONTWAIT)
                };
            }
            if got < BATCH {
                break;
            }
        }
    }
}
