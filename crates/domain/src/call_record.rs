//! Call detail records: one per call, kept in the store and listed by the admin endpoint.

use serde::{Deserialize, Serialize};

/// Media figures for a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MediaStatistics {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub packets_lost: i64,
    pub jitter_ms: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trip_time_ms: Option<u32>,
    /// Packets refused by SRTP authentication or replay protection.
    pub srtp_failures: u64,
    /// RTCP packets received (and, under SRTP, authenticated).
    #[serde(default)]
    pub rtcp_packets_received: u64,
    /// Packets with a payload type that was not negotiated, or that did not parse.
    #[serde(default)]
    pub invalid_packets: u64,
    /// Packets dropped because they came from a source other than the peer's (its SDP
    /// address, or where it latched with --media-latch), or with another SSRC once latched.
    #[serde(default)]
    pub foreign_source_packets: u64,
}

/// One call (shape of our admin API; the field names follow AWS's CDR style).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallRecord {
    /// Unique per call.
    pub transaction_id: String,
    /// The SIP Call-ID.
    pub call_id: String,
    pub voice_connector_id: String,
    /// `Completed`, `Cancelled`, `Refused` or `Failed`.
    pub status: String,
    /// The final SIP status of the INVITE.
    pub status_code: u16,
    /// Why it ended or was refused, as the Warning/Reason said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub source_phone_number: String,
    pub destination_phone_number: String,
    /// `Outbound`: from the customer's PBX into the service (AWS's term for termination).
    pub direction: String,
    pub source_address: String,
    pub transport: String,
    pub start_time: String,
    pub end_time: String,
    pub duration_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attendee_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srtp_suite: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaStatistics>,
    /// AWS's StatusMessage: the status in words (the Reason or Warning text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Whole seconds from the answer to the end, rounded up; 0 for a call never answered.
    #[serde(default)]
    pub billable_duration_seconds: u64,
    /// ISO 3166 alpha-2 country of the E.164 caller and callee, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_country: Option<String>,
    #[serde(default)]
    pub start_time_epoch_seconds: i64,
    #[serde(default)]
    pub end_time_epoch_seconds: i64,
    /// The carrier (termination) or origination route that took the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Every routing attempt of a PSTN call, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// A SIP media application's leg: the application (AWS's SMA record calls it
    /// SipApplicationId), the SIP rule that took the call, and what started the leg
    /// (`ToPhoneNumber`, `RequestUriHostname`, `CreateSipMediaApplicationCall`,
    /// `CallAndBridge`). TransactionId is then the application call's and CallId the
    /// participant's.
    #[serde(
        default,
        rename = "SipApplicationId",
        skip_serializing_if = "Option::is_none"
    )]
    pub sip_application_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_leg_trigger_type: Option<String>,
}

impl CallRecord {
    /// The key the record is stored under: its TransactionId, and for a SIP media
    /// application's leg also its CallId (one transaction has several legs).
    pub fn record_id(&self) -> String {
        match &self.sip_application_id {
            Some(_) => format!("{}/{}", self.transaction_id, self.call_id),
            None => self.transaction_id.clone(),
        }
    }
}

/// One attempt of a call routed onward: a carrier or origination route and its final
/// SIP status (200 for the one that answered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Attempt {
    pub route: String,
    pub status_code: u16,
}
