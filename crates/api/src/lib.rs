//! The AWS-compatible REST API: `chime-sdk-voice` (voice connectors, termination,
//! origination, phone numbers) and `chime-sdk-meetings` (meetings, attendees), served so that
//! boto3 and the aws CLI work with only `endpoint_url` changed.
//!
//! One handler takes every request: it enforces the body limit, verifies SigV4, throttles per
//! access key, routes by the service model ([`model`]), assembles and validates the input,
//! and calls the operation in [`handlers`]. Errors become AWS error responses in one place
//! ([`error::ApiError::into_aws_response`]).

mod admin_console;
pub mod error;
mod handlers;
pub mod metrics;
pub mod model;
pub mod numbering;
pub mod sigv4;
mod throttle;
pub mod unserved;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::token::TokenKey;
use store::Repository;
use tokio::sync::broadcast;

pub use admin_console::{carrier_json, signed_read};
pub use error::ApiError;
pub use handlers::ControlEvent;
pub use handlers::meetings::end_meeting;
use model::{Model, Service};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Bytes of large request bodies being read at once, over all requests: a request whose
/// Content-Length is over [`SMALL_BODY_BYTES`] (or that has none: chunked) reserves it (or
/// [`MAX_BODY_BYTES`]) before its body is read, and waits for room within its body
/// deadline. Bounds what requests with our access key but a wrong signature can make the
/// server hold before the signature is checked.
pub const BODY_BUDGET_BYTES: usize = 16 * 1024 * 1024;
/// Bodies up to this size (every real API call's) need no room in the budget: the
/// connection cap times this bounds them, and a flood of large ones cannot delay them.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// Settings the API needs from the server configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub sip_domain: String,
    /// Requests per second per access key; 0 disables throttling.
    pub rate_limit: u32,
    /// How long a request's body may take to arrive once its signed headers passed.
    pub body_timeout: std::time::Duration,
    /// Scheme and authority clients reach this API at (`https://vc.example.com`), used for
    /// the URLs in a meeting's MediaPlacement; `None`: the request's `Host` header with
    /// `http`/`ws` (or `https`/`wss` when `tls`).
    pub public_url: Option<String>,
    /// Whether this listener itself serves TLS.
    pub tls: bool,
}

/// Shared state of the API.
pub struct AppState {
    pub repo: Arc<dyn Repository>,
    pub credentials: sigv4::Credentials,
    pub token_key: TokenKey,
    pub config: ApiConfig,
    pub metrics: Arc<metrics::Metrics>,
    /// Meeting and attendee deletions, for the media side to end sessions.
    pub events: broadcast::Sender<ControlEvent>,
    model: Model,
    unserved: unserved::Unserved,
    throttle: throttle::Throttle,
    /// [`BODY_BUDGET_BYTES`] in KiB.
    body_budget: tokio::sync::Semaphore,
}

impl AppState {
    pub fn new(
        repo: Arc<dyn Repository>,
        credentials: sigv4::Credentials,
        token_key: TokenKey,
        config: ApiConfig,
    ) -> Arc<Self> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(AppState {
            throttle: throttle::Throttle::new(config.rate_limit),
            repo,
            credentials,
            token_key,
            config,
            metrics: Arc::new(metrics::Metrics::default()),
            events,
            model: Model::load(),
            unserved: unserved::Unserved::load(),
            body_budget: tokio::sync::Semaphore::new(BODY_BUDGET_BYTES / 1024),
        })
    }
}

/// The HTTP router: `/healthz`, `/metrics`, and every AWS operation.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/admin/call-records", get(call_records))
        .route("/admin/meetings", get(admin_console::meetings))
        .route("/admin/carriers", get(admin_console::carriers))
        .fallback(aws)
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// `GET /admin/call-records?voice-connector-id=…&meeting-id=…&attendee-id=…&max-results=…&next-token=…`:
/// call detail records, oldest TransactionId first, those of one connector, meeting and/or
/// attendee when asked; signed with SigV4 like every API call.
async fn call_records(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let repo = state.repo.clone();
    admin_console::signed_read(&state, req, |raw_query| async move {
        let query = CallRecordQuery::parse(&raw_query)?;
        let vc = query.voice_connector_id.clone();
        let (records, next) = query
            .list(|after, page| {
                let (repo, vc) = (repo.clone(), vc.clone());
                async move {
                    let rows = repo
                        .list_call_records(vc.as_deref(), after.as_deref(), page)
                        .await?;
                    Ok::<_, ApiError>(rows)
                }
            })
            .await?;
        Ok(serde_json::json!({ "CallRecords": records, "NextToken": next }))
    })
    .await
}

/// The query of `GET /admin/call-records`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CallRecordQuery {
    voice_connector_id: Option<String>,
    /// Only records whose MeetingId is this (a GUID).
    meeting_id: Option<String>,
    /// Only records whose AttendeeId is this (a GUID).
    attendee_id: Option<String>,
    max_results: u32,
    next_token: Option<String>,
}

impl CallRecordQuery {
    /// Records read from the store at a time while looking for matches of a filter.
    const SCAN_PAGE: u32 = 100;

    fn parse(raw_query: &str) -> Result<Self, ApiError> {
        let mut q = CallRecordQuery {
            voice_connector_id: None,
            meeting_id: None,
            attendee_id: None,
            max_results: 100,
            next_token: None,
        };
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            match k {
                "voice-connector-id" => q.voice_connector_id = Some(v),
                "next-token" => q.next_token = Some(v),
                "meeting-id" => q.meeting_id = Some(guid(k, v)?),
                "attendee-id" => q.attendee_id = Some(guid(k, v)?),
                "max-results" => {
                    q.max_results = v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "max-results must be 1 to 100, got {v:?}"
                            ))
                        })?;
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter {other:?}"
                    )));
                }
            }
        }
        Ok(q)
    }

    /// Whether `record` passes the meeting and attendee filters (GUIDs: hex digits in
    /// either case).
    fn matches(&self, record: &serde_json::Value) -> bool {
        let field_is = |name: &str, want: &Option<String>| {
            want.as_deref().is_none_or(|w| {
                record
                    .get(name)
                    .and_then(|v| v.as_str())
                    .is_some_and(|v| v.eq_ignore_ascii_case(w))
            })
        };
        field_is("MeetingId", &self.meeting_id) && field_is("AttendeeId", &self.attendee_id)
    }

    /// Up to `max_results` matching records after `next_token`, and the token of the next
    /// page when there may be more. `fetch(after, n)` reads up to `n` records of the store
    /// after TransactionId `after` (of the connector asked for). Without a meeting or
    /// attendee filter this is one store page; with one, store pages are read until enough
    /// records match or none are left.
    async fn list<F, Fut>(
        &self,
        mut fetch: F,
    ) -> Result<(Vec<serde_json::Value>, Option<serde_json::Value>), ApiError>
    where
        F: FnMut(Option<String>, u32) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<serde_json::Value>, ApiError>>,
    {
        let filtered = self.meeting_id.is_some() || self.attendee_id.is_some();
        let page = if filtered {
            Self::SCAN_PAGE
        } else {
            self.max_results
        };
        let limit = self.max_results as usize;
        let mut after = self.next_token.clone();
        let mut out = Vec::new();
        loop {
            let rows = fetch(after.clone(), page).await?;
            let exhausted = rows.len() < page as usize;
            after = match rows.last().and_then(|r| r.get("TransactionId")) {
                Some(serde_json::Value::String(id)) => Some(id.clone()),
                _ => None,
            };
            out.extend(rows.into_iter().filter(|r| self.matches(r)));
            if out.len() >= limit {
                out.truncate(limit);
                let next = out.last().and_then(|r| r.get("TransactionId")).cloned();
                return Ok((out, next));
            }
            if exhausted || after.is_none() {
                return Ok((out, None));
            }
        }
    }
}

/// `value` when it is a GUID (8-4-4-4-12 hex digits, the model's GuidString), else a 400
/// naming the query parameter `name`.
fn guid(name: &str, value: String) -> Result<String, ApiError> {
    let groups: Vec<&str> = value.split('-').collect();
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(value)
    } else {
        Err(ApiError::bad_request(format!(
            "{name} must be a GUID (8-4-4-4-12 hex digits), got {value:?}"
        )))
    }
}

fn service_for_path(path: &str) -> Service {
    if path.starts_with("/meetings") {
        Service::Meetings
    } else {
        Service::Voice
    }
}

async fn aws(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let service = service_for_path(&raw_path);
    match serve(&state, &parts.method, &parts.uri, &parts.headers, body).await {
        Ok((op, status, value)) => {
            state.metrics.api_request(op, status.as_u16());
            let mut resp = if status == StatusCode::NO_CONTENT {
                status.into_response()
            } else {
                (status, axum::Json(value)).into_response()
            };
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                resp.headers_mut().insert("x-amzn-RequestId", v);
            }
            resp
        }
        Err((op, err)) => {
            let resp = err.into_aws_response(service, &request_id);
            state.metrics.api_request(op, resp.status().as_u16());
            resp
        }
    }
}

type Served = (&'static str, StatusCode, serde_json::Value);

/// The body, at most [`MAX_BODY_BYTES`], read within the body deadline, with room for it
/// reserved in the [`BODY_BUDGET_BYTES`] first (`declared`: its Content-Length).
async fn read_body(
    state: &AppState,
    declared: Option<usize>,
    body: Body,
) -> Result<axum::body::Bytes, ApiError> {
    let deadline = state.config.body_timeout;
    let kib = match declared {
        Some(n) if n <= SMALL_BODY_BYTES => 0,
        n => n.unwrap_or(MAX_BODY_BYTES).div_ceil(1024),
    };
    let read = async {
        let _room = match kib {
            0 => None,
            n => Some(
                state
                    .body_budget
                    .acquire_many(u32::try_from(n).unwrap_or(u32::MAX))
                    .await
                    .map_err(|_| ApiError::Internal("body budget closed".into()))?,
            ),
        };
        axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::PayloadTooLarge {
                size: MAX_BODY_BYTES + 1,
                limit: MAX_BODY_BYTES,
            })
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::RequestTimeout {
            seconds: deadline.as_secs(),
        }),
    }
}

async fn serve(
    state: &AppState,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Served, (&'static str, ApiError)> {
    let unknown = "Unknown";
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(len) = declared
        && len > MAX_BODY_BYTES
    {
        return Err((
            unknown,
            ApiError::PayloadTooLarge {
                size: len,
                limit: MAX_BODY_BYTES,
            },
        ));
    }
    // Everything that needs no body first: an unsigned or wrongly-keyed request is answered
    // before a byte of its body is read (and its connection closed with the body unread).
    let now = time::OffsetDateTime::now_utc();
    let signed = sigv4::verify_headers(&state.credentials, headers, now)
        .map_err(|e| (unknown, ApiError::from(e)))?;
    let body = read_body(state, declared, body)
        .await
        .map_err(|e| (unknown, e))?;
    let raw_path = uri.path();
    let raw_query = uri.query().unwrap_or("");
    signed
        .verify_body(
            &state.credentials,
            method.as_str(),
            raw_path,
            raw_query,
            headers,
            &body,
        )
        .map_err(|e| (unknown, e.into()))?;
    if !state.throttle.admit(&state.credentials.access_key_id) {
        return Err((
            unknown,
            ApiError::Throttled {
                per_second: state.config.rate_limit,
            },
        ));
    }
    let query: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect();
    let Some(matched) = state.model.route(method.as_str(), raw_path, &query) else {
        if let Some(op) = state.unserved.find(method.as_str(), raw_path, &query) {
            return Err((
                unknown,
                ApiError::NotServed {
                    operation: op.name.clone(),
                    reason: op.reason.clone(),
                },
            ));
        }
        return Err((
            unknown,
            ApiError::UnknownOperation {
                method: method.to_string(),
                path: raw_path.to_string(),
            },
        ));
    };
    let matched = handlers::tags::for_arn_service(
        &state.model,
        matched,
        method.as_str(),
        raw_path,
        &query,
        &body,
    );
    let op = handlers::op_label(&matched.op.name);
    let input = state
        .model
        .assemble_input(&matched, &query, headers, &body)
        .map_err(|e| (op, e))?;
    let (secure, host) = match &state.config.public_url {
        Some(url) => match url.split_once("://") {
            Some((scheme, authority)) => (scheme == "https", authority.to_string()),
            None => (state.config.tls, url.clone()),
        },
        None => (
            state.config.tls,
            headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost")
                .to_string(),
        ),
    };
    let ctx = handlers::Ctx {
        state,
        host,
        secure,
    };
    let value = handlers::dispatch(&ctx, &matched.op.name, input)
        .await
        .map_err(|e| (op, e))?;
    let status = StatusCode::from_u16(matched.op.success_status).unwrap_or(StatusCode::OK);
    Ok((op, status, value))
}

#[cfg(test)]
mod tests {
    use super::{ApiError, CallRecordQuery};
    use serde_json::{Value, json};

    const M1: &str = "11111111-2222-3333-4444-555555555555";
    const M2: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    const A1: &str = "0123abcd-0000-1111-2222-333344445555";

    fn bad_request(query: &str) -> String {
        match CallRecordQuery::parse(query) {
            Err(ApiError::BadRequest(msg)) => msg,
            other => panic!("{query}: expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn parses_filters_and_refuses_bad_values() {
        let q = CallRecordQuery::parse(&format!(
            "voice-connector-id=vc1&meeting-id={M1}&attendee-id={A1}&max-results=7&next-token=t%2F1"
        ))
        .unwrap();
        assert_eq!(q.voice_connector_id.as_deref(), Some("vc1"));
        assert_eq!(q.meeting_id.as_deref(), Some(M1));
        assert_eq!(q.attendee_id.as_deref(), Some(A1));
        assert_eq!(q.max_results, 7);
        assert_eq!(q.next_token.as_deref(), Some("t/1"));
        assert_eq!(CallRecordQuery::parse("").unwrap().max_results, 100);

        let msg = bad_request("meeting-id=not-a-guid");
        assert!(
            msg.contains("meeting-id") && msg.contains("not-a-guid"),
            "{msg}"
        );
        // One hex digit short, a non-hex digit, no dashes, empty.
        for bad in [
            "attendee-id=0123abc-0000-1111-2222-333344445555",
            "attendee-id=0123abcg-0000-1111-2222-333344445555",
            "meeting-id=11111111222233334444555555555555",
            "meeting-id=",
        ] {
            let key = bad.split('=').next().unwrap();
            assert!(bad_request(bad).contains(key), "{bad}");
        }
        assert!(bad_request("max-results=0").contains("max-results"));
        assert!(bad_request("meetingid=x").contains("unknown query parameter"));
    }

    fn record(n: u32, meeting: &str, attendee: &str) -> Value {
        json!({ "TransactionId": format!("t{n:03}"), "MeetingId": meeting, "AttendeeId": attendee })
    }

    /// `query` over `store` (ordered by TransactionId), as the handler runs it, with the
    /// number of store reads it made.
    async fn list(store: &[Value], query: &str) -> (Vec<Value>, Option<Value>, usize) {
        let q = CallRecordQuery::parse(query).unwrap();
        let mut reads = 0;
        let (records, next) = q
            .list(|after, page| {
                reads += 1;
                let rows: Vec<Value> = store
                    .iter()
                    .filter(|r| {
                        after
                            .as_deref()
                            .is_none_or(|a| r["TransactionId"].as_str().unwrap() > a)
                    })
                    .take(page as usize)
                    .cloned()
                    .collect();
                async move { Ok(rows) }
            })
            .await
            .unwrap();
        (records, next, reads)
    }

    /// The TransactionIds of every `step`th record of `n`.
    fn every(step: usize, n: u32) -> Vec<String> {
        (0..n).step_by(step).map(|n| format!("t{n:03}")).collect()
    }

    fn ids(records: &[Value]) -> Vec<&str> {
        records
            .iter()
            .map(|r| r["TransactionId"].as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn filters_by_meeting_and_attendee_across_store_pages() {
        // 250 records, every tenth of meeting M1 (attendee A1 on every twentieth).
        let store: Vec<Value> = (0..250)
            .map(|n| {
                let meeting = if n % 10 == 0 { M1 } else { M2 };
                let attendee = if n % 20 == 0 { A1 } else { M1 };
                record(n, meeting, attendee)
            })
            .collect();

        let (all, next, reads) = list(&store, &format!("meeting-id={M1}")).await;
        assert_eq!(ids(&all), every(10, 250));
        assert_eq!((next, reads), (None, 3));

        let (first, next, _) = list(&store, &format!("meeting-id={M1}&max-results=4")).await;
        assert_eq!(ids(&first), ["t000", "t010", "t020", "t030"]);
        assert_eq!(next, Some(json!("t030")));
        let (second, _, _) = list(
            &store,
            &format!("meeting-id={M1}&max-results=4&next-token=t030"),
        )
        .await;
        assert_eq!(ids(&second), ["t040", "t050", "t060", "t070"]);

        let (both, _, _) = list(&store, &format!("meeting-id={M1}&attendee-id={A1}")).await;
        assert_eq!(ids(&both), every(20, 250));
        let upper = M1.to_ascii_uppercase();
        let (shouted, _, _) = list(&store, &format!("meeting-id={upper}&max-results=1")).await;
        assert_eq!(ids(&shouted), ["t000"]);
        let (none, next, _) = list(&store, &format!("meeting-id={M2}&attendee-id={A1}")).await;
        assert_eq!((none, next), (vec![], None));
    }

    #[tokio::test]
    async fn without_a_filter_one_store_page_is_one_answer() {
        let store: Vec<Value> = (0..5).map(|n| record(n, M1, A1)).collect();
        let (page, next, reads) = list(&store, "max-results=2").await;
        assert_eq!(
            (ids(&page), next, reads),
            (vec!["t000", "t001"], Some(json!("t001")), 1)
        );
        let (rest, next, reads) = list(&store, "next-token=t001").await;
        assert_eq!(
            (ids(&rest), next, reads),
            (vec!["t002", "t003", "t004"], None, 1)
        );
    }
}
