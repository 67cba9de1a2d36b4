//! Attendee capabilities on SQL: the `capabilities` column holds the AWS shape as JSON.

use domain::meeting::AttendeeCapabilities;

use super::{SqlRepository, to_json};
use crate::StoreError;

impl SqlRepository {
    pub(super) async fn set_capabilities(
        &self,
        meeting_id: &str,
        attendee_id: &str,
        caps: &AttendeeCapabilities,
    ) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE attendees SET capabilities = $1 WHERE meeting_id = $2 AND id = $3")
                .bind(to_json(caps))
                .bind(meeting_id)
                .bind(attendee_id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() > 0)
    }

    pub(super) async fn set_capabilities_except(
        &self,
        meeting_id: &str,
        excluded: &[String],
        caps: &AttendeeCapabilities,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM attendees WHERE meeting_id = $1 ORDER BY id")
                .bind(meeting_id)
                .fetch_all(&mut *tx)
                .await?;
        let json = to_json(caps);
        let mut changed = Vec::new();
        for (id,) in ids.into_iter().filter(|(id,)| !excluded.contains(id)) {
            sqlx::query("UPDATE attendees SET capabilities = $1 WHERE meeting_id = $2 AND id = $3")
                .bind(&json)
                .bind(meeting_id)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            changed.push(id);
        }
        tx.commit().await?;
        Ok(changed)
    }
}
