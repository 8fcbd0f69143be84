//! An independent SRTP peer: libsrtp2 behind the small C program
//! relay/srtp/tests/libsrtp_peer.c, compiled once per test binary.
//!
//! Needs a C compiler and libsrtp2-dev: without them the test fails and
//! says so (scripts/install-test-deps.sh installs them).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

/// The C source, found from whichever workspace crate's test includes
/// this file.
fn source() -> PathBuf {
    const REL: &str = "relay/srtp/tests/libsrtp_peer.c";
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join(REL))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{REL} not found above {}", env!("CARGO_MANIFEST_DIR")))
}

/// The peer, compiled once per test binary into Cargo's temp dir.
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bin = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("libsrtp_peer-{}", std::process::id()));
            let src = source();
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

/// A running libsrtp session pair (protect, unprotect) for one suite (its
/// SDES name) and master key + salt.
pub struct LibSrtp {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl LibSrtp {
    /// libsrtp with `suite` and `key_and_salt`.
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

    /// Sends `op` on `pkt`; libsrtp's packet, or its error status.
    pub fn call(&mut self, op: &str, pkt: &[u8]) -> Result<Vec<u8>, String> {
        writeln!(self.stdin, "{op} {}", hex(pkt)).unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        match line.trim_end().split_once(' ') {
            Some(("ok", h)) => Ok(unhex(h)),
            _ => Err(line),
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

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Inverse of [`hex`].
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
