//! The values a [`Session`](crate::Session) takes and gives: its configuration, roster
//! entries and levels, statuses, outputs and errors.

use std::time::Duration;

use crate::data::{DataMessage, DataRate, DataRefusal};
use crate::frame::{DEFAULT_MAX_FRAME_LEN, DecodeError};
use crate::proto::{FrameType, SdkClientDetails};

/// Limits and timers of a [`Session`](crate::Session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest accepted frame, prefix included.
    pub max_frame_len: usize,
    /// How long after the WebSocket opens the client has to send JOIN.
    pub join_timeout: Duration,
    /// Silence from a joined client (no frame at all, not even PING) after which the
    /// session closes. The SDK pings every few seconds, so three times its
    /// interval or more is safe.
    pub idle_timeout: Duration,
    /// Most attendees the roster of this session holds (Chime's meeting maximum is 250).
    pub max_attendees: usize,
    /// The client's rate of realtime data messages; those over it go back refused.
    pub data_rate: DataRate,
    /// A TURN server for JOIN_ACK's credentials (none: the client connects directly).
    pub turn: Option<crate::turn::TurnConfig>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            join_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            max_attendees: 250,
            data_rate: DataRate::default(),
            turn: None,
        }
    }
}

/// An attendee as announced to the client in `AUDIO_STREAM_ID_INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendeeInfo {
    /// Server-assigned id of the attendee's audio stream, unique in the meeting.
    pub audio_stream_id: u32,
    /// The Chime `AttendeeId`.
    pub attendee_id: String,
    /// The application's `ExternalUserId`.
    pub external_user_id: String,
    /// Whether the attendee is muted.
    pub muted: bool,
}

/// One attendee's level for [`Session::audio_metadata`](crate::Session::audio_metadata).
///
/// The SDK's default volume indicator maps the attenuation `a` linearly onto 0..1:
/// `a <= 14` dB is full scale, `a >= 42` dB is silence. Attendees left out of a frame
/// that carries any volume are shown silent, so a frame need only list the speakers.
/// Signal strength is shown as `signal_strength / 2` (0 none, 1 weak, 2 good); an
/// attendee without one is shown at half strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttendeeVolume {
    /// The attendee's audio stream.
    pub audio_stream_id: u32,
    /// Attenuation below full scale in dB (0 = loudest); `None` leaves the field out.
    pub attenuation_db: Option<u32>,
    /// Signal strength (0..=2 in the SDK's indicator); `None` leaves the field out.
    pub signal_strength: Option<u32>,
}

impl AttendeeVolume {
    /// Largest attenuation sent: anything quieter is silence to the client anyway.
    pub const MAX_ATTENUATION_DB: u32 = 127;

    /// The attenuation for a level in dB relative to full scale (dBov, RFC 6464 §3:
    /// 0 loudest, negative quieter), rounded, clamped to
    /// `0..=`[`MAX_ATTENUATION_DB`](Self::MAX_ATTENUATION_DB); NaN and -∞ are silence.
    pub fn attenuation_from_dbov(level_dbov: f32) -> u32 {
        let att = -level_dbov;
        if att.is_nan() {
            return Self::MAX_ATTENUATION_DB;
        }
        let clamped = att.round().clamp(0.0, Self::MAX_ATTENUATION_DB as f32);
        // In 0..=127 after the clamp, so the cast is exact.
        clamped as u32
    }
}

/// Meeting-level status codes of `AUDIO_STATUS` that end the client's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioStatus {
    /// 301: the same attendee joined from another device (the new connection wins).
    JoinedFromAnotherDevice,
    /// 410: the meeting was deleted.
    MeetingEnded,
    /// 411: this attendee was deleted.
    AttendeeRemoved,
}

impl AudioStatus {
    /// The numeric code the client maps to a `MeetingSessionStatusCode`.
    pub fn code(self) -> u32 {
        match self {
            Self::JoinedFromAnotherDevice => 301,
            Self::MeetingEnded => 410,
            Self::AttendeeRemoved => 411,
        }
    }
}

/// WebSocket close code the SDK reads as "meeting ended" (also when it arrives
/// before INDEX, e.g. for a deleted meeting). Codes 4500–4599 read as a server
/// error; any other code as a bad request, after which the client may reconnect.
pub const CLOSE_MEETING_ENDED: u16 = 4410;

/// Why a session asks its driver to close the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No JOIN within [`SessionConfig::join_timeout`].
    JoinTimeout,
    /// No frame within [`SessionConfig::idle_timeout`].
    Idle,
    /// The client broke the protocol (see the error returned by `handle_frame`).
    ProtocolError,
    /// The application ended the session with an `AUDIO_STATUS`.
    Ended(AudioStatus),
}

impl CloseReason {
    /// The WebSocket close code (RFC 6455 §7.4; 4000–4999 are application codes) to
    /// close with: [`CLOSE_MEETING_ENDED`] when the meeting ended, 1000 (normal)
    /// after another terminal `AUDIO_STATUS` (the client already knows why), 4400
    /// for a protocol error and 4408 for a timeout (both read as a bad request).
    pub fn close_code(self) -> u16 {
        match self {
            Self::Ended(AudioStatus::MeetingEnded) => CLOSE_MEETING_ENDED,
            Self::Ended(_) => 1000,
            Self::ProtocolError => 4400,
            Self::JoinTimeout | Self::Idle => 4408,
        }
    }
}

/// What the driver must do next; drained with [`Session::poll_output`](crate::Session::poll_output).
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send these bytes as one binary WebSocket message.
    Send(Vec<u8>),
    /// The client joined; for information (logging, metrics).
    Joined {
        /// `SdkJoinFrame.protocol_version` (2 when absent).
        protocol_version: u32,
        /// What the client says about itself.
        client_details: Option<SdkClientDetails>,
    },
    /// The client offered SDP: create the WebRTC answer and call
    /// [`Session::answer_subscribe`](crate::Session::answer_subscribe).
    Subscribe {
        /// The SDP offer (audio sendrecv, video inactive, BUNDLE, rtcp-mux, DTLS).
        sdp_offer: String,
        /// The client's mute state at subscribe time, if it said.
        audio_muted: Option<bool>,
        /// The streams it asks for and whether it sends its camera.
        video: crate::video::SubscribeVideo,
    },
    /// The client muted or unmuted itself (`AUDIO_CONTROL`); the application should
    /// apply it in the mixer and announce it with [`Session::attendee_muted`](crate::Session::attendee_muted).
    MuteChanged {
        /// New state.
        muted: bool,
    },
    /// The client sent a realtime data message within the limits (`DATA_MESSAGE`), its
    /// sender and ingest time filled in: relay it to the meeting's other clients with
    /// [`Session::data_messages`](crate::Session::data_messages).
    DataMessage(DataMessage),
    /// The client's data message was refused and went back to it marked throttled; for
    /// logs and metrics.
    DataRefused {
        /// The message's topic, at most its first 36 characters.
        topic: String,
        /// Why.
        reason: DataRefusal,
    },
    /// The client left the meeting (LEAVE, answered with LEAVE_ACK); remove the
    /// attendee's media. The client closes the WebSocket next.
    Leave,
    /// Close the WebSocket.
    Close {
        /// Why.
        reason: CloseReason,
    },
}

/// A frame that is valid protobuf but wrong here. The client's fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// The bytes are not a frame.
    #[error("malformed signaling frame: {0}")]
    Malformed(#[from] DecodeError),
    /// A frame type the client may not send in the current state.
    #[error("unexpected {frame:?} frame in state {state:?}")]
    Unexpected {
        /// What came.
        frame: FrameType,
        /// Where we were.
        state: State,
    },
    /// A frame without the sub-message (or field) its type requires.
    #[error("{frame:?} frame lacks its {field}")]
    MissingField {
        /// The frame type.
        frame: FrameType,
        /// The missing part.
        field: &'static str,
    },
    /// A frame after the session ended.
    #[error("frame after the session ended")]
    Ended,
}

/// A call the application made that the session cannot honour now. The
/// application's fault; the connection is unaffected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    /// `answer_subscribe` without a pending `Output::Subscribe`.
    #[error("no SUBSCRIBE awaits an answer (state {0:?})")]
    NoPendingSubscribe(State),
    /// The roster is full ([`SessionConfig::max_attendees`]).
    #[error("roster full ({0} attendees)")]
    RosterFull(usize),
    /// Audio stream id 0: the client treats 0 as "no stream".
    #[error("audio stream id 0 is reserved")]
    ZeroStreamId,
    /// A mute change or departure for an audio stream that was never announced.
    #[error("unknown audio stream id {0}")]
    UnknownStream(u32),
    /// The session has ended.
    #[error("the session has ended")]
    Ended,
}

/// Where a [`Session`](crate::Session) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// WebSocket open, waiting for JOIN.
    AwaitingJoin,
    /// JOIN answered (JOIN_ACK, INDEX), no SUBSCRIBE yet.
    Joined,
    /// SUBSCRIBE received, the application is producing the SDP answer.
    Subscribing,
    /// SUBSCRIBE_ACK sent; audio flows; presence and metadata go out.
    Active,
    /// The client sent LEAVE.
    Left,
    /// The session ended (timeout, protocol error, or audio status).
    Closed,
}
