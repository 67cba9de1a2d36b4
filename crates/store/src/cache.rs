//! A read-through cache for the connector configuration every INVITE reads.
//!
//! Routing one INVITE reads the voice connector, its termination and logging settings and
//! its credential user names: four queries, each a round trip to a database thread (SQLite)
//! or server (PostgreSQL), for data that changes a few times a day. [`CachedRepository`]
//! wraps any [`Repository`], keeps those four reads for a short time-to-live, and passes
//! everything else through.
//!
//! Consistency:
//! - Writes through the cache (the API of this node) drop the entries they touch before
//!   they return, so this node never answers from a value older than its own last write.
//!   A read that raced with a write is not stored (a generation counter), so a stale value
//!   cannot be put back after the invalidation.
//! - Writes by other nodes sharing a PostgreSQL database are seen after at most the TTL,
//!   or at once when the server wires the cluster bus: every invalidation here calls the
//!   [`CachedRepository::on_invalidate`] hook (a NOTIFY), and a notification from another
//!   node calls [`CachedRepository::invalidate_all`].
//! - Meetings and attendees are never cached: a revoked join token stops working at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::meeting::{AttendeeCapabilities, AttendeeRecord, MeetingRecord};
use domain::voice_connector::{PhoneNumber, StoredCredential, VoiceConnector};

use crate::repo::{AttendeeInsert, MeetingInsert, Repository, SettingKind, StoreError};

mod numbers;
mod pstn;
mod sma;
mod streaming;
mod tags;

/// Entries kept at most; past this the cache starts over (a flood of lookups for hosts
/// that do not exist cannot grow it).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Connector(String),
    Setting(String, &'static str),
    CredentialUsers(String),
    /// Every carrier (PSTN INVITEs read the list).
    Carriers,
    /// SIP rules by trigger and registered functions (`cache/sma.rs`).
    SipRuleNumber(String),
    SipRuleHost(String),
    Function(String),
}

#[derive(Debug, Clone)]
enum Value {
    Connector(Option<VoiceConnector>),
    Setting(Option<serde_json::Value>),
    CredentialUsers(Vec<String>),
    Carriers(Vec<domain::carrier::Carrier>),
    SipRule(Option<domain::sma::SipRule>),
    Function(Option<domain::sma::FunctionEndpoint>),
}

/// [`Repository`] with the connector configuration cached for `ttl`.
pub struct CachedRepository {
    inner: Arc<dyn Repository>,
    ttl: Duration,
    entries: Mutex<HashMap<Key, (Instant, Value)>>,
    /// Bumped by every write through the cache.
    generation: AtomicU64,
    /// Told of every invalidation by a write through this cache (the cluster bus).
    announce: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl CachedRepository {
    /// Wraps `inner`; `ttl` bounds how long another node's write can go unseen.
    pub fn new(inner: Arc<dyn Repository>, ttl: Duration) -> Self {
        CachedRepository {
            inner,
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            announce: std::sync::OnceLock::new(),
        }
    }

    /// Sets the hook every invalidation by a write through this cache calls (once; a second
    /// hook is ignored).
    pub fn on_invalidate(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.announce.set(hook);
    }

    /// Drops every entry: another node wrote, or its notifications may have been missed.
    pub fn invalidate_all(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn announce(&self) {
        if let Some(hook) = self.announce.get() {
            hook();
        }
    }

    fn lookup(&self, key: &Key) -> Option<Value> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn store(&self, key: Key, value: Value, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // A write went through while we read: our value may predate it.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// Drops the entries of connector `vc_id` (all of them when `only` is None).
    fn invalidate(&self, vc_id: &str, only: Option<&Key>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        match only {
            Some(k) => {
                entries.remove(k);
            }
            None => entries.retain(|k, _| match k {
                Key::Connector(id) | Key::Setting(id, _) | Key::CredentialUsers(id) => id != vc_id,
                Key::Carriers | Key::SipRuleNumber(_) | Key::SipRuleHost(_) | Key::Function(_) => {
                    true
                }
            }),
        }
        drop(entries);
        self.announce();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

#[async_trait]
impl Repository for CachedRepository {
    async fn insert_voice_connector(
        &self,
        vc: &VoiceConnector,
        created_ms: i64,
    ) -> Result<(), StoreError> {
        let r = self.inner.insert_voice_connector(vc, created_ms).await;
        self.invalidate(&vc.voice_connector_id, None);
        r
    }

    async fn get_voice_connector(&self, id: &str) -> Result<Option<VoiceConnector>, StoreError> {
        let key = Key::Connector(id.to_owned());
        if let Some(Value::Connector(v)) = self.lookup(&key) {
            return Ok(v);
        }
        let g = self.generation();
        let v = self.inner.get_voice_connector(id).await?;
        self.store(key, Value::Connector(v.clone()), g);
        Ok(v)
    }

    async fn list_voice_connectors(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VoiceConnector>, StoreError> {
        self.inner.list_voice_connectors(after, limit).await
    }

    async fn update_voice_connector(&self, vc: &VoiceConnector) -> Result<bool, StoreError> {
        let r = self.inner.update_voice_connector(vc).await;
        self.invalidate(&vc.voice_connector_id, None);
        r
    }

    async fn delete_voice_connector(&self, id: &str) -> Result<bool, StoreError> {
        let r = self.inner.delete_voice_connector(id).await;
        self.invalidate(id, None);
        r
    }

    async fn put_setting(
        &self,
        vc_id: &str,
        kind: SettingKind,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let r = self.inner.put_setting(vc_id, kind, body).await;
        self.invalidate(vc_id, Some(&Key::Setting(vc_id.to_owned(), kind.as_str())));
        r
    }

    async fn get_setting(
        &self,
        vc_id: &str,
        kind: SettingKind,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let key = Key::Setting(vc_id.to_owned(), kind.as_str());
        if let Some(Value::Setting(v)) = self.lookup(&key) {
            return Ok(v);
        }
        let g = self.generation();
        let v = self.inner.get_setting(vc_id, kind).await?;
        self.store(key, Value::Setting(v.clone()), g);
        Ok(v)
    }

    async fn delete_setting(&self, vc_id: &str, kind: SettingKind) -> Result<bool, StoreError> {
        let r = self.inner.delete_setting(vc_id, kind).await;
        self.invalidate(vc_id, Some(&Key::Setting(vc_id.to_owned(), kind.as_str())));
        r
    }

    async fn put_credentials(
        &self,
        vc_id: &str,
        creds: &[StoredCredential],
    ) -> Result<(), StoreError> {
        let r = self.inner.put_credentials(vc_id, creds).await;
        self.invalidate(vc_id, Some(&Key::CredentialUsers(vc_id.to_owned())));
        r
    }

    async fn list_credential_usernames(&self, vc_id: &str) -> Result<Vec<String>, StoreError> {
        let key = Key::CredentialUsers(vc_id.to_owned());
        if let Some(Value::CredentialUsers(v)) = self.lookup(&key) {
            return Ok(v);
        }
        let g = self.generation();
        let v = self.inner.list_credential_usernames(vc_id).await?;
        self.store(key, Value::CredentialUsers(v.clone()), g);
        Ok(v)
    }

    async fn get_credential(
        &self,
        vc_id: &str,
        username: &str,
    ) -> Result<Option<StoredCredential>, StoreError> {
        self.inner.get_credential(vc_id, username).await
    }

    async fn delete_credentials(
        &self,
        vc_id: &str,
        usernames: &[String],
    ) -> Result<(), StoreError> {
        let r = self.inner.delete_credentials(vc_id, usernames).await;
        self.invalidate(vc_id, Some(&Key::CredentialUsers(vc_id.to_owned())));
        r
    }

    async fn add_phone_number(&self, n: &PhoneNumber) -> Result<bool, StoreError> {
        self.inner.add_phone_number(n).await
    }

    async fn get_phone_number(&self, id: &str) -> Result<Option<PhoneNumber>, StoreError> {
        self.inner.get_phone_number(id).await
    }

    async fn update_phone_number(&self, n: &PhoneNumber) -> Result<(), StoreError> {
        self.inner.update_phone_number(n).await
    }

    async fn list_phone_numbers(
        &self,
        vc_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PhoneNumber>, StoreError> {
        self.inner.list_phone_numbers(vc_id, after, limit).await
    }

    async fn insert_meeting(&self, m: &MeetingRecord) -> Result<MeetingInsert, StoreError> {
        self.inner.insert_meeting(m).await
    }

    async fn get_meeting(&self, id: &str) -> Result<Option<MeetingRecord>, StoreError> {
        self.inner.get_meeting(id).await
    }

    async fn find_meeting_by_request_token(
        &self,
        token: &str,
    ) -> Result<Option<MeetingRecord>, StoreError> {
        self.inner.find_meeting_by_request_token(token).await
    }

    async fn delete_meeting(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_meeting(id).await
    }

    async fn list_meetings(&self) -> Result<Vec<MeetingRecord>, StoreError> {
        self.inner.list_meetings().await
    }

    async fn touch_meeting_audio(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        self.inner.touch_meeting_audio(id, at_ms).await
    }

    async fn insert_call_record(
        &self,
        id: &str,
        vc_id: &str,
        start_ms: i64,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.inner
            .insert_call_record(id, vc_id, start_ms, body)
            .await
    }

    async fn open_call_record(
        &self,
        id: &str,
        vc_id: &str,
        start_ms: i64,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.inner.open_call_record(id, vc_id, start_ms, body).await
    }

    async fn delete_call_records_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.inner.delete_call_records_before(before_ms).await
    }

    async fn list_call_records(
        &self,
        vc_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        self.inner.list_call_records(vc_id, after, limit).await
    }

    async fn insert_attendee(
        &self,
        a: &AttendeeRecord,
        max_attendees: u32,
    ) -> Result<AttendeeInsert, StoreError> {
        self.inner.insert_attendee(a, max_attendees).await
    }

    async fn get_attendee(
        &self,
        meeting_id: &str,
        attendee_id: &str,
    ) -> Result<Option<AttendeeRecord>, StoreError> {
        self.inner.get_attendee(meeting_id, attendee_id).await
    }

    async fn list_attendees(
        &self,
        meeting_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AttendeeRecord>, StoreError> {
        self.inner.list_attendees(meeting_id, after, limit).await
    }

    async fn delete_attendee(
        &self,
        meeting_id: &str,
        attendee_id: &str,
    ) -> Result<bool, StoreError> {
        self.inner.delete_attendee(meeting_id, attendee_id).await
    }

    async fn find_attendee_by_token_hash(
        &self,
        hash: &str,
    ) -> Result<Option<AttendeeRecord>, StoreError> {
        self.inner.find_attendee_by_token_hash(hash).await
    }

    async fn update_attendee_capabilities(
        &self,
        meeting_id: &str,
        attendee_id: &str,
        caps: &AttendeeCapabilities,
    ) -> Result<bool, StoreError> {
        self.inner
            .update_attendee_capabilities(meeting_id, attendee_id, caps)
            .await
    }

    async fn update_capabilities_except(
        &self,
        meeting_id: &str,
        excluded: &[String],
        caps: &AttendeeCapabilities,
    ) -> Result<Vec<String>, StoreError> {
        self.inner
            .update_capabilities_except(meeting_id, excluded, caps)
            .await
    }
}
