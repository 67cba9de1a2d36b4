//! Message types of the Chime SDK signaling protocol (protobuf, proto2).
//!
//! Field numbers, wire types and enum values are protocol facts of the client
//! (`SignalingProtocol.proto` of amazon-chime-sdk-js); the Rust definitions are written
//! here with `prost` derive macros, so no `protoc` or build script is needed.
//!
//! proto2 semantics: every `optional` field is an [`Option`] so presence survives a
//! round trip; `required` fields are always written. Enum-typed fields are kept as `i32`
//! (prost's convention) so unknown values from a newer client decode instead of failing;
//! use the typed accessors or `TryFrom<i32>` to interpret them. Messages the client may
//! send but this server does not act on (video, metrics, data messages) are modelled
//! anyway, so decoding keeps their content and tests can round-trip them.

#![allow(missing_docs)]

/// `SdkSignalFrame.Type`: which sub-message a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FrameType {
    Join = 1,
    JoinAck = 2,
    Subscribe = 3,
    SubscribeAck = 4,
    Index = 5,
    Pause = 7,
    Resume = 8,
    Leave = 9,
    LeaveAck = 10,
    Bitrates = 13,
    AudioControl = 16,
    AudioMetadata = 17,
    AudioStreamIdInfo = 18,
    PingPong = 19,
    AudioStatus = 20,
    ClientMetric = 21,
    DataMessage = 22,
    RemoteVideoUpdate = 24,
}

/// The envelope of every signaling message, in both directions.
///
/// `timestamp_ms` (wall clock, milliseconds since the Unix epoch) and `type` are
/// `required`: the client drops a frame without them, and
/// [`decode_frame`](crate::decode_frame) rejects one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkSignalFrame {
    #[prost(uint64, required, tag = "1")]
    pub timestamp_ms: u64,
    #[prost(enumeration = "FrameType", required, tag = "2")]
    pub r#type: i32,
    #[prost(message, optional, tag = "3")]
    pub error: Option<SdkErrorFrame>,
    #[prost(message, optional, tag = "4")]
    pub join: Option<SdkJoinFrame>,
    #[prost(message, optional, tag = "5")]
    pub joinack: Option<SdkJoinAckFrame>,
    #[prost(message, optional, tag = "6")]
    pub sub: Option<SdkSubscribeFrame>,
    #[prost(message, optional, tag = "7")]
    pub suback: Option<SdkSubscribeAckFrame>,
    #[prost(message, optional, tag = "8")]
    pub index: Option<SdkIndexFrame>,
    #[prost(message, optional, tag = "10")]
    pub pause: Option<SdkPauseResumeFrame>,
    #[prost(message, optional, tag = "11")]
    pub leave: Option<SdkLeaveFrame>,
    #[prost(message, optional, tag = "12")]
    pub leave_ack: Option<SdkLeaveAckFrame>,
    #[prost(message, optional, tag = "14")]
    pub bitrates: Option<SdkBitrateFrame>,
    #[prost(message, optional, tag = "17")]
    pub audio_control: Option<SdkAudioControlFrame>,
    #[prost(message, optional, tag = "18")]
    pub audio_metadata: Option<SdkAudioMetadataFrame>,
    #[prost(message, optional, tag = "19")]
    pub audio_stream_id_info: Option<SdkAudioStreamIdInfoFrame>,
    #[prost(message, optional, tag = "20")]
    pub ping_pong: Option<SdkPingPongFrame>,
    #[prost(message, optional, tag = "21")]
    pub audio_status: Option<SdkAudioStatusFrame>,
    #[prost(message, optional, tag = "22")]
    pub client_metric: Option<SdkClientMetricFrame>,
    #[prost(message, optional, tag = "23")]
    pub data_message: Option<SdkDataMessageFrame>,
    #[prost(message, optional, tag = "25")]
    pub remote_video_update: Option<SdkRemoteVideoUpdateFrame>,
}

impl SdkSignalFrame {
    /// An empty frame of the given type at the given wall-clock time.
    pub fn new(timestamp_ms: u64, frame_type: FrameType) -> Self {
        Self {
            timestamp_ms,
            r#type: frame_type as i32,
            ..Self::default()
        }
    }

    /// The frame type, or `None` for a value this crate does not know.
    pub fn frame_type(&self) -> Option<FrameType> {
        FrameType::try_from(self.r#type).ok()
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkErrorFrame {
    #[prost(uint32, optional, tag = "1")]
    pub status: Option<u32>,
    #[prost(string, optional, tag = "2")]
    pub description: Option<String>,
}

/// Bits of [`SdkJoinFrame::flags`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SdkJoinFlags {
    SendBitrates = 1,
    HasStreamUpdate = 2,
    UseSendSideBwe = 8,
    CompleteVideoSourcesList = 16,
    ExcludeSelfContentInIndex = 32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkClientDetails {
    #[prost(string, optional, tag = "1")]
    pub app_name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub app_version: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub device_model: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub device_make: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub platform_name: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub platform_version: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub client_source: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub chime_sdk_version: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkJoinFrame {
    #[prost(uint32, optional, tag = "1", default = "2")]
    pub protocol_version: Option<u32>,
    #[prost(uint32, optional, tag = "2", default = "8")]
    pub max_num_of_videos: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub flags: Option<u32>,
    #[prost(message, optional, tag = "4")]
    pub client_details: Option<SdkClientDetails>,
    #[prost(uint64, optional, tag = "6")]
    pub audio_session_id: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkTurnCredentials {
    #[prost(string, optional, tag = "1")]
    pub username: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub password: Option<String>,
    #[prost(uint32, optional, tag = "3")]
    pub ttl: Option<u32>,
    #[prost(string, repeated, tag = "4")]
    pub uris: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkJoinAckFrame {
    #[prost(message, optional, tag = "1")]
    pub turn_credentials: Option<SdkTurnCredentials>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SdkLeaveFrame {}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SdkLeaveAckFrame {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SdkStreamServiceType {
    Rx = 1,
    Tx = 2,
    Duplex = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SdkStreamMediaType {
    Audio = 1,
    Video = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkStreamDescriptor {
    #[prost(uint32, optional, tag = "1")]
    pub stream_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub framerate: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub max_bitrate_kbps: Option<u32>,
    #[prost(string, optional, tag = "4")]
    pub track_label: Option<String>,
    #[prost(uint32, optional, tag = "6")]
    pub group_id: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub avg_bitrate_bps: Option<u32>,
    #[prost(string, optional, tag = "8")]
    pub attendee_id: Option<String>,
    #[prost(enumeration = "SdkStreamMediaType", optional, tag = "9")]
    pub media_type: Option<i32>,
    #[prost(string, optional, tag = "10")]
    pub external_user_id: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkSubscribeFrame {
    #[prost(
        enumeration = "SdkStreamServiceType",
        optional,
        tag = "1",
        default = "Rx"
    )]
    pub duplex: Option<i32>,
    #[prost(message, repeated, tag = "2")]
    pub send_streams: Vec<SdkStreamDescriptor>,
    #[prost(uint32, repeated, packed = "false", tag = "3")]
    pub receive_stream_ids: Vec<u32>,
    #[prost(string, optional, tag = "4")]
    pub sdp_offer: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub audio_host: Option<String>,
    #[prost(bool, optional, tag = "6")]
    pub audio_checkin: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub audio_muted: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkStreamAllocation {
    #[prost(string, optional, tag = "1")]
    pub track_label: Option<String>,
    #[prost(uint32, optional, tag = "2")]
    pub stream_id: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub group_id: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkTrackMapping {
    #[prost(uint32, optional, tag = "1")]
    pub stream_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub ssrc: Option<u32>,
    #[prost(string, optional, tag = "3")]
    pub track_label: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkSubscribeAckFrame {
    #[prost(enumeration = "SdkStreamServiceType", optional, tag = "1")]
    pub duplex: Option<i32>,
    #[prost(message, repeated, tag = "2")]
    pub allocations: Vec<SdkStreamAllocation>,
    #[prost(string, optional, tag = "3")]
    pub sdp_answer: Option<String>,
    #[prost(message, repeated, tag = "4")]
    pub tracks: Vec<SdkTrackMapping>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkIndexFrame {
    #[prost(bool, optional, tag = "1")]
    pub at_capacity: Option<bool>,
    #[prost(message, repeated, tag = "2")]
    pub sources: Vec<SdkStreamDescriptor>,
    #[prost(uint32, repeated, packed = "false", tag = "3")]
    pub paused_at_source_ids: Vec<u32>,
    #[prost(uint32, optional, tag = "4")]
    pub num_participants: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkPauseResumeFrame {
    #[prost(uint32, repeated, packed = "false", tag = "1")]
    pub stream_ids: Vec<u32>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SdkBitrate {
    #[prost(uint32, optional, tag = "1")]
    pub source_stream_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub avg_bitrate_bps: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkBitrateFrame {
    #[prost(message, repeated, tag = "1")]
    pub bitrates: Vec<SdkBitrate>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SdkAudioControlFrame {
    #[prost(bool, optional, tag = "1")]
    pub muted: Option<bool>,
}

/// One attendee's level in an [`SdkAudioMetadataFrame`].
///
/// `volume` is an attenuation in dB below full scale (0 = loudest); the client turns it
/// into its own 0..1 volume indicator.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SdkAudioAttendeeState {
    #[prost(uint32, optional, tag = "1")]
    pub audio_stream_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub volume: Option<u32>,
    #[prost(bool, optional, tag = "3")]
    pub muted: Option<bool>,
    #[prost(uint32, optional, tag = "4")]
    pub signal_strength: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkAudioMetadataFrame {
    #[prost(message, repeated, tag = "1")]
    pub attendee_states: Vec<SdkAudioAttendeeState>,
}

/// One entry of an [`SdkAudioStreamIdInfoFrame`]: with `attendee_id` it announces an
/// attendee; with only `audio_stream_id` (and optionally `dropped`) it says the
/// attendee left; with `audio_stream_id` and `muted` it is a mute change.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkAudioStreamIdInfo {
    #[prost(uint32, optional, tag = "1")]
    pub audio_stream_id: Option<u32>,
    #[prost(string, optional, tag = "2")]
    pub attendee_id: Option<String>,
    #[prost(bool, optional, tag = "3")]
    pub muted: Option<bool>,
    #[prost(string, optional, tag = "4")]
    pub external_user_id: Option<String>,
    #[prost(bool, optional, tag = "5")]
    pub dropped: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkAudioStreamIdInfoFrame {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<SdkAudioStreamIdInfo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SdkPingPongType {
    Ping = 1,
    Pong = 2,
}

/// Keep-alive; both fields are `required` in the protocol.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SdkPingPongFrame {
    #[prost(enumeration = "SdkPingPongType", required, tag = "1")]
    pub r#type: i32,
    #[prost(uint32, required, tag = "2")]
    pub ping_id: u32,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SdkAudioStatusFrame {
    #[prost(uint32, optional, tag = "1")]
    pub audio_status: Option<u32>,
}

/// One client metric. `type` is `SdkMetric.Type` (about fifty values, kept as a raw
/// number: this server only passes metrics through).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SdkMetric {
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkStreamMetricFrame {
    #[prost(uint32, optional, tag = "3")]
    pub stream_id: Option<u32>,
    #[prost(uint32, optional, tag = "4")]
    pub group_id: Option<u32>,
    #[prost(message, repeated, tag = "5")]
    pub metrics: Vec<SdkMetric>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkClientMetricFrame {
    #[prost(message, repeated, tag = "1")]
    pub global_metrics: Vec<SdkMetric>,
    #[prost(message, repeated, tag = "2")]
    pub stream_metric_frames: Vec<SdkStreamMetricFrame>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkDataMessagePayload {
    #[prost(string, optional, tag = "1")]
    pub topic: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "3")]
    pub lifetime_ms: Option<u32>,
    #[prost(string, optional, tag = "4")]
    pub sender_attendee_id: Option<String>,
    #[prost(int64, optional, tag = "5")]
    pub ingest_time_ns: Option<i64>,
    #[prost(string, optional, tag = "6")]
    pub sender_external_user_id: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkDataMessageFrame {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<SdkDataMessagePayload>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkVideoSubscriptionConfiguration {
    #[prost(string, required, tag = "1")]
    pub mid: String,
    #[prost(string, optional, tag = "2")]
    pub attendee_id: Option<String>,
    #[prost(uint32, optional, tag = "3")]
    pub stream_id: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkRemoteVideoUpdateFrame {
    #[prost(message, repeated, tag = "1")]
    pub added_or_updated_video_subscriptions: Vec<SdkVideoSubscriptionConfiguration>,
    #[prost(string, repeated, tag = "2")]
    pub removed_video_subscription_mids: Vec<String>,
}
