//! A browser's later SDP offers, answered on its existing WebRTC leg.

use std::time::Instant;

use super::{EngineError, MeetingMedia, WebRtcAnswer};
use crate::leg::LegId;

impl MeetingMedia {
    /// Answers a later SDP offer of a browser's PeerConnection on its existing leg (see
    /// [`crate::webrtc::WebRtcLeg::renegotiate`]): ICE, DTLS, SRTP, the leg's place in the
    /// mix and its outgoing stream go on, so audio never pauses. The answer's ufrag is
    /// new only after an ICE restart; the driver routes it to the same leg.
    pub fn renegotiate_webrtc(
        &mut self,
        now: Instant,
        leg: LegId,
        sdp_offer: &str,
    ) -> Result<WebRtcAnswer, EngineError> {
        let l = self
            .legs
            .get_mut(&leg)
            .ok_or(EngineError::UnknownLeg(leg))?;
        let w = l.webrtc.as_mut().ok_or(EngineError::NotWebRtc(leg))?;
        let result = w.renegotiate(now, sdp_offer);
        let ufrag = w.ufrag().to_string();
        Self::drain_webrtc(
            now,
            leg,
            l,
            &mut self.mixer,
            &mut self.out,
            &mut self.events,
        );
        let sdp = result?;
        Ok(WebRtcAnswer { leg, sdp, ufrag })
    }
}
