//! The node registry, meeting placement and NOTIFY on SQL (`crate::cluster`).

use async_trait::async_trait;

use super::SqlRepository;
use crate::StoreError;
use crate::cluster::{ClusterRepository, Node, NodeInfo};

type NodeRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

impl SqlRepository {
    /// `pg_notify(channel, payload)` on PostgreSQL; nothing on SQLite (one node).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ClusterRepository for SqlRepository {
    async fn heartbeat(
        &self,
        n: &NodeInfo,
        started_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, advertise_sip, advertise_http, media_ip, started_ms, \
             heartbeat_ms, legs, meetings, cpu_permille, draining) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET advertise_sip = $2, advertise_http = $3, \
             media_ip = $4, started_ms = $5, heartbeat_ms = $6, legs = $7, meetings = $8, \
             cpu_permille = $9, draining = $10",
        )
        .bind(&n.id)
        .bind(n.advertise_sip.as_deref())
        .bind(n.advertise_http.as_deref())
        .bind(n.media_ip.as_deref())
        .bind(started_ms)
        .bind(now_ms)
        .bind(n.legs)
        .bind(n.meetings)
        .bind(n.cpu_permille)
        .bind(i64::from(n.draining))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_nodes(&self) -> Result<Vec<Node>, StoreError> {
        let rows: Vec<NodeRow> = sqlx::query_as(
            "SELECT id, advertise_sip, advertise_http, media_ip, started_ms, heartbeat_ms, \
             legs, meetings, cpu_permille, draining FROM nodes ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, sip, http, media, started_ms, heartbeat_ms, legs, meetings, cpu, d)| Node {
                    info: NodeInfo {
                        id,
                        advertise_sip: sip,
                        advertise_http: http,
                        media_ip: media,
                        legs,
                        meetings,
                        cpu_permille: cpu,
                        draining: d != 0,
                    },
                    started_ms,
                    heartbeat_ms,
                },
            )
            .collect())
    }

    async fn forget_nodes(&self, before_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM nodes WHERE heartbeat_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn meeting_node(&self, meeting_id: &str) -> Result<Option<Option<String>>, StoreError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT node_id FROM meetings WHERE id = $1")
                .bind(meeting_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(n,)| n))
    }

    async fn claim_meeting(
        &self,
        meeting_id: &str,
        prev: Option<&str>,
        node: &str,
    ) -> Result<bool, StoreError> {
        // A compare-and-set: of two nodes that read the same `prev`, the second finds the
        // row changed (PostgreSQL re-checks the WHERE on the row the first one committed).
        let r = match prev {
            None => {
                sqlx::query("UPDATE meetings SET node_id = $1 WHERE id = $2 AND node_id IS NULL")
                    .bind(node)
                    .bind(meeting_id)
                    .execute(&self.pool)
                    .await?
            }
            Some(p) => {
                sqlx::query("UPDATE meetings SET node_id = $1 WHERE id = $2 AND node_id = $3")
                    .bind(node)
                    .bind(meeting_id)
                    .bind(p)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(r.rows_affected() > 0)
    }
}
