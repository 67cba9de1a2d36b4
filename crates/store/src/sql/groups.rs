//! [`GroupRepository`] on SQL: a group is a JSON document plus one member row per voice
//! connector (so a connector's membership is a key lookup, and a member must exist).

use async_trait::async_trait;
use domain::group::VoiceConnectorGroup;
use domain::voice_connector::{NumberRoute, PhoneNumber};
use domain::{ConflictReason, DomainError};
use sqlx::{Any, Transaction};

use super::{SqlRepository, from_json, to_json};
use crate::StoreError;
use crate::pstn::GroupRepository;

/// Replaces a group's member rows, refusing (NotFound) a connector that does not exist.
/// Each member connector's row is locked first, as phone-number association does, so a
/// connector deleted concurrently is either refused there or here.
async fn put_members(
    tx: &mut Transaction<'static, Any>,
    g: &VoiceConnectorGroup,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM vc_group_members WHERE group_id = $1")
        .bind(&g.voice_connector_group_id)
        .execute(&mut **tx)
        .await?;
    for item in &g.voice_connector_items {
        let locked =
            sqlx::query("UPDATE voice_connectors SET created_ms = created_ms WHERE id = $1")
                .bind(&item.voice_connector_id)
                .execute(&mut **tx)
                .await?;
        if locked.rows_affected() == 0 {
            return Err(
                DomainError::not_found("VoiceConnector", item.voice_connector_id.clone()).into(),
            );
        }
        sqlx::query("INSERT INTO vc_group_members (group_id, vc_id, priority) VALUES ($1, $2, $3)")
            .bind(&g.voice_connector_group_id)
            .bind(&item.voice_connector_id)
            .bind(i64::from(item.priority))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl GroupRepository for SqlRepository {
    async fn insert_voice_connector_group(
        &self,
        g: &VoiceConnectorGroup,
        created_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO vc_groups (id, body, created_ms) VALUES ($1, $2, $3)")
            .bind(&g.voice_connector_group_id)
            .bind(to_json(g))
            .bind(created_ms)
            .execute(&mut *tx)
            .await?;
        put_members(&mut tx, g).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_voice_connector_group(
        &self,
        id: &str,
    ) -> Result<Option<VoiceConnectorGroup>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM vc_groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(b,)| from_json("vc_groups", id, &b)).transpose()
    }

    async fn list_voice_connector_groups(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VoiceConnectorGroup>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, body FROM vc_groups WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(id, b)| from_json("vc_groups", &id, &b))
            .collect()
    }

    async fn update_voice_connector_group(
        &self,
        g: &VoiceConnectorGroup,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE vc_groups SET body = $1 WHERE id = $2")
            .bind(to_json(g))
            .bind(&g.voice_connector_group_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        put_members(&mut tx, g).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_voice_connector_group(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the group row first, as delete_voice_connector does for connectors: an
        // association racing this delete lands before (and we refuse) or finds it gone.
        let locked = sqlx::query("UPDATE vc_groups SET created_ms = created_ms WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Ok(false);
        }
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM phone_numbers WHERE group_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Err(
                DomainError::Conflict(ConflictReason::GroupHasNumbers(id.to_string())).into(),
            );
        }
        sqlx::query("DELETE FROM vc_group_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM vc_groups WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn phone_number_route(&self, e164: &str) -> Result<Option<NumberRoute>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM phone_numbers WHERE id = $1")
            .bind(e164)
            .fetch_optional(&self.pool)
            .await?;
        let number: Option<PhoneNumber> = row
            .map(|(b,)| from_json("phone_numbers", e164, &b))
            .transpose()?;
        Ok(number.and_then(|n| n.route()))
    }

    async fn list_group_phone_numbers(
        &self,
        group_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PhoneNumber>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, body FROM phone_numbers WHERE group_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(group_id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, b)| from_json("phone_numbers", &id, &b))
            .collect()
    }

    async fn get_account_setting(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT body FROM account_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b,)| from_json("account_settings", name, &b))
            .transpose()
    }

    async fn put_account_setting(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO account_settings (name, body) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        )
        .bind(name)
        .bind(body.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The group a connector belongs to, if any (for refusing its deletion).
pub(super) async fn group_of_connector(
    tx: &mut Transaction<'static, Any>,
    vc_id: &str,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT group_id FROM vc_group_members WHERE vc_id = $1 LIMIT 1")
            .bind(vc_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(g,)| g))
}

/// Locks the group row a number is being associated with; NotFound when it is gone.
pub(super) async fn lock_group(
    tx: &mut Transaction<'static, Any>,
    group_id: &str,
) -> Result<(), StoreError> {
    let locked = sqlx::query("UPDATE vc_groups SET created_ms = created_ms WHERE id = $1")
        .bind(group_id)
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(DomainError::not_found("VoiceConnectorGroup", group_id).into());
    }
    Ok(())
}
