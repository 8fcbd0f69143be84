//! One way to run a program under test: the `rtpmesh` binary (node,
//! controller, CLI) or a helper (Kamailio, sipp, redis-server).
//!
//! A [`Spec`] says what to run and where its output goes; [`Spec::start`]
//! gives a [`Process`], which waits for readiness by polling an event the
//! caller names (an ng ping answered, a port open, a reply), never a fixed
//! sleep, and on drop sends SIGTERM, waits a grace period, then SIGKILLs
//! and reaps. Its stderr goes to a log file that is printed when the test
//! fails and removed when it passes (unless `RTPMESH_TEST_KEEP_LOGS` is set
//! or the log was placed with [`Spec::log_to`]).

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::eventually;

/// How long a process gets to exit after a signal sent by the test itself.
const SIGNAL_WAIT: Duration = Duration::from_secs(10);

/// What to run, with which output files and stop policy.
pub struct Spec {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    log: PathBuf,
    keep_log: bool,
    stdout: Output,
    grace: Duration,
    must_stop: bool,
    hint: &'static str,
}

/// Where a process's stdout goes.
enum Output {
    Null,
    File(PathBuf),
    /// Into the log, with stderr: for programs that log to stdout.
    Log,
}

/// A log path in the temp dir no other process of any test binary uses.
fn temp_log(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "rtpmesh-test-{}-{name}-{}.log",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Spec {
    /// `program`, called `name` in messages, with its log in the temp dir.
    pub fn new(name: &str, program: impl AsRef<OsStr>) -> Self {
        Self {
            name: name.to_owned(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            log: temp_log(name),
            keep_log: false,
            stdout: Output::Null,
            grace: Duration::from_secs(10),
            must_stop: false,
            hint: "",
        }
    }

    /// The `rtpmesh` binary under test, logging at `RTPMESH_TEST_LOG`
    /// (default `info`).
    pub fn rtpmesh(name: &str) -> Self {
        Self::new(name, env!("CARGO_BIN_EXE_rtpmesh")).env(
            "RUST_LOG",
            &std::env::var("RTPMESH_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
    }

    /// One more argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    /// More arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, a: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(a.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// An environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The working directory.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_owned());
        self
    }

    /// Stderr goes to `path`, which the test keeps (it lives in a scratch
    /// directory of the test's own).
    pub fn log_to(mut self, path: PathBuf) -> Self {
        self.log = path;
        self.keep_log = true;
        self
    }

    /// Stdout goes to `path` (else nowhere).
    pub fn stdout_to(mut self, path: PathBuf) -> Self {
        self.stdout = Output::File(path);
        self
    }

    /// Stdout goes to the log too (for programs that log there).
    pub fn stdout_to_log(mut self) -> Self {
        self.stdout = Output::Log;
        self
    }

    /// What to do when the program cannot be started (how to install it).
    pub fn hint(mut self, hint: &'static str) -> Self {
        self.hint = hint;
        self
    }

    /// How long a drop waits after SIGTERM before SIGKILL (default 10 s).
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = d;
        self
    }

    /// A process that outlives SIGTERM by the grace period fails the test
    /// (when it is not failing already): for the binary under test, whose
    /// clean shutdown is part of what is tested.
    pub fn must_stop(mut self) -> Self {
        self.must_stop = true;
        self
    }

    fn spawn(&self, append: bool) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let stdout = match &self.stdout {
            Output::Null => Stdio::null(),
            Output::File(p) => Stdio::from(File::create(p).unwrap()),
            Output::Log => Stdio::from(log.try_clone().unwrap()),
        };
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        if let Some(d) = &self.dir {
            cmd.current_dir(d);
        }
        cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({}): {e} {}",
                self.name,
                self.program.to_string_lossy(),
                self.hint
            )
        })
    }

    /// Starts the program (not waiting for anything).
    pub fn start(self) -> Process {
        let child = self.spawn(false);
        Process {
            spec: self,
            child: Some(child),
        }
    }
}

/// A running program; stopped (SIGTERM, grace, SIGKILL) and reaped on drop.
pub struct Process {
    spec: Spec,
    child: Option<Child>,
}

impl Process {
    /// Polls `ready` every 20 ms until it holds; panics with the log if
    /// the process exits first or `limit` passes.
    pub fn wait_ready(&mut self, limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child_mut().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "{} exited at start ({status}): {}",
                    self.spec.name,
                    self.log_text()
                );
            }
            if ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not get ready ({what}) within {limit:?}: {}",
                self.spec.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        let name = &self.spec.name;
        self.child
            .as_mut()
            .unwrap_or_else(|| panic!("{name} is not running"))
    }

    /// The process id (to read /proc/PID).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        let exited = self.child_mut().try_wait().unwrap().is_some();
        if exited {
            // Reaped: its pid may be reused, so it is never signalled again.
            self.child = None;
        }
        !exited
    }

    /// Sends `sig` and waits for the exit (10 s at most, else SIGKILL and
    /// panic).
    pub fn signal(&mut self, sig: i32) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        send(&child, sig);
        match wait_within(&mut child, SIGNAL_WAIT) {
            Some(s) => s,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} ignored signal {sig}: {}",
                    self.spec.name,
                    self.log_text()
                );
            }
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM)
    }

    /// SIGKILL, reaped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to end by itself within `limit`; kills it and
    /// panics otherwise.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        match wait_within(&mut child, limit) {
            Some(s) => s,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not finish within {limit:?}: {}",
                    self.spec.name,
                    self.log_text()
                );
            }
        }
    }

    /// Starts the program again with the same command line, its log
    /// appended to the old one.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} still running", self.spec.name);
        self.child = Some(self.spec.spawn(true));
    }

    /// Its log (stderr) so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.spec.log).unwrap_or_default()
    }
}

/// Sends `sig` to `child`.
fn send(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    // The pid is our own child's and not yet reaped: a `Process` drops its
    // `Child` as soon as a wait has seen it exit, and only waits reap, so
    // the pid cannot name a recycled process.
    unsafe { libc::kill(pid, sig) };
}

/// The exit status if `child` ends within `limit`.
fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let mut status = None;
    eventually(limit, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

impl Drop for Process {
    fn drop(&mut self) {
        let mut ignored_sigterm = false;
        if let Some(mut c) = self.child.take() {
            send(&c, libc::SIGTERM);
            if wait_within(&mut c, self.spec.grace).is_none() {
                let _ = c.kill();
                let _ = c.wait();
                ignored_sigterm = true;
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ({}) ---\n{}",
                self.spec.name,
                self.spec.log.display(),
                self.log_text()
            );
            return;
        }
        if ignored_sigterm && self.spec.must_stop {
            panic!(
                "{} did not stop on SIGTERM: {}",
                self.spec.name,
                self.log_text()
            );
        }
        if !self.spec.keep_log && std::env::var_os("RTPMESH_TEST_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_file(&self.spec.log);
        }
    }
}

/// How a program run to its end ended.
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
}

/// Runs a program to its end (`limit` at most, else it is killed and the
/// test fails).
pub fn run_to_end(spec: Spec, limit: Duration) -> Finished {
    let out = temp_log(&format!("{}-stdout", spec.name));
    let mut p = spec.stdout_to(out.clone()).start();
    let status = p.wait_exit(limit);
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    Finished {
        status,
        stdout,
        stderr: p.log_text(),
    }
}
