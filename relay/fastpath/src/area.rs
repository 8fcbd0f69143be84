//! The `stats` array mapped into the relay's memory (`BPF_F_MMAPABLE`):
//! the workers read the program's counters with loads, not system calls.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use crate::layout::Stats;

/// A shared mapping of the `stats` array.
pub(crate) struct StatsArea {
    base: NonNull<Stats>,
    entries: u32,
    bytes: usize,
}

// SAFETY: the mapping lives as long as the area; entries are read and
// written whole with volatile accesses, each index by one worker at a time
// (the index allocator hands an index to one route), and a torn read of a
// counter the program is updating is harmless for statistics.
unsafe impl Send for StatsArea {}
// SAFETY: see above.
unsafe impl Sync for StatsArea {}

impl StatsArea {
    /// Maps `entries` records of the array map `fd`.
    pub(crate) fn map(fd: BorrowedFd<'_>, entries: u32) -> io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let bytes = (entries as usize * size_of::<Stats>()).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of a BPF array map the kernel sized
        // for `entries` records; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self {
            base,
            entries,
            bytes,
        })
    }

    /// Record `i` as it is now.
    pub(crate) fn read(&self, i: u32) -> Stats {
        assert!(i < self.entries, "stats index {i} out of range");
        // SAFETY: in bounds (asserted) of a live mapping; volatile because
        // the kernel writes it behind the compiler's back.
        unsafe { self.base.as_ptr().add(i as usize).read_volatile() }
    }

    /// Overwrites record `i`.
    pub(crate) fn write(&self, i: u32, s: Stats) {
        assert!(i < self.entries, "stats index {i} out of range");
        // SAFETY: as in `read`.
        unsafe { self.base.as_ptr().add(i as usize).write_volatile(s) }
    }
}

impl Drop for StatsArea {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}
