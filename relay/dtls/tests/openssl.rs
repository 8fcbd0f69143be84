//! Interop with a different DTLS-SRTP implementation: the `openssl`
//! command (Debian's openssl package) as client and as server, over real
//! UDP on loopback. The keys rtpmesh exports must equal what OpenSSL's
//! own RFC 5705 exporter (`-keymatexport EXTRACTOR-dtls_srtp`) prints.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rtpmesh_dtls::{Certificate, DtlsError, FingerprintHash, Role, Session, SrtpKeys};
use rtpmesh_srtp::Suite;

/// Not a timing threshold: a bound so a broken handshake fails the test
/// instead of hanging it.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// OpenSSL's name for each profile, the suite it maps to, and the
/// exporter length (2 keys + 2 salts).
const PROFILES: [(&str, Suite, usize); 3] = [
    ("SRTP_AES128_CM_SHA1_80", Suite::AesCm128HmacSha1_80, 60),
    ("SRTP_AEAD_AES_128_GCM", Suite::AeadAes128Gcm, 56),
    ("SRTP_AEAD_AES_256_GCM", Suite::AeadAes256Gcm, 88),
];

/// A temporary directory with an ECDSA P-256 key and self-signed
/// certificate made by openssl, and that certificate's DER.
struct PeerCert {
    dir: PathBuf,
    der: Vec<u8>,
}

impl PeerCert {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rtpmesh-dtls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args([
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=openssl",
            ])
            .args(["-days", "2", "-keyout", "k.pem", "-out", "c.pem"])
            .current_dir(&dir));
        run(Command::new("openssl")
            .args(["x509", "-in", "c.pem", "-outform", "DER", "-out", "c.der"])
            .current_dir(&dir));
        let der = std::fs::read(dir.join("c.der")).unwrap();
        Self { dir, der }
    }

    fn fingerprint(&self) -> Option<(String, Vec<u8>)> {
        Some(("sha-256".into(), FingerprintHash::Sha256.digest(&self.der)))
    }
}

impl Drop for PeerCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .expect("the openssl command (Debian package openssl) is needed by this test");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `openssl s_client` or `s_server` and its output, line by line.
struct OpenSsl {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl OpenSsl {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the openssl command (Debian package openssl) is needed by this test");
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) that `pick` accepts, mapped.
    fn wait_for<T>(&mut self, what: &str, pick: impl Fn(&str) -> Option<T>) -> T {
        loop {
            let line = self.lines.recv_timeout(HANG_GUARD).unwrap_or_else(|_| {
                panic!(
                    "openssl never printed {what}; it said:\n{}",
                    self.seen.join("\n")
                )
            });
            let found = pick(&line);
            self.seen.push(line);
            if let Some(v) = found {
                return v;
            }
        }
    }

    /// The exported keying material openssl printed, as bytes.
    fn keying_material(&mut self) -> Vec<u8> {
        let hex = self.wait_for("its keying material", |l| {
            l.trim()
                .strip_prefix("Keying material: ")
                .map(str::to_owned)
        });
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }
}

impl Drop for OpenSsl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drives `session` over `socket` until `done` says so; `peer` is where
/// to send (learnt from the first datagram when None).
fn drive(
    session: &mut Session,
    socket: &UdpSocket,
    mut peer: Option<SocketAddr>,
    done: impl Fn(&Session) -> bool,
) -> Result<SocketAddr, DtlsError> {
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    loop {
        if let Some(to) = peer {
            while let Some(d) = session.poll_datagram() {
                socket.send_to(&d, to).unwrap();
            }
        }
        if done(session) {
            return Ok(peer.expect("a peer"));
        }
        assert!(start.elapsed() < HANG_GUARD, "the handshake never finished");
        let wait = session
            .next_timeout()
            .map_or(HANG_GUARD, |t| t.saturating_duration_since(Instant::now()));
        socket
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                peer = Some(from);
                session.handle_datagram(Instant::now(), &buf[..n])?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(Instant::now())?;
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// What OpenSSL's exporter prints: client_key | server_key | client_salt
/// | server_salt (RFC 5764 §4.2), from the keys one side took.
fn exporter_layout(role: Role, keys: &SrtpKeys) -> Vec<u8> {
    let (client, server) = match role {
        Role::Client => (&keys.local, &keys.remote),
        Role::Server => (&keys.remote, &keys.local),
    };
    [client.key(), server.key(), client.salt(), server.salt()].concat()
}

fn s_client(port: u16, cert: Option<&PeerCert>, profiles: &str, len: usize) -> OpenSsl {
    s_client_with(port, cert, profiles, len, &[])
}

fn s_client_with(
    port: u16,
    cert: Option<&PeerCert>,
    profiles: &str,
    len: usize,
    extra: &[&str],
) -> OpenSsl {
    let port = format!("127.0.0.1:{port}");
    let len = len.to_string();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-dtls1_2",
        "-connect",
        &port,
        "-use_srtp",
        profiles,
    ])
    .args([
        "-keymatexport",
        "EXTRACTOR-dtls_srtp",
        "-keymatexportlen",
        &len,
    ])
    .args(extra);
    if let Some(cert) = cert {
        cmd.args(["-cert", "c.pem", "-key", "k.pem"])
            .current_dir(&cert.dir);
    }
    OpenSsl::spawn(&mut cmd)
}

/// rtpmesh as the DTLS server (a=setup:passive), openssl s_client as the
/// browser would be.
fn rtpmesh_server_with(profiles: &str, len: usize) -> (Result<SrtpKeys, DtlsError>, OpenSsl) {
    let ours = Certificate::generate().unwrap();
    let theirs = PeerCert::new(&format!("client-{len}"));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut session =
        Session::new(&ours, Role::Server, theirs.fingerprint(), Instant::now()).unwrap();
    let client = s_client(port, Some(&theirs), profiles, len);
    let keys = drive(&mut session, &socket, None, Session::is_established)
        .map(|_| session.take_keys().expect("keys once established"));
    (keys, client)
}

#[test]
fn rtpmesh_server_and_openssl_client_export_the_same_keys() {
    for (profile, suite, len) in PROFILES {
        let (keys, mut client) = rtpmesh_server_with(profile, len);
        let keys = keys.unwrap_or_else(|e| panic!("{profile}: {e}"));
        assert_eq!(keys.local.suite(), suite, "{profile}");
        assert_eq!(
            client.keying_material(),
            exporter_layout(Role::Server, &keys),
            "{profile}"
        );
    }
}

#[test]
fn rtpmesh_server_prefers_gcm_from_a_chrome_like_offer_and_ignores_app_data_then_sees_close_notify()
{
    let ours = Certificate::generate().unwrap();
    let theirs = PeerCert::new("chrome-like");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut session =
        Session::new(&ours, Role::Server, theirs.fingerprint(), Instant::now()).unwrap();
    let offer =
        "SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32:SRTP_AEAD_AES_128_GCM:SRTP_AEAD_AES_256_GCM";
    let mut client = s_client(port, Some(&theirs), offer, 88);
    let peer = drive(&mut session, &socket, None, Session::is_established).unwrap();
    let keys = session.take_keys().unwrap();
    assert_eq!(keys.local.suite(), Suite::AeadAes256Gcm);
    assert_eq!(
        client.keying_material(),
        exporter_layout(Role::Server, &keys)
    );
    // Application data is ignored; end of input makes s_client send
    // close_notify, which ends the session.
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    drop(stdin);
    let e = drive(&mut session, &socket, Some(peer), |_| false).unwrap_err();
    assert!(matches!(e, DtlsError::Closed), "{e:?}");
    assert!(session.is_closed());
}

#[test]
fn a_client_offering_no_common_profile_gets_no_keys() {
    let (keys, _client) = rtpmesh_server_with("SRTP_AES128_CM_SHA1_32", 60);
    assert!(matches!(keys, Err(DtlsError::NoSrtpProfile)), "{keys:?}");
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let ours = Certificate::generate().unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut session = Session::new(&ours, Role::Server, None, Instant::now()).unwrap();
    let _client = s_client(port, None, "SRTP_AES128_CM_SHA1_80", 60);
    let e = drive(&mut session, &socket, None, Session::is_established).unwrap_err();
    assert!(matches!(e, DtlsError::Certificate(_)), "{e:?}");
    assert!(session.take_keys().is_none());
}

/// `openssl s_server` on an ephemeral loopback port, and that address.
fn s_server(cert: &PeerCert, args: &[&str]) -> (OpenSsl, SocketAddr) {
    let mut server = OpenSsl::spawn(
        Command::new("openssl")
            .args([
                "s_server",
                "-dtls1_2",
                "-accept",
                "127.0.0.1:0",
                "-naccept",
                "1",
            ])
            .args(["-cert", "c.pem", "-key", "k.pem"])
            .args(args)
            .current_dir(&cert.dir),
    );
    let addr = server.wait_for("ACCEPT <address>", |l| {
        l.strip_prefix("ACCEPT ").and_then(|a| a.parse().ok())
    });
    (server, addr)
}

/// rtpmesh as the DTLS client (a=setup:active) of `openssl s_server`
/// offering `profile`; the keys and what openssl exported.
fn rtpmesh_client_with(profile: &str, len: usize, extra: &[&str]) -> (SrtpKeys, Vec<u8>) {
    let ours = Certificate::generate().unwrap();
    let theirs = PeerCert::new(&format!("server-{len}-{}", extra.len()));
    let len_arg = len.to_string();
    let mut args = vec!["-Verify", "1", "-use_srtp", profile];
    args.extend([
        "-keymatexport",
        "EXTRACTOR-dtls_srtp",
        "-keymatexportlen",
        &len_arg,
    ]);
    args.extend(extra);
    let (mut server, addr) = s_server(&theirs, &args);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut session =
        Session::new(&ours, Role::Client, theirs.fingerprint(), Instant::now()).unwrap();
    drive(&mut session, &socket, Some(addr), Session::is_established)
        .unwrap_or_else(|e| panic!("{profile}: {e}"));
    let keys = session.take_keys().unwrap();
    (keys, server.keying_material())
}

#[test]
fn rtpmesh_client_and_openssl_server_export_the_same_keys() {
    for (profile, suite, len) in PROFILES {
        let (keys, exported) = rtpmesh_client_with(profile, len, &[]);
        assert_eq!(keys.local.suite(), suite, "{profile}");
        assert_eq!(exported, exporter_layout(Role::Client, &keys), "{profile}");
    }
}

#[test]
fn handshake_messages_fragmented_by_a_small_mtu_are_reassembled() {
    // OpenSSL splits its certificate flights into several records and
    // datagrams at this MTU, in both roles.
    let (keys, exported) = rtpmesh_client_with("SRTP_AES128_CM_SHA1_80", 60, &["-mtu", "300"]);
    assert_eq!(exported, exporter_layout(Role::Client, &keys));
    let ours = Certificate::generate().unwrap();
    let theirs = PeerCert::new("client-mtu");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut session =
        Session::new(&ours, Role::Server, theirs.fingerprint(), Instant::now()).unwrap();
    let offer = "SRTP_AES128_CM_SHA1_80";
    let mut client = s_client_with(port, Some(&theirs), offer, 60, &["-mtu", "300"]);
    drive(&mut session, &socket, None, Session::is_established).unwrap();
    let keys = session.take_keys().unwrap();
    assert_eq!(
        client.keying_material(),
        exporter_layout(Role::Server, &keys)
    );
}

#[test]
fn rtpmesh_client_refuses_an_openssl_server_with_another_certificate() {
    let ours = Certificate::generate().unwrap();
    let theirs = PeerCert::new("server-mismatch");
    let expected = Some(("sha-256".to_string(), ours.fingerprint_sha256().to_vec()));
    let (_server, addr) = s_server(&theirs, &["-use_srtp", "SRTP_AES128_CM_SHA1_80"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut session = Session::new(&ours, Role::Client, expected, Instant::now()).unwrap();
    let e = drive(&mut session, &socket, Some(addr), Session::is_established).unwrap_err();
    assert!(matches!(e, DtlsError::FingerprintMismatch), "{e:?}");
    assert!(session.take_keys().is_none());
}
