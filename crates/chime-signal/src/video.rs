//! The video side of the protocol: what a SUBSCRIBE asks for (the streams to receive, in
//! the order of the offer's video sections, and whether the client sends its camera),
//! the streams an `INDEX` lists, and what a SUBSCRIBE_ACK tells the client (the stream id
//! given to its camera, and which of its receive sections carries which stream).
//!
//! The client (amazon-chime-sdk-js) names a received track by the `msid` stream id of the
//! server's answer for that section; SUBSCRIBE_ACK's `tracks` map that label (and the
//! section's SSRC) to a stream id, and the stream id to an attendee through the INDEX the
//! client subscribed with.

use crate::proto::{
    SdkStreamAllocation, SdkStreamDescriptor, SdkStreamMediaType, SdkStreamServiceType,
    SdkSubscribeFrame, SdkTrackMapping,
};

/// What a SUBSCRIBE asks about video.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeVideo {
    /// One entry per video section of the offer, in order: the stream id that section
    /// receives, or 0 for a section that sends (the camera) or is inactive.
    pub receive_stream_ids: Vec<u32>,
    /// The client sends video (duplex TX or DUPLEX, and a video stream among its send
    /// streams): its camera's stream description.
    pub send: Option<SendVideo>,
}

/// The client's description of the video it sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendVideo {
    /// The encoder's ceiling (0 when the client did not say).
    pub max_bitrate_kbps: u32,
    /// Frames a second (0 when the client did not say).
    pub framerate: u32,
}

impl SubscribeVideo {
    pub(crate) fn from_frame(sub: &SdkSubscribeFrame) -> Self {
        let sending = matches!(
            sub.duplex
                .and_then(|d| SdkStreamServiceType::try_from(d).ok()),
            Some(SdkStreamServiceType::Tx | SdkStreamServiceType::Duplex)
        );
        let video = sub
            .send_streams
            .iter()
            .find(|s| s.media_type == Some(SdkStreamMediaType::Video as i32));
        let send = video.filter(|_| sending).map(|v| SendVideo {
            max_bitrate_kbps: v.max_bitrate_kbps.unwrap_or(0),
            framerate: v.framerate.unwrap_or(0),
        });
        SubscribeVideo {
            receive_stream_ids: sub.receive_stream_ids.clone(),
            send,
        }
    }
}

/// One video stream of the meeting as `INDEX` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSource {
    /// Nonzero, unique in the meeting.
    pub stream_id: u32,
    /// The sending session's group: larger for a later session of the same attendee.
    pub group_id: u32,
    /// The sending attendee.
    pub attendee_id: String,
    /// Its ExternalUserId.
    pub external_user_id: String,
    /// The sender's encoder ceiling.
    pub max_bitrate_kbps: u32,
    /// The stream's current rate.
    pub avg_bitrate_bps: u32,
    /// Frames a second.
    pub framerate: u32,
}

impl VideoSource {
    pub(crate) fn descriptor(&self) -> SdkStreamDescriptor {
        SdkStreamDescriptor {
            stream_id: Some(self.stream_id),
            framerate: Some(self.framerate),
            max_bitrate_kbps: Some(self.max_bitrate_kbps),
            track_label: Some(String::new()),
            group_id: Some(self.group_id),
            avg_bitrate_bps: Some(self.avg_bitrate_bps),
            attendee_id: Some(self.attendee_id.clone()),
            media_type: Some(SdkStreamMediaType::Video as i32),
            external_user_id: Some(self.external_user_id.clone()),
        }
    }
}

/// The video part of a SUBSCRIBE_ACK.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoAnswer {
    /// The stream id and group id given to the client's camera, when it sends one.
    pub allocation: Option<(u32, u32)>,
    /// The receive sections that carry a stream.
    pub tracks: Vec<TrackMapping>,
}

/// A receive section of the answer and the stream it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackMapping {
    /// The stream.
    pub stream_id: u32,
    /// The SSRC the server sends the stream with in that section.
    pub ssrc: u32,
    /// The `a=msid` stream id of that section in the answer.
    pub track_label: String,
}

impl VideoAnswer {
    pub(crate) fn allocations(&self) -> Vec<SdkStreamAllocation> {
        self.allocation
            .map(|(stream_id, group_id)| SdkStreamAllocation {
                track_label: Some(String::new()),
                stream_id: Some(stream_id),
                group_id: Some(group_id),
            })
            .into_iter()
            .collect()
    }

    pub(crate) fn track_mappings(&self) -> Vec<SdkTrackMapping> {
        self.tracks
            .iter()
            .map(|t| SdkTrackMapping {
                stream_id: Some(t.stream_id),
                ssrc: Some(t.ssrc),
                track_label: Some(t.track_label.clone()),
            })
            .collect()
    }
}
