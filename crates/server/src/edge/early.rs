//! Early media of a PSTN call (RFC 3261 §13.2.1, RFC 3960): a carrier's 183 (or 180) with
//! SDP answers our offer on its leg before the call is answered. Its media goes into the
//! bridge at once and the PBX gets a 183 with our answer for its leg (its media is in the
//! bridge already), so ringback tones and announcements reach the PBX before the 200. A
//! provisional without SDP is a plain 180, once.
//!
//! The 200 usually repeats the early SDP (nothing changes); when it differs, it replaces the
//! early answer as an answer to the same offer (the leg's media session as it was before the
//! early answer is kept for that). A failover after early media (the carrier answers 503
//! later) needs nothing special: the leg ends, its media leaves the bridge, and the next
//! attempt's leg brings its own.

use std::time::Instant;

use calls::{LegId, Refusal};
use sdp::negotiate::MediaSession;
use sip::{HeaderName, Response};

use super::Edge;
use crate::meeting::MeetingMsg;
use crate::offer;

/// The early answer applied to the leg of the attempt in progress.
pub struct Early {
    /// The carrier leg.
    leg: LegId,
    /// Its media session as it was before the early answer: our offer, still outstanding.
    base: MediaSession,
    /// The carrier's SDP as applied.
    sdp: Vec<u8>,
}

/// What a carrier's SDP did to its leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Applied {
    /// The first answer to our offer (the leg's media is not in the bridge yet).
    First,
    /// The same as the early answer (or no SDP after early media): nothing changes.
    Same,
    /// A different answer after the early one: the leg's media changes.
    Changed,
}

/// The body of a response when it is SDP.
pub(super) fn sdp_body(resp: &Response) -> Option<&[u8]> {
    let sdp = resp
        .headers
        .get(HeaderName::ContentType)
        .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"));
    (sdp && !resp.body.is_empty()).then_some(resp.body.as_slice())
}

impl Edge {
    /// A carrier's provisional: early media when it has SDP, else ringing (180 once).
    pub(super) fn pstn_provisional(&mut self, b: LegId, resp: &Response) {
        let Some(a) = self.pstn_pbx_of(b) else { return };
        if self.pstn.get(&a).is_none_or(|c| c.answered) {
            return;
        }
        if let Some(sdp) = sdp_body(resp) {
            match self.carrier_sdp(a, b, sdp) {
                Ok(applied) => return self.early_media(a, b, applied),
                Err(r) => {
                    // The 200 may still bring a usable answer: ring meanwhile.
                    tracing::info!(call = %a, leg = %b, status = r.status, reason = %r.warning, "the carrier's early SDP is unusable; no early media");
                }
            }
        }
        let Some(call) = self.pstn.get_mut(&a) else {
            return;
        };
        if call.ringing || call.early_sent {
            return;
        }
        if let Some(k) = self.table.leg(a).and_then(|l| l.endpoint.sip())
            && self.ua.answer(Instant::now(), k, 180, None).is_ok()
        {
            call.ringing = true;
        }
    }

    /// Early media applied: the carrier leg's media into the bridge (or changed there),
    /// and the PBX's 183 with our answer, once.
    fn early_media(&mut self, a: LegId, b: LegId, applied: Applied) {
        match applied {
            Applied::First => self.attach_delayed(b),
            Applied::Changed => self.media_changed(b),
            Applied::Same => {}
        }
        let Some(call) = self.pstn.get_mut(&a) else {
            return;
        };
        if call.early_sent {
            return;
        }
        let answer = call.answer.clone();
        if let Some(k) = self.table.leg(a).and_then(|l| l.endpoint.sip()) {
            match self.ua.answer(Instant::now(), k, 183, Some(answer)) {
                Ok(()) => {
                    call.early_sent = true;
                    tracing::info!(call = %a, leg = %b, "early media: the carrier's 183 relayed");
                }
                Err(e) => tracing::debug!(call = %a, error = %e, "183 not sent"),
            }
        }
    }

    /// Applies a carrier's SDP to its leg `b` (of the PBX leg `a`): the first answers our
    /// offer; a different later one replaces it, answering the same offer.
    fn carrier_sdp(&mut self, a: LegId, b: LegId, sdp: &[u8]) -> Result<Applied, Refusal> {
        let gone = || Refusal::new(481, "call does not exist");
        let call = self.pstn.get_mut(&a).ok_or_else(gone)?;
        let media = self.legs.get_mut(&b).ok_or_else(gone)?;
        if let Some(e) = call.early.as_mut().filter(|e| e.leg == b) {
            if e.sdp == sdp {
                return Ok(Applied::Same);
            }
            let n = offer::accept(e.base.clone(), sdp)?;
            media.negotiated = Some(n);
            e.sdp = sdp.to_vec();
            return Ok(Applied::Changed);
        }
        let base = media
            .pending
            .clone()
            .ok_or_else(|| Refusal::new(491, "no offer of ours is pending"))?;
        if let Err(r) = media.apply_answer(sdp) {
            // Our offer stays outstanding for the 200.
            media.pending = Some(base);
            return Err(r);
        }
        call.early = Some(Early {
            leg: b,
            base,
            sdp: sdp.to_vec(),
        });
        Ok(Applied::First)
    }

    /// The SDP of a carrier's 200: the answer to our offer, unless early media answered it
    /// already (then no SDP or the same SDP changes nothing).
    pub(super) fn carrier_final_sdp(
        &mut self,
        a: LegId,
        b: LegId,
        sdp: &[u8],
    ) -> Result<Applied, Refusal> {
        let early = self
            .pstn
            .get(&a)
            .and_then(|c| c.early.as_ref())
            .is_some_and(|e| e.leg == b);
        if early && sdp.is_empty() {
            return Ok(Applied::Same);
        }
        self.carrier_sdp(a, b, sdp)
    }

    /// The carrier answered after `applied`: its media goes into the bridge unless early
    /// media put it there.
    pub(super) fn early_answered(&mut self, b: LegId, applied: Applied) {
        match applied {
            Applied::First => self.attach_delayed(b),
            Applied::Changed => self.media_changed(b),
            Applied::Same => {}
        }
    }

    /// The leg's negotiated media changed: its mixer gets the new settings, now or, when
    /// its attach is still on the way, once it is there.
    fn media_changed(&mut self, leg: LegId) {
        let Some(l) = self.legs.get(&leg) else { return };
        let Some(n) = &l.negotiated else { return };
        match &l.meeting {
            Some(tx) => {
                let msg = MeetingMsg::Update {
                    leg,
                    cfg: n.leg.clone(),
                };
                if tx.try_send(msg).is_err() {
                    tracing::warn!(call = %leg, "the new answer's media could not reach the bridge");
                }
            }
            None => {
                self.relay.restate.insert(leg);
            }
        }
    }

    /// A leg got into its mixer: settings that changed on the way follow.
    pub(super) fn early_attached(&mut self, leg: LegId) {
        if self.relay.restate.remove(&leg) {
            self.media_changed(leg);
        }
    }
}
