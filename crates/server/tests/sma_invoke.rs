//! The function invoker against a real HTTP server on 127.0.0.1 (hyper, started here): a
//! good answer in both styles, a slow first answer that the retry gets past, an endpoint
//! too slow every time, a 5xx retried, malformed and invalid answers (not retried), a
//! Lambda function error, and a refused connection. Deadlines are short here so the test
//! is quick; nothing asserts how long anything took.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::sma::action::{ActionList, InvalidResponseKind};
use domain::sma::event::{
    CallDetails, Direction, EventType, InvocationEvent, Participant, ParticipantTag,
};
use domain::sma::{FunctionEndpoint, FunctionStyle};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use voice_connector::sma::invoke::{InvokeError, Invoker};

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:greeter";
const GOOD: &str = r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Hangup","Parameters":{"SipResponseCode":"0"}}],"TransactionAttributes":{"step":"2"}}"#;

/// What the test server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    content_type: String,
    invocation_type: Option<String>,
    body: Vec<u8>,
}

/// How the server answers its n-th request (0-based): delay, status, extra header, body.
type Script = dyn Fn(
        usize,
    ) -> (
        Duration,
        u16,
        Option<(&'static str, &'static str)>,
        &'static str,
    ) + Send
    + Sync;

/// Starts the server; returns its address and the requests it saw.
async fn serve(script: Arc<Script>) -> (std::net::SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (script, log) = (script.clone(), log.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (script, log) = (script.clone(), log.clone());
                    async move {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        };
                        let path = req.uri().to_string();
                        let content_type = header("content-type").unwrap_or_default();
                        let invocation_type = header("x-amz-invocation-type");
                        let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                        let n = {
                            let mut log = log.lock().unwrap();
                            log.push(Seen {
                                path,
                                content_type,
                                invocation_type,
                                body,
                            });
                            log.len() - 1
                        };
                        let (delay, status, extra, answer) = script(n);
                        tokio::time::sleep(delay).await;
                        let mut resp = Response::builder().status(status);
                        if let Some((k, v)) = extra {
                            resp = resp.header(k, v);
                        }
                        Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(answer))).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn event() -> InvocationEvent {
    let details = CallDetails {
        transaction_id: "7b3f0a52-1c5e-4bd4-9a7c-2f0a1d3e4b5c".into(),
        aws_account_id: "000000000000".into(),
        aws_region: "us-east-1".into(),
        sip_rule_id: Some("rule-1".into()),
        sip_media_application_id: "sma-1".into(),
        participants: vec![Participant {
            call_id: "call-a".into(),
            participant_tag: ParticipantTag::LegA,
            to: "+12065550161".into(),
            from: "+14155550100".into(),
            direction: Direction::Inbound,
            start_time_in_milliseconds: "1765000000000".into(),
            status: domain::sma::event::ParticipantStatus::Connected,
        }],
        transaction_attributes: None,
    };
    InvocationEvent::new(EventType::NewInboundCall, 1, details)
}

fn invoker() -> Invoker {
    Invoker {
        timeout: Duration::from_millis(400),
        retries: 1,
        tls: None,
    }
}

fn endpoint(addr: std::net::SocketAddr, path: &str, style: FunctionStyle) -> FunctionEndpoint {
    FunctionEndpoint {
        lambda_arn: ARN.into(),
        url: format!("http://{addr}{path}"),
        style,
    }
}

const FAST: Duration = Duration::ZERO;
const SLOW: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn webhook_gets_the_event_and_returns_the_answer() {
    let (addr, seen) = serve(Arc::new(|_| (FAST, 200, None, GOOD))).await;
    let got = invoker()
        .invoke(
            &endpoint(addr, "/hooks/ivr", FunctionStyle::Webhook),
            &event(),
        )
        .await
        .expect("answer");
    let ActionList::Replace(actions) = got.actions else {
        panic!("actions kept")
    };
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].type_name(), "Hangup");
    assert_eq!(got.transaction_attributes.unwrap()["step"], "2");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hooks/ivr");
    assert_eq!(seen[0].content_type, "application/json");
    assert_eq!(seen[0].invocation_type, None);
    let sent: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(sent["SchemaVersion"], "1.0");
    assert_eq!(sent["InvocationEventType"], "NEW_INBOUND_CALL");
    assert_eq!(
        sent["CallDetails"]["Participants"][0]["ParticipantTag"],
        "LEG-A"
    );
    assert_eq!(
        serde_json::from_value::<InvocationEvent>(sent).unwrap(),
        event()
    );
}

#[tokio::test]
async fn invoke_style_calls_the_lambda_invoke_api() {
    let (addr, seen) = serve(Arc::new(|_| (FAST, 200, None, GOOD))).await;
    invoker()
        .invoke(&endpoint(addr, "", FunctionStyle::Invoke), &event())
        .await
        .expect("answer");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].path, "/2015-03-31/functions/greeter/invocations");
    assert_eq!(seen[0].invocation_type.as_deref(), Some("RequestResponse"));
}

#[tokio::test]
async fn a_slow_first_answer_is_retried_once() {
    let (addr, seen) = serve(Arc::new(|n| {
        (if n == 0 { SLOW } else { FAST }, 200, None, GOOD)
    }))
    .await;
    invoker()
        .invoke(&endpoint(addr, "/", FunctionStyle::Webhook), &event())
        .await
        .expect("the retry answers");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn always_slow_is_unreachable_after_two_attempts() {
    let (addr, seen) = serve(Arc::new(|_| (SLOW, 200, None, GOOD))).await;
    let err = invoker()
        .invoke(&endpoint(addr, "/", FunctionStyle::Webhook), &event())
        .await
        .unwrap_err();
    assert!(
        matches!(err, InvokeError::Unreachable { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.hangs_up());
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let (addr, seen) = serve(Arc::new(|n| {
        (FAST, if n == 0 { 503 } else { 200 }, None, GOOD)
    }))
    .await;
    invoker()
        .invoke(&endpoint(addr, "/", FunctionStyle::Webhook), &event())
        .await
        .expect("the retry answers");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn malformed_and_invalid_answers_are_not_retried() {
    for (body, kind) in [
        ("{not json", InvalidResponseKind::MalformedResponse),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Dance"}]}"#,
            InvalidResponseKind::InvalidActionType,
        ),
        (
            r#"{"SchemaVersion":"2.0","Actions":[]}"#,
            InvalidResponseKind::UnsupportedSchemaVersion,
        ),
    ] {
        let (addr, seen) = serve(Arc::new(move |_| (FAST, 200, None, body))).await;
        let err = invoker()
            .invoke(&endpoint(addr, "/", FunctionStyle::Webhook), &event())
            .await
            .unwrap_err();
        match &err {
            InvokeError::Invalid(e) => assert_eq!(e.kind, kind, "{body}: {e}"),
            other => panic!("{body}: {other}"),
        }
        assert!(!err.hangs_up());
        assert_eq!(seen.lock().unwrap().len(), 1, "{body}");
    }
}

#[tokio::test]
async fn a_lambda_function_error_is_reported_not_retried() {
    let (addr, seen) = serve(Arc::new(|_| {
        (
            FAST,
            200,
            Some(("X-Amz-Function-Error", "Unhandled")),
            r#"{"errorMessage":"boom","errorType":"Error"}"#,
        )
    }))
    .await;
    let err = invoker()
        .invoke(&endpoint(addr, "", FunctionStyle::Invoke), &event())
        .await
        .unwrap_err();
    match &err {
        InvokeError::FunctionError { kind, message } => {
            assert_eq!(kind, "Unhandled");
            assert!(message.contains("boom"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert!(err.hangs_up());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    // Bind then drop: nothing listens on the port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = invoker()
        .invoke(&endpoint(addr, "/", FunctionStyle::Webhook), &event())
        .await
        .unwrap_err();
    assert!(
        matches!(err, InvokeError::Unreachable { attempts: 2, .. }),
        "{err}"
    );
}
