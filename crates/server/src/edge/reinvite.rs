//! Hold and resume carried across a bridge, as a B2BUA does it: a re-INVITE (or an UPDATE
//! with SDP) from one leg is answered on that leg (`Edge::reoffer`), and when the direction
//! its peer asks for changes (hold: `sendonly`/`inactive`; resume: `sendrecv`), the other
//! leg gets our own re-INVITE offering that direction (RFC 3264 §8.4), so the held side's
//! peer is held too. A re-offer that changes nothing of the direction (a session refresh, a
//! new key) stays on its leg.
//!
//! What each leg offers is what the other leg's peer last asked for: our local direction on
//! one leg is the other peer's wish, so our answers on that leg are limited by it too and
//! the two legs converge whatever the order of holds and resumes.
//!
//! Our re-INVITE answered 491 (glare, RFC 3261 §14.1) is sent again after a random delay:
//! 2.1 to 4 s on a leg whose Call-ID we made (the carrier leg), 0 to 2 s on the other, at
//! most [`MAX_GLARE`] times. Any other failure leaves the call as it was (the offer is
//! withdrawn), except 408 and 481, which end the dialog (RFC 3261 §12.2.1.2) and so the
//! bridge.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use calls::{Attachment, Endpoint, LegId};
use sdp::{Direction, SessionDescription};
use sip::{Body, CallKey, Method, Response};

use super::{Edge, Input};
use crate::meeting::MeetingMsg;
use crate::offer;

/// Glares in a row after which a leg's re-INVITE is given up.
pub const MAX_GLARE: u8 = 3;
/// An INVITE transaction is over within 64*T1 (32 s); ours older than this was lost to a
/// transport error (which reports nothing).
const IN_FLIGHT: Duration = Duration::from_secs(40);

/// The hold state of bridged legs.
#[derive(Default)]
pub struct Relay {
    legs: HashMap<LegId, LegRelay>,
    /// Legs whose negotiated media changed while their attach was on the way (early media).
    pub(super) restate: HashSet<LegId>,
}

#[derive(Default)]
struct LegRelay {
    /// The direction this leg's peer last asked for in an offer of its own (`None`:
    /// sendrecv, as in its first offer or answer).
    peer_wants: Option<Direction>,
    /// Our re-INVITE to this leg: when it went, and what it offered.
    sent: Option<(Instant, Direction)>,
    /// 491s in a row.
    glare: u8,
    /// A retry is on its way.
    retry: bool,
}

impl Relay {
    /// The peer of `leg` offered `dir`; whether that changes what it asked for before.
    pub fn peer_offered(&mut self, leg: LegId, dir: Direction) -> bool {
        let l = self.legs.entry(leg).or_default();
        let before = l.peer_wants.unwrap_or(Direction::SendRecv);
        l.peer_wants = Some(dir);
        before != dir
    }

    /// What the peer of `leg` asked for last.
    pub fn wants(&self, leg: LegId) -> Direction {
        self.legs
            .get(&leg)
            .and_then(|l| l.peer_wants)
            .unwrap_or(Direction::SendRecv)
    }

    /// Whether our re-INVITE to `leg` is still out (or a retry is due), so another waits.
    pub fn busy(&self, leg: LegId, now: Instant) -> bool {
        self.legs.get(&leg).is_some_and(|l| {
            l.retry
                || l.sent
                    .is_some_and(|(at, _)| now.saturating_duration_since(at) < IN_FLIGHT)
        })
    }

    /// Our re-INVITE offering `dir` went to `leg`.
    pub fn sent(&mut self, leg: LegId, now: Instant, dir: Direction) {
        self.legs.entry(leg).or_default().sent = Some((now, dir));
    }

    /// A final answer to an INVITE of ours in `leg`'s dialog: what our re-INVITE offered,
    /// or `None` when it was not ours (a session refresh of the SIP layer).
    pub fn answered(&mut self, leg: LegId) -> Option<Direction> {
        self.legs.get_mut(&leg)?.sent.take().map(|(_, d)| d)
    }

    /// A 491: whether to try again (the retry is then marked due).
    pub fn glare(&mut self, leg: LegId) -> bool {
        let l = self.legs.entry(leg).or_default();
        l.glare = l.glare.saturating_add(1);
        l.retry = l.glare <= MAX_GLARE;
        l.retry
    }

    /// The re-INVITE was answered other than 491.
    pub fn settled(&mut self, leg: LegId) {
        if let Some(l) = self.legs.get_mut(&leg) {
            l.glare = 0;
        }
    }

    /// A retry's delay is over.
    pub fn retry_due(&mut self, leg: LegId) {
        if let Some(l) = self.legs.get_mut(&leg) {
            l.retry = false;
        }
    }

    /// The leg is gone.
    pub fn forget(&mut self, leg: LegId) {
        self.legs.remove(&leg);
        self.restate.remove(&leg);
    }
}

/// RFC 3261 §14.1: the wait before an INVITE that met a 491 is sent again, in units of
/// 10 ms: 2.1 to 4 s when we own the dialog's Call-ID, else 0 to 2 s. `draw` picks from
/// `0..n`.
pub fn glare_delay(call_id_owner: bool, draw: impl FnOnce(u64) -> u64) -> Duration {
    let (low, high) = if call_id_owner { (210, 400) } else { (0, 200) };
    Duration::from_millis((low + draw(high - low + 1).min(high - low)) * 10)
}

/// The direction the peer asks for in its offer: its first audio stream's, with the
/// RFC 2543 hold form (`c=0.0.0.0`) as not receiving (RFC 3264 §8.4).
pub fn offered_direction(sdp: &[u8]) -> Option<Direction> {
    let sdp = SessionDescription::parse(sdp).ok()?;
    let i = sdp.media.iter().position(|m| m.is_audio() && m.port != 0)?;
    let mut dir = Direction::of_media(&sdp, i);
    if sdp.connection_for(i).is_some_and(|c| c.is_unspecified()) {
        dir = dir.intersect(Direction::SendOnly);
    }
    Some(dir)
}

impl Edge {
    /// The leg bridged to `leg`, if any.
    fn bridged_to(&self, leg: LegId) -> Option<LegId> {
        match self.table.leg(leg)?.attachment {
            Some(Attachment::Bridge(other)) => Some(other),
            _ => None,
        }
    }

    /// `leg` answered its peer's re-offer `sdp`: a change of direction goes to the other
    /// leg of its bridge.
    pub(super) fn relay_offer(&mut self, leg: LegId, sdp: &[u8]) {
        let Some(other) = self.bridged_to(leg) else {
            return;
        };
        let Some(dir) = offered_direction(sdp) else {
            return;
        };
        if self.relay.peer_offered(leg, dir) {
            tracing::info!(call = %leg, other = %other, direction = %dir, "the peer changed direction; offering it to the other leg");
            self.offer_direction(other);
        }
    }

    /// Our re-INVITE to `leg` offering what the peer of the other leg asks for.
    fn offer_direction(&mut self, leg: LegId) {
        let now = Instant::now();
        if self.relay.busy(leg, now) {
            // Its answer (or the retry) offers again if the wish changed meanwhile.
            return;
        }
        let (Some(other), Some(l)) = (self.bridged_to(leg), self.table.leg(leg)) else {
            return;
        };
        let (Some(call), owner) = (l.endpoint.sip(), matches!(l.endpoint, Endpoint::SipUac(_)))
        else {
            return;
        };
        let want = self.relay.wants(other);
        let Some(n) = self.legs.get_mut(&leg).and_then(|m| m.negotiated.as_mut()) else {
            return;
        };
        n.session.set_local_direction(want);
        let body = Body::sdp(n.session.create_offer().to_bytes());
        match self
            .ua
            .send_in_dialog(now, call, Method::Invite, Some(body))
        {
            Ok(()) => self.relay.sent(leg, now, want),
            Err(e) => {
                n.session.cancel_offer();
                if e == sip::UaError::RequestPending && self.relay.glare(leg) {
                    // An INVITE transaction of the dialog is still open (a refresh, theirs).
                    self.retry_offer(leg, owner);
                } else {
                    tracing::warn!(call = %leg, error = %e, "re-INVITE not sent; the call goes on as it was");
                }
            }
        }
    }

    /// The final answer to an INVITE we sent inside `call`'s dialog.
    pub(super) fn relay_response(&mut self, call: CallKey, method: &Method, resp: &Response) {
        if *method != Method::Invite {
            return;
        }
        let Some(leg) = self.table.leg_of_sip(call) else {
            return;
        };
        let Some(offered) = self.relay.answered(leg) else {
            return;
        };
        let owner = matches!(
            self.table.leg(leg).map(|l| l.endpoint),
            Some(Endpoint::SipUac(_))
        );
        let Some(media) = self.legs.get_mut(&leg) else {
            return;
        };
        let Some(n) = media.negotiated.as_mut() else {
            return;
        };
        if !(200..300).contains(&resp.status) {
            n.session.cancel_offer();
            if resp.status == 491 && self.relay.glare(leg) {
                tracing::info!(call = %leg, "re-INVITE met glare (491); trying again");
                self.retry_offer(leg, owner);
            } else {
                self.relay.settled(leg);
                tracing::info!(call = %leg, status = resp.status, "re-INVITE refused; the call goes on as it was");
            }
            return;
        }
        self.relay.settled(leg);
        match offer::accept(n.session.clone(), &resp.body) {
            Ok(new) => {
                *n = new;
                let (cfg, peer_sends) = (n.leg.clone(), n.leg.direction.recv);
                if let Some(tx) = &media.meeting
                    && tx.try_send(MeetingMsg::Update { leg, cfg }).is_err()
                {
                    tracing::warn!(call = %leg, "the re-negotiated media could not reach the bridge");
                }
                self.table.media_direction(Instant::now(), leg, peer_sends);
            }
            Err(e) => {
                n.session.cancel_offer();
                tracing::info!(call = %leg, status = e.status, reason = %e.text, "the answer to our re-INVITE is unusable; the media stays as it was");
            }
        }
        // The other side changed its mind while ours was out.
        if let Some(other) = self.bridged_to(leg)
            && self.relay.wants(other) != offered
        {
            self.offer_direction(leg);
        }
    }

    /// Offers again after the RFC 3261 §14.1 delay.
    fn retry_offer(&mut self, leg: LegId, call_id_owner: bool) {
        let delay = glare_delay(call_id_owner, |n| rand::random::<u64>() % n.max(1));
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Input::Reoffer { leg }).await;
        });
    }

    /// A glare's delay is over.
    pub(super) fn reoffer_due(&mut self, leg: LegId) {
        self.relay.retry_due(leg);
        self.offer_direction(leg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(n: u64) -> LegId {
        // LegIds come from the table; any two distinct ones will do here.
        let mut t = calls::CallTable::new(calls::TableConfig::default());
        let now = Instant::now();
        let mut last = None;
        for _ in 0..n {
            last = Some(t.webrtc_open(
                now,
                0,
                calls::Member {
                    meeting_id: "m".into(),
                    attendee_id: format!("a{n}"),
                },
            ));
        }
        last.expect("n > 0")
    }

    #[test]
    fn a_refresh_is_not_a_change_of_direction() {
        let mut r = Relay::default();
        let a = leg(1);
        assert!(
            !r.peer_offered(a, Direction::SendRecv),
            "first offer as before"
        );
        assert!(r.peer_offered(a, Direction::SendOnly), "hold");
        assert!(
            !r.peer_offered(a, Direction::SendOnly),
            "refresh while held"
        );
        assert_eq!(r.wants(a), Direction::SendOnly);
        assert!(r.peer_offered(a, Direction::SendRecv), "resume");
    }

    #[test]
    fn glare_delays_follow_rfc_3261_14_1() {
        assert_eq!(glare_delay(true, |_| 0), Duration::from_millis(2100));
        assert_eq!(glare_delay(true, |n| n - 1), Duration::from_millis(4000));
        assert_eq!(glare_delay(false, |_| 0), Duration::ZERO);
        assert_eq!(glare_delay(false, |n| n - 1), Duration::from_millis(2000));
        assert_eq!(glare_delay(false, |n| n + 7), Duration::from_millis(2000));
    }

    #[test]
    fn glare_retries_are_bounded_and_an_answer_settles() {
        let mut r = Relay::default();
        let now = Instant::now();
        let a = leg(2);
        r.sent(a, now, Direction::SendOnly);
        assert!(r.busy(a, now));
        assert_eq!(r.answered(a), Some(Direction::SendOnly));
        assert_eq!(r.answered(a), None, "a second answer is not ours");
        for _ in 0..MAX_GLARE {
            assert!(r.glare(a));
            assert!(r.busy(a, now), "a retry is due");
            r.retry_due(a);
        }
        assert!(!r.glare(a), "given up after {MAX_GLARE}");
        r.settled(a);
        assert!(r.glare(a));
        r.retry_due(a);
        r.sent(a, now, Direction::SendRecv);
        assert!(
            !r.busy(a, now + IN_FLIGHT),
            "a lost re-INVITE does not block forever"
        );
    }

    #[test]
    fn offered_direction_reads_the_audio_stream_and_old_hold() {
        let sdp = |c: &str, attr: &str| {
            format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n{attr}"
            )
        };
        let d = |s: String| offered_direction(s.as_bytes());
        assert_eq!(d(sdp("192.0.2.1", "")), Some(Direction::SendRecv));
        assert_eq!(
            d(sdp("192.0.2.1", "a=sendonly\r\n")),
            Some(Direction::SendOnly)
        );
        assert_eq!(
            d(sdp("192.0.2.1", "a=inactive\r\n")),
            Some(Direction::Inactive)
        );
        assert_eq!(d(sdp("0.0.0.0", "")), Some(Direction::SendOnly));
        assert_eq!(offered_direction(b"not sdp"), None);
    }
}
