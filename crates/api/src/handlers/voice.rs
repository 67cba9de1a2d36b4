//! `chime-sdk-voice` operations: voice connectors and their settings, phone numbers.

use domain::timestamp::{iso8601, now_millis};
use domain::voice_connector::{
    self as vc, Credential, LoggingConfiguration, Origination, StoredCredential, Termination,
    TerminationHealth, VoiceConnector,
};
use serde_json::{Value, json};
use store::SettingKind;

use super::numbers::{self, Target};
use super::{Ctx, member, next_token, opt_string, page, string};
use crate::ApiError;

const DEFAULT_REGION: &str = "us-east-1";

pub(super) async fn load(ctx: &Ctx<'_>, input: &Value) -> Result<VoiceConnector, ApiError> {
    let id = string(input, "VoiceConnectorId");
    ctx.state
        .repo
        .get_voice_connector(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("voice connector {id} not found")))
}

pub(super) async fn create(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let id = domain::ids::new_voice_connector_id();
    let now = now_millis();
    let region = opt_string(&input, "AwsRegion").unwrap_or_else(|| DEFAULT_REGION.to_string());
    let connector = VoiceConnector {
        outbound_host_name: vc::outbound_host_name(&id, &ctx.state.config.sip_domain),
        voice_connector_arn: vc::voice_connector_arn(&region, &id),
        voice_connector_id: id,
        aws_region: Some(region),
        name: string(&input, "Name"),
        require_encryption: input["RequireEncryption"].as_bool().unwrap_or(true),
        created_timestamp: iso8601(now),
        updated_timestamp: iso8601(now),
        integration_type: opt_string(&input, "IntegrationType"),
        network_type: opt_string(&input, "NetworkType"),
    };
    let tags = super::tags::creation_tags(&input)?;
    ctx.state
        .repo
        .insert_voice_connector(&connector, now)
        .await?;
    super::tags::tag_new(ctx, &connector.voice_connector_arn, &tags).await?;
    tracing::info!(voice_connector = %connector.voice_connector_id, host = %connector.outbound_host_name, "voice connector created");
    Ok(json!({ "VoiceConnector": connector }))
}

pub(super) async fn get(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    Ok(json!({ "VoiceConnector": load(ctx, &input).await? }))
}

pub(super) async fn list(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let (max, after) = page(&input);
    let items = ctx
        .state
        .repo
        .list_voice_connectors(after.as_deref(), max)
        .await?;
    let next = next_token(
        items.len(),
        max,
        items.last().map(|v| v.voice_connector_id.as_str()),
    );
    Ok(json!({ "VoiceConnectors": items, "NextToken": next }))
}

pub(super) async fn update(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let mut connector = load(ctx, &input).await?;
    connector.name = string(&input, "Name");
    connector.require_encryption = input["RequireEncryption"]
        .as_bool()
        .unwrap_or(connector.require_encryption);
    connector.updated_timestamp = iso8601(now_millis());
    if !ctx.state.repo.update_voice_connector(&connector).await? {
        return Err(ApiError::NotFound(format!(
            "voice connector {} not found",
            connector.voice_connector_id
        )));
    }
    Ok(json!({ "VoiceConnector": connector }))
}

pub(super) async fn delete(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let id = connector.voice_connector_id;
    if !ctx.state.repo.delete_voice_connector(&id).await? {
        return Err(ApiError::NotFound(format!(
            "voice connector {id} not found"
        )));
    }
    ctx.state
        .repo
        .delete_tags(&connector.voice_connector_arn)
        .await?;
    tracing::info!(voice_connector = %id, "voice connector deleted");
    Ok(Value::Null)
}

/// Settings documents share one shape of Get and Delete.
pub(super) async fn get_setting(
    ctx: &Ctx<'_>,
    input: &Value,
    kind: SettingKind,
) -> Result<Option<Value>, ApiError> {
    let connector = load(ctx, input).await?;
    Ok(ctx
        .state
        .repo
        .get_setting(&connector.voice_connector_id, kind)
        .await?)
}

pub(super) async fn delete_setting(
    ctx: &Ctx<'_>,
    input: &Value,
    kind: SettingKind,
    what: &str,
) -> Result<Value, ApiError> {
    let connector = load(ctx, input).await?;
    if !ctx
        .state
        .repo
        .delete_setting(&connector.voice_connector_id, kind)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "voice connector {} has no {what} settings",
            connector.voice_connector_id
        )));
    }
    Ok(Value::Null)
}

pub(super) async fn put_termination(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let mut t: Termination = member(&input, "Termination")?;
    t.validate()?;
    t.cps_limit.get_or_insert(vc::DEFAULT_CPS_LIMIT);
    t.disabled.get_or_insert(false);
    let doc = serde_json::to_value(&t).map_err(|e| ApiError::Internal(e.to_string()))?;
    ctx.state
        .repo
        .put_setting(
            &connector.voice_connector_id,
            SettingKind::Termination,
            &doc,
        )
        .await?;
    Ok(json!({ "Termination": doc }))
}

pub(super) async fn get_termination(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    match get_setting(ctx, &input, SettingKind::Termination).await? {
        Some(doc) => Ok(json!({ "Termination": doc })),
        None => Err(ApiError::NotFound(format!(
            "voice connector {} has no termination settings; call PutVoiceConnectorTermination first",
            string(&input, "VoiceConnectorId")
        ))),
    }
}

pub(super) async fn delete_termination(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    delete_setting(ctx, &input, SettingKind::Termination, "termination").await
}

/// Most termination credentials per connector.
const MAX_CREDENTIALS: usize = 100;

pub(super) async fn put_credentials(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let creds: Option<Vec<Credential>> = member(&input, "Credentials")?;
    let creds = creds.unwrap_or_default();
    let mut stored = Vec::with_capacity(creds.len());
    for c in &creds {
        let username = c.username.as_deref().unwrap_or("");
        let password = c.password.as_deref().unwrap_or("");
        stored.push(StoredCredential::derive(
            username,
            password,
            &connector.outbound_host_name,
        )?);
    }
    let existing = ctx
        .state
        .repo
        .list_credential_usernames(&connector.voice_connector_id)
        .await?;
    let total = existing.len()
        + stored
            .iter()
            .filter(|s| !existing.contains(&s.username))
            .count();
    if total > MAX_CREDENTIALS {
        return Err(ApiError::LimitExceeded(format!(
            "a voice connector holds at most {MAX_CREDENTIALS} termination credentials"
        )));
    }
    ctx.state
        .repo
        .put_credentials(&connector.voice_connector_id, &stored)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn list_credentials(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let names = ctx
        .state
        .repo
        .list_credential_usernames(&connector.voice_connector_id)
        .await?;
    Ok(json!({ "Usernames": names }))
}

pub(super) async fn delete_credentials(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let names: Vec<String> = member(&input, "Usernames")?;
    ctx.state
        .repo
        .delete_credentials(&connector.voice_connector_id, &names)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn get_health(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let doc = get_setting(ctx, &input, SettingKind::TerminationHealth).await?;
    let health = doc.unwrap_or_else(|| json!(TerminationHealth::default()));
    Ok(json!({ "TerminationHealth": health }))
}

pub(super) async fn put_origination(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let mut o: Origination = member(&input, "Origination")?;
    o.validate()?;
    o.disabled.get_or_insert(false);
    let doc = serde_json::to_value(&o).map_err(|e| ApiError::Internal(e.to_string()))?;
    ctx.state
        .repo
        .put_setting(
            &connector.voice_connector_id,
            SettingKind::Origination,
            &doc,
        )
        .await?;
    Ok(json!({ "Origination": doc }))
}

pub(super) async fn get_origination(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    match get_setting(ctx, &input, SettingKind::Origination).await? {
        Some(doc) => Ok(json!({ "Origination": doc })),
        None => Err(ApiError::NotFound(format!(
            "voice connector {} has no origination settings; call PutVoiceConnectorOrigination first",
            string(&input, "VoiceConnectorId")
        ))),
    }
}

pub(super) async fn delete_origination(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    delete_setting(ctx, &input, SettingKind::Origination, "origination").await
}

pub(super) async fn put_logging(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let mut l: LoggingConfiguration = member(&input, "LoggingConfiguration")?;
    l.enable_sip_logs.get_or_insert(false);
    l.enable_media_metric_logs.get_or_insert(false);
    let doc = serde_json::to_value(&l).map_err(|e| ApiError::Internal(e.to_string()))?;
    ctx.state
        .repo
        .put_setting(&connector.voice_connector_id, SettingKind::Logging, &doc)
        .await?;
    Ok(json!({ "LoggingConfiguration": doc }))
}

pub(super) async fn get_logging(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let doc = get_setting(ctx, &input, SettingKind::Logging).await?;
    let l =
        doc.unwrap_or_else(|| json!({ "EnableSIPLogs": false, "EnableMediaMetricLogs": false }));
    Ok(json!({ "LoggingConfiguration": l }))
}

pub(super) async fn associate_numbers(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let target = Target::Connector(&connector.voice_connector_id);
    numbers::change_association(ctx, &input, target, true).await
}

pub(super) async fn disassociate_numbers(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let target = Target::Connector(&connector.voice_connector_id);
    numbers::change_association(ctx, &input, target, false).await
}

pub(super) async fn get_phone_number(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let id = string(&input, "PhoneNumberId");
    let pn = ctx
        .state
        .repo
        .get_phone_number(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("phone number {id} not found")))?;
    Ok(json!({ "PhoneNumber": pn }))
}

pub(super) async fn list_phone_numbers(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let (max, after) = page(&input);
    let filter = opt_string(&input, "FilterName");
    let value = opt_string(&input, "FilterValue");
    if let (Some(name), None) = (&filter, &value) {
        return Err(ApiError::bad_request(format!(
            "FilterValue is required with FilterName {name}"
        )));
    }
    let status = opt_string(&input, "Status");
    let product = opt_string(&input, "ProductType");
    let repo = &ctx.state.repo;
    let items = match (filter.as_deref(), value.as_deref()) {
        (Some("VoiceConnectorGroupId"), Some(g)) => {
            repo.list_group_phone_numbers(g, after.as_deref(), max)
                .await?
        }
        (Some("VoiceConnectorId"), v) => repo.list_phone_numbers(v, after.as_deref(), max).await?,
        (Some(other), _) => {
            // SIP rules do not exist here, so nothing matches.
            tracing::debug!(
                filter = other,
                "phone-number filter matches nothing on this server"
            );
            return Ok(json!({ "PhoneNumbers": [] }));
        }
        (None, _) => repo.list_phone_numbers(None, after.as_deref(), max).await?,
    };
    let next = next_token(
        items.len(),
        max,
        items.last().map(|p| p.phone_number_id.as_str()),
    );
    let items: Vec<_> = items
        .into_iter()
        .filter(|p| status.as_ref().is_none_or(|s| *s == p.status))
        .filter(|p| product.as_ref().is_none_or(|s| *s == p.product_type))
        .collect();
    Ok(json!({ "PhoneNumbers": items, "NextToken": next }))
}
