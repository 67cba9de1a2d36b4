//! Meetings and attendees, in the shapes of the `chime-sdk-meetings` service model.

use serde::{Deserialize, Serialize};

/// Most attendees in one meeting (AWS's limit).
pub const MAX_ATTENDEES: u32 = 250;
/// A meeting with no audio connection ends after this many seconds (AWS's auto-end rule).
pub const IDLE_END_SECS: i64 = 5 * 60;
/// Every meeting ends this many seconds after it was created (AWS's auto-end rule).
pub const MAX_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// Shape `Meeting`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Meeting {
    pub meeting_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_host_id: Option<String>,
    pub external_meeting_id: String,
    pub media_region: String,
    pub media_placement: MediaPlacement,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_features: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_meeting_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_ids: Option<Vec<String>>,
    pub meeting_arn: String,
}

/// Shape `MediaPlacement`: where clients reach this server for the meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MediaPlacement {
    pub audio_host_url: String,
    pub audio_fallback_url: String,
    pub signaling_url: String,
    pub turn_control_url: String,
    /// Where the browser SDK posts its client events (`POST`, `Authorization: Bearer
    /// <JoinToken>`); absent in meetings stored before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_ingestion_url: Option<String>,
}

impl MediaPlacement {
    /// URLs on the API host the client used (`host` is a `Host` header value such as
    /// `127.0.0.1:8080`), over plain HTTP and WebSocket.
    pub fn for_host(host: &str, meeting_id: &str) -> Self {
        Self::for_origin(false, host, meeting_id)
    }

    /// URLs on `host`: `https://` and `wss://` when `secure` (the API is served over TLS,
    /// or a TLS proxy fronts it), else `http://` and `ws://`.
    pub fn for_origin(secure: bool, host: &str, meeting_id: &str) -> Self {
        let (http, ws) = if secure {
            ("https", "wss")
        } else {
            ("http", "ws")
        };
        MediaPlacement {
            audio_host_url: format!("{host}/audio/{meeting_id}"),
            audio_fallback_url: format!("{ws}://{host}/audio/{meeting_id}"),
            signaling_url: format!("{ws}://{host}/control/{meeting_id}"),
            turn_control_url: format!("{http}://{host}/turn/{meeting_id}"),
            event_ingestion_url: Some(format!("{http}://{host}/client-events")),
        }
    }
}

pub fn meeting_arn(region: &str, meeting_id: &str) -> String {
    format!("arn:aws:chime:{region}:000000000000:meeting/{meeting_id}")
}

/// Shape `Attendee`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Attendee {
    pub external_user_id: String,
    pub attendee_id: String,
    pub join_token: String,
    pub capabilities: AttendeeCapabilities,
}

/// Shape `MediaCapabilities`: which way one kind of media may flow for an attendee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Capability {
    SendReceive,
    Send,
    Receive,
    None,
}

impl Capability {
    /// The attendee's media of this kind may reach the others.
    pub fn sends(self) -> bool {
        matches!(self, Capability::SendReceive | Capability::Send)
    }

    /// The others' media of this kind may reach the attendee.
    pub fn receives(self) -> bool {
        matches!(self, Capability::SendReceive | Capability::Receive)
    }
}

/// Shape `AttendeeCapabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttendeeCapabilities {
    pub audio: Capability,
    pub video: Capability,
    pub content: Capability,
}

impl Default for AttendeeCapabilities {
    fn default() -> Self {
        AttendeeCapabilities {
            audio: Capability::SendReceive,
            video: Capability::SendReceive,
            content: Capability::SendReceive,
        }
    }
}

/// Whether the meeting's `MeetingFeatures` turn `kind` (`Video`, `Content`) off
/// (`MaxResolution: None`).
fn feature_off(features: Option<&serde_json::Value>, kind: &str) -> bool {
    features
        .and_then(|f| f.get(kind))
        .and_then(|k| k.get("MaxResolution"))
        .and_then(serde_json::Value::as_str)
        == Some("None")
}

impl AttendeeCapabilities {
    /// What an attendee created without `Capabilities` gets in a meeting with these
    /// `MeetingFeatures`: everything, except a kind the meeting turns off. When video is off
    /// but content is not, video is `Receive`, since content needs it (AWS's rule).
    pub fn default_for(features: Option<&serde_json::Value>) -> Self {
        let mut c = AttendeeCapabilities::default();
        if feature_off(features, "Video") {
            c.video = Capability::Receive;
        }
        if feature_off(features, "Content") {
            c.content = Capability::None;
            if feature_off(features, "Video") {
                c.video = Capability::None;
            }
        }
        c
    }

    /// AWS's rules for capabilities asked for explicitly, in a meeting with these
    /// `MeetingFeatures`: content may be received only if video is; a kind the meeting turns
    /// off (`MaxResolution: None`) must be `None`. `field` prefixes the member named in the
    /// error (`Capabilities`, `Attendees[2].Capabilities`).
    pub fn validate(
        &self,
        features: Option<&serde_json::Value>,
        field: &str,
    ) -> Result<(), crate::DomainError> {
        let invalid = |member: &str, reason: &str| crate::DomainError::Invalid {
            field: format!("{field}.{member}"),
            reason: reason.to_string(),
        };
        if self.content.receives() && !self.video.receives() {
            return Err(invalid(
                "Content",
                "content can be SendReceive or Receive only when Video is SendReceive or Receive",
            ));
        }
        if feature_off(features, "Video") && self.video != Capability::None {
            return Err(invalid(
                "Video",
                "the meeting's MeetingFeatures set Video MaxResolution to None, so Video must be None",
            ));
        }
        if feature_off(features, "Content") && self.content != Capability::None {
            return Err(invalid(
                "Content",
                "the meeting's MeetingFeatures set Content MaxResolution to None, so Content must be None",
            ));
        }
        Ok(())
    }
}

/// An attendee as the store keeps it: no token, only its nonce and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendeeRecord {
    pub meeting_id: String,
    pub attendee_id: String,
    pub external_user_id: String,
    pub capabilities: AttendeeCapabilities,
    pub token_nonce: [u8; 16],
    pub token_hash: String,
    pub created_ms: i64,
}

/// A meeting as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingRecord {
    pub meeting: Meeting,
    pub client_request_token: String,
    pub created_ms: i64,
    /// Last time an attendee had audio connected (or creation time); drives the idle rule.
    pub last_audio_ms: i64,
}

impl MeetingRecord {
    /// Whether AWS's auto-end rules end this meeting at `now_ms`: 24 hours after creation,
    /// or, when `idle_secs` is given (the media engine enforces it), no audio connection for
    /// that long ([`IDLE_END_SECS`] by default).
    pub fn expired(&self, now_ms: i64, idle_secs: Option<i64>) -> bool {
        now_ms - self.created_ms >= MAX_LIFETIME_SECS * 1000
            || idle_secs.is_some_and(|idle| now_ms - self.last_audio_ms >= idle * 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::{None as Off, Receive, Send, SendReceive};

    fn caps(audio: Capability, video: Capability, content: Capability) -> AttendeeCapabilities {
        AttendeeCapabilities {
            audio,
            video,
            content,
        }
    }

    #[test]
    fn content_needs_video_received() {
        let e = caps(SendReceive, Send, Receive).validate(None, "Capabilities");
        assert!(
            matches!(e, Err(crate::DomainError::Invalid { field, .. }) if field == "Capabilities.Content")
        );
        assert!(caps(SendReceive, Off, Off).validate(None, "C").is_ok());
        assert!(caps(Off, Receive, SendReceive).validate(None, "C").is_ok());
        assert!(caps(Receive, Receive, Send).validate(None, "C").is_ok());
    }

    #[test]
    fn a_kind_the_meeting_turns_off_must_be_none() {
        let f = serde_json::json!({"Video": {"MaxResolution": "None"}});
        let e = caps(SendReceive, Receive, Off).validate(Some(&f), "Capabilities");
        assert!(
            matches!(e, Err(crate::DomainError::Invalid { field, .. }) if field == "Capabilities.Video")
        );
        assert!(caps(SendReceive, Off, Off).validate(Some(&f), "C").is_ok());
        let d = AttendeeCapabilities::default_for(Some(&f));
        assert_eq!(d, caps(SendReceive, Receive, SendReceive));
        let both = serde_json::json!({"Video": {"MaxResolution": "None"}, "Content": {"MaxResolution": "None"}});
        let d = AttendeeCapabilities::default_for(Some(&both));
        assert_eq!(d, caps(SendReceive, Off, Off));
        assert!(d.validate(Some(&both), "C").is_ok());
    }

    #[test]
    fn audio_directions() {
        assert!(SendReceive.sends() && SendReceive.receives());
        assert!(Send.sends() && !Send.receives());
        assert!(!Receive.sends() && Receive.receives());
        assert!(!Off.sends() && !Off.receives());
    }
}
