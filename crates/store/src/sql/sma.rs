//! [`SmaRepository`] on SQL: applications and rules are JSON documents with their keys in
//! columns; a rule has one `sip_rule_targets` row per target (so an application a rule
//! targets cannot be deleted, and the rules of an application are a key lookup).

use async_trait::async_trait;
use domain::sma::{FunctionEndpoint, SipMediaApplication, SipRule};
use domain::{ConflictReason, DomainError};
use sqlx::{Any, Transaction};

use super::{SqlRepository, from_json, to_json};
use crate::StoreError;
use crate::sma::{SmaCallRequest, SmaRepository, SmaSettingKind};

/// Replaces a rule's target rows, refusing (NotFound) an application that does not exist.
/// Each application's row is locked first, as a connector's is for group members, so an
/// application deleted concurrently is either refused there or here.
async fn put_targets(tx: &mut Transaction<'static, Any>, r: &SipRule) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sip_rule_targets WHERE rule_id = $1")
        .bind(&r.sip_rule_id)
        .execute(&mut **tx)
        .await?;
    for t in &r.target_applications {
        let locked =
            sqlx::query("UPDATE sip_media_applications SET created_ms = created_ms WHERE id = $1")
                .bind(&t.sip_media_application_id)
                .execute(&mut **tx)
                .await?;
        if locked.rows_affected() == 0 {
            return Err(DomainError::not_found(
                "SipMediaApplication",
                t.sip_media_application_id.clone(),
            )
            .into());
        }
        sqlx::query("INSERT INTO sip_rule_targets (rule_id, sma_id, priority) VALUES ($1, $2, $3)")
            .bind(&r.sip_rule_id)
            .bind(&t.sip_media_application_id)
            .bind(i64::from(t.priority))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn trigger_taken(r: &SipRule, other: String) -> StoreError {
    DomainError::Conflict(ConflictReason::SipRuleTriggerTaken {
        trigger: format!("{} {}", r.trigger_type.as_str(), r.trigger_value),
        rule: other,
    })
    .into()
}

impl SqlRepository {
    async fn rule_by_trigger(
        &self,
        kind: &str,
        value: &str,
    ) -> Result<Option<SipRule>, StoreError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT id, body FROM sip_rules WHERE trigger_type = $1 AND trigger_value = $2",
        )
        .bind(kind)
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(id, b)| from_json("sip_rules", &id, &b))
            .transpose()
    }
}

fn function_from_row(
    (arn, url, style): (String, String, String),
) -> Result<FunctionEndpoint, StoreError> {
    let style = style.parse().map_err(|_| StoreError::Corrupt {
        table: "sma_functions",
        id: arn.clone(),
        source: serde::de::Error::custom(format!("unknown style {style:?}")),
    })?;
    Ok(FunctionEndpoint {
        lambda_arn: arn,
        url,
        style,
    })
}

type RequestRow = (String, String, String, String, String, i64);

fn request_from_row(
    (id, transaction_id, sma_id, kind, body, created_ms): RequestRow,
) -> Result<SmaCallRequest, StoreError> {
    Ok(SmaCallRequest {
        body: from_json("sma_call_requests", &id, &body)?,
        id,
        transaction_id,
        sip_media_application_id: sma_id,
        kind,
        created_ms,
    })
}

#[async_trait]
impl SmaRepository for SqlRepository {
    async fn insert_sip_media_application(
        &self,
        a: &SipMediaApplication,
        created_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sip_media_applications (id, body, created_ms) VALUES ($1, $2, $3)",
        )
        .bind(&a.sip_media_application_id)
        .bind(to_json(a))
        .bind(created_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_sip_media_application(
        &self,
        id: &str,
    ) -> Result<Option<SipMediaApplication>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT body FROM sip_media_applications WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b,)| from_json("sip_media_applications", id, &b))
            .transpose()
    }

    async fn list_sip_media_applications(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SipMediaApplication>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, body FROM sip_media_applications WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, b)| from_json("sip_media_applications", &id, &b))
            .collect()
    }

    async fn update_sip_media_application(
        &self,
        a: &SipMediaApplication,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE sip_media_applications SET body = $1 WHERE id = $2")
            .bind(to_json(a))
            .bind(&a.sip_media_application_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_sip_media_application(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the row first: a rule naming this application concurrently either commits
        // before (and we refuse) or finds it gone (put_targets refuses).
        let locked =
            sqlx::query("UPDATE sip_media_applications SET created_ms = created_ms WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if locked.rows_affected() == 0 {
            return Ok(false);
        }
        let rule: Option<(String,)> =
            sqlx::query_as("SELECT rule_id FROM sip_rule_targets WHERE sma_id = $1 LIMIT 1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((rule,)) = rule {
            return Err(
                DomainError::Conflict(ConflictReason::SipMediaApplicationInUse {
                    application: id.to_string(),
                    rule,
                })
                .into(),
            );
        }
        sqlx::query("DELETE FROM sma_settings WHERE sma_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sip_media_applications WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn put_sma_setting(
        &self,
        sma_id: &str,
        kind: SmaSettingKind,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sma_settings (sma_id, kind, body) VALUES ($1, $2, $3) \
             ON CONFLICT (sma_id, kind) DO UPDATE SET body = excluded.body",
        )
        .bind(sma_id)
        .bind(kind.as_str())
        .bind(body.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                DomainError::not_found("SipMediaApplication", sma_id).into()
            }
            other => StoreError::from(other),
        })?;
        Ok(())
    }

    async fn get_sma_setting(
        &self,
        sma_id: &str,
        kind: SmaSettingKind,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT body FROM sma_settings WHERE sma_id = $1 AND kind = $2")
                .bind(sma_id)
                .bind(kind.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b,)| from_json("sma_settings", sma_id, &b))
            .transpose()
    }

    async fn insert_sip_rule(&self, r: &SipRule, created_ms: i64) -> Result<(), StoreError> {
        let kind = r.trigger_type.as_str();
        if let Some(other) = self.rule_by_trigger(kind, &r.trigger_value).await? {
            return Err(trigger_taken(r, other.sip_rule_id));
        }
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO sip_rules (id, trigger_type, trigger_value, body, created_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.sip_rule_id)
        .bind(kind)
        .bind(&r.trigger_value)
        .bind(to_json(r))
        .bind(created_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // Another node added a rule with this trigger since the check above.
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(trigger_taken(r, "(just created)".into()));
            }
            Err(e) => return Err(e.into()),
        }
        put_targets(&mut tx, r).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_sip_rule(&self, id: &str) -> Result<Option<SipRule>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM sip_rules WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(b,)| from_json("sip_rules", id, &b)).transpose()
    }

    async fn list_sip_rules(
        &self,
        sma_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SipRule>, StoreError> {
        let after = after.unwrap_or("");
        let rows: Vec<(String, String)> = match sma_id {
            Some(sma) => sqlx::query_as(
                "SELECT r.id, r.body FROM sip_rules r JOIN sip_rule_targets t ON t.rule_id = r.id \
                     WHERE t.sma_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3",
            )
            .bind(sma)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query_as("SELECT id, body FROM sip_rules WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.into_iter()
            .map(|(id, b)| from_json("sip_rules", &id, &b))
            .collect()
    }

    async fn update_sip_rule(&self, r: &SipRule) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query("UPDATE sip_rules SET body = $1 WHERE id = $2")
            .bind(to_json(r))
            .bind(&r.sip_rule_id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        put_targets(&mut tx, r).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_sip_rule(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the row, then read it: an update enabling it concurrently lands before
        // (and we refuse) or after the delete (and finds nothing).
        let locked = sqlx::query("UPDATE sip_rules SET created_ms = created_ms WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Ok(false);
        }
        let (body,): (String,) = sqlx::query_as("SELECT body FROM sip_rules WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let rule: SipRule = from_json("sip_rules", id, &body)?;
        if !rule.disabled {
            return Err(
                DomainError::Conflict(ConflictReason::SipRuleEnabled(id.to_string())).into(),
            );
        }
        sqlx::query("DELETE FROM sip_rule_targets WHERE rule_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sip_rules WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn sip_rule_for_number(&self, e164: &str) -> Result<Option<SipRule>, StoreError> {
        self.rule_by_trigger("ToPhoneNumber", e164).await
    }

    async fn sip_rule_for_host(&self, host: &str) -> Result<Option<SipRule>, StoreError> {
        self.rule_by_trigger("RequestUriHostname", &host.to_ascii_lowercase())
            .await
    }

    async fn put_function(&self, f: &FunctionEndpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sma_functions (lambda_arn, url, style, updated_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (lambda_arn) DO UPDATE SET url = excluded.url, style = excluded.style, \
             updated_ms = excluded.updated_ms",
        )
        .bind(&f.lambda_arn)
        .bind(&f.url)
        .bind(f.style.as_str())
        .bind(domain::timestamp::now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn function(&self, lambda_arn: &str) -> Result<Option<FunctionEndpoint>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT lambda_arn, url, style FROM sma_functions WHERE lambda_arn = $1",
        )
        .bind(lambda_arn)
        .fetch_optional(&self.pool)
        .await?;
        row.map(function_from_row).transpose()
    }

    async fn list_functions(&self) -> Result<Vec<FunctionEndpoint>, StoreError> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT lambda_arn, url, style FROM sma_functions ORDER BY lambda_arn")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(function_from_row).collect()
    }

    async fn delete_function(&self, lambda_arn: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM sma_functions WHERE lambda_arn = $1")
            .bind(lambda_arn)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn insert_sma_call_request(&self, r: &SmaCallRequest) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sma_call_requests (id, transaction_id, sma_id, kind, body, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&r.id)
        .bind(&r.transaction_id)
        .bind(&r.sip_media_application_id)
        .bind(&r.kind)
        .bind(r.body.to_string())
        .bind(r.created_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn sma_transaction_known(
        &self,
        sma_id: &str,
        transaction_id: &str,
    ) -> Result<bool, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM sma_call_requests WHERE transaction_id = $1 AND sma_id = $2 LIMIT 1",
        )
        .bind(transaction_id)
        .bind(sma_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn take_sma_call_requests(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<SmaCallRequest>, StoreError> {
        let rows: Vec<RequestRow> = sqlx::query_as(
            "SELECT id, transaction_id, sma_id, kind, body, created_ms FROM sma_call_requests \
             WHERE taken_ms IS NULL ORDER BY created_ms, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut taken = Vec::with_capacity(rows.len());
        for row in rows {
            // Only the node whose update changes the row hands the request out.
            let r = sqlx::query(
                "UPDATE sma_call_requests SET taken_ms = $1 WHERE id = $2 AND taken_ms IS NULL",
            )
            .bind(now_ms)
            .bind(&row.0)
            .execute(&self.pool)
            .await?;
            if r.rows_affected() == 1 {
                taken.push(request_from_row(row)?);
            }
        }
        Ok(taken)
    }
}
