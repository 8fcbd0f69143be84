//! SRTP and SRTCP unprotect on attacker bytes (what a media port of an SRTP
//! leg receives), for every suite: never a panic, an accepted packet is
//! never longer than what came in, a refused one changes nothing (the same
//! bytes are refused again), and what rtpmesh protects it reads back.
//!
//! Input: byte 0 picks the suite and RTP or RTCP; the rest is the datagram.

use rtpmesh_srtp::{MasterKey, SrtpContext, Suite};

const SUITES: [Suite; 4] = [
    Suite::AesCm128HmacSha1_80,
    Suite::AesCm128HmacSha1_32,
    Suite::AeadAes128Gcm,
    Suite::AeadAes256Gcm,
];

fn key(suite: Suite) -> MasterKey {
    let bytes: Vec<u8> = (0..44u8).collect();
    MasterKey::new(suite, &bytes[..suite.key_len() + suite.salt_len()]).expect("key length")
}

/// One input.
pub fn check(data: &[u8]) {
    let Some((&sel, pkt)) = data.split_first() else {
        return;
    };
    let suite = SUITES[usize::from(sel) % SUITES.len()];
    let rtcp = sel & 0x80 != 0;
    let mut rx = SrtpContext::new(&key(suite));
    let mut buf = pkt.to_vec();
    let n = buf.len();
    let r = if rtcp {
        rx.unprotect_rtcp(&mut buf, n)
    } else {
        rx.unprotect_rtp(&mut buf, n)
    };
    match r {
        Ok(len) => assert!(len <= n, "{suite}: unprotected {len} of {n} bytes"),
        Err(e) => {
            // A refused packet left no trace: the same bytes again get the
            // same answer.
            let mut again = pkt.to_vec();
            let r2 = if rtcp {
                rx.unprotect_rtcp(&mut again, n)
            } else {
                rx.unprotect_rtp(&mut again, n)
            };
            assert_eq!(r2, Err(e), "{suite}: a refusal changed the context");
        }
    }
    // The fuzzer's bytes as a plain packet: what we protect, we read back.
    let mut tx = SrtpContext::new(&key(suite));
    let mut rx = SrtpContext::new(&key(suite));
    let mut buf = pkt.to_vec();
    buf.resize(n + 32, 0);
    let protected = if rtcp {
        tx.protect_rtcp(&mut buf, n)
    } else {
        tx.protect_rtp(&mut buf, n)
    };
    if let Ok(m) = protected {
        let back = if rtcp {
            rx.unprotect_rtcp(&mut buf, m)
        } else {
            rx.unprotect_rtp(&mut buf, m)
        };
        assert_eq!(back, Ok(n), "{suite}: our own packet refused");
        assert_eq!(&buf[..n], pkt, "{suite}: round trip changed the packet");
    }
}
