//! The messages of a meeting's task: what it takes ([`MeetingMsg`]), what it sends a
//! browser's session ([`SessionMsg`]) and what it reports to the call controller
//! ([`MeetingEvent`]).

use std::net::SocketAddr;

use calls::LegId;
use chime_signal::{AttendeeInfo, AttendeeVolume, AudioStatus};
use domain::meeting::Capability;
use engine::{LegConfig, LegStats};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::*;

/// Messages a meeting's task takes.
pub enum MeetingMsg {
    /// A datagram for one of the engine's legs (from a leg's socket reader or the shared
    /// WebRTC port).
    Packet {
        leg: engine::LegId,
        from: SocketAddr,
        data: Vec<u8>,
    },
    /// A SIP leg's negotiated media joins the mix as `attendee_id`, listed in the roster
    /// as `external_user_id` (the caller's number, as Chime lists SIP callers).
    AddSip {
        leg: LegId,
        attendee_id: String,
        external_user_id: String,
        cfg: LegConfig,
        /// The attendee's audio capability as the join found it.
        audio: Capability,
        rtp: Arc<UdpSocket>,
        rtcp: Arc<UdpSocket>,
        reply: oneshot::Sender<Result<(), engine::EngineError>>,
    },
    /// The attendee's audio capability changed (UpdateAttendeeCapabilities): its legs, and
    /// those it opens later in this meeting, follow from the next mixer tick.
    Capabilities {
        attendee_id: String,
        audio: Capability,
    },
    /// Renegotiated media of a SIP leg (codec, keys, addresses, hold and resume).
    Update { leg: LegId, cfg: LegConfig },
    /// The leg leaves: its media, its roster entry; the reply has its last statistics.
    Remove {
        leg: LegId,
        /// A browser whose connection was lost rather than closed.
        dropped: bool,
        reply: Option<oneshot::Sender<Option<LegStats>>>,
    },
    /// A leg's statistics now (media-metrics records).
    Stats {
        leg: LegId,
        reply: oneshot::Sender<Option<LegStats>>,
    },
    /// A leg's statistics and last level now (the console's live calls).
    Live {
        leg: LegId,
        reply: oneshot::Sender<Option<(LegStats, Option<u8>)>>,
    },
    /// A browser's signaling session joins the roster; the reply has its stream id and
    /// the roster, itself included.
    BrowserOpen {
        leg: LegId,
        attendee_id: String,
        external_user_id: String,
        /// The attendee's audio capability as the join found it.
        audio: Capability,
        session: mpsc::Sender<SessionMsg>,
        reply: oneshot::Sender<(u32, Vec<AttendeeInfo>)>,
    },
    /// A browser's SDP offer: the first answered with a WebRTC leg on the shared socket,
    /// later ones on that leg.
    Subscribe {
        leg: LegId,
        offer: String,
        candidate: SocketAddr,
        muted: bool,
        socket: Arc<UdpSocket>,
        /// The streams it asks for and whether it sends video.
        video: chime_signal::SubscribeVideo,
        reply: oneshot::Sender<Result<SubscribeAnswer, SubscribeError>>,
    },
    /// A browser muted or unmuted itself.
    Mute { leg: LegId, muted: bool },
    /// End a browser's session with this status.
    EndBrowser { leg: LegId, end: SessionMsg },
    /// A digit the leg signalled out of band (SIP INFO): reported, and in a bridge sent
    /// to the other leg as RFC 4733 telephone-event.
    Dtmf {
        leg: LegId,
        event: u8,
        length: std::time::Duration,
    },
    /// Play a prompt to the leg (a SIP media application's PlayAudio), in place of one
    /// still playing; its end is reported as [`MeetingEvent::PlayDone`].
    Play {
        leg: LegId,
        prompt: engine::Prompt,
        repeat: u32,
    },
    /// Stop the leg's prompt.
    StopPlay { leg: LegId },
    /// Start (Some) or stop (None) the tap `key` on the leg: its decoded audio, a frame a
    /// tick (a SIP media application's recording, a live stream); see [`taps`].
    Tap {
        leg: LegId,
        key: TapKey,
        sink: Option<TapSink>,
    },
}

/// Why a browser's SDP offer got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("the WebRTC port is not open")]
    NoWebRtcPort,
    #[error("the session has ended")]
    SessionGone,
    #[error("the meeting's media is gone")]
    MeetingGone,
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
}

/// What the media side tells a browser's signaling session.
#[derive(Debug, Clone)]
pub enum SessionMsg {
    /// An attendee joined the meeting's audio.
    Joined(AttendeeInfo),
    /// An attendee left; `dropped` when its connection was lost rather than closed.
    Left { stream: u32, dropped: bool },
    /// An attendee muted or unmuted.
    Muted { stream: u32, muted: bool },
    /// Current levels, 5 times a second.
    Levels(Vec<AttendeeVolume>),
    /// The session ends with this status (410, 411, 301).
    End(AudioStatus),
    /// The browser's media leg died (ICE consent lapsed): close the session so the client
    /// reconnects.
    MediaLost,
    /// The meeting's video streams now (an INDEX).
    VideoIndex(Vec<chime_signal::VideoSource>),
}

/// What a meeting's task reports to the call controller.
#[derive(Debug, Clone, Copy)]
pub enum MeetingEvent {
    /// No media from the leg for the inactivity timeout (or a browser's ICE consent
    /// lapsed).
    Inactive(LegId),
    /// An RFC 4733 digit from the leg ended (a SIP media application may be collecting).
    Dtmf(LegId, char),
    /// The leg's prompt ended: played out, or `interrupted`.
    PlayDone { leg: LegId, interrupted: bool },
}
