//! [`NumberOrderRepository`] on SQL: the pool (`number_pool`, one row per number with its
//! search keys) and the orders (`phone_number_orders`, the `PhoneNumberOrder` document).

use async_trait::async_trait;
use domain::voice_connector::PhoneNumber;
use sqlx::Row;

use super::{SqlRepository, from_json, to_json};
use crate::StoreError;
use crate::numbers::{NumberOrderRepository, PoolNumber, PoolSearch};

#[async_trait]
impl NumberOrderRepository for SqlRepository {
    async fn add_pool_number(&self, n: &PoolNumber) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let owned = sqlx::query("SELECT 1 FROM phone_numbers WHERE id = $1")
            .bind(&n.e164)
            .fetch_optional(&mut *tx)
            .await?;
        if owned.is_some() {
            return Ok(false);
        }
        let r = sqlx::query(
            "INSERT INTO number_pool (e164, country, number_type, area_code, state, city) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (e164) DO NOTHING",
        )
        .bind(&n.e164)
        .bind(&n.country)
        .bind(&n.number_type)
        .bind(&n.area_code)
        .bind(&n.state)
        .bind(&n.city)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    async fn search_pool(
        &self,
        q: &PoolSearch,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        // Filters that are not set compare a parameter with itself.
        let rows = sqlx::query(
            "SELECT e164 FROM number_pool WHERE country = $1 \
             AND ($2 = '' OR number_type = $2) \
             AND ($3 = '' OR area_code = $3) \
             AND ($4 = '' OR LOWER(state) = LOWER($4)) \
             AND ($5 = '' OR LOWER(city) = LOWER($5)) \
             AND e164 > $6 ORDER BY e164 LIMIT $7",
        )
        .bind(&q.country)
        .bind(q.number_type.as_deref().unwrap_or(""))
        .bind(q.area_code.as_deref().unwrap_or(""))
        .bind(q.state.as_deref().unwrap_or(""))
        .bind(q.city.as_deref().unwrap_or(""))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn pool_countries(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT country, number_type FROM number_pool ORDER BY country, number_type",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn take_from_pool(&self, numbers: &[PhoneNumber]) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut taken = Vec::with_capacity(numbers.len());
        for n in numbers {
            let r = sqlx::query("DELETE FROM number_pool WHERE e164 = $1")
                .bind(&n.phone_number_id)
                .execute(&mut *tx)
                .await?;
            // A number the inventory already holds (added there after it was pooled) leaves
            // the pool but is not this order's.
            let moved = r.rows_affected() > 0
                && sqlx::query(
                    "INSERT INTO phone_numbers (id, vc_id, body) VALUES ($1, NULL, $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&n.phone_number_id)
                .bind(to_json(n))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
            taken.push(moved);
        }
        tx.commit().await?;
        Ok(taken)
    }

    async fn put_order(
        &self,
        id: &str,
        created_ms: i64,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO phone_number_orders (id, created_ms, body) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
        )
        .bind(id)
        .bind(created_ms)
        .bind(to_json(body))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_order(&self, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT body FROM phone_number_orders WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b,)| from_json("phone_number_orders", id, &b))
            .transpose()
    }

    async fn list_orders(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        // The cursor is the last order's id; its creation time places it.
        let mut since = (i64::MIN, String::new());
        if let Some(after) = after {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT created_ms FROM phone_number_orders WHERE id = $1")
                    .bind(after)
                    .fetch_optional(&self.pool)
                    .await?;
            match row {
                Some((ms,)) => since = (ms, after.to_string()),
                None => return Ok(Vec::new()),
            }
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, body FROM phone_number_orders \
             WHERE created_ms > $1 OR (created_ms = $1 AND id > $2) \
             ORDER BY created_ms, id LIMIT $3",
        )
        .bind(since.0)
        .bind(&since.1)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|(id, b)| from_json("phone_number_orders", id, b))
            .collect()
    }
}
