//! Video between a meeting's browsers (an SFU): each receiving leg's send sections are
//! routed from source legs (set by the driver, which knows the streams each browser
//! subscribed to); a source's frames are written into every section routed from it, and a
//! receiver's keyframe requests go to the source (throttled). SIP legs carry no video.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, Mid};

use super::{EngineError, MeetingMedia};
use crate::leg::LegId;
use crate::webrtc::VideoSection;

/// At most one keyframe request a source is asked for in this time: every receiver's PLI
/// (and every gap we see) would otherwise each cost a keyframe.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(500);

/// The meeting's video routes.
#[derive(Debug, Default)]
pub(super) struct VideoRoutes {
    /// Receiver leg → (its send section, the source leg).
    routes: BTreeMap<LegId, Vec<(Mid, LegId)>>,
    /// When each source was last asked for a keyframe.
    last_request: HashMap<LegId, Instant>,
    /// Frames written into receivers' sections.
    pub(super) forwarded: u64,
}

impl VideoRoutes {
    pub(super) fn leg_removed(&mut self, leg: LegId) {
        self.routes.remove(&leg);
        for r in self.routes.values_mut() {
            r.retain(|(_, src)| *src != leg);
        }
        self.last_request.remove(&leg);
    }

    fn may_request(&mut self, now: Instant, src: LegId) -> bool {
        let due = self
            .last_request
            .get(&src)
            .is_none_or(|t| now.saturating_duration_since(*t) >= KEYFRAME_REQUEST_GAP);
        if due {
            self.last_request.insert(src, now);
        }
        due
    }
}

impl MeetingMedia {
    /// The video sections of a WebRTC leg's current answer (empty for any other leg).
    pub fn video_sections(&self, leg: LegId) -> Vec<VideoSection> {
        self.legs
            .get(&leg)
            .and_then(|l| l.webrtc.as_ref())
            .map(|w| w.video_sections().to_vec())
            .unwrap_or_default()
    }

    /// Routes `receiver`'s send sections: each `(mid, source)` carries the video that
    /// WebRTC leg `source` sends. Replaces the receiver's earlier routes; a source new to
    /// the receiver is asked for a keyframe so that its picture starts at once.
    pub fn set_video_routes(
        &mut self,
        now: Instant,
        receiver: LegId,
        routes: Vec<(String, LegId)>,
    ) -> Result<(), EngineError> {
        if self
            .legs
            .get(&receiver)
            .and_then(|l| l.webrtc.as_ref())
            .is_none()
        {
            return Err(EngineError::NotWebRtc(receiver));
        }
        let old = self.video.routes.remove(&receiver).unwrap_or_default();
        let routes: Vec<(Mid, LegId)> = routes
            .into_iter()
            .filter(|(_, src)| *src != receiver && self.legs.contains_key(src))
            .map(|(mid, src)| (Mid::from(mid.as_str()), src))
            .collect();
        let fresh: Vec<LegId> = routes
            .iter()
            .map(|(_, s)| *s)
            .filter(|s| !old.iter().any(|(_, o)| o == s))
            .collect();
        if !routes.is_empty() {
            self.video.routes.insert(receiver, routes);
        }
        for src in fresh {
            self.video.last_request.remove(&src);
            self.ask_keyframe(now, src, KeyframeRequestKind::Pli);
        }
        Ok(())
    }

    /// Frames written into receivers' sections so far.
    pub fn video_forwarded(&self) -> u64 {
        self.video.forwarded
    }

    /// What WebRTC leg `src` just produced: its frames to the receivers routed from it,
    /// its keyframe requests to the sources of the sections they name.
    pub(super) fn forward_video(&mut self, now: Instant, src: LegId) {
        let Some(w) = self.legs.get_mut(&src).and_then(|l| l.webrtc.as_mut()) else {
            return;
        };
        let mut frames = Vec::new();
        while let Some(f) = w.poll_video() {
            frames.push(f);
        }
        let mut requests = Vec::new();
        while let Some(r) = w.poll_keyframe_request() {
            requests.push(r);
        }
        for r in requests {
            let source = self
                .video
                .routes
                .get(&src)
                .and_then(|rs| rs.iter().find(|(mid, _)| *mid == r.mid))
                .map(|(_, s)| *s);
            if let Some(s) = source {
                self.ask_keyframe(now, s, r.kind);
            }
        }
        if frames.is_empty() {
            return;
        }
        if frames.iter().any(|f| !f.contiguous) {
            // A gap in what the source sent: its receivers' decoders need a keyframe.
            self.ask_keyframe(now, src, KeyframeRequestKind::Fir);
        }
        let targets: Vec<(LegId, Mid)> = self
            .video
            .routes
            .iter()
            .flat_map(|(rx, rs)| {
                rs.iter()
                    .filter(|(_, s)| *s == src)
                    .map(move |(mid, _)| (*rx, *mid))
            })
            .collect();
        for (rx, mid) in targets {
            let Some(l) = self.legs.get_mut(&rx) else {
                continue;
            };
            let Some(w) = l.webrtc.as_mut() else {
                continue;
            };
            for f in &frames {
                if w.write_video(mid, f) {
                    self.video.forwarded += 1;
                }
            }
            Self::drain_webrtc(now, rx, l, &mut self.mixer, &mut self.out, &mut self.events);
        }
    }

    fn ask_keyframe(&mut self, now: Instant, src: LegId, kind: KeyframeRequestKind) {
        if !self.video.may_request(now, src) {
            return;
        }
        let Some(l) = self.legs.get_mut(&src) else {
            return;
        };
        if let Some(w) = l.webrtc.as_mut() {
            w.request_keyframe(kind);
        }
        Self::drain_webrtc(
            now,
            src,
            l,
            &mut self.mixer,
            &mut self.out,
            &mut self.events,
        );
    }
}
