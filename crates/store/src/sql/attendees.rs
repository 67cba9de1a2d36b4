//! Attendee and meeting rows on SQL: rows to records (the token nonce as hex), and
//! attendee capabilities (the `capabilities` column holds the AWS shape as JSON).

use domain::meeting::{AttendeeCapabilities, AttendeeRecord, Meeting, MeetingRecord};

use super::{SqlRepository, from_json, to_json};
use crate::StoreError;

pub(super) type AttendeeRow = (String, String, String, String, String, String, i64);

pub(super) fn attendee_from_row(r: AttendeeRow) -> Result<AttendeeRecord, StoreError> {
    let (id, meeting_id, external_user_id, caps, nonce_hex, token_hash, created_ms) = r;
    let capabilities: AttendeeCapabilities = from_json("attendees", &id, &caps)?;
    let mut token_nonce = [0u8; 16];
    let bytes = decode_hex(&nonce_hex)
        .filter(|b| b.len() == 16)
        .ok_or_else(|| StoreError::Corrupt {
            table: "attendees",
            id: id.clone(),
            source: serde::de::Error::custom("token nonce is not 16 hex bytes"),
        })?;
    token_nonce.copy_from_slice(&bytes);
    Ok(AttendeeRecord {
        meeting_id,
        attendee_id: id,
        external_user_id,
        capabilities,
        token_nonce,
        token_hash,
        created_ms,
    })
}

pub(super) fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(super) fn meeting_from_row(
    r: (String, String, String, i64, i64),
) -> Result<MeetingRecord, StoreError> {
    let (id, crt, body, created_ms, last_audio_ms) = r;
    let meeting: Meeting = from_json("meetings", &id, &body)?;
    Ok(MeetingRecord {
        meeting,
        client_request_token: crt,
        created_ms,
        last_audio_ms,
    })
}

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
