//! Issue #10's limits on the node core: a signal after a delayed delete
//! keeps the call, the m= cap, replies too large for a datagram, and `list`
//! paging.

use super::*;
use rtpmesh_ng::ng::{MAX_MEDIA_SECTIONS, MAX_REPLY_BODY};

fn delete_in(node: &mut Node, plane: &mut FakePlane, now: Now, cookie: &str, secs: &str) {
    let items = vec![
        ("command", "delete".into()),
        ("call-id", "c".into()),
        ("delete-delay", secs.into()),
    ];
    assert_eq!(result(&send(node, plane, now, cookie, items)), "ok");
}

#[test]
fn an_offer_or_answer_after_a_delayed_delete_keeps_the_call() {
    // Kamailio re-offers with the same Call-ID after a failover or a
    // 401/407 challenge; rtpengine 10.5 keeps the call then (tried: offer
    // and answer cancel the delete, query and block media do not).
    type Signal = fn(&mut Node, &mut FakePlane, Now, &str, &str) -> Value;
    for again in [offer as Signal, answer] {
        let mut plane = FakePlane::new(10);
        let mut node = Node::new(config(), at(0));
        offer(&mut node, &mut plane, at(0), "1", "c");
        answer(&mut node, &mut plane, at(0), "2", "c");
        delete_in(&mut node, &mut plane, at(1), "3", "5");
        assert_eq!(result(&again(&mut node, &mut plane, at(2), "4", "c")), "ok");
        assert!(node.tick(at(7), &mut plane).is_empty());
        assert!(node.call("c").is_some_and(|c| c.delete_at_ms.is_none()));
        assert!(plane.closed.is_empty());
        // A later delete still works, with its own delay.
        delete_in(&mut node, &mut plane, at(8), "5", "5");
        assert_eq!(
            node.tick(at(13), &mut plane),
            vec![("c".to_owned(), Removal::Deleted)]
        );
    }
}

#[test]
fn a_query_after_a_delayed_delete_does_not_keep_the_call() {
    let mut plane = FakePlane::new(10);
    let mut node = Node::new(config(), at(0));
    offer(&mut node, &mut plane, at(0), "1", "c");
    delete_in(&mut node, &mut plane, at(1), "2", "5");
    let q = vec![("command", "query".into()), ("call-id", "c".into())];
    assert_eq!(result(&send(&mut node, &mut plane, at(2), "3", q)), "ok");
    assert_eq!(node.tick(at(6), &mut plane).len(), 1);
}

/// SDP with `n` m= lines, each carrying `pad` bytes of an attribute the
/// rewrite passes through.
fn sdp_with(n: usize, pad: usize) -> String {
    let mut s =
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n".to_owned();
    for i in 0..n {
        s += &format!("m=audio {} RTP/AVP 0\r\n", 4000 + 2 * i);
        if pad > 0 {
            s += &format!("a=x-pad:{}\r\n", "p".repeat(pad));
        }
    }
    s
}

fn offer_sdp(node: &mut Node, plane: &mut FakePlane, cookie: &str, text: String) -> Value {
    let items = vec![
        ("command", "offer".into()),
        ("call-id", "c".into()),
        ("from-tag", "a".into()),
        ("sdp", text.into()),
    ];
    send(node, plane, at(0), cookie, items)
}

#[test]
fn an_offer_with_more_m_lines_than_the_cap_takes_no_port() {
    let mut plane = FakePlane::new(1000);
    let mut node = Node::new(config(), at(0));
    let r = offer_sdp(
        &mut node,
        &mut plane,
        "1",
        sdp_with(MAX_MEDIA_SECTIONS + 1, 0),
    );
    assert_eq!(
        (result(&r), reason(&r)),
        ("error", ng::reason::TOO_MANY_MEDIA)
    );
    assert!(node.call("c").is_none());
    assert_eq!(plane.opened, 0);
    let r = offer_sdp(&mut node, &mut plane, "2", sdp_with(MAX_MEDIA_SECTIONS, 0));
    assert_eq!(result(&r), "ok");
    assert_eq!(plane.opened, 2 * MAX_MEDIA_SECTIONS);
}

#[test]
fn an_offer_whose_reply_cannot_fit_a_datagram_is_undone() {
    let mut plane = FakePlane::new(1000);
    let mut node = Node::new(config(), at(0));
    node.keep_changes();
    let big = sdp_with(MAX_MEDIA_SECTIONS, MAX_REPLY_BODY / MAX_MEDIA_SECTIONS);
    let r = offer_sdp(&mut node, &mut plane, "1", big.clone());
    assert_eq!(
        (result(&r), reason(&r)),
        ("error", ng::reason::REPLY_TOO_LARGE)
    );
    assert!(node.call("c").is_none());
    assert_eq!(plane.pool.in_use(), 0, "every port it took goes back");
    assert!(node.take_changes().iter().all(|(_, rec)| rec.is_none()));

    // A re-offer that grows a call past it leaves the call as it was.
    assert_eq!(
        result(&offer_sdp(&mut node, &mut plane, "2", sdp_with(1, 0))),
        "ok"
    );
    let before = node.call("c").unwrap().locals().count();
    let r = offer_sdp(&mut node, &mut plane, "3", big);
    assert_eq!(reason(&r), ng::reason::REPLY_TOO_LARGE);
    assert_eq!(node.call("c").unwrap().locals().count(), before);
    assert_eq!(plane.pool.in_use(), before, "one pair per local");
    assert_eq!(
        result(&answer(&mut node, &mut plane, at(1), "4", "c")),
        "ok"
    );
}

fn list(node: &mut Node, plane: &mut FakePlane, limit: u64, after: Option<&str>) -> Vec<String> {
    let mut items = vec![("command", "list".into()), ("limit", limit.into())];
    if let Some(a) = after {
        items.push(("after", a.into()));
    }
    let mut d = b"l ".to_vec();
    dict(items).encode_into(&mut d);
    let reply = node.handle(&d, at(0), plane).unwrap();
    assert!(reply.len() <= ng::MAX_DATAGRAM, "{} bytes", reply.len());
    let v = bencode::decode(&reply[2..]).unwrap();
    let calls = v.get("calls").and_then(Value::as_list).unwrap();
    calls
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn list_pages_with_the_after_cursor_and_never_outgrows_a_datagram() {
    let mut plane = FakePlane::new(2000);
    let mut node = Node::new(config(), at(0));
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("{i:04}{}", "@".repeat(96)))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            result(&offer(&mut node, &mut plane, at(0), &i.to_string(), id)),
            "ok"
        );
    }
    assert_eq!(list(&mut node, &mut plane, 3, None), ids[..3]);
    assert_eq!(list(&mut node, &mut plane, 2, Some(&ids[10])), ids[11..13]);
    // No limit to speak of: the node cuts the page where the datagram ends.
    let mut all = Vec::new();
    loop {
        let page = list(
            &mut node,
            &mut plane,
            u64::from(u32::MAX),
            all.last().map(String::as_str),
        );
        if page.is_empty() {
            break;
        }
        assert!(page.len() < ids.len());
        all.extend(page);
    }
    assert_eq!(all, ids);
}
