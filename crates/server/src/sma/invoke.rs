//! The function invoker: sends one invocation event to the endpoint the registry names for
//! a Lambda ARN and returns the function's answer, parsed and validated
//! (`domain::sma::action::parse_response`).
//!
//! - `webhook`: `POST <url>` with the event JSON; a 2xx body is the answer.
//! - `invoke`: the Lambda Invoke API, `POST <url>/2015-03-31/functions/<name>/invocations`
//!   (`?Qualifier=` for a version or alias) with `X-Amz-Invocation-Type: RequestResponse`,
//!   so a Lambda emulator runs an unmodified function. A 200 with `X-Amz-Function-Error`
//!   means the function raised an error; the payload then describes it.
//!
//! Each attempt has a deadline ([`Invoker::timeout`], 5 s by default, for connecting,
//! sending and reading the whole answer). A timeout, a refused or broken connection, a 5xx
//! or a 429 is tried once more ([`Invoker::retries`]); after that the call flow hangs up
//! (480, [`InvokeError::hangs_up`]). An answer that arrived but is not a valid actions
//! document is [`InvokeError::Invalid`]: not retried, the call flow sends the function an
//! INVALID_LAMBDA_RESPONSE event.
//!
//! HTTP/1.1 over TCP for `http://` URLs, over TLS for `https://` ones ([`super::tls`]: the
//! system's roots and `--sma-ca-file`, the URL's host verified). A certificate the client
//! refuses is [`InvokeError::Tls`], not retried; a handshake that fails otherwise is
//! retried like a refused connection.

use std::time::Duration;

use domain::sma::FunctionEndpoint;
use domain::sma::action::{FunctionResponse, InvalidResponse, parse_response};
use domain::sma::event::InvocationEvent;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::tls::{ConnectError, Origin, TlsClient, TlsFailure};

/// Largest answer read, in bytes (Lambda's own synchronous payload limit is 6 MB; an
/// actions document is a few KB).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why an invocation produced no answer to act on.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// Nothing usable came back after every attempt: timeouts, connection failures, 5xx
    /// or 429. The call flow hangs up (480).
    #[error("function unreachable after {attempts} attempt(s): {last}")]
    Unreachable { attempts: u32, last: String },
    /// The endpoint answered but the function failed: `X-Amz-Function-Error` (Invoke) or a
    /// 4xx. Not retried; the call flow hangs up.
    #[error("function error {kind}: {message}")]
    FunctionError { kind: String, message: String },
    /// The answer is not a valid actions document; the call flow tells the function with an
    /// INVALID_LAMBDA_RESPONSE event.
    #[error("invalid function response: {0}")]
    Invalid(#[from] InvalidResponse),
    /// The endpoint's TLS certificate was refused (not trusted, name mismatch, invalid).
    /// Not retried; the call flow hangs up.
    #[error("function endpoint refused: {0}")]
    Tls(TlsFailure),
    /// The registry entry cannot be called (a URL or ARN the registry should have refused).
    #[error("function endpoint unusable: {0}")]
    BadEndpoint(String),
}

/// The SIP status a call is ended with when its function cannot be reached or fails
/// (480 Temporarily Unavailable, as AWS ends such calls).
pub const HANGUP_STATUS: u16 = 480;

impl InvokeError {
    /// Whether the call flow ends the call ([`HANGUP_STATUS`]) rather than telling the
    /// function.
    pub fn hangs_up(&self) -> bool {
        !matches!(self, InvokeError::Invalid(_))
    }

    /// The SIP status to end the call with, or `None` when the call goes on (the function
    /// gets an INVALID_LAMBDA_RESPONSE event instead).
    pub fn sip_status(&self) -> Option<u16> {
        self.hangs_up().then_some(HANGUP_STATUS)
    }
}

/// A failed attempt: try again or give up.
enum Attempt {
    Retry(String),
    Final(InvokeError),
}

/// Calls functions; cheap to clone, holds no connections between invocations.
#[derive(Debug, Clone)]
pub struct Invoker {
    /// Deadline of one attempt.
    pub timeout: Duration,
    /// Attempts after the first one.
    pub retries: u32,
    /// The TLS client of https endpoints; `None`: the process's ([`super::tls::shared`]).
    pub tls: Option<TlsClient>,
}

impl Default for Invoker {
    fn default() -> Self {
        Invoker {
            timeout: Duration::from_secs(5),
            retries: 1,
            tls: None,
        }
    }
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// Where to connect, the `Host` header, TLS or not.
    origin: Origin,
    /// Path and query.
    path: String,
}

impl Target {
    fn of(f: &FunctionEndpoint) -> Result<Target, InvokeError> {
        let bad = |why: &str| InvokeError::BadEndpoint(format!("{}: {why}", f.url));
        let (origin, base) = Origin::parse(&f.url).map_err(bad)?;
        let base = match base {
            "" => "/".to_string(),
            b if b.starts_with('/') => b.to_string(),
            b => format!("/{b}"),
        };
        let base = base.as_str();
        let path = match f.style {
            domain::sma::FunctionStyle::Webhook => base.to_string(),
            domain::sma::FunctionStyle::Invoke => {
                let tail = f
                    .invoke_path()
                    .ok_or_else(|| bad("the ARN is not a Lambda function ARN"))?;
                let base = base.split(['?', '#']).next().unwrap_or("/");
                format!("{}/{tail}", base.trim_end_matches('/'))
            }
        };
        Ok(Target { origin, path })
    }
}

/// Aborts a spawned task when dropped (the connection driver of an attempt that timed out).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Invoker {
    /// Sends `event` to `f` and returns its validated answer.
    pub async fn invoke(
        &self,
        f: &FunctionEndpoint,
        event: &InvocationEvent,
    ) -> Result<FunctionResponse, InvokeError> {
        let target = Target::of(f)?;
        let body = Bytes::from(event.to_json());
        let invoke_api = f.style == domain::sma::FunctionStyle::Invoke;
        let tls = self.tls.clone().unwrap_or_else(super::tls::shared);
        let mut last = String::new();
        let attempts = self.retries + 1;
        for attempt in 1..=attempts {
            let outcome =
                tokio::time::timeout(self.timeout, once(&tls, &target, body.clone(), invoke_api))
                    .await;
            let failure = match outcome {
                Ok(Ok(answer)) => return Ok(parse_response(&answer)?),
                Ok(Err(Attempt::Final(e))) => return Err(e),
                Ok(Err(Attempt::Retry(why))) => why,
                Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
            };
            tracing::debug!(
                transaction = %event.call_details.transaction_id,
                attempt,
                error = %failure,
                "function invocation failed"
            );
            last = failure;
        }
        Err(InvokeError::Unreachable { attempts, last })
    }
}

/// One attempt: connect, send, read the answer.
async fn once(
    tls: &TlsClient,
    target: &Target,
    body: Bytes,
    invoke_api: bool,
) -> Result<Bytes, Attempt> {
    let retry = |what: &str, e: &dyn std::fmt::Display| Attempt::Retry(format!("{what}: {e}"));
    let stream = tls.open(&target.origin).await.map_err(|e| match e {
        ConnectError::Tls(f) if f.is_certificate() => Attempt::Final(InvokeError::Tls(f)),
        other => Attempt::Retry(other.to_string()),
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| retry("handshake", &e))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let mut req = Request::post(target.path.as_str())
        .header(hyper::header::HOST, target.origin.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json");
    if invoke_api {
        req = req.header("X-Amz-Invocation-Type", "RequestResponse");
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| Attempt::Final(InvokeError::BadEndpoint(e.to_string())))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| retry("request", &e))?;
    let status = resp.status();
    let function_error = resp
        .headers()
        .get("x-amz-function-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| retry("reading the answer", &e))?
        .to_bytes();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Attempt::Retry(format!("HTTP {status}")));
    }
    if let Some(kind) = function_error {
        return Err(Attempt::Final(InvokeError::FunctionError {
            kind,
            message: excerpt(&answer),
        }));
    }
    if !status.is_success() {
        return Err(Attempt::Final(InvokeError::FunctionError {
            kind: format!("HTTP {status}"),
            message: excerpt(&answer),
        }));
    }
    Ok(answer)
}

/// The start of an error payload, for logs and events (one line, at most 256 bytes).
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(256)]);
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::sma::FunctionStyle;

    fn endpoint(url: &str, arn_suffix: &str, style: FunctionStyle) -> FunctionEndpoint {
        FunctionEndpoint {
            lambda_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{arn_suffix}"),
            url: url.into(),
            style,
        }
    }

    #[test]
    fn targets_of_both_styles() {
        let t = Target::of(&endpoint(
            "http://127.0.0.1:9000/hooks/ivr?k=1",
            "ivr",
            FunctionStyle::Webhook,
        ))
        .unwrap();
        assert_eq!(
            t,
            Target {
                origin: Origin {
                    connect: "127.0.0.1:9000".into(),
                    authority: "127.0.0.1:9000".into(),
                    tls_name: None,
                },
                path: "/hooks/ivr?k=1".into(),
            }
        );
        let t = Target::of(&endpoint(
            "http://lambda.local",
            "ivr:prod",
            FunctionStyle::Invoke,
        ))
        .unwrap();
        assert_eq!(t.origin.connect, "lambda.local:80");
        assert_eq!(
            t.path,
            "/2015-03-31/functions/ivr/invocations?Qualifier=prod"
        );
        let t = Target::of(&endpoint(
            "http://[::1]:9001/base/",
            "f",
            FunctionStyle::Invoke,
        ))
        .unwrap();
        assert_eq!(
            (t.origin.connect.as_str(), t.origin.authority.as_str()),
            ("[::1]:9001", "[::1]:9001")
        );
        assert_eq!(t.path, "/base/2015-03-31/functions/f/invocations");
        let t = Target::of(&endpoint(
            "https://fn.example/ivr",
            "f",
            FunctionStyle::Webhook,
        ))
        .unwrap();
        assert_eq!(t.origin.connect, "fn.example:443");
        assert_eq!(t.origin.tls_name.as_deref(), Some("fn.example"));
        assert_eq!(t.path, "/ivr");
        let t = Target::of(&endpoint("https://fn.example", "f", FunctionStyle::Webhook)).unwrap();
        assert_eq!(t.path, "/");
        assert!(Target::of(&endpoint("ftp://x", "f", FunctionStyle::Webhook)).is_err());
    }

    /// An https function whose certificate is not trusted: one connection, no retry, the
    /// cause named, the call ended 480.
    #[tokio::test]
    async fn a_refused_certificate_is_named_and_not_retried() {
        use domain::sma::event::{CallDetails, EventType};
        let (ours, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let certs = super::super::tls::tests::dev_certs(ours.path());
        let foreign = super::super::tls::tests::dev_certs(other.path());
        let (port, accepted) = super::super::tls::tests::tls_server(&certs).await;
        let invoker = Invoker {
            timeout: Duration::from_secs(5),
            retries: 1,
            tls: Some(TlsClient::new(Some(&foreign.ca_cert)).unwrap()),
        };
        let details = CallDetails {
            transaction_id: "t-1".into(),
            aws_account_id: "000000000000".into(),
            aws_region: "us-east-1".into(),
            sip_rule_id: None,
            sip_media_application_id: "sma-1".into(),
            participants: vec![],
            transaction_attributes: None,
        };
        let event = InvocationEvent::new(EventType::NewInboundCall, 1, details);
        let f = endpoint(
            &format!("https://127.0.0.1:{port}/hook"),
            "f",
            FunctionStyle::Webhook,
        );
        let e = invoker.invoke(&f, &event).await.unwrap_err();
        assert!(
            matches!(&e, InvokeError::Tls(TlsFailure::Untrusted { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("certificate not trusted"), "{e}");
        assert_eq!(e.sip_status(), Some(HANGUP_STATUS));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn only_an_invalid_answer_keeps_the_call() {
        let invalid = InvokeError::Invalid(parse_response(b"nope").unwrap_err());
        assert!(!invalid.hangs_up());
        assert_eq!(invalid.sip_status(), None);
        assert!(
            InvokeError::Unreachable {
                attempts: 2,
                last: "x".into()
            }
            .hangs_up()
        );
        let failed = InvokeError::FunctionError {
            kind: "Unhandled".into(),
            message: String::new(),
        };
        assert_eq!(failed.sip_status(), Some(480));
    }
}
