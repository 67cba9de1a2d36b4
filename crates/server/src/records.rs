//! Call records: what is known of a call when it is admitted ([`CdrSeed`]), and the writer
//! task that stores finished records, retrying so that none is lost.

use std::sync::Arc;

use sip::{Peer, Request};
use tokio::sync::mpsc;

use domain::call_record::CallRecord;

/// Records waiting for the writer.
const QUEUE: usize = 4096;

/// The parts of a call record known when the call is admitted.
#[derive(Clone, Debug)]
pub struct CdrSeed {
    pub transaction_id: String,
    pub call_id: String,
    pub voice_connector_id: String,
    pub source_phone_number: String,
    pub destination_phone_number: String,
    pub source_address: String,
    pub transport: String,
    pub start_ms: i64,
}

impl CdrSeed {
    pub fn from_invite(vc_id: &str, invite: &Request, peer: &Peer) -> Self {
        let user = |na: Option<sip::NameAddr<'_>>| {
            na.and_then(|n| n.uri.user_decoded().map(|u| u.into_owned()))
                .unwrap_or_default()
        };
        CdrSeed {
            transaction_id: uuid::Uuid::new_v4().to_string(),
            call_id: invite
                .headers
                .get(sip::HeaderName::CallId)
                .unwrap_or_default()
                .to_string(),
            voice_connector_id: vc_id.to_string(),
            source_phone_number: user(invite.headers.from()),
            destination_phone_number: invite
                .uri
                .user()
                .map(|u| String::from_utf8_lossy(&sip::percent_decode(u)).into_owned())
                .unwrap_or_default(),
            source_address: peer.remote.to_string(),
            transport: format!("{:?}", peer.transport).to_ascii_uppercase(),
            start_ms: domain::timestamp::now_millis(),
        }
    }

    /// The finished record.
    pub fn finish(&self, status: &str, status_code: u16, reason: Option<String>) -> CallRecord {
        let end = domain::timestamp::now_millis();
        CallRecord {
            transaction_id: self.transaction_id.clone(),
            call_id: self.call_id.clone(),
            voice_connector_id: self.voice_connector_id.clone(),
            status: status.to_string(),
            status_code,
            reason,
            source_phone_number: self.source_phone_number.clone(),
            destination_phone_number: self.destination_phone_number.clone(),
            direction: "Outbound".to_string(),
            source_address: self.source_address.clone(),
            transport: self.transport.clone(),
            start_time: domain::timestamp::iso8601(self.start_ms),
            end_time: domain::timestamp::iso8601(end),
            duration_seconds: ((end - self.start_ms).max(0) / 1000) as u64,
            meeting_id: None,
            attendee_id: None,
            codec: None,
            srtp_suite: None,
            media: None,
        }
    }
}

/// Hands records to the writer task.
#[derive(Clone)]
pub struct RecordWriter {
    tx: mpsc::Sender<(CallRecord, i64)>,
}

impl RecordWriter {
    /// Starts the writer task.
    pub fn start(repo: Arc<dyn store::Repository>) -> Self {
        let (tx, mut rx) = mpsc::channel::<(CallRecord, i64)>(QUEUE);
        tokio::spawn(async move {
            while let Some((rec, start_ms)) = rx.recv().await {
                let repo = repo.clone();
                // The store groups concurrent records into one transaction: keep many in
                // flight.
                tokio::spawn(async move { store(&repo, rec, start_ms).await });
            }
        });
        RecordWriter { tx }
    }

    /// Queues a record; waits while the queue is full (a record is never dropped).
    pub async fn write(&self, rec: CallRecord, start_ms: i64) {
        if let Err(mpsc::error::SendError((rec, _))) = self.tx.send((rec, start_ms)).await {
            let doc = serde_json::to_string(&rec).unwrap_or_default();
            tracing::error!(record = %doc, "call-record writer is gone; the record is in this log line instead");
        }
    }
}

/// Writes a call record, retrying a few times: a record is never dropped silently.
async fn store(repo: &Arc<dyn store::Repository>, rec: CallRecord, start_ms: i64) {
    let Ok(doc) = serde_json::to_value(&rec) else {
        return;
    };
    for attempt in 0..5u32 {
        match repo
            .insert_call_record(&rec.transaction_id, &rec.voice_connector_id, start_ms, &doc)
            .await
        {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(transaction = %rec.transaction_id, attempt, error = %e, "storing the call record failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    tracing::error!(record = %doc, "call record could not be stored; it is in this log line instead");
}
