//! Memory the kernel reads and writes on the io_uring backend's behalf:
//! the provided-buffer ring and the preallocated `sendmsg` records. Both
//! outlive every operation that points into them (see `Uring::quiesce`).

use super::*;

/// An anonymous, page-aligned memory mapping.
pub(super) struct Region {
    pub(super) ptr: *mut u8,
    pub(super) len: usize,
    /// Set when the kernel may still use the memory: never unmap it then.
    pub(super) leak: bool,
}

impl Region {
    pub(super) fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // touched.
        let ptr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
            leak: false,
        })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if !self.leak {
            // SAFETY: ptr/len are exactly the mapping made in `new`, and
            // nothing (the kernel included) uses it any more.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }
}

/// The provided-buffer ring and the buffers it hands out.
pub(super) struct BufRing {
    /// `BUFFERS` ring entries shared with the kernel; entry 0's reserved
    /// field is the tail.
    pub(super) entries: Region,
    /// `BUFFERS` buffers of `BUF_LEN` bytes.
    pub(super) bufs: Region,
    /// Our tail, published to the kernel by [`BufRing::publish`].
    pub(super) tail: u16,
    /// Per buffer: holds on it (its receive being processed, each send in
    /// flight out of it). Zero means it is in the ring (or the kernel's).
    pub(super) refs: Box<[u16]>,
    /// Buffers out of the ring on our side.
    pub(super) held: usize,
}

impl BufRing {
    pub(super) fn new() -> io::Result<Self> {
        let entries = Region::new(usize::from(BUFFERS) * size_of::<types::BufRingEntry>())?;
        let bufs = Region::new(usize::from(BUFFERS) * BUF_LEN)?;
        Ok(Self {
            entries,
            bufs,
            tail: 0,
            refs: vec![0; usize::from(BUFFERS)].into_boxed_slice(),
            held: 0,
        })
    }

    pub(super) fn addr(&self, bid: u16) -> *mut u8 {
        // SAFETY: bid < BUFFERS (checked by callers), so the offset stays in
        // the `bufs` mapping.
        unsafe { self.bufs.ptr.add(usize::from(bid) * BUF_LEN) }
    }

    /// Puts buffer `bid` back at the (unpublished) tail.
    pub(super) fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (BUFFERS - 1));
        // SAFETY: slot < BUFFERS entries of the mapping. The kernel only reads
        // entries between its head and the published tail, and this one is
        // past the published tail.
        let entry = unsafe { &mut *self.entries.ptr.cast::<types::BufRingEntry>().add(slot) };
        entry.set_addr(self.addr(bid) as u64);
        entry.set_len(BUF_LEN as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the pushed buffers visible to the kernel.
    pub(super) fn publish(&self) {
        // SAFETY: the tail is the u16 `resv` field of entry 0 of a live,
        // page-aligned mapping (so aligned for an AtomicU16); the kernel reads
        // it with acquire semantics, hence the release store.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries.ptr.cast()).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// A receive completed into `bid`: hold it while it is processed.
    pub(super) fn take(&mut self, bid: u16) {
        if self.refs[usize::from(bid)] == 0 {
            self.held += 1;
        }
        self.refs[usize::from(bid)] += 1;
    }

    /// Drops one hold on `bid`; the last one returns it to the ring.
    pub(super) fn release(&mut self, bid: u16) {
        let r = &mut self.refs[usize::from(bid)];
        *r -= 1;
        if *r == 0 {
            self.held -= 1;
            self.push(bid);
        }
    }
}

/// Preallocated `sendmsg` arguments, one record per send in flight.
pub(super) struct SendPool {
    pub(super) msgs: Box<[libc::msghdr]>,
    /// Two per record: the head (if any), then the bytes from the buffer.
    pub(super) iovs: Box<[libc::iovec]>,
    /// Per record: the head's storage, which the kernel reads until the
    /// send completes (the record goes back to `free` only then).
    pub(super) heads: Box<[[u8; HEAD_LEN]]>,
    pub(super) addrs: Box<[libc::sockaddr_storage]>,
    /// Buffer the send reads from, and the sending flow.
    pub(super) meta: Box<[(u16, Slot)]>,
    pub(super) free: Vec<u32>,
}

impl SendPool {
    pub(super) fn new() -> Self {
        Self {
            // SAFETY: an all-zero msghdr (null pointers, zero lengths) is valid.
            msgs: (0..SEND_RECORDS)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            iovs: (0..2 * SEND_RECORDS)
                .map(|_| libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            addrs: (0..SEND_RECORDS).map(|_| sys::empty_sockaddr()).collect(),
            heads: vec![[0u8; HEAD_LEN]; SEND_RECORDS].into_boxed_slice(),
            meta: vec![
                (
                    0,
                    Slot {
                        index: 0,
                        generation: 0
                    }
                );
                SEND_RECORDS
            ]
            .into_boxed_slice(),
            // Popped from the end: low records first.
            free: (0..SEND_RECORDS as u32).rev().collect(),
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        SEND_RECORDS - self.free.len()
    }
}
