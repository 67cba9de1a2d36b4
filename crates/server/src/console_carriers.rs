//! The web console's carrier editing, SigV4-signed (the body too) like every API call:
//! `POST /admin/carriers` adds one, `PUT /admin/carriers/{name}` changes the fields given,
//! `DELETE /admin/carriers/{name}` removes it. The fields are `admin carriers`' flags
//! ([`crate::admin::CarrierFields`], validated the same way), in JSON; a bad one is a 400
//! naming its JSON field. The answer is the carrier without its password.

use std::sync::Arc;

use api::{ApiError, AppState};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use domain::DomainError;
use domain::carrier::Carrier;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::CarrierFields;

/// Largest request body taken.
const MAX_BODY: usize = 64 * 1024;

/// The routes.
pub fn routes<S: Clone + Send + Sync + 'static>(api: Arc<AppState>) -> Router<S> {
    Router::new()
        .route("/admin/carriers", post(add))
        .route("/admin/carriers/{name}", put(update).delete(remove))
        .with_state(api)
}

/// The JSON body: every field optional (an update changes only those given).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CarrierBody {
    name: Option<String>,
    addresses: Option<Vec<String>>,
    transport: Option<String>,
    prefixes: Option<Vec<String>>,
    priority: Option<u32>,
    weight: Option<u32>,
    sources: Option<Vec<String>>,
    username: Option<String>,
    password: Option<String>,
    register: Option<bool>,
    srtp: Option<String>,
    codecs: Option<Vec<String>>,
    max_calls: Option<u32>,
    cps: Option<u32>,
    enabled: Option<bool>,
    emergency: Option<bool>,
    clear_credentials: Option<bool>,
}

impl CarrierBody {
    /// `admin carriers`' fields; empty strings are "not given".
    fn fields(self) -> CarrierFields {
        let given = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        CarrierFields {
            addresses: self.addresses.unwrap_or_default(),
            transport: given(self.transport),
            prefixes: self.prefixes.unwrap_or_default(),
            priority: self.priority,
            weight: self.weight,
            sources: self.sources.unwrap_or_default(),
            username: given(self.username),
            password: given(self.password),
            register: self.register == Some(true),
            no_register: self.register == Some(false),
            srtp: given(self.srtp),
            codecs: self.codecs.filter(|c| !c.is_empty()),
            max_calls: self.max_calls,
            cps: self.cps,
            emergency: self.emergency == Some(true),
            no_emergency: self.emergency == Some(false),
            disable: self.enabled == Some(false),
            enable: self.enabled == Some(true),
        }
    }
}

/// A domain error with its field named as the JSON body names it.
fn invalid(e: DomainError) -> ApiError {
    match e {
        DomainError::Invalid { field, reason } => {
            let name = match field.as_ref() {
                "address" => "Addresses",
                "transport" => "Transport",
                "prefix" => "Prefixes",
                "source" => "Sources",
                "priority" => "Priority",
                "weight" => "Weight",
                "username" => "Username",
                "password" => "Password",
                "register" => "Register",
                "srtp" => "Srtp",
                "codecs" => "Codecs",
                "max-calls" | "max_calls" => "MaxCalls",
                "cps" => "Cps",
                "name" => "Name",
                other => other,
            };
            ApiError::bad_request(format!("{name}: {reason}"))
        }
        other => other.into(),
    }
}

fn store_err(e: store::StoreError) -> ApiError {
    match e {
        store::StoreError::Domain(d) => invalid(d),
        other => other.into(),
    }
}

/// The carrier as the console shows it: never its password.
fn public(c: &Carrier) -> Value {
    let mut v = api::carrier_json(c);
    v.insert("Sources".into(), json!(c.sources));
    v.insert("Username".into(), json!(c.username));
    v.insert("HasPassword".into(), c.password.is_some().into());
    v.insert("Register".into(), c.register.into());
    v.insert("Enabled".into(), c.enabled.into());
    Value::Object(v)
}

/// Verifies the signature over the body, then answers `write(body)` (or its error, as an
/// AWS error answer).
async fn signed_write<F, Fut>(state: &AppState, req: Request<Body>, write: F) -> Response
where
    F: FnOnce(CarrierBody) -> Fut,
    Fut: std::future::Future<Output = Result<Value, ApiError>>,
{
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let result = async {
        let bytes = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| ApiError::bad_request(format!("the body is over {MAX_BODY} bytes")))?;
        api::sigv4::verify(
            &state.credentials,
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query().unwrap_or(""),
            &parts.headers,
            &bytes,
            time::OffsetDateTime::now_utc(),
        )?;
        let body: CarrierBody = if bytes.is_empty() {
            CarrierBody::default()
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("the body is not valid: {e}")))?
        };
        write(body).await
    }
    .await;
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_aws_response(api::model::Service::Voice, &request_id),
    }
}

async fn add(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let repo = state.repo.clone();
    signed_write(&state, req, |b| async move {
        let name = b.name.clone().unwrap_or_default();
        if b.clear_credentials.is_some() {
            return Err(ApiError::bad_request(
                "ClearCredentials is for an update (PUT /admin/carriers/{name})",
            ));
        }
        let mut c = Carrier::new(name.trim());
        b.fields().apply(&mut c).map_err(invalid)?;
        repo.insert_carrier(&c).await.map_err(store_err)?;
        Ok(json!({ "Carrier": public(&c) }))
    })
    .await
}

async fn update(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request<Body>,
) -> Response {
    let repo = state.repo.clone();
    signed_write(&state, req, |b| async move {
        if b.name.as_ref().is_some_and(|n| *n != name) {
            return Err(ApiError::bad_request(
                "Name: a carrier is not renamed; remove it and add another",
            ));
        }
        let not_found = || ApiError::NotFound(format!("no carrier named {name:?}"));
        let mut c = repo.carrier(&name).await?.ok_or_else(not_found)?;
        if b.clear_credentials == Some(true) {
            c.username = None;
            c.password = None;
            c.register = false;
        }
        b.fields().apply(&mut c).map_err(invalid)?;
        if !repo.update_carrier(&c).await.map_err(store_err)? {
            return Err(not_found());
        }
        Ok(json!({ "Carrier": public(&c) }))
    })
    .await
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request<Body>,
) -> Response {
    let repo = state.repo.clone();
    signed_write(&state, req, |_| async move {
        if !repo.delete_carrier(&name).await? {
            return Err(ApiError::NotFound(format!("no carrier named {name:?}")));
        }
        Ok(json!({ "Name": name, "Removed": true }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_becomes_the_cli_fields_and_errors_name_json_fields() {
        let b: CarrierBody = serde_json::from_str(
            r#"{"Addresses":["127.0.0.1:5080"],"Transport":"tcp","Prefixes":["+44"],"Password":"","Enabled":false}"#,
        )
        .unwrap();
        let mut c = Carrier::new("telco");
        b.fields().apply(&mut c).unwrap();
        assert_eq!(c.addresses[0].to_string(), "127.0.0.1:5080");
        assert_eq!(c.prefixes, ["+44"]);
        assert!(!c.enabled && c.password.is_none());
        let bad: CarrierBody = serde_json::from_str(r#"{"Prefixes":["44x"]}"#).unwrap();
        let e = bad.fields().apply(&mut c).map_err(invalid).unwrap_err();
        assert!(e.to_string().starts_with("Prefixes: "), "{e}");
        assert!(serde_json::from_str::<CarrierBody>(r#"{"Pasword":"x"}"#).is_err());
        let shown = public(&c).to_string();
        assert!(
            shown.contains("HasPassword") && !shown.contains("\"Password\""),
            "{shown}"
        );
    }
}
