//! [`TagRepository`] on SQL: one row per (ARN, key).

use async_trait::async_trait;
use domain::DomainError;
use sqlx::Row;

use super::SqlRepository;
use crate::StoreError;
use crate::tags::{MAX_TAGS_PER_RESOURCE, TagRepository};

#[async_trait]
impl TagRepository for SqlRepository {
    async fn list_tags(&self, arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tag_key, tag_value FROM resource_tags WHERE arn = $1 ORDER BY tag_key",
        )
        .bind(arn)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn tag_resource(&self, arn: &str, tags: &[(String, String)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (key, value) in tags {
            sqlx::query(
                "INSERT INTO resource_tags (arn, tag_key, tag_value) VALUES ($1, $2, $3) \
                 ON CONFLICT (arn, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
            )
            .bind(arn)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM resource_tags WHERE arn = $1")
            .bind(arn)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if count > i64::from(MAX_TAGS_PER_RESOURCE) {
            tx.rollback().await?;
            return Err(DomainError::LimitExceeded {
                what: "tags on one resource",
                limit: MAX_TAGS_PER_RESOURCE,
            }
            .into());
        }
        tx.commit().await?;
        Ok(())
    }

    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for key in keys {
            sqlx::query("DELETE FROM resource_tags WHERE arn = $1 AND tag_key = $2")
                .bind(arn)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_tags(&self, arn: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM resource_tags WHERE arn = $1")
            .bind(arn)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
