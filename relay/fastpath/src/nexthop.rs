//! Where the kernel would send a datagram from one of the relay's
//! addresses to a party: an `RTM_GETROUTE` over rtnetlink (policy routing
//! included, as `ip route get TO from FROM` asks), the next hop's MAC from
//! the neighbour table, the interface's own MAC from sysfs.
//!
//! Two fixed requests, so a few lines over a raw netlink socket rather than
//! a netlink crate and its async runtime.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The route to a party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NextHop {
    /// The outgoing interface.
    pub(crate) oif: u32,
    /// The destination is one of this host's addresses.
    pub(crate) local: bool,
    /// The gateway, when the destination is not on a link.
    pub(crate) gateway: Option<Ipv4Addr>,
}

const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTN_LOCAL: u8 = 2;
const NLMSG_HDR: usize = 16;
const RTMSG: usize = 12;

/// Asks the kernel for the route from `from` to `to`.
pub(crate) fn route(from: Ipv4Addr, to: Ipv4Addr) -> io::Result<NextHop> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor this function alone holds.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = request(from, to);
    // SAFETY: send(2) reads `req.len()` bytes of a live buffer.
    let n = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 4096];
    // SAFETY: recv(2) writes at most `buf.len()` bytes into a live buffer.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_reply(&buf[..n as usize])
}

fn request(from: Ipv4Addr, to: Ipv4Addr) -> Vec<u8> {
    let len = NLMSG_HDR + RTMSG + 8 + 8;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
                                              // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
    m.extend_from_slice(&[libc::AF_INET as u8, 32, 32, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&0u32.to_ne_bytes());
    for (kind, addr) in [(RTA_DST, to), (RTA_SRC, from)] {
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&addr.octets());
    }
    m
}

fn parse_reply(b: &[u8]) -> io::Result<NextHop> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "short rtnetlink reply");
    let u16_at = |i: usize| -> io::Result<u16> {
        Ok(u16::from_ne_bytes(
            b.get(i..i + 2)
                .ok_or_else(bad)?
                .try_into()
                .expect("2 bytes"),
        ))
    };
    let len = (u32::from_ne_bytes(b.get(0..4).ok_or_else(bad)?.try_into().expect("4 bytes"))
        as usize)
        .min(b.len());
    match u16_at(4)? {
        NLMSG_ERROR => {
            let code = i32::from_ne_bytes(b.get(16..20).ok_or_else(bad)?.try_into().expect("4"));
            return Err(io::Error::from_raw_os_error(-code));
        }
        RTM_NEWROUTE => {}
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected rtnetlink message {other}"),
            ))
        }
    }
    let rtm_type = *b.get(NLMSG_HDR + 7).ok_or_else(bad)?;
    let mut hop = NextHop {
        oif: 0,
        local: rtm_type == RTN_LOCAL,
        gateway: None,
    };
    let mut at = NLMSG_HDR + RTMSG;
    while at + 4 <= len {
        let alen = usize::from(u16_at(at)?);
        let kind = u16_at(at + 2)?;
        if alen < 4 || at + alen > len {
            break;
        }
        let v = &b[at + 4..at + alen];
        match (kind, v.len()) {
            (RTA_OIF, 4) => hop.oif = u32::from_ne_bytes(v.try_into().expect("4 bytes")),
            (RTA_GATEWAY, 4) => hop.gateway = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
            _ => {}
        }
        at += (alen + 3) & !3;
    }
    Ok(hop)
}

/// The MAC the neighbour table holds for `ip` on interface `ifname`
/// (`/proc/net/arp`, complete entries only).
pub(crate) fn neighbour(ifname: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    neighbour_in(&table, ifname, ip)
}

fn neighbour_in(table: &str, ifname: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, flags, mac, _, dev] = f[..] else {
            return None;
        };
        let complete = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()? & 0x2 != 0;
        (complete && dev == ifname && addr.parse() == Ok(ip))
            .then(|| parse_mac(mac))
            .flatten()
    })
}

/// Interface `ifname`'s own MAC.
pub(crate) fn interface_mac(ifname: &str) -> Option<[u8; 6]> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).ok()?;
    parse_mac(s.trim())
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The name of interface `index`.
pub(crate) fn interface_name(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes, NUL included.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    let end = buf.iter().position(|&c| c == 0)?;
    String::from_utf8(buf[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_routes_are_local() {
        let hop = route(Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2)).expect("route");
        assert!(hop.local, "{hop:?}");
        assert_eq!(interface_name(hop.oif).as_deref(), Some("lo"));
    }

    #[test]
    fn arp_table_lines() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.0.0.1         0x1         0x2         aa:bb:cc:dd:ee:0f     *        eth0\n\
                 10.0.0.2         0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(
            neighbour_in(t, "eth0", ip),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f])
        );
        assert_eq!(neighbour_in(t, "eth1", ip), None);
        assert_eq!(neighbour_in(t, "eth0", Ipv4Addr::new(10, 0, 0, 2)), None);
        assert_eq!(parse_mac("aa:bb"), None);
    }
}
