use super::*;

fn limits() -> CacheLimits {
    CacheLimits {
        ttl: Duration::from_secs(30),
        max_entries: 100,
        max_bytes: 1 << 20,
        max_busy: 10,
    }
}

fn reply(text: &str) -> Arc<[u8]> {
    text.as_bytes().into()
}

/// Begins and finishes `cookie` with reply `text` at `now`.
fn cache(c: &mut CookieCache, cookie: &str, text: &str, now: u64) {
    assert_eq!(c.begin(cookie.as_bytes(), now), Lookup::New);
    c.finish(cookie.as_bytes(), reply(text), now);
}

fn cached(c: &mut CookieCache, cookie: &str, now: u64) -> Option<String> {
    match c.begin(cookie.as_bytes(), now) {
        Lookup::Cached(r) => Some(String::from_utf8(r.to_vec()).unwrap()),
        Lookup::New => {
            c.abandon(cookie.as_bytes());
            None
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retransmission_gets_the_cached_bytes() {
    let mut c = CookieCache::new(limits());
    cache(&mut c, "3452_1", "3452_1 d6:result4:ponge", 0);
    assert_eq!(
        cached(&mut c, "3452_1", 1000).as_deref(),
        Some("3452_1 d6:result4:ponge")
    );
    assert_eq!(c.len(), 1);
}

#[test]
fn a_retransmission_while_busy_is_dropped_not_handled_again() {
    let mut c = CookieCache::new(limits());
    assert_eq!(c.begin(b"k", 0), Lookup::New);
    assert_eq!(c.begin(b"k", 1), Lookup::InProgress);
    c.finish(b"k", reply("k r"), 2);
    assert_eq!(c.busy(), 0);
    assert_eq!(cached(&mut c, "k", 3).as_deref(), Some("k r"));
    // Abandoned: the next one is handled afresh.
    assert_eq!(c.begin(b"j", 4), Lookup::New);
    c.abandon(b"j");
    assert_eq!(c.begin(b"j", 5), Lookup::New);
}

#[test]
fn replies_expire_after_the_ttl() {
    let mut c = CookieCache::new(limits());
    cache(&mut c, "a", "a 1", 0);
    cache(&mut c, "b", "b 1", 10_000);
    assert!(cached(&mut c, "a", 29_999).is_some());
    assert!(cached(&mut c, "a", 30_000).is_none());
    assert!(cached(&mut c, "b", 30_000).is_some());
    c.expire(40_000);
    assert!(c.is_empty());
    assert_eq!(c.bytes(), 0);
}

#[test]
fn the_count_is_bounded_oldest_out_first() {
    let mut c = CookieCache::new(limits());
    for i in 0..250 {
        cache(&mut c, &format!("c{i}"), "r", i);
    }
    assert_eq!(c.len(), 100);
    assert!(cached(&mut c, "c149", 300).is_none());
    assert!(cached(&mut c, "c150", 300).is_some());
    assert!(cached(&mut c, "c249", 300).is_some());
}

#[test]
fn the_bytes_are_bounded_oldest_out_first() {
    let max_bytes = 10_000;
    let mut c = CookieCache::new(CacheLimits {
        max_bytes,
        ..limits()
    });
    let big = "x".repeat(1000);
    for i in 0..50 {
        cache(&mut c, &format!("c{i}"), &big, i);
        assert!(c.bytes() <= max_bytes);
    }
    // 1000 bytes of reply, 2 × 3 of cookie, 128 of overhead: 8 fit.
    assert_eq!(c.len(), 8);
    assert!(cached(&mut c, "c41", 100).is_none());
    for i in 42..50 {
        assert!(cached(&mut c, &format!("c{i}"), 100).is_some(), "c{i}");
    }
    // A reply bigger than the whole budget is not cached, nor evicts.
    cache(&mut c, "huge", &"y".repeat(max_bytes), 200);
    assert!(cached(&mut c, "huge", 201).is_none());
    assert_eq!(c.len(), 8);
}

#[test]
fn eviction_follows_insertion_order() {
    let mut c = CookieCache::new(CacheLimits {
        max_entries: 3,
        ..limits()
    });
    cache(&mut c, "a", "1", 0);
    cache(&mut c, "b", "2", 1);
    cache(&mut c, "c", "3", 2);
    // A lookup does not refresh: "a" is still the oldest.
    assert!(cached(&mut c, "a", 3).is_some());
    cache(&mut c, "d", "4", 4);
    assert!(cached(&mut c, "a", 5).is_none());
    assert!(cached(&mut c, "b", 5).is_some());
    // Finishing a cookie again (misuse) replaces it and stays bounded.
    c.finish(b"b", reply("5"), 6);
    c.finish(b"b", reply("6"), 7);
    assert!(c.len() <= 3);
    assert_eq!(cached(&mut c, "b", 8).as_deref(), Some("6"));
}

#[test]
fn busy_requests_and_cookie_lengths_are_bounded() {
    let mut c = CookieCache::new(limits());
    for i in 0..10 {
        assert_eq!(c.begin(format!("b{i}").as_bytes(), 0), Lookup::New);
    }
    assert_eq!(c.begin(b"one more", 0), Lookup::Overloaded);
    c.finish(b"b0", reply("r"), 1);
    assert_eq!(c.begin(b"one more", 1), Lookup::New);
    let long = vec![b'k'; MAX_COOKIE + 1];
    assert_eq!(c.begin(&long, 2), Lookup::TooLong);
    c.abandon(b"one more");
    assert_eq!(c.begin(&long[..MAX_COOKIE], 2), Lookup::New);
}
