//! The repository trait: everything the API and the SIP edge read and write.

use async_trait::async_trait;
use domain::DomainError;
use domain::meeting::{AttendeeCapabilities, AttendeeRecord, MeetingRecord};
use domain::voice_connector::{PhoneNumber, StoredCredential, VoiceConnector};

use crate::numbers::NumberOrderRepository;
use crate::pstn::{CarrierRepository, GroupRepository};
use crate::sma::SmaRepository;
use crate::sql::streaming::StreamingRepository;
use crate::tags::TagRepository;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request conflicts with what is stored (mapped to a client error).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database failed or is unreachable (an internal fault).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database refused a call record written in a group commit (an internal fault).
    #[error("database: {source}")]
    GroupCommit { source: std::sync::Arc<sqlx::Error> },
    /// The call-record writer task is gone (the runtime is shutting down).
    #[error("the call-record writer has stopped")]
    WriterGone,
    /// A row kept changing under a compare-and-insert loop (an internal fault).
    #[error("{what} kept changing under concurrent writes")]
    Contention { what: &'static str },
    /// A stored document no longer parses (an internal fault).
    #[error("stored {table} row {id} is corrupt: {source}")]
    Corrupt {
        table: &'static str,
        id: String,
        source: serde_json::Error,
    },
}

/// Per-connector settings documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    Termination,
    Origination,
    Logging,
    TerminationHealth,
    ExternalSystems,
    EmergencyCalling,
    Streaming,
}

impl SettingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SettingKind::Termination => "termination",
            SettingKind::Origination => "origination",
            SettingKind::Logging => "logging",
            SettingKind::TerminationHealth => "termination-health",
            SettingKind::ExternalSystems => "external-systems",
            SettingKind::EmergencyCalling => "emergency-calling",
            SettingKind::Streaming => "streaming",
        }
    }
}

/// Result of adding an attendee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttendeeInsert {
    Created(AttendeeRecord),
    /// The meeting already had an attendee with this ExternalUserId: here it is.
    Existing(AttendeeRecord),
}

/// Result of adding a meeting.
#[derive(Debug, Clone, PartialEq)]
pub enum MeetingInsert {
    Created(MeetingRecord),
    /// A meeting with this ClientRequestToken already exists: here it is.
    Existing(MeetingRecord),
}

/// Every read and write of the control plane (carriers and groups in the supertraits,
/// `pstn.rs`; SIP media applications, rules and functions in `sma.rs`; tags in `tags.rs`). All writes are
/// durable when they return.
#[async_trait]
pub trait Repository:
    CarrierRepository
    + GroupRepository
    + SmaRepository
    + TagRepository
    + NumberOrderRepository
    + StreamingRepository
    + Send
    + Sync
    + 'static
{
    // Voice connectors.
    async fn insert_voice_connector(
        &self,
        vc: &VoiceConnector,
        created_ms: i64,
    ) -> Result<(), StoreError>;
    async fn get_voice_connector(&self, id: &str) -> Result<Option<VoiceConnector>, StoreError>;
    /// Up to `limit` connectors with ids after `after`, in id order.
    async fn list_voice_connectors(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VoiceConnector>, StoreError>;
    /// Returns false when the connector does not exist.
    async fn update_voice_connector(&self, vc: &VoiceConnector) -> Result<bool, StoreError>;
    /// Refuses (Conflict) while phone numbers are associated. Returns false when absent.
    async fn delete_voice_connector(&self, id: &str) -> Result<bool, StoreError>;

    // Settings documents (termination, origination, logging, health).
    async fn put_setting(
        &self,
        vc_id: &str,
        kind: SettingKind,
        body: &serde_json::Value,
    ) -> Result<(), StoreError>;
    async fn get_setting(
        &self,
        vc_id: &str,
        kind: SettingKind,
    ) -> Result<Option<serde_json::Value>, StoreError>;
    async fn delete_setting(&self, vc_id: &str, kind: SettingKind) -> Result<bool, StoreError>;

    // Termination credentials (HA1 only).
    async fn put_credentials(
        &self,
        vc_id: &str,
        creds: &[StoredCredential],
    ) -> Result<(), StoreError>;
    async fn list_credential_usernames(&self, vc_id: &str) -> Result<Vec<String>, StoreError>;
    async fn get_credential(
        &self,
        vc_id: &str,
        username: &str,
    ) -> Result<Option<StoredCredential>, StoreError>;
    async fn delete_credentials(&self, vc_id: &str, usernames: &[String])
    -> Result<(), StoreError>;

    // Phone-number inventory.
    /// Returns false when the number is already in the inventory.
    async fn add_phone_number(&self, n: &PhoneNumber) -> Result<bool, StoreError>;
    async fn get_phone_number(&self, id: &str) -> Result<Option<PhoneNumber>, StoreError>;
    /// Stores the number's new state. Associating it with a connector that does not exist
    /// (or is being deleted concurrently) fails with NotFound.
    async fn update_phone_number(&self, n: &PhoneNumber) -> Result<(), StoreError>;
    /// Numbers in id order after `after`; `vc_id` filters to one connector's numbers.
    async fn list_phone_numbers(
        &self,
        vc_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PhoneNumber>, StoreError>;

    // Meetings.
    /// Adds a meeting unless one with the same ClientRequestToken exists, which is returned
    /// instead. Atomic with respect to concurrent inserts of the same token.
    async fn insert_meeting(&self, m: &MeetingRecord) -> Result<MeetingInsert, StoreError>;
    async fn get_meeting(&self, id: &str) -> Result<Option<MeetingRecord>, StoreError>;
    async fn find_meeting_by_request_token(
        &self,
        token: &str,
    ) -> Result<Option<MeetingRecord>, StoreError>;
    /// Deletes the meeting and its attendees (which revokes their join tokens).
    async fn delete_meeting(&self, id: &str) -> Result<bool, StoreError>;
    async fn list_meetings(&self) -> Result<Vec<MeetingRecord>, StoreError>;
    async fn touch_meeting_audio(&self, id: &str, at_ms: i64) -> Result<(), StoreError>;

    // Call detail records.
    /// Stores one call's final record (a JSON document), replacing its open record if
    /// there is one. `id` is its TransactionId. Durable when it returns, like every write;
    /// concurrent calls may share one commit.
    async fn insert_call_record(
        &self,
        id: &str,
        vc_id: &str,
        start_ms: i64,
        body: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Stores a call's open record (written at answer, so a crash still leaves one); a
    /// final record already stored for `id` is kept.
    async fn open_call_record(
        &self,
        id: &str,
        vc_id: &str,
        start_ms: i64,
        body: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Deletes every record of a call that started before `before_ms` (Unix milliseconds),
    /// for the retention sweep; returns how many went.
    async fn delete_call_records_before(&self, before_ms: i64) -> Result<u64, StoreError>;
    /// Records in TransactionId order after `after`, optionally for one connector.
    async fn list_call_records(
        &self,
        vc_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError>;

    // Attendees.
    /// Adds an attendee unless the meeting has one with the same ExternalUserId, and refuses
    /// (LimitExceeded) past `max_attendees`. Atomic with respect to concurrent inserts.
    async fn insert_attendee(
        &self,
        a: &AttendeeRecord,
        max_attendees: u32,
    ) -> Result<AttendeeInsert, StoreError>;
    async fn get_attendee(
        &self,
        meeting_id: &str,
        attendee_id: &str,
    ) -> Result<Option<AttendeeRecord>, StoreError>;
    async fn list_attendees(
        &self,
        meeting_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AttendeeRecord>, StoreError>;
    async fn delete_attendee(
        &self,
        meeting_id: &str,
        attendee_id: &str,
    ) -> Result<bool, StoreError>;
    async fn find_attendee_by_token_hash(
        &self,
        hash: &str,
    ) -> Result<Option<AttendeeRecord>, StoreError>;
    /// Sets one attendee's capabilities (UpdateAttendeeCapabilities); false when the
    /// meeting has no such attendee.
    async fn update_attendee_capabilities(
        &self,
        meeting_id: &str,
        attendee_id: &str,
        caps: &AttendeeCapabilities,
    ) -> Result<bool, StoreError>;
    /// Sets the capabilities of every attendee of the meeting but the `excluded` ones
    /// (BatchUpdateAttendeeCapabilitiesExcept), in one transaction; returns the ids changed.
    async fn update_capabilities_except(
        &self,
        meeting_id: &str,
        excluded: &[String],
        caps: &AttendeeCapabilities,
    ) -> Result<Vec<String>, StoreError>;
}
