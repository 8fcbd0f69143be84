//! What the node does with the ng options that are not about ports and
//! addresses: the `codec` edits (before any state changes, so a request
//! that needs transcoding is refused with nothing left behind), `record
//! call`, `direction`, and the debug log of what it ignores.

use super::commands::drop_branch;
use super::{Node, RECORDING};
use crate::plane::MediaPlane;
use rtpmesh_ng::ng::{CallRef, Failure, Options, Request};
use rtpmesh_ng::sdp::{self, codecs::Offered};

/// What a call keeps of its last offer's ng options for the answer.
#[derive(Debug, Clone, Default)]
pub struct Signalled {
    /// The offer's codec handling, which the answer to the offerer follows.
    pub offered: Offered,
    /// `record call: yes` came before the answerer's tag was known:
    /// recording starts with the answer (files are named by tag).
    pub record_pending: bool,
}

/// Applies an offer's `codec` options (and checks its `ptime`) to its
/// parsed SDP; refuses what would need transcoding, before anything
/// changes.
pub(super) fn offer_codecs(
    parsed: &mut sdp::SessionDescription,
    o: &Options,
) -> Result<Offered, Failure> {
    // `Node::execute` logs the refusal, with the call.
    let offered =
        sdp::codecs::offer(parsed, &o.codec, o.ptime).map_err(|e| Failure::Error(e.to_string()))?;
    if o.flags.strip_extmap {
        sdp::codecs::strip_extmap(parsed);
    }
    Ok(offered)
}

/// Applies an answer's `codec` options and `strip extmap`, after what its
/// offer's options left (`offered`).
pub(super) fn answer_codecs(parsed: &mut sdp::SessionDescription, o: &Options, offered: &Offered) {
    sdp::codecs::answer(parsed, &o.codec, offered);
    if o.flags.strip_extmap {
        sdp::codecs::strip_extmap(parsed);
    }
}

/// Logs, at debug level, each flag and key of `req` that rtpmesh ignores
/// (as rtpengine ignores what it does not know), and warns about
/// `direction` names: rtpmesh has no named interfaces yet, so like
/// rtpengine with an unknown name it uses its one interface.
pub(super) fn log_ignored(req: &Request) {
    let o = &req.options;
    let command = req.command().name();
    for flag in &o.flags.unknown {
        tracing::debug!(command, call = ?req.call_id(), flag = %flag, "ng flag ignored");
    }
    for key in &o.unknown_keys {
        tracing::debug!(command, call = ?req.call_id(), key = %key, "ng key ignored");
    }
    for set in &o.codec.set {
        tracing::debug!(command, call = ?req.call_id(), codec = %set, "ng codec-set ignored: no transcoding");
    }
    // rtpengine takes `internal`/`external` (and `round-robin-calls`)
    // as legacy selectors when no interface has those names, and warns
    // "Interface 'X' not found, using default" for any other name.
    for name in &o.direction {
        if !["internal", "external", "round-robin-calls"].contains(&name.as_str()) {
            tracing::warn!(call = ?req.call_id(), interface = %name, "interface not found, using default");
        }
    }
}

impl Node {
    /// `record call: yes` starts recording the call as `start recording`
    /// does (once; when the answerer's tag is not known yet, with the
    /// answer); `no` stops it. As in rtpengine, a failure to record is
    /// logged and the offer or answer still succeeds: its media is relayed.
    pub(super) fn record_call(
        &mut self,
        call_id: &str,
        record: Option<bool>,
        plane: &mut dyn MediaPlane,
    ) {
        let c = CallRef {
            call_id: call_id.to_owned(),
            from_tag: None,
        };
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let record = match record {
            None if call.signalled.record_pending => Some(true),
            r => r,
        };
        if record == Some(true) && call.legs.iter().any(|l| l.tag.is_empty()) {
            call.signalled.record_pending = true;
            return;
        }
        call.signalled.record_pending = false;
        match record {
            Some(true) => {
                if let Err(f) = self.start_recording(&c, plane) {
                    tracing::warn!(call = %call_id, reason = %f.reason(), "record-call: cannot record");
                }
            }
            Some(false) => {
                if let Some(call) = self.calls.get_mut(call_id) {
                    if drop_branch(call, RECORDING, plane) {
                        plane.install(call.worker, call.flow_specs());
                    }
                }
            }
            None => {}
        }
    }
}
