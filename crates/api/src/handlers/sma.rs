//! `chime-sdk-voice` SIP media applications (issue 13): CRUD, the logging and Alexa skill
//! settings, and CreateSipMediaApplicationCall / UpdateSipMediaApplicationCall.
//!
//! The call operations are routed and validated, and a valid request is queued in the
//! store's `sma_call_requests` with the TransactionId it is answered with; the call flow
//! takes the requests from there (`SmaRepository::take_sma_call_requests`, read by the
//! server's `sma::requests` every 250 ms): a create dials out, an update reaches the
//! running call as CALL_UPDATE_REQUESTED.

use domain::sma::{self, SipMediaApplication, SipMediaApplicationEndpoint};
use domain::timestamp::{iso8601, now_millis};
use serde_json::{Map, Value, json};
use store::{SmaCallRequest, SmaSettingKind};

use super::{Ctx, member, next_token, opt_string, page, string};
use crate::ApiError;

pub(super) async fn load(ctx: &Ctx<'_>, id: &str) -> Result<SipMediaApplication, ApiError> {
    ctx.state
        .repo
        .get_sip_media_application(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("SIP media application {id} not found")))
}

async fn load_input(ctx: &Ctx<'_>, input: &Value) -> Result<SipMediaApplication, ApiError> {
    load(ctx, &string(input, "SipMediaApplicationId")).await
}

pub(super) async fn create(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let id = domain::ids::new_uuid();
    let now = now_millis();
    let region = string(&input, "AwsRegion");
    let endpoints: Vec<SipMediaApplicationEndpoint> = member(&input, "Endpoints")?;
    let a = SipMediaApplication {
        sip_media_application_arn: sma::sip_media_application_arn(&region, &id),
        sip_media_application_id: id,
        aws_region: region,
        name: string(&input, "Name"),
        endpoints,
        created_timestamp: iso8601(now),
        updated_timestamp: iso8601(now),
    };
    a.validate()?;
    let tags = super::tags::creation_tags(&input)?;
    ctx.state.repo.insert_sip_media_application(&a, now).await?;
    super::tags::tag_new(ctx, &a.sip_media_application_arn, &tags).await?;
    // The Lambda ARN is a sensitive member of the model: not logged.
    tracing::info!(sip_media_application = %a.sip_media_application_id, region = %a.aws_region, "SIP media application created");
    Ok(json!({ "SipMediaApplication": a }))
}

pub(super) async fn get(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    Ok(json!({ "SipMediaApplication": load_input(ctx, &input).await? }))
}

pub(super) async fn list(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let (max, after) = page(&input);
    let items = ctx
        .state
        .repo
        .list_sip_media_applications(after.as_deref(), max)
        .await?;
    let next = next_token(
        items.len(),
        max,
        items.last().map(|a| a.sip_media_application_id.as_str()),
    );
    Ok(json!({ "SipMediaApplications": items, "NextToken": next }))
}

pub(super) async fn update(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let mut a = load_input(ctx, &input).await?;
    if let Some(name) = opt_string(&input, "Name") {
        a.name = name;
    }
    if input.get("Endpoints").is_some_and(|e| !e.is_null()) {
        a.endpoints = member(&input, "Endpoints")?;
    }
    a.validate()?;
    a.updated_timestamp = iso8601(now_millis());
    if !ctx.state.repo.update_sip_media_application(&a).await? {
        return Err(ApiError::NotFound(format!(
            "SIP media application {} not found",
            a.sip_media_application_id
        )));
    }
    Ok(json!({ "SipMediaApplication": a }))
}

pub(super) async fn delete(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let a = load_input(ctx, &input).await?;
    let id = a.sip_media_application_id;
    // Refused (ConflictException, naming the rule) while a SIP rule targets it, as AWS does.
    if !ctx.state.repo.delete_sip_media_application(&id).await? {
        return Err(ApiError::NotFound(format!(
            "SIP media application {id} not found"
        )));
    }
    ctx.state
        .repo
        .delete_tags(&a.sip_media_application_arn)
        .await?;
    tracing::info!(sip_media_application = %id, "SIP media application deleted");
    Ok(json!({}))
}

/// Get/Put of one settings document: `member` is its name in the input and output.
async fn get_setting(
    ctx: &Ctx<'_>,
    input: &Value,
    kind: SmaSettingKind,
    member_name: &str,
) -> Result<Value, ApiError> {
    let a = load_input(ctx, input).await?;
    let body = ctx
        .state
        .repo
        .get_sma_setting(&a.sip_media_application_id, kind)
        .await?;
    let mut out = Map::new();
    if let Some(b) = body {
        out.insert(member_name.to_string(), b);
    }
    Ok(Value::Object(out))
}

async fn put_setting(
    ctx: &Ctx<'_>,
    input: &Value,
    kind: SmaSettingKind,
    member_name: &str,
) -> Result<Value, ApiError> {
    let a = load_input(ctx, input).await?;
    let body = match input.get(member_name) {
        Some(v) if !v.is_null() => v.clone(),
        _ => {
            return Err(ApiError::bad_request(format!("{member_name} is required")));
        }
    };
    ctx.state
        .repo
        .put_sma_setting(&a.sip_media_application_id, kind, &body)
        .await?;
    Ok(json!({ member_name: body }))
}

const LOGGING: &str = "SipMediaApplicationLoggingConfiguration";
const ALEXA: &str = "SipMediaApplicationAlexaSkillConfiguration";

pub(super) async fn get_logging(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    get_setting(ctx, &input, SmaSettingKind::Logging, LOGGING).await
}

pub(super) async fn put_logging(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    put_setting(ctx, &input, SmaSettingKind::Logging, LOGGING).await
}

pub(super) async fn get_alexa(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    get_setting(ctx, &input, SmaSettingKind::AlexaSkill, ALEXA).await
}

pub(super) async fn put_alexa(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    put_setting(ctx, &input, SmaSettingKind::AlexaSkill, ALEXA).await
}

/// AWS lets a call carry only these SIP headers: `User-to-User`, `Diversion`, and any
/// `X-` header (a header of our own choosing, never one that changes the dialog).
fn check_sip_headers(input: &Value) -> Result<(), ApiError> {
    let Some(Value::Object(headers)) = input.get("SipHeaders") else {
        return Ok(());
    };
    for (name, value) in headers {
        let field = format!("SipHeaders[{name:?}]");
        let lower = name.to_ascii_lowercase();
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b));
        if !token || !(lower.starts_with("x-") || lower == "user-to-user" || lower == "diversion") {
            return Err(ApiError::bad_request(format!(
                "{field}: only User-to-User, Diversion and X- headers may be set"
            )));
        }
        let v = value.as_str().unwrap_or_default();
        if v.len() > 2048 || v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ApiError::bad_request(format!(
                "{field}: the value must be one line of at most 2048 bytes"
            )));
        }
    }
    Ok(())
}

/// The input document without the application id (the call flow reads it as is).
fn request_body(input: &Value, drop: &[&str]) -> Value {
    let mut body = input.as_object().cloned().unwrap_or_default();
    for k in drop {
        body.remove(*k);
    }
    Value::Object(body)
}

pub(super) async fn create_call(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let a = load_input(ctx, &input).await?;
    let from = string(&input, "FromPhoneNumber");
    let to = string(&input, "ToPhoneNumber");
    domain::voice_connector::validate_e164("FromPhoneNumber", &from)?;
    domain::voice_connector::validate_e164("ToPhoneNumber", &to)?;
    // As AWS: the caller id must be a number of this account.
    match ctx.state.repo.get_phone_number(&from).await? {
        Some(n) if !n.is_deleted() => {}
        _ => {
            return Err(ApiError::bad_request(format!(
                "FromPhoneNumber: {from} is not in the phone-number inventory"
            )));
        }
    }
    check_sip_headers(&input)?;
    let transaction_id = domain::ids::new_uuid();
    let request = SmaCallRequest {
        id: transaction_id.clone(),
        transaction_id: transaction_id.clone(),
        sip_media_application_id: a.sip_media_application_id.clone(),
        kind: "create".into(),
        body: request_body(&input, &["SipMediaApplicationId"]),
        created_ms: now_millis(),
    };
    ctx.state.repo.insert_sma_call_request(&request).await?;
    tracing::info!(sip_media_application = %a.sip_media_application_id, transaction = %transaction_id, "outbound SIP media application call queued");
    Ok(json!({ "SipMediaApplicationCall": { "TransactionId": transaction_id } }))
}

pub(super) async fn update_call(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let a = load_input(ctx, &input).await?;
    let transaction_id = string(&input, "TransactionId");
    if !ctx
        .state
        .repo
        .sma_transaction_known(&a.sip_media_application_id, &transaction_id)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "TransactionId: no call {transaction_id} of SIP media application {}",
            a.sip_media_application_id
        )));
    }
    let request = SmaCallRequest {
        id: domain::ids::new_uuid(),
        transaction_id: transaction_id.clone(),
        sip_media_application_id: a.sip_media_application_id.clone(),
        kind: "update".into(),
        body: request_body(&input, &["SipMediaApplicationId", "TransactionId"]),
        created_ms: now_millis(),
    };
    ctx.state.repo.insert_sma_call_request(&request).await?;
    Ok(json!({ "SipMediaApplicationCall": { "TransactionId": transaction_id } }))
}

#[cfg(test)]
mod tests {
    use super::check_sip_headers;
    use serde_json::json;

    #[test]
    fn only_user_to_user_diversion_and_x_headers() {
        let ok = json!({"SipHeaders": {"X-Case": "42", "User-to-User": "abc;encoding=hex",
                                       "Diversion": "<sip:+15550001@example.com>"}});
        assert!(check_sip_headers(&ok).is_ok());
        assert!(check_sip_headers(&json!({})).is_ok());
        for (bad, why) in [
            (json!({"SipHeaders": {"Contact": "<sip:x@y>"}}), "Contact"),
            (json!({"SipHeaders": {"X-A B": "1"}}), "X-A B"),
            (
                json!({"SipHeaders": {"X-Inject": "a\r\nVia: x"}}),
                "one line",
            ),
        ] {
            let msg = check_sip_headers(&bad).unwrap_err().to_string();
            assert!(msg.contains("SipHeaders") && msg.contains(why), "{msg}");
        }
    }
}
