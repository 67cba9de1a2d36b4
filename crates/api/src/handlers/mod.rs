//! The operations. Each takes the validated input document and returns the output document.

mod capabilities;
mod groups;
pub(crate) mod meetings;
mod numbers;
mod orders;
mod settings;
mod sip_rules;
mod sma;
mod streaming;
pub(crate) mod tags;
mod voice;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ApiError, AppState};

/// Something the media side must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    MeetingDeleted {
        meeting_id: String,
    },
    AttendeeDeleted {
        meeting_id: String,
        attendee_id: String,
    },
    /// An attendee's capabilities changed; its legs follow within a mixer tick.
    AttendeeCapabilities {
        meeting_id: String,
        attendee_id: String,
        capabilities: domain::meeting::AttendeeCapabilities,
    },
}

pub(crate) struct Ctx<'a> {
    pub state: &'a AppState,
    /// The `Host` the client reached us on (or `--public-url`'s); MediaPlacement URLs
    /// point back at it.
    pub host: String,
    /// Whether clients reach that host over TLS (MediaPlacement's `https://`, `wss://`).
    pub secure: bool,
}

const OPERATIONS: &[&str] = &[
    "CreateVoiceConnector",
    "GetVoiceConnector",
    "ListVoiceConnectors",
    "UpdateVoiceConnector",
    "DeleteVoiceConnector",
    "PutVoiceConnectorTermination",
    "GetVoiceConnectorTermination",
    "DeleteVoiceConnectorTermination",
    "PutVoiceConnectorTerminationCredentials",
    "ListVoiceConnectorTerminationCredentials",
    "DeleteVoiceConnectorTerminationCredentials",
    "GetVoiceConnectorTerminationHealth",
    "PutVoiceConnectorOrigination",
    "GetVoiceConnectorOrigination",
    "DeleteVoiceConnectorOrigination",
    "PutVoiceConnectorLoggingConfiguration",
    "GetVoiceConnectorLoggingConfiguration",
    "AssociatePhoneNumbersWithVoiceConnector",
    "DisassociatePhoneNumbersFromVoiceConnector",
    "GetPhoneNumber",
    "ListPhoneNumbers",
    "CreateVoiceConnectorGroup",
    "GetVoiceConnectorGroup",
    "ListVoiceConnectorGroups",
    "UpdateVoiceConnectorGroup",
    "DeleteVoiceConnectorGroup",
    "AssociatePhoneNumbersWithVoiceConnectorGroup",
    "DisassociatePhoneNumbersFromVoiceConnectorGroup",
    "UpdatePhoneNumber",
    "BatchUpdatePhoneNumber",
    "DeletePhoneNumber",
    "BatchDeletePhoneNumber",
    "RestorePhoneNumber",
    "GetPhoneNumberSettings",
    "UpdatePhoneNumberSettings",
    "SearchAvailablePhoneNumbers",
    "CreatePhoneNumberOrder",
    "GetPhoneNumberOrder",
    "ListPhoneNumberOrders",
    "ListSupportedPhoneNumberCountries",
    "CreateSipMediaApplication",
    "GetSipMediaApplication",
    "ListSipMediaApplications",
    "UpdateSipMediaApplication",
    "DeleteSipMediaApplication",
    "PutSipMediaApplicationLoggingConfiguration",
    "GetSipMediaApplicationLoggingConfiguration",
    "PutSipMediaApplicationAlexaSkillConfiguration",
    "GetSipMediaApplicationAlexaSkillConfiguration",
    "CreateSipMediaApplicationCall",
    "UpdateSipMediaApplicationCall",
    "CreateSipRule",
    "GetSipRule",
    "ListSipRules",
    "UpdateSipRule",
    "DeleteSipRule",
    "CreateMeeting",
    "CreateMeetingWithAttendees",
    "GetMeeting",
    "DeleteMeeting",
    "CreateAttendee",
    "BatchCreateAttendee",
    "GetAttendee",
    "ListAttendees",
    "DeleteAttendee",
    "UpdateAttendeeCapabilities",
    "BatchUpdateAttendeeCapabilitiesExcept",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "ListAvailableVoiceConnectorRegions",
    "GetGlobalSettings",
    "UpdateGlobalSettings",
    "PutVoiceConnectorExternalSystemsConfiguration",
    "GetVoiceConnectorExternalSystemsConfiguration",
    "DeleteVoiceConnectorExternalSystemsConfiguration",
    "PutVoiceConnectorEmergencyCallingConfiguration",
    "GetVoiceConnectorEmergencyCallingConfiguration",
    "DeleteVoiceConnectorEmergencyCallingConfiguration",
    "PutVoiceConnectorStreamingConfiguration",
    "GetVoiceConnectorStreamingConfiguration",
    "DeleteVoiceConnectorStreamingConfiguration",
];

/// The operation's name as a static label for metrics.
pub(crate) fn op_label(name: &str) -> &'static str {
    OPERATIONS
        .iter()
        .copied()
        .find(|o| *o == name)
        .unwrap_or("Unknown")
}

pub(crate) async fn dispatch(ctx: &Ctx<'_>, op: &str, input: Value) -> Result<Value, ApiError> {
    match op {
        "CreateVoiceConnector" => voice::create(ctx, input).await,
        "GetVoiceConnector" => voice::get(ctx, input).await,
        "ListVoiceConnectors" => voice::list(ctx, input).await,
        "UpdateVoiceConnector" => voice::update(ctx, input).await,
        "DeleteVoiceConnector" => voice::delete(ctx, input).await,
        "PutVoiceConnectorTermination" => voice::put_termination(ctx, input).await,
        "GetVoiceConnectorTermination" => voice::get_termination(ctx, input).await,
        "DeleteVoiceConnectorTermination" => voice::delete_termination(ctx, input).await,
        "PutVoiceConnectorTerminationCredentials" => voice::put_credentials(ctx, input).await,
        "ListVoiceConnectorTerminationCredentials" => voice::list_credentials(ctx, input).await,
        "DeleteVoiceConnectorTerminationCredentials" => voice::delete_credentials(ctx, input).await,
        "GetVoiceConnectorTerminationHealth" => voice::get_health(ctx, input).await,
        "PutVoiceConnectorOrigination" => voice::put_origination(ctx, input).await,
        "GetVoiceConnectorOrigination" => voice::get_origination(ctx, input).await,
        "DeleteVoiceConnectorOrigination" => voice::delete_origination(ctx, input).await,
        "PutVoiceConnectorLoggingConfiguration" => voice::put_logging(ctx, input).await,
        "GetVoiceConnectorLoggingConfiguration" => voice::get_logging(ctx, input).await,
        "AssociatePhoneNumbersWithVoiceConnector" => voice::associate_numbers(ctx, input).await,
        "DisassociatePhoneNumbersFromVoiceConnector" => {
            voice::disassociate_numbers(ctx, input).await
        }
        "GetPhoneNumber" => voice::get_phone_number(ctx, input).await,
        "ListPhoneNumbers" => voice::list_phone_numbers(ctx, input).await,
        "CreateVoiceConnectorGroup" => groups::create(ctx, input).await,
        "GetVoiceConnectorGroup" => groups::get(ctx, input).await,
        "ListVoiceConnectorGroups" => groups::list(ctx, input).await,
        "UpdateVoiceConnectorGroup" => groups::update(ctx, input).await,
        "DeleteVoiceConnectorGroup" => groups::delete(ctx, input).await,
        "AssociatePhoneNumbersWithVoiceConnectorGroup" => {
            groups::associate_numbers(ctx, input).await
        }
        "DisassociatePhoneNumbersFromVoiceConnectorGroup" => {
            groups::disassociate_numbers(ctx, input).await
        }
        "UpdatePhoneNumber" => numbers::update(ctx, input).await,
        "BatchUpdatePhoneNumber" => numbers::batch_update(ctx, input).await,
        "DeletePhoneNumber" => numbers::delete(ctx, input).await,
        "BatchDeletePhoneNumber" => numbers::batch_delete(ctx, input).await,
        "RestorePhoneNumber" => numbers::restore(ctx, input).await,
        "GetPhoneNumberSettings" => numbers::get_settings(ctx, input).await,
        "UpdatePhoneNumberSettings" => numbers::update_settings(ctx, input).await,
        "SearchAvailablePhoneNumbers" => orders::search(ctx, input).await,
        "CreatePhoneNumberOrder" => orders::create_order(ctx, input).await,
        "GetPhoneNumberOrder" => orders::get_order(ctx, input).await,
        "ListPhoneNumberOrders" => orders::list_orders(ctx, input).await,
        "ListSupportedPhoneNumberCountries" => orders::list_countries(ctx, input).await,
        "CreateSipMediaApplication" => sma::create(ctx, input).await,
        "GetSipMediaApplication" => sma::get(ctx, input).await,
        "ListSipMediaApplications" => sma::list(ctx, input).await,
        "UpdateSipMediaApplication" => sma::update(ctx, input).await,
        "DeleteSipMediaApplication" => sma::delete(ctx, input).await,
        "PutSipMediaApplicationLoggingConfiguration" => sma::put_logging(ctx, input).await,
        "GetSipMediaApplicationLoggingConfiguration" => sma::get_logging(ctx, input).await,
        "PutSipMediaApplicationAlexaSkillConfiguration" => sma::put_alexa(ctx, input).await,
        "GetSipMediaApplicationAlexaSkillConfiguration" => sma::get_alexa(ctx, input).await,
        "CreateSipMediaApplicationCall" => sma::create_call(ctx, input).await,
        "UpdateSipMediaApplicationCall" => sma::update_call(ctx, input).await,
        "CreateSipRule" => sip_rules::create(ctx, input).await,
        "GetSipRule" => sip_rules::get(ctx, input).await,
        "ListSipRules" => sip_rules::list(ctx, input).await,
        "UpdateSipRule" => sip_rules::update(ctx, input).await,
        "DeleteSipRule" => sip_rules::delete(ctx, input).await,
        "CreateMeeting" => meetings::create(ctx, input, false).await,
        "CreateMeetingWithAttendees" => meetings::create(ctx, input, true).await,
        "GetMeeting" => meetings::get(ctx, input).await,
        "DeleteMeeting" => meetings::delete(ctx, input).await,
        "CreateAttendee" => meetings::create_attendee(ctx, input).await,
        "BatchCreateAttendee" => meetings::batch_create_attendee(ctx, input).await,
        "GetAttendee" => meetings::get_attendee(ctx, input).await,
        "ListAttendees" => meetings::list_attendees(ctx, input).await,
        "DeleteAttendee" => meetings::delete_attendee(ctx, input).await,
        "UpdateAttendeeCapabilities" => capabilities::update(ctx, input).await,
        "BatchUpdateAttendeeCapabilitiesExcept" => {
            capabilities::batch_update_except(ctx, input).await
        }
        "TagResource" => tags::tag(ctx, input).await,
        "UntagResource" => tags::untag(ctx, input).await,
        "ListTagsForResource" => tags::list(ctx, input).await,
        "ListAvailableVoiceConnectorRegions" => settings::list_regions(ctx, input).await,
        "GetGlobalSettings" => settings::get_global(ctx, input).await,
        "UpdateGlobalSettings" => settings::update_global(ctx, input).await,
        "PutVoiceConnectorExternalSystemsConfiguration" => {
            settings::put_external_systems(ctx, input).await
        }
        "GetVoiceConnectorExternalSystemsConfiguration" => {
            settings::get_external_systems(ctx, input).await
        }
        "DeleteVoiceConnectorExternalSystemsConfiguration" => {
            settings::delete_external_systems(ctx, input).await
        }
        "PutVoiceConnectorEmergencyCallingConfiguration" => {
            settings::put_emergency(ctx, input).await
        }
        "GetVoiceConnectorEmergencyCallingConfiguration" => {
            settings::get_emergency(ctx, input).await
        }
        "DeleteVoiceConnectorEmergencyCallingConfiguration" => {
            settings::delete_emergency(ctx, input).await
        }
        "PutVoiceConnectorStreamingConfiguration" => streaming::put(ctx, input).await,
        "GetVoiceConnectorStreamingConfiguration" => streaming::get(ctx, input).await,
        "DeleteVoiceConnectorStreamingConfiguration" => streaming::delete(ctx, input).await,
        other => Err(ApiError::Internal(format!(
            "operation {other} is routed but has no handler"
        ))),
    }
}

/// Reads a validated input member into a typed value. Validation already checked the types,
/// so a failure here is a defect of ours, reported as such.
pub(crate) fn member<T: DeserializeOwned>(input: &Value, name: &str) -> Result<T, ApiError> {
    serde_json::from_value(input.get(name).cloned().unwrap_or(Value::Null))
        .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

/// A string member that the model marks required (so it is present after validation).
pub(crate) fn string(input: &Value, name: &str) -> String {
    input
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn opt_string(input: &Value, name: &str) -> Option<String> {
    input.get(name).and_then(Value::as_str).map(str::to_string)
}

/// `MaxResults` (default 100) and `NextToken` (the last id of the previous page).
pub(crate) fn page(input: &Value) -> (u32, Option<String>) {
    let max = input
        .get("MaxResults")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 100) as u32;
    (max, opt_string(input, "NextToken"))
}

/// The NextToken for a page of `len` items whose last id is `last`.
pub(crate) fn next_token(len: usize, max: u32, last: Option<&str>) -> Option<String> {
    if len == max as usize {
        last.map(str::to_string)
    } else {
        None
    }
}
