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

use super::{static_rtpmap, Line, Media, SessionDescription};
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

/// What an offer's codec handling leaves for its answer, per `m=` line:
/// the payload types the offerer is answered with at most, and the
/// offerer's own lines for its supplemental codecs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offered {
    media: Vec<OfferedMedia>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct OfferedMedia {
    /// The offerer's codecs after `strip`/`offer` (not `mask`: a masked
    /// codec may still be answered); `None` when the options kept them all.
    kept: Option<Vec<String>>,
    /// Each supplemental payload type's `a=rtpmap`/`a=fmtp`/`a=rtcp-fb`
    /// lines as the offerer wrote them.
    supplemental: Vec<(String, Vec<Line>)>,
}

/// Applies the `codec` options (and `ptime`, which must not change) of an
/// offer to every `m=` line of `sdp`, and returns what its answer needs;
/// an error when they need transcoding.
pub fn offer(
    sdp: &mut SessionDescription,
    ops: &CodecOptions,
    ptime: Option<u32>,
) -> Result<Offered, NeedsTranscoding> {
    if let Some(p) = ptime.filter(|&p| p != 0) {
        // A different packetization than the offerer sends means
        // repacketizing each packet.
        if sdp.media.iter().any(|m| m.port != 0 && m.ptime != Some(p)) {
            return Err(needs(format!("ptime: {p}")));
        }
    }
    let mut kept = Vec::with_capacity(sdp.media.len());
    let mut offered = Offered::default();
    for (m, lines) in sdp.media.iter().zip(&sdp.sections) {
        kept.push(formats(m, ops, Side::Offer)?);
        // The offerer's side: as towards the answerer, but unmasked.
        let unmasked = CodecOptions {
            mask: Vec::new(),
            transcode: Vec::new(),
            offer: ops.offer.iter().chain(&ops.transcode).cloned().collect(),
            ..ops.clone()
        };
        offered.media.push(OfferedMedia {
            kept: formats(m, &unmasked, Side::Answer)?,
            supplemental: supplemental_lines(m, lines),
        });
    }
    for (m, f) in sdp.media.iter_mut().zip(kept) {
        if let Some(f) = f {
            m.formats = f;
        }
    }
    Ok(offered)
}

/// The lines of each supplemental payload type of `m`.
fn supplemental_lines(m: &Media, lines: &[Line]) -> Vec<(String, Vec<Line>)> {
    m.formats
        .iter()
        .filter(|f| Codec::of(m, f).supplemental)
        .map(|f| {
            let own = lines
                .iter()
                .filter(|l| super::rewrite::pt_attr(l).is_some_and(|(_, pt)| pt == f.as_str()));
            (f.clone(), own.cloned().collect())
        })
        .collect()
}

/// Applies an answer's `codec` options (`strip`, `except`, `offer`) and
/// what its offer's options left (`offered`) to the answer `sdp`.
///
/// When codec options touched either side, rtpengine answers the offerer
/// with the answered codecs it kept for the offerer, and writes the
/// supplemental codecs as the offerer described them. An answered codec
/// the offerer's side no longer has would need transcoding back to one
/// it has; rtpmesh drops it, unless nothing else is left, then it passes
/// the answer through (the offerer did offer it).
pub fn answer(sdp: &mut SessionDescription, ops: &CodecOptions, offered: &Offered) {
    let media = sdp.media.iter_mut().zip(&mut sdp.sections);
    for (i, (m, lines)) in media.enumerate() {
        let Ok(own) = formats(m, ops, Side::Answer) else {
            continue;
        };
        let o = offered.media.get(i);
        let kept = o.and_then(|o| o.kept.as_ref());
        if own.is_none() && kept.is_none() {
            if ops.single_codec {
                m.formats = single(m, m.formats.clone());
            }
            continue;
        }
        let mut f = own.unwrap_or_else(|| m.formats.clone());
        if let Some(kept) = kept {
            let allowed: Vec<String> = f.iter().filter(|p| kept.contains(p)).cloned().collect();
            if allowed.iter().any(|p| !Codec::of(m, p).supplemental) {
                f = allowed;
            }
        }
        let main: Vec<u32> = f
            .iter()
            .map(|p| Codec::of(m, p))
            .filter(|c| !c.supplemental)
            .map(|c| c.clock_rate)
            .collect();
        f.retain(|p| {
            let c = Codec::of(m, p);
            !c.supplemental || main.contains(&c.clock_rate)
        });
        if ops.single_codec {
            f = single(m, f);
        }
        if let Some(o) = o {
            use_offerers_lines(lines, &f, &o.supplemental);
        }
        m.formats = f;
    }
}

/// `single codec`: the first codec and every supplemental one.
fn single(m: &Media, formats: Vec<String>) -> Vec<String> {
    let mut first = true;
    formats
        .into_iter()
        .filter(|p| Codec::of(m, p).supplemental || std::mem::take(&mut first))
        .collect()
}

/// `strip extmap`: removes every `a=extmap` line, session and media level.
pub fn strip_extmap(sdp: &mut SessionDescription) {
    let extmap = |l: &Line| l.attr().is_some_and(|(name, _)| name == "extmap");
    sdp.session.retain(|l| !extmap(l));
    for lines in &mut sdp.sections {
        lines.retain(|l| !extmap(l));
    }
}

/// Replaces the answer's lines of each kept supplemental payload type the
/// offerer also had by the offerer's.
fn use_offerers_lines(lines: &mut Vec<Line>, kept: &[String], theirs: &[(String, Vec<Line>)]) {
    for (pt, their_lines) in theirs.iter().filter(|(pt, _)| kept.contains(pt)) {
        lines.retain(|l| super::rewrite::pt_attr(l).is_none_or(|(_, p)| p != pt.as_str()));
        lines.extend(their_lines.iter().cloned());
    }
}

/// Applies the `codec` options to every `m=` line of `sdp` (an offer
/// without keeping what its answer needs: [`offer`] does), an error when
/// they need transcoding.
pub fn apply(
    sdp: &mut SessionDescription,
    ops: &CodecOptions,
    ptime: Option<u32>,
    side: Side,
) -> Result<(), NeedsTranscoding> {
    match side {
        Side::Offer => offer(sdp, ops, ptime).map(drop),
        Side::Answer => {
            answer(sdp, ops, &Offered::default());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
