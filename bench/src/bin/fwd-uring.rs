//! Minimal forwarder, io_uring edition: the machine's practical limit for
//! rtpmesh's uring backend. Same IO technique as that backend (one multishot
//! `recvmsg` per socket into a provided-buffer ring; sends queued as
//! `sendmsg` SQEs and submitted with the next wait, one `io_uring_enter` for
//! both), simplified: each send copies the datagram into its own record, so
//! a receive buffer goes back to the ring at once (no reference counts).
//! No flow table, no counters.
//!
//! `fwd-uring [NG_ADDR] [IFACE]` (default 127.0.0.1:22401 127.0.0.1).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::{self, Receiver};

use io_uring::{cqueue, opcode, types, IoUring};
use rtpmesh_bench::fwd::{self, from_sockaddr, from_token, sockaddr, token, Pair, Port};

const BGID: u16 = 0;
const BUFFERS: u16 = 4096;
const BUF_LEN: usize = 2048;
const SENDS: usize = 4096;
const SEND_LEN: usize = 1536;
const OP_SEND: u64 = 1 << 63;
const OP_WAKE: u64 = 1 << 62;

/// A send in flight: its arguments and its copy of the datagram.
struct SendRec {
    msg: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_in,
    buf: [u8; SEND_LEN],
}

fn mmap(len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh anonymous mapping, never unmapped (lives as long as
    // the process, as the kernel may use it until then).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

struct BufRing {
    entries: *mut types::BufRingEntry,
    bufs: *mut u8,
    tail: u16,
}

impl BufRing {
    fn push(&mut self, bid: u16) {
        // SAFETY: index < BUFFERS entries; entry past the published tail.
        let e = unsafe { &mut *self.entries.add(usize::from(self.tail & (BUFFERS - 1))) };
        // SAFETY: bid < BUFFERS, inside the buffers mapping.
        e.set_addr(unsafe { self.bufs.add(usize::from(bid) * BUF_LEN) } as u64);
        e.set_len(BUF_LEN as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field of entry 0, page aligned; release so the
        // kernel sees the entries first.
        unsafe {
            let t = types::BufRingEntry::tail(self.entries).cast::<AtomicU16>();
            (*t).store(self.tail, Ordering::Release);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let ng = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:22401".into())
        .parse()?;
    let iface = args.next().unwrap_or_else(|| "127.0.0.1".into()).parse()?;
    let (mut ring, mut br) = ring_with_buffers()?;
    let (efd, rx) = serve_ng(ng, iface)?;

    // SAFETY: all-zero msghdr is valid; only the lengths matter to a
    // multishot receive.
    let mut rx_msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    rx_msg.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
    // Send records live in one boxed slice that never moves.
    // SAFETY: all-zero SendRec (plain C structs and bytes) is valid.
    let mut sends: Box<[SendRec]> = (0..SENDS).map(|_| unsafe { std::mem::zeroed() }).collect();
    let mut free: Vec<usize> = (0..SENDS).rev().collect();

    poll_wake(&mut ring, efd);
    let mut rearm: Vec<u64> = Vec::new();
    let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(4 * SENDS);
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINTR)
                    || e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e.into()),
        }
        cqes.clear();
        cqes.extend(
            ring.completion()
                .map(|e| (e.user_data(), e.result(), e.flags())),
        );
        // Receives stopped by ENOBUFS are re-armed after this batch has
        // returned its buffers.
        for t in rearm.drain(..) {
            arm(&mut ring, &rx_msg, t);
        }
        for &(ud, res, flags) in &cqes {
            if ud & OP_SEND != 0 {
                free.push((ud & !OP_SEND) as usize);
                continue;
            }
            if ud == OP_WAKE {
                on_wake(&mut ring, &rx_msg, efd, &rx, flags);
                continue;
            }
            // A receive on a pair's side.
            // SAFETY: user data of receives are tokens.
            let (pair, side) = unsafe { from_token(ud) };
            if let Some(bid) = cqueue::buffer_select(flags) {
                // SAFETY: the kernel filled this buffer (res bytes).
                let buf = unsafe {
                    std::slice::from_raw_parts(
                        br.bufs.add(usize::from(bid) * BUF_LEN),
                        res.max(0) as usize,
                    )
                };
                let (from, to) = (&pair.ports[side], &pair.ports[side ^ 1]);
                forward(&mut ring, &rx_msg, &mut sends, &mut free, buf, from, to);
                br.push(bid);
            }
            if !cqueue::more(flags) {
                rearm.push(ud);
            }
        }
        br.publish();
    }
}

/// The ring, with every buffer of a fresh provided-buffer ring handed to it.
fn ring_with_buffers() -> anyhow::Result<(IoUring, BufRing)> {
    let ring: IoUring = IoUring::builder()
        .setup_cqsize(4 * SENDS as u32)
        .setup_coop_taskrun()
        .build(SENDS as u32)?;
    let mut br = BufRing {
        entries: mmap(usize::from(BUFFERS) * size_of::<types::BufRingEntry>())?.cast(),
        bufs: mmap(usize::from(BUFFERS) * BUF_LEN)?,
        tail: 0,
    };
    // SAFETY: the entries mapping is page aligned, BUFFERS long, never freed.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(br.entries as u64, BUFFERS, BGID, 0)?
    };
    for bid in 0..BUFFERS {
        br.push(bid);
    }
    br.publish();
    Ok((ring, br))
}

/// Starts the ng thread. New pairs come from it over the channel, with the
/// eventfd signalled to wake the ring.
fn serve_ng(ng: SocketAddr, iface: Ipv4Addr) -> anyhow::Result<(RawFd, Receiver<&'static Pair>)> {
    // SAFETY: plain syscall.
    let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    anyhow::ensure!(efd >= 0, "eventfd: {}", io::Error::last_os_error());
    let (tx, rx) = mpsc::channel::<&'static Pair>();
    std::thread::spawn(move || {
        let r = fwd::serve_ng(ng, iface, |pair| {
            let _ = tx.send(pair);
            let one = 1u64;
            // SAFETY: 8 bytes from a valid u64 to our eventfd.
            unsafe { libc::write(efd, (&one as *const u64).cast(), 8) };
        });
        eprintln!("fwd-uring: ng: {r:?}");
        std::process::exit(1);
    });
    Ok((efd, rx))
}

/// Arms the receives of every new pair, and the wake-up poll again if the
/// kernel ended it.
fn on_wake(
    ring: &mut IoUring,
    rx_msg: &libc::msghdr,
    efd: RawFd,
    rx: &Receiver<&'static Pair>,
    flags: u32,
) {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a valid u64.
    unsafe { libc::read(efd, (&mut v as *mut u64).cast(), 8) };
    while let Ok(pair) = rx.try_recv() {
        for side in 0..2 {
            arm(ring, rx_msg, token(pair, side));
        }
    }
    if !cqueue::more(flags) {
        poll_wake(ring, efd);
    }
}

/// Queues the (multishot) poll of the wake-up eventfd.
fn poll_wake(ring: &mut IoUring, efd: RawFd) {
    let e = opcode::PollAdd::new(types::Fd(efd), libc::POLLIN as u32)
        .multi(true)
        .build()
        .user_data(OP_WAKE);
    // SAFETY: the entry refers to no memory of ours.
    while unsafe { ring.submission().push(&e) }.is_err() {
        let _ = ring.submit();
    }
}

/// Queues the multishot receive of the pair side named by token `t`.
fn arm(ring: &mut IoUring, rx_msg: &libc::msghdr, t: u64) {
    // SAFETY: from a token of a leaked pair.
    let (pair, side) = unsafe { from_token(t) };
    let e = opcode::RecvMsgMulti::new(types::Fd(pair.ports[side].fd()), rx_msg, BGID)
        .build()
        .user_data(t);
    // SAFETY: rx_msg lives for the whole program.
    while unsafe { ring.submission().push(&e) }.is_err() {
        let _ = ring.submit();
    }
}

/// Latches `from` to the datagram's source and queues a copy of it to
/// `to`'s party (if known, and a send record is free).
#[inline]
fn forward(
    ring: &mut IoUring,
    rx_msg: &libc::msghdr,
    sends: &mut [SendRec],
    free: &mut Vec<usize>,
    buf: &[u8],
    from: &Port,
    out: &Port,
) {
    let Ok(m) = types::RecvMsgOut::parse(buf, rx_msg) else {
        return;
    };
    let name = m.name_data();
    if name.len() < size_of::<libc::sockaddr_in>() || m.is_payload_truncated() {
        return;
    }
    // SAFETY: the kernel wrote a sockaddr_in here.
    let src = unsafe { name.as_ptr().cast::<libc::sockaddr_in>().read_unaligned() };
    from.latch(from_sockaddr(&src));
    let payload = m.payload_data();
    if let (Some(dest), Some(k)) = (out.remote(), free.pop()) {
        let r = &mut sends[k];
        let n = payload.len().min(SEND_LEN);
        r.buf[..n].copy_from_slice(&payload[..n]);
        r.addr = sockaddr(dest);
        r.iov = libc::iovec {
            iov_base: r.buf.as_mut_ptr().cast(),
            iov_len: n,
        };
        r.msg.msg_name = (&mut r.addr as *mut libc::sockaddr_in).cast();
        r.msg.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
        r.msg.msg_iov = &mut r.iov;
        r.msg.msg_iovlen = 1;
        let e = opcode::SendMsg::new(types::Fd(out.fd()), &r.msg)
            .flags(libc::MSG_DONTWAIT as u32)
            .build()
            .user_data(OP_SEND | k as u64);
        // SAFETY: the record stays untouched until its completion returns
        // it to `free`.
        while unsafe { ring.submission().push(&e) }.is_err() {
            let _ = ring.submit();
        }
    }
}
