//! Admin reads the web console needs beyond the AWS operations, SigV4-signed like every API
//! call: `GET /admin/meetings` (chime-sdk-meetings has no ListMeetings) and
//! `GET /admin/carriers` (the carriers with their keep-alive state, never a password).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use domain::carrier::CarrierStatus;
use domain::timestamp::{iso8601, now_millis};
use serde_json::{Value, json};

use crate::model::Service;
use crate::{ApiError, AppState, sigv4};

/// Most meetings one `GET /admin/meetings` lists, newest first; `Truncated` says when more
/// exist.
pub const MAX_LISTED_MEETINGS: usize = 500;

/// Verifies the request's signature (a GET: no body), then answers `read(raw_query)` as
/// JSON, or its error as an AWS error response. Every `GET /admin/...` read goes through
/// here.
pub async fn signed_read<F, Fut>(state: &AppState, req: Request<Body>, read: F) -> Response
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Value, ApiError>>,
{
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
        read(raw_query.to_string()).await
    }
    .await;
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_aws_response(Service::Voice, &request_id),
    }
}

/// A 400 unless `raw_query` is empty: these reads take no parameters.
fn no_query(path: &str, raw_query: &str) -> Result<(), ApiError> {
    if raw_query.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{path} takes no query parameters, got {raw_query:?}"
        )))
    }
}

/// `GET /admin/meetings`: the meetings not yet ended, newest first, each as CreateMeeting
/// answers it plus `CreatedTimestamp` (ISO 8601).
pub(crate) async fn meetings(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let repo = state.repo.clone();
    signed_read(&state, req, |q| async move {
        no_query("/admin/meetings", &q)?;
        let now = now_millis();
        let mut rows = repo.list_meetings().await?;
        rows.retain(|r| !r.expired(now, None));
        rows.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        let truncated = rows.len() > MAX_LISTED_MEETINGS;
        rows.truncate(MAX_LISTED_MEETINGS);
        let meetings: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                let mut m = serde_json::to_value(&r.meeting).unwrap_or_default();
                if let Some(o) = m.as_object_mut() {
                    o.insert("CreatedTimestamp".into(), iso8601(r.created_ms).into());
                }
                m
            })
            .collect();
        Ok(json!({ "Meetings": meetings, "Truncated": truncated }))
    })
    .await
}

/// `GET /admin/carriers`: every carrier with its addresses, routing and keep-alive state
/// (`up`, `down` or `unknown`); credentials are left out.
pub(crate) async fn carriers(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let repo = state.repo.clone();
    signed_read(&state, req, |q| async move {
        no_query("/admin/carriers", &q)?;
        let now = now_millis();
        let carriers = repo.list_carriers().await?;
        let status = repo.list_carrier_status().await?;
        let out: Vec<Value> = carriers
            .iter()
            .map(|c| {
                let s = status.iter().find(|s| s.carrier == c.name);
                let mut v = carrier_json(c);
                v.extend(json_map(json!({
                    "Status": CarrierStatus::label(s, now),
                    "LastOptions": s.and_then(|s| s.last_options_ms).map(iso8601),
                    "LastStatusCode": s.and_then(|s| s.last_status),
                })));
                Value::Object(v)
            })
            .collect();
        Ok(json!({ "Carriers": out }))
    })
    .await
}

/// A carrier's addresses and routing as the console shows them (never its credentials).
pub fn carrier_json(c: &domain::carrier::Carrier) -> serde_json::Map<String, Value> {
    json_map(json!({
        "Name": c.name,
        "Addresses": c.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "Transport": c.transport.as_str(),
        "Prefixes": c.prefixes,
        "Priority": c.priority,
        "Weight": c.weight,
    }))
}

fn json_map(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}
