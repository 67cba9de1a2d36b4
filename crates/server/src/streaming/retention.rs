//! Retained call audio: when a connector's streaming configuration has
//! DataRetentionInHours > 0 (AWS keeps the Kinesis Video stream that long), each streamed
//! call's audio is also written, one WAV per track, and deleted once the period is over.
//!
//! Where: with `--s3-endpoint`, objects `<VoiceConnectorId>/<TransactionId>/<track>.wav` in
//! the bucket [`BUCKET`] (through `sma::objects`); without one, files
//! `<data-dir>/streams/<VoiceConnectorId>/<TransactionId>/<track>.wav`. Either way the call's
//! folder under `<data-dir>/streams/` holds `retention.json` (the period in hours and the S3
//! keys), written last: [`sweep`] deletes a call's audio when that file is older than its
//! period (the file's modification time against the clock), S3 objects first.
//!
//! A call keeps at most [`MAX_SECONDS`] of each track in memory; later audio is not
//! retained (logged once).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::protocol::CallFacts;
use crate::meeting::TapFrame;
use crate::sma::objects::{ObjectError, ObjectStore};
use crate::sma::s3::S3Config;

/// The S3 bucket of retained audio (with `--s3-endpoint`).
pub const BUCKET: &str = "voice-connector-streams";
/// The most audio of one track a call retains, in seconds.
pub const MAX_SECONDS: usize = 10 * 60;
/// The folder under the data directory.
const FOLDER: &str = "streams";
/// The file naming a call's period, written last.
const MANIFEST: &str = "retention.json";
/// The largest `retention.json` read by the sweep.
const MAX_MANIFEST_BYTES: u64 = 16 * 1024;

/// Where retained audio goes: set once at start-up by [`install`].
struct Place {
    data_dir: PathBuf,
    /// The S3-compatible store, when there is one.
    s3: Option<ObjectStore>,
}

static PLACE: OnceLock<Place> = OnceLock::new();

/// Says where retained audio goes (`--data-dir`, `--s3-endpoint`); called by `serve`.
pub fn install(data_dir: &Path, s3: Option<S3Config>) {
    let s3 = s3.map(|c| ObjectStore::new(Some(c), data_dir.to_path_buf()));
    let _ = PLACE.set(Place {
        data_dir: data_dir.to_path_buf(),
        s3,
    });
}

/// One call's audio, both tracks, as it is streamed.
pub struct Recorder {
    hours: u32,
    other_track: &'static str,
    rate: Option<u32>,
    caller: Vec<i16>,
    other: Vec<i16>,
    full: bool,
}

impl Recorder {
    /// A recorder when the period is above zero.
    pub fn new(hours: u32, facts: &CallFacts) -> Option<Recorder> {
        (hours > 0).then(|| Recorder {
            hours,
            other_track: facts.other_track,
            rate: None,
            caller: Vec::new(),
            other: Vec::new(),
            full: false,
        })
    }

    /// Keeps a tap frame (frames at another rate than the first are left out).
    pub fn push(&mut self, f: &TapFrame) {
        let rate = *self.rate.get_or_insert(f.rate);
        if rate != f.rate || self.full {
            return;
        }
        let cap = MAX_SECONDS * rate as usize;
        if self.caller.len() + f.incoming.len() > cap {
            self.full = true;
            tracing::info!(
                seconds = MAX_SECONDS,
                "retained call audio is full; the rest of the call is not retained"
            );
            return;
        }
        self.caller.extend_from_slice(&f.incoming);
        self.other.extend_from_slice(&f.outgoing);
    }

    /// Writes the tracks and the manifest, in a task of its own.
    pub fn save(self, facts: &CallFacts) {
        let Some(place) = PLACE.get() else { return };
        let Some(rate) = self.rate else { return };
        let (vc, tx) = (
            facts.voice_connector_id.clone(),
            facts.transaction_id.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = write(place, &vc, &tx, rate, self).await {
                tracing::warn!(transaction = %tx, error = %e, "retained call audio not written");
            }
        });
    }
}

async fn write(place: &Place, vc: &str, tx: &str, rate: u32, r: Recorder) -> Result<(), String> {
    if !safe_name(vc) || !safe_name(tx) {
        return Err("the call's ids cannot name a folder".into());
    }
    let dir = place.data_dir.join(FOLDER).join(vc).join(tx);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut keys = Vec::new();
    for (name, samples) in [("caller", r.caller), (r.other_track, r.other)] {
        let wav = codec::wav::encode(&codec::wav::Pcm { rate, samples });
        let file = format!("{name}.wav");
        match &place.s3 {
            Some(store) => {
                let key = format!("{vc}/{tx}/{file}");
                store
                    .put(BUCKET, &key, wav, "audio/wav")
                    .await
                    .map_err(|e| e.to_string())?;
                keys.push(key);
            }
            None => write_atomically(&dir.join(file), &wav).await?,
        }
    }
    let manifest = json!({ "retentionHours": r.hours, "bucket": BUCKET, "objects": keys });
    write_atomically(&dir.join(MANIFEST), manifest.to_string().as_bytes()).await
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("part");
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// An id usable as one path segment (and S3 key segment).
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether a manifest written at `written` with `hours` is past its period at `now`.
fn expired(written: SystemTime, hours: u64, now: SystemTime) -> bool {
    now.duration_since(written)
        .is_ok_and(|age| age >= Duration::from_secs(hours * 3600))
}

/// Deletes every call's retained audio whose period is over; returns how many calls'.
/// A folder whose S3 objects could not be deleted is kept for the next sweep.
pub async fn sweep() -> usize {
    let Some(place) = PLACE.get() else { return 0 };
    let root = place.data_dir.join(FOLDER);
    let mut deleted = 0;
    for vc in subdirs(&root).await {
        for call in subdirs(&vc).await {
            match sweep_call(place, &call).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(folder = %call.display(), error = %e, "retained call audio not deleted")
                }
            }
        }
    }
    deleted
}

async fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(mut rd) = tokio::fs::read_dir(dir).await else {
        return out;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        if e.file_type().await.is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
        }
    }
    out
}

/// Deletes one call's folder when its manifest is past its period.
async fn sweep_call(place: &Place, call: &Path) -> Result<bool, String> {
    let manifest = call.join(MANIFEST);
    let Ok(meta) = tokio::fs::metadata(&manifest).await else {
        return Ok(false); // still being written, or not ours
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(format!(
            "{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes"
        ));
    }
    let doc: Value = tokio::fs::read(&manifest)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("{MANIFEST} is not JSON"))?;
    let hours = doc
        .get("retentionHours")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{MANIFEST} has no retentionHours"))?;
    let written = meta.modified().map_err(|e| e.to_string())?;
    if !expired(written, hours, SystemTime::now()) {
        return Ok(false);
    }
    let keys = doc.get("objects").and_then(Value::as_array);
    for key in keys.into_iter().flatten().filter_map(Value::as_str) {
        let Some(store) = &place.s3 else {
            return Err("S3 objects listed, but no --s3-endpoint".into());
        };
        match store.delete(BUCKET, key).await {
            Ok(()) | Err(ObjectError::NotFound { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    tokio::fs::remove_dir_all(call)
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_is_compared_with_the_manifest_age() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert!(!expired(now - hour / 2, 1, now));
        assert!(expired(now - hour, 1, now));
        assert!(expired(now - hour * 3, 2, now));
        assert!(
            !expired(now + hour, 1, now),
            "a manifest from the future is kept"
        );
    }

    #[test]
    fn only_plain_ids_name_folders() {
        assert!(safe_name("6a8f1c2e-4b3d-4e5f-9a7b-1c2d3e4f5a6b"));
        assert!(safe_name("abcdefghijklmnopqrstuv"));
        for bad in ["", ".", "..", "a/b", "a\\b", "x y", &"a".repeat(129)] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }
}
