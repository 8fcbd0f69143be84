//! The `codec` options that need no transcoding (`strip`, `mask`,
//! `except`, `offer`, and `transcode` of a codec the SDP already has):
//! which payload types each `m=` line keeps, and in which order, as
//! rtpengine 10.5 decides (its `codec_store_strip`, `codec_store_offer`,
//! `codec_store_check_empty` and codec tracker; observed outputs in
//! `control/ng/SDP-NOTES.md`, "codec").
//!
//! Only the format list changes: [`super::rewrite`] writes each kept payload
//! type's `a=rtpmap`/`a=fmtp`/`a=rtcp-fb` lines after the `m=` line in its
//! order and drops those of the others.

use super::{static_rtpmap, Media, SessionDescription};
use crate::ng::codec::{CodecOptions, Unsupported, Why};

/// Which message the SDP came in: rtpengine reads `mask`, `transcode` and
/// `ptime` in offers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// An `offer`: the result is what the answerer is offered.
    Offer,
    /// An `answer`: the result is what the offerer is answered.
    Answer,
}

/// The request needs transcoding (a codec the SDP lacks, a ptime change):
/// what was asked, for the error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.reason())]
pub struct NeedsTranscoding(pub Unsupported);

fn needs(what: String) -> NeedsTranscoding {
    NeedsTranscoding(Unsupported {
        what,
        why: Why::Transcoding,
        offer_only: true,
    })
}

/// One payload type of an `m=` line and the names it answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Codec {
    pt: String,
    /// `PCMU`, `PCMU/8000`, `PCMU/8000/1` (channels only in the second
    /// when not 1), as rtpengine's `encoding`, `encoding_with_params` and
    /// `encoding_with_full_params`; empty for a payload type without an
    /// rtpmap or static entry.
    names: Vec<String>,
    clock_rate: u32,
    /// `telephone-event` and `CN`: kept only beside a codec of their clock rate.
    supplemental: bool,
}

impl Codec {
    fn of(media: &Media, pt: &str) -> Self {
        let n: Option<u8> = pt.parse().ok();
        let map = n.and_then(|n| media.rtpmaps.iter().find(|m| m.pt == n));
        let (enc, clock, ch) = match map {
            Some(m) => (m.encoding.clone(), m.clock_rate, m.channels.unwrap_or(1)),
            None => match n.and_then(static_rtpmap) {
                Some((s, clock)) => (s.split('/').next().unwrap_or("").to_owned(), clock, 1),
                None => (String::new(), 0, 1),
            },
        };
        let mut names = Vec::new();
        if !enc.is_empty() {
            let with = if ch == 1 {
                format!("{enc}/{clock}")
            } else {
                format!("{enc}/{clock}/{ch}")
            };
            names = vec![enc.clone(), with, format!("{enc}/{clock}/{ch}")];
        }
        Self {
            pt: pt.to_owned(),
            supplemental: ["telephone-event", "CN"]
                .iter()
                .any(|s| enc.eq_ignore_ascii_case(s)),
            names,
            clock_rate: clock,
        }
    }

    fn is(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    fn in_list(&self, list: &[String]) -> bool {
        list.iter().any(|n| self.is(n))
    }
}

fn is_all(name: &str) -> bool {
    name == "all" || name == "full"
}

/// rtpengine's `codec_store_strip`: `all`/`full` removes every codec not
/// in `except`; a name removes the codecs it names.
fn strip(cur: &mut Vec<Codec>, list: &[String], except: &[String]) {
    for name in list {
        if is_all(name) {
            cur.retain(|c| c.in_list(except));
        } else {
            cur.retain(|c| !c.is(name));
        }
    }
}

/// rtpengine's `codec_store_offer`: a named codec that was stripped comes
/// back, after the other codecs but before the supplemental ones.
fn restore(cur: &mut Vec<Codec>, list: &[String], orig: &[Codec]) {
    for name in list {
        if cur.iter().any(|c| c.is(name)) {
            continue;
        }
        for c in orig.iter().filter(|c| c.is(name)) {
            if cur.iter().any(|x| x.pt == c.pt) {
                continue;
            }
            let at = cur.iter().position(|x| x.supplemental).unwrap_or(cur.len());
            cur.insert(at, c.clone());
        }
    }
}

/// The payload types `media` keeps, or `None` when the options do not
/// touch it (a rejected or non-RTP section, or nothing asked).
fn formats(
    media: &Media,
    ops: &CodecOptions,
    side: Side,
) -> Result<Option<Vec<String>>, NeedsTranscoding> {
    if media.port == 0 || !media.protocol.to_ascii_uppercase().contains("RTP") {
        return Ok(None);
    }
    let orig: Vec<Codec> = media.formats.iter().map(|f| Codec::of(media, f)).collect();
    let mut cur = orig.clone();
    strip(&mut cur, &ops.strip, &ops.except);
    if side == Side::Offer {
        strip(&mut cur, &ops.mask, &ops.except);
    }
    restore(&mut cur, &ops.offer, &orig);
    if side == Side::Offer {
        // A transcoded codec rtpmesh cannot make: one the offer lacks, or
        // any after `full` (which asks for a fresh, transcoded instance).
        let full = ops.strip.iter().chain(&ops.mask).any(|n| n == "full");
        for name in &ops.transcode {
            if full || !orig.iter().any(|c| c.is(name)) {
                return Err(needs(format!("codec-transcode: {name}")));
            }
        }
        restore(&mut cur, &ops.transcode, &orig);
    }
    if cur == orig {
        return Ok(None);
    }
    // The codec tracker: a supplemental codec goes with the last codec of
    // its clock rate.
    let rates: Vec<u32> = cur
        .iter()
        .filter(|c| !c.supplemental)
        .map(|c| c.clock_rate)
        .collect();
    cur.retain(|c| !c.supplemental || rates.contains(&c.clock_rate));
    // Nothing left: rtpengine documents (and does, when the list is empty)
    // that the original list is kept. When only supplemental codecs were
    // left it writes an m= line without formats; rtpmesh keeps the
    // original there too.
    if cur.is_empty() {
        return Ok(None);
    }
    Ok(Some(cur.into_iter().map(|c| c.pt).collect()))
}

/// Applies the `codec` options (and `ptime`, which must not change) to
/// every `m=` line of `sdp`; an error when they need transcoding.
pub fn apply(
    sdp: &mut SessionDescription,
    ops: &CodecOptions,
    ptime: Option<u32>,
    side: Side,
) -> Result<(), NeedsTranscoding> {
    if side == Side::Offer {
        if let Some(p) = ptime.filter(|&p| p != 0) {
            // A different packetization than the offerer sends means
            // repacketizing each packet.
            let active = sdp.media.iter().filter(|m| m.port != 0);
            if active.clone().any(|m| m.ptime != Some(p)) {
                return Err(needs(format!("ptime: {p}")));
            }
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    let mut kept = Vec::with_capacity(sdp.media.len());
    for m in &sdp.media {
        kept.push(formats(m, ops, side)?);
    }
    for (m, f) in sdp.media.iter_mut().zip(kept) {
        if let Some(f) = f {
            m.formats = f;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
