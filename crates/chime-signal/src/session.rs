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
use std::time::Instant;

use crate::data::{Bucket, DataMessage, check_message};
use crate::frame::{decode_frame_with_limit, encode_frame};
use crate::proto::{
    FrameType, SdkAudioAttendeeState, SdkAudioMetadataFrame, SdkAudioStatusFrame,
    SdkAudioStreamIdInfo, SdkAudioStreamIdInfoFrame, SdkDataMessageFrame, SdkDataMessagePayload,
    SdkIndexFrame, SdkJoinAckFrame, SdkLeaveAckFrame, SdkPingPongFrame, SdkPingPongType,
    SdkSignalFrame, SdkStreamServiceType, SdkSubscribeAckFrame,
};
use crate::types::{
    AttendeeInfo, AttendeeVolume, AudioStatus, CloseReason, Output, SessionConfig, SessionError,
    State, UsageError,
};
use crate::video::{SubscribeVideo, VideoAnswer, VideoSource};

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
    /// This client's AttendeeId and ExternalUserId, the sender of its data messages.
    identity: (String, String),
    /// This client's rate of data messages.
    data_bucket: Bucket,
}

impl Session {
    /// A session for a WebSocket that opened at `now`, when the wall clock read
    /// `unix_ms` (milliseconds since the Unix epoch; frames carry wall-clock stamps).
    pub fn new(now: Instant, unix_ms: u64, config: SessionConfig) -> Self {
        Self {
            join_deadline: now + config.join_timeout,
            data_bucket: Bucket::new(config.data_rate, now),
            config,
            state: State::AwaitingJoin,
            epoch: now,
            epoch_ms: unix_ms,
            last_rx: now,
            pending_duplex: None,
            roster_sent: false,
            roster: BTreeMap::new(),
            out: VecDeque::new(),
            identity: (String::new(), String::new()),
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
                let sdp_offer = sub.sdp_offer.clone().filter(|o| !o.is_empty()).ok_or(
                    SessionError::MissingField {
                        frame: kind,
                        field: "sdp_offer",
                    },
                )?;
                self.pending_duplex = sub.duplex;
                self.state = State::Subscribing;
                self.out.push_back(Output::Subscribe {
                    video: SubscribeVideo::from_frame(&sub),
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
            (FrameType::DataMessage, _) => {
                let frame = frame.data_message.ok_or(SessionError::MissingField {
                    frame: kind,
                    field: "data_message",
                })?;
                self.on_data_messages(now, frame.messages);
                Ok(())
            }
            // Pausing streams, bandwidth and metrics: every subscribed stream is sent.
            (
                FrameType::Pause
                | FrameType::Resume
                | FrameType::Bitrates
                | FrameType::ClientMetric
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

    /// Names the client, the sender of the data messages it sends: its `AttendeeId` and
    /// `ExternalUserId`.
    pub fn set_identity(&mut self, attendee_id: &str, external_user_id: &str) {
        self.identity = (attendee_id.to_string(), external_user_id.to_string());
    }

    /// The client's data messages: those within the limits come out as
    /// [`Output::DataMessage`] with the sender and ingest time filled in; the others go
    /// back to the client with no ingest time (the SDK's `throttled`).
    fn on_data_messages(&mut self, now: Instant, messages: Vec<SdkDataMessagePayload>) {
        let mut refused = Vec::new();
        for m in messages {
            let topic = m.topic.unwrap_or_default();
            let data = m.data.unwrap_or_default();
            let checked = check_message(&topic, &data).and_then(|()| {
                if self.data_bucket.take(now) {
                    Ok(())
                } else {
                    Err(crate::DataRefusal::Throttled)
                }
            });
            let mut message = DataMessage {
                topic,
                data,
                lifetime_ms: m.lifetime_ms.unwrap_or(0),
                sender_attendee_id: self.identity.0.clone(),
                sender_external_user_id: self.identity.1.clone(),
                ingest_time_ns: 0,
            };
            match checked {
                Ok(()) => {
                    message.ingest_time_ns = self.unix_ns(now);
                    self.out.push_back(Output::DataMessage(message));
                }
                Err(reason) => {
                    let topic: String = message.topic.chars().take(36).collect();
                    if reason == crate::DataRefusal::TooLarge {
                        message.data.clear();
                    }
                    message.topic.clone_from(&topic);
                    refused.push(message);
                    self.out.push_back(Output::DataRefused { topic, reason });
                }
            }
        }
        if !refused.is_empty() {
            self.send_data(now, &refused);
        }
    }

    /// Delivers data messages of the meeting's other clients (one `DATA_MESSAGE` frame).
    /// Returns whether it was sent: not before JOIN nor after the end.
    pub fn data_messages(&mut self, now: Instant, messages: &[DataMessage]) -> bool {
        if !matches!(
            self.state,
            State::Joined | State::Subscribing | State::Active
        ) || messages.is_empty()
        {
            return false;
        }
        self.send_data(now, messages);
        true
    }

    fn send_data(&mut self, now: Instant, messages: &[DataMessage]) {
        let messages = messages
            .iter()
            .map(|m| SdkDataMessagePayload {
                topic: Some(m.topic.clone()),
                data: Some(m.data.clone()),
                lifetime_ms: Some(m.lifetime_ms),
                sender_attendee_id: Some(m.sender_attendee_id.clone()),
                ingest_time_ns: Some(m.ingest_time_ns),
                sender_external_user_id: Some(m.sender_external_user_id.clone()),
            })
            .collect();
        let frame = SdkSignalFrame {
            data_message: Some(SdkDataMessageFrame { messages }),
            ..self.frame(now, FrameType::DataMessage)
        };
        self.send(&frame);
    }

    /// Unix time at `now` in nanoseconds (millisecond resolution).
    fn unix_ns(&self, now: Instant) -> i64 {
        let ms = self.frame(now, FrameType::DataMessage).timestamp_ms;
        i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000) * 1_000_000
    }

    fn on_join(&mut self, now: Instant, frame: &SdkSignalFrame) {
        let join = frame.join.clone().unwrap_or_default();
        // TURN credentials when a TURN server is configured (the client then relays all
        // its media through it); none otherwise: the server is reachable directly
        // (ICE-lite with host candidates in the SDP answer).
        let unix_s = self.frame(now, FrameType::JoinAck).timestamp_ms / 1000;
        let turn_credentials = self
            .config
            .turn
            .as_ref()
            .map(|t| t.credentials(unix_s, &self.identity.0).frame());
        let ack = SdkSignalFrame {
            joinack: Some(SdkJoinAckFrame { turn_credentials }),
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

    /// Sends SUBSCRIBE_ACK with the application's SDP answer to the pending SUBSCRIBE,
    /// with no video. See [`Self::answer_subscribe_video`].
    pub fn answer_subscribe(&mut self, now: Instant, sdp_answer: String) -> Result<(), UsageError> {
        self.answer_subscribe_video(now, sdp_answer, &VideoAnswer::default())
    }

    /// Lists the meeting's video streams in an `INDEX` (the client subscribes to those
    /// it wants with its next SUBSCRIBE). The client's own streams are left out. Returns
    /// whether it was sent: not before JOIN nor after the end.
    pub fn video_index(&mut self, now: Instant, sources: &[VideoSource]) -> bool {
        if !matches!(
            self.state,
            State::Joined | State::Subscribing | State::Active
        ) {
            return false;
        }
        let sources = sources
            .iter()
            .filter(|s| s.attendee_id != self.identity.0)
            .map(VideoSource::descriptor)
            .collect();
        let index = SdkSignalFrame {
            index: Some(SdkIndexFrame {
                at_capacity: Some(false),
                sources,
                paused_at_source_ids: Vec::new(),
                num_participants: Some(u32::try_from(self.roster.len()).unwrap_or(u32::MAX)),
            }),
            ..self.frame(now, FrameType::Index)
        };
        self.send(&index);
        true
    }

    /// Sends SUBSCRIBE_ACK with the application's SDP answer to the pending SUBSCRIBE,
    /// the stream id given to the client's camera and the streams its receive sections
    /// carry. After the first one, the current roster goes out as one
    /// `AUDIO_STREAM_ID_INFO`.
    pub fn answer_subscribe_video(
        &mut self,
        now: Instant,
        sdp_answer: String,
        video: &VideoAnswer,
    ) -> Result<(), UsageError> {
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
                allocations: video.allocations(),
                sdp_answer: Some(sdp_answer),
                tracks: video.track_mappings(),
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
