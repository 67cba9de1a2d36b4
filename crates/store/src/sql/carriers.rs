//! [`CarrierRepository`] on SQL: one row per carrier (name unique, the rest a JSON
//! document), one row of keep-alive status and one of registration status per carrier
//! name.

use async_trait::async_trait;
use domain::carrier::{Carrier, CarrierRegistration, CarrierStatus, RegistrationState};
use domain::{ConflictReason, DomainError};

use super::{SqlRepository, from_json, to_json};
use crate::StoreError;
use crate::pstn::CarrierRepository;

fn name_taken(name: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            DomainError::Conflict(ConflictReason::CarrierExists(name.to_string())).into()
        }
        _ => e.into(),
    }
}

#[async_trait]
impl CarrierRepository for SqlRepository {
    async fn list_carriers(&self) -> Result<Vec<Carrier>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, body FROM carriers ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(name, b)| from_json("carriers", &name, &b))
            .collect()
    }

    async fn carrier(&self, name: &str) -> Result<Option<Carrier>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM carriers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(b,)| from_json("carriers", name, &b)).transpose()
    }

    async fn insert_carrier(&self, c: &Carrier) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO carriers (id, name, body, updated_ms) VALUES ($1, $2, $3, $4)")
            .bind(&c.id)
            .bind(&c.name)
            .bind(to_json(c))
            .bind(domain::timestamp::now_millis())
            .execute(&self.pool)
            .await
            .map_err(name_taken(&c.name))?;
        Ok(())
    }

    async fn update_carrier(&self, c: &Carrier) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM carriers WHERE name = $1")
            .bind(&c.name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((id,)) = row else {
            return Ok(false);
        };
        let mut kept = c.clone();
        kept.id = id;
        sqlx::query("UPDATE carriers SET body = $1, updated_ms = $2 WHERE name = $3")
            .bind(to_json(&kept))
            .bind(domain::timestamp::now_millis())
            .bind(&c.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn put_carrier(&self, c: &Carrier) -> Result<(), StoreError> {
        if self.update_carrier(c).await? {
            return Ok(());
        }
        self.insert_carrier(c).await
    }

    async fn delete_carrier(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM carrier_status WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM carrier_registration WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM carriers WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    async fn put_carrier_status(&self, s: &CarrierStatus) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO carrier_status (name, up, last_options_ms, last_status) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET up = excluded.up, \
             last_options_ms = excluded.last_options_ms, last_status = excluded.last_status",
        )
        .bind(&s.carrier)
        .bind(i64::from(s.up))
        .bind(s.last_options_ms)
        .bind(s.last_status.map(i64::from))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_carrier_status(&self) -> Result<Vec<CarrierStatus>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT name, up, last_options_ms, last_status FROM carrier_status ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(carrier, up, last_options_ms, last_status)| CarrierStatus {
                    carrier,
                    up: up != 0,
                    last_options_ms,
                    last_status: last_status.and_then(|s| u16::try_from(s).ok()),
                },
            )
            .collect())
    }

    async fn put_carrier_registration(&self, r: &CarrierRegistration) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO carrier_registration (name, state, last_status, expires_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET state = excluded.state, \
             last_status = excluded.last_status, expires_ms = excluded.expires_ms, \
             updated_ms = excluded.updated_ms",
        )
        .bind(&r.carrier)
        .bind(r.state.as_str())
        .bind(r.last_status.map(i64::from))
        .bind(r.expires_ms)
        .bind(r.updated_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_carrier_registrations(&self) -> Result<Vec<CarrierRegistration>, StoreError> {
        let rows: Vec<(String, String, Option<i64>, Option<i64>, i64)> = sqlx::query_as(
            "SELECT name, state, last_status, expires_ms, updated_ms FROM carrier_registration \
             ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(carrier, state, last_status, expires_ms, updated_ms)| {
                Some(CarrierRegistration {
                    carrier,
                    state: RegistrationState::parse(&state)?,
                    last_status: last_status.and_then(|s| u16::try_from(s).ok()),
                    expires_ms,
                    updated_ms,
                })
            })
            .collect())
    }
}
