//! Headless Chromium (Debian's `chromium`) opening one page, for tests
//! that need a real WebRTC stack.
//!
//! [`Chromium::open`] starts it in a process group of its own with a fresh
//! profile directory; dropping the guard kills the whole group (browser,
//! zygote, renderer, GPU and network processes) and removes the profile,
//! so a failing test leaves nothing running. Its stderr goes to a file;
//! [`Chromium::stderr_tail`] is for failure messages.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The program, overridable with `RTPMESH_CHROMIUM` (a path).
fn program() -> String {
    std::env::var("RTPMESH_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// The flags a headless WebRTC test needs, and why.
pub const FLAGS: &[&str] = &[
    "--headless=new",
    // Runs as root in containers and CI.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    // getUserMedia gets a synthetic microphone (a beep), granted without
    // a prompt.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    // The remote <audio> plays without a user gesture, so Chromium pulls
    // (and decodes) the received audio.
    "--autoplay-policy=no-user-gesture-required",
    // Host candidates on 127.0.0.1 too (a CI box may have nothing else),
    // as IP addresses, not mDNS names a relay cannot resolve.
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    // Chromium's own log of WebRTC and page errors on stderr.
    "--enable-logging=stderr",
    "--v=0",
];

/// A running Chromium; killed with its process group on drop.
pub struct Chromium {
    child: Option<Child>,
    profile: PathBuf,
    log: PathBuf,
}

fn scratch(kind: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "rtpmesh-test-{}-chromium-{kind}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Chromium {
    /// Opens `url` in a new headless Chromium. Panics (with how to install
    /// it) when `chromium` cannot be started.
    pub fn open(url: &str) -> Self {
        let profile = scratch("profile");
        std::fs::create_dir_all(&profile).unwrap();
        let log = scratch("stderr.log");
        let err = File::create(&log).unwrap();
        let child = Command::new(program())
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(err.try_clone().unwrap())
            .stderr(err)
            // Its own group, so that drop reaches every helper process.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): the WebRTC test needs Debian's `chromium` \
                     (apt-get install chromium; scripts/install-test-deps.sh)",
                    program()
                )
            });
        Self {
            child: Some(child),
            profile,
            log,
        }
    }

    /// Whether the browser process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// The last `lines` lines of Chromium's stderr.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kills the whole browser at once (SIGKILL to its group): no DTLS
    /// close_notify, no goodbye, as when a laptop lid closes.
    pub fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    fn signal_group(&self, sig: i32) {
        if let Some(c) = &self.child {
            let pgid = i32::try_from(c.id()).expect("pid fits in pid_t");
            // SAFETY: kill(2) takes plain integers. The group is the one
            // this guard created (`process_group(0)` makes the child its
            // leader) and the leader is not yet reaped, so the id is ours.
            unsafe { libc::kill(-pgid, sig) };
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // No graceful shutdown: the profile is thrown away anyway, and the
        // group is killed before its leader is reaped, so its id is ours.
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- chromium stderr ({}), last 60 lines ---\n{}",
                self.log.display(),
                self.stderr_tail(60)
            );
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
