//! The io_uring backend: one multishot `recvmsg` per socket into a ring of
//! provided buffers, zero-copy `sendmsg` straight out of those buffers, and
//! one `io_uring_enter` per batch for both.
//!
//! # Why it is built this way
//! * **A buffer handed to the kernel stays alive until its completion.**
//!   Everything an in-flight operation points at (the provided buffers, the
//!   `msghdr`/`iovec`/address of every send, the receive `msghdr` template)
//!   lives in memory allocated once in [`Uring::new`] at fixed addresses
//!   (`mmap`ed regions and boxed slices that never move or grow). A send
//!   record goes back to its pool only on the send's completion; a provided
//!   buffer goes back to the buffer ring only when its receive has been
//!   processed *and* every send out of it has completed (a per-buffer
//!   reference count). A socket is closed only after its receive's final
//!   completion, so the kernel never reads from a recycled fd either. On
//!   drop, everything in flight is cancelled and waited for; if that fails
//!   the memory is leaked rather than unmapped under the kernel's feet.
//! * **Multishot until a completion without `IORING_CQE_F_MORE`.** One
//!   `RecvMsgMulti` keeps delivering datagrams until the kernel ends it:
//!   when the buffer ring is empty (`ENOBUFS`, i.e. overload), on a socket
//!   error (`ECONNREFUSED` from an ICMP error), or on cancellation. The
//!   relay must never stop reading a socket because of overload or errors
//!   (rtpengine does, and loses streams), so an ended receive of a live
//!   socket is re-armed at once, or, after `ENOBUFS`, as soon as buffers are
//!   back in the ring.
//! * **No allocation and no syscall per packet.** Receives arrive without a
//!   syscall each; sends are queued as SQEs while [`Backend::process`] runs
//!   and handed to the kernel by the worker's next [`Backend::wait`], in the
//!   same `io_uring_enter` that waits, so a batch costs one system call.
//!   They are submitted earlier only if the submission queue fills, or when
//!   a socket with no receive in flight is removed (its queued sends go to
//!   the kernel before the socket is closed).
//!
//! Behaviour otherwise matches the epoll backend: datagrams longer than
//! [`BUF_SIZE`] are dropped, `SO_RXQ_OVFL` drop counts are reported with
//! [`PacketSink::on_kernel_drops`], datagrams whose kernel stamp is older
//! than [`super::stale::STALE_AFTER_NS`] are dropped and reported with
//! [`PacketSink::on_stale`], send errors are reported and forgotten
//! (sends use `MSG_DONTWAIT`, so a full socket buffer is an error, not a
//! wait), and copies to a socket no longer here are skipped.
//!
//! Completions are matched to their operation through `user_data`: an op
//! kind in bits 32..40 and a record key in the low 32 bits. Receive records
//! are a slab keyed independently of [`Slot`]s and freed only after their
//! final completion, so a late completion can never be mistaken for the
//! operation of a socket that reused the same slot index.
//!
//! Layout: [`recv`] arms receives and hands datagrams to the sink, [`send`]
//! queues the copies and takes their completions, [`shutdown`] drains the
//! ring on drop, [`buffers`] holds the memory the kernel reads and writes.

use std::io;
use std::net::UdpSocket;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::epoll::BUF_SIZE;
use super::sys::{self, CONTROL_LEN};
use super::{Backend, PacketSink, HEAD_LEN};
use rtpmesh_flow::flow::Slot;

mod buffers;
mod recv;
mod send;
mod shutdown;

use buffers::{BufRing, SendPool};

/// Submission queue entries.
const SQ_ENTRIES: u32 = 4096;
/// Completion queue entries: receives complete without any SQE of ours, so
/// the completion queue is made larger than the submission queue.
const CQ_ENTRIES: u32 = 4 * SQ_ENTRIES;
/// Provided buffers in the buffer ring (a power of two, at most 32768).
pub const BUFFERS: u16 = 4096;
/// Buffer group id of the ring.
const BGID: u16 = 0;
/// Size of `struct io_uring_recvmsg_out`, which heads every buffer.
const RECVMSG_OUT_LEN: usize = 16;
/// Room reserved for the source address in each buffer.
const NAME_LEN: usize = size_of::<libc::sockaddr_storage>();
/// One provided buffer: header, address, control data and a payload of
/// [`BUF_SIZE`] as in the epoll backend, rounded to a cache line so every
/// buffer (and its control data, read as `cmsghdr`s) stays aligned.
const BUF_LEN: usize = (RECVMSG_OUT_LEN + NAME_LEN + CONTROL_LEN + BUF_SIZE).next_multiple_of(64);
/// Send records: sends in flight at once. More than one buffer ring's worth
/// of single copies; beyond that a copy is dropped and reported.
const SEND_RECORDS: usize = 2 * BUFFERS as usize;
/// Longest sleep in [`Backend::wait`], in nanoseconds.
const WAIT_LIMIT_NS: u32 = 250_000_000;
/// Completions handled per batch (copied out of the ring first).
const CQE_BATCH: usize = 256;

/// `user_data` layout: kind above bit 32, record key below.
const KIND_SHIFT: u32 = 32;
const OP_RECV: u64 = 1 << KIND_SHIFT;
const OP_SEND: u64 = 2 << KIND_SHIFT;
const OP_WAKE: u64 = 3 << KIND_SHIFT;
const OP_CANCEL: u64 = 4 << KIND_SHIFT;
const KEY_MASK: u64 = u32::MAX as u64;

/// When a batch of completions is handled: the monotonic instant the flow
/// core takes, and the realtime nanoseconds datagram stamps are compared to.
#[derive(Clone, Copy)]
pub(super) struct Now {
    mono: Instant,
    real_ns: u64,
}

/// One socket's multishot receive.
#[derive(Default)]
struct RecvOp {
    slot: Option<Slot>,
    /// Kept open until the receive's final completion.
    socket: Option<UdpSocket>,
    /// A receive was queued and its final completion has not arrived.
    armed: bool,
    /// The socket was removed; the record goes once the receive ends.
    removing: bool,
    /// The cancel for a removed socket has been queued.
    cancel_sent: bool,
}

/// The io_uring backend.
pub struct Uring {
    // Declared first so it is dropped (closed) before the memory it used.
    ring: IoUring,
    bufs: BufRing,
    sends: SendPool,
    /// Template for every receive: only the name and control lengths count.
    rx_msg: Box<libc::msghdr>,
    recvs: Vec<RecvOp>,
    recv_free: Vec<u32>,
    /// By slot index: the slot and its receive record.
    sockets: Vec<Option<(Slot, u32)>>,
    wake_fd: RawFd,
    wake_armed: bool,
    /// A wake-up completed since the last [`Backend::take_wake`].
    woken: bool,
    /// Some receive, cancel or the wake poll could not be queued (buffers
    /// exhausted, or the submission queue could not be flushed): retry at
    /// the end of the next poll.
    retry: bool,
    /// Receives ended by `ENOBUFS` (overload) so far.
    enobufs: u64,
}

/// Whether `fd` is readable now (without reading it).
fn fd_readable(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

fn would_retry(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}

/// Queues `e`, submitting to make room when the submission queue is full.
/// Returns false only when the queue cannot be flushed.
fn push(ring: &mut IoUring, e: &squeue::Entry) -> bool {
    for _ in 0..4 {
        // SAFETY: every entry built by this backend points only at memory it
        // owns and keeps alive until the entry's completion (module docs).
        if unsafe { ring.submission().push(e) }.is_ok() {
            return true;
        }
        match ring.submit() {
            Ok(_) => {}
            Err(e) if would_retry(&e) => {}
            Err(_) => return false,
        }
    }
    false
}

fn build_ring() -> io::Result<IoUring> {
    // Cooperative task running: a datagram arriving while the worker runs
    // in user space no longer interrupts it (an IPI and a pass through the
    // kernel per arrival: 11% of the relay's CPU at 50k pps in a profile);
    // the receive is completed at the worker's next `io_uring_enter`, which
    // every loop makes anyway. A worker asleep in that call is still woken
    // at once (the kernel wakes a task in an interruptible sleep; it only
    // skips the IPI to a running one). SUBMIT_ALL keeps one bad SQE from
    // holding back the rest of a batch. Both are optional niceties.
    let tuned = IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .setup_submit_all()
        .setup_coop_taskrun()
        .build(SQ_ENTRIES);
    match tuned {
        Ok(r) => Ok(r),
        Err(_) => IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES),
    }
}

impl Uring {
    /// Creates the ring and its buffers, or fails if the kernel lacks what
    /// this backend needs (then `auto` uses epoll).
    pub fn new(wake_fd: RawFd) -> io::Result<Self> {
        let ring = build_ring()?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        // Multishot recvmsg (6.0) has no opcode of its own; SENDMSG_ZC came
        // with 6.1, so its presence proves a kernel that has it.
        for (code, name) in [
            (opcode::RecvMsgMulti::CODE, "recvmsg"),
            (opcode::SendMsg::CODE, "sendmsg"),
            (opcode::PollAdd::CODE, "poll_add"),
            (opcode::AsyncCancel::CODE, "async_cancel"),
            (opcode::SendMsgZc::CODE, "sendmsg_zc (kernel >= 6.1)"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("io_uring lacks {name}"),
                ));
            }
        }
        let mut bufs = BufRing::new()?;
        // SAFETY: the entries mapping holds BUFFERS entries, is page aligned,
        // and lives in `self.bufs` until after the ring is closed (field
        // order, and Drop leaks it if the kernel may still use it).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries.ptr as u64,
                BUFFERS,
                BGID,
                0,
            )?;
        }
        for bid in 0..BUFFERS {
            bufs.push(bid);
        }
        bufs.publish();

        // SAFETY: an all-zero msghdr is valid; only the lengths matter to a
        // multishot receive, which lays name and control out in the buffer.
        let mut rx_msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        rx_msg.msg_namelen = NAME_LEN as libc::socklen_t;
        rx_msg.msg_controllen = CONTROL_LEN as _;

        let mut me = Self {
            ring,
            bufs,
            sends: SendPool::new(),
            rx_msg,
            recvs: Vec::new(),
            recv_free: Vec::new(),
            sockets: Vec::new(),
            wake_fd,
            wake_armed: false,
            woken: false,
            retry: false,
            enobufs: 0,
        };
        if !me.arm_wake() {
            return Err(io::Error::other("cannot queue the wake-up poll"));
        }
        me.ring.submit()?;
        Ok(me)
    }

    /// Receives ended by buffer exhaustion so far (for tests and logs).
    pub fn enobufs(&self) -> u64 {
        self.enobufs
    }

    fn complete(&mut self, ud: u64, res: i32, flags: u32, now: Now, sink: &mut dyn PacketSink) {
        let key = (ud & KEY_MASK) as u32;
        match ud & !KEY_MASK {
            OP_RECV => self.on_recv(key, res, flags, now, sink),
            OP_SEND => self.on_send(key, res, sink),
            // The worker resets the eventfd itself, before it reads its
            // commands: draining it here could swallow a wake-up for a
            // command sent after that read.
            OP_WAKE => {
                self.woken = true;
                self.wake_armed = false;
                self.arm_wake();
            }
            // Whether the cancel found the receive or not, the receive's own
            // final completion is what closes the socket.
            _ => {}
        }
    }

    /// Handles every completion ready now (up to a bound, so queued sends
    /// are not held back forever under load).
    fn reap(&mut self, sink: &mut dyn PacketSink) {
        let now = Now {
            mono: Instant::now(),
            real_ns: sys::realtime_ns(),
        };
        let mut batch = [(0u64, 0i32, 0u32); CQE_BATCH];
        let mut done = 0;
        while done < CQ_ENTRIES as usize {
            let n = {
                let mut cq = self.ring.completion();
                let mut n = 0;
                for (slot, e) in batch.iter_mut().zip(&mut cq) {
                    *slot = (e.user_data(), e.result(), e.flags());
                    n += 1;
                }
                n
            };
            if n == 0 {
                break;
            }
            for &(ud, res, flags) in &batch[..n] {
                self.complete(ud, res, flags, now, sink);
            }
            done += n;
        }
    }
}

impl Backend for Uring {
    fn add_socket(&mut self, slot: Slot, socket: UdpSocket) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        // Drop counting and stamps are best effort: a kernel without them
        // still relays (unstamped datagrams are never stale).
        let _ = sys::enable_rxq_ovfl(&socket);
        let _ = sys::enable_rx_timestamps(&socket);
        let i = slot.index as usize;
        if let Some(Some((old, _))) = self.sockets.get(i).copied() {
            self.remove_socket(old);
        }
        let key = match self.recv_free.pop() {
            Some(k) => k,
            None => {
                self.recvs.push(RecvOp::default());
                (self.recvs.len() - 1) as u32
            }
        };
        self.recvs[key as usize] = RecvOp {
            slot: Some(slot),
            socket: Some(socket),
            ..RecvOp::default()
        };
        if self.sockets.len() <= i {
            self.sockets.resize_with(i + 1, || None);
        }
        self.sockets[i] = Some((slot, key));
        self.arm_recv(key);
        Ok(())
    }

    fn remove_socket(&mut self, slot: Slot) -> bool {
        let i = slot.index as usize;
        let key = match self.sockets.get(i) {
            Some(Some((s, key))) if *s == slot => *key,
            _ => return true,
        };
        self.sockets[i] = None;
        let op = &mut self.recvs[key as usize];
        op.removing = true;
        if op.armed {
            // Closed on the receive's final completion, reported through
            // `PacketSink::on_closed`.
            self.cancel_recv(key);
            false
        } else {
            // No receive in flight (ended, awaiting re-arm). Sends out of
            // this socket may still sit in the submission queue: hand them to
            // the kernel (which then holds its own file reference) first.
            let _ = self.ring.submit();
            self.free_recv(key);
            true
        }
    }

    fn wait(&mut self) -> io::Result<()> {
        // Bounded, as a safety net: should a wake-up ever go missing (it did
        // with a multishot poll on the eventfd, see `arm_wake`), the worker
        // still looks at its command queue this often, and says so. Idle,
        // that is four cheap wake-ups a second.
        let ts = types::Timespec::new().nsec(WAIT_LIMIT_NS);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {
                if fd_readable(self.wake_fd) {
                    tracing::warn!(
                        armed = self.wake_armed,
                        "eventfd signalled but its poll did not complete"
                    );
                }
                Ok(())
            }
            // Interrupted, or the kernel wants its completion queue emptied
            // first: handle what is there.
            Err(e) if would_retry(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn process(&mut self, sink: &mut dyn PacketSink) -> io::Result<()> {
        self.reap(sink);
        self.bufs.publish();
        if self.retry {
            self.sweep();
        }
        // No submit here: the worker's next `wait` submits everything queued
        // (the sends of this batch) in the same system call that waits, so a
        // batch costs one system call, not two.
        Ok(())
    }

    fn take_wake(&mut self) -> bool {
        std::mem::take(&mut self.woken)
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn socket_fd(&self, slot: Slot) -> Option<RawFd> {
        Self::socket_fd(self, slot)
    }
}
