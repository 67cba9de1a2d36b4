//! The programmable-calls half of the repository (issue 13): SIP media applications and
//! their settings documents, SIP rules, the function registry, and the call requests of
//! CreateSipMediaApplicationCall / UpdateSipMediaApplicationCall. A supertrait of
//! [`Repository`](crate::Repository), so every `Arc<dyn Repository>` has it.

use async_trait::async_trait;
use domain::sma::{FunctionEndpoint, SipMediaApplication, SipRule};

use crate::StoreError;

/// Per-application settings documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmaSettingKind {
    /// `SipMediaApplicationLoggingConfiguration`.
    Logging,
    /// `SipMediaApplicationAlexaSkillConfiguration`.
    AlexaSkill,
}

impl SmaSettingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SmaSettingKind::Logging => "logging",
            SmaSettingKind::AlexaSkill => "alexa-skill",
        }
    }
}

/// A request of CreateSipMediaApplicationCall (`kind` "create") or
/// UpdateSipMediaApplicationCall ("update") for the call flow to take up.
#[derive(Debug, Clone, PartialEq)]
pub struct SmaCallRequest {
    /// This request's own id (for a create, the new call's TransactionId).
    pub id: String,
    pub transaction_id: String,
    pub sip_media_application_id: String,
    pub kind: String,
    /// The request's input document (FromPhoneNumber, ToPhoneNumber, SipHeaders,
    /// ArgumentsMap; or Arguments).
    pub body: serde_json::Value,
    pub created_ms: i64,
}

#[async_trait]
pub trait SmaRepository: Send + Sync {
    async fn insert_sip_media_application(
        &self,
        a: &SipMediaApplication,
        created_ms: i64,
    ) -> Result<(), StoreError>;
    async fn get_sip_media_application(
        &self,
        id: &str,
    ) -> Result<Option<SipMediaApplication>, StoreError>;
    /// Up to `limit` applications with ids after `after`, in id order.
    async fn list_sip_media_applications(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SipMediaApplication>, StoreError>;
    /// False when the application does not exist.
    async fn update_sip_media_application(
        &self,
        a: &SipMediaApplication,
    ) -> Result<bool, StoreError>;
    /// Refuses (Conflict `SipMediaApplicationInUse`) while a rule targets it; false when
    /// absent. Its settings go with it.
    async fn delete_sip_media_application(&self, id: &str) -> Result<bool, StoreError>;

    async fn put_sma_setting(
        &self,
        sma_id: &str,
        kind: SmaSettingKind,
        body: &serde_json::Value,
    ) -> Result<(), StoreError>;
    async fn get_sma_setting(
        &self,
        sma_id: &str,
        kind: SmaSettingKind,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// Adds a rule. Conflict (`SipRuleTriggerTaken`) when another rule has the same
    /// trigger; NotFound when a target application does not exist.
    async fn insert_sip_rule(&self, r: &SipRule, created_ms: i64) -> Result<(), StoreError>;
    async fn get_sip_rule(&self, id: &str) -> Result<Option<SipRule>, StoreError>;
    /// Up to `limit` rules with ids after `after`, in id order; with `sma_id`, only the
    /// rules that target that application.
    async fn list_sip_rules(
        &self,
        sma_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SipRule>, StoreError>;
    /// Replaces name, Disabled and targets; false when absent, NotFound when a target
    /// application does not exist.
    async fn update_sip_rule(&self, r: &SipRule) -> Result<bool, StoreError>;
    /// Refuses (Conflict `SipRuleEnabled`) an enabled rule; false when absent.
    async fn delete_sip_rule(&self, id: &str) -> Result<bool, StoreError>;
    /// The ToPhoneNumber rule of `e164`, enabled or not. The SIP edge reads this per
    /// inbound call (cached for about a second by [`CachedRepository`](crate::CachedRepository)).
    async fn sip_rule_for_number(&self, e164: &str) -> Result<Option<SipRule>, StoreError>;
    /// The RequestUriHostname rule of `host` (any case), enabled or not; read per INVITE
    /// to a connector host, cached like [`Self::sip_rule_for_number`].
    async fn sip_rule_for_host(&self, host: &str) -> Result<Option<SipRule>, StoreError>;

    /// Adds or replaces the registry entry of `f.lambda_arn`.
    async fn put_function(&self, f: &FunctionEndpoint) -> Result<(), StoreError>;
    /// The endpoint that runs `lambda_arn` (read per call, cached).
    async fn function(&self, lambda_arn: &str) -> Result<Option<FunctionEndpoint>, StoreError>;
    /// Every registry entry, by ARN.
    async fn list_functions(&self) -> Result<Vec<FunctionEndpoint>, StoreError>;
    /// False when the ARN is not registered.
    async fn delete_function(&self, lambda_arn: &str) -> Result<bool, StoreError>;

    /// Queues a call request for the call flow.
    async fn insert_sma_call_request(&self, r: &SmaCallRequest) -> Result<(), StoreError>;
    /// Whether a request (of any kind) names `transaction_id` for application `sma_id`.
    async fn sma_transaction_known(
        &self,
        sma_id: &str,
        transaction_id: &str,
    ) -> Result<bool, StoreError>;
    /// Up to `limit` requests not taken yet, oldest first, marked taken at `now_ms` (each
    /// is handed out once, also across nodes sharing a database).
    async fn take_sma_call_requests(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<SmaCallRequest>, StoreError>;
}
