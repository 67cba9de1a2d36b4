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
    /// `Outbound` (a PBX's call into the service: joins, termination) or `Inbound` (a
    /// carrier's call to a PBX: origination).
    pub direction: &'static str,
    /// When the call was answered (Unix ms), for BillableDurationSeconds.
    pub answered_ms: Option<i64>,
    /// The carrier or origination route that took a PSTN call, and every attempt.
    pub carrier: Option<String>,
    pub attempts: Vec<domain::call_record::Attempt>,
    /// A SIP media application's leg.
    pub sma: Option<SmaSeed>,
}

/// What a SIP media application's leg adds to its record (AWS's SMA record fields).
#[derive(Clone, Debug)]
pub struct SmaSeed {
    pub sip_application_id: String,
    pub sip_rule_id: Option<String>,
    /// `ToPhoneNumber`, `RequestUriHostname`, `CreateSipMediaApplicationCall`, `CallAndBridge`.
    pub trigger: &'static str,
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
            direction: "Outbound",
            answered_ms: None,
            carrier: None,
            attempts: Vec::new(),
            sma: None,
        }
    }

    /// The record of a call just answered: `InProgress`, no end time yet.
    pub fn open(&self, status_code: u16) -> CallRecord {
        let mut rec = self.finish("InProgress", status_code, None);
        rec.end_time = String::new();
        rec.duration_seconds = 0;
        rec.end_time_epoch_seconds = 0;
        rec.billable_duration_seconds = 0;
        rec
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
            reason: reason.clone(),
            source_phone_number: self.source_phone_number.clone(),
            destination_phone_number: self.destination_phone_number.clone(),
            direction: self.direction.to_string(),
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
            status_message: reason,
            billable_duration_seconds: self
                .answered_ms
                .map(|a| ((end - a).max(0) as u64).div_ceil(1000))
                .unwrap_or(0),
            source_country: domain::voice_connector::country_of(&self.source_phone_number),
            destination_country: domain::voice_connector::country_of(
                &self.destination_phone_number,
            ),
            start_time_epoch_seconds: self.start_ms / 1000,
            end_time_epoch_seconds: end / 1000,
            carrier: self.carrier.clone(),
            attempts: self.attempts.clone(),
            sip_application_id: self.sma.as_ref().map(|s| s.sip_application_id.clone()),
            sip_rule_id: self.sma.as_ref().and_then(|s| s.sip_rule_id.clone()),
            call_leg_trigger_type: self.sma.as_ref().map(|s| s.trigger.to_string()),
        }
    }
}

/// Hands records to the writer task.
#[derive(Clone)]
pub struct RecordWriter {
    tx: mpsc::Sender<Job>,
    /// Records queued or being stored, so a shutdown can wait for them.
    pending: Arc<Pending>,
    /// Where final records are shipped too (the CDR bucket), once set.
    export: Arc<std::sync::OnceLock<crate::cdr_export::CdrExport>>,
}

struct Job {
    rec: CallRecord,
    start_ms: i64,
    /// The open record written at answer (never replaces the final one).
    open: bool,
}

#[derive(Default)]
struct Pending {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// See [`RecordWriter::hold`].
pub struct Hold(Arc<Pending>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.done();
    }
}

impl Pending {
    fn done(&self) {
        if self.count.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl RecordWriter {
    /// Starts the writer task.
    pub fn start(repo: Arc<dyn store::Repository>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let pending = Arc::new(Pending::default());
        let p = pending.clone();
        let export = Arc::new(std::sync::OnceLock::new());
        let e = export.clone();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let repo = repo.clone();
                let (p, e) = (p.clone(), e.clone());
                // The store groups concurrent records into one transaction: keep many in
                // flight.
                tokio::spawn(async move {
                    store(&repo, job, e.get()).await;
                    p.done();
                });
            }
        });
        RecordWriter {
            tx,
            pending,
            export,
        }
    }

    /// Ships every final record to the CDR bucket too (`cdr_export`).
    pub fn export_to(&self, export: crate::cdr_export::CdrExport) {
        let _ = self.export.set(export);
    }

    /// Queues a call's final record; waits while the queue is full (a record is never
    /// dropped).
    pub async fn write(&self, rec: CallRecord, start_ms: i64) {
        self.queue(Job {
            rec,
            start_ms,
            open: false,
        })
        .await
    }

    /// Queues the open record of a call just answered, so that a crash still leaves one.
    pub async fn open(&self, rec: CallRecord, start_ms: i64) {
        self.queue(Job {
            rec,
            start_ms,
            open: true,
        })
        .await
    }

    async fn queue(&self, job: Job) {
        self.pending
            .count
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job).await {
            self.pending.done();
            let doc = serde_json::to_string(&job.rec).unwrap_or_default();
            tracing::error!(record = %doc, "call-record writer is gone; the record is in this log line instead");
        }
    }

    /// Counts as a record on its way until dropped: a task that will write a record takes
    /// one before it is spawned, so [`Self::flush`] waits for it too.
    pub fn hold(&self) -> Hold {
        self.pending
            .count
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Hold(self.pending.clone())
    }

    /// Waits until every queued record is stored (or `limit` passes); true when none is left.
    pub async fn flush(&self, limit: std::time::Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.pending.idle.notified();
                if self
                    .pending
                    .count
                    .load(std::sync::atomic::Ordering::Acquire)
                    == 0
                {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// Writes a call record, retrying a few times: a record is never dropped silently.
async fn store(
    repo: &Arc<dyn store::Repository>,
    job: Job,
    export: Option<&crate::cdr_export::CdrExport>,
) {
    let Job {
        rec,
        start_ms,
        open,
    } = job;
    let Ok(doc) = serde_json::to_value(&rec) else {
        return;
    };
    for attempt in 0..5u32 {
        let (id, vc) = (&rec.record_id(), &rec.voice_connector_id);
        let stored = if open {
            repo.open_call_record(id, vc, start_ms, &doc).await
        } else {
            repo.insert_call_record(id, vc, start_ms, &doc).await
        };
        match stored {
            Ok(()) => {
                if let (false, Some(export)) = (open, export) {
                    export.ship(&rec).await;
                }
                return;
            }
            Err(e) => {
                tracing::warn!(transaction = %rec.transaction_id, attempt, error = %e, "storing the call record failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    tracing::error!(record = %doc, "call record could not be stored; it is in this log line instead");
}
