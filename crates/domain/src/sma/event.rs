//! The invocation event a SIP media application's function receives, in AWS's JSON shape:
//!
//! ```json
//! { "SchemaVersion": "1.0", "Sequence": 3, "InvocationEventType": "ACTION_SUCCESSFUL",
//!   "ActionData": { "Type": "PlayAudio", "Parameters": { ... } },
//!   "CallDetails": { "TransactionId": "...", "AwsAccountId": "...", "AwsRegion": "us-east-1",
//!     "SipRuleId": "...", "SipMediaApplicationId": "...",
//!     "Participants": [ { "CallId": "...", "ParticipantTag": "LEG-A", "To": "+1...",
//!       "From": "+1...", "Direction": "Inbound", "StartTimeInMilliseconds": "1641998241509",
//!       "Status": "Connected" } ],
//!     "TransactionAttributes": { "key": "value" } } }
//! ```
//!
//! `StartTimeInMilliseconds` is a string of digits, as AWS sends it. `ActionData` is present
//! for ACTION_SUCCESSFUL, ACTION_FAILED, ACTION_INTERRUPTED, DIGITS_RECEIVED,
//! CALL_UPDATE_REQUESTED and HANGUP (the action or request concerned); ACTION_FAILED puts
//! `ErrorType` and `ErrorMessage` in it. INVALID_LAMBDA_RESPONSE carries `ErrorType` and
//! `ErrorMessage` at the top level (what was wrong with the previous answer).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::params::ParticipantTag;

/// The only schema version there is.
pub const SCHEMA_VERSION: &str = "1.0";
/// The account id every event names (self-hosted: all zeros, as in our ARNs).
pub const ACCOUNT_ID: &str = "000000000000";

/// Why the function is invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    NewInboundCall,
    NewOutboundCall,
    Ringing,
    CallAnswered,
    ActionSuccessful,
    ActionFailed,
    ActionInterrupted,
    DigitsReceived,
    CallUpdateRequested,
    Hangup,
    InvalidLambdaResponse,
}

/// Which way a leg was set up, seen from the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// A leg's state when the event is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantStatus {
    Connected,
    Disconnected,
}

/// One leg of the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Participant {
    pub call_id: String,
    pub participant_tag: ParticipantTag,
    pub to: String,
    pub from: String,
    pub direction: Direction,
    /// Unix milliseconds as a string of digits.
    pub start_time_in_milliseconds: String,
    pub status: ParticipantStatus,
}

impl Participant {
    /// A leg that started at `start_ms` (Unix milliseconds).
    pub fn new(
        call_id: impl Into<String>,
        tag: ParticipantTag,
        to: impl Into<String>,
        from: impl Into<String>,
        direction: Direction,
        start_ms: i64,
    ) -> Self {
        Participant {
            call_id: call_id.into(),
            participant_tag: tag,
            to: to.into(),
            from: from.into(),
            direction,
            start_time_in_milliseconds: start_ms.to_string(),
            status: ParticipantStatus::Connected,
        }
    }
}

/// The call the event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallDetails {
    pub transaction_id: String,
    pub aws_account_id: String,
    pub aws_region: String,
    /// Absent on calls CreateSipMediaApplicationCall made (no rule started them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_rule_id: Option<String>,
    pub sip_media_application_id: String,
    pub participants: Vec<Participant>,
    /// What the function asked to keep across invocations (absent until it sets some).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_attributes: Option<BTreeMap<String, String>>,
}

/// The action (or update request) an event reports on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActionData {
    /// The action's type as the function gave it (`PlayAudio`, `CallUpdateRequest`, …).
    #[serde(rename = "Type")]
    pub kind: String,
    /// The action's parameters as the function gave them (defaults filled in).
    pub parameters: serde_json::Value,
    /// Digits collected by PlayAudioAndGetDigits, SpeakAndGetDigits or ReceiveDigits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_digits: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// RecordAudio: where the recording was written (`Type`, `BucketName`, `Key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_destination: Option<serde_json::Value>,
    /// StartCallRecording: where the recording will be delivered (`Type`, `Location`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_recording_destination: Option<serde_json::Value>,
}

impl ActionData {
    /// Action data of `kind` with these parameters and nothing else.
    pub fn new(kind: impl Into<String>, parameters: serde_json::Value) -> Self {
        ActionData {
            kind: kind.into(),
            parameters,
            received_digits: None,
            error_type: None,
            error_message: None,
            recording_destination: None,
            call_recording_destination: None,
        }
    }
}

/// One invocation of the function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationEvent {
    pub schema_version: String,
    /// 1 for the first invocation of a transaction, then one more each time.
    pub sequence: u64,
    pub invocation_event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_data: Option<ActionData>,
    pub call_details: CallDetails,
    /// INVALID_LAMBDA_RESPONSE only: what was wrong with the previous answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl InvocationEvent {
    /// An event without action data.
    pub fn new(kind: EventType, sequence: u64, call_details: CallDetails) -> Self {
        InvocationEvent {
            schema_version: SCHEMA_VERSION.to_string(),
            sequence,
            invocation_event_type: kind,
            action_data: None,
            call_details,
            error_type: None,
            error_message: None,
        }
    }

    /// INVALID_LAMBDA_RESPONSE for an answer refused with `error`.
    pub fn invalid_response(
        sequence: u64,
        call_details: CallDetails,
        error: &super::action::InvalidResponse,
    ) -> Self {
        let mut e = Self::new(EventType::InvalidLambdaResponse, sequence, call_details);
        e.error_type = Some(error.kind.as_str().to_string());
        e.error_message = Some(error.message.clone());
        e
    }

    /// The event as the JSON body sent to the function.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain strings, numbers and maps with string keys: serialization cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
