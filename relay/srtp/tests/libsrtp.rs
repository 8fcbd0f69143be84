//! Interop with an independent implementation: libsrtp2, through the small
//! C peer beside this file (compiled here with `cc ... -lsrtp2`). For each
//! suite: libsrtp protects, rtpmesh unprotects (and the reverse), and both
//! produce the same bytes for the same input (SRTP is deterministic given
//! key, SSRC and index).
//!
//! Needs a C compiler and libsrtp2-dev: without them this test fails and
//! says so (scripts/install-test-deps.sh installs them).

#[allow(dead_code, unreachable_pub)]
mod common;

use common::peer::{hex, LibSrtp};
use rtpmesh_srtp::{MasterKey, SrtpContext, Suite};

/// libsrtp with `key`.
fn peer(key: &MasterKey) -> LibSrtp {
    LibSrtp::start(key.suite().name(), key.key_and_salt())
}

fn key(suite: Suite) -> MasterKey {
    let bytes: Vec<u8> = (0..44u8)
        .map(|i| i.wrapping_mul(71).wrapping_add(3))
        .collect();
    MasterKey::new(suite, &bytes[..suite.key_len() + suite.salt_len()]).unwrap()
}

/// RTP packets from `ssrc` across a sequence wrap (65530 → 9), some with
/// CSRCs and a header extension, payload sizes varying (0 included).
fn rtp_stream(ssrc: u32) -> Vec<Vec<u8>> {
    (0..16u16)
        .map(|i| {
            let seq = 65530u16.wrapping_add(i);
            let with_extras = i % 3 == 0;
            let mut p = vec![if with_extras { 0x91 } else { 0x80 }, 111];
            p.extend(seq.to_be_bytes());
            p.extend((u32::from(i) * 960).to_be_bytes());
            p.extend(ssrc.to_be_bytes());
            if with_extras {
                p.extend(0xDEAD_BEEFu32.to_be_bytes()); // one CSRC
                p.extend([0xBE, 0xDE, 0, 2, 0x22, 1, 2, 3, 0x30, 9, 0, 0]);
            }
            p.extend((0..usize::from(i) * 7).map(|j| (j as u8).wrapping_mul(13)));
            p
        })
        .collect()
}

/// Compound RTCP packets (SR + SDES) from `ssrc`.
fn rtcp_stream(ssrc: u32) -> Vec<Vec<u8>> {
    (0..5u8)
        .map(|i| {
            let mut p = vec![0x80, 200, 0, 6];
            p.extend(ssrc.to_be_bytes());
            p.extend([i; 20]);
            p.extend([0x81, 202, 0, 2]);
            p.extend(ssrc.to_be_bytes());
            p.extend([1, 1, b'a' + i, 0]);
            p
        })
        .collect()
}

fn rtpmesh(ctx: &mut SrtpContext, op: &str, pkt: &[u8]) -> Vec<u8> {
    let mut buf = pkt.to_vec();
    buf.resize(pkt.len() + 32, 0);
    let n = match op {
        "rtp-protect" => ctx.protect_rtp(&mut buf, pkt.len()),
        "rtp-unprotect" => ctx.unprotect_rtp(&mut buf, pkt.len()),
        "rtcp-protect" => ctx.protect_rtcp(&mut buf, pkt.len()),
        "rtcp-unprotect" => ctx.unprotect_rtcp(&mut buf, pkt.len()),
        _ => unreachable!(),
    }
    .unwrap_or_else(|e| panic!("rtpmesh {op} {}: {e}", hex(pkt)));
    buf.truncate(n);
    buf
}

/// libsrtp protects, rtpmesh unprotects; rtpmesh's own protection of the
/// same packet is byte for byte libsrtp's.
fn libsrtp_to_rtpmesh(suite: Suite, rtcp: bool) {
    let key = key(suite);
    let mut peer = peer(&key);
    let (mut tx, mut rx) = (SrtpContext::new(&key), SrtpContext::new(&key));
    let (protect, unprotect) = if rtcp {
        ("rtcp-protect", "rtcp-unprotect")
    } else {
        ("rtp-protect", "rtp-unprotect")
    };
    let packets = if rtcp {
        rtcp_stream(0x1111_2222)
    } else {
        rtp_stream(0x1111_2222)
    };
    for pkt in &packets {
        let theirs = peer.call(protect, pkt).expect("libsrtp protects");
        assert_eq!(
            rtpmesh(&mut rx, unprotect, &theirs),
            *pkt,
            "{suite} {protect}"
        );
        let ours = rtpmesh(&mut tx, protect, pkt);
        assert_eq!(
            hex(&ours),
            hex(&theirs),
            "{suite} {protect}: same bytes as libsrtp"
        );
    }
}

/// rtpmesh protects, libsrtp unprotects to the same packet.
fn rtpmesh_to_libsrtp(suite: Suite, rtcp: bool) {
    let key = key(suite);
    let mut peer = peer(&key);
    let mut tx = SrtpContext::new(&key);
    let (protect, unprotect) = if rtcp {
        ("rtcp-protect", "rtcp-unprotect")
    } else {
        ("rtp-protect", "rtp-unprotect")
    };
    let packets = if rtcp {
        rtcp_stream(0x3333_4444)
    } else {
        rtp_stream(0x3333_4444)
    };
    for pkt in &packets {
        let ours = rtpmesh(&mut tx, protect, pkt);
        let back = peer.call(unprotect, &ours);
        assert_eq!(back.as_deref(), Ok(&pkt[..]), "{suite} libsrtp {unprotect}");
        // And libsrtp sees a replay of it as one.
        assert!(
            peer.call(unprotect, &ours).is_err(),
            "{suite} libsrtp accepted a replay"
        );
    }
}

/// libsrtp sends authenticated but unencrypted SRTCP (E=0, RFC 3711
/// §3.4; RFC 7714 §9.2 for GCM: the whole packet is AAD); rtpmesh
/// accepts it, and refuses it with one bit changed.
fn unencrypted_srtcp_from_libsrtp(suite: Suite) {
    let key = key(suite);
    let mut peer = peer(&key);
    let mut rx = SrtpContext::new(&key);
    for pkt in rtcp_stream(0x5555_6666) {
        let theirs = peer
            .call("rtcp-protect-unencrypted", &pkt)
            .expect("libsrtp protects");
        assert_eq!(theirs[..pkt.len()], pkt[..], "{suite}: sent in clear");
        let mut forged = theirs.clone();
        forged[12] ^= 0x40;
        let n = forged.len();
        assert!(rx.unprotect_rtcp(&mut forged, n).is_err(), "{suite}");
        assert_eq!(rtpmesh(&mut rx, "rtcp-unprotect", &theirs), pkt, "{suite}");
    }
}

#[test]
fn aes_cm_80_interoperates_with_libsrtp() {
    for rtcp in [false, true] {
        libsrtp_to_rtpmesh(Suite::AesCm128HmacSha1_80, rtcp);
        rtpmesh_to_libsrtp(Suite::AesCm128HmacSha1_80, rtcp);
    }
    unencrypted_srtcp_from_libsrtp(Suite::AesCm128HmacSha1_80);
}

#[test]
fn aes_cm_32_interoperates_with_libsrtp() {
    for rtcp in [false, true] {
        libsrtp_to_rtpmesh(Suite::AesCm128HmacSha1_32, rtcp);
        rtpmesh_to_libsrtp(Suite::AesCm128HmacSha1_32, rtcp);
    }
    unencrypted_srtcp_from_libsrtp(Suite::AesCm128HmacSha1_32);
}

#[test]
fn aead_aes_128_gcm_interoperates_with_libsrtp() {
    for rtcp in [false, true] {
        libsrtp_to_rtpmesh(Suite::AeadAes128Gcm, rtcp);
        rtpmesh_to_libsrtp(Suite::AeadAes128Gcm, rtcp);
    }
    unencrypted_srtcp_from_libsrtp(Suite::AeadAes128Gcm);
}

/// Not offered in SDES, but a DTLS-SRTP server (dimpl) selects it when a
/// browser offers it.
#[test]
fn aead_aes_256_gcm_interoperates_with_libsrtp() {
    for rtcp in [false, true] {
        libsrtp_to_rtpmesh(Suite::AeadAes256Gcm, rtcp);
        rtpmesh_to_libsrtp(Suite::AeadAes256Gcm, rtcp);
    }
    unencrypted_srtcp_from_libsrtp(Suite::AeadAes256Gcm);
}
