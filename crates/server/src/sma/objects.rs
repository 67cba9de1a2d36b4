//! The object store of SIP media applications: WAV prompts read (`AudioSource` of type
//! `S3`) and recordings written (RecordAudio, StartCallRecording).
//!
//! With `--s3-endpoint` it is an S3-compatible server, spoken to with path-style
//! GetObject and PutObject requests signed with SigV4 ([`super::s3`]). Without one it is
//! the data directory: prompts are read from `<data-dir>/audio/<bucket>/<key>` and
//! recordings written to `<data-dir>/recordings/<bucket>/<key>` (a temporary file renamed
//! into place, so a reader never sees half a recording).
//!
//! Bucket and key are checked before anything is read or written (S3's bucket rules; a
//! key with a `.` or `..` segment or a leading `/` is refused), so a function cannot reach
//! outside those folders. A GET reads at most [`MAX_GET_BYTES`]; each request has a
//! deadline ([`ObjectStore::timeout`]). Errors read as `s3://bucket/key: what went wrong`
//! and never carry a credential: they become the ErrorMessage of an ACTION_FAILED event.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt as _;

use super::s3::{
    EMPTY_SHA256, S3Config, ToSign, amz_date, authorization, check_bucket, check_key, object_path,
    payload_sha256,
};
use super::tls::{ConnectError, Origin, TlsClient, TlsFailure};

/// Largest object read, in bytes (a 10-minute 16 kHz mono prompt is about 19 MB).
pub const MAX_GET_BYTES: usize = 20 * 1024 * 1024;

/// Largest error document read from an S3 server, in bytes.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Why an object could not be read or written. Display is `s3://bucket/key: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The bucket or key breaks the naming rules; nothing was sent or opened.
    #[error("{uri}: invalid name: {why}")]
    InvalidName { uri: String, why: &'static str },
    /// 404 from the server (its error code, e.g. `NoSuchKey`), or no such file.
    #[error("{uri}: not found ({detail})")]
    NotFound { uri: String, detail: String },
    /// 403 from the server (its error code, e.g. `SignatureDoesNotMatch`), or a file that
    /// may not be read or written.
    #[error("{uri}: access denied ({detail})")]
    AccessDenied { uri: String, detail: String },
    /// The server's TLS certificate was refused, or the TLS handshake failed.
    #[error("{uri}: {failure}")]
    Tls { uri: String, failure: TlsFailure },
    /// No connection, or it broke before an answer.
    #[error("{uri}: endpoint unreachable: {detail}")]
    Unreachable { uri: String, detail: String },
    /// No whole answer within the deadline.
    #[error("{uri}: no answer within {secs} s")]
    Timeout { uri: String, secs: u64 },
    /// The object is larger than [`MAX_GET_BYTES`].
    #[error("{uri}: larger than {limit} bytes")]
    TooLarge { uri: String, limit: usize },
    /// Any other failure: another HTTP status, a file system error.
    #[error("{uri}: {detail}")]
    Failed { uri: String, detail: String },
}

/// Prompts and recordings, in S3 or the data directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    s3: Option<std::sync::Arc<S3Config>>,
    data_dir: PathBuf,
    /// Deadline of one request (10 s by default).
    pub timeout: Duration,
    /// The TLS client of an https endpoint; `None`: the process's
    /// ([`super::tls::shared`]).
    pub tls: Option<TlsClient>,
}

/// What one S3 request brought back.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl ObjectStore {
    /// An S3 store when `s3` is given, else the data directory's `audio/` and `recordings/`.
    pub fn new(s3: Option<S3Config>, data_dir: PathBuf) -> ObjectStore {
        ObjectStore {
            s3: s3.map(std::sync::Arc::new),
            data_dir,
            timeout: Duration::from_secs(10),
            tls: None,
        }
    }

    /// Reads an object: S3 GetObject, or the file `<data-dir>/audio/<bucket>/<key>`.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ObjectError> {
        let uri = checked(bucket, key)?;
        let work = async {
            match &self.s3 {
                Some(s3) => {
                    let path = object_path(bucket, key);
                    let body = self.request(s3, "GET", &path, None, &uri);
                    body.await.map(|b| b.to_vec())
                }
                None => {
                    let file = self.data_dir.join("audio").join(bucket).join(key);
                    read_file(&file, &uri).await
                }
            }
        };
        self.with_deadline(&uri, work).await
    }

    /// Writes an object: S3 PutObject (the body's hash signed), or the file
    /// `<data-dir>/recordings/<bucket>/<key>` (folders created, written to a temporary
    /// file first and renamed).
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), ObjectError> {
        let uri = checked(bucket, key)?;
        let work = async {
            match &self.s3 {
                Some(s3) => {
                    let path = object_path(bucket, key);
                    let payload = Some((body.into(), content_type));
                    let answer = self.request(s3, "PUT", &path, payload, &uri);
                    answer.await.map(drop)
                }
                None => {
                    let file = self.data_dir.join("recordings").join(bucket).join(key);
                    write_file(&file, &body, &uri).await
                }
            }
        };
        self.with_deadline(&uri, work).await
    }

    /// Deletes an object: S3 DeleteObject, or the file `<data-dir>/recordings/<bucket>/<key>`.
    /// An object that is not there is [`ObjectError::NotFound`] (S3 itself answers 204).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), ObjectError> {
        let uri = checked(bucket, key)?;
        let work = async {
            match &self.s3 {
                Some(s3) => {
                    let path = object_path(bucket, key);
                    let answer = self.request(s3, "DELETE", &path, None, &uri);
                    answer.await.map(drop)
                }
                None => {
                    let file = self.data_dir.join("recordings").join(bucket).join(key);
                    tokio::fs::remove_file(&file)
                        .await
                        .map_err(|e| io_error(&uri, &e))
                }
            }
        };
        self.with_deadline(&uri, work).await
    }

    /// One S3 request (with a body and its type for a PUT); the answer's body when it is a
    /// success, else its error.
    async fn request(
        &self,
        s3: &S3Config,
        method: &str,
        path: &str,
        payload: Option<(Bytes, &str)>,
        uri: &str,
    ) -> Result<Bytes, ObjectError> {
        let (body, content_type) = payload.map_or((Bytes::new(), None), |(b, c)| (b, Some(c)));
        let a = send(self.tls(), s3, method, path, body, content_type, uri).await?;
        if a.status.is_success() {
            Ok(a.body)
        } else {
            Err(status_error(uri, a.status, &a.body))
        }
    }

    fn tls(&self) -> TlsClient {
        self.tls.clone().unwrap_or_else(super::tls::shared)
    }

    async fn with_deadline<T>(
        &self,
        uri: &str,
        work: impl Future<Output = Result<T, ObjectError>>,
    ) -> Result<T, ObjectError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(ObjectError::Timeout {
                    uri: uri.to_string(),
                    secs: self.timeout.as_secs().max(1),
                })
            })
    }
}

/// `s3://bucket/key` once both names pass the rules.
fn checked(bucket: &str, key: &str) -> Result<String, ObjectError> {
    // A refused name is shown in the message only up to a point and without control
    // characters, so a hostile key cannot flood or forge log lines.
    let shown = |s: &str| -> String {
        s.chars()
            .take(200)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let uri = format!("s3://{}/{}", shown(bucket), shown(key));
    check_bucket(bucket).map_err(|why| ObjectError::InvalidName {
        uri: uri.clone(),
        why,
    })?;
    check_key(key).map_err(|why| ObjectError::InvalidName {
        uri: uri.clone(),
        why,
    })?;
    Ok(uri)
}

/// One signed request on a fresh connection: the body is sent, the whole answer read (at
/// most [`MAX_GET_BYTES`]).
async fn send(
    tls: TlsClient,
    s3: &S3Config,
    method: &str,
    path: &str,
    body: Bytes,
    content_type: Option<&str>,
    uri: &str,
) -> Result<Answer, ObjectError> {
    let unreachable = |what: &str, e: &dyn std::fmt::Display| ObjectError::Unreachable {
        uri: uri.to_string(),
        detail: format!("{what} {}: {e}", s3.connect),
    };
    let date = amz_date(time::OffsetDateTime::now_utc());
    let hash = if method == "GET" {
        EMPTY_SHA256.to_string()
    } else {
        payload_sha256(&body)
    };
    let extra: Vec<(&str, &str)> = content_type
        .map(|c| vec![("content-type", c)])
        .unwrap_or_default();
    let auth = authorization(
        s3,
        &ToSign {
            method,
            path,
            headers: &extra,
            payload_hash: &hash,
            amz_date: &date,
        },
    );
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, s3.authority.as_str())
        .header("x-amz-date", date.as_str())
        .header("x-amz-content-sha256", hash.as_str())
        .header(hyper::header::AUTHORIZATION, auth.as_str())
        .header(hyper::header::CONTENT_LENGTH, body.len());
    for (n, v) in &extra {
        req = req.header(*n, *v);
    }
    let req = req.body(Full::new(body)).map_err(|e| ObjectError::Failed {
        uri: uri.to_string(),
        detail: format!("cannot build the request: {e}"),
    })?;
    let origin = Origin {
        connect: s3.connect.clone(),
        authority: s3.authority.clone(),
        tls_name: s3.tls_name.clone(),
    };
    let stream = tls.open(&origin).await.map_err(|e| match e {
        ConnectError::Tcp(_, e) => unreachable("connect", &e),
        ConnectError::Tls(failure) => ObjectError::Tls {
            uri: uri.to_string(),
            failure,
        },
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable("handshake with", &e))?;
    // The connection is driven beside the exchange; dropping the sender at the end of the
    // exchange lets it finish.
    let exchange = async move {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable("request to", &e))?;
        let status = resp.status();
        let limit = if status.is_success() {
            MAX_GET_BYTES
        } else {
            MAX_ERROR_BYTES
        };
        let declared = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(uri));
        }
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large(uri)
                } else {
                    unreachable("reading the answer from", &e)
                }
            })?
            .to_bytes();
        drop(sender);
        Ok(Answer { status, body })
    };
    let (answer, ()) = tokio::join!(exchange, async {
        let _ = conn.await;
    });
    answer
}

fn too_large(uri: &str) -> ObjectError {
    ObjectError::TooLarge {
        uri: uri.to_string(),
        limit: MAX_GET_BYTES,
    }
}

/// The error of a non-2xx answer, with the S3 error document's `Code` when there is one.
fn status_error(uri: &str, status: StatusCode, body: &[u8]) -> ObjectError {
    let code = error_code(body);
    let detail = match code {
        Some(c) => format!("{} {c}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    let uri = uri.to_string();
    match status {
        StatusCode::NOT_FOUND => ObjectError::NotFound { uri, detail },
        StatusCode::FORBIDDEN => ObjectError::AccessDenied { uri, detail },
        _ => ObjectError::Failed {
            uri,
            detail: format!("HTTP {detail}"),
        },
    }
}

/// `<Code>…</Code>` of an S3 error document, when it is a short plain word.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    (!code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_string())
}

fn io_error(uri: &str, e: &std::io::Error) -> ObjectError {
    let uri = uri.to_string();
    match e.kind() {
        std::io::ErrorKind::NotFound => ObjectError::NotFound {
            uri,
            detail: "no such file in the data directory".into(),
        },
        std::io::ErrorKind::PermissionDenied => ObjectError::AccessDenied {
            uri,
            detail: "file permissions".into(),
        },
        _ => ObjectError::Failed {
            uri,
            detail: format!("data directory: {e}"),
        },
    }
}

async fn read_file(file: &Path, uri: &str) -> Result<Vec<u8>, ObjectError> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| io_error(uri, &e))?;
    let meta = f.metadata().await.map_err(|e| io_error(uri, &e))?;
    if !meta.is_file() {
        return Err(ObjectError::NotFound {
            uri: uri.to_string(),
            detail: "not a file in the data directory".into(),
        });
    }
    if meta.len() > MAX_GET_BYTES as u64 {
        return Err(too_large(uri));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_GET_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| io_error(uri, &e))?;
    if bytes.len() > MAX_GET_BYTES {
        return Err(too_large(uri));
    }
    Ok(bytes)
}

async fn write_file(file: &Path, body: &[u8], uri: &str) -> Result<(), ObjectError> {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Err(ObjectError::Failed {
            uri: uri.to_string(),
            detail: "no file name".into(),
        });
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io_error(uri, &e))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{:016x}.tmp", rand::random::<u64>()));
    let tmp = dir.join(tmp_name);
    let written = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut f, body).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, file).await
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_error(uri, &e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn data_dir_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ObjectStore::new(None, dir.path().to_path_buf());
        let body = b"RIFF....WAVE".to_vec();
        store
            .put("calls", "2026/12/07/rec one.wav", body.clone(), "audio/wav")
            .await
            .expect("put");
        let written = dir.path().join("recordings/calls/2026/12/07/rec one.wav");
        assert_eq!(std::fs::read(&written).expect("file"), body);
        // Writing again replaces the file whole; no temporary file is left behind.
        store
            .put(
                "calls",
                "2026/12/07/rec one.wav",
                b"new".to_vec(),
                "audio/wav",
            )
            .await
            .expect("second put");
        assert_eq!(std::fs::read(&written).expect("file"), b"new");
        let left: Vec<_> = std::fs::read_dir(written.parent().expect("dir"))
            .expect("dir")
            .collect();
        assert_eq!(left.len(), 1);

        std::fs::create_dir_all(dir.path().join("audio/prompts/en")).expect("mkdir");
        std::fs::write(dir.path().join("audio/prompts/en/hi.wav"), &body).expect("write");
        assert_eq!(store.get("prompts", "en/hi.wav").await.expect("get"), body);

        let missing = store.get("prompts", "en/nope.wav").await.unwrap_err();
        assert!(matches!(missing, ObjectError::NotFound { .. }));
        assert_eq!(
            missing.to_string(),
            "s3://prompts/en/nope.wav: not found (no such file in the data directory)"
        );
        let folder = store.get("prompts", "en").await.unwrap_err();
        assert!(matches!(folder, ObjectError::NotFound { .. }), "{folder}");
    }

    #[tokio::test]
    async fn deleted_files_are_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ObjectStore::new(None, dir.path().to_path_buf());
        store
            .put("calls", "a/b.wav", vec![1, 2], "audio/wav")
            .await
            .expect("put");
        let file = dir.path().join("recordings/calls/a/b.wav");
        assert!(file.exists());
        store.delete("calls", "a/b.wav").await.expect("delete");
        assert!(!file.exists());
        let again = store.delete("calls", "a/b.wav").await.unwrap_err();
        assert!(matches!(again, ObjectError::NotFound { .. }), "{again}");
        let e = store.delete("calls", "../x").await.unwrap_err();
        assert!(matches!(e, ObjectError::InvalidName { .. }), "{e}");
    }

    #[tokio::test]
    async fn names_are_checked_before_any_access() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ObjectStore::new(None, dir.path().join("data"));
        std::fs::write(dir.path().join("secret"), b"x").expect("write");
        for (bucket, key) in [
            ("prompts", "../../secret"),
            ("prompts", "/etc/passwd"),
            ("..", "secret"),
            ("Prompts", "a.wav"),
        ] {
            let e = store.get(bucket, key).await.unwrap_err();
            assert!(matches!(e, ObjectError::InvalidName { .. }), "{e}");
            let e = store
                .put(bucket, key, vec![1], "audio/wav")
                .await
                .unwrap_err();
            assert!(matches!(e, ObjectError::InvalidName { .. }), "{e}");
        }
        assert!(!dir.path().join("data").exists(), "nothing was created");
        let e = store.get("prompts", "a\n/b.wav").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "s3://prompts/a?/b.wav: invalid name: the key holds a control character"
        );
    }

    #[tokio::test]
    async fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ObjectStore::new(None, dir.path().to_path_buf());
        std::fs::create_dir_all(dir.path().join("audio/big")).expect("mkdir");
        let f = std::fs::File::create(dir.path().join("audio/big/x.wav")).expect("create");
        f.set_len(MAX_GET_BYTES as u64 + 1).expect("sparse file");
        let e = store.get("big", "x.wav").await.unwrap_err();
        assert!(matches!(e, ObjectError::TooLarge { .. }), "{e}");
    }

    #[tokio::test]
    async fn unreachable_endpoint_reads_plainly() {
        // A port nothing listens on: bind one, learn it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let s3 = S3Config::new(
            &format!("http://127.0.0.1:{port}"),
            "us-east-1",
            "AKID",
            super::super::s3::Secret::new("topsecret"),
        )
        .expect("config");
        let store = ObjectStore::new(Some(s3), PathBuf::from("/nonexistent"));
        let e = store.get("prompts", "a.wav").await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ObjectError::Unreachable { .. }), "{text}");
        assert!(
            text.starts_with(&format!(
                "s3://prompts/a.wav: endpoint unreachable: connect 127.0.0.1:{port}: "
            )),
            "{text}"
        );
        assert!(!text.contains("topsecret"));
    }

    #[test]
    fn error_documents() {
        let doc =
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>x</Message></Error>";
        let e = status_error("s3://b1b/k", StatusCode::NOT_FOUND, doc);
        assert_eq!(e.to_string(), "s3://b1b/k: not found (404 NoSuchKey)");
        let e = status_error("s3://b1b/k", StatusCode::FORBIDDEN, b"");
        assert_eq!(e.to_string(), "s3://b1b/k: access denied (403)");
        let e = status_error(
            "s3://b1b/k",
            StatusCode::SERVICE_UNAVAILABLE,
            b"<Code>Slow Down</Code>",
        );
        assert_eq!(e.to_string(), "s3://b1b/k: HTTP 503");
    }
}
