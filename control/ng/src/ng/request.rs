//! Typed ng requests: what [`parse_request`](super::parse_request) makes
//! of a decoded body.

use std::net::{IpAddr, SocketAddr};

use super::codec::{CodecOptions, Unsupported};
use super::parse::normalize;
use super::security::SecurityOptions;
use super::Command;

/// Entries of the `flags` list that are plain switches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flags {
    /// `strict-source`: drop packets from other than the learned address.
    pub strict_source: bool,
    /// `asymmetric`: do not learn the peer's address from its packets.
    pub asymmetric: bool,
    /// `symmetric`: the opposite of `asymmetric` (the default).
    pub symmetric: bool,
    /// `trust-address`: use the SDP's address, not the packet source.
    pub trust_address: bool,
    /// `SIP-source-address`: use `received-from` rather than the SDP's address.
    pub sip_source_address: bool,
    /// `fatal`: fail the request instead of degrading.
    pub fatal: bool,
    /// `all`: delete every branch of the call.
    pub all: bool,
    /// `port-latching`: keep the first learned address.
    pub port_latching: bool,
    /// `no-rtcp-attribute`: do not add `a=rtcp`.
    pub no_rtcp_attribute: bool,
    /// `full-rtcp-attribute`: write `a=rtcp` with address.
    pub full_rtcp_attribute: bool,
    /// `loop-protect`: detect SDP we rewrote ourselves.
    pub loop_protect: bool,
    /// `strip-extmap`: remove every `a=extmap` line.
    pub strip_extmap: bool,
    /// Everything else, verbatim. rtpengine ignores flags it does not know,
    /// and so do we, but keeping them lets the handler log them.
    pub unknown: Vec<String>,
}

/// The `replace` list: which SDP session lines to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replace {
    /// `origin`: rewrite `o=`.
    pub origin: bool,
    /// `session-connection`: rewrite the session-level `c=`.
    pub session_connection: bool,
}

/// The `ICE` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceMode {
    /// `remove`: strip ICE attributes.
    Remove,
    /// `force`: add our own candidates, replacing the peer's.
    Force,
    /// `default`: leave ICE as the peer offered it.
    Default,
    /// `force-relay`: add ours as relay candidates.
    ForceRelay,
    /// `optional`: add ICE only if the peer used it.
    Optional,
}

impl IceMode {
    /// Parses an `ICE` value; case, ' ' and '_' do not matter (`force_relay` works).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match normalize(s.trim()).to_ascii_lowercase().as_str() {
            "remove" => Self::Remove,
            "force" => Self::Force,
            "default" => Self::Default,
            "force-relay" => Self::ForceRelay,
            "optional" => Self::Optional,
            _ => return None,
        })
    }
}

pub(super) const ICE_EXPECTED: &str = "remove, force, default, force-relay or optional";

/// The `rtcp-mux` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtcpMux {
    /// `offer`: offer rtcp-mux to the callee.
    pub offer: bool,
    /// `accept`: accept rtcp-mux if offered.
    pub accept: bool,
    /// `demux`: split muxed RTCP for a peer that cannot mux.
    pub demux: bool,
    /// `require`: insist on rtcp-mux.
    pub require: bool,
    /// `reject`: refuse rtcp-mux.
    pub reject: bool,
}

/// A parsed ng request: the command with the keys it cannot do without,
/// and the keys any command may carry. Keys we do not model are ignored, as
/// rtpengine ignores unknown keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to do.
    pub op: Op,
    /// Everything optional.
    pub options: Options,
}

impl Request {
    /// The command's wire name, for logs.
    pub fn command(&self) -> Command {
        self.op.command()
    }

    /// The call the request is about, if its command names one.
    pub fn call_id(&self) -> Option<&str> {
        self.op.call_id()
    }

    /// Whether `supports` lists `load limit`.
    pub fn supports_load_limit(&self) -> bool {
        self.options.supports.iter().any(|s| s == "load limit")
    }
}

/// A command with its required keys, present by construction:
/// [`parse_request`](super::parse_request) checks them once, in rtpengine's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `ping`.
    Ping,
    /// `offer`.
    Offer(Offer),
    /// `answer`.
    Answer(Answer),
    /// `delete`.
    Delete(CallRef),
    /// `query`.
    Query(CallRef),
    /// `list`.
    List {
        /// `limit`: most call-ids to return.
        limit: Option<u32>,
        /// rtpmesh extension `after`: only call-ids sorted after this one,
        /// the cursor for paging through a node's calls. rtpengine
        /// ignores it (and does not sort).
        after: Option<String>,
    },
    /// `statistics`.
    Statistics,
    /// `start recording`.
    StartRecording(CallRef),
    /// `stop recording`.
    StopRecording(CallRef),
    /// `block media`.
    BlockMedia(CallRef),
    /// `unblock media`.
    UnblockMedia(CallRef),
    /// `update tunnel`.
    UpdateTunnel(CallRef),
    /// `start branch`.
    StartBranch(BranchRef),
    /// `stop branch`.
    StopBranch(BranchRef),
}

impl Op {
    /// The command this is.
    pub fn command(&self) -> Command {
        match self {
            Self::Ping => Command::Ping,
            Self::Offer(_) => Command::Offer,
            Self::Answer(_) => Command::Answer,
            Self::Delete(_) => Command::Delete,
            Self::Query(_) => Command::Query,
            Self::List { .. } => Command::List,
            Self::Statistics => Command::Statistics,
            Self::StartRecording(_) => Command::StartRecording,
            Self::StopRecording(_) => Command::StopRecording,
            Self::BlockMedia(_) => Command::BlockMedia,
            Self::UnblockMedia(_) => Command::UnblockMedia,
            Self::UpdateTunnel(_) => Command::UpdateTunnel,
            Self::StartBranch(_) => Command::StartBranch,
            Self::StopBranch(_) => Command::StopBranch,
        }
    }

    /// The call the command is about, if it names one.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::Ping | Self::List { .. } | Self::Statistics => None,
            Self::Offer(o) => Some(&o.call_id),
            Self::Answer(a) => Some(&a.call_id),
            Self::Delete(c)
            | Self::Query(c)
            | Self::StartRecording(c)
            | Self::StopRecording(c)
            | Self::BlockMedia(c)
            | Self::UnblockMedia(c)
            | Self::UpdateTunnel(c) => Some(&c.call_id),
            Self::StartBranch(b) | Self::StopBranch(b) => Some(&b.call.call_id),
        }
    }
}

/// `offer`'s keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// `call-id`.
    pub call_id: String,
    /// `from-tag`: the offering party.
    pub from_tag: String,
    /// `to-tag`: the party offered to, on a re-offer.
    pub to_tag: Option<String>,
    /// `sdp`.
    pub sdp: String,
}

/// `answer`'s keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `call-id`.
    pub call_id: String,
    /// `from-tag`: the party that sent the offer.
    pub from_tag: String,
    /// `to-tag`: the answering party.
    pub to_tag: String,
    /// `sdp`.
    pub sdp: String,
}

/// A call, and optionally one party of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRef {
    /// `call-id`.
    pub call_id: String,
    /// `from-tag`: the party the command is about (every party without one).
    pub from_tag: Option<String>,
}

/// A branch of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRef {
    /// The call, and the party whose media the branch forks.
    pub call: CallRef,
    /// `branch`: the branch's name.
    pub branch: String,
}

/// The keys any command may carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// `via-branch`.
    pub via_branch: Option<String>,
    /// Switches from the `flags` list.
    pub flags: Flags,
    /// `replace` list (or `replace-*` flags).
    pub replace: Replace,
    /// `direction`: up to two interface names.
    pub direction: Vec<String>,
    /// `ICE` (any case; or an `ICE=…` flag).
    pub ice: Option<IceMode>,
    /// `rtcp-mux` list (or `rtcp-mux-*` flags).
    pub rtcp_mux: RtcpMux,
    /// `transport-protocol`, e.g. `RTP/AVP` (or a bare `RTP/…` flag).
    pub transport_protocol: Option<String>,
    /// `DTLS`, `SDES` and `generate-mid` (keys or flags).
    pub security: SecurityOptions,
    /// `received-from: [IP4|IP6, ADDRESS]`: the SIP packet's source.
    pub received_from: Option<IpAddr>,
    /// `media-address`.
    pub media_address: Option<IpAddr>,
    /// `delete-delay` in seconds; `Some(0)` means delete now.
    pub delete_delay: Option<u32>,
    /// `supports`, e.g. `load limit`.
    pub supports: Vec<String>,
    /// `address-family` (`IP4`/`IP6`): the family of the relay address
    /// offered to the answerer, for calls that cross families.
    pub address_family: Option<String>,
    /// rtpmesh extension `tunnel`: one leg is reached through an
    /// inter-node tunnel (sent by the regional controller, never by a
    /// proxy).
    pub tunnel: Option<TunnelParams>,
    /// rtpmesh extension `destination`: where a local branch sends RTP
    /// (RTCP to the port above; stream `i` at `port + 2i`).
    pub destination: Option<SocketAddr>,
    /// `codec` dictionary (or `codec-…` flags).
    pub codec: CodecOptions,
    /// `ptime`: the packetization the offer should name; a change needs
    /// transcoding (repacketization), so the node refuses one.
    pub ptime: Option<u32>,
    /// `record call` (`yes`/`on`: `Some(true)`, `no`/`off`: `Some(false)`,
    /// or the `record-call` flag).
    pub record_call: Option<bool>,
    /// Keys and flags rtpengine acts on that rtpmesh refuses; the request
    /// is refused when its command is one they apply to.
    pub unsupported: Vec<Unsupported>,
    /// Keys neither rtpmesh nor rtpengine knows, for the debug log.
    pub unknown_keys: Vec<String>,
}

/// Which leg of a call faces the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelSide {
    /// The party that sent the offer is behind the tunnel.
    Offerer,
    /// The party the offer goes to is behind the tunnel.
    Answerer,
}

/// The `tunnel` dictionary of the regional controller's requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelParams {
    /// `side`: which leg is the tunnel leg (offer only).
    pub side: Option<TunnelSide>,
    /// `address`: the peer node's tunnel socket, once known.
    pub address: Option<SocketAddr>,
    /// `flows`: the peer's flow ids per m= line, `[RTP, RTCP]`.
    pub flows: Vec<(u32, u32)>,
}
