//! The operator commands that talk ng to a running node.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use rtpmesh_ng::bencode::{dict, Value};
use rtpmesh_ng_udp::client::NgClient;

fn client(ng: SocketAddr) -> anyhow::Result<NgClient> {
    NgClient::new(ng).context("cannot open ng client socket")
}

fn ok(reply: Value) -> anyhow::Result<Value> {
    match reply.get("result").and_then(Value::as_str) {
        Some("ok") | Some("pong") => Ok(reply),
        Some(r) => bail!(
            "node answered {r}: {}",
            reply
                .get("error-reason")
                .or_else(|| reply.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        None => bail!("node answered without a result"),
    }
}

fn int(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_int).unwrap_or(0)
}

/// `rtpmesh ping`.
pub(crate) fn ping(ng: SocketAddr) -> anyhow::Result<()> {
    let t = Instant::now();
    ok(client(ng)?.request(&dict([("command", "ping".into())]))?)?;
    println!(
        "pong from {ng} in {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

/// `rtpmesh calls`: one line per call.
pub(crate) fn calls(ng: SocketAddr) -> anyhow::Result<()> {
    let mut c = client(ng)?;
    let ids = call_ids(&mut c)?;
    println!(
        "{:<40} {:>8} {:>10} {:>12} {:>8} {:>7}",
        "CALL-ID", "AGE(s)", "RTP PKTS", "RTP BYTES", "RTCP", "ERRORS"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for id in &ids {
        let q = c.request(&dict([
            ("command", "query".into()),
            ("call-id", id.as_str().into()),
        ]))?;
        let totals = q.get("totals");
        let rtp = totals.and_then(|t| t.get("RTP"));
        let rtcp = totals.and_then(|t| t.get("RTCP"));
        println!(
            "{:<40} {:>8} {:>10} {:>12} {:>8} {:>7}",
            id,
            now - int(q.get("created")),
            int(rtp.and_then(|r| r.get("packets"))),
            int(rtp.and_then(|r| r.get("bytes"))),
            int(rtcp.and_then(|r| r.get("packets"))),
            int(rtp.and_then(|r| r.get("errors"))),
        );
    }
    println!("{} call(s)", ids.len());
    Ok(())
}

/// Every call-id, a page of `list` at a time: one reply must fit a
/// datagram, so a busy node answers a few hundred per page and `after`
/// asks for the next.
fn call_ids(c: &mut NgClient) -> anyhow::Result<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    loop {
        let mut req = dict([("command", "list".into()), ("limit", 1000u64.into())]);
        if let (Value::Dict(d), Some(last)) = (&mut req, ids.last()) {
            d.insert(b"after".to_vec(), last.as_str().into());
        }
        let page: Vec<String> = ok(c.request(&req)?)?
            .get("calls")
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        // Pages come sorted; one that does not move past the last id (a
        // server that ignores `after`) ends the listing instead of looping.
        let fresh: Vec<String> = page
            .into_iter()
            .filter(|id| ids.last().is_none_or(|last| id > last))
            .collect();
        if fresh.is_empty() {
            return Ok(ids);
        }
        ids.extend(fresh);
    }
}

/// `rtpmesh call ID`: every stream of one call.
pub(crate) fn call(ng: SocketAddr, id: &str) -> anyhow::Result<()> {
    let q = ok(client(ng)?.request(&dict([("command", "query".into()), ("call-id", id.into())]))?)?;
    println!("call {id}");
    println!(
        "{:<16} {:>3} {:<6} {:<5} {:>6} {:<28} {:>9} {:>10} {:>6} {:>6} {:>7}",
        "TAG",
        "IDX",
        "TYPE",
        "KIND",
        "LOCAL",
        "ENDPOINT",
        "PACKETS",
        "BYTES",
        "ERRORS",
        "LOST",
        "JITTER"
    );
    let Some(tags) = q.get("tags").and_then(Value::as_dict) else {
        return Ok(());
    };
    for tag in tags.values() {
        let name = tag.get("tag").and_then(Value::as_str).unwrap_or("");
        for m in tag.get("medias").and_then(Value::as_list).unwrap_or(&[]) {
            for s in m.get("streams").and_then(Value::as_list).unwrap_or(&[]) {
                let ep = s.get("endpoint");
                let endpoint = match (
                    ep.and_then(|e| e.get("address")).and_then(Value::as_str),
                    ep.and_then(|e| e.get("port")),
                ) {
                    (Some(a), Some(p)) => format!("{a}:{}", int(Some(p))),
                    _ => "-".into(),
                };
                let kind = s
                    .get("flags")
                    .and_then(Value::as_list)
                    .and_then(|f| f.first())
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let st = s.get("stats");
                println!(
                    "{:<16} {:>3} {:<6} {:<5} {:>6} {:<28} {:>9} {:>10} {:>6} {:>6} {:>7}",
                    name,
                    int(m.get("index")),
                    m.get("type").and_then(Value::as_str).unwrap_or(""),
                    kind,
                    int(s.get("local port")),
                    endpoint,
                    int(st.and_then(|x| x.get("packets"))),
                    int(st.and_then(|x| x.get("bytes"))),
                    int(st.and_then(|x| x.get("errors"))),
                    int(s.get("packets lost")),
                    int(s.get("jitter")),
                );
            }
        }
    }
    Ok(())
}

fn sdp(port: u16, session: u32) -> String {
    format!(
        "v=0\r\no=- {session} 1 IN IP4 127.0.0.1\r\ns=rtpmesh demo\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}

/// The relay address an SDP reply names for its first stream.
fn relay_addr(reply: &Value) -> anyhow::Result<SocketAddr> {
    let text = reply
        .get("sdp")
        .and_then(Value::as_str)
        .context("reply has no sdp")?;
    let sdp = rtpmesh_ng::sdp::parse(text).context("reply SDP does not parse")?;
    let m = sdp.media().first().context("reply SDP has no m= line")?;
    let c = m.connection.as_ref().context("reply SDP has no c= line")?;
    Ok(SocketAddr::new(c.address, m.port))
}

/// An RTP packet: PCMU, 160 bytes of payload.
pub(crate) fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xffu8; 160]);
    p
}

/// `rtpmesh demo`: a two-party call through the node, on loopback.
/// Sets up a call through a node (or a regional controller, with a callee
/// endpoint and the caller's region), sends RTP both ways and prints what
/// was relayed.
pub(crate) fn demo(
    ng: SocketAddr,
    packets: u32,
    callee: Option<&str>,
    region: Option<&str>,
) -> anyhow::Result<()> {
    let mut c = client(ng)?;
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
    }
    let call_id = format!("rtpmesh-demo-{}", std::process::id());
    let mut items = vec![
        ("command", Value::from("offer")),
        ("call-id", call_id.as_str().into()),
        ("from-tag", "caller".into()),
        ("sdp", sdp(a.local_addr()?.port(), 1).into()),
    ];
    if let Some(e) = callee {
        items.push(("callee", e.into()));
    }
    if let Some(r) = region {
        items.push(("region", r.into()));
    }
    let offer = ok(c.request(&dict(items))?)?;
    print_route(&offer);
    let to_b = relay_addr(&offer)?;
    let answer = ok(c.request(&dict([
        ("command", "answer".into()),
        ("call-id", call_id.as_str().into()),
        ("from-tag", "caller".into()),
        ("to-tag", "callee".into()),
        ("sdp", sdp(b.local_addr()?.port(), 2).into()),
    ]))?)?;
    let to_a = relay_addr(&answer)?;
    println!(
        "call {call_id}: caller -> {to_a} -> ... -> callee, callee -> {to_b} -> ... -> caller"
    );
    let (got_a, got_b) = exchange(&a, to_a, &b, to_b, packets)?;
    println!("caller sent {packets}, callee received {got_b}; callee sent {packets}, caller received {got_a}");
    let q = ok(c.request(&dict([
        ("command", "query".into()),
        ("call-id", call_id.as_str().into()),
    ]))?)?;
    let rtp = q.get("totals").and_then(|t| t.get("RTP"));
    println!(
        "node counted {} RTP packets, {} bytes, {} errors",
        int(rtp.and_then(|r| r.get("packets"))),
        int(rtp.and_then(|r| r.get("bytes"))),
        int(rtp.and_then(|r| r.get("errors")))
    );
    ok(c.request(&dict([
        ("command", "delete".into()),
        ("call-id", call_id.as_str().into()),
        ("delete-delay", 0u64.into()),
    ]))?)?;
    if got_a != packets || got_b != packets {
        bail!("packets were lost on the way through the node");
    }
    Ok(())
}

/// Prints the route a controller chose for the call (a node's reply has
/// none).
fn print_route(offer: &Value) {
    if let Some(r) = offer.get("route") {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
        println!(
            "route: INVITE to gateway {} ({}, region {}); media via node {} and node {}",
            s("gateway"),
            s("sip"),
            s("region"),
            s("node"),
            s("callee-node")
        );
    }
}

/// Sends `packets` RTP packets each way, caller `a` to `to_a` and callee
/// `b` to `to_b`, one pair at a time; returns how many each side received
/// (caller, callee).
fn exchange(
    a: &UdpSocket,
    to_a: SocketAddr,
    b: &UdpSocket,
    to_b: SocketAddr,
    packets: u32,
) -> anyhow::Result<(u32, u32)> {
    let mut buf = [0u8; 2048];
    let (mut got_a, mut got_b) = (0u32, 0u32);
    for seq in 0..packets {
        a.send_to(&rtp_packet(seq as u16, 0xa), to_a)?;
        b.send_to(&rtp_packet(seq as u16, 0xb), to_b)?;
        if b.recv(&mut buf).is_ok() {
            got_b += 1;
        }
        if a.recv(&mut buf).is_ok() {
            got_a += 1;
        }
    }
    Ok((got_a, got_b))
}
