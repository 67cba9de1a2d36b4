//! Prompts: WAV objects read through the [`ObjectStore`] and decoded once
//! (`codec::wav::decode`, at most [`MAX_PROMPT_SECONDS`]) into an `engine::Prompt` (at a
//! rate the mixer plays, resampled once when the file's is another), kept in a bounded
//! cache; every play shares its samples.
//!
//! The cache holds at most [`PromptLimits::max_entries`] prompts and
//! [`PromptLimits::max_bytes`] of samples, the oldest going first; an entry older than
//! [`PromptLimits::ttl`] is read again, so an object replaced in the bucket is heard within
//! a minute. Calls that want the same prompt at the same time share one read. A failure is
//! not kept: the next call tries again (a prompt uploaded after a failed call is found).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::Prompt;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::objects::{ObjectError, ObjectStore};

/// Longest prompt decoded, in seconds.
pub const MAX_PROMPT_SECONDS: u32 = 600;

/// Why a prompt cannot be played; Display is `s3://bucket/key: …`, ready for an
/// ACTION_FAILED event's ErrorMessage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// The object could not be read.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The object is not a WAV file we decode.
    #[error("{uri}: not a playable WAV file: {why}")]
    Wav { uri: String, why: String },
}

/// The bounds of a [`Prompts`] cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptLimits {
    /// Prompts kept at most.
    pub max_entries: usize,
    /// Bytes of samples kept at most (2 per sample).
    pub max_bytes: usize,
    /// Age after which a prompt is read again.
    pub ttl: Duration,
}

impl Default for PromptLimits {
    fn default() -> Self {
        PromptLimits {
            max_entries: 64,
            max_bytes: 64 * 1024 * 1024,
            ttl: Duration::from_secs(60),
        }
    }
}

/// One prompt, being read or read: the first caller reads, the others wait for it.
struct Slot {
    cell: OnceCell<Result<Prompt, PromptError>>,
    born: Instant,
}

impl Slot {
    /// Bytes of samples held, once read.
    fn bytes(&self) -> Option<usize> {
        match self.cell.get() {
            Some(Ok(pcm)) => Some(pcm.samples.len() * 2),
            _ => None,
        }
    }
}

type Key = (String, String);

/// The prompt cache. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Prompts {
    store: ObjectStore,
    limits: PromptLimits,
    slots: Arc<Mutex<HashMap<Key, Arc<Slot>>>>,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompts")
            .field("store", &self.store)
            .field("limits", &self.limits)
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl Prompts {
    pub fn new(store: ObjectStore, limits: PromptLimits) -> Prompts {
        Prompts {
            store,
            limits,
            slots: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The prompt `s3://bucket/key`, decoded: from the cache while it is fresh, else read.
    pub async fn load(&self, bucket: &str, key: &str) -> Result<Prompt, PromptError> {
        let id: Key = (bucket.to_string(), key.to_string());
        let slot = {
            let mut slots = self.lock();
            match slots.get(&id) {
                Some(s) if s.born.elapsed() < self.limits.ttl => s.clone(),
                _ => {
                    let s = Arc::new(Slot {
                        cell: OnceCell::new(),
                        born: Instant::now(),
                    });
                    slots.insert(id.clone(), s.clone());
                    s
                }
            }
        };
        let result = slot
            .cell
            .get_or_init(|| self.read(bucket, key))
            .await
            .clone();
        let mut slots = self.lock();
        if result.is_err() {
            if slots.get(&id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.remove(&id);
            }
        } else {
            self.evict(&mut slots);
        }
        result
    }

    /// Prompts in the cache (read or being read).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn read(&self, bucket: &str, key: &str) -> Result<Prompt, PromptError> {
        let bytes = self.store.get(bucket, key).await?;
        codec::wav::decode(&bytes, MAX_PROMPT_SECONDS)
            .map(Prompt::new)
            .map_err(|e| PromptError::Wav {
                uri: format!("s3://{bucket}/{key}"),
                why: e.to_string(),
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Slot>>> {
        // A panic elsewhere while holding the lock leaves a map that is still whole.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the oldest read prompts until the bounds hold (prompts being read stay: their
    /// callers are waiting).
    fn evict(&self, slots: &mut HashMap<Key, Arc<Slot>>) {
        loop {
            let bytes: usize = slots.values().filter_map(|s| s.bytes()).sum();
            if slots.len() <= self.limits.max_entries && bytes <= self.limits.max_bytes {
                return;
            }
            let oldest = slots
                .iter()
                .filter(|(_, s)| s.cell.initialized())
                .min_by_key(|(_, s)| s.born)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    slots.remove(&k);
                }
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tone(rate: u32, n: usize) -> Vec<u8> {
        let samples = (0..n).map(|i| ((i % 50) as i16 - 25) * 400).collect();
        codec::wav::encode(&codec::wav::Pcm { rate, samples })
    }

    fn put(dir: &Path, bucket: &str, key: &str, bytes: &[u8]) {
        let file = dir.join("audio").join(bucket).join(key);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, bytes).expect("write");
    }

    fn prompts(dir: &Path, limits: PromptLimits) -> Prompts {
        Prompts::new(ObjectStore::new(None, dir.to_path_buf()), limits)
    }

    #[tokio::test]
    async fn decoded_once_and_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        put(dir.path(), "ivr", "hello.wav", &tone(8000, 800));
        let p = prompts(dir.path(), PromptLimits::default());
        let loads: Vec<_> = (0..8).map(|_| p.load("ivr", "hello.wav")).collect();
        let all = futures_util::future::join_all(loads).await;
        let first = all[0].as_ref().expect("decoded").clone();
        assert_eq!((first.rate, first.samples.len()), (8000, 800));
        assert!(
            all.iter()
                .all(|r| Arc::ptr_eq(&r.as_ref().expect("ok").samples, &first.samples))
        );
        // Served from the cache while fresh, even with the object gone.
        std::fs::remove_file(dir.path().join("audio/ivr/hello.wav")).expect("rm");
        let again = p.load("ivr", "hello.wav").await.expect("cached");
        assert!(Arc::ptr_eq(&again.samples, &first.samples));
        assert_eq!(p.len(), 1);
    }

    #[tokio::test]
    async fn stale_entries_are_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        put(dir.path(), "ivr", "menu.wav", &tone(8000, 160));
        let limits = PromptLimits {
            ttl: Duration::ZERO,
            ..Default::default()
        };
        let p = prompts(dir.path(), limits);
        assert_eq!(
            p.load("ivr", "menu.wav").await.expect("v1").samples.len(),
            160
        );
        put(dir.path(), "ivr", "menu.wav", &tone(16000, 320));
        let v2 = p.load("ivr", "menu.wav").await.expect("v2");
        assert_eq!((v2.rate, v2.samples.len()), (16000, 320));
    }

    #[tokio::test]
    async fn failures_are_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = prompts(dir.path(), PromptLimits::default());
        let e = p.load("ivr", "late.wav").await.unwrap_err();
        assert!(
            matches!(e, PromptError::Object(ObjectError::NotFound { .. })),
            "{e}"
        );
        assert!(p.is_empty());
        put(dir.path(), "ivr", "late.wav", &tone(8000, 80));
        p.load("ivr", "late.wav")
            .await
            .expect("found once uploaded");

        put(dir.path(), "ivr", "text.wav", b"RIFF\x04\x00\x00\x00TEXT");
        let e = p.load("ivr", "text.wav").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "s3://ivr/text.wav: not a playable WAV file: not a RIFF/WAVE file"
        );
        let e = p.load("ivr", "../x.wav").await.unwrap_err();
        assert!(
            matches!(e, PromptError::Object(ObjectError::InvalidName { .. })),
            "{e}"
        );
    }

    #[tokio::test]
    async fn bounded_by_count_and_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..4 {
            put(dir.path(), "ivr", &format!("{i}.wav"), &tone(8000, 1000));
        }
        let p = prompts(
            dir.path(),
            PromptLimits {
                max_entries: 3,
                max_bytes: 5000,
                ..Default::default()
            },
        );
        for i in 0..4 {
            p.load("ivr", &format!("{i}.wav")).await.expect("load");
            assert!(p.len() <= 2, "2000 bytes each, 5000 at most: {}", p.len());
        }
        // The newest stayed, the oldest went.
        std::fs::remove_dir_all(dir.path().join("audio")).expect("rm");
        p.load("ivr", "3.wav").await.expect("newest still cached");
        assert!(p.load("ivr", "0.wav").await.is_err(), "oldest was dropped");
    }
}
