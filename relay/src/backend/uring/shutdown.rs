//! Shutdown: everything in flight is cancelled and waited for before the
//! memory it points at goes; if the kernel does not let go in time, that
//! memory is leaked instead.

use std::time::Duration;

use io_uring::{cqueue, opcode, types};

use super::{push, Uring, KEY_MASK, OP_CANCEL, OP_RECV, OP_SEND, OP_WAKE};

impl Uring {
    /// [`Uring::quiesce`], then checks that nothing is left in flight.
    #[cfg(test)]
    pub(in crate::backend) fn quiesce_for_test(&mut self) -> bool {
        self.quiesce() && self.recvs.iter().all(|op| !op.armed) && self.sends.in_flight() == 0
    }

    /// Drop-time drain: cancels everything and waits (bounded) for the
    /// kernel to finish with our memory. Returns whether it did.
    pub(super) fn quiesce(&mut self) -> bool {
        for key in 0..self.recvs.len() as u32 {
            if self.recvs[key as usize].armed {
                let e = opcode::AsyncCancel::new(OP_RECV | u64::from(key))
                    .build()
                    .user_data(OP_CANCEL);
                push(&mut self.ring, &e);
            }
        }
        if self.wake_armed {
            let e = opcode::AsyncCancel::new(OP_WAKE)
                .build()
                .user_data(OP_CANCEL);
            push(&mut self.ring, &e);
        }
        let ts = types::Timespec::from(Duration::from_millis(10));
        let args = types::SubmitArgs::new().timespec(&ts);
        for _ in 0..100 {
            let busy =
                self.wake_armed || self.sends.in_flight() > 0 || self.recvs.iter().any(|r| r.armed);
            if !busy {
                return true;
            }
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let cq: Vec<_> = self
                .ring
                .completion()
                .map(|e| (e.user_data(), e.flags()))
                .collect();
            for (ud, flags) in cq {
                let key = (ud & KEY_MASK) as usize;
                match ud & !KEY_MASK {
                    OP_RECV if !cqueue::more(flags) => {
                        if let Some(r) = self.recvs.get_mut(key) {
                            r.armed = false;
                        }
                    }
                    OP_SEND => self.sends.free.push(key as u32),
                    OP_WAKE if !cqueue::more(flags) => self.wake_armed = false,
                    _ => {}
                }
            }
        }
        false
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        if !self.quiesce() {
            tracing::warn!(
                "io_uring operations still in flight at shutdown; leaking their buffers"
            );
            self.bufs.entries.leak = true;
            self.bufs.bufs.leak = true;
            // The send records and receive template are boxes; leak them too.
            std::mem::forget(std::mem::take(&mut self.sends.msgs));
            std::mem::forget(std::mem::take(&mut self.sends.iovs));
            std::mem::forget(std::mem::take(&mut self.sends.addrs));
            std::mem::forget(std::mem::take(&mut self.sends.heads));
            // SAFETY: an all-zero msghdr is valid.
            let rx = std::mem::replace(&mut self.rx_msg, Box::new(unsafe { std::mem::zeroed() }));
            std::mem::forget(rx);
        }
    }
}
