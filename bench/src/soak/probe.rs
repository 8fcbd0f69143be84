//! What the soak reads about the node between requests: its memory, its
//! open descriptors and the media ports it holds, from `/proc`, and its
//! call counters from ng `statistics`.

use std::collections::HashSet;
use std::fs;

use rtpmesh_ng::bencode::Value;

/// The node's resources at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Resident set size, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Its anonymous part, KiB (`RssAnon`: the heap and stacks, without the
    /// binary's pages, which count in `VmRSS` as they are first touched).
    pub rss_anon_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// UDP sockets of the node bound to a port in the media range.
    pub media_ports: u64,
    /// Every UDP socket of the node (media, ng, tunnel).
    pub udp_sockets: u64,
}

/// Reads the resources of `pid`; media ports are those in `ports`.
pub(super) fn resources(pid: u32, ports: (u16, u16)) -> anyhow::Result<Resources> {
    let inodes = socket_inodes(pid);
    let mut r = Resources {
        rss_kib: crate::proc::rss_kib(pid)?,
        rss_anon_kib: status_kib(pid, "RssAnon:").unwrap_or(0),
        fds: crate::proc::fd_count(pid),
        ..Resources::default()
    };
    for table in ["udp", "udp6"] {
        // The process's own view of its network namespace.
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for (port, inode) in text.lines().skip(1).filter_map(parse_udp_line) {
            if inodes.contains(&inode) {
                r.udp_sockets += 1;
                if (ports.0..=ports.1).contains(&port) {
                    r.media_ports += 1;
                }
            }
        }
    }
    Ok(r)
}

/// A `KEY: N kB` line of `/proc/PID/status`.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Inodes of the sockets `pid` has open (`/proc/PID/fd/N -> socket:[INODE]`).
/// Sockets are told apart by inode because the UDP table lists the whole
/// namespace: other processes' sockets in the same port range are not the
/// node's.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| parse_socket_link(&l.to_string_lossy()))
        .collect()
}

/// The inode of a `socket:[INODE]` link target.
pub(super) fn parse_socket_link(s: &str) -> Option<u64> {
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Local port and inode of one `/proc/net/udp{,6}` row
/// (`sl local_address rem_address st ... uid timeout inode ...`).
pub(super) fn parse_udp_line(line: &str) -> Option<(u16, u64)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let port = f.get(1)?.rsplit(':').next()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let inode = f.get(9)?.parse().ok()?;
    Some((port, inode))
}

/// The node's counters from a `statistics` reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Calls held now (`sessionsown`).
    pub sessions: u64,
    /// Calls ever created (`managedsessions`).
    pub managed: u64,
    /// Calls removed for lack of media (`timeoutsessions`).
    pub timeouts: u64,
    /// Calls removed by `delete` (`regularterminatedsessions`).
    pub deleted: u64,
}

/// Reads [`NodeStats`] from a `statistics` reply.
pub(super) fn node_stats(reply: &Value) -> Option<NodeStats> {
    let s = reply.get("statistics")?;
    let get = |section: &str, key: &str| {
        s.get(section)
            .and_then(|x| x.get(key))
            .and_then(Value::as_int)
            .map(|v| v.max(0) as u64)
    };
    Some(NodeStats {
        sessions: get("currentstatistics", "sessionsown")?,
        managed: get("totalstatistics", "managedsessions").unwrap_or(0),
        timeouts: get("totalstatistics", "timeoutsessions").unwrap_or(0),
        deleted: get("totalstatistics", "regularterminatedsessions").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtpmesh_ng::bencode::dict;

    #[test]
    fn udp_rows_and_socket_links() {
        let row = "  12: 0100007F:7530 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 987654 2 0000000000000000 0";
        assert_eq!(parse_udp_line(row), Some((30000, 987_654)));
        let v6 = "  3: 00000000000000000000000001000000:9C40 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  0 0 42 2 0 0";
        assert_eq!(parse_udp_line(v6), Some((40000, 42)));
        assert_eq!(parse_udp_line("  sl  local_address rem_address"), None);
        assert_eq!(parse_socket_link("socket:[123]"), Some(123));
        assert_eq!(parse_socket_link("pipe:[123]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
    }

    #[test]
    fn statistics_reply() {
        let reply = dict([(
            "statistics",
            dict([
                ("currentstatistics", dict([("sessionsown", 7i64.into())])),
                (
                    "totalstatistics",
                    dict([
                        ("managedsessions", 70i64.into()),
                        ("timeoutsessions", 5i64.into()),
                        ("regularterminatedsessions", 58i64.into()),
                    ]),
                ),
            ]),
        )]);
        assert_eq!(
            node_stats(&reply),
            Some(NodeStats {
                sessions: 7,
                managed: 70,
                timeouts: 5,
                deleted: 58
            })
        );
        assert_eq!(node_stats(&dict([("result", "ok".into())])), None);
    }

    #[test]
    fn own_sockets_are_found() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        let r = resources(std::process::id(), (port, port)).unwrap();
        assert_eq!(r.media_ports, 1);
        assert!(r.udp_sockets >= 1 && r.fds >= 1 && r.rss_kib > 0);
        assert!(r.rss_anon_kib > 0 && r.rss_anon_kib <= r.rss_kib);
    }
}
