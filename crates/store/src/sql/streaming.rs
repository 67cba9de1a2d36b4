//! Where calls' audio is streamed: one row per voice connector, and the default row (`*`)
//! for connectors without one (`voice-connector admin streaming`). A supertrait of
//! [`Repository`](crate::Repository), so the server reads it for every call it streams.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlRepository;
use crate::StoreError;

/// The voice connector id under which the default target is stored.
pub const DEFAULT_TARGET: &str = "*";

/// Where one connector's streams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTarget {
    /// `ws://` or `wss://`.
    pub url: String,
    /// Audio the socket sends back is played to the caller.
    pub bidirectional: bool,
    /// Where streaming status events are POSTed, if anywhere.
    pub notify_url: Option<String>,
}

/// Stream targets by voice connector id ([`DEFAULT_TARGET`] for the default).
#[async_trait]
pub trait StreamingRepository: Send + Sync {
    /// Sets (or replaces) the target of `vc_id`.
    async fn put_stream_target(
        &self,
        vc_id: &str,
        target: &StreamTarget,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// The target stored under `vc_id` (the default is not consulted).
    async fn get_stream_target(&self, vc_id: &str) -> Result<Option<StreamTarget>, StoreError>;
    /// Removes the target of `vc_id`; false when there was none.
    async fn delete_stream_target(&self, vc_id: &str) -> Result<bool, StoreError>;
    /// The target of `vc_id`, or else the default.
    async fn stream_target_for(&self, vc_id: &str) -> Result<Option<StreamTarget>, StoreError> {
        match self.get_stream_target(vc_id).await? {
            Some(t) => Ok(Some(t)),
            None => self.get_stream_target(DEFAULT_TARGET).await,
        }
    }
}

#[async_trait]
impl StreamingRepository for SqlRepository {
    async fn put_stream_target(
        &self,
        vc_id: &str,
        target: &StreamTarget,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO streaming_targets (vc_id, url, bidirectional, notify_url, updated_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (vc_id) DO UPDATE SET url = excluded.url, \
             bidirectional = excluded.bidirectional, notify_url = excluded.notify_url, \
             updated_ms = excluded.updated_ms",
        )
        .bind(vc_id)
        .bind(&target.url)
        .bind(i64::from(target.bidirectional))
        .bind(target.notify_url.as_deref())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_stream_target(&self, vc_id: &str) -> Result<Option<StreamTarget>, StoreError> {
        let row = sqlx::query(
            "SELECT url, bidirectional, notify_url FROM streaming_targets WHERE vc_id = $1",
        )
        .bind(vc_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(StreamTarget {
            url: r.try_get(0)?,
            bidirectional: r.try_get::<i64, _>(1)? != 0,
            notify_url: r.try_get(2)?,
        }))
    }

    async fn delete_stream_target(&self, vc_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM streaming_targets WHERE vc_id = $1")
            .bind(vc_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
