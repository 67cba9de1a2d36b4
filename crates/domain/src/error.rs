//! Errors by blame. The API maps each variant to an AWS error shape in one place.

/// What went wrong, and whose fault it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    /// The caller sent a value we refuse. `field` names the offending member.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The named resource does not exist (or no longer exists).
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(ConflictReason),
    /// A configured limit was reached.
    #[error("{what}: the limit is {limit}")]
    LimitExceeded { what: &'static str, limit: u32 },
}

/// Why a request conflicts with the current state.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConflictReason {
    #[error("voice connector {0} still has phone numbers associated; disassociate them first")]
    VoiceConnectorHasNumbers(String),
    #[error(
        "phone number {number} is associated with voice connector {voice_connector}; use ForceAssociate to move it"
    )]
    NumberAssociatedElsewhere {
        number: String,
        voice_connector: String,
    },
    #[error(
        "voice connector group {0} still has phone numbers associated; disassociate them first"
    )]
    GroupHasNumbers(String),
    #[error(
        "voice connector {voice_connector} is a member of voice connector group {group}; remove it from the group first"
    )]
    ConnectorInGroup {
        voice_connector: String,
        group: String,
    },
    #[error("a carrier named {0} already exists; use `carriers update` to change it")]
    CarrierExists(String),
    #[error("meeting {0} has ended")]
    MeetingEnded(String),
    #[error(
        "SIP media application {application} is a target of SIP rule {rule}; remove it from the rule first"
    )]
    SipMediaApplicationInUse { application: String, rule: String },
    #[error("SIP rule {0} is enabled; disable it (UpdateSipRule with Disabled) before deleting it")]
    SipRuleEnabled(String),
    #[error("{trigger} already triggers SIP rule {rule}")]
    SipRuleTriggerTaken { trigger: String, rule: String },
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        DomainError::NotFound {
            kind,
            id: id.into(),
        }
    }
}
