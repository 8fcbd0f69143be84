//! Setting calls up through a relay over ng, exactly as a SIP proxy would:
//! an `offer` carrying the caller's SDP, an `answer` carrying the callee's,
//! and the relay ports read back from the rewritten SDPs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context};
use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng_udp::client::NgClient;

/// One call: a socket per party, and where each party sends (the relay
/// port the other side's rewritten SDP named).
pub struct Call {
    /// SIP Call-ID.
    pub id: String,
    /// The caller's socket, connected to `a_dest`.
    pub a: UdpSocket,
    /// The callee's socket, connected to `b_dest`.
    pub b: UdpSocket,
    /// Relay address the caller sends to (from the answer).
    pub a_dest: SocketAddr,
    /// Relay address the callee sends to (from the offer).
    pub b_dest: SocketAddr,
    /// Where a controller placed the call: the offer reply's `route`
    /// `node` and `callee-node` (`None` from a plain relay).
    pub route: Option<(String, String)>,
}

/// An audio SDP body for a party at `addr`.
pub fn sdp(addr: SocketAddr, session: u64) -> String {
    format!(
        "v=0\r\no=- {session} 1 IN IP4 {ip}\r\ns=rtpmesh-bench\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

/// The media address a rewritten SDP names: `c=` address and first `m=` port.
pub fn media_addr(sdp: &str) -> anyhow::Result<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for l in sdp.lines() {
        if let Some(c) = l.strip_prefix("c=IN IP4 ") {
            // Session-level or first media-level c= line; later ones agree.
            ip = ip.or_else(|| c.trim().parse::<Ipv4Addr>().ok());
        } else if let Some(m) = l.strip_prefix("m=") {
            port = port.or_else(|| m.split(' ').nth(1).and_then(|p| p.parse::<u16>().ok()));
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) => Ok(SocketAddr::new(IpAddr::V4(ip), port)),
        _ => bail!("SDP without c=IN IP4 / m= port: {sdp:?}"),
    }
}

fn ok(reply: Value, what: &str) -> anyhow::Result<Value> {
    match reply.get("result").and_then(Value::as_str) {
        Some("ok") => Ok(reply),
        r => bail!(
            "{what}: relay answered {r:?}: {}",
            reply
                .get("error-reason")
                .or_else(|| reply.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
    }
}

/// Receive buffer asked for the generator's sockets: drops must happen in
/// the relay, not in a generator queue that a blast filled.
const GEN_RCVBUF: libc::c_int = 4 << 20;

fn bind(ip: Ipv4Addr) -> anyhow::Result<UdpSocket> {
    let s = UdpSocket::bind((ip, 0)).with_context(|| format!("bind {ip}:0"))?;
    s.set_nonblocking(true)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    let len = size_of::<libc::c_int>() as libc::socklen_t;
    let v: *const libc::c_void = (&GEN_RCVBUF as *const libc::c_int).cast();
    // SAFETY: valid fd and option value. FORCE (root) passes rmem_max; if
    // refused, the plain option gets what rmem_max allows.
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v, len) < 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, v, len);
        }
    }
    Ok(s)
}

/// Sets up `n` calls through the relay at `ng`. Parties bind to `parties`
/// addresses in turn (one loopback address has ~28k ephemeral ports, so
/// large runs spread over several). Call-ids start with `prefix`.
pub fn setup_calls(
    ng: SocketAddr,
    n: usize,
    parties: &[Ipv4Addr],
    prefix: &str,
) -> anyhow::Result<Vec<Call>> {
    setup_calls_with(ng, n, parties, prefix, &[])
}

/// The offer of call `i`: the caller's SDP plus `extra` keys (what a proxy
/// tells a regional controller: `callee`, `region` or `received-from`).
pub fn offer_body(id: &str, caller: SocketAddr, i: usize, extra: &[(&str, Value)]) -> Value {
    let mut items: Vec<(&str, Value)> = vec![
        ("command", "offer".into()),
        ("call-id", id.into()),
        ("from-tag", "caller".into()),
        ("sdp", sdp(caller, i as u64 + 1).into()),
    ];
    items.extend(extra.iter().cloned());
    dict(items)
}

/// The `route` `node` and `callee-node` of a controller's offer reply.
pub fn route_of(reply: &Value) -> Option<(String, String)> {
    let r = reply.get("route")?;
    let node = r.get("node").and_then(Value::as_str)?.to_owned();
    let callee = r
        .get("callee-node")
        .and_then(Value::as_str)
        .map_or_else(|| node.clone(), str::to_owned);
    Some((node, callee))
}

/// [`setup_calls`] with `extra` keys in every offer: the ng target may be a
/// regional controller, which needs the callee and the caller's region to
/// place the call (on one node, or on two joined by a tunnel).
pub fn setup_calls_with(
    ng: SocketAddr,
    n: usize,
    parties: &[Ipv4Addr],
    prefix: &str,
    extra: &[(&str, Value)],
) -> anyhow::Result<Vec<Call>> {
    let at = |i: usize| {
        let ip = parties[(i / 10_000) % parties.len().max(1)];
        (ip, ip)
    };
    setup_calls_at(ng, n, at, prefix, extra)
}

/// Sets up `n` calls with every caller at `caller` and every callee at
/// `callee`: parties on two networks, each reaching the relay over its own
/// link (the namespace topology of `bench/ns-compare.sh`).
pub fn setup_calls_between(
    ng: SocketAddr,
    n: usize,
    caller: Ipv4Addr,
    callee: Ipv4Addr,
    prefix: &str,
) -> anyhow::Result<Vec<Call>> {
    setup_calls_at(ng, n, |_| (caller, callee), prefix, &[])
}

/// The calls of [`setup_calls_with`], call `i`'s caller and callee bound
/// at `at(i)`.
fn setup_calls_at(
    ng: SocketAddr,
    n: usize,
    at: impl Fn(usize) -> (Ipv4Addr, Ipv4Addr),
    prefix: &str,
    extra: &[(&str, Value)],
) -> anyhow::Result<Vec<Call>> {
    let mut c = NgClient::new(ng)?.with_retries(Duration::from_millis(2000), 3)?;
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let (caller, callee) = at(i);
        let (a, b) = (bind(caller)?, bind(callee)?);
        let id = format!("{prefix}-{i}");
        let offer = ok(
            c.request(&offer_body(&id, a.local_addr()?, i, extra))?,
            "offer",
        )?;
        let route = route_of(&offer);
        let b_dest = media_addr(offer.get("sdp").and_then(Value::as_str).unwrap_or(""))?;
        let answer = ok(
            c.request(&dict([
                ("command", "answer".into()),
                ("call-id", id.as_str().into()),
                ("from-tag", "caller".into()),
                ("to-tag", "callee".into()),
                ("sdp", sdp(b.local_addr()?, i as u64 + 1).into()),
            ]))?,
            "answer",
        )?;
        let a_dest = media_addr(answer.get("sdp").and_then(Value::as_str).unwrap_or(""))?;
        // Connected: the cheaper send path, and only the relay's own port
        // gets through (a relay sends each party its media from the port
        // that party sends to).
        a.connect(a_dest)?;
        b.connect(b_dest)?;
        calls.push(Call {
            id,
            a,
            b,
            a_dest,
            b_dest,
            route,
        });
    }
    Ok(calls)
}

/// Deletes the calls (no delete delay), ignoring failures: a relay that is
/// gone frees them anyway.
pub fn teardown(ng: SocketAddr, calls: &[Call]) {
    let Ok(c) = NgClient::new(ng) else { return };
    let Ok(mut c) = c.with_retries(Duration::from_millis(500), 2) else {
        return;
    };
    for call in calls {
        let _ = c.request(&dict([
            ("command", "delete".into()),
            ("call-id", call.id.as_str().into()),
            ("delete-delay", 0u64.into()),
        ]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_carries_extra_keys_and_route_is_read_back() {
        let o = offer_body(
            "c-1",
            "127.0.0.1:5000".parse().unwrap(),
            0,
            &[("callee", "bob".into()), ("region", "r1".into())],
        );
        assert_eq!(o.get("command").and_then(Value::as_str), Some("offer"));
        assert_eq!(o.get("callee").and_then(Value::as_str), Some("bob"));
        assert_eq!(o.get("region").and_then(Value::as_str), Some("r1"));
        assert!(o
            .get("sdp")
            .and_then(Value::as_str)
            .unwrap()
            .contains("m=audio 5000 "));
        let reply = dict([(
            "route",
            dict([("node", "a".into()), ("callee-node", "b".into())]),
        )]);
        assert_eq!(route_of(&reply), Some(("a".into(), "b".into())));
        let one = dict([("route", dict([("node", "a".into())]))]);
        assert_eq!(route_of(&one), Some(("a".into(), "a".into())));
        assert_eq!(route_of(&dict([("result", "ok".into())])), None);
    }

    #[test]
    fn reads_relay_address_from_rewritten_sdp() {
        let s = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\na=rtcp:40003\r\n";
        assert_eq!(media_addr(s).unwrap(), "127.0.0.9:40002".parse().unwrap());
        assert!(media_addr("v=0\r\n").is_err());
        let ours = sdp("127.0.0.3:5000".parse().unwrap(), 9);
        assert_eq!(
            media_addr(&ours).unwrap(),
            "127.0.0.3:5000".parse().unwrap()
        );
    }
}
