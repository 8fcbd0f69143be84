//! What the minimal forwarders (`fwd-epoll`, `fwd-uring`) share: a port
//! pair per call with latching, and a tiny ng responder so the generator
//! drives them exactly like a real relay.
//!
//! The responder answers `ping`, `offer`, `answer` and `delete` only. An
//! offer binds two sockets (one per side) and hands the pair to the
//! forwarding thread; `delete` forgets the call-id but keeps the sockets
//! (a forwarder is restarted between benchmark runs, so nothing is freed
//! while the data path might still use it).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rtpmesh_ng::bencode::{self, dict, Value};

use crate::setup::media_addr;

/// One side of a call: the socket its party sends to, and that party's
/// address (latched from the last packet; 0 until known).
pub struct Port {
    /// The relay socket.
    pub socket: UdpSocket,
    remote: AtomicU64,
}

impl Port {
    /// The socket's fd.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// The party's address, if known.
    pub fn remote(&self) -> Option<SocketAddrV4> {
        unpack(self.remote.load(Ordering::Relaxed))
    }

    /// Latches the party's address (written only when it changes, so a
    /// steady stream does not dirty the cache line).
    pub fn latch(&self, a: SocketAddrV4) {
        let v = pack(a);
        if self.remote.load(Ordering::Relaxed) != v {
            self.remote.store(v, Ordering::Relaxed);
        }
    }
}

/// A call's two ports. Side 0 faces the caller, side 1 the callee; what
/// arrives on one side goes out of the other to its party.
#[repr(align(8))]
pub struct Pair {
    /// By side.
    pub ports: [Port; 2],
}

/// Packs a v4 address into a u64 (0 means "none").
pub fn pack(a: SocketAddrV4) -> u64 {
    (u64::from(u32::from(*a.ip())) << 16) | u64::from(a.port())
}

/// Inverse of [`pack`].
pub fn unpack(v: u64) -> Option<SocketAddrV4> {
    (v != 0).then(|| SocketAddrV4::new(Ipv4Addr::from((v >> 16) as u32), v as u16))
}

/// A `sockaddr_in` for `a`.
pub fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Inverse of [`sockaddr`].
pub fn from_sockaddr(s: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr)),
        u16::from_be(s.sin_port),
    )
}

/// A pair's side as a word for epoll/io_uring user data: the (8-aligned)
/// pointer with the side in bit 0. Pairs are leaked, so it stays valid.
pub fn token(pair: &'static Pair, side: usize) -> u64 {
    pair as *const Pair as u64 | side as u64
}

/// Inverse of [`token`].
///
/// # Safety
/// `t` must come from [`token`].
pub unsafe fn from_token(t: u64) -> (&'static Pair, usize) {
    (&*((t & !1) as *const Pair), (t & 1) as usize)
}

/// Rewrites an SDP's `c=` address and first `m=` port.
pub fn rewrite_sdp(sdp: &str, ip: Ipv4Addr, port: u16) -> String {
    let mut out = String::with_capacity(sdp.len() + 16);
    let mut m_done = false;
    for l in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        if l.starts_with("c=IN IP4 ") {
            out.push_str(&format!("c=IN IP4 {ip}"));
        } else if let (Some(m), false) = (l.strip_prefix("m="), m_done) {
            let mut f: Vec<&str> = m.split(' ').collect();
            let p = port.to_string();
            if f.len() > 1 {
                f[1] = &p;
            }
            out.push_str("m=");
            out.push_str(&f.join(" "));
            m_done = true;
        } else {
            out.push_str(l);
        }
        out.push_str("\r\n");
    }
    out
}

fn err(reason: &str) -> Value {
    dict([("result", "error".into()), ("error-reason", reason.into())])
}

/// Serves ng on `listen` forever (its own thread), binding media sockets on
/// `iface`. `on_new` gets every new pair (to register its sockets).
pub fn serve_ng(
    listen: SocketAddr,
    iface: Ipv4Addr,
    mut on_new: impl FnMut(&'static Pair),
) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(listen)?;
    let mut calls: HashMap<Vec<u8>, &'static Pair> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        let d = &buf[..n];
        let Some(sp) = d.iter().position(|&b| b == b' ') else {
            continue;
        };
        let (cookie, body) = (&d[..sp], &d[sp + 1..]);
        let reply = match bencode::decode(body) {
            Ok(req) => handle(&req, iface, &mut calls, &mut on_new),
            Err(e) => err(&e.to_string()),
        };
        let mut out = cookie.to_vec();
        out.push(b' ');
        reply.encode_into(&mut out);
        let _ = sock.send_to(&out, from);
    }
}

fn handle(
    req: &Value,
    iface: Ipv4Addr,
    calls: &mut HashMap<Vec<u8>, &'static Pair>,
    on_new: &mut impl FnMut(&'static Pair),
) -> Value {
    let cmd = req.get("command").and_then(Value::as_str).unwrap_or("");
    let id = req
        .get("call-id")
        .and_then(Value::as_bytes)
        .unwrap_or(b"")
        .to_vec();
    let sdp = req.get("sdp").and_then(Value::as_str);
    let party = sdp.and_then(|s| media_addr(s).ok()).and_then(|a| match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    });
    match (cmd, sdp, party) {
        ("ping", _, _) => dict([("result", "pong".into())]),
        ("delete", _, _) => {
            calls.remove(&id);
            dict([("result", "ok".into())])
        }
        ("offer", Some(sdp), Some(caller)) => {
            let pair = match calls.get(&id) {
                Some(p) => *p,
                None => {
                    let bind = || {
                        let s = UdpSocket::bind((iface, 0))?;
                        s.set_nonblocking(true)?;
                        Ok::<_, std::io::Error>(Port {
                            socket: s,
                            remote: AtomicU64::new(0),
                        })
                    };
                    let (Ok(a), Ok(b)) = (bind(), bind()) else {
                        return err("cannot bind media ports");
                    };
                    let pair: &'static Pair = Box::leak(Box::new(Pair { ports: [a, b] }));
                    calls.insert(id, pair);
                    on_new(pair);
                    pair
                }
            };
            pair.ports[0].latch(caller);
            let port = pair.ports[1].socket.local_addr().map_or(0, |a| a.port());
            dict([
                ("result", "ok".into()),
                ("sdp", rewrite_sdp(sdp, iface, port).into()),
            ])
        }
        ("answer", Some(sdp), Some(callee)) => {
            let Some(pair) = calls.get(&id) else {
                return err("Unknown call-id");
            };
            pair.ports[1].latch(callee);
            let port = pair.ports[0].socket.local_addr().map_or(0, |a| a.port());
            dict([
                ("result", "ok".into()),
                ("sdp", rewrite_sdp(sdp, iface, port).into()),
            ])
        }
        ("offer" | "answer", _, _) => err("No SDP body in message"),
        _ => err("Unrecognized command"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip_and_sdp_rewrite() {
        let a: SocketAddrV4 = "127.0.0.5:40000".parse().unwrap();
        assert_eq!(unpack(pack(a)), Some(a));
        assert_eq!(unpack(0), None);
        assert_eq!(from_sockaddr(&sockaddr(a)), a);
        let s = crate::setup::sdp("127.0.0.3:5000".parse().unwrap(), 1);
        let r = rewrite_sdp(&s, Ipv4Addr::LOCALHOST, 41000);
        assert_eq!(media_addr(&r).unwrap(), "127.0.0.1:41000".parse().unwrap());
        assert!(r.contains("a=rtpmap:0 PCMU/8000\r\n"));
    }
}
