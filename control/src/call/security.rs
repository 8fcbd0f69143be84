//! What protects the media between the relay and one party of one stream:
//! the SDES keys offered and agreed, the DTLS role, the ICE credentials.
//! The node decides them from the SDP (`node/security.rs`); a flow's
//! [`Security`] is read from here.

use rtpmesh_flow::flow::{DtlsSetup, Fingerprint, IceCredentials, SdesKeys, Security};
use rtpmesh_srtp::MasterKey;

/// The SDES suite agreed with a party: its tag, our key (protecting what
/// goes to the party) and the party's (what it sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChoice {
    /// The `a=crypto` tag both sides name it by.
    pub tag: u32,
    /// Our key, written in our `a=crypto`.
    pub ours: MasterKey,
    /// The party's key, from its `a=crypto`.
    pub theirs: MasterKey,
}

/// What the party itself said about ICE and DTLS (kept for the answer to it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerSecurity {
    /// Its `a=fingerprint`, when it speaks DTLS-SRTP.
    pub fingerprint: Option<Fingerprint>,
    /// Its `a=setup` (`None`: none given).
    pub setup: Option<rtpmesh_ng::sdp::Setup>,
    /// Its `a=ice-ufrag`.
    pub ice_ufrag: Option<String>,
    /// It signalled `a=ice-options:trickle`.
    pub trickle: bool,
    /// Its section carried `a=end-of-candidates` (rtpengine then writes one).
    pub end_of_candidates: bool,
    /// Its `a=mid`: rtpengine answers with the offer's mid when the answer has none.
    pub mid: Option<String>,
    /// Its usable `a=crypto` keys by tag, in its order of preference.
    pub crypto: Vec<(u32, MasterKey)>,
}

/// Media security of one stream toward one party.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSecurity {
    /// SDES keys offered to the party, by tag (an offer lists several; kept
    /// across re-offers so the keys stay the same, as rtpengine keeps them).
    pub offered: Vec<(u32, MasterKey)>,
    /// The SDES suite in use, once both sides are known.
    pub sdes: Option<SdesChoice>,
    /// `a=setup:actpass` and our fingerprint were offered to the party.
    pub dtls_offered: bool,
    /// DTLS-SRTP in use: our role and the party's fingerprint.
    pub dtls: Option<DtlsSetup>,
    /// ICE-lite toward the party: our credentials and its ufrag.
    pub ice: Option<IceCredentials>,
    /// Our ufrag and password toward the party, kept while ICE is off so a
    /// later offer names the same ones.
    pub ice_local: Option<(String, String)>,
    /// What the party's own SDP said.
    pub peer: PeerSecurity,
}

impl StreamSecurity {
    /// The flow table's view: what the socket facing the party does.
    pub fn flow_security(&self) -> Security {
        Security {
            sdes: self.sdes.as_ref().map(|c| SdesKeys {
                inbound: c.theirs.clone(),
                outbound: c.ours.clone(),
            }),
            dtls: self.dtls.clone(),
            ice: self.ice.clone(),
        }
    }

    /// Whether the party's media is SRTP (SDES or DTLS-SRTP).
    pub fn is_secure(&self) -> bool {
        self.sdes.is_some() || self.dtls.is_some()
    }
}
