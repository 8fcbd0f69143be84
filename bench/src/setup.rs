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
    /// The caller's SDES keys when the caller leg is SRTP ([`Media::Srtp`]).
    pub srtp: Option<SrtpKeys>,
}

/// What the parties' legs carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Media {
    /// Plain RTP on both legs.
    #[default]
    Plain,
    /// An SDES-SRTP caller (`RTP/SAVP`, AES_CM_128_HMAC_SHA1_80) and a
    /// plain callee: the relay unprotects the caller's stream and protects
    /// the callee's.
    Srtp,
}

/// The suite every SRTP call offers.
pub const SRTP_SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

/// One SRTP caller's two keys (master key || salt, 30 bytes each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The caller's own key (its offer's `a=crypto`): it protects with it.
    pub caller_tx: Vec<u8>,
    /// The relay's key toward the caller (the answer's `a=crypto`): the
    /// caller unprotects with it.
    pub caller_rx: Vec<u8>,
}

/// A fresh 30-byte key and salt for call `i` (splitmix64 over the clock:
/// distinct per call and run, not secret, which a bench does not need).
fn bench_key(i: usize) -> Vec<u8> {
    let mut x = crate::rtp::now_ns() ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(32);
    while out.len() < 30 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    out.truncate(30);
    out
}

/// An SDES-SRTP audio SDP for a party at `addr`, offering `key`.
pub fn savp_sdp(addr: SocketAddr, session: u64, key: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "v=0\r\no=- {session} 1 IN IP4 {ip}\r\ns=rtpmesh-bench\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 {SRTP_SUITE} inline:{key}\r\na=sendrecv\r\n",
        ip = addr.ip(),
        port = addr.port(),
        key = base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The key and salt of the first `a=crypto` line of `sdp` with our suite
/// (`inline:` base64, any `|lifetime|MKI` after it ignored).
pub fn crypto_key(sdp: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let line = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=crypto:"))
        .find(|v| v.split(' ').nth(1) == Some(SRTP_SUITE))
        .with_context(|| format!("no a=crypto {SRTP_SUITE} line in the answer: {sdp:?}"))?;
    let inline = line
        .split(' ')
        .nth(2)
        .and_then(|k| k.strip_prefix("inline:"))
        .with_context(|| format!("a=crypto without inline: {line:?}"))?;
    let b64 = inline.split('|').next().unwrap_or("").trim();
    let key = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(b64.trim_end_matches('='))
        .with_context(|| format!("a=crypto key is not base64: {line:?}"))?;
    anyhow::ensure!(
        key.len() == 30,
        "a=crypto key of {} bytes, not 30: {line:?}",
        key.len()
    );
    Ok(key)
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

/// [`setup_calls`] with the legs carrying `media`.
pub fn setup_calls_media(
    ng: SocketAddr,
    n: usize,
    parties: &[Ipv4Addr],
    prefix: &str,
    media: Media,
) -> anyhow::Result<Vec<Call>> {
    let at = |i: usize| {
        let ip = parties[(i / 10_000) % parties.len().max(1)];
        (ip, ip)
    };
    setup_calls_at(ng, n, at, prefix, &[], media)
}

/// The offer of call `i`: the caller's SDP plus `extra` keys (what a proxy
/// tells a regional controller: `callee`, `region` or `received-from`).
pub fn offer_body(id: &str, caller: SocketAddr, i: usize, extra: &[(&str, Value)]) -> Value {
    offer_with_sdp(id, &sdp(caller, i as u64 + 1), extra)
}

/// An offer carrying `sdp` plus `extra` keys.
fn offer_with_sdp(id: &str, sdp: &str, extra: &[(&str, Value)]) -> Value {
    let mut items: Vec<(&str, Value)> = vec![
        ("command", "offer".into()),
        ("call-id", id.into()),
        ("from-tag", "caller".into()),
        ("sdp", sdp.into()),
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
    setup_calls_at(ng, n, at, prefix, extra, Media::Plain)
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
    setup_calls_at(ng, n, |_| (caller, callee), prefix, &[], Media::Plain)
}

/// The calls of [`setup_calls_with`], call `i`'s caller and callee bound
/// at `at(i)`. With [`Media::Srtp`] the caller offers SDES-SRTP and the
/// offer asks for a plain callee (`transport-protocol: RTP/AVP`), as a
/// proxy bridging an SRTP trunk to plain SIP does.
fn setup_calls_at(
    ng: SocketAddr,
    n: usize,
    at: impl Fn(usize) -> (Ipv4Addr, Ipv4Addr),
    prefix: &str,
    extra: &[(&str, Value)],
    media: Media,
) -> anyhow::Result<Vec<Call>> {
    let mut c = NgClient::new(ng)?.with_retries(Duration::from_millis(2000), 3)?;
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let (caller, callee) = at(i);
        let (a, b) = (bind(caller)?, bind(callee)?);
        let id = format!("{prefix}-{i}");
        let caller_key = (media == Media::Srtp).then(|| bench_key(i));
        let body = match &caller_key {
            None => offer_body(&id, a.local_addr()?, i, extra),
            Some(k) => {
                let mut x: Vec<(&str, Value)> = extra.to_vec();
                x.push(("transport-protocol", "RTP/AVP".into()));
                offer_with_sdp(&id, &savp_sdp(a.local_addr()?, i as u64 + 1, k), &x)
            }
        };
        let offer = ok(c.request(&body)?, "offer")?;
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
        let answer_sdp = answer.get("sdp").and_then(Value::as_str).unwrap_or("");
        let a_dest = media_addr(answer_sdp)?;
        let srtp = match caller_key {
            None => None,
            Some(caller_tx) => Some(SrtpKeys {
                caller_tx,
                caller_rx: crypto_key(answer_sdp)?,
            }),
        };
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
            srtp,
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
    fn srtp_offer_and_answer_keys() {
        let key = bench_key(3);
        assert_eq!(key.len(), 30);
        assert_ne!(key, bench_key(4), "a key per call");
        let offer = savp_sdp("127.0.0.1:5000".parse().unwrap(), 1, &key);
        assert!(offer.contains("m=audio 5000 RTP/SAVP 0\r\n"), "{offer}");
        assert_eq!(crypto_key(&offer).unwrap(), key, "our own line reads back");
        // An answer as rtpengine writes one: unpadded, lifetime and MKI after it.
        let answer = "v=0\r\nm=audio 40002 RTP/SAVP 0\r\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n\
            a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e|2^31|1:1\r\n";
        assert_eq!(crypto_key(answer).unwrap(), (1..=30).collect::<Vec<u8>>());
        assert!(crypto_key("v=0\r\nm=audio 1 RTP/AVP 0\r\n").is_err());
        assert!(crypto_key("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ\r\n").is_err());
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
