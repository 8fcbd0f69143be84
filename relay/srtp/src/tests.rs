//! The context's behaviour: RFC vectors, round trips, attacks.

/// Bytes from hex (spaces allowed).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

use crate::transform::Transform;
use crate::{MasterKey, SrtpContext, SrtpError, Suite};

fn key(suite: Suite) -> MasterKey {
    let bytes: Vec<u8> = (0..30u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    MasterKey::new(suite, &bytes[..suite.key_len() + suite.salt_len()]).unwrap()
}

/// An RTP packet: 2 CSRCs, a one-word header extension, `payload_len` bytes
/// of payload.
fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x92, 0x60];
    p.extend(seq.to_be_bytes());
    p.extend(
        0x1234_5678u32
            .wrapping_add(u32::from(seq) * 160)
            .to_be_bytes(),
    );
    p.extend(ssrc.to_be_bytes());
    p.extend([0, 0, 0, 1, 0, 0, 0, 2]); // CSRCs
    p.extend([0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // extension, 1 word
    p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// A compound RTCP packet: an empty RR then an SDES-ish filler.
fn rtcp(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend(ssrc.to_be_bytes());
    p.extend([0x81, 202, 0, 2]);
    p.extend(ssrc.to_be_bytes());
    p.extend([1, 2, b'h', b'i']);
    p
}

/// `pkt` protected by `ctx`, in a buffer with room to spare.
fn protect(ctx: &mut SrtpContext, pkt: &[u8], rtcp: bool) -> Vec<u8> {
    let mut buf = pkt.to_vec();
    buf.resize(pkt.len() + 64, 0);
    let n = if rtcp {
        ctx.protect_rtcp(&mut buf, pkt.len())
    } else {
        ctx.protect_rtp(&mut buf, pkt.len())
    }
    .unwrap();
    buf.truncate(n);
    buf
}

fn unprotect(ctx: &mut SrtpContext, wire: &[u8], rtcp: bool) -> Result<Vec<u8>, SrtpError> {
    let mut buf = wire.to_vec();
    let n = if rtcp {
        ctx.unprotect_rtcp(&mut buf, wire.len())
    } else {
        ctx.unprotect_rtp(&mut buf, wire.len())
    }?;
    buf.truncate(n);
    Ok(buf)
}

// RFC 3711 Appendix B.2: the AES-CM keystream for salt F0..FD, SSRC 0,
// index 0 (a zero payload encrypts to the keystream itself).
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let t = Transform::cm(
        &hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap(),
        &hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap(),
        &[0; 20],
        10,
    );
    let mut pkt = [0u8; 12 + 48];
    t.protect_rtp(&mut pkt, 12, &mut [0; 10], 0, 0);
    assert_eq!(
        pkt[12..],
        hex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
             41E95B3BB0A2E8DD477901E4FCA894C0"
        )
    );
}

const GCM_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const GCM_SALT: &str = "517569642070726f2071756f";

// RFC 7714 §16.1: AEAD_AES_128_GCM SRTP, both ways.
#[test]
fn rfc7714_16_gcm_srtp() {
    let t = Transform::gcm(&hex(GCM_KEY), &hex(GCM_SALT).try_into().unwrap());
    let plain = hex(
        "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976
         69736120 696e2070 61727465 73207472 6573",
    );
    let wire = hex(
        "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5
         0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce",
    );
    let mut buf = plain.clone();
    buf.resize(wire.len(), 0);
    let (pkt, tag) = buf.split_at_mut(plain.len());
    t.protect_rtp(pkt, 12, tag, 0x5501a0b2, 0xf17b);
    assert_eq!(buf, wire);
    let (pkt, tag) = buf.split_at_mut(plain.len());
    t.unprotect_rtp(pkt, 12, tag, 0x5501a0b2, 0xf17b).unwrap();
    assert_eq!(buf[..plain.len()], plain);
}

// RFC 7714 §17.1: AEAD_AES_128_GCM SRTCP (index 0x5d4), both ways.
#[test]
fn rfc7714_17_gcm_srtcp() {
    let t = Transform::gcm(&hex(GCM_KEY), &hex(GCM_SALT).try_into().unwrap());
    let plain = hex(
        "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
         deadbeef deadbeef deadbeef deadbeef deadbeef",
    );
    let wire = hex(
        "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
         c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
         45d9eade 800005d4",
    );
    let mut buf = plain.clone();
    buf.resize(wire.len(), 0);
    let (pkt, trailer) = buf.split_at_mut(plain.len());
    t.protect_rtcp(pkt, trailer, 0x4d617273, 0x5d4);
    assert_eq!(buf, wire);
    t.unprotect_rtcp(&mut buf, plain.len(), 0x4d617273, 0x8000_05d4)
        .unwrap();
    assert_eq!(buf[..plain.len()], plain);
}

#[test]
fn every_suite_round_trips_rtp_and_rtcp_with_csrcs_and_extension() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = (SrtpContext::new(&key(suite)), SrtpContext::new(&key(suite)));
        for seq in [100u16, 101, 103, 102] {
            let pkt = rtp(seq, 0xCAFE, 40);
            let wire = protect(&mut tx, &pkt, false);
            assert_eq!(wire.len(), pkt.len() + suite.rtp_overhead(), "{suite}");
            // Header in clear (authenticated), payload encrypted.
            assert_eq!(wire[..28], pkt[..28], "{suite}");
            assert_ne!(wire[28..pkt.len()], pkt[28..], "{suite}");
            assert_eq!(unprotect(&mut rx, &wire, false).unwrap(), pkt, "{suite}");
        }
        for _ in 0..3 {
            let pkt = rtcp(0xCAFE);
            let wire = protect(&mut tx, &pkt, true);
            assert_eq!(wire.len(), pkt.len() + suite.rtcp_overhead(), "{suite}");
            assert_eq!(wire[..8], pkt[..8], "{suite}");
            assert_ne!(wire[8..pkt.len()], pkt[8..], "{suite}");
            assert_eq!(unprotect(&mut rx, &wire, true).unwrap(), pkt, "{suite}");
        }
        // A header-only RTP packet (empty payload) too.
        let pkt = rtp(104, 0xCAFE, 0);
        let wire = protect(&mut tx, &pkt, false);
        assert_eq!(unprotect(&mut rx, &wire, false).unwrap(), pkt, "{suite}");
    }
}

#[test]
fn srtcp_index_counts_per_ssrc_from_one() {
    for suite in Suite::ALL {
        let mut tx = SrtpContext::new(&key(suite));
        let index = |w: &[u8]| {
            let at = match suite {
                Suite::AeadAes128Gcm => w.len() - 4,
                _ => w.len() - 14,
            };
            u32::from_be_bytes(w[at..at + 4].try_into().unwrap())
        };
        assert_eq!(index(&protect(&mut tx, &rtcp(1), true)), 0x8000_0001);
        assert_eq!(index(&protect(&mut tx, &rtcp(1), true)), 0x8000_0002);
        assert_eq!(index(&protect(&mut tx, &rtcp(2), true)), 0x8000_0001);
        assert_eq!(index(&protect(&mut tx, &rtcp(1), true)), 0x8000_0003);
    }
}

#[test]
fn any_flipped_bit_fails_authentication_and_changes_nothing() {
    for suite in Suite::ALL {
        for is_rtcp in [false, true] {
            let mut tx = SrtpContext::new(&key(suite));
            let mut rx = SrtpContext::new(&key(suite));
            let pkt = if is_rtcp { rtcp(7) } else { rtp(9, 7, 20) };
            let wire = protect(&mut tx, &pkt, is_rtcp);
            for bit in 0..wire.len() * 8 {
                let mut bad = wire.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let got = unprotect(&mut rx, &bad, is_rtcp);
                // A flipped version, CSRC count, extension bit or length
                // may be refused before the tag as Malformed; every
                // other bit fails authentication.
                let header = if is_rtcp { 1 } else { 28 };
                if bit / 8 >= header || got != Err(SrtpError::Malformed) {
                    assert_eq!(
                        got,
                        Err(SrtpError::AuthFailed),
                        "{suite} rtcp={is_rtcp} bit {bit}"
                    );
                }
            }
            assert!(format!("{rx:?}").contains("ssrcs: 0"), "{rx:?}");
            assert_eq!(unprotect(&mut rx, &wire, is_rtcp).unwrap(), pkt);
        }
    }
}

#[test]
fn replayed_and_too_old_packets_are_refused_without_moving_the_window() {
    for suite in Suite::ALL {
        for is_rtcp in [false, true] {
            let mut tx = SrtpContext::new(&key(suite));
            let mut rx = SrtpContext::new(&key(suite));
            let wires: Vec<Vec<u8>> = (0..300u16)
                .map(|i| {
                    protect(
                        &mut tx,
                        &if is_rtcp {
                            rtcp(5)
                        } else {
                            rtp(1000 + i, 5, 8)
                        },
                        is_rtcp,
                    )
                })
                .collect();
            unprotect(&mut rx, &wires[0], is_rtcp).unwrap();
            assert_eq!(
                unprotect(&mut rx, &wires[0], is_rtcp),
                Err(SrtpError::Replayed)
            );
            unprotect(&mut rx, &wires[200], is_rtcp).unwrap();
            assert_eq!(
                unprotect(&mut rx, &wires[1], is_rtcp),
                Err(SrtpError::TooOld)
            );
            assert_eq!(
                unprotect(&mut rx, &wires[200], is_rtcp),
                Err(SrtpError::Replayed)
            );
            // A forged packet far ahead does not move the window.
            let mut forged = wires[299].clone();
            let last = forged.len() - 1;
            forged[last] ^= 1;
            assert_eq!(
                unprotect(&mut rx, &forged, is_rtcp),
                Err(SrtpError::AuthFailed)
            );
            unprotect(&mut rx, &wires[100], is_rtcp).unwrap();
            unprotect(&mut rx, &wires[199], is_rtcp).unwrap();
            unprotect(&mut rx, &wires[299], is_rtcp).unwrap();
        }
    }
}

#[test]
fn roc_follows_a_sequence_wrap_on_both_sides() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = (SrtpContext::new(&key(suite)), SrtpContext::new(&key(suite)));
        let mut late = None;
        for seq in (65530..=65535u16).chain(0..5) {
            let wire = protect(&mut tx, &rtp(seq, 3, 10), false);
            if seq == 65534 {
                // Arrives after the wrap: ROC 0 still.
                late = Some(wire);
                continue;
            }
            assert_eq!(unprotect(&mut rx, &wire, false).unwrap(), rtp(seq, 3, 10));
        }
        assert_eq!(
            unprotect(&mut rx, &late.unwrap(), false).unwrap(),
            rtp(65534, 3, 10)
        );
        // After the wrap the sender used ROC 1: a context fresh at ROC 0
        // computes another tag/keystream for the same packet.
        let wire = protect(&mut tx, &rtp(5, 3, 10), false);
        let fresh = protect(&mut SrtpContext::new(&key(suite)), &rtp(5, 3, 10), false);
        assert_ne!(wire, fresh, "{suite}");
        assert_eq!(
            unprotect(&mut SrtpContext::new(&key(suite)), &wire, false),
            Err(SrtpError::AuthFailed)
        );
        assert_eq!(unprotect(&mut rx, &wire, false).unwrap(), rtp(5, 3, 10));
        // The sender refuses to reuse an index (keystream reuse).
        let mut buf = rtp(5, 3, 10);
        buf.resize(100, 0);
        assert_eq!(tx.protect_rtp(&mut buf, 32 + 10), Err(SrtpError::Replayed));
    }
}

#[test]
fn short_malformed_and_roomless_packets_are_refused() {
    for suite in Suite::ALL {
        let mut c = SrtpContext::new(&key(suite));
        let pkt = rtp(1, 1, 10);
        let mut buf = pkt.clone();
        assert_eq!(c.protect_rtp(&mut buf, pkt.len()), Err(SrtpError::NoRoom));
        assert_eq!(buf, pkt, "untouched");
        let r = rtcp(1);
        let mut buf = r.clone();
        buf.resize(r.len() + suite.rtcp_overhead() - 1, 0);
        assert_eq!(c.protect_rtcp(&mut buf, r.len()), Err(SrtpError::NoRoom));
        let mut buf = [0x80u8; 64];
        assert_eq!(c.protect_rtp(&mut buf, 11), Err(SrtpError::TooShort));
        assert_eq!(c.protect_rtcp(&mut buf, 7), Err(SrtpError::TooShort));
        assert_eq!(c.protect_rtp(&mut buf, 65), Err(SrtpError::TooShort));
        assert_eq!(
            c.unprotect_rtp(&mut buf, 11 + suite.rtp_overhead()),
            Err(SrtpError::TooShort)
        );
        assert_eq!(
            c.unprotect_rtcp(&mut buf, 7 + suite.rtcp_overhead()),
            Err(SrtpError::TooShort)
        );
        assert_eq!(c.unprotect_rtp(&mut buf, 3), Err(SrtpError::TooShort));
        assert_eq!(c.unprotect_rtp(&mut buf, 65), Err(SrtpError::TooShort));
        // Version 1; CSRC count past the end; extension past the end.
        let mut bad = [0u8; 64];
        bad[0] = 0x40;
        assert_eq!(c.unprotect_rtp(&mut bad, 40), Err(SrtpError::Malformed));
        bad[0] = 0x8F;
        assert_eq!(c.unprotect_rtp(&mut bad, 40), Err(SrtpError::Malformed));
        bad[0] = 0x90;
        bad[14] = 0xFF;
        assert_eq!(c.unprotect_rtp(&mut bad, 40), Err(SrtpError::Malformed));
        assert_eq!(
            c.protect_rtcp(&mut [0x40; 64], 20),
            Err(SrtpError::Malformed)
        );
        assert!(format!("{c:?}").contains("ssrcs: 0"));
    }
}

#[test]
fn debug_shows_no_key() {
    let c = SrtpContext::new(&key(Suite::AesCm128HmacSha1_80));
    let d = format!("{c:?}");
    assert!(
        d.contains("AesCm128HmacSha1_80") && !d.contains("5a"),
        "{d}"
    );
}

#[test]
fn a_context_can_move_to_its_worker_thread() {
    fn is_send<T: Send>() {}
    is_send::<SrtpContext>();
}
