//! Small OS helpers shared by the backends: eventfd, socket addresses,
//! socket options. Each returns `io::Result` and does nothing clever.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An eventfd that wakes a worker out of its wait.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new non-blocking eventfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the fd is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Signals the eventfd.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64. EAGAIN (counter saturated)
        // still leaves it readable, which is all a wake needs.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the eventfd after a wake; returns whether it was signalled.
    pub fn drain(fd: RawFd) -> bool {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN is fine.
        let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        n == 8
    }

    /// The raw fd for a backend to watch.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Writes `addr` into `storage`, returning its length.
pub fn write_sockaddr(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            unsafe {
                (storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            unsafe {
                (storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads a socket address the kernel wrote at `ptr` (`len` bytes).
///
/// # Safety
/// `ptr` must point to at least `len` readable bytes.
pub unsafe fn read_sockaddr(ptr: *const u8, len: usize) -> Option<SocketAddr> {
    if len < size_of::<libc::sa_family_t>() {
        return None;
    }
    let family = i32::from(ptr.cast::<libc::sa_family_t>().read_unaligned());
    match family {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            let sin = ptr.cast::<libc::sockaddr_in>().read_unaligned();
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            let sin6 = ptr.cast::<libc::sockaddr_in6>().read_unaligned();
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            // A v4 peer reaching a dual-stack socket shows up as ::ffff:a.b.c.d.
            if let Some(v4) = ip.to_ipv4_mapped() {
                return Some(SocketAddr::V4(SocketAddrV4::new(
                    v4,
                    u16::from_be(sin6.sin6_port),
                )));
            }
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// An all-zero sockaddr_storage.
pub fn empty_sockaddr() -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid sockaddr_storage.
    unsafe { MaybeUninit::zeroed().assume_init() }
}

/// Asks the kernel to report receive-queue drops (`SO_RXQ_OVFL`) with each
/// datagram, so overload is counted per socket.
pub fn enable_rxq_ovfl(fd: &impl AsRawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: valid fd and option value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to stamp each datagram with the time it arrived
/// (`SO_TIMESTAMPNS`, on `CLOCK_REALTIME`), delivered with the datagram, so
/// a worker can tell how long it waited in the queue.
pub fn enable_rx_timestamps(fd: &impl AsRawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: valid fd and option value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What the kernel said about one received datagram in its control data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxInfo {
    /// `SO_RXQ_OVFL`: datagrams dropped so far on the socket because its
    /// receive queue was full.
    pub drops: Option<u32>,
    /// `SO_TIMESTAMPNS`: when the datagram arrived, in nanoseconds of
    /// `CLOCK_REALTIME`.
    pub received_ns: Option<u64>,
}

/// Reads the drop count and the arrival time out of a received message's
/// control data, in one walk.
///
/// # Safety
/// `msg` must describe a control buffer the kernel just filled.
#[inline]
pub unsafe fn parse_control(msg: &libc::msghdr) -> RxInfo {
    let mut info = RxInfo::default();
    let mut cmsg = libc::CMSG_FIRSTHDR(msg);
    while !cmsg.is_null() {
        let c = &*cmsg;
        if c.cmsg_level == libc::SOL_SOCKET {
            if c.cmsg_type == libc::SO_RXQ_OVFL {
                info.drops = Some(libc::CMSG_DATA(cmsg).cast::<u32>().read_unaligned());
            } else if c.cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = libc::CMSG_DATA(cmsg)
                    .cast::<libc::timespec>()
                    .read_unaligned();
                info.received_ns = timespec_ns(&ts);
            }
        }
        cmsg = libc::CMSG_NXTHDR(msg, cmsg);
    }
    info
}

fn timespec_ns(ts: &libc::timespec) -> Option<u64> {
    let s = u64::try_from(ts.tv_sec).ok()?;
    let ns = u64::try_from(ts.tv_nsec).ok()?;
    s.checked_mul(1_000_000_000)?.checked_add(ns)
}

/// `CLOCK_REALTIME` now, in nanoseconds: the clock the kernel stamps
/// datagrams with. A vDSO call, read once per receive batch.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    timespec_ns(&ts).unwrap_or(0)
}

/// Control buffer size that holds an `SO_RXQ_OVFL` message (24 bytes)
/// and an `SCM_TIMESTAMPNS` one (32).
pub const CONTROL_LEN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for a in ["127.0.0.1:4000", "[::1]:5000", "[fe80::1%2]:6"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut st = empty_sockaddr();
            let len = write_sockaddr(&a, &mut st);
            let back = unsafe {
                read_sockaddr((&st as *const libc::sockaddr_storage).cast(), len as usize)
            };
            assert_eq!(back, Some(a));
        }
        assert_eq!(unsafe { read_sockaddr([0u8; 1].as_ptr(), 1) }, None);
    }
}
