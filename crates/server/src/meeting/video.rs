//! The meeting's video streams as its browsers see them: each browser that sends its
//! camera (or a content share's video) is a stream in the INDEX every other browser
//! gets; a SUBSCRIBE picks streams for its receive sections, and the engine forwards them
//! ([`engine::MeetingMedia::set_video_routes`]). SIP legs have no video.

use std::collections::BTreeMap;
use std::time::Instant;

use calls::LegId;
use chime_signal::{SubscribeVideo, TrackMapping, VideoAnswer, VideoSource};
use engine::WebRtcAnswer;

use super::{Meeting, SessionMsg};

/// What a browser's SUBSCRIBE gets back: the SDP answer, and its video part.
#[derive(Debug, Clone)]
pub struct SubscribeAnswer {
    pub webrtc: WebRtcAnswer,
    pub video: VideoAnswer,
}

/// The meeting's video sources.
#[derive(Debug, Default)]
pub(super) struct VideoIndex {
    last_stream: u32,
    /// By the sending browser's leg: its engine leg and its INDEX entry.
    sources: BTreeMap<LegId, (engine::LegId, VideoSource)>,
}

impl VideoIndex {
    fn list(&self) -> Vec<VideoSource> {
        self.sources.values().map(|(_, s)| s.clone()).collect()
    }

    fn by_stream(&self, stream_id: u32) -> Option<engine::LegId> {
        self.sources
            .values()
            .find(|(_, s)| s.stream_id == stream_id)
            .map(|(e, _)| *e)
    }
}

/// The rate listed for a stream whose sender named no ceiling (the SDK's default camera
/// encoding, 540p at 15 fps, is capped near this).
const DEFAULT_VIDEO_KBPS: u32 = 1400;

impl Meeting {
    /// The video side of a browser's answered SUBSCRIBE: its camera becomes (or stops
    /// being) a stream of the INDEX, and its receive sections carry the streams it asked
    /// for, in the order of its offer's video sections.
    pub(super) fn subscribe_video(
        &mut self,
        now: Instant,
        leg: LegId,
        engine_leg: engine::LegId,
        req: &SubscribeVideo,
    ) -> VideoAnswer {
        let sections = self.media.video_sections(engine_leg);
        let sending = req.send.filter(|_| sections.iter().any(|s| s.receives));
        let mut changed = false;
        let allocation = match (sending, self.video.sources.get(&leg)) {
            (Some(_), Some((_, s))) => Some((s.stream_id, s.group_id)),
            (Some(send), None) => self.slots.get(&leg).map(|slot| {
                self.video.last_stream = self.video.last_stream.saturating_add(1);
                let kbps = if send.max_bitrate_kbps > 0 {
                    send.max_bitrate_kbps
                } else {
                    DEFAULT_VIDEO_KBPS
                };
                let source = VideoSource {
                    stream_id: self.video.last_stream,
                    // The audio stream id: unique, and larger for a later session.
                    group_id: slot.stream,
                    attendee_id: slot.attendee_id.clone(),
                    external_user_id: slot.external_user_id.clone(),
                    max_bitrate_kbps: kbps,
                    avg_bitrate_bps: kbps.saturating_mul(1000),
                    framerate: send.framerate,
                };
                let ids = (source.stream_id, source.group_id);
                self.video.sources.insert(leg, (engine_leg, source));
                changed = true;
                ids
            }),
            (None, _) => {
                changed = self.video.sources.remove(&leg).is_some();
                None
            }
        };
        let mut routes = Vec::new();
        let mut tracks = Vec::new();
        for (s, &stream_id) in sections.iter().zip(&req.receive_stream_ids) {
            let Some(src) = self.video.by_stream(stream_id).filter(|_| s.sends) else {
                continue;
            };
            routes.push((s.mid.clone(), src));
            if let (Some(label), Some(ssrc)) = (s.msid.clone(), s.ssrc) {
                tracks.push(TrackMapping {
                    stream_id,
                    ssrc,
                    track_label: label,
                });
            }
        }
        let n = routes.len();
        if let Err(e) = self.media.set_video_routes(now, engine_leg, routes) {
            tracing::info!(meeting = %self.id, %leg, error = %e, "video routes not set");
        }
        tracing::debug!(meeting = %self.id, %leg, receives = n, sends = ?allocation, "browser video");
        if changed {
            self.broadcast(&SessionMsg::VideoIndex(self.video.list()));
        }
        VideoAnswer { allocation, tracks }
    }

    /// A browser left: its stream leaves the INDEX.
    pub(super) fn video_left(&mut self, leg: LegId) {
        if self.video.sources.remove(&leg).is_some() {
            self.broadcast(&SessionMsg::VideoIndex(self.video.list()));
        }
    }

    /// The INDEX a browser that just joined gets (nothing when there is no video).
    pub(super) fn video_index_for(&self, leg: LegId) {
        if self.video.sources.is_empty() {
            return;
        }
        if let Some(b) = self.slots.get(&leg).and_then(|s| s.browser.as_ref()) {
            let _ = b.try_send(SessionMsg::VideoIndex(self.video.list()));
        }
    }
}
