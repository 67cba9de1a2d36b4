//! [`Repository`] on SQLite or PostgreSQL through sqlx's `Any` driver. The SQL is written
//! once, in the subset both dialects share (`$n` parameters, `ON CONFLICT`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use domain::meeting::{AttendeeCapabilities, AttendeeRecord, MeetingRecord};
use domain::voice_connector::{PhoneNumber, StoredCredential, VoiceConnector};
use domain::{ConflictReason, DomainError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::repo::{AttendeeInsert, MeetingInsert, Repository, SettingKind, StoreError};

mod attendees;
use attendees::{AttendeeRow, attendee_from_row, encode_hex, meeting_from_row};
mod carriers;
mod cluster;
mod groups;
mod numbers;
mod records;
mod sma;
pub(crate) mod streaming;
mod tags;
mod writer;

/// The SQL repository.
#[derive(Clone)]
pub struct SqlRepository {
    pool: AnyPool,
    postgres: bool,
    /// Call records go through one writer task that commits them in groups.
    records: tokio::sync::mpsc::Sender<writer::RecordJob>,
}

impl std::fmt::Debug for SqlRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlRepository")
            .field("postgres", &self.postgres)
            .finish()
    }
}

impl SqlRepository {
    /// Opens `sqlite://PATH` (created if missing) or `postgres://…`, then migrates.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let url = if !postgres && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_string()
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 16 } else { 4 })
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is a local file handle that cannot go stale; pinging it
            // before every query only added a round trip to its worker thread (about a
            // third of GetVoiceConnector's cost). PostgreSQL keeps the check: the server
            // may have restarted or dropped an idle connection.
            .test_before_acquire(postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if !postgres {
                        // WAL for concurrent readers; FULL so a commit survives power loss,
                        // not only a crash of this process.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        crate::migrate::run(&pool, postgres).await?;
        let (records, rx) = tokio::sync::mpsc::channel(writer::RECORD_QUEUE);
        // Ends when the last clone of this repository (the last sender) is dropped.
        tokio::spawn(writer::record_writer(pool.clone(), rx));
        Ok(SqlRepository {
            pool,
            postgres,
            records,
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// A write that names a voice connector which no longer exists (deleted concurrently, after
/// the caller looked it up) fails the foreign key: that is the client's NotFound, not a fault.
fn connector_gone(vc_id: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            DomainError::not_found("VoiceConnector", vc_id).into()
        }
        _ => e.into(),
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serializing our own plain structs cannot fail (no maps with non-string keys).
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

fn from_json<T: DeserializeOwned>(
    table: &'static str,
    id: &str,
    body: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        table,
        id: id.to_string(),
        source,
    })
}

macro_rules! attendee_cols {
    () => {
        "id, meeting_id, external_user_id, capabilities, token_nonce, token_hash, created_ms"
    };
}

macro_rules! meeting_cols {
    () => {
        "id, client_request_token, body, created_ms, last_audio_ms"
    };
}

#[async_trait]
impl Repository for SqlRepository {
    async fn insert_voice_connector(
        &self,
        vc: &VoiceConnector,
        created_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO voice_connectors (id, body, created_ms) VALUES ($1, $2, $3)")
            .bind(&vc.voice_connector_id)
            .bind(to_json(vc))
            .bind(created_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_voice_connector(&self, id: &str) -> Result<Option<VoiceConnector>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT body FROM voice_connectors WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b,)| from_json("voice_connectors", id, &b))
            .transpose()
    }

    async fn list_voice_connectors(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VoiceConnector>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, body FROM voice_connectors WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, b)| from_json("voice_connectors", &id, &b))
            .collect()
    }

    async fn update_voice_connector(&self, vc: &VoiceConnector) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE voice_connectors SET body = $1 WHERE id = $2")
            .bind(to_json(vc))
            .bind(&vc.voice_connector_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_voice_connector(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Take the connector row's write lock first, so an association racing this delete
        // either lands before (and we refuse) or finds the connector gone.
        let locked =
            sqlx::query("UPDATE voice_connectors SET created_ms = created_ms WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if locked.rows_affected() == 0 {
            return Ok(false);
        }
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM phone_numbers WHERE vc_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Err(
                DomainError::Conflict(ConflictReason::VoiceConnectorHasNumbers(id.to_string()))
                    .into(),
            );
        }
        if let Some(group) = groups::group_of_connector(&mut tx, id).await? {
            return Err(DomainError::Conflict(ConflictReason::ConnectorInGroup {
                voice_connector: id.to_string(),
                group,
            })
            .into());
        }
        sqlx::query("DELETE FROM vc_settings WHERE vc_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM termination_credentials WHERE vc_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM voice_connectors WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn put_setting(
        &self,
        vc_id: &str,
        kind: SettingKind,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO vc_settings (vc_id, kind, body) VALUES ($1, $2, $3) \
             ON CONFLICT (vc_id, kind) DO UPDATE SET body = excluded.body",
        )
        .bind(vc_id)
        .bind(kind.as_str())
        .bind(body.to_string())
        .execute(&self.pool)
        .await
        .map_err(connector_gone(vc_id))?;
        Ok(())
    }

    async fn get_setting(
        &self,
        vc_id: &str,
        kind: SettingKind,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT body FROM vc_settings WHERE vc_id = $1 AND kind = $2")
                .bind(vc_id)
                .bind(kind.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b,)| from_json("vc_settings", vc_id, &b))
            .transpose()
    }

    async fn delete_setting(&self, vc_id: &str, kind: SettingKind) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM vc_settings WHERE vc_id = $1 AND kind = $2")
            .bind(vc_id)
            .bind(kind.as_str())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn put_credentials(
        &self,
        vc_id: &str,
        creds: &[StoredCredential],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for c in creds {
            sqlx::query(
                "INSERT INTO termination_credentials (vc_id, username, realm, ha1_md5, ha1_sha256) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (vc_id, username) DO UPDATE SET \
                 realm = excluded.realm, ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256",
            )
            .bind(vc_id)
            .bind(&c.username)
            .bind(&c.realm)
            .bind(&c.ha1_md5)
            .bind(&c.ha1_sha256)
            .execute(&mut *tx)
            .await
            .map_err(connector_gone(vc_id))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_credential_usernames(&self, vc_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT username FROM termination_credentials WHERE vc_id = $1 ORDER BY username",
        )
        .bind(vc_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn get_credential(
        &self,
        vc_id: &str,
        username: &str,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let row: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT username, realm, ha1_md5, ha1_sha256 FROM termination_credentials WHERE vc_id = $1 AND username = $2",
        )
        .bind(vc_id)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(username, realm, ha1_md5, ha1_sha256)| StoredCredential {
                username,
                realm,
                ha1_md5,
                ha1_sha256,
            }),
        )
    }

    async fn delete_credentials(
        &self,
        vc_id: &str,
        usernames: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for u in usernames {
            sqlx::query("DELETE FROM termination_credentials WHERE vc_id = $1 AND username = $2")
                .bind(vc_id)
                .bind(u)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_phone_number(&self, n: &PhoneNumber) -> Result<bool, StoreError> {
        let r = sqlx::query("INSERT INTO phone_numbers (id, vc_id, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(&n.phone_number_id)
            .bind(n.voice_connector())
            .bind(to_json(n))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn get_phone_number(&self, id: &str) -> Result<Option<PhoneNumber>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM phone_numbers WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(b,)| from_json("phone_numbers", id, &b))
            .transpose()
    }

    async fn update_phone_number(&self, n: &PhoneNumber) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(vc) = n.voice_connector() {
            // Take the connector row's write lock, as delete_voice_connector does: an
            // association racing a delete either commits first (and the delete refuses) or
            // finds the connector gone, never points a number at a deleted connector.
            let locked =
                sqlx::query("UPDATE voice_connectors SET created_ms = created_ms WHERE id = $1")
                    .bind(vc)
                    .execute(&mut *tx)
                    .await?;
            if locked.rows_affected() == 0 {
                return Err(DomainError::not_found("VoiceConnector", vc).into());
            }
        }
        if let Some(group) = n.voice_connector_group() {
            groups::lock_group(&mut tx, group).await?;
        }
        sqlx::query("UPDATE phone_numbers SET vc_id = $1, body = $2, group_id = $3 WHERE id = $4")
            .bind(n.voice_connector())
            .bind(to_json(n))
            .bind(n.voice_connector_group())
            .bind(&n.phone_number_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_phone_numbers(
        &self,
        vc_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PhoneNumber>, StoreError> {
        let rows: Vec<(String, String)> = match vc_id {
            Some(vc) => {
                sqlx::query_as("SELECT id, body FROM phone_numbers WHERE vc_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                    .bind(vc)
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT id, body FROM phone_numbers WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.into_iter()
            .map(|(id, b)| from_json("phone_numbers", &id, &b))
            .collect()
    }

    async fn insert_meeting(&self, m: &MeetingRecord) -> Result<MeetingInsert, StoreError> {
        // A meeting deleted between our conflict and our read frees the token: try again.
        for _ in 0..3 {
            let r = sqlx::query(
                "INSERT INTO meetings (id, client_request_token, body, created_ms, last_audio_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_request_token) DO NOTHING",
            )
            .bind(&m.meeting.meeting_id)
            .bind(&m.client_request_token)
            .bind(to_json(&m.meeting))
            .bind(m.created_ms)
            .bind(m.last_audio_ms)
            .execute(&self.pool)
            .await?;
            if r.rows_affected() > 0 {
                return Ok(MeetingInsert::Created(m.clone()));
            }
            if let Some(existing) = self
                .find_meeting_by_request_token(&m.client_request_token)
                .await?
            {
                return Ok(MeetingInsert::Existing(existing));
            }
        }
        Err(StoreError::Contention {
            what: "meetings.client_request_token",
        })
    }

    async fn get_meeting(&self, id: &str) -> Result<Option<MeetingRecord>, StoreError> {
        let row = sqlx::query_as(concat!(
            "SELECT ",
            meeting_cols!(),
            " FROM meetings WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(meeting_from_row).transpose()
    }

    async fn find_meeting_by_request_token(
        &self,
        token: &str,
    ) -> Result<Option<MeetingRecord>, StoreError> {
        let row = sqlx::query_as(concat!(
            "SELECT ",
            meeting_cols!(),
            " FROM meetings WHERE client_request_token = $1 LIMIT 1"
        ))
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        row.map(meeting_from_row).transpose()
    }

    async fn delete_meeting(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM attendees WHERE meeting_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM meetings WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    async fn list_meetings(&self) -> Result<Vec<MeetingRecord>, StoreError> {
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(concat!(
            "SELECT ",
            meeting_cols!(),
            " FROM meetings ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(meeting_from_row).collect()
    }

    async fn touch_meeting_audio(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE meetings SET last_audio_ms = $1 WHERE id = $2")
            .bind(at_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_call_record(
        &self,
        id: &str,
        vc_id: &str,
        start_ms: i64,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.record_job(id, vc_id, start_ms, body, false).await
    }

    async fn open_call_record(
        &self,
        id: &str,
        vc_id: &str,
        start_ms: i64,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.record_job(id, vc_id, start_ms, body, true).await
    }

    async fn delete_call_records_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.delete_records_before(before_ms).await
    }

    async fn list_call_records(
        &self,
        vc_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        self.list_records(vc_id, after, limit).await
    }

    async fn insert_attendee(
        &self,
        a: &AttendeeRecord,
        max_attendees: u32,
    ) -> Result<AttendeeInsert, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the meeting row: concurrent inserts into one meeting serialise here, so the
        // count below and the insert after it see the same state.
        let locked = sqlx::query("UPDATE meetings SET created_ms = created_ms WHERE id = $1")
            .bind(&a.meeting_id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Err(DomainError::not_found("Meeting", a.meeting_id.clone()).into());
        }
        let existing: Option<AttendeeRow> = sqlx::query_as(concat!(
            "SELECT ",
            attendee_cols!(),
            " FROM attendees WHERE meeting_id = $1 AND external_user_id = $2"
        ))
        .bind(&a.meeting_id)
        .bind(&a.external_user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok(AttendeeInsert::Existing(attendee_from_row(row)?));
        }
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM attendees WHERE meeting_id = $1")
            .bind(&a.meeting_id)
            .fetch_one(&mut *tx)
            .await?;
        if n >= i64::from(max_attendees) {
            return Err(DomainError::LimitExceeded {
                what: "attendees per meeting",
                limit: max_attendees,
            }
            .into());
        }
        sqlx::query(concat!(
            "INSERT INTO attendees (",
            attendee_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&a.attendee_id)
        .bind(&a.meeting_id)
        .bind(&a.external_user_id)
        .bind(to_json(&a.capabilities))
        .bind(encode_hex(&a.token_nonce))
        .bind(&a.token_hash)
        .bind(a.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AttendeeInsert::Created(a.clone()))
    }

    async fn get_attendee(
        &self,
        meeting_id: &str,
        attendee_id: &str,
    ) -> Result<Option<AttendeeRecord>, StoreError> {
        let row: Option<AttendeeRow> = sqlx::query_as(concat!(
            "SELECT ",
            attendee_cols!(),
            " FROM attendees WHERE meeting_id = $1 AND id = $2"
        ))
        .bind(meeting_id)
        .bind(attendee_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(attendee_from_row).transpose()
    }

    async fn list_attendees(
        &self,
        meeting_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AttendeeRecord>, StoreError> {
        let rows: Vec<AttendeeRow> = sqlx::query_as(concat!(
            "SELECT ",
            attendee_cols!(),
            " FROM attendees WHERE meeting_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(meeting_id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(attendee_from_row).collect()
    }

    async fn delete_attendee(
        &self,
        meeting_id: &str,
        attendee_id: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM attendees WHERE meeting_id = $1 AND id = $2")
            .bind(meeting_id)
            .bind(attendee_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn find_attendee_by_token_hash(
        &self,
        hash: &str,
    ) -> Result<Option<AttendeeRecord>, StoreError> {
        let row: Option<AttendeeRow> = sqlx::query_as(concat!(
            "SELECT ",
            attendee_cols!(),
            " FROM attendees WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        let rec = row.map(attendee_from_row).transpose()?;
        // The index found the row; compare again in constant time so no code path branches
        // on a partial match.
        Ok(rec.filter(|r| domain::token::hashes_equal(&r.token_hash, hash)))
    }

    async fn update_attendee_capabilities(
        &self,
        meeting_id: &str,
        attendee_id: &str,
        caps: &AttendeeCapabilities,
    ) -> Result<bool, StoreError> {
        self.set_capabilities(meeting_id, attendee_id, caps).await
    }

    async fn update_capabilities_except(
        &self,
        meeting_id: &str,
        excluded: &[String],
        caps: &AttendeeCapabilities,
    ) -> Result<Vec<String>, StoreError> {
        self.set_capabilities_except(meeting_id, excluded, caps)
            .await
    }
}
