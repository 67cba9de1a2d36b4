//! `GET /admin/sip-messages?voice-connector-id=…&call-id=…`: one call's SIP messages from its
//! voice connector's message log (`<data-dir>/logs/<id>/sip-messages.jsonl`, written by
//! [`crate::siplog`] when the connector has `EnableSIPLogs`), oldest first, for the web
//! console's ladder diagram. SigV4-signed like every admin read; the log is already
//! redacted.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::{ApiError, AppState};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::Request;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

/// The end of a log read at most per request: older messages are not looked at.
pub const TAIL_BYTES: u64 = 16 * 1024 * 1024;
/// Messages of one call answered at most.
pub const MAX_MESSAGES: usize = 500;
/// Longest Call-ID taken.
const MAX_CALL_ID: usize = 256;

#[derive(Clone)]
struct SipLogs {
    api: Arc<AppState>,
    dir: PathBuf,
}

/// The route, reading logs under `dir` (`<data-dir>/logs`).
pub fn routes<S: Clone + Send + Sync + 'static>(api: Arc<AppState>, dir: PathBuf) -> Router<S> {
    Router::new()
        .route("/admin/sip-messages", get(sip_messages))
        .with_state(SipLogs { api, dir })
}

async fn sip_messages(State(logs): State<SipLogs>, req: Request<Body>) -> Response {
    let dir = logs.dir.clone();
    api::signed_read(&logs.api, req, |q| async move {
        let (vc, call) = parse(&q)?;
        let path = dir.join(&vc).join("sip-messages.jsonl");
        let messages = tokio::task::spawn_blocking(move || read_call(&path, &call))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(format!("reading the SIP message log: {e}")))?;
        let truncated = messages.len() > MAX_MESSAGES;
        let messages: Vec<Value> = messages.into_iter().take(MAX_MESSAGES).collect();
        Ok(json!({ "Messages": messages, "Truncated": truncated }))
    })
    .await
}

/// The connector id (lowercase letters and digits, as generated) and the Call-ID.
fn parse(raw_query: &str) -> Result<(String, String), ApiError> {
    let uri: axum::http::Uri = format!("/?{raw_query}")
        .parse()
        .map_err(|_| ApiError::bad_request("the query string is not valid"))?;
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(format!("the query string is not valid: {e}")))?;
    let (mut vc, mut call) = (None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "voice-connector-id" => vc = Some(v),
            "call-id" => call = Some(v),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}"
                )));
            }
        }
    }
    let vc = vc
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .ok_or_else(|| {
            ApiError::bad_request("voice-connector-id must be a voice connector's id")
        })?;
    let call = call
        .filter(|c| (1..=MAX_CALL_ID).contains(&c.len()))
        .ok_or_else(|| {
            ApiError::bad_request(format!("call-id must be 1 to {MAX_CALL_ID} characters"))
        })?;
    Ok((vc, call))
}

/// The messages of `call_id` in the last [`TAIL_BYTES`] of the log at `path`, MAX_MESSAGES
/// + 1 at most (to tell that there were more); none when there is no log.
fn read_call(path: &Path, call_id: &str) -> std::io::Result<Vec<Value>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut text = Vec::new();
    f.take(TAIL_BYTES).read_to_end(&mut text)?;
    let text = String::from_utf8_lossy(&text);
    // A read from the middle of the file starts inside a line: skip it.
    let whole = if start > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    let mut out = Vec::new();
    for line in whole.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v.get("CallId").and_then(Value::as_str) == Some(call_id) {
            out.push(v);
            if out.len() > MAX_MESSAGES {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_one_call_from_the_log_and_skips_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sip-messages.jsonl");
        let mut text = String::from("{\"CallId\":\"cut\"}\n");
        for (i, id) in ["a", "b", "a"].iter().enumerate() {
            text += &format!("{{\"CallId\":\"{id}\",\"Message\":\"m{i}\"}}\n");
        }
        text += "not json\n";
        std::fs::write(&path, &text).unwrap();
        let got = read_call(&path, "a").unwrap();
        let msgs: Vec<&str> = got.iter().map(|v| v["Message"].as_str().unwrap()).collect();
        assert_eq!(msgs, ["m0", "m2"]);
        assert!(read_call(&dir.path().join("none"), "a").unwrap().is_empty());
    }

    #[test]
    fn refuses_ids_that_could_leave_the_logs_folder() {
        assert_eq!(
            parse("voice-connector-id=abc123&call-id=x%40y").unwrap(),
            ("abc123".to_string(), "x@y".to_string())
        );
        for bad in [
            "voice-connector-id=..&call-id=x",
            "voice-connector-id=a%2Fb&call-id=x",
            "voice-connector-id=abc&call-id=",
            "call-id=x",
            "voice-connector-id=abc&call-id=x&other=1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
