//! The receive side: arming and re-arming each socket's multishot
//! receive (and the wake-up poll), and handing each datagram that arrives
//! to the sink.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{cqueue, opcode, types};

use super::{push, Now, RecvOp, Uring, BGID, BUFFERS, BUF_LEN, OP_CANCEL, OP_RECV, OP_WAKE};
use crate::backend::{stale, sys};
use crate::backend::{PacketSink, Transmit};
use rtpmesh_flow::flow::{Slot, MAX_OUTPUTS};

impl Uring {
    pub(super) fn arm_wake(&mut self) -> bool {
        // One-shot, re-armed after every completion: arming checks the
        // eventfd's level, so a signal that arrived since the last
        // completion fires at once. A multishot poll only reports edges, and
        // under load one was seen to miss a signal (the worker then slept
        // with a command queued).
        let e = opcode::PollAdd::new(types::Fd(self.wake_fd), libc::POLLIN as u32)
            .build()
            .user_data(OP_WAKE);
        self.wake_armed = push(&mut self.ring, &e);
        if !self.wake_armed {
            self.retry = true;
        }
        self.wake_armed
    }

    /// Queues the multishot receive of record `key`.
    pub(super) fn arm_recv(&mut self, key: u32) {
        let op = &self.recvs[key as usize];
        let Some(sock) = &op.socket else { return };
        let e = opcode::RecvMsgMulti::new(types::Fd(sock.as_raw_fd()), &*self.rx_msg, BGID)
            .build()
            .user_data(OP_RECV | u64::from(key));
        let ok = push(&mut self.ring, &e);
        self.recvs[key as usize].armed = ok;
        if !ok {
            self.retry = true;
        }
    }

    /// Queues the cancel of record `key`'s receive.
    pub(super) fn cancel_recv(&mut self, key: u32) {
        let e = opcode::AsyncCancel::new(OP_RECV | u64::from(key))
            .build()
            .user_data(OP_CANCEL | u64::from(key));
        let ok = push(&mut self.ring, &e);
        self.recvs[key as usize].cancel_sent = ok;
        if !ok {
            self.retry = true;
        }
    }

    pub(super) fn free_recv(&mut self, key: u32) {
        self.recvs[key as usize] = RecvOp::default();
        self.recv_free.push(key);
    }

    /// Retries what could not be queued earlier: ended receives of live
    /// sockets (once buffers are back), cancels, the wake poll.
    pub(super) fn sweep(&mut self) {
        if usize::from(BUFFERS) == self.bufs.held {
            // Every buffer waits for sends; their completions will free some
            // and bring us back here.
            return;
        }
        self.retry = false;
        for key in 0..self.recvs.len() as u32 {
            let op = &self.recvs[key as usize];
            if op.socket.is_none() {
                continue;
            }
            if op.removing {
                if op.armed && !op.cancel_sent {
                    self.cancel_recv(key);
                }
            } else if !op.armed {
                self.arm_recv(key);
            }
        }
        if !self.wake_armed {
            self.arm_wake();
        }
    }

    #[inline]
    pub(super) fn on_recv(
        &mut self,
        key: u32,
        res: i32,
        flags: u32,
        now: Now,
        sink: &mut dyn PacketSink,
    ) {
        let Some(op) = self.recvs.get(key as usize) else {
            return;
        };
        if op.socket.is_none() {
            // Not ours (a free record): cannot happen, as records are freed
            // only after their final completion; still, return the buffer.
            if let Some(bid) = cqueue::buffer_select(flags).filter(|b| *b < BUFFERS) {
                self.bufs.take(bid);
                self.bufs.release(bid);
            }
            return;
        }
        let live = !op.removing;
        let slot = op.slot;
        if let Some(bid) = cqueue::buffer_select(flags).filter(|b| *b < BUFFERS) {
            self.bufs.take(bid);
            if let (true, Some(slot), Ok(len)) = (live, slot, usize::try_from(res)) {
                self.deliver(slot, bid, len.min(BUF_LEN), now, sink);
            }
            self.bufs.release(bid);
        }
        if cqueue::more(flags) {
            return;
        }
        self.recvs[key as usize].armed = false;
        if !live {
            self.free_recv(key);
            if let Some(slot) = slot {
                sink.on_closed(slot);
            }
        } else if res == -libc::ENOBUFS {
            // Overload: every buffer is in use. Re-armed by `sweep` once
            // buffers are back in the ring.
            self.enobufs += 1;
            self.retry = true;
        } else {
            if res < 0 {
                tracing::trace!(error = %io::Error::from_raw_os_error(-res), "receive ended, re-arming");
            }
            self.arm_recv(key);
        }
    }

    /// Hands the datagram in buffer `bid` (`len` bytes used) to the sink and
    /// queues its copies.
    #[inline]
    pub(super) fn deliver(
        &mut self,
        slot: Slot,
        bid: u16,
        len: usize,
        now: Now,
        sink: &mut dyn PacketSink,
    ) {
        // SAFETY: the kernel filled `len` bytes of this buffer, and we hold it
        // (refs > 0) until the end of this call, so nobody writes to it. The
        // slice is built from a raw pointer, so it does not borrow `self`.
        let buf = unsafe { std::slice::from_raw_parts(self.bufs.addr(bid), len) };
        debug_assert!(len <= BUF_LEN);
        let Ok(msg) = types::RecvMsgOut::parse(buf, &self.rx_msg) else {
            return;
        };
        let control = msg.control_data();
        let info = if control.is_empty() {
            sys::RxInfo::default()
        } else {
            // SAFETY: an all-zero msghdr is valid.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_control = control.as_ptr() as *mut libc::c_void;
            h.msg_controllen = control.len() as _;
            // SAFETY: `h` describes control data the kernel just wrote, at an
            // 8-byte aligned offset of the buffer (see BUF_LEN).
            unsafe { sys::parse_control(&h) }
        };
        if let Some(drops) = info.drops {
            sink.on_kernel_drops(slot, drops);
        }
        if msg.is_payload_truncated() {
            return;
        }
        if info
            .received_ns
            .is_some_and(|t| stale::is_stale(t, now.real_ns))
        {
            sink.on_stale(slot);
            return;
        }
        let name = msg.name_data();
        // SAFETY: `name` is a live slice of the address the kernel wrote.
        let Some(src) = (unsafe { sys::read_sockaddr(name.as_ptr(), name.len()) }) else {
            return;
        };
        let payload = msg.payload_data();
        let plen = payload.len();
        let start = payload.as_ptr() as usize - self.bufs.addr(bid) as usize;
        // SAFETY: the payload and the rest of the buffer after it are ours
        // while we hold the buffer (see above); no other slice of them is
        // used from here on.
        let room = unsafe {
            std::slice::from_raw_parts_mut(self.bufs.addr(bid).add(start), BUF_LEN - start)
        };
        // The returned slice borrows the sink; copy it out (at most
        // MAX_OUTPUTS, on the stack) so the sink can hear about errors.
        let mut out: [Option<Transmit>; MAX_OUTPUTS] = [None; MAX_OUTPUTS];
        for (o, t) in out
            .iter_mut()
            .zip(sink.on_packet(now.mono, slot, src, room, plen))
        {
            *o = Some(*t);
        }
        for t in out.iter().flatten() {
            self.queue_send(bid, room, plen, t, sink);
        }
    }
}
