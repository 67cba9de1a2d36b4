//! One WebSocket connection of a browser attendee, as a sans-IO state machine.
//!
//! ```text
//!  AwaitingJoin ──JOIN──▶ Joined ──SUBSCRIBE──▶ Subscribing ──answer_subscribe──▶ Active
//!                                                    ▲                            │
//!                                                    └──── SUBSCRIBE (renegotiate) ┘
//!  LEAVE in Joined / Subscribing / Active ─▶ Left
//!  join timeout, idle timeout, protocol error, audio_status ─▶ Closed
//! ```
//!
//! Input: [`Session::handle_frame`] with the bytes of each binary WebSocket message,
//! [`Session::handle_timeout`] when [`Session::poll_timeout`] is due, and the
//! application's calls (`answer_subscribe`, presence, audio metadata, audio status).
//! Output: drain [`Session::poll_output`] after every call.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::frame::{DEFAULT_MAX_FRAME_LEN, DecodeError, decode_frame_with_limit, encode_frame};
use crate::proto::{
    FrameType, SdkAudioAttendeeState, SdkAudioMetadataFrame, SdkAudioStatusFrame,
    SdkAudioStreamIdInfo, SdkAudioStreamIdInfoFrame, SdkClientDetails, SdkIndexFrame,
    SdkJoinAckFrame, SdkLeaveAckFrame, SdkPingPongFrame, SdkPingPongType, SdkSignalFrame,
    SdkStreamServiceType, SdkSubscribeAckFrame,
};

/// Limits and timers of a [`Session`].
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
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            join_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            max_attendees: 250,
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

/// One attendee's level for [`Session::audio_metadata`].
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

/// What the driver must do next; drained with [`Session::poll_output`].
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
    /// [`Session::answer_subscribe`].
    Subscribe {
        /// The SDP offer (audio sendrecv, video inactive, BUNDLE, rtcp-mux, DTLS).
        sdp_offer: String,
        /// The client's mute state at subscribe time, if it said.
        audio_muted: Option<bool>,
    },
    /// The client muted or unmuted itself (`AUDIO_CONTROL`); the application should
    /// apply it in the mixer and announce it with [`Session::attendee_muted`].
    MuteChanged {
        /// New state.
        muted: bool,
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

/// Where a [`Session`] is.
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

/// The signaling side of one browser attendee's connection. See the crate docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    /// Wall-clock anchor: `epoch_ms` is the Unix time in ms at `epoch`.
    epoch: Instant,
    epoch_ms: u64,
    join_deadline: Instant,
    last_rx: Instant,
    /// Duplex value of the pending SUBSCRIBE, echoed in SUBSCRIBE_ACK.
    pending_duplex: Option<i32>,
    /// Whether the roster snapshot has gone out (after the first SUBSCRIBE_ACK).
    roster_sent: bool,
    roster: BTreeMap<u32, AttendeeInfo>,
    out: VecDeque<Output>,
}

impl Session {
    /// A session for a WebSocket that opened at `now`, when the wall clock read
    /// `unix_ms` (milliseconds since the Unix epoch; frames carry wall-clock stamps).
    pub fn new(now: Instant, unix_ms: u64, config: SessionConfig) -> Self {
        Self {
            join_deadline: now + config.join_timeout,
            config,
            state: State::AwaitingJoin,
            epoch: now,
            epoch_ms: unix_ms,
            last_rx: now,
            pending_duplex: None,
            roster_sent: false,
            roster: BTreeMap::new(),
            out: VecDeque::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Attendees currently announced (or to be announced) to this client.
    pub fn roster(&self) -> impl Iterator<Item = &AttendeeInfo> {
        self.roster.values()
    }

    /// The next thing the driver must do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingJoin => Some(self.join_deadline),
            State::Joined | State::Subscribing | State::Active => {
                Some(self.last_rx + self.config.idle_timeout)
            }
            State::Left | State::Closed => None,
        }
    }

    /// Fires due timers; harmless when called early.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        let reason = if self.state == State::AwaitingJoin {
            CloseReason::JoinTimeout
        } else {
            CloseReason::Idle
        };
        self.close(reason);
    }

    /// Handles one binary WebSocket message from the client.
    ///
    /// On `Err` the session has ended and queued `Output::Close`, except for
    /// [`SessionError::Ended`] (a frame after the end, which is simply ignored).
    pub fn handle_frame(&mut self, now: Instant, bytes: &[u8]) -> Result<(), SessionError> {
        if matches!(self.state, State::Left | State::Closed) {
            return Err(SessionError::Ended);
        }
        self.last_rx = self.last_rx.max(now);
        let result = decode_frame_with_limit(bytes, self.config.max_frame_len)
            .map_err(SessionError::from)
            .and_then(|frame| self.dispatch(now, frame));
        if result.is_err() {
            self.close(CloseReason::ProtocolError);
        }
        result
    }

    fn dispatch(&mut self, now: Instant, frame: SdkSignalFrame) -> Result<(), SessionError> {
        // Unknown types come from a newer client: ignore them rather than fail.
        let Some(kind) = frame.frame_type() else {
            return Ok(());
        };
        let unexpected = |state| SessionError::Unexpected { frame: kind, state };
        match (kind, self.state) {
            (FrameType::Join, State::AwaitingJoin) => {
                self.on_join(now, &frame);
                Ok(())
            }
            // The SDK starts pinging as soon as the socket opens, before its JOIN.
            (FrameType::PingPong, _) => {
                let ping = frame.ping_pong.ok_or(SessionError::MissingField {
                    frame: kind,
                    field: "ping_pong",
                })?;
                match SdkPingPongType::try_from(ping.r#type) {
                    Ok(SdkPingPongType::Ping) => {
                        let mut pong = self.frame(now, FrameType::PingPong);
                        pong.ping_pong = Some(SdkPingPongFrame {
                            r#type: SdkPingPongType::Pong as i32,
                            ping_id: ping.ping_id,
                        });
                        self.send(&pong);
                        Ok(())
                    }
                    // We never ping, so a PONG answers nothing; harmless.
                    Ok(SdkPingPongType::Pong) => Ok(()),
                    Err(_) => Err(SessionError::MissingField {
                        frame: kind,
                        field: "ping_pong.type",
                    }),
                }
            }
            (_, State::AwaitingJoin) | (FrameType::Join, _) => Err(unexpected(self.state)),
            (FrameType::Subscribe, State::Joined | State::Active) => {
                let sub = frame.sub.ok_or(SessionError::MissingField {
                    frame: kind,
                    field: "sub",
                })?;
                // An empty offer is what a client sends when it compresses SDP, which
                // it does only when JOIN_ACK asks for it (we never do).
                let sdp_offer =
                    sub.sdp_offer
                        .filter(|o| !o.is_empty())
                        .ok_or(SessionError::MissingField {
                            frame: kind,
                            field: "sdp_offer",
                        })?;
                self.pending_duplex = sub.duplex;
                self.state = State::Subscribing;
                self.out.push_back(Output::Subscribe {
                    sdp_offer,
                    audio_muted: sub.audio_muted,
                });
                Ok(())
            }
            (FrameType::Leave, _) => {
                let ack = SdkSignalFrame {
                    leave_ack: Some(SdkLeaveAckFrame {}),
                    ..self.frame(now, FrameType::LeaveAck)
                };
                self.send(&ack);
                self.state = State::Left;
                self.pending_duplex = None;
                self.out.push_back(Output::Leave);
                Ok(())
            }
            (FrameType::AudioControl, _) => {
                if let Some(muted) = frame.audio_control.and_then(|c| c.muted) {
                    self.out.push_back(Output::MuteChanged { muted });
                }
                Ok(())
            }
            // Video, bandwidth, metrics and data messages: this server is audio-only.
            (
                FrameType::Pause
                | FrameType::Resume
                | FrameType::Bitrates
                | FrameType::ClientMetric
                | FrameType::DataMessage
                | FrameType::RemoteVideoUpdate,
                _,
            ) => Ok(()),
            // A second SUBSCRIBE before we answered the first, or server-to-client types.
            (
                FrameType::Subscribe
                | FrameType::JoinAck
                | FrameType::SubscribeAck
                | FrameType::Index
                | FrameType::LeaveAck
                | FrameType::AudioMetadata
                | FrameType::AudioStreamIdInfo
                | FrameType::AudioStatus,
                _,
            ) => Err(unexpected(self.state)),
        }
    }

    fn on_join(&mut self, now: Instant, frame: &SdkSignalFrame) {
        let join = frame.join.clone().unwrap_or_default();
        // JOIN_ACK without TURN credentials: the server is reachable directly (ICE-lite
        // with host candidates in the SDP answer).
        let ack = SdkSignalFrame {
            joinack: Some(SdkJoinAckFrame::default()),
            ..self.frame(now, FrameType::JoinAck)
        };
        self.send(&ack);
        // INDEX is mandatory: the client waits for it before it subscribes.
        let index = SdkSignalFrame {
            index: Some(SdkIndexFrame {
                at_capacity: Some(false),
                sources: Vec::new(),
                paused_at_source_ids: Vec::new(),
                num_participants: Some(u32::try_from(self.roster.len()).unwrap_or(u32::MAX)),
            }),
            ..self.frame(now, FrameType::Index)
        };
        self.send(&index);
        self.state = State::Joined;
        self.out.push_back(Output::Joined {
            protocol_version: join.protocol_version(),
            client_details: join.client_details,
        });
    }

    /// Sends SUBSCRIBE_ACK with the application's SDP answer to the pending SUBSCRIBE.
    /// After the first one, the current roster goes out as one `AUDIO_STREAM_ID_INFO`.
    pub fn answer_subscribe(&mut self, now: Instant, sdp_answer: String) -> Result<(), UsageError> {
        if self.state != State::Subscribing {
            return Err(UsageError::NoPendingSubscribe(self.state));
        }
        let duplex = self
            .pending_duplex
            .take()
            .unwrap_or(SdkStreamServiceType::Duplex as i32);
        let ack = SdkSignalFrame {
            suback: Some(SdkSubscribeAckFrame {
                duplex: Some(duplex),
                allocations: Vec::new(),
                sdp_answer: Some(sdp_answer),
                tracks: Vec::new(),
            }),
            ..self.frame(now, FrameType::SubscribeAck)
        };
        self.send(&ack);
        self.state = State::Active;
        if !self.roster_sent {
            self.roster_sent = true;
            if !self.roster.is_empty() {
                let streams = self.roster.values().map(announce).collect();
                self.send_stream_info(now, streams);
            }
        }
        Ok(())
    }

    /// Announces an attendee (the joiner included: the SDK waits for its own
    /// presence). Before the first SUBSCRIBE_ACK it is only recorded and goes out with
    /// the roster snapshot; re-announcing a known stream id replaces its entry. Stream
    /// ids must be nonzero; when an attendee rejoins, give it a larger stream id than
    /// before (the client keeps the larger one when both are present).
    pub fn attendee_joined(&mut self, now: Instant, info: AttendeeInfo) -> Result<(), UsageError> {
        self.check_live()?;
        if info.audio_stream_id == 0 {
            return Err(UsageError::ZeroStreamId);
        }
        if !self.roster.contains_key(&info.audio_stream_id)
            && self.roster.len() >= self.config.max_attendees
        {
            return Err(UsageError::RosterFull(self.roster.len()));
        }
        if self.roster_sent {
            self.send_stream_info(now, vec![announce(&info)]);
        }
        self.roster.insert(info.audio_stream_id, info);
        Ok(())
    }

    /// Announces that an attendee left: an entry with only the stream id, plus
    /// `dropped` when the attendee's connection was lost rather than closed.
    pub fn attendee_left(
        &mut self,
        now: Instant,
        audio_stream_id: u32,
        dropped: bool,
    ) -> Result<(), UsageError> {
        self.check_live()?;
        if self.roster.remove(&audio_stream_id).is_none() {
            return Err(UsageError::UnknownStream(audio_stream_id));
        }
        if self.roster_sent {
            let entry = SdkAudioStreamIdInfo {
                audio_stream_id: Some(audio_stream_id),
                dropped: dropped.then_some(true),
                ..SdkAudioStreamIdInfo::default()
            };
            self.send_stream_info(now, vec![entry]);
        }
        Ok(())
    }

    /// Announces a mute change: an entry with the stream id and `muted`.
    pub fn attendee_muted(
        &mut self,
        now: Instant,
        audio_stream_id: u32,
        muted: bool,
    ) -> Result<(), UsageError> {
        self.check_live()?;
        let entry = self
            .roster
            .get_mut(&audio_stream_id)
            .ok_or(UsageError::UnknownStream(audio_stream_id))?;
        entry.muted = muted;
        if self.roster_sent {
            let entry = SdkAudioStreamIdInfo {
                audio_stream_id: Some(audio_stream_id),
                muted: Some(muted),
                ..SdkAudioStreamIdInfo::default()
            };
            self.send_stream_info(now, vec![entry]);
        }
        Ok(())
    }

    /// Sends one `AUDIO_METADATA` frame with attendee levels (the application calls
    /// this 5–10 times a second). Returns whether it was sent: levels are dropped
    /// silently until the session is active, and when `volumes` is empty.
    pub fn audio_metadata(&mut self, now: Instant, volumes: &[AttendeeVolume]) -> bool {
        if self.state != State::Active || volumes.is_empty() {
            return false;
        }
        let attendee_states = volumes
            .iter()
            .map(|v| SdkAudioAttendeeState {
                audio_stream_id: Some(v.audio_stream_id),
                volume: v.attenuation_db,
                muted: None,
                signal_strength: v.signal_strength,
            })
            .collect();
        let frame = SdkSignalFrame {
            audio_metadata: Some(SdkAudioMetadataFrame { attendee_states }),
            ..self.frame(now, FrameType::AudioMetadata)
        };
        self.send(&frame);
        true
    }

    /// Ends the client's session with an `AUDIO_STATUS` (410 meeting ended, 411
    /// attendee removed, 301 joined from another device) followed by
    /// `Output::Close`. Before JOIN only the close is queued (the client would not
    /// act on the status yet). After LEAVE or close this does nothing.
    pub fn audio_status(&mut self, now: Instant, status: AudioStatus) {
        match self.state {
            State::Left | State::Closed => return,
            State::AwaitingJoin => {}
            State::Joined | State::Subscribing | State::Active => {
                let frame = SdkSignalFrame {
                    audio_status: Some(SdkAudioStatusFrame {
                        audio_status: Some(status.code()),
                    }),
                    ..self.frame(now, FrameType::AudioStatus)
                };
                self.send(&frame);
            }
        }
        self.close(CloseReason::Ended(status));
    }

    fn check_live(&self) -> Result<(), UsageError> {
        match self.state {
            State::Left | State::Closed => Err(UsageError::Ended),
            _ => Ok(()),
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.out.push_back(Output::Close { reason });
        }
    }

    fn send_stream_info(&mut self, now: Instant, streams: Vec<SdkAudioStreamIdInfo>) {
        let frame = SdkSignalFrame {
            audio_stream_id_info: Some(SdkAudioStreamIdInfoFrame { streams }),
            ..self.frame(now, FrameType::AudioStreamIdInfo)
        };
        self.send(&frame);
    }

    fn frame(&self, now: Instant, kind: FrameType) -> SdkSignalFrame {
        let elapsed = now.saturating_duration_since(self.epoch).as_millis();
        let ms = self
            .epoch_ms
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX));
        SdkSignalFrame::new(ms, kind)
    }

    fn send(&mut self, frame: &SdkSignalFrame) {
        self.out.push_back(Output::Send(encode_frame(frame)));
    }
}

fn announce(info: &AttendeeInfo) -> SdkAudioStreamIdInfo {
    SdkAudioStreamIdInfo {
        audio_stream_id: Some(info.audio_stream_id),
        attendee_id: Some(info.attendee_id.clone()),
        muted: Some(info.muted),
        external_user_id: Some(info.external_user_id.clone()),
        dropped: None,
    }
}
