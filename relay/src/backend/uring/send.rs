//! The send side: one `sendmsg` per copy, straight out of the provided
//! buffer it was received into, and its completion.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, types};

use super::{push, Uring, OP_SEND};
use crate::backend::sys;
use crate::backend::{PacketSink, Transmit, HEAD_LEN};
use rtpmesh_flow::flow::Slot;

impl Uring {
    #[inline]
    pub(super) fn socket_fd(&self, slot: Slot) -> Option<RawFd> {
        match self.sockets.get(slot.index as usize) {
            Some(Some((s, key))) if *s == slot => self.recvs[*key as usize]
                .socket
                .as_ref()
                .map(AsRawFd::as_raw_fd),
            _ => None,
        }
    }

    #[inline]
    pub(super) fn queue_send(
        &mut self,
        bid: u16,
        payload: &[u8],
        len: usize,
        t: &Transmit,
        sink: &mut dyn PacketSink,
    ) {
        let Some(fd) = self.socket_fd(t.via) else {
            return;
        };
        let Some(body) = t.body(payload, len) else {
            return;
        };
        let Some(k) = self.sends.free.pop() else {
            sink.on_send_error(t.via, io::Error::from_raw_os_error(libc::ENOBUFS));
            return;
        };
        let i = k as usize;
        let alen = sys::write_sockaddr(&t.dest, &mut self.sends.addrs[i]);
        // The head is copied into the record (which lives until the send
        // completes); the body is sent straight from the provided buffer,
        // held by the reference taken below.
        let mut n = 0;
        if let Some(head) = &t.head {
            self.sends.heads[i] = *head;
            self.sends.iovs[2 * i] = libc::iovec {
                iov_base: self.sends.heads[i].as_mut_ptr().cast(),
                iov_len: HEAD_LEN,
            };
            n = 1;
        }
        self.sends.iovs[2 * i + n] = libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        };
        let h = &mut self.sends.msgs[i];
        h.msg_name = (&mut self.sends.addrs[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = alen;
        h.msg_iov = &mut self.sends.iovs[2 * i];
        h.msg_iovlen = n + 1;
        self.sends.meta[i] = (bid, t.via);
        let e = opcode::SendMsg::new(types::Fd(fd), &self.sends.msgs[i])
            .flags(libc::MSG_DONTWAIT as u32)
            .build()
            .user_data(OP_SEND | u64::from(k));
        self.bufs.take(bid);
        if !push(&mut self.ring, &e) {
            self.bufs.release(bid);
            self.sends.free.push(k);
            sink.on_send_error(t.via, io::Error::from_raw_os_error(libc::EBUSY));
        }
    }

    #[inline]
    pub(super) fn on_send(&mut self, k: u32, res: i32, sink: &mut dyn PacketSink) {
        let Some(&(bid, via)) = self.sends.meta.get(k as usize) else {
            return;
        };
        self.sends.free.push(k);
        self.bufs.release(bid);
        if res < 0 {
            sink.on_send_error(via, io::Error::from_raw_os_error(-res));
        }
    }
}
