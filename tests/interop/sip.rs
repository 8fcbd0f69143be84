//! The SIP side of the interop tests: Kamailio as the proxy, sipp as caller
//! and callee, and readers for what sipp wrote (its message trace and
//! statistics). Every program runs as a `common::process::Process`.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use crate::common::process::{Process, Spec};
use crate::common::{self, eventually};

/// Where the Kamailio cfg, the sipp scenarios and the capture live.
pub(crate) fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// Fails (never skips) when a tool the test drives is missing.
pub(crate) fn require_tools() {
    const HINT: &str =
        "run scripts/install-test-deps.sh (installs Debian's kamailio and sip-tester)";
    for (bin, arg) in [("kamailio", "-v"), ("sipp", "-v")] {
        let found = Command::new(bin)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(found, "`{bin}` is not installed: {HINT}");
    }
    // The module lives in an architecture-specific directory.
    let module = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .chain(
            std::fs::read_dir("/usr/lib64")
                .into_iter()
                .flatten()
                .flatten(),
        )
        .any(|e| e.path().join("kamailio/modules/rtpengine.so").exists());
    assert!(module, "Kamailio's rtpengine.so is not installed: {HINT}");
    // play_pcap_audio writes its RTP through a raw socket.
    // SAFETY: socket(2) takes plain integers and touches no memory of
    // ours; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP) };
    assert!(
        fd >= 0,
        "sipp's play_pcap_audio needs raw sockets (CAP_NET_RAW): run the interop test as root"
    );
    // SAFETY: `fd` is the socket just opened, owned by nothing else and
    // closed once.
    unsafe { libc::close(fd) };
}

/// A free even port whose next three ports are free too (sipp's echo uses
/// the media port and media port + 2; RTCP would use the odd ones).
pub(crate) fn free_port_run() -> u16 {
    loop {
        let p = common::free_port();
        if p.is_multiple_of(2)
            && p < 65530
            && (1..4).all(|i| UdpSocket::bind(("127.0.0.1", p + i)).is_ok())
        {
            return p;
        }
    }
}

/// A scratch directory, removed on drop unless the test failed (then its
/// logs are worth reading, and the path is printed).
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rtpmesh-interop-{}-{}-{}",
            name,
            std::process::id(),
            common::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("interop logs kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// How long Kamailio, sipp and the controller get between SIGTERM and
/// SIGKILL when a test ends.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// A Kamailio instance on loopback with its own runtime dir and pid file
/// (never the system service), pointed at one rtpmesh node.
pub(crate) struct Kamailio {
    process: Process,
    port: u16,
}

impl Kamailio {
    pub(crate) fn start(scratch: &Scratch, ng: std::net::SocketAddr) -> Self {
        Self::start_cfg(scratch, "kamailio.cfg", common::free_port(), ng, &[])
    }

    /// Kamailio with `cfg` from tests/interop on `port`, its relay set
    /// `ng`, and more `-A NAME=VALUE` defines.
    pub(crate) fn start_cfg(
        scratch: &Scratch,
        cfg: &str,
        port: u16,
        ng: std::net::SocketAddr,
        defines: &[String],
    ) -> Self {
        let mut spec = Spec::new("kamailio", "kamailio");
        for d in defines {
            spec = spec.arg("-A").arg(d);
        }
        let process = spec
            .arg("-f")
            .arg(interop_dir().join(cfg))
            // Foreground, log to stderr, two workers, private runtime files.
            .args(["-DD", "-E", "-n", "2", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(&scratch.0)
            .arg("-P")
            .arg(scratch.path("kamailio.pid"))
            .arg("-A")
            .arg(format!("SIP_PORT={port}"))
            .arg("-A")
            .arg(format!("NG_SOCK=\"udp:{ng}\""))
            .log_to(scratch.path("kamailio.log"))
            .grace(GRACE)
            .start();
        let mut k = Self { process, port };
        k.wait_ready();
        k
    }

    /// Kamailio answers OPTIONS once its SIP workers run (the cfg replies
    /// 200 to OPTIONS for itself).
    fn wait_ready(&mut self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let me = sock.local_addr().unwrap();
        let port = self.port;
        let mut n = 0;
        self.process
            .wait_ready(Duration::from_secs(10), "OPTIONS answered", || {
                n += 1;
                let options = format!(
                    "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {me};branch=z9hG4bK-ready-{n}\r\n\
                     From: <sip:probe@{me}>;tag=probe\r\n\
                     To: <sip:127.0.0.1:{port}>\r\n\
                     Call-ID: ready-{n}@{me}\r\n\
                     CSeq: {n} OPTIONS\r\n\
                     Max-Forwards: 70\r\n\
                     Content-Length: 0\r\n\r\n",
                );
                sock.send_to(options.as_bytes(), ("127.0.0.1", port))
                    .unwrap();
                let mut buf = [0u8; 2048];
                sock.recv(&mut buf)
                    .is_ok_and(|len| buf[..len].starts_with(b"SIP/2.0 200"))
            });
    }

    pub(crate) fn log_text(&self) -> String {
        self.process.log_text()
    }
}

/// One sipp run's settings.
pub(crate) struct Calls {
    /// Calls the UAC places.
    pub(crate) total: u32,
    /// Most at once (`-l`).
    pub(crate) concurrent: u32,
    /// Calls per second (`-r`).
    pub(crate) rate: u32,
    /// Calls the UAS expects to answer.
    pub(crate) answered: u32,
    /// The UAS scenario (`uas`, or `uas-busy` to reject every call).
    pub(crate) uas: &'static str,
}

/// What a sipp pair did, read from its files.
pub(crate) struct Outcome {
    pub(crate) uac: ExitStatus,
    pub(crate) uas: ExitStatus,
    /// UAC `-trace_stat` counters.
    pub(crate) uac_stats: HashMap<String, String>,
    /// Messages the UAC received.
    pub(crate) uac_received: Vec<String>,
    /// Messages the UAS received.
    pub(crate) uas_received: Vec<String>,
}

/// Runs a sipp UAS and a sipp UAC that calls it through Kamailio; the files
/// go to `scratch` under `tag`.
pub(crate) fn run_calls(
    scratch: &Scratch,
    kamailio: &Kamailio,
    calls: &Calls,
    tag: &str,
) -> Outcome {
    run_calls_to(scratch, kamailio, calls, tag, Target::Uas)
}

/// Where the UAC addresses its INVITEs.
pub(crate) enum Target {
    /// The UAS itself (on a port of its own): Kamailio relays to the
    /// Request-URI.
    Uas,
    /// `user` at Kamailio, the UAS listening on `uas_port`: Kamailio has to
    /// find the UAS itself.
    Proxy { user: &'static str, uas_port: u16 },
}

pub(crate) fn run_calls_to(
    scratch: &Scratch,
    kamailio: &Kamailio,
    calls: &Calls,
    tag: &str,
    target: Target,
) -> Outcome {
    let (uas_port, uri_port, service) = match target {
        Target::Uas => {
            let p = common::free_port();
            (p, p, "service")
        }
        Target::Proxy { user, uas_port } => (uas_port, kamailio.port, user),
    };
    let uas_media = free_port_run();
    let uac_media = free_port_run();
    let file = |f: &str| scratch.path(&format!("{tag}-{f}"));
    let sipp = |role: &str, scenario: &str| {
        Spec::new(&format!("sipp {role}"), "sipp")
            .current_dir(&interop_dir())
            .arg("-sf")
            .arg(format!("{scenario}.xml"))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin"])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(file(&format!("{role}.msg")))
            .arg("-trace_stat")
            .arg("-stf")
            .arg(file(&format!("{role}.csv")))
            .arg("-trace_err")
            .arg("-error_file")
            .arg(file(&format!("{role}-errors.log")))
            .stdout_to(file(&format!("{role}.out")))
            .log_to(file(&format!("{role}.err")))
            .grace(GRACE)
    };
    let mut uas = sipp("uas", calls.uas)
        .args(["-p", &uas_port.to_string()])
        .args(["-mp", &uas_media.to_string(), "-rtp_echo"])
        .args(["-m", &calls.answered.to_string()])
        // Bounded even if calls never arrive.
        .args(["-timeout", "40s"])
        .start();
    // The UAS binds its SIP port at once; wait for it, not a fixed time.
    assert!(
        eventually(Duration::from_secs(5), || UdpSocket::bind((
            "127.0.0.1",
            uas_port
        ))
        .is_err()),
        "sipp UAS did not bind its port"
    );
    let mut uac = sipp("uac", "uac")
        .arg(format!("127.0.0.1:{}", kamailio.port))
        // Its own port, or sipp advertises 5060 in Via and Contact.
        .args(["-p", &common::free_port().to_string()])
        .args(["-key", "uas_port", &uri_port.to_string()])
        .args(["-s", service])
        .args(["-mp", &uac_media.to_string()])
        .args(["-l", &calls.concurrent.to_string()])
        .args(["-m", &calls.total.to_string()])
        .args(["-r", &calls.rate.to_string()])
        .args(["-timeout", "30s", "-timeout_error"])
        .start();
    let uac_status = uac.wait_exit(Duration::from_secs(35));
    let uas_status = uas.wait_exit(Duration::from_secs(10));
    Outcome {
        uac: uac_status,
        uas: uas_status,
        uac_stats: stat_counters(&std::fs::read_to_string(file("uac.csv")).unwrap_or_default()),
        uac_received: received(&std::fs::read_to_string(file("uac.msg")).unwrap_or_default()),
        uas_received: received(&std::fs::read_to_string(file("uas.msg")).unwrap_or_default()),
    }
}

/// The last row of a sipp `-trace_stat` file, keyed by its header.
pub(crate) fn stat_counters(csv: &str) -> HashMap<String, String> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let last = lines.next_back().unwrap_or_default();
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub(crate) fn counter(o: &Outcome, name: &str) -> u64 {
    o.uac_stats
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in sipp's stats: {:?}", o.uac_stats))
}

/// The SIP messages a sipp `-trace_msg` log shows as received.
pub(crate) fn received(log: &str) -> Vec<String> {
    // Each entry starts with a dashed line and a time stamp, then
    // "UDP message received [N] bytes :" or "... sent ...", a blank line,
    // and the message.
    log.split("----------------------------------------------- ")
        .filter_map(|entry| {
            let (_, rest) = entry.split_once(" message received [")?;
            let (_, msg) = rest.split_once("bytes :")?;
            Some(msg.trim_start().to_owned())
        })
        .collect()
}

/// The `c=` address and `m=audio` port of a message's SDP body.
pub(crate) fn sdp_media(msg: &str) -> Option<(String, u16)> {
    let (_, body) = msg.split_once("\r\n\r\n")?;
    let c = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .trim()
        .to_owned();
    let port = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some((c, port))
}

/// The Call-ID header of a message.
pub(crate) fn call_id(msg: &str) -> String {
    msg.lines()
        .find_map(|l| l.strip_prefix("Call-ID:"))
        .unwrap_or("")
        .trim()
        .to_owned()
}
