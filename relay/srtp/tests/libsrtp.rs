//! Interop with an independent implementation: libsrtp2, through the small
//! C peer beside this file (compiled here with `cc ... -lsrtp2`). For each
//! suite: libsrtp protects, rtpmesh unprotects (and the reverse), and both
//! produce the same bytes for the same input (SRTP is deterministic given
//! key, SSRC and index).
//!
//! Needs a C compiler and libsrtp2-dev: without them this test fails and
//! says so (scripts/install-test-deps.sh installs them).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use rtpmesh_srtp::{MasterKey, SrtpContext, Suite};

/// The peer, compiled once per test binary into Cargo's temp dir.
fn peer_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let bin = dir.join("libsrtp_peer");
            let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/libsrtp_peer.c");
            let out = Command::new("cc")
                .args(["-O2", "-Wall", "-o"])
                .arg(&bin)
                .arg(&src)
                .arg("-lsrtp2")
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run cc ({e}): run scripts/install-test-deps.sh (needs gcc and libsrtp2-dev)")
                });
            assert!(
                out.status.success(),
                "cc {} -lsrtp2 failed: run scripts/install-test-deps.sh (needs gcc and libsrtp2-dev)\n{}",
                src.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            bin
        })
        .clone()
}

/// A running libsrtp peer for one suite and key.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(key: &MasterKey) -> Self {
        let mut child = Command::new(peer_binary())
            .arg(key.suite().name())
            .arg(hex(key.key_and_salt()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start libsrtp_peer");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends `op` on `pkt`; libsrtp's packet, or its error status.
    fn call(&mut self, op: &str, pkt: &[u8]) -> Result<Vec<u8>, String> {
        writeln!(self.stdin, "{op} {}", hex(pkt)).unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        match line.trim_end().split_once(' ') {
            Some(("ok", h)) => Ok(unhex(h)),
            _ => Err(line),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Closing stdin ends the peer; reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
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
    let mut peer = Peer::start(&key);
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
    let mut peer = Peer::start(&key);
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
    let mut peer = Peer::start(&key);
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
