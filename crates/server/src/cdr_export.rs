//! Call detail records shipped to the account's CDR bucket, as AWS ships a voice connector's:
//! when UpdateGlobalSettings has set `VoiceConnector.CdrBucket`, each call's final record
//! becomes one JSON object at
//! `Amazon-Chime-Voice-Connector-CDRs/json/<VoiceConnectorId>/<yyyy>/<mm>/<dd>/<HH.MM.SS.mmm>_<TransactionId>`
//! (the call's start time, UTC). A SIP media application's leg is an SMA record, in the
//! folder AWS gives those, one per leg:
//! `Amazon-Chime-SMADRs/json/<SipMediaApplicationId>/<yyyy>/<mm>/<dd>/<HH.MM.SS.mmm>_<TransactionId>_<CallId>`,
//! with AWS's SMA fields (SipRuleId, SipApplicationId, CallLegTriggerType). With `--s3-endpoint` the object goes to that bucket on the
//! S3-compatible server (`sma::objects`); without one it is written to
//! `<data-dir>/cdr/<bucket>/<key>` (a temporary file renamed into place).
//!
//! The record stays in the database whatever happens here; a failed upload is retried
//! twice, then logged with the record.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::call_record::CallRecord;
use serde_json::{Value, json};
use store::{Repository, SettingKind};

use crate::sma::objects::ObjectStore;
use crate::sma::s3::{S3Config, check_bucket, check_key};

/// The folder of voice connector CDRs in the bucket.
pub const CDR_PREFIX: &str = "Amazon-Chime-Voice-Connector-CDRs/json";
/// The folder of SIP media application records.
pub const SMADR_PREFIX: &str = "Amazon-Chime-SMADRs/json";
/// The account-settings document UpdateGlobalSettings writes.
const GLOBAL_SETTINGS: &str = "global-settings";
/// How long the bucket setting is reused before it is read again.
const BUCKET_TTL: Duration = Duration::from_secs(1);
/// The account in the records (ARNs use the same: self-hosted, all zeros).
const ACCOUNT_ID: &str = "000000000000";

/// Ships final call records to the CDR bucket.
pub struct CdrExport {
    repo: Arc<dyn Repository>,
    /// The S3-compatible server, when configured.
    objects: Option<ObjectStore>,
    data_dir: PathBuf,
    bucket: Mutex<Option<(Instant, Option<String>)>>,
}

impl CdrExport {
    pub fn new(repo: Arc<dyn Repository>, s3: Option<S3Config>, data_dir: PathBuf) -> Self {
        CdrExport {
            objects: s3.map(|s| ObjectStore::new(Some(s), data_dir.clone())),
            repo,
            data_dir,
            bucket: Mutex::new(None),
        }
    }

    /// The CDR bucket set by UpdateGlobalSettings, if any (read at most once a second).
    async fn bucket(&self) -> Option<String> {
        if let Some((at, b)) = &*self.bucket.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < BUCKET_TTL
        {
            return b.clone();
        }
        let doc = match self.repo.get_account_setting(GLOBAL_SETTINGS).await {
            Ok(doc) => doc,
            Err(e) => {
                tracing::warn!(error = %e, "reading the CDR bucket setting failed");
                return None;
            }
        };
        let bucket = doc
            .as_ref()
            .and_then(|d| d.pointer("/VoiceConnector/CdrBucket"))
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty())
            .map(str::to_string);
        *self.bucket.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), bucket.clone()));
        bucket
    }

    /// Ships one final record when a CDR bucket is set.
    pub async fn ship(&self, rec: &CallRecord) {
        let Some(bucket) = self.bucket().await else {
            return;
        };
        let vc = &rec.voice_connector_id;
        let region = match self.repo.get_voice_connector(vc).await {
            Ok(Some(c)) => c.aws_region,
            _ => None,
        };
        let streaming = match self.repo.get_setting(vc, SettingKind::Streaming).await {
            Ok(Some(doc)) => doc.get("Disabled").and_then(Value::as_bool) == Some(false),
            _ => false,
        };
        let region = region.unwrap_or_else(|| "us-east-1".to_string());
        let key = object_key(rec);
        let body = document(rec, &region, streaming).to_string().into_bytes();
        for attempt in 0..3u32 {
            match self.put(&bucket, &key, body.clone()).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(transaction = %rec.transaction_id, attempt, error = %e, "shipping the CDR failed");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        let doc = String::from_utf8_lossy(&body);
        tracing::error!(bucket = %bucket, key = %key, record = %doc, "the CDR could not be shipped; it is in this log line and the database");
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
        if let Some(objects) = &self.objects {
            return objects
                .put(bucket, key, body, "application/json")
                .await
                .map_err(|e| e.to_string());
        }
        check_bucket(bucket).map_err(|why| format!("bucket {bucket:?}: {why}"))?;
        check_key(key).map_err(|why| format!("key {key:?}: {why}"))?;
        let file = self.data_dir.join("cdr").join(bucket).join(key);
        let dir = file.parent().ok_or("no folder")?.to_path_buf();
        let tmp = dir.join(format!(".cdr-{:016x}.tmp", rand::random::<u64>()));
        let written = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(&tmp, &body).await?;
            tokio::fs::rename(&tmp, &file).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(format!("{}: {e}", file.display()));
        }
        Ok(())
    }
}

/// The object key of a record: its connector, the UTC date and time it started (to the
/// millisecond), and its TransactionId.
pub fn object_key(rec: &CallRecord) -> String {
    let start = time::OffsetDateTime::parse(
        &rec.start_time,
        &time::format_description::well_known::Rfc3339,
    )
    .or_else(|_| time::OffsetDateTime::from_unix_timestamp(rec.start_time_epoch_seconds))
    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    .to_offset(time::UtcOffset::UTC);
    let (folder, owner, leg) = match &rec.sip_application_id {
        Some(app) => (SMADR_PREFIX, app.as_str(), format!("_{}", rec.call_id)),
        None => (CDR_PREFIX, rec.voice_connector_id.as_str(), String::new()),
    };
    format!(
        "{folder}/{owner}/{:04}/{:02}/{:02}/{:02}.{:02}.{:02}.{:03}_{}{leg}",
        start.year(),
        u8::from(start.month()),
        start.day(),
        start.hour(),
        start.minute(),
        start.second(),
        start.millisecond(),
        rec.transaction_id
    )
}

/// AWS's short region code in usage types (`us-east-1` → `USE1`).
fn region_code(region: &str) -> String {
    let mut parts = region.split('-');
    let (Some(area), Some(dir), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
        return region.to_ascii_uppercase();
    };
    let d: String = dir
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|s| !s.is_empty())
        .map(|s| s[..1].to_ascii_uppercase())
        .collect();
    format!("{}{d}{n}", area.to_ascii_uppercase())
}

/// The record as AWS's voice connector CDR document (schema 2.0).
pub fn document(rec: &CallRecord, region: &str, streaming: bool) -> Value {
    let src = rec.source_country.clone().unwrap_or_default();
    let dst = rec.destination_country.clone().unwrap_or_default();
    let minutes = (rec.billable_duration_seconds as f64 / 6.0).ceil() / 10.0;
    let mut d = json!({
        "AwsAccountId": ACCOUNT_ID,
        "TransactionId": rec.transaction_id,
        "CallId": rec.call_id,
        "VoiceConnectorId": rec.voice_connector_id,
        "Status": rec.status,
        "StatusMessage": rec.status_message.clone().or_else(|| rec.reason.clone()).unwrap_or_default(),
        "BillableDurationSeconds": rec.billable_duration_seconds,
        "BillableDurationMinutes": minutes,
        "SchemaVersion": "2.0",
        "SourcePhoneNumber": rec.source_phone_number,
        "SourceCountry": src,
        "DestinationPhoneNumber": rec.destination_phone_number,
        "DestinationCountry": dst,
        "UsageType": format!("{}-{src}-{dst}-{}-minutes", region_code(region), rec.direction.to_ascii_lowercase()),
        "ServiceCode": "AmazonChimeVoiceConnector",
        "Direction": rec.direction,
        "StartTimeEpochSeconds": rec.start_time_epoch_seconds,
        "EndTimeEpochSeconds": rec.end_time_epoch_seconds,
        "Region": region,
        "Streaming": streaming,
    });
    if let Some(app) = &rec.sip_application_id {
        d["SipApplicationId"] = json!(app);
        d["SipRuleId"] = json!(rec.sip_rule_id.clone().unwrap_or_default());
        d["CallLegTriggerType"] = json!(rec.call_leg_trigger_type.clone().unwrap_or_default());
        d["TimeStampEpochSeconds"] = json!(rec.end_time_epoch_seconds);
        d["BillableVoiceFocusSeconds"] = json!(0);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CallRecord {
        serde_json::from_value(json!({
            "TransactionId": "123abc4d-efa5-6789-b012-a3456789c012",
            "CallId": "a84b4c76e66710@pbx.example.com",
            "VoiceConnectorId": "abcdef1ghij2klmno3pqr4",
            "Status": "Completed",
            "StatusCode": 200,
            "SourcePhoneNumber": "+12065550100",
            "DestinationPhoneNumber": "+442079460000",
            "Direction": "Outbound",
            "SourceAddress": "192.0.2.1:5060",
            "Transport": "udp",
            "StartTime": "2019-03-01T17:10:00.020Z",
            "EndTime": "2019-03-01T17:11:05.000Z",
            "DurationSeconds": 65,
            "BillableDurationSeconds": 61,
            "SourceCountry": "US",
            "DestinationCountry": "GB",
            "StartTimeEpochSeconds": 1551460200,
            "EndTimeEpochSeconds": 1551460265
        }))
        .expect("record")
    }

    #[test]
    fn keys_follow_aws() {
        assert_eq!(
            object_key(&record()),
            "Amazon-Chime-Voice-Connector-CDRs/json/abcdef1ghij2klmno3pqr4/2019/03/01/17.10.00.020_123abc4d-efa5-6789-b012-a3456789c012"
        );
        check_key(&object_key(&record())).expect("a valid key");
    }

    #[test]
    fn documents_follow_aws() {
        let d = document(&record(), "us-east-1", false);
        assert_eq!(d["UsageType"], "USE1-US-GB-outbound-minutes");
        assert_eq!(d["BillableDurationMinutes"], 1.1);
        assert_eq!(d["SchemaVersion"], "2.0");
        assert_eq!(d["StartTimeEpochSeconds"], 1551460200);
        assert_eq!(region_code("eu-central-1"), "EUC1");
        assert_eq!(region_code("ap-southeast-2"), "APS2");
    }

    #[test]
    fn application_legs_are_sma_records() {
        let mut rec = record();
        rec.sip_application_id = Some("sma-1".into());
        rec.sip_rule_id = Some("rule-1".into());
        rec.call_leg_trigger_type = Some("ToPhoneNumber".into());
        assert_eq!(
            object_key(&rec),
            "Amazon-Chime-SMADRs/json/sma-1/2019/03/01/17.10.00.020_123abc4d-efa5-6789-b012-a3456789c012_a84b4c76e66710@pbx.example.com"
        );
        let d = document(&rec, "us-east-1", false);
        assert_eq!(
            (
                &d["SipApplicationId"],
                &d["SipRuleId"],
                &d["CallLegTriggerType"]
            ),
            (&json!("sma-1"), &json!("rule-1"), &json!("ToPhoneNumber"))
        );
        assert!(
            document(&record(), "us-east-1", false)
                .get("SipRuleId")
                .is_none()
        );
    }
}
