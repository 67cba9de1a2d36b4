//! The actions a function answers with, typed, with AWS's parameter names. Parsing and
//! validating a whole answer is [`parse_response`] (in `response.rs`); this file holds the
//! action types and the per-action checks.
//!
//! Every action that acts on a leg takes `CallId` or `ParticipantTag` (neither: the leg the
//! event was about). Numeric parameters take a number or a string of digits, as AWS's own
//! examples write both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::params::{ParticipantTag, opt_u64, req_bool, req_u64};
pub use super::response::{
    ActionList, FunctionResponse, InvalidResponse, InvalidResponseKind, MAX_ACTIONS,
    MAX_TRANSACTION_ATTRIBUTES, MAX_TRANSACTION_ATTRIBUTES_BYTES, parse_response,
};

/// The leg an action applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Leg {
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub participant_tag: Option<ParticipantTag>,
}

/// A prompt (or ringback tone) in an S3 bucket: `{"Type": "S3", "BucketName", "Key"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AudioSource {
    #[serde(rename = "Type")]
    pub kind: String,
    pub bucket_name: String,
    pub key: String,
}

macro_rules! params {
    ($(#[$m:meta])* $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name { $($body)* }
    };
}

params!(
    /// Hangup: `SipResponseCode` 0 (normal clearing, the default), 480 or 486.
    Hangup {
        #[serde(flatten)] pub leg: Leg,
        #[serde(default, deserialize_with = "opt_u64")] pub sip_response_code: Option<u64>,
    }
);
params!(Pause {
    #[serde(flatten)] pub leg: Leg,
    #[serde(deserialize_with = "req_u64")] pub duration_in_milliseconds: u64,
});
params!(PlayAudio {
    #[serde(flatten)] pub leg: Leg,
    #[serde(default)] pub playback_terminators: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_u64")] pub repeat: Option<u64>,
    pub audio_source: AudioSource,
});
params!(PlayAudioAndGetDigits {
    #[serde(flatten)] pub leg: Leg,
    #[serde(default)] pub input_digits_regex: Option<String>,
    pub audio_source: AudioSource,
    pub failure_audio_source: AudioSource,
    #[serde(default, deserialize_with = "opt_u64")] pub min_number_of_digits: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")] pub max_number_of_digits: Option<u64>,
    #[serde(default)] pub terminator_digits: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_u64")] pub in_between_digits_duration_in_milliseconds: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")] pub repeat: Option<u64>,
    #[serde(deserialize_with = "req_u64")] pub repeat_duration_in_milliseconds: u64,
});
params!(ReceiveDigits {
    #[serde(flatten)] pub leg: Leg,
    pub input_digits_regex: String,
    #[serde(deserialize_with = "req_u64")] pub in_between_digits_duration_in_milliseconds: u64,
    #[serde(deserialize_with = "req_u64")] pub flush_digits_duration_in_milliseconds: u64,
});
params!(SendDigits {
    pub call_id: String,
    pub digits: String,
    #[serde(default, deserialize_with = "opt_u64")] pub tone_duration_in_milliseconds: Option<u64>,
});
params!(JoinChimeMeeting {
    #[serde(flatten)] pub leg: Leg,
    pub join_token: String,
    #[serde(default)] pub meeting_id: Option<String>,
});
params!(ModifyChimeMeetingAttendees {
    #[serde(flatten)] pub leg: Leg,
    pub operation: AttendeeOperation,
    pub meeting_id: String,
    pub attendee_list: Vec<String>,
});
params!(BridgeEndpoint {
    pub bridge_endpoint_type: BridgeEndpointType,
    #[serde(default)] pub arn: Option<String>,
    #[serde(default)] pub uri: Option<String>,
});
params!(CallAndBridge {
    #[serde(default, deserialize_with = "opt_u64")] pub call_timeout_seconds: Option<u64>,
    pub caller_id_number: String,
    pub endpoints: Vec<BridgeEndpoint>,
    #[serde(default)] pub sip_headers: Option<BTreeMap<String, String>>,
    #[serde(default)] pub ringback_tone: Option<AudioSource>,
});
params!(RecordingDestination {
    #[serde(rename = "Type")] pub kind: String,
    pub bucket_name: String,
    #[serde(default)] pub prefix: Option<String>,
});
params!(RecordAudio {
    #[serde(flatten)] pub leg: Leg,
    #[serde(default, deserialize_with = "opt_u64")] pub duration_in_seconds: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")] pub silence_duration_in_seconds: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")] pub silence_threshold: Option<u64>,
    #[serde(default)] pub recording_terminators: Option<Vec<String>>,
    pub recording_destination: RecordingDestination,
});
params!(CallRecordingDestination {
    #[serde(rename = "Type")] pub kind: String,
    /// `bucket` or `bucket/prefix`.
    pub location: String,
});
params!(StartCallRecording {
    pub call_id: String,
    pub track: RecordingTrack,
    pub destination: CallRecordingDestination,
});
params!(
    /// StopCallRecording, PauseCallRecording, ResumeCallRecording.
    CallRecordingControl { pub call_id: String }
);
params!(SpeechParameters {
    pub text: String,
    #[serde(default)] pub engine: Option<String>,
    #[serde(default)] pub language_code: Option<String>,
    #[serde(default)] pub text_type: Option<String>,
    #[serde(default)] pub voice_id: Option<String>,
});
params!(Speak {
    pub call_id: String,
    #[serde(flatten)] pub speech: SpeechParameters,
});
params!(SpeakAndGetDigits {
    pub call_id: String,
    #[serde(default)] pub input_digits_regex: Option<String>,
    pub speech_parameters: SpeechParameters,
    pub failure_speech_parameters: SpeechParameters,
    #[serde(default, deserialize_with = "opt_u64")] pub min_number_of_digits: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")] pub max_number_of_digits: Option<u64>,
    #[serde(default)] pub terminator_digits: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_u64")] pub in_between_digits_duration_in_milliseconds: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")] pub repeat: Option<u64>,
    #[serde(deserialize_with = "req_u64")] pub repeat_duration_in_milliseconds: u64,
});
params!(StartBotConversation {
    #[serde(flatten)] pub leg: Leg,
    pub bot_alias_arn: String,
    #[serde(default)] pub locale_id: Option<String>,
    #[serde(default)] pub configuration: Option<serde_json::Value>,
});
params!(VoiceFocus {
    pub call_id: String,
    #[serde(deserialize_with = "req_bool")] pub enable: bool,
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttendeeOperation {
    Mute,
    Unmute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BridgeEndpointType {
    /// A voice connector (`Arn`) and the number or user to reach through it (`Uri`).
    #[serde(rename = "AWS")]
    Aws,
    /// A phone number (`Uri`, E.164) through the carriers.
    #[serde(rename = "PSTN")]
    Pstn,
    /// Another SIP media application (`Arn`).
    #[serde(rename = "SIPMediaApp")]
    SipMediaApp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordingTrack {
    Both,
    Incoming,
    Outgoing,
}

/// One validated action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    Hangup(Hangup),
    Pause(Pause),
    PlayAudio(PlayAudio),
    PlayAudioAndGetDigits(PlayAudioAndGetDigits),
    ReceiveDigits(ReceiveDigits),
    SendDigits(SendDigits),
    JoinChimeMeeting(JoinChimeMeeting),
    ModifyChimeMeetingAttendees(ModifyChimeMeetingAttendees),
    CallAndBridge(CallAndBridge),
    RecordAudio(RecordAudio),
    StartCallRecording(StartCallRecording),
    StopCallRecording(CallRecordingControl),
    PauseCallRecording(CallRecordingControl),
    ResumeCallRecording(CallRecordingControl),
    Speak(Speak),
    SpeakAndGetDigits(SpeakAndGetDigits),
    StartBotConversation(StartBotConversation),
    VoiceFocus(VoiceFocus),
}

/// An action of a function's answer: its type and typed parameters, and the parameters as
/// the function wrote them (for the ActionData of the events that report on it).
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub kind: ActionKind,
    pub parameters: serde_json::Value,
}

impl Action {
    /// The action's `Type`.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// Whether running this action answers an inbound call that is not answered yet: every
    /// action but Hangup does (AWS answers on the first other action).
    pub fn answers_call(&self) -> bool {
        !matches!(self.kind, ActionKind::Hangup(_))
    }
}

/// Parameters every action of that type must have (dotted paths into `Parameters`).
pub(super) fn required(type_name: &str) -> Option<&'static [&'static str]> {
    const AUDIO: [&str; 3] = [
        "AudioSource.Type",
        "AudioSource.BucketName",
        "AudioSource.Key",
    ];
    Some(match type_name {
        "Hangup" => &[],
        "Pause" => &["DurationInMilliseconds"],
        "PlayAudio" => &AUDIO,
        "PlayAudioAndGetDigits" => &[
            "AudioSource.Type",
            "AudioSource.BucketName",
            "AudioSource.Key",
            "FailureAudioSource.Type",
            "FailureAudioSource.BucketName",
            "FailureAudioSource.Key",
            "RepeatDurationInMilliseconds",
        ],
        "ReceiveDigits" => &[
            "InputDigitsRegex",
            "InBetweenDigitsDurationInMilliseconds",
            "FlushDigitsDurationInMilliseconds",
        ],
        "SendDigits" => &["CallId", "Digits"],
        "JoinChimeMeeting" => &["JoinToken"],
        "ModifyChimeMeetingAttendees" => &["Operation", "MeetingId", "AttendeeList"],
        "CallAndBridge" => &["CallerIdNumber", "Endpoints"],
        "RecordAudio" => &[
            "RecordingDestination.Type",
            "RecordingDestination.BucketName",
        ],
        "StartCallRecording" => &[
            "CallId",
            "Track",
            "Destination.Type",
            "Destination.Location",
        ],
        "StopCallRecording" | "PauseCallRecording" | "ResumeCallRecording" => &["CallId"],
        "Speak" => &["CallId", "Text"],
        "SpeakAndGetDigits" => &[
            "CallId",
            "SpeechParameters.Text",
            "FailureSpeechParameters.Text",
            "RepeatDurationInMilliseconds",
        ],
        "StartBotConversation" => &["BotAliasArn"],
        "VoiceFocus" => &["CallId", "Enable"],
        _ => return None,
    })
}

/// Deserializes `params` as the parameters of `type_name` (a known type).
pub(super) fn typed(
    type_name: &str,
    params: serde_json::Value,
) -> Result<ActionKind, serde_json::Error> {
    use serde_json::from_value as p;
    Ok(match type_name {
        "Hangup" => ActionKind::Hangup(p(params)?),
        "Pause" => ActionKind::Pause(p(params)?),
        "PlayAudio" => ActionKind::PlayAudio(p(params)?),
        "PlayAudioAndGetDigits" => ActionKind::PlayAudioAndGetDigits(p(params)?),
        "ReceiveDigits" => ActionKind::ReceiveDigits(p(params)?),
        "SendDigits" => ActionKind::SendDigits(p(params)?),
        "JoinChimeMeeting" => ActionKind::JoinChimeMeeting(p(params)?),
        "ModifyChimeMeetingAttendees" => ActionKind::ModifyChimeMeetingAttendees(p(params)?),
        "CallAndBridge" => ActionKind::CallAndBridge(p(params)?),
        "RecordAudio" => ActionKind::RecordAudio(p(params)?),
        "StartCallRecording" => ActionKind::StartCallRecording(p(params)?),
        "StopCallRecording" => ActionKind::StopCallRecording(p(params)?),
        "PauseCallRecording" => ActionKind::PauseCallRecording(p(params)?),
        "ResumeCallRecording" => ActionKind::ResumeCallRecording(p(params)?),
        "Speak" => ActionKind::Speak(p(params)?),
        "SpeakAndGetDigits" => ActionKind::SpeakAndGetDigits(p(params)?),
        "StartBotConversation" => ActionKind::StartBotConversation(p(params)?),
        other => {
            debug_assert_eq!(other, "VoiceFocus");
            ActionKind::VoiceFocus(p(params)?)
        }
    })
}

/// A parameter refused: its name (relative to `Parameters`) and why.
pub(super) type Refusal = (&'static str, String);

const DIGIT_KEYS: &str = "0123456789*#";

fn terminators(name: &'static str, t: &Option<Vec<String>>) -> Result<(), Refusal> {
    for d in t.iter().flatten() {
        if d.chars().count() != 1 || !DIGIT_KEYS.contains(d.as_str()) {
            return Err((name, format!("{d:?} is not one of 0-9, * or #")));
        }
    }
    Ok(())
}

fn digit_range(min: Option<u64>, max: Option<u64>) -> Result<(), Refusal> {
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err((
            "MinNumberOfDigits",
            format!("{min} is more than MaxNumberOfDigits ({max})"),
        ));
    }
    Ok(())
}

fn s3(name: &'static str, kind: &str) -> Result<(), Refusal> {
    if kind == "S3" {
        Ok(())
    } else {
        Err((name, format!("{kind:?} is not a source type; only S3 is")))
    }
}

impl ActionKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ActionKind::Hangup(_) => "Hangup",
            ActionKind::Pause(_) => "Pause",
            ActionKind::PlayAudio(_) => "PlayAudio",
            ActionKind::PlayAudioAndGetDigits(_) => "PlayAudioAndGetDigits",
            ActionKind::ReceiveDigits(_) => "ReceiveDigits",
            ActionKind::SendDigits(_) => "SendDigits",
            ActionKind::JoinChimeMeeting(_) => "JoinChimeMeeting",
            ActionKind::ModifyChimeMeetingAttendees(_) => "ModifyChimeMeetingAttendees",
            ActionKind::CallAndBridge(_) => "CallAndBridge",
            ActionKind::RecordAudio(_) => "RecordAudio",
            ActionKind::StartCallRecording(_) => "StartCallRecording",
            ActionKind::StopCallRecording(_) => "StopCallRecording",
            ActionKind::PauseCallRecording(_) => "PauseCallRecording",
            ActionKind::ResumeCallRecording(_) => "ResumeCallRecording",
            ActionKind::Speak(_) => "Speak",
            ActionKind::SpeakAndGetDigits(_) => "SpeakAndGetDigits",
            ActionKind::StartBotConversation(_) => "StartBotConversation",
            ActionKind::VoiceFocus(_) => "VoiceFocus",
        }
    }

    /// The checks beyond presence and type: allowed values, ranges, digit sets.
    pub(super) fn check(&self) -> Result<(), Refusal> {
        match self {
            ActionKind::Hangup(h) => match h.sip_response_code {
                None | Some(0 | 480 | 486) => Ok(()),
                Some(c) => Err(("SipResponseCode", format!("{c} is not 0, 480 or 486"))),
            },
            ActionKind::PlayAudio(a) => {
                s3("AudioSource.Type", &a.audio_source.kind)?;
                terminators("PlaybackTerminators", &a.playback_terminators)
            }
            ActionKind::PlayAudioAndGetDigits(a) => {
                s3("AudioSource.Type", &a.audio_source.kind)?;
                s3("FailureAudioSource.Type", &a.failure_audio_source.kind)?;
                terminators("TerminatorDigits", &a.terminator_digits)?;
                digit_range(a.min_number_of_digits, a.max_number_of_digits)
            }
            ActionKind::SpeakAndGetDigits(a) => {
                terminators("TerminatorDigits", &a.terminator_digits)?;
                digit_range(a.min_number_of_digits, a.max_number_of_digits)
            }
            ActionKind::SendDigits(s) => {
                let ok = !s.digits.is_empty()
                    && s.digits.chars().count() <= 50
                    && s.digits
                        .chars()
                        .all(|c| "0123456789*#ABCDabcd,wW".contains(c));
                if ok {
                    Ok(())
                } else {
                    Err((
                        "Digits",
                        format!("{:?} must be 1 to 50 of 0-9, *, #, A-D, ',' or w", s.digits),
                    ))
                }
            }
            ActionKind::ModifyChimeMeetingAttendees(m) if m.attendee_list.is_empty() => {
                Err(("AttendeeList", "must name at least one attendee".into()))
            }
            ActionKind::CallAndBridge(c) => {
                crate::voice_connector::validate_e164("CallerIdNumber", &c.caller_id_number)
                    .map_err(|e| ("CallerIdNumber", e.to_string()))?;
                if let Some(t) = c.call_timeout_seconds
                    && !(1..=120).contains(&t)
                {
                    return Err(("CallTimeoutSeconds", format!("{t} is not 1 to 120")));
                }
                if let Some(r) = &c.ringback_tone {
                    s3("RingbackTone.Type", &r.kind)?;
                }
                let [e] = c.endpoints.as_slice() else {
                    return Err((
                        "Endpoints",
                        format!("must hold exactly one endpoint, got {}", c.endpoints.len()),
                    ));
                };
                match e.bridge_endpoint_type {
                    BridgeEndpointType::Pstn => match &e.uri {
                        Some(u) if crate::voice_connector::is_e164(u) => Ok(()),
                        _ => Err((
                            "Endpoints[0].Uri",
                            "a PSTN endpoint needs an E.164 Uri".into(),
                        )),
                    },
                    BridgeEndpointType::Aws => match (&e.arn, &e.uri) {
                        (Some(_), Some(_)) => Ok(()),
                        _ => Err((
                            "Endpoints[0].Arn",
                            "an AWS endpoint needs the voice connector's Arn and a Uri".into(),
                        )),
                    },
                    BridgeEndpointType::SipMediaApp if e.arn.is_none() => Err((
                        "Endpoints[0].Arn",
                        "a SIPMediaApp endpoint needs the application's Arn".into(),
                    )),
                    BridgeEndpointType::SipMediaApp => Ok(()),
                }
            }
            ActionKind::RecordAudio(r) => {
                s3("RecordingDestination.Type", &r.recording_destination.kind)?;
                terminators("RecordingTerminators", &r.recording_terminators)
            }
            ActionKind::StartCallRecording(r) => s3("Destination.Type", &r.destination.kind),
            _ => Ok(()),
        }
    }
}
