//! Call records in SQL: the group-commit writer every call's record goes through, the
//! retention sweep's batched deletes, and the admin listing.

use std::sync::Arc;

use sqlx::AnyPool;

use super::{SqlRepository, from_json, records};
use crate::repo::StoreError;

/// One call record waiting for its group's commit.
pub(super) struct RecordJob {
    id: String,
    vc_id: String,
    start_ms: i64,
    body: String,
    /// Its PSTN fields, as columns.
    columns: records::RecordColumns,
    /// An open record (at answer): it never replaces a stored one.
    open: bool,
    done: tokio::sync::oneshot::Sender<Result<(), Arc<sqlx::Error>>>,
}

/// Most call records committed in one transaction.
const RECORD_BATCH: usize = 256;
/// Call records queued for the writer before `insert_call_record` waits for room.
pub(super) const RECORD_QUEUE: usize = 4096;

/// Call records deleted per statement by the retention sweep: short transactions, so the
/// sweep never holds SQLite's write lock (or a long PostgreSQL transaction) for long.
const DELETE_BATCH: u64 = 5000;

/// Group commit for call records: every call ends with one, and a commit costs an fsync
/// (SQLite `synchronous=FULL`, PostgreSQL's WAL flush). The writer takes whatever records
/// are queued when it is free (up to [`RECORD_BATCH`]), stores them in one transaction and
/// then answers each caller, so `insert_call_record` still returns only once its record is
/// durable, while a burst of call ends costs one fsync instead of one each.
pub(super) async fn record_writer(pool: AnyPool, mut rx: tokio::sync::mpsc::Receiver<RecordJob>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match write_records(&pool, &batch).await {
            Ok(()) => {
                for job in batch {
                    let _ = job.done.send(Ok(()));
                }
            }
            // One record must not sink the others: store each on its own.
            Err(_) => {
                for job in batch {
                    let r = write_records(&pool, std::slice::from_ref(&job)).await;
                    let _ = job.done.send(r.map_err(Arc::new));
                }
            }
        }
    }
}

async fn write_records(pool: &AnyPool, batch: &[RecordJob]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for job in batch {
        let q = sqlx::query(if job.open {
            records::OPEN_RECORD
        } else {
            records::INSERT_RECORD
        })
        .bind(job.id.as_str())
        .bind(job.vc_id.as_str())
        .bind(job.start_ms)
        .bind(job.body.as_str());
        job.columns.bind(q).execute(&mut *tx).await?;
    }
    tx.commit().await
}

impl SqlRepository {
    /// Queues a call record for the group-commit writer and waits until it is durable.
    pub(super) async fn record_job(
        &self,
        id: &str,
        vc_id: &str,
        start_ms: i64,
        body: &serde_json::Value,
        open: bool,
    ) -> Result<(), StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job = RecordJob {
            id: id.to_owned(),
            vc_id: vc_id.to_owned(),
            start_ms,
            body: body.to_string(),
            columns: records::RecordColumns::of(body),
            open,
            done,
        };
        self.records
            .send(job)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        result
            .await
            .map_err(|_| StoreError::WriterGone)?
            .map_err(|source| StoreError::GroupCommit { source })
    }

    pub(super) async fn delete_records_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM call_records WHERE id IN \
                 (SELECT id FROM call_records WHERE start_ms < $1 LIMIT $2)",
            )
            .bind(before_ms)
            .bind(DELETE_BATCH as i64)
            .execute(&self.pool)
            .await?
            .rows_affected();
            deleted += done;
            if done < DELETE_BATCH {
                return Ok(deleted);
            }
        }
    }

    pub(super) async fn list_records(
        &self,
        vc_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows: Vec<(String, String)> = match vc_id {
            Some(vc) => {
                sqlx::query_as("SELECT id, body FROM call_records WHERE vc_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                    .bind(vc)
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT id, body FROM call_records WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.into_iter()
            .map(|(id, b)| from_json("call_records", &id, &b))
            .collect()
    }
}
