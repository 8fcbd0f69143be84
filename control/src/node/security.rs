//! Each leg's media security, decided from the SDP and the ng flags as
//! rtpengine 10.5 decides it (control/ng/SDP-NOTES.md, "Media security"),
//! and the SDP lines that announce it. Sans-IO: randomness comes from a
//! [`KeySource`], the DTLS certificate's fingerprint from the daemon.
//!
//! - A party whose m= protocol is SRTP (`RTP/SAVP`, `UDP/TLS/...`) is
//!   answered with SDES (its first usable `a=crypto`, our own fresh key of
//!   the same suite) or DTLS-SRTP (`UDP/TLS` with `a=fingerprint`, or no
//!   usable crypto). The other side gets what `transport-protocol` says
//!   (default: the offer's protocol): SDES keys for every suite rtpmesh has
//!   (the offerer's tags first) unless `SDES-off`/`SDES-no-…`, and
//!   `a=setup:actpass` with our fingerprint unless `DTLS=off`.
//! - ICE-lite toward a party when `ICE=force`, or by default when the
//!   other party's SDP had ICE; `ICE=remove` never. A party's candidates
//!   never reach the other side.
//! - Keys and credentials stay across re-offers unless the SDP changed them.

use std::net::IpAddr;

use rtpmesh_flow::flow::{DtlsRole, DtlsSetup, Fingerprint, IceCredentials};
use rtpmesh_ng::ng::{DtlsMode, Failure, IceMode, Options};
use rtpmesh_ng::sdp::{self, crypto_value, MediaSecurity, SdpFingerprint, Setup};
use rtpmesh_srtp::{MasterKey, Suite};

use crate::call::{PeerSecurity, SdesChoice, Stream, StreamSecurity};

/// Randomness for SDES keys and ICE credentials, injected so the core
/// stays deterministic under test.
pub trait KeySource: Send {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeySourceError>;
}

/// The OS could not give randomness.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no randomness for keys: {0}")]
pub struct KeySourceError(pub String);

/// The operating system's randomness (`getrandom`).
#[derive(Debug, Default)]
pub struct OsRandom;

impl KeySource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeySourceError> {
        getrandom::fill(buf).map_err(|e| KeySourceError(e.to_string()))
    }
}

/// What the node needs to secure legs: its randomness and its DTLS
/// certificate's SHA-256 fingerprint (`None`: DTLS-SRTP is refused).
pub struct NodeSecurity {
    /// Where keys and ICE credentials come from.
    pub keys: Box<dyn KeySource>,
    /// SHA-256 of the node's DTLS certificate.
    pub fingerprint: Option<[u8; 32]>,
}

impl Default for NodeSecurity {
    fn default() -> Self {
        Self {
            keys: Box::new(OsRandom),
            fingerprint: None,
        }
    }
}

const ICE_OPTIONAL: &str = "ICE=optional is not supported (use force, remove or default)";
const NO_CERTIFICATE: &str = "DTLS-SRTP is not available: the node has no DTLS certificate";
const NO_USABLE_SRTP: &str = "SDP offers SRTP without a usable a=crypto (rtpmesh supports \
     AEAD_AES_128_GCM, AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32, without MKI) or a=fingerprint";
const NO_SRTP_OFFER: &str = "transport protocol needs SRTP but both SDES and DTLS are off";
const BAD_ANSWER_CRYPTO: &str =
    "answer's a=crypto names no suite rtpmesh offered, or one it cannot use";
const NO_ANSWER_SRTP: &str =
    "answer is SRTP without an a=crypto or a=fingerprint matching the offer";

fn fail(why: impl Into<String>) -> Failure {
    Failure::Error(why.into())
}

/// Whether an m= protocol carries SRTP.
pub(super) fn is_srtp(protocol: &str) -> bool {
    protocol.contains("SAVP")
}

fn is_dtls_protocol(protocol: &str) -> bool {
    protocol.to_ascii_uppercase().starts_with("UDP/TLS/")
}

impl NodeSecurity {
    fn key(&mut self, suite: Suite) -> Result<MasterKey, Failure> {
        let mut b = [0u8; 30];
        let n = suite.key_len() + suite.salt_len();
        self.keys
            .fill(&mut b[..n])
            .map_err(|e| fail(e.to_string()))?;
        MasterKey::new(suite, &b[..n]).map_err(|e| fail(e.to_string()))
    }

    /// `n` characters of ICE's alphabet (RFC 8839 ice-char, less `+/`).
    fn ice_string(&mut self, n: usize) -> Result<String, Failure> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut b = vec![0u8; n];
        self.keys.fill(&mut b).map_err(|e| fail(e.to_string()))?;
        // 62 does not divide 256: a slight bias, harmless for 26 characters of password.
        Ok(b.iter()
            .map(|x| char::from(ALPHABET[usize::from(*x) % ALPHABET.len()]))
            .collect())
    }

    /// Turns ICE on in `s` (whose previous state is `cur`) with the party's
    /// ufrag `remote` (else the one known): our credentials are kept when
    /// the stream has some, as rtpengine keeps them.
    fn ice_on(
        &mut self,
        s: &mut StreamSecurity,
        cur: &StreamSecurity,
        remote: Option<String>,
    ) -> Result<(), Failure> {
        let (local_ufrag, local_pwd) = match &cur.ice_local {
            Some(l) => l.clone(),
            // rtpengine's lengths: 8 and 26.
            None => (self.ice_string(8)?, self.ice_string(26)?),
        };
        s.ice_local = Some((local_ufrag.clone(), local_pwd.clone()));
        s.ice = Some(IceCredentials {
            local_ufrag,
            local_pwd,
            remote_ufrag: remote.or_else(|| cur.ice.as_ref().and_then(|c| c.remote_ufrag.clone())),
        });
        Ok(())
    }

    fn our_fingerprint(&self) -> Result<String, Failure> {
        let fp = self.fingerprint.ok_or_else(|| fail(NO_CERTIFICATE))?;
        Ok(SdpFingerprint {
            hash: "sha-256".into(),
            value: fp.to_vec(),
        }
        .to_value())
    }
}

fn peer_of(m: &MediaSecurity) -> PeerSecurity {
    PeerSecurity {
        fingerprint: m.fingerprint.as_ref().map(|f| Fingerprint {
            hash: f.hash.clone(),
            value: f.value.clone(),
        }),
        setup: m.setup,
        ice_ufrag: m.ice_ufrag.clone(),
        trickle: m.trickle,
        end_of_candidates: m.end_of_candidates,
        mid: m.mid.clone(),
        crypto: Vec::new(),
    }
}

/// Whether rtpmesh does ICE toward a party, given the `ICE` option that
/// applies and whether the other SDP (`other_ice`) had ICE.
fn wants_ice(mode: Option<IceMode>, other_ice: bool) -> bool {
    match mode {
        Some(IceMode::Force | IceMode::ForceRelay) => true,
        Some(IceMode::Remove) => false,
        Some(IceMode::Default | IceMode::Optional) | None => other_ice,
    }
}

/// rtpengine's `ICE=optional` passes a party's own ICE through beside its
/// candidates; rtpmesh does not pass ICE through, so it says so.
fn refuse_optional(opts: &Options) -> Result<(), Failure> {
    match opts.ice {
        Some(IceMode::Optional) => Err(fail(ICE_OPTIONAL)),
        _ => Ok(()),
    }
}

/// Records the offer of section `m` (`msec`): the offerer's side `o` (what
/// we will answer it) and the side `a` it goes to (what we offer it).
pub(super) fn offered(
    o: &mut Stream,
    a: &mut Stream,
    m: &sdp::Media,
    msec: &MediaSecurity,
    opts: &Options,
    node: &mut NodeSecurity,
) -> Result<(), Failure> {
    refuse_optional(opts)?;
    let o_sec = offerer_side(&o.security, m, msec, opts, node)?;
    let a_sec = offered_side(&a.security, &a.protocol, msec, opts, node)?;
    o.security = o_sec;
    a.security = a_sec;
    Ok(())
}

/// The offerer's side: its key and fingerprint, and ours for the answer.
fn offerer_side(
    cur: &StreamSecurity,
    m: &sdp::Media,
    msec: &MediaSecurity,
    opts: &Options,
    node: &mut NodeSecurity,
) -> Result<StreamSecurity, Failure> {
    let mut s = StreamSecurity {
        peer: peer_of(msec),
        ice: cur.ice.clone(),
        ice_local: cur.ice_local.clone(),
        ..Default::default()
    };
    if !is_srtp(&m.protocol) {
        return Ok(s);
    }
    for c in &msec.crypto {
        let Some(suite) = Suite::from_name(&c.suite).filter(|_| c.usable) else {
            continue;
        };
        if opts.security.sdes.allows(&c.suite) {
            let theirs = MasterKey::new(suite, &c.key).map_err(|e| fail(e.to_string()))?;
            s.peer.crypto.push((c.tag, theirs));
        }
    }
    let dtls =
        msec.fingerprint.is_some() && (is_dtls_protocol(&m.protocol) || s.peer.crypto.is_empty());
    if dtls {
        // The role waits for the answer's flags; the certificate must exist
        // now. A re-offer with the same fingerprint keeps the session.
        node.our_fingerprint()?;
        s.dtls = cur
            .dtls
            .clone()
            .filter(|d| d.fingerprint == s.peer.fingerprint);
        return Ok(s);
    }
    // The suite agreed before (a re-offer), else its first usable one
    // until the answer says which the other side took.
    let agreed = cur.sdes.as_ref().and_then(|c| {
        let same = |(t, k): &&(u32, MasterKey)| *t == c.tag && k.suite() == c.ours.suite();
        s.peer.crypto.iter().find(same)
    });
    let Some((tag, theirs)) = agreed.or(s.peer.crypto.first()).cloned() else {
        return Err(fail(NO_USABLE_SRTP));
    };
    s.sdes = Some(choose(cur.sdes.as_ref(), tag, theirs, node)?);
    Ok(s)
}

/// The suite of the party's key `theirs` (tag `tag`) with our key for it:
/// the one we had (`cur`) when the same, else a fresh one.
fn choose(
    cur: Option<&SdesChoice>,
    tag: u32,
    theirs: MasterKey,
    node: &mut NodeSecurity,
) -> Result<SdesChoice, Failure> {
    let ours = match cur {
        Some(k) if k.tag == tag && k.ours.suite() == theirs.suite() => k.ours.clone(),
        _ => node.key(theirs.suite())?,
    };
    Ok(SdesChoice { tag, ours, theirs })
}

/// The side the offer goes to, with protocol `protocol`: what we offer it.
fn offered_side(
    cur: &StreamSecurity,
    protocol: &str,
    msec: &MediaSecurity,
    opts: &Options,
    node: &mut NodeSecurity,
) -> Result<StreamSecurity, Failure> {
    let mut s = StreamSecurity {
        peer: cur.peer.clone(),
        ice_local: cur.ice_local.clone(),
        ..Default::default()
    };
    if wants_ice(opts.ice, msec.ice_ufrag.is_some()) {
        node.ice_on(&mut s, cur, None)?;
    }
    if !is_srtp(protocol) {
        return Ok(s);
    }
    let mut next_tag = 1;
    let mut suites: Vec<(u32, Suite)> = Vec::new();
    // The offerer's suites first, under its tags, as rtpengine lists them;
    // an offerer without any keeps what this side was offered before.
    let previous = cur.offered.iter().map(|(t, k)| (*t, k.suite().name()));
    let first: Vec<(u32, &str)> = match msec.crypto.is_empty() {
        true => previous.collect(),
        false => msec
            .crypto
            .iter()
            .map(|c| (c.tag, c.suite.as_str()))
            .collect(),
    };
    for (tag, name) in first {
        if let Some(suite) = Suite::from_name(name) {
            if !suites.iter().any(|(t, x)| *t == tag || *x == suite) {
                suites.push((tag, suite));
            }
        }
        next_tag = next_tag.max(tag.saturating_add(1));
    }
    for suite in Suite::ALL {
        if !suites.iter().any(|(_, x)| *x == suite) {
            suites.push((next_tag, suite));
            next_tag = next_tag.saturating_add(1);
        }
    }
    suites.retain(|(_, x)| opts.security.sdes.allows(x.name()));
    for (tag, suite) in suites {
        let key = match cur
            .offered
            .iter()
            .find(|(t, k)| *t == tag && k.suite() == suite)
        {
            Some((_, k)) => k.clone(),
            None => node.key(suite)?,
        };
        s.offered.push((tag, key));
    }
    let dtls = opts.security.dtls;
    s.dtls_offered = dtls != Some(DtlsMode::Off) && node.fingerprint.is_some();
    let dtls_required =
        is_dtls_protocol(protocol) || matches!(dtls, Some(DtlsMode::Passive | DtlsMode::Active));
    if dtls != Some(DtlsMode::Off) && dtls_required && node.fingerprint.is_none() {
        return Err(fail(NO_CERTIFICATE));
    }
    if s.offered.is_empty() && !s.dtls_offered {
        // Say what is missing: the certificate, unless DTLS was turned off.
        let why = match dtls {
            Some(DtlsMode::Off) => NO_SRTP_OFFER,
            _ => NO_CERTIFICATE,
        };
        return Err(fail(why));
    }
    // Until the party answers a re-offer, what it agreed to before stays.
    s.sdes = cur
        .sdes
        .clone()
        .filter(|c| s.offered.iter().any(|(t, k)| *t == c.tag && *k == c.ours));
    s.dtls = cur.dtls.clone().filter(|_| s.dtls_offered);
    Ok(s)
}

/// Records the answer of section `m` (`msec`) and returns the new security
/// of the answerer's side `a` and of the offerer's side `o`, or why the
/// answer cannot be used; nothing is changed until every section passed.
pub(super) fn answered(
    o: &Stream,
    a: &Stream,
    m: &sdp::Media,
    msec: &MediaSecurity,
    opts: &Options,
    node: &mut NodeSecurity,
) -> Result<(StreamSecurity, StreamSecurity), Failure> {
    refuse_optional(opts)?;
    let mut b = StreamSecurity {
        offered: a.security.offered.clone(),
        dtls_offered: a.security.dtls_offered,
        peer: peer_of(msec),
        ice_local: a.security.ice_local.clone(),
        ..Default::default()
    };
    if let (Some(_), Some(u)) = (&a.security.ice, &msec.ice_ufrag) {
        node.ice_on(&mut b, &a.security, Some(u.clone()))?;
    }
    if is_srtp(&m.protocol) {
        answerer_srtp(&mut b, &a.security, msec)?;
    }
    let f = offerer_answered(o, &b, opts, node)?;
    Ok((b, f))
}

/// The SRTP the answerer (`b`, offered `offered`) chose: one of our SDES
/// suites by tag, or DTLS-SRTP.
fn answerer_srtp(
    b: &mut StreamSecurity,
    offered: &StreamSecurity,
    msec: &MediaSecurity,
) -> Result<(), Failure> {
    if let Some(c) = msec.crypto.first() {
        let ours = offered
            .offered
            .iter()
            .find(|(t, k)| *t == c.tag && k.suite().name() == c.suite);
        let (Some((tag, ours)), true) = (ours, c.usable) else {
            return Err(fail(BAD_ANSWER_CRYPTO));
        };
        let theirs = MasterKey::new(ours.suite(), &c.key).map_err(|e| fail(e.to_string()))?;
        b.sdes = Some(SdesChoice {
            tag: *tag,
            ours: ours.clone(),
            theirs,
        });
        return Ok(());
    }
    let (Some(fp), true) = (&b.peer.fingerprint, offered.dtls_offered) else {
        return Err(fail(NO_ANSWER_SRTP));
    };
    // RFC 5763: an answer without a=setup is active.
    let role = match msec.setup {
        Some(Setup::Passive) => DtlsRole::Active,
        _ => DtlsRole::Passive,
    };
    b.dtls = Some(DtlsSetup {
        role,
        fingerprint: Some(fp.clone()),
    });
    Ok(())
}

/// The offerer's side once the answerer's (`b`) is known: the suite, ICE
/// as the answer's flags say, our DTLS role.
fn offerer_answered(
    o: &Stream,
    b: &StreamSecurity,
    opts: &Options,
    node: &mut NodeSecurity,
) -> Result<StreamSecurity, Failure> {
    let mut f = o.security.clone();
    // The offerer gets the suite the answerer took when it offered it too,
    // as rtpengine answers (one suite end to end).
    if let (Some(bs), Some(fs)) = (&b.sdes, &f.sdes) {
        let same = f
            .peer
            .crypto
            .iter()
            .find(|(_, k)| k.suite() == bs.ours.suite());
        if let Some((tag, theirs)) = same.filter(|_| fs.ours.suite() != bs.ours.suite()) {
            f.sdes = Some(choose(f.sdes.as_ref(), *tag, theirs.clone(), node)?);
        }
    }
    f.ice = None;
    if wants_ice(opts.ice, f.peer.ice_ufrag.is_some()) {
        node.ice_on(&mut f, &o.security, o.security.peer.ice_ufrag.clone())?;
    }
    f.dtls = match (&f.peer.fingerprint, f.sdes.is_some()) {
        (Some(fp), false) if is_srtp(&o.protocol) => {
            node.our_fingerprint()?;
            let role = match (f.peer.setup, opts.security.dtls) {
                (Some(Setup::Active), _) => DtlsRole::Passive,
                (Some(Setup::Passive), _) => DtlsRole::Active,
                (_, Some(DtlsMode::Passive)) => DtlsRole::Passive,
                _ => DtlsRole::Active,
            };
            Some(DtlsSetup {
                role,
                fingerprint: Some(fp.clone()),
            })
        }
        _ => None,
    };
    Ok(f)
}

/// What the SDP for a party says about security.
pub(super) enum Advert {
    /// An offer: every offered key, `a=setup:actpass`.
    Offer,
    /// An answer: the agreed key or our DTLS role.
    Answer,
}

/// The `a=crypto`/`a=setup`/`a=fingerprint` values for stream `s`'s party.
pub(super) fn security_lines(
    s: &StreamSecurity,
    advert: &Advert,
    node: &NodeSecurity,
) -> Vec<String> {
    let mut v = Vec::new();
    let fingerprint = || node.our_fingerprint().map(|f| format!("fingerprint:{f}"));
    match advert {
        Advert::Offer => {
            for (tag, k) in &s.offered {
                v.push(crypto_value(*tag, k.suite().name(), k.key_and_salt()));
            }
            if s.dtls_offered {
                v.push("setup:actpass".into());
                v.extend(fingerprint().ok());
            }
        }
        Advert::Answer => {
            if let Some(c) = &s.sdes {
                v.push(crypto_value(
                    c.tag,
                    c.ours.suite().name(),
                    c.ours.key_and_salt(),
                ));
            } else if let Some(d) = &s.dtls {
                let role = match d.role {
                    DtlsRole::Active => "setup:active",
                    DtlsRole::Passive => "setup:passive",
                };
                v.push(role.into());
                v.extend(fingerprint().ok());
            }
        }
    }
    v
}

/// A candidate foundation for a local address: stable per address (as
/// rtpengine's is per interface), 16 characters.
fn foundation(ip: IpAddr) -> String {
    // FNV-1a: no need for more than a stable spread.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ip.to_string().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Our ICE attributes for stream `s`'s party at `ip`: credentials, host
/// candidates for RTP (and RTCP when it has its own port), in rtpengine's
/// order; `relay` (`ICE=force-relay`) makes them relay candidates, as
/// rtpengine writes them. `input_eoc`: the SDP being rewritten had
/// `a=end-of-candidates`.
pub(super) fn ice_lines(
    s: &StreamSecurity,
    ip: IpAddr,
    rtp: u16,
    rtcp: u16,
    input_eoc: bool,
    relay: bool,
) -> Vec<String> {
    let Some(c) = &s.ice else {
        // rtpengine re-emits a stray one even when it strips ICE (`ICE=remove`).
        return match input_eoc {
            true => vec!["end-of-candidates".into()],
            false => Vec::new(),
        };
    };
    let mut v = vec![
        format!("ice-ufrag:{}", c.local_ufrag),
        format!("ice-pwd:{}", c.local_pwd),
    ];
    if s.peer.trickle {
        v.push("ice-options:trickle".into());
    }
    let f = foundation(ip);
    // Local preference 65535, minus the component.
    for (component, port) in [(1u32, rtp), (2, rtcp)] {
        if component == 2 && rtcp == rtp {
            break;
        }
        // Type preference 126 for host, 0 for relay.
        let (priority, kind) = match relay {
            false => (2_130_706_432 - component, "host".to_owned()),
            true => (
                16_777_216 - component,
                format!("relay raddr {ip} rport {port}"),
            ),
        };
        v.push(format!(
            "candidate:{f} {component} UDP {priority} {ip} {port} typ {kind}"
        ));
    }
    if s.peer.trickle || input_eoc {
        v.push("end-of-candidates".into());
    }
    v
}

#[cfg(test)]
mod tests;
