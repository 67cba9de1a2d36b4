//! The AWS-compatible REST API: `chime-sdk-voice` (voice connectors, termination,
//! origination, phone numbers) and `chime-sdk-meetings` (meetings, attendees), served so that
//! boto3 and the aws CLI work with only `endpoint_url` changed.
//!
//! One handler takes every request: it enforces the body limit, verifies SigV4, throttles per
//! access key, routes by the service model ([`model`]), assembles and validates the input,
//! and calls the operation in [`handlers`]. Errors become AWS error responses in one place
//! ([`error::ApiError::into_aws_response`]).

pub mod error;
mod handlers;
pub mod metrics;
pub mod model;
pub mod sigv4;
mod throttle;

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

pub use error::ApiError;
pub use handlers::ControlEvent;
pub use handlers::meetings::end_meeting;
use model::{Model, Service};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Settings the API needs from the server configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub sip_domain: String,
    /// Requests per second per access key; 0 disables throttling.
    pub rate_limit: u32,
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
    throttle: throttle::Throttle,
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
        })
    }
}

/// The HTTP router: `/healthz`, `/metrics`, and every AWS operation.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/admin/call-records", get(call_records))
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

/// `GET /admin/call-records?voice-connector-id=…&max-results=…&next-token=…`: call detail
/// records, oldest TransactionId first; signed with SigV4 like every API call.
async fn call_records(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, _) = req.into_parts();
    let raw_query = parts.uri.query().unwrap_or("");
    let result = async {
        sigv4::verify(
            &state.credentials,
            parts.method.as_str(),
            parts.uri.path(),
            raw_query,
            &parts.headers,
            b"",
            time::OffsetDateTime::now_utc(),
        )?;
        let mut vc = None;
        let mut max = 100u32;
        let mut after = None;
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            match k {
                "voice-connector-id" => vc = Some(v),
                "next-token" => after = Some(v),
                "max-results" => {
                    max = v
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
        let records = state
            .repo
            .list_call_records(vc.as_deref(), after.as_deref(), max)
            .await?;
        let next = (records.len() == max as usize)
            .then(|| records.last().and_then(|r| r.get("TransactionId")).cloned())
            .flatten();
        Ok::<_, ApiError>(serde_json::json!({ "CallRecords": records, "NextToken": next }))
    }
    .await;
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_aws_response(Service::Voice, &request_id),
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

async fn serve(
    state: &AppState,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Served, (&'static str, ApiError)> {
    let unknown = "Unknown";
    if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
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
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            (
                unknown,
                ApiError::PayloadTooLarge {
                    size: MAX_BODY_BYTES + 1,
                    limit: MAX_BODY_BYTES,
                },
            )
        })?;
    let raw_path = uri.path();
    let raw_query = uri.query().unwrap_or("");
    sigv4::verify(
        &state.credentials,
        method.as_str(),
        raw_path,
        raw_query,
        headers,
        &body,
        time::OffsetDateTime::now_utc(),
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
        return Err((
            unknown,
            ApiError::UnknownOperation {
                method: method.to_string(),
                path: raw_path.to_string(),
            },
        ));
    };
    let op = handlers::op_label(&matched.op.name);
    let input = state
        .model
        .assemble_input(&matched, &query, headers, &body)
        .map_err(|e| (op, e))?;
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let ctx = handlers::Ctx { state, host };
    let value = handlers::dispatch(&ctx, &matched.op.name, input)
        .await
        .map_err(|e| (op, e))?;
    let status = StatusCode::from_u16(matched.op.success_status).unwrap_or(StatusCode::OK);
    Ok((op, status, value))
}
