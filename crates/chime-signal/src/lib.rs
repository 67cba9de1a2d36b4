//! Server side of the Amazon Chime SDK signaling protocol, sans-IO.
//!
//! Browser attendees run the official, unmodified `amazon-chime-sdk-js`. Its
//! signaling channel is a WebSocket carrying protobuf frames; this crate is that
//! protocol without the socket: bytes in, bytes and events out, time as a parameter.
//! Written here because no crate implements the server side of this protocol; the
//! message definitions follow the client's field numbers, written with `prost`
//! derive macros (no `protoc`).
//!
//! # What the server (the WebSocket driver) must do
//!
//! 1. Serve `GET /control/<MeetingId>` (the meeting's `MediaPlacement.SignalingUrl`,
//!    `ws://<api host>/control/<MeetingId>`) as a WebSocket. The client appends
//!    `?X-Chime-Control-Protocol-Version=3&…` to the URL.
//! 2. Read `Sec-WebSocket-Protocol`: the client offers two subprotocols,
//!    `_aws_wt_session` and the attendee's **JoinToken**. The token is the only
//!    identity: look it up (constant-time comparison, never log it), check it
//!    belongs to `<MeetingId>`, refuse the upgrade otherwise. Accept with
//!    `Sec-WebSocket-Protocol: _aws_wt_session` ([`SUBPROTOCOL`]); never echo the token.
//!    For a meeting that no longer exists, accept and close with
//!    [`CLOSE_MEETING_ENDED`] (4410), which the client reports as "meeting ended".
//! 3. Create a [`Session`] with [`Session::new`] and push the meeting's current
//!    attendees (the joiner included) with [`Session::attendee_joined`]; keep pushing
//!    joins, departures ([`Session::attendee_left`]) and mute changes
//!    ([`Session::attendee_muted`]) for the life of the connection.
//! 4. Feed every **binary** message to [`Session::handle_frame`] (text messages are
//!    not part of the protocol: close). Call [`Session::handle_timeout`] when
//!    [`Session::poll_timeout`] is due. After every call, drain
//!    [`Session::poll_output`]:
//!    - [`Output::Send`]: send as one binary message;
//!    - [`Output::Subscribe`]: answer the SDP offer (WebRTC: audio sendrecv, video
//!      inactive, BUNDLE, rtcp-mux, DTLS) and call [`Session::answer_subscribe`]; a
//!      later one (a camera turned on or off) renegotiates the same peer connection;
//!    - [`Output::MuteChanged`]: apply the client's self-mute, announce it to all;
//!    - [`Output::DataMessage`]: a realtime data message to relay to the meeting's
//!      other sessions, which deliver it with [`Session::data_messages`] (see [`data`]
//!      for the limits; [`Output::DataRefused`] says what was sent back refused);
//!    - [`Output::Leave`]: the attendee left; drop its media leg;
//!    - [`Output::Close`]: close the WebSocket with
//!      [`CloseReason::close_code`].
//! 5. While active, call [`Session::audio_metadata`] 5–10 times a second with the
//!    attendees' levels (attenuation in dB), and end a session with
//!    [`Session::audio_status`] (410 meeting ended, 411 attendee removed, 301 joined
//!    from another device).
//!
//! ```
//! use std::time::Instant;
//! use chime_signal::{AttendeeInfo, Output, Session, SessionConfig};
//!
//! # fn answer(offer: &str) -> String { format!("answer to {} bytes", offer.len()) }
//! # let (unix_ms, ws_message) = (1_764_000_000_000, Vec::<u8>::new());
//! let now = Instant::now();
//! let mut session = Session::new(now, unix_ms, SessionConfig::default());
//! session.attendee_joined(now, AttendeeInfo {
//!     audio_stream_id: 1,
//!     attendee_id: "attendee-id-from-token".into(),
//!     external_user_id: "alice".into(),
//!     muted: false,
//! })?;
//! // For each binary WebSocket message:
//! if let Err(e) = session.handle_frame(now, &ws_message) {
//!     eprintln!("client protocol error: {e}"); // Output::Close is queued
//! }
//! while let Some(out) = session.poll_output() {
//!     match out {
//!         Output::Send(bytes) => { /* ws.send(Message::Binary(bytes)) */ }
//!         Output::Subscribe { sdp_offer, .. } => {
//!             session.answer_subscribe(now, answer(&sdp_offer))?;
//!         }
//!         Output::Close { reason } => { /* ws.close(reason.close_code()) */ }
//!         Output::DataMessage(m) => { /* to the meeting's other sessions */ }
//!         Output::Joined { .. } | Output::MuteChanged { .. } | Output::Leave => {}
//!         Output::DataRefused { .. } => {}
//!     }
//! }
//! # Ok::<(), chime_signal::UsageError>(())
//! ```
//!
//! # The protocol
//!
//! Every message is one prefix byte ([`FRAME_PREFIX`], 0x05) and a protobuf
//! [`SdkSignalFrame`] (proto2; `timestamp_ms` and `type` required). The exchange:
//!
//! ```text
//! client                                server
//!   JOIN ─────────────────────────────▶
//!        ◀───────────────────────────── JOIN_ACK (no TURN credentials)
//!        ◀───────────────────────────── INDEX { sources: [], num_participants }
//!   SUBSCRIBE { sdp_offer } ──────────▶        (Output::Subscribe)
//!        ◀───────────────────────────── SUBSCRIBE_ACK { sdp_answer }
//!        ◀───────────────────────────── AUDIO_STREAM_ID_INFO (roster), then changes
//!        ◀───────────────────────────── AUDIO_METADATA (levels, 5–10/s)
//!   DATA_MESSAGE { topic, data } ─────▶        (Output::DataMessage, relayed)
//!        ◀───────────────────────────── DATA_MESSAGE { others' messages, sender, time }
//!   PING { ping_id } ─────────────────▶
//!        ◀───────────────────────────── PONG { same ping_id }
//!   LEAVE ────────────────────────────▶
//!        ◀───────────────────────────── LEAVE_ACK               (Output::Leave)
//! ```
//!
//! `AUDIO_STREAM_ID_INFO` entries: `{audio_stream_id, attendee_id, external_user_id,
//! muted}` announces an attendee, `{audio_stream_id, muted}` is a mute change, and an
//! entry with only `audio_stream_id` (optionally `dropped`) means the attendee left.
//! The roster snapshot is sent after the first SUBSCRIBE_ACK, when the client's
//! audio is set up; before that, presence calls only update the roster.
//!
//! # Errors by blame
//!
//! - [`DecodeError`] / [`SessionError`]: the client sent something malformed or out of
//!   place; the session queues `Output::Close` with [`CloseReason::ProtocolError`].
//! - [`UsageError`]: the application called something that does not fit the state;
//!   the connection is unaffected.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod data;
mod frame;
pub mod proto;
mod session;
pub mod turn;
mod types;
pub mod video;

pub use data::{DataMessage, DataRate, DataRefusal};
pub use frame::{
    DEFAULT_MAX_FRAME_LEN, DecodeError, FRAME_PREFIX, decode_frame, decode_frame_with_limit,
    encode_frame,
};
pub use proto::{FrameType, SdkSignalFrame};
pub use session::Session;
pub use turn::{DEFAULT_TURN_TTL_S, TurnConfig, TurnCredentials};
pub use types::{
    AttendeeInfo, AttendeeVolume, AudioStatus, CLOSE_MEETING_ENDED, CloseReason, Output,
    SessionConfig, SessionError, State, UsageError,
};
pub use video::{SendVideo, SubscribeVideo, TrackMapping, VideoAnswer, VideoSource};

/// The WebSocket subprotocol the server must select (echo) in its upgrade response.
pub const SUBPROTOCOL: &str = "_aws_wt_session";
