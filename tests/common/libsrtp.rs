//! An independent SRTP peer: libsrtp2 behind the small C program that
//! rtpmesh-srtp's own interop test uses (relay/srtp/tests/libsrtp_peer.c),
//! compiled once per test binary.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../relay/srtp/tests/libsrtp_peer.c");
        let out = std::env::temp_dir().join(format!("rtpmesh-libsrtp-peer-{}", std::process::id()));
        let r = Command::new("cc")
            .arg("-O1")
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .arg("-lsrtp2")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run cc ({e}): run scripts/install-test-deps.sh (gcc, libsrtp2-dev)")
            });
        assert!(
            r.status.success(),
            "cc {} -lsrtp2 failed: run scripts/install-test-deps.sh (gcc, libsrtp2-dev)\n{}",
            src.display(),
            String::from_utf8_lossy(&r.stderr)
        );
        out
    })
    .clone()
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A running libsrtp session pair (protect, unprotect) for one suite and
/// master key + salt.
pub struct LibSrtp {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl LibSrtp {
    /// libsrtp with `suite` (SDES name) and `key_and_salt`.
    pub fn start(suite: &str, key_and_salt: &[u8]) -> Self {
        let mut child = Command::new(binary())
            .arg(suite)
            .arg(hex(key_and_salt))
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

    fn call(&mut self, op: &str, pkt: &[u8]) -> Result<Vec<u8>, String> {
        writeln!(self.stdin, "{op} {}", hex(pkt)).unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        match line.trim_end().split_once(' ') {
            Some(("ok", h)) => Ok(unhex(h)),
            Some((_, e)) => Err(e.to_owned()),
            None => Err(line),
        }
    }

    /// libsrtp protects RTP.
    pub fn protect_rtp(&mut self, p: &[u8]) -> Vec<u8> {
        self.call("rtp-protect", p).expect("libsrtp protects")
    }

    /// libsrtp protects RTCP.
    pub fn protect_rtcp(&mut self, p: &[u8]) -> Vec<u8> {
        self.call("rtcp-protect", p).expect("libsrtp protects")
    }

    /// libsrtp unprotects RTP (its error status when it refuses).
    pub fn unprotect_rtp(&mut self, p: &[u8]) -> Result<Vec<u8>, String> {
        self.call("rtp-unprotect", p)
    }

    /// libsrtp unprotects RTCP.
    pub fn unprotect_rtcp(&mut self, p: &[u8]) -> Result<Vec<u8>, String> {
        self.call("rtcp-unprotect", p)
    }
}

impl Drop for LibSrtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (SDES `inline:`).
pub fn base64(b: &[u8]) -> String {
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Decodes standard base64 (padding optional).
pub fn unbase64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for ch in s.bytes().take_while(|&c| c != b'=') {
        let v = B64.iter().position(|&b| b == ch).expect("base64 digit") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
