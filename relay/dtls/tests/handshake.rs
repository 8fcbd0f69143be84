//! Two sessions, a Client and a Server, handshaking in memory: keys,
//! fingerprint checks, a lost flight, bad input, closing.

use std::time::{Duration, Instant};

use rtpmesh_dtls::{Certificate, DtlsError, Role, Session, SrtpKeys};
use rtpmesh_srtp::Suite;

fn sha256(cert: &Certificate) -> Option<(String, Vec<u8>)> {
    Some(("sha-256".into(), cert.fingerprint_sha256().to_vec()))
}

/// A client and a server that each expect the other's certificate.
fn pair(now: Instant) -> (Session, Session) {
    let (cc, sc) = (
        Certificate::generate().unwrap(),
        Certificate::generate().unwrap(),
    );
    let client = Session::new(&cc, Role::Client, sha256(&sc), now).unwrap();
    let server = Session::new(&sc, Role::Server, sha256(&cc), now).unwrap();
    (client, server)
}

/// Everything `from` has to send, delivered to `to`; the first error
/// `to` returns.
fn deliver(from: &mut Session, to: &mut Session, now: Instant) -> Result<usize, DtlsError> {
    let mut n = 0;
    while let Some(d) = from.poll_datagram() {
        n += 1;
        to.handle_datagram(now, &d)?;
    }
    Ok(n)
}

/// Datagrams both ways until neither has more; each side's first error.
fn pump(
    c: &mut Session,
    s: &mut Session,
    now: Instant,
) -> (Result<(), DtlsError>, Result<(), DtlsError>) {
    let (mut ce, mut se) = (Ok(()), Ok(()));
    for _ in 0..20 {
        let to_s = deliver(c, s, now).unwrap_or_else(|e| {
            se = se.take_err_or(e);
            1
        });
        let to_c = deliver(s, c, now).unwrap_or_else(|e| {
            ce = ce.take_err_or(e);
            1
        });
        if to_s == 0 && to_c == 0 {
            break;
        }
    }
    // A side whose peer failed just stops hearing from it.
    (ce, se)
}

/// Keeps the first error.
trait FirstError {
    fn take_err_or(&mut self, e: DtlsError) -> Self;
}

impl FirstError for Result<(), DtlsError> {
    fn take_err_or(&mut self, e: DtlsError) -> Self {
        std::mem::replace(self, Ok(())).and(Err(e))
    }
}

fn assert_keys_match(c: &SrtpKeys, s: &SrtpKeys) {
    assert_eq!(
        c.local, s.remote,
        "client's local key is server's remote key"
    );
    assert_eq!(
        c.remote, s.local,
        "server's local key is client's remote key"
    );
    assert_ne!(c.local, c.remote, "each direction has its own key");
}

#[test]
fn client_and_server_handshake_and_export_matching_keys() {
    let now = Instant::now();
    let (mut c, mut s) = pair(now);
    assert!(
        c.next_timeout().is_some(),
        "the ClientHello is awaiting an answer"
    );
    assert_eq!(s.next_timeout(), None, "a server waits for nothing");
    assert!(s.poll_datagram().is_none());
    let (ce, se) = pump(&mut c, &mut s, now);
    ce.unwrap();
    se.unwrap();
    assert!(c.is_established() && s.is_established());
    let (ck, sk) = (c.take_keys().unwrap(), s.take_keys().unwrap());
    assert_keys_match(&ck, &sk);
    // dimpl prefers AES-256-GCM when both ends offer it; the other
    // profiles are negotiated with OpenSSL (tests/openssl.rs).
    assert_eq!(ck.local.suite(), Suite::AeadAes256Gcm);
    assert_eq!(ck.local.key().len(), 32);
    assert_eq!(ck.local.salt().len(), 12);
    assert!(
        c.take_keys().is_none() && s.take_keys().is_none(),
        "keys come once"
    );
    assert!(
        c.is_established(),
        "still established after the keys were taken"
    );
    assert_eq!(
        c.next_timeout(),
        None,
        "nothing pending once the client is done"
    );
}

#[test]
fn two_handshakes_give_different_keys() {
    let now = Instant::now();
    let (mut c1, mut s1) = pair(now);
    let (mut c2, mut s2) = pair(now);
    pump(&mut c1, &mut s1, now).0.unwrap();
    pump(&mut c2, &mut s2, now).0.unwrap();
    assert_ne!(c1.take_keys().unwrap().local, c2.take_keys().unwrap().local);
    assert!(s1.take_keys().is_some() && s2.take_keys().is_some());
}

#[test]
fn no_fingerprint_accepts_any_certificate() {
    let now = Instant::now();
    let (cc, sc) = (
        Certificate::generate().unwrap(),
        Certificate::generate().unwrap(),
    );
    let mut c = Session::new(&cc, Role::Client, None, now).unwrap();
    let mut s = Session::new(&sc, Role::Server, None, now).unwrap();
    let (ce, se) = pump(&mut c, &mut s, now);
    ce.unwrap();
    se.unwrap();
    assert_keys_match(&c.take_keys().unwrap(), &s.take_keys().unwrap());
}

#[test]
fn the_client_refuses_a_server_whose_certificate_does_not_match() {
    let now = Instant::now();
    let (cc, sc, other) = (
        Certificate::generate().unwrap(),
        Certificate::generate().unwrap(),
        Certificate::generate().unwrap(),
    );
    let mut c = Session::new(&cc, Role::Client, sha256(&other), now).unwrap();
    let mut s = Session::new(&sc, Role::Server, sha256(&cc), now).unwrap();
    let (ce, se) = pump(&mut c, &mut s, now);
    assert!(matches!(ce, Err(DtlsError::FingerprintMismatch)), "{ce:?}");
    assert!(
        se.is_ok(),
        "the server just never hears the client's last flight"
    );
    assert!(c.is_closed() && !c.is_established() && !s.is_established());
    assert!(c.take_keys().is_none() && s.take_keys().is_none());
    assert!(
        c.poll_datagram().is_none(),
        "nothing leaves after the mismatch"
    );
    assert!(matches!(c.handle_timeout(now), Err(DtlsError::Closed)));
}

#[test]
fn the_server_refuses_a_client_whose_certificate_does_not_match() {
    let now = Instant::now();
    let (cc, sc) = (
        Certificate::generate().unwrap(),
        Certificate::generate().unwrap(),
    );
    let mut wrong = cc.fingerprint_sha256();
    wrong[31] ^= 1;
    let mut c = Session::new(&cc, Role::Client, sha256(&sc), now).unwrap();
    let peer = Some(("SHA-256".to_string(), wrong.to_vec()));
    let mut s = Session::new(&sc, Role::Server, peer, now).unwrap();
    let (ce, se) = pump(&mut c, &mut s, now);
    assert!(matches!(se, Err(DtlsError::FingerprintMismatch)), "{se:?}");
    assert!(ce.is_ok());
    assert!(s.is_closed() && !c.is_established());
    assert!(c.take_keys().is_none() && s.take_keys().is_none());
}

#[test]
fn other_fingerprint_hashes_are_checked_and_unknown_ones_refused() {
    let now = Instant::now();
    let (cc, sc) = (
        Certificate::generate().unwrap(),
        Certificate::generate().unwrap(),
    );
    let sha512 = rtpmesh_dtls::FingerprintHash::Sha512.digest(sc.der());
    let mut c = Session::new(&cc, Role::Client, Some(("sha-512".into(), sha512)), now).unwrap();
    let mut s = Session::new(&sc, Role::Server, sha256(&cc), now).unwrap();
    pump(&mut c, &mut s, now).0.unwrap();
    assert!(c.take_keys().is_some());
    let md5 = Some(("md5".to_string(), vec![0; 16]));
    assert!(matches!(
        Session::new(&cc, Role::Client, md5, now),
        Err(DtlsError::UnsupportedHash(h)) if h == "md5"
    ));
}

/// Calls handle_timeout at each next_timeout until `s` sends again (some
/// of dimpl's timers only rate-limit); returns when and what it sent.
fn retransmit(s: &mut Session) -> (Instant, Vec<Vec<u8>>) {
    for _ in 0..10 {
        let due = s.next_timeout().expect("a retransmission timer");
        s.handle_timeout(due).unwrap();
        let sent: Vec<_> = std::iter::from_fn(|| s.poll_datagram()).collect();
        if !sent.is_empty() {
            return (due, sent);
        }
    }
    panic!("nothing retransmitted");
}

#[test]
fn a_lost_first_flight_is_retransmitted_at_next_timeout() {
    let start = Instant::now();
    let (mut c, mut s) = pair(start);
    let lost = c.poll_datagram().expect("a ClientHello");
    assert!(c.poll_datagram().is_none());
    assert!(c.next_timeout().unwrap() > start);
    // Not due yet: nothing is sent again.
    c.handle_timeout(start).unwrap();
    assert!(c.poll_datagram().is_none());
    let (due, again) = retransmit(&mut c);
    assert_eq!(again.len(), 1);
    // The same ClientHello in a record with the next sequence number.
    assert_eq!(again[0][13..], lost[13..], "the same ClientHello again");
    s.handle_datagram(due, &again[0]).unwrap();
    let (ce, se) = pump(&mut c, &mut s, due);
    ce.unwrap();
    se.unwrap();
    assert_keys_match(&c.take_keys().unwrap(), &s.take_keys().unwrap());
}

#[test]
fn a_lost_server_flight_is_retransmitted_too() {
    let now = Instant::now();
    let (mut c, mut s) = pair(now);
    // ClientHello -> HelloVerifyRequest -> ClientHello with cookie.
    deliver(&mut c, &mut s, now).unwrap();
    deliver(&mut s, &mut c, now).unwrap();
    deliver(&mut c, &mut s, now).unwrap();
    // The server's flight 4 is lost.
    let mut dropped = 0;
    while s.poll_datagram().is_some() {
        dropped += 1;
    }
    assert!(dropped > 0);
    let (due, again) = retransmit(&mut s);
    assert_eq!(again.len(), dropped);
    // It reaches the client after the client's own timer came due: the
    // client retransmits its ClientHello first, then answers the flight.
    let late = due.max(c.next_timeout().unwrap());
    for d in again {
        c.handle_datagram(late, &d).unwrap();
    }
    let (ce, se) = pump(&mut c, &mut s, late);
    ce.unwrap();
    se.unwrap();
    assert_keys_match(&c.take_keys().unwrap(), &s.take_keys().unwrap());
}

#[test]
fn a_lost_last_server_flight_is_sent_again_when_the_client_repeats_its_own() {
    let now = Instant::now();
    let (mut c, mut s) = pair(now);
    // Up to the server's last flight (ChangeCipherSpec, Finished).
    for _ in 0..2 {
        deliver(&mut c, &mut s, now).unwrap();
        deliver(&mut s, &mut c, now).unwrap();
    }
    deliver(&mut c, &mut s, now).unwrap();
    assert!(
        s.is_established(),
        "the server is done after its last flight"
    );
    let server_keys = s.take_keys().unwrap();
    while s.poll_datagram().is_some() {}
    assert!(!c.is_established());
    // The client repeats its flight; the server answers it again.
    let (due, again) = retransmit(&mut c);
    for d in again {
        s.handle_datagram(due, &d).unwrap();
    }
    deliver(&mut s, &mut c, due).unwrap();
    assert!(c.is_established());
    assert_keys_match(&c.take_keys().unwrap(), &server_keys);
    assert!(s.take_keys().is_none(), "the server's keys came once");
}

#[test]
fn garbage_and_truncated_records_are_errors_and_the_handshake_survives() {
    let now = Instant::now();
    let (mut c, mut s) = pair(now);
    let hello = c.poll_datagram().unwrap();
    for bad in [
        &[][..],
        &[0x80, 0x60, 0, 1],                       // RTP
        &[0, 1, 0, 0, 0x21, 0x12],                 // STUN
        &[22, 0xFE, 0xFD],                         // a header cut short
        &hello[..hello.len() - 1],                 // a record cut short
        &[22, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // TLS, not DTLS
    ] {
        let e = s.handle_datagram(now, bad).unwrap_err();
        assert!(matches!(e, DtlsError::Malformed(_)), "{e:?}");
        assert!(!e.is_fatal());
    }
    // Well framed but meaningless records are dropped without an error,
    // as RFC 6347 §4.1.2.7 says, and without ending the session.
    let mut flipped = hello.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xFF;
    let _ = s.handle_datagram(now, &flipped);
    let mut junk = vec![23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 4];
    junk.extend_from_slice(&[1, 2, 3, 4]);
    s.handle_datagram(now, &junk).unwrap();
    assert!(!s.is_closed());
    s.handle_datagram(now, &hello).unwrap();
    let (ce, se) = pump(&mut c, &mut s, now);
    ce.unwrap();
    se.unwrap();
    assert_keys_match(&c.take_keys().unwrap(), &s.take_keys().unwrap());
}

/// xorshift64: reproducible noise without a dependency.
fn noise(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_and_mutated_datagrams_never_panic() {
    let now = Instant::now();
    let mut rng = 0x9E37_79B9_7F4A_7C15;
    let (mut c, mut s) = pair(now);
    let cert = Certificate::generate().unwrap();
    let hello = c.poll_datagram().unwrap();
    for i in 0..3000 {
        let mut d = if i % 2 == 0 {
            hello.clone()
        } else {
            let len = (noise(&mut rng) % 300) as usize;
            (0..len).map(|_| noise(&mut rng) as u8).collect()
        };
        // Mutate a few bytes, keep a DTLS-looking first byte often.
        for _ in 0..(noise(&mut rng) % 4) {
            if !d.is_empty() {
                let at = (noise(&mut rng) as usize) % d.len();
                d[at] = noise(&mut rng) as u8;
            }
        }
        if i % 3 == 0 && !d.is_empty() {
            d[0] = 22;
            let cut = (noise(&mut rng) as usize) % d.len();
            d.truncate(cut.max(1));
        }
        let mut fresh = Session::new(&cert, Role::Server, None, now).unwrap();
        let _ = fresh.handle_datagram(now, &d);
        let _ = s.handle_datagram(now, &d);
        if i % 500 == 0 {
            let _ = s.handle_timeout(now + Duration::from_millis(i));
        }
    }
}

/// A random change that mostly keeps the record headers intact, so the
/// result gets past the framing check into dimpl's parsers.
fn mutate(d: &mut Vec<u8>, rng: &mut u64) {
    let body = if d.len() > 13 && noise(rng) % 10 < 7 {
        13
    } else {
        0
    };
    match noise(rng) % 5 {
        0 => {
            let at = body + (noise(rng) as usize) % (d.len() - body).max(1);
            if at < d.len() {
                d[at] ^= 1 << (noise(rng) % 8);
            }
        }
        1 => {
            for _ in 0..1 + noise(rng) % 8 {
                let at = body + (noise(rng) as usize) % (d.len() - body).max(1);
                if at < d.len() {
                    d[at] = noise(rng) as u8;
                }
            }
        }
        2 => d.truncate(body + (noise(rng) as usize) % (d.len() - body).max(1)),
        3 => d.extend((0..noise(rng) % 64).map(|_| noise(rng) as u8)),
        _ => {
            let copy = d.clone();
            d.extend_from_slice(&copy);
        }
    }
}

/// `from`'s pending flight, mutated copies first when `spoil`, then as
/// sent; errors are fine, panics are not.
fn deliver_spoiled(from: &mut Session, to: &mut Session, now: Instant, spoil: Option<&mut u64>) {
    let flight: Vec<_> = std::iter::from_fn(|| from.poll_datagram()).collect();
    if let Some(rng) = spoil {
        for d in &flight {
            let mut bad = d.clone();
            mutate(&mut bad, rng);
            let _ = to.handle_datagram(now, &bad);
        }
    }
    for d in flight {
        let _ = to.handle_datagram(now, &d);
    }
}

#[test]
fn mutated_flights_at_every_handshake_step_never_panic() {
    let (cc, sc) = (
        Certificate::generate().unwrap(),
        Certificate::generate().unwrap(),
    );
    let mut rng = 0x2545_F491_4F6C_DD1D;
    let mut completed = 0;
    for i in 0..600 {
        let now = Instant::now();
        let mut c = Session::new(&cc, Role::Client, sha256(&sc), now).unwrap();
        let mut s = Session::new(&sc, Role::Server, sha256(&cc), now).unwrap();
        // Steps: ClientHello, HelloVerifyRequest, ClientHello + cookie,
        // server flight, client flight, server's last flight.
        let spoiled = i % 6;
        for step in 0..6 {
            let spoil = (step == spoiled).then_some(&mut rng);
            if step % 2 == 0 {
                deliver_spoiled(&mut c, &mut s, now, spoil);
            } else {
                deliver_spoiled(&mut s, &mut c, now, spoil);
            }
        }
        if c.is_established() {
            completed += 1;
            assert_keys_match(&c.take_keys().unwrap(), &s.take_keys().unwrap());
        }
    }
    // Most spoiled copies are dropped and the genuine flight goes on.
    assert!(completed > 0);
}

#[test]
fn close_notify_ends_the_peer_session() {
    let now = Instant::now();
    let (mut c, mut s) = pair(now);
    pump(&mut c, &mut s, now).0.unwrap();
    c.close();
    assert!(c.is_closed());
    let alert = c.poll_datagram().expect("a close_notify");
    let e = s.handle_datagram(now, &alert).unwrap_err();
    assert!(matches!(e, DtlsError::Closed), "{e:?}");
    assert!(s.is_closed() && !s.is_established());
    assert!(matches!(
        s.handle_datagram(now, &alert),
        Err(DtlsError::Closed)
    ));
}

#[test]
fn sessions_are_send_and_certificates_send_and_sync() {
    fn send<T: Send>() {}
    fn sync<T: Send + Sync>() {}
    send::<Session>();
    sync::<Certificate>();
    send::<DtlsError>();
}
