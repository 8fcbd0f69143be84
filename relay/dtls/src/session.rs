//! One leg's DTLS-SRTP session: dimpl's state machine, the peer's
//! certificate checked against the SDP fingerprint, and the exported
//! keying material turned into SRTP master keys.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dimpl::{Config, Dtls, KeyingMaterial, Output, SrtpProfile};
use rtpmesh_srtp::{MasterKey, Suite};

use crate::record::check_framing;
use crate::{Certificate, DtlsError, FingerprintHash};

/// Which end of the handshake this node is (RFC 5763 §5): `a=setup:active`
/// is the DTLS client, `a=setup:passive` the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the ClientHello (`a=setup:active`).
    Client,
    /// Waits for the peer's ClientHello (`a=setup:passive`).
    Server,
}

/// Keys of one finished handshake: `local` protects what we send,
/// `remote` unprotects what the peer sends.
pub struct SrtpKeys {
    /// Protects what this node sends.
    pub local: MasterKey,
    /// Unprotects what the peer sends.
    pub remote: MasterKey,
}

impl fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.local.suite())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Established,
    /// close_notify received or sent, or an error ended the session.
    Closed,
}

/// dimpl reports "nothing pending" as a timeout years away; anything
/// further than this is treated as none.
const IDLE: Duration = Duration::from_secs(24 * 3600);

/// dimpl's configuration, shared by every session: building one checks
/// the crypto provider against test vectors, a cost once per process
/// rather than once per leg.
fn config() -> Result<Arc<Config>, DtlsError> {
    static CONFIG: OnceLock<Result<Arc<Config>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Config::builder()
                .require_client_certificate(true)
                .build()
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| DtlsError::Handshake(format!("configuration: {e}")))
}

/// A sans-IO DTLS-SRTP session for one leg. Send.
pub struct Session {
    dtls: Dtls,
    role: Role,
    expected: Option<(FingerprintHash, Vec<u8>)>,
    state: State,
    peer_verified: bool,
    material: Option<(KeyingMaterial, SrtpProfile)>,
    keys: Option<SrtpKeys>,
    outgoing: VecDeque<Vec<u8>>,
    next_timeout: Option<Instant>,
    now: Instant,
    buf: Vec<u8>,
}

impl Session {
    /// `peer_fingerprint`: (hash name as SDP spells it e.g. "sha-256",
    /// digest bytes); None = accept any (logged by the caller).
    ///
    /// Either way the peer must present a certificate: a server asks the
    /// client for one (RFC 5763 §5) and fails the handshake without it.
    pub fn new(
        cert: &Certificate,
        role: Role,
        peer_fingerprint: Option<(String, Vec<u8>)>,
        now: Instant,
    ) -> Result<Self, DtlsError> {
        let expected = match peer_fingerprint {
            Some((name, digest)) => match FingerprintHash::from_sdp_name(&name) {
                Some(hash) => Some((hash, digest)),
                None => return Err(DtlsError::UnsupportedHash(name)),
            },
            None => None,
        };
        // DTLS 1.2 in both roles: what WebRTC peers and rtpengine speak;
        // a peer offering 1.3 as well negotiates 1.2.
        let mut dtls = Dtls::new_12(config()?, cert.dtls(), now);
        dtls.set_active(role == Role::Client);
        let mut session = Self {
            dtls,
            role,
            expected,
            state: State::Handshaking,
            peer_verified: false,
            material: None,
            keys: None,
            outgoing: VecDeque::new(),
            next_timeout: None,
            now,
            buf: vec![0; 2048],
        };
        // A client's first timeout sends its ClientHello.
        session.handle_timeout(now)?;
        Ok(session)
    }

    /// A datagram from the peer (a DTLS record or records: first byte
    /// 20..=63, RFC 7983).
    ///
    /// [`DtlsError::Malformed`] drops the datagram and leaves the session
    /// as it was; every other error ends it. Records that are well framed
    /// but fail to decrypt or parse are dropped silently, as RFC 6347
    /// §4.1.2.7 asks (an attacker's garbage must not end a session).
    /// Application data after the handshake is ignored.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), DtlsError> {
        if self.state == State::Closed {
            return Err(DtlsError::Closed);
        }
        check_framing(datagram)?;
        // dimpl wants its clock brought to the datagram's instant first,
        // and its output drained after each call (its state is only
        // consistent then).
        if now > self.now {
            self.handle_timeout(now)?;
        }
        if let Err(e) = self.dtls.handle_packet(datagram) {
            return Err(self.fail(dimpl_error(e)));
        }
        self.drain()
    }

    /// Retransmits a lost flight when due.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.state == State::Closed {
            return Err(DtlsError::Closed);
        }
        let now = self.advance(now);
        if let Err(e) = self.dtls.handle_timeout(now) {
            return Err(self.fail(dimpl_error(e)));
        }
        self.drain()
    }

    /// Next datagram to send to the peer (a Client has its ClientHello
    /// ready after new()).
    pub fn poll_datagram(&mut self) -> Option<Vec<u8>> {
        self.outgoing.pop_front()
    }

    /// When handle_timeout should next be called; None when nothing is
    /// pending.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.next_timeout
    }

    /// The SRTP keys, once: after the handshake completed AND the peer's
    /// certificate matched the fingerprint.
    pub fn take_keys(&mut self) -> Option<SrtpKeys> {
        self.keys.take()
    }

    /// Whether the handshake completed with a verified peer and SRTP keys
    /// (stays true after the keys were taken, until the session closes).
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the session is over: the peer sent close_notify, an error
    /// ended it, or [`Session::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Ends the session; an established one queues a close_notify for
    /// [`Session::poll_datagram`].
    pub fn close(&mut self) {
        if self.state == State::Closed {
            return;
        }
        let was_established = self.state == State::Established;
        if self.dtls.close().is_ok() && was_established {
            // Only the alert is wanted: drain it, then stop.
            let _ = self.drain();
        }
        self.state = State::Closed;
        self.next_timeout = None;
    }

    /// Time never runs backwards for dimpl, whatever the caller passes.
    fn advance(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    /// Ends the session with `error`.
    fn fail(&mut self, error: DtlsError) -> DtlsError {
        tracing::debug!(role = ?self.role, %error, "DTLS session failed");
        self.state = State::Closed;
        self.outgoing.clear();
        self.next_timeout = None;
        self.material = None;
        self.keys = None;
        error
    }
}

/// What one drain of dimpl's output saw besides packets.
#[derive(Default)]
struct Drained {
    connected: bool,
    close_notify: bool,
    error: Option<DtlsError>,
}

impl Session {
    /// Takes everything dimpl has to say after an input (it must be
    /// polled until it yields a timeout), then acts on it.
    fn drain(&mut self) -> Result<(), DtlsError> {
        let mut seen = Drained::default();
        loop {
            match self.dtls.poll_output(&mut self.buf) {
                // Nothing leaves after a failed certificate check (the
                // client's flight 5 or the server's flight 6).
                Output::Packet(p) if seen.error.is_none() => self.outgoing.push_back(p.to_vec()),
                Output::Packet(_) => {}
                Output::BufferTooSmall { needed } => self.buf.resize(needed, 0),
                Output::Timeout(at) => {
                    self.next_timeout =
                        (at.saturating_duration_since(self.now) < IDLE).then_some(at);
                    break;
                }
                Output::Connected => seen.connected = true,
                Output::PeerCert(der) => {
                    if let Err(e) = check_peer(self.expected.as_ref(), der) {
                        seen.error.get_or_insert(e);
                    } else {
                        self.peer_verified = true;
                    }
                }
                Output::KeyingMaterial(material, profile) => {
                    self.material = Some((material, profile));
                }
                Output::ApplicationData(data) => {
                    // WebRTC's data channels would ride here; a media
                    // relay has none to offer.
                    tracing::debug!(len = data.len(), "DTLS application data ignored");
                }
                Output::CloseNotify => seen.close_notify = true,
                _ => {}
            }
        }
        if let Some(error) = seen.error {
            return Err(self.fail(error));
        }
        if seen.connected {
            match self.finish() {
                Ok(keys) => {
                    self.keys = Some(keys);
                    self.state = State::Established;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        if seen.close_notify {
            // dimpl has queued its reciprocal close_notify (RFC 5246
            // §7.2.1); it leaves before the session ends.
            tracing::debug!(role = ?self.role, "DTLS peer sent close_notify");
            self.state = State::Closed;
            self.next_timeout = None;
            return Err(DtlsError::Closed);
        }
        Ok(())
    }

    /// The keys of a completed handshake, if everything checks out.
    fn finish(&mut self) -> Result<SrtpKeys, DtlsError> {
        if !self.peer_verified {
            return Err(DtlsError::Certificate(
                "the peer presented no certificate".into(),
            ));
        }
        let (material, profile) = self.material.take().ok_or(DtlsError::NoSrtpProfile)?;
        split_keys(self.role, profile, &material)
    }
}

/// dimpl's errors are all fatal; a missing or unusable peer certificate
/// is told apart.
fn dimpl_error(e: dimpl::Error) -> DtlsError {
    match e {
        dimpl::Error::CertificateError(e) => DtlsError::Certificate(e.to_string()),
        e => DtlsError::Handshake(e.to_string()),
    }
}

/// Whether the peer's certificate hashes to the SDP fingerprint.
fn check_peer(expected: Option<&(FingerprintHash, Vec<u8>)>, der: &[u8]) -> Result<(), DtlsError> {
    let Some((hash, digest)) = expected else {
        return Ok(());
    };
    // Both are public, but a constant-time compare costs nothing here.
    let got = hash.digest(der);
    if got.len() == digest.len() && subtle_eq(&got, digest) {
        Ok(())
    } else {
        Err(DtlsError::FingerprintMismatch)
    }
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The SRTP suite of a DTLS-SRTP protection profile.
pub(crate) fn suite_of(profile: SrtpProfile) -> Result<Suite, DtlsError> {
    match profile {
        SrtpProfile::AES128_CM_SHA1_80 => Ok(Suite::AesCm128HmacSha1_80),
        SrtpProfile::AEAD_AES_128_GCM => Ok(Suite::AeadAes128Gcm),
        SrtpProfile::AEAD_AES_256_GCM => Ok(Suite::AeadAes256Gcm),
        other => Err(DtlsError::UnsupportedSrtpProfile(other.to_string())),
    }
}

/// RFC 5764 §4.2: the exporter's output is client_key | server_key |
/// client_salt | server_salt; each side protects with its own.
pub(crate) fn split_keys(
    role: Role,
    profile: SrtpProfile,
    material: &[u8],
) -> Result<SrtpKeys, DtlsError> {
    let suite = suite_of(profile)?;
    let (k, s) = (suite.key_len(), suite.salt_len());
    if material.len() != 2 * (k + s) {
        return Err(DtlsError::Handshake(format!(
            "{} bytes of keying material for {suite}",
            material.len()
        )));
    }
    let key = |key: &[u8], salt: &[u8]| {
        MasterKey::new(suite, &[key, salt].concat())
            .map_err(|e| DtlsError::Handshake(e.to_string()))
    };
    let client = key(&material[..k], &material[2 * k..2 * k + s])?;
    let server = key(&material[k..2 * k], &material[2 * k + s..])?;
    Ok(match role {
        Role::Client => SrtpKeys {
            local: client,
            remote: server,
        },
        Role::Server => SrtpKeys {
            local: server,
            remote: client,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_material_splits_as_rfc_5764_lays_it_out() {
        for (profile, suite) in [
            (SrtpProfile::AES128_CM_SHA1_80, Suite::AesCm128HmacSha1_80),
            (SrtpProfile::AEAD_AES_128_GCM, Suite::AeadAes128Gcm),
            (SrtpProfile::AEAD_AES_256_GCM, Suite::AeadAes256Gcm),
        ] {
            let (k, s) = (suite.key_len(), suite.salt_len());
            // client_key = 1s, server_key = 2s, client_salt = 3s, server_salt = 4s.
            let material: Vec<u8> = [(1, k), (2, k), (3, s), (4, s)]
                .iter()
                .flat_map(|&(b, n)| std::iter::repeat_n(b, n))
                .collect();
            let client = split_keys(Role::Client, profile, &material).unwrap();
            assert_eq!(client.local.suite(), suite);
            assert_eq!(client.local.key(), vec![1; k]);
            assert_eq!(client.local.salt(), vec![3; s]);
            assert_eq!(client.remote.key(), vec![2; k]);
            assert_eq!(client.remote.salt(), vec![4; s]);
            let server = split_keys(Role::Server, profile, &material).unwrap();
            assert_eq!(server.local, client.remote);
            assert_eq!(server.remote, client.local);
            assert!(split_keys(Role::Client, profile, &material[1..]).is_err());
        }
    }
}
