//! The IVR's function: the webhook the server invokes for every event of a SIP media
//! application call (`voice-connector admin functions add ARN http://…`, webhook style: the
//! invocation event JSON is POSTed, the answer's body is the actions JSON).
//!
//! It answers NEW_INBOUND_CALL with PlayAudioAndGetDigits (the prompt, four digits), the
//! digits' ACTION_SUCCESSFUL with PlayAudio (the goodbye) and Hangup, a failed digit
//! collection with Hangup, and every other event with no actions. Each event is noted with
//! the instant its request was read and the instant its answer was written, so the caller's
//! side can tell how long the server took between a digit and the event, and between the
//! answer and the prompt it asked for.
//!
//! The HTTP/1.1 server is a small one on tokio, enough for the server's invoker and bounded
//! like one: a head of at most 16 KiB, a body of at most 1 MiB by Content-Length (chunked
//! bodies are answered 501), 10 s to send a request, at most [`MAX_CONNECTIONS`]
//! connections and 1000 requests on one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// Longest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request body (an invocation event is a few KB).
pub const MAX_BODY: usize = 1024 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4096;
/// Requests served on one connection.
const MAX_REQUESTS: usize = 1000;
/// Time to send one whole request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// The head of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Method.
    pub method: String,
    /// Request target.
    pub path: String,
    /// Body length (0 without Content-Length).
    pub content_length: usize,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// Bytes of the head, blank line included.
    pub len: usize,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// No blank line within [`MAX_HEAD`] bytes.
    #[error("request head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// Not an HTTP/1.x request.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// A body sent with Transfer-Encoding.
    #[error("Transfer-Encoding is not supported; send Content-Length")]
    Chunked,
    /// A body over [`MAX_BODY`].
    #[error("body over {MAX_BODY} bytes")]
    BodyTooLarge,
}

impl HttpError {
    /// The status that answers it.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge => 431,
            HttpError::Malformed(_) => 400,
            HttpError::Chunked => 501,
            HttpError::BodyTooLarge => 413,
        }
    }
}

/// Parses a request head from the start of `buf`; `Ok(None)` while the blank line has not
/// arrived.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(HttpError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    if end + 4 > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| HttpError::Malformed("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Err(HttpError::Malformed("request line"));
    };
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HttpError::Malformed("HTTP version")),
    };
    let mut content_length: Option<usize> = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("header line"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| HttpError::Malformed("Content-Length"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::Malformed("two Content-Length values"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Chunked);
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                keep_alive = false;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                keep_alive = true;
            }
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(Some(Head {
        method: method.to_string(),
        path: path.to_string(),
        content_length,
        keep_alive,
        len: end + 4,
    }))
}

/// An HTTP/1.1 answer with a JSON or text body.
pub fn response(status: u16, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "Error",
    };
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: {conn}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Where the prompts are and how many digits are asked for.
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    /// The S3 bucket name (a folder of the server's `<data-dir>/audio`).
    pub bucket: String,
    /// The prompt played when the call comes in.
    pub prompt_key: String,
    /// The goodbye played after the digits.
    pub goodbye_key: String,
    /// Digits asked for (Min and MaxNumberOfDigits).
    pub digits: u32,
}

/// What an event was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// NEW_INBOUND_CALL (answered with the prompt).
    NewCall,
    /// The digits' ACTION_SUCCESSFUL with what was received (answered with the goodbye).
    Digits(String),
    /// The digits' ACTION_FAILED with its ErrorType (answered with Hangup).
    DigitsFailed(String),
    /// HANGUP.
    Hangup,
    /// Anything else, by InvocationEventType (and ActionData Type).
    Other(String),
}

/// One event the function got.
#[derive(Clone, Debug)]
pub struct Note {
    /// The caller (LEG-A's From), which names the generator's call.
    pub caller: Option<String>,
    /// What it was.
    pub kind: NoteKind,
    /// When its request had been read.
    pub received: Instant,
    /// When the answer had been written to the socket.
    pub answered: Instant,
}

fn s3(bucket: &str, key: &str) -> Value {
    json!({"Type": "S3", "BucketName": bucket, "Key": key})
}

/// The function itself: the event's caller, what it was, and the actions document.
pub fn answer(event: &Value, cfg: &FunctionConfig) -> (Option<String>, NoteKind, Value) {
    let caller = event
        .pointer("/CallDetails/Participants")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("ParticipantTag").and_then(Value::as_str) == Some("LEG-A"))
        })
        .and_then(|p| p.get("From"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind = event
        .get("InvocationEventType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let action = event
        .pointer("/ActionData/Type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (note, actions) = match (kind, action) {
        ("NEW_INBOUND_CALL", _) => (
            NoteKind::NewCall,
            vec![json!({"Type": "PlayAudioAndGetDigits", "Parameters": {
                "AudioSource": s3(&cfg.bucket, &cfg.prompt_key),
                "FailureAudioSource": s3(&cfg.bucket, &cfg.prompt_key),
                "MinNumberOfDigits": cfg.digits, "MaxNumberOfDigits": cfg.digits,
                "InBetweenDigitsDurationInMilliseconds": 3000,
                "Repeat": 1, "RepeatDurationInMilliseconds": 5000}})],
        ),
        ("ACTION_SUCCESSFUL", "PlayAudioAndGetDigits") => {
            let digits = event
                .pointer("/ActionData/ReceivedDigits")
                .and_then(Value::as_str)
                .unwrap_or("");
            (
                NoteKind::Digits(digits.to_string()),
                vec![
                    json!({"Type": "PlayAudio", "Parameters": {
                        "AudioSource": s3(&cfg.bucket, &cfg.goodbye_key)}}),
                    json!({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}}),
                ],
            )
        }
        ("ACTION_FAILED", "PlayAudioAndGetDigits") => {
            let why = event
                .pointer("/ActionData/ErrorType")
                .and_then(Value::as_str)
                .unwrap_or("");
            (
                NoteKind::DigitsFailed(why.to_string()),
                vec![json!({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})],
            )
        }
        ("HANGUP", _) => (NoteKind::Hangup, vec![]),
        (k, "") => (NoteKind::Other(k.to_string()), vec![]),
        (k, a) => (NoteKind::Other(format!("{k} {a}")), vec![]),
    };
    (
        caller,
        note,
        json!({"SchemaVersion": "1.0", "Actions": actions}),
    )
}

/// Serves the function on `listener` until the task is dropped; every event becomes a
/// [`Note`] on `notes`.
pub async fn serve(listener: TcpListener, cfg: FunctionConfig, notes: mpsc::UnboundedSender<Note>) {
    let cfg = Arc::new(cfg);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream); // over the cap: the invoker retries once
            continue;
        };
        let (cfg, notes) = (cfg.clone(), notes.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = connection(stream, peer, &cfg, &notes).await;
        });
    }
}

/// One connection: requests in turn until the peer closes, asks to close, errs or stalls.
async fn connection(
    mut stream: TcpStream,
    _peer: SocketAddr,
    cfg: &FunctionConfig,
    notes: &mpsc::UnboundedSender<Note>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    for _ in 0..MAX_REQUESTS {
        let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => {
                    let body = json!({"error": e.to_string()}).to_string();
                    stream
                        .write_all(&response(e.status(), body.as_bytes(), false))
                        .await?;
                    return Ok(());
                }
            }
            if read_more(&mut stream, &mut buf, deadline).await? == 0 {
                return Ok(());
            }
        };
        while buf.len() < head.len + head.content_length {
            if read_more(&mut stream, &mut buf, deadline).await? == 0 {
                return Ok(());
            }
        }
        let received = Instant::now();
        let body = &buf[head.len..head.len + head.content_length];
        let (status, out) = if head.method != "POST" {
            (405, json!({"error": "POST an invocation event"}))
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(event) => {
                    let (caller, kind, doc) = answer(&event, cfg);
                    let bytes = response(200, doc.to_string().as_bytes(), head.keep_alive);
                    stream.write_all(&bytes).await?;
                    let _ = notes.send(Note {
                        caller,
                        kind,
                        received,
                        answered: Instant::now(),
                    });
                    buf.drain(..head.len + head.content_length);
                    if !head.keep_alive {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => (400, json!({"error": format!("not JSON: {e}")})),
            }
        };
        stream
            .write_all(&response(status, out.to_string().as_bytes(), false))
            .await?;
        return Ok(());
    }
    Ok(())
}

/// Reads what has arrived into `buf`; 0 at the end of the stream. Past `deadline` it is
/// an error.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: tokio::time::Instant,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request not sent in time",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FunctionConfig {
        FunctionConfig {
            bucket: "vc-loadgen".into(),
            prompt_key: "prompt.wav".into(),
            goodbye_key: "goodbye.wav".into(),
            digits: 4,
        }
    }

    fn event(kind: &str, action: Option<Value>) -> Value {
        let mut e = json!({"SchemaVersion": "1.0", "Sequence": 1, "InvocationEventType": kind,
            "CallDetails": {"TransactionId": "t1", "AwsAccountId": "000000000000",
              "AwsRegion": "us-east-1", "SipMediaApplicationId": "a1",
              "Participants": [{"CallId": "c1", "ParticipantTag": "LEG-A", "To": "+14155550199",
                "From": "+12065550007", "Direction": "Inbound",
                "StartTimeInMilliseconds": "1700000000000", "Status": "Connected"}]}});
        if let Some(a) = action {
            e["ActionData"] = a;
        }
        e
    }

    #[test]
    fn a_new_call_gets_the_prompt_and_asks_for_four_digits() {
        let (caller, kind, doc) = answer(&event("NEW_INBOUND_CALL", None), &cfg());
        assert_eq!(caller.as_deref(), Some("+12065550007"));
        assert_eq!(kind, NoteKind::NewCall);
        let a = &doc["Actions"][0];
        assert_eq!(a["Type"], "PlayAudioAndGetDigits");
        assert_eq!(a["Parameters"]["AudioSource"]["Key"], "prompt.wav");
        assert_eq!(a["Parameters"]["MaxNumberOfDigits"], 4);
        assert_eq!(doc["Actions"].as_array().map(Vec::len), Some(1));
        // The server's own parser takes it.
        domain::sma::action::parse_response(doc.to_string().as_bytes()).unwrap();
    }

    #[test]
    fn the_digits_get_the_goodbye_and_a_hangup() {
        let data = json!({"Type": "PlayAudioAndGetDigits", "Parameters": {},
                          "ReceivedDigits": "1234"});
        let (_, kind, doc) = answer(&event("ACTION_SUCCESSFUL", Some(data)), &cfg());
        assert_eq!(kind, NoteKind::Digits("1234".into()));
        let types: Vec<&str> = doc["Actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["Type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["PlayAudio", "Hangup"]);
        assert_eq!(
            doc["Actions"][0]["Parameters"]["AudioSource"]["Key"],
            "goodbye.wav"
        );
        domain::sma::action::parse_response(doc.to_string().as_bytes()).unwrap();

        let failed = json!({"Type": "PlayAudioAndGetDigits", "Parameters": {},
                            "ErrorType": "InvalidDigitsReceived"});
        let (_, kind, doc) = answer(&event("ACTION_FAILED", Some(failed)), &cfg());
        assert_eq!(kind, NoteKind::DigitsFailed("InvalidDigitsReceived".into()));
        assert_eq!(doc["Actions"][0]["Type"], "Hangup");
        let pa = json!({"Type": "PlayAudio", "Parameters": {}});
        let (_, kind, doc) = answer(&event("ACTION_SUCCESSFUL", Some(pa)), &cfg());
        assert_eq!(kind, NoteKind::Other("ACTION_SUCCESSFUL PlayAudio".into()));
        assert_eq!(doc["Actions"], json!([]));
        let (_, kind, _) = answer(&event("HANGUP", None), &cfg());
        assert_eq!(kind, NoteKind::Hangup);
        let (caller, _, _) = answer(&json!({"InvocationEventType": "HANGUP"}), &cfg());
        assert_eq!(caller, None);
    }

    #[test]
    fn heads_parse_with_their_limits() {
        let req = b"POST /sma HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello";
        let h = parse_head(req).unwrap().unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("POST", "/sma"));
        assert_eq!((h.content_length, h.keep_alive), (5, true));
        assert_eq!(&req[h.len..], b"hello");
        assert_eq!(parse_head(&req[..20]), Ok(None));
        let close = b"POST / HTTP/1.1\r\nConnection: close\r\n\r\n";
        assert!(!parse_head(close).unwrap().unwrap().keep_alive);
        let old = b"GET / HTTP/1.0\r\n\r\n";
        assert!(!parse_head(old).unwrap().unwrap().keep_alive);
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(chunked), Err(HttpError::Chunked));
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(parse_head(big.as_bytes()), Err(HttpError::BodyTooLarge));
        let two = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(parse_head(two), Err(HttpError::Malformed(_))));
        assert!(matches!(
            parse_head(b"hello\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        assert_eq!(
            parse_head(&vec![b'a'; MAX_HEAD + 1]),
            Err(HttpError::HeadTooLarge)
        );
        let r = String::from_utf8(response(200, b"{}", true)).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\n{}"),
            "{r}"
        );
        assert!(r.contains("Content-Length: 2\r\n"), "{r}");
    }

    /// The server's invoker side of it, over a real socket: two requests on one
    /// connection, each answered and noted.
    #[tokio::test]
    async fn serves_events_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let server = tokio::spawn(serve(listener, cfg(), tx));
        let mut s = TcpStream::connect(addr).await.unwrap();
        for kind in ["NEW_INBOUND_CALL", "HANGUP"] {
            let body = event(kind, None).to_string();
            let req = format!(
                "POST /sma HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let note = rx.recv().await.unwrap();
            assert_eq!(note.caller.as_deref(), Some("+12065550007"));
            assert!(note.answered >= note.received);
        }
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = s.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
                if String::from_utf8_lossy(&got)
                    .matches("HTTP/1.1 200")
                    .count()
                    == 2
                {
                    break;
                }
            }
        })
        .await;
        let text = String::from_utf8_lossy(&got);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
        assert!(text.contains("PlayAudioAndGetDigits"), "{text}");
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
        assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 405"));
        server.abort();
    }
}
