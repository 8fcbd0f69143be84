//! The epoll backend: mio for readiness, `recvmmsg`/`sendmmsg` for batches.
//!
//! Readiness is edge-triggered, so a socket is read until the kernel has
//! nothing more; a batch shorter than [`RX_BATCH`] already proves that, so
//! the usual extra `EAGAIN` call is skipped. Copies produced by one receive
//! batch are sent with one `sendmmsg` per run of the same sending socket.
//! Each datagram comes with its arrival stamp (`SO_TIMESTAMPNS`); one that
//! waited longer than [`super::stale::STALE_AFTER_NS`] is dropped unseen
//! ([`super::stale`]).

use std::io;
use std::mem::size_of;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::stale;
use super::sys::{self, CONTROL_LEN};
use super::{Backend, PacketSink, Transmit, HEAD_LEN};
use rtpmesh_flow::flow::{Slot, MAX_OUTPUTS};

/// Datagrams read per `recvmmsg`.
pub const RX_BATCH: usize = 32;
/// Receive calls per socket per turn (up to 256 datagrams).
const TURN_BATCHES: usize = 8;
/// Largest datagram relayed; longer ones arrive truncated and are dropped.
pub const BUF_SIZE: usize = 2048;
const TX_CAP: usize = RX_BATCH * MAX_OUTPUTS;
const EVENTS: usize = 1024;
const WAKE: Token = Token(usize::MAX);

struct Rx {
    bufs: Box<[[u8; BUF_SIZE]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    control: Box<[[u8; CONTROL_LEN]]>,
    iovs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
    /// Leading messages whose lengths and flags the kernel may have
    /// rewritten since they were last reset: at low rates a batch is one
    /// datagram, so resetting all 32 every call would cost more than the
    /// batch's own bookkeeping.
    dirty: usize,
}

struct Tx {
    /// (index of the received buffer, sending socket)
    items: Vec<(usize, Slot)>,
    addrs: Box<[libc::sockaddr_storage]>,
    /// Per message: the head's storage, alive until `flush` has sent it.
    heads: Box<[[u8; HEAD_LEN]]>,
    /// Two per message: the head (if any), then the received bytes.
    iovs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
}

/// The epoll/mio backend.
pub struct Epoll {
    poll: Poll,
    events: Events,
    ready: Vec<usize>,
    /// Sockets a turn left with data, served next turn (and the buffer for
    /// the turn after).
    left: Vec<usize>,
    next_left: Vec<usize>,
    /// By socket index: already in the list being built this turn.
    queued: Vec<bool>,
    woken: bool,
    sockets: Vec<Option<(Slot, UdpSocket)>>,
    rx: Rx,
    tx: Tx,
}

fn zeroed_msgs(n: usize) -> Box<[libc::mmsghdr]> {
    // SAFETY: an all-zero mmsghdr (null pointers, zero lengths) is valid.
    (0..n).map(|_| unsafe { std::mem::zeroed() }).collect()
}

fn empty_iovs(n: usize) -> Box<[libc::iovec]> {
    (0..n)
        .map(|_| libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        })
        .collect()
}

impl Rx {
    /// One `recvmmsg` into the whole batch; the kernel's return value
    /// (messages read, or negative with `errno` set).
    #[inline]
    fn recv(&mut self, fd: RawFd) -> libc::c_int {
        for m in &mut self.msgs[..self.dirty] {
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_controllen = CONTROL_LEN as _;
            m.msg_hdr.msg_flags = 0;
        }
        // SAFETY: msgs/iovs/addrs/control are valid, live buffers of the
        // lengths given.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                RX_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        // The kernel writes back only the messages it filled; after an
        // error, reset them all to be safe (errors are rare).
        self.dirty = usize::try_from(n).unwrap_or(RX_BATCH);
        n
    }
}

impl Tx {
    /// Fills message `k` with copy `t` of received buffer `i`, whose bytes
    /// to send are `body`.
    ///
    /// The head (a copy of 32 bytes into this message's own storage) goes
    /// first, then the body straight from the receive buffer: the payload
    /// itself is never copied.
    #[inline]
    fn queue(&mut self, k: usize, i: usize, t: &Transmit, body: &[u8]) {
        self.items.push((i, t.via));
        let alen = sys::write_sockaddr(&t.dest, &mut self.addrs[k]);
        let mut n = 0;
        if let Some(head) = &t.head {
            self.heads[k] = *head;
            self.iovs[2 * k] = libc::iovec {
                iov_base: self.heads[k].as_mut_ptr().cast(),
                iov_len: HEAD_LEN,
            };
            n = 1;
        }
        self.iovs[2 * k + n] = libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        };
        let h = &mut self.msgs[k].msg_hdr;
        h.msg_name = (&mut self.addrs[k] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = alen;
        h.msg_iov = &mut self.iovs[2 * k];
        h.msg_iovlen = n + 1;
    }
}

impl Epoll {
    /// A backend that also wakes up when `wake_fd` becomes readable.
    pub fn new(wake_fd: RawFd) -> io::Result<Self> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut SourceFd(&wake_fd), WAKE, Interest::READABLE)?;
        let mut rx = Rx {
            bufs: vec![[0u8; BUF_SIZE]; RX_BATCH].into_boxed_slice(),
            addrs: (0..RX_BATCH).map(|_| sys::empty_sockaddr()).collect(),
            control: vec![[0u8; CONTROL_LEN]; RX_BATCH].into_boxed_slice(),
            iovs: empty_iovs(RX_BATCH),
            msgs: zeroed_msgs(RX_BATCH),
            dirty: RX_BATCH,
        };
        // The boxes never move their contents, so these pointers stay valid
        // for the backend's life.
        for i in 0..RX_BATCH {
            rx.iovs[i].iov_base = rx.bufs[i].as_mut_ptr().cast();
            rx.iovs[i].iov_len = BUF_SIZE;
            let h = &mut rx.msgs[i].msg_hdr;
            h.msg_name = (&mut rx.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_iov = &mut rx.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = rx.control[i].as_mut_ptr().cast();
        }
        let tx = Tx {
            items: Vec::with_capacity(TX_CAP),
            addrs: (0..TX_CAP).map(|_| sys::empty_sockaddr()).collect(),
            heads: vec![[0u8; HEAD_LEN]; TX_CAP].into_boxed_slice(),
            iovs: empty_iovs(2 * TX_CAP),
            msgs: zeroed_msgs(TX_CAP),
        };
        Ok(Self {
            poll,
            events: Events::with_capacity(EVENTS),
            ready: Vec::with_capacity(EVENTS),
            left: Vec::new(),
            next_left: Vec::new(),
            queued: Vec::new(),
            woken: false,
            sockets: Vec::new(),
            rx,
            tx,
        })
    }

    fn socket_fd(&self, slot: Slot) -> Option<RawFd> {
        match self.sockets.get(slot.index as usize) {
            Some(Some((s, sock))) if *s == slot => Some(sock.as_raw_fd()),
            _ => None,
        }
    }

    /// Reads `slot`'s socket until it is empty, forwarding as it goes.
    ///
    /// At most [`TURN_BATCHES`] receive calls per turn, so one flooded
    /// socket cannot keep the worker from every other stream; returns `true`
    /// when it stopped with data left, and the socket is served again next
    /// turn.
    fn drain_socket(&mut self, slot: Slot, sink: &mut dyn PacketSink) -> bool {
        let Some(fd) = self.socket_fd(slot) else {
            return false;
        };
        for _ in 0..TURN_BATCHES {
            let n = self.rx.recv(fd);
            if n < 0 {
                match io::Error::last_os_error().kind() {
                    io::ErrorKind::WouldBlock => return false,
                    // A pending ICMP error (ECONNREFUSED) is reported once on
                    // receive and the queue behind it is intact: read on.
                    // Each try counts against the turn, so an error that
                    // repeats cannot hold the worker here.
                    _ => continue,
                }
            }
            let n = n as usize;
            let now = Instant::now();
            let now_ns = sys::realtime_ns();
            self.tx.items.clear();
            for i in 0..n {
                let m = &self.rx.msgs[i];
                // SAFETY: the kernel filled this message's control buffer.
                let info = unsafe { sys::parse_control(&m.msg_hdr) };
                if let Some(drops) = info.drops {
                    sink.on_kernel_drops(slot, drops);
                }
                if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    continue;
                }
                if info.received_ns.is_some_and(|t| stale::is_stale(t, now_ns)) {
                    sink.on_stale(slot);
                    continue;
                }
                // SAFETY: the kernel wrote msg_namelen bytes of address.
                let src = unsafe {
                    sys::read_sockaddr(
                        (&self.rx.addrs[i] as *const libc::sockaddr_storage).cast(),
                        m.msg_hdr.msg_namelen as usize,
                    )
                };
                let Some(src) = src else { continue };
                let len = m.msg_len as usize;
                let sends = sink.on_packet(now, slot, src, &mut self.rx.bufs[i], len);
                for t in sends {
                    let k = self.tx.items.len();
                    if k == TX_CAP {
                        break;
                    }
                    let Some(body) = t.body(&self.rx.bufs[i], len) else {
                        continue;
                    };
                    self.tx.queue(k, i, t, body);
                }
            }
            self.flush(sink);
            if n < RX_BATCH {
                return false;
            }
        }
        true
    }

    /// Sends the queued copies, one `sendmmsg` per run of the same socket.
    fn flush(&mut self, sink: &mut dyn PacketSink) {
        let total = self.tx.items.len();
        let mut start = 0;
        while start < total {
            let via = self.tx.items[start].1;
            let mut end = start + 1;
            while end < total && self.tx.items[end].1 == via {
                end += 1;
            }
            if let Some(fd) = self.socket_fd(via) {
                self.send_run(fd, via, start, end, sink);
            }
            start = end;
        }
        self.tx.items.clear();
    }

    fn send_run(
        &mut self,
        fd: RawFd,
        via: Slot,
        mut start: usize,
        end: usize,
        sink: &mut dyn PacketSink,
    ) {
        while start < end {
            // SAFETY: messages start..end point at live buffers set up by
            // drain_socket in this same batch.
            let sent = unsafe {
                libc::sendmmsg(
                    fd,
                    self.tx.msgs[start..end].as_mut_ptr(),
                    (end - start) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if sent < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Skip the message that failed (unreachable peer, full
                // buffer) and carry on with the rest.
                sink.on_send_error(via, e);
                start += 1;
            } else {
                start += sent as usize;
            }
        }
    }
}

impl Backend for Epoll {
    fn add_socket(&mut self, slot: Slot, socket: UdpSocket) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        // Drop counting and stamps are best effort: a kernel without them
        // still relays (unstamped datagrams are never stale).
        let _ = sys::enable_rxq_ovfl(&socket);
        let _ = sys::enable_rx_timestamps(&socket);
        let fd = socket.as_raw_fd();
        self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(slot.index as usize),
            Interest::READABLE,
        )?;
        let i = slot.index as usize;
        if self.sockets.len() <= i {
            self.sockets.resize_with(i + 1, || None);
            self.queued.resize(i + 1, false);
        }
        self.sockets[i] = Some((slot, socket));
        // Room for every socket in the per-turn lists, so turns never
        // allocate.
        let n = self.sockets.len();
        for v in [&mut self.ready, &mut self.left, &mut self.next_left] {
            v.reserve(n.saturating_sub(v.len()));
        }
        Ok(())
    }

    fn remove_socket(&mut self, slot: Slot) -> bool {
        let i = slot.index as usize;
        if let Some(entry) = self.sockets.get_mut(i) {
            if matches!(entry, Some((s, _)) if *s == slot) {
                if let Some((_, sock)) = entry.take() {
                    let fd = sock.as_raw_fd();
                    let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
                }
            }
        }
        true
    }

    fn wait(&mut self) -> io::Result<()> {
        // With data left on some socket, only look for news.
        let timeout = (!self.left.is_empty()).then_some(std::time::Duration::ZERO);
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.events.clear();
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.woken |= self.events.iter().any(|ev| ev.token() == WAKE);
        Ok(())
    }

    fn take_wake(&mut self) -> bool {
        std::mem::take(&mut self.woken)
    }

    fn process(&mut self, sink: &mut dyn PacketSink) -> io::Result<()> {
        // Tokens are copied out first: draining needs `&mut self`. The
        // vectors keep their capacity (reserved as sockets are added), so
        // this does not allocate.
        let mut ready = std::mem::take(&mut self.ready);
        // The wake token needs nothing here: the worker resets the eventfd
        // itself before reading its commands.
        for ev in self.events.iter() {
            if ev.token() != WAKE {
                ready.push(ev.token().0);
            }
        }
        self.events.clear();
        // Sockets left with data last turn come after the newly ready ones.
        let mut left = std::mem::take(&mut self.left);
        let mut next = std::mem::take(&mut self.next_left);
        for &index in ready.iter().chain(left.iter()) {
            if let Some(Some((slot, _))) = self.sockets.get(index) {
                let slot = *slot;
                if self.drain_socket(slot, sink) && !self.queued[index] {
                    self.queued[index] = true;
                    next.push(index);
                }
            }
        }
        for &index in &next {
            self.queued[index] = false;
        }
        ready.clear();
        left.clear();
        self.ready = ready;
        self.next_left = left;
        self.left = next;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "epoll"
    }

    fn socket_fd(&self, slot: Slot) -> Option<RawFd> {
        Self::socket_fd(self, slot)
    }
}
