//! `chime-sdk-voice` voice connector groups: CRUD and phone-number association.

use domain::group::{self, VoiceConnectorGroup, VoiceConnectorItem};
use domain::timestamp::{iso8601, now_millis};
use serde_json::{Value, json};

use super::numbers::{self, Target};
use super::{Ctx, member, next_token, page, string};
use crate::ApiError;

const REGION: &str = "us-east-1";

async fn load(ctx: &Ctx<'_>, input: &Value) -> Result<VoiceConnectorGroup, ApiError> {
    let id = string(input, "VoiceConnectorGroupId");
    ctx.state
        .repo
        .get_voice_connector_group(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("voice connector group {id} not found")))
}

/// The items of a request, checked: count, priorities, duplicates, and that every connector
/// exists (BadRequest naming the item, as the rest of the request's validation does).
async fn items(ctx: &Ctx<'_>, input: &Value) -> Result<Vec<VoiceConnectorItem>, ApiError> {
    let items: Vec<VoiceConnectorItem> = match input.get("VoiceConnectorItems") {
        Some(Value::Null) | None => Vec::new(),
        Some(_) => member(input, "VoiceConnectorItems")?,
    };
    VoiceConnectorGroup::validate_items(&items)?;
    for (i, item) in items.iter().enumerate() {
        if ctx
            .state
            .repo
            .get_voice_connector(&item.voice_connector_id)
            .await?
            .is_none()
        {
            return Err(ApiError::bad_request(format!(
                "VoiceConnectorItems[{i}].VoiceConnectorId: voice connector {} does not exist",
                item.voice_connector_id
            )));
        }
    }
    Ok(items)
}

pub(super) async fn create(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let items = items(ctx, &input).await?;
    let id = domain::ids::new_uuid();
    let now = now_millis();
    let g = VoiceConnectorGroup {
        voice_connector_group_arn: group::voice_connector_group_arn(REGION, &id),
        voice_connector_group_id: id,
        name: string(&input, "Name"),
        voice_connector_items: items,
        created_timestamp: iso8601(now),
        updated_timestamp: iso8601(now),
    };
    ctx.state.repo.insert_voice_connector_group(&g, now).await?;
    tracing::info!(group = %g.voice_connector_group_id, members = g.voice_connector_items.len(), "voice connector group created");
    Ok(json!({ "VoiceConnectorGroup": g }))
}

pub(super) async fn get(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    Ok(json!({ "VoiceConnectorGroup": load(ctx, &input).await? }))
}

pub(super) async fn list(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let (max, after) = page(&input);
    let groups = ctx
        .state
        .repo
        .list_voice_connector_groups(after.as_deref(), max)
        .await?;
    let next = next_token(
        groups.len(),
        max,
        groups.last().map(|g| g.voice_connector_group_id.as_str()),
    );
    Ok(json!({ "VoiceConnectorGroups": groups, "NextToken": next }))
}

pub(super) async fn update(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let mut g = load(ctx, &input).await?;
    g.voice_connector_items = items(ctx, &input).await?;
    g.name = string(&input, "Name");
    g.updated_timestamp = iso8601(now_millis());
    if !ctx.state.repo.update_voice_connector_group(&g).await? {
        return Err(ApiError::NotFound(format!(
            "voice connector group {} not found",
            g.voice_connector_group_id
        )));
    }
    Ok(json!({ "VoiceConnectorGroup": g }))
}

pub(super) async fn delete(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let g = load(ctx, &input).await?;
    // As AWS: the group's voice connectors and phone numbers must be removed first.
    if !g.voice_connector_items.is_empty() {
        return Err(ApiError::Conflict(format!(
            "voice connector group {} still has {} voice connector(s); remove them with UpdateVoiceConnectorGroup first",
            g.voice_connector_group_id,
            g.voice_connector_items.len()
        )));
    }
    if !ctx
        .state
        .repo
        .delete_voice_connector_group(&g.voice_connector_group_id)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "voice connector group {} not found",
            g.voice_connector_group_id
        )));
    }
    ctx.state
        .repo
        .delete_tags(&g.voice_connector_group_arn)
        .await?;
    Ok(json!({}))
}

pub(super) async fn associate_numbers(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let g = load(ctx, &input).await?;
    let target = Target::Group(&g.voice_connector_group_id);
    numbers::change_association(ctx, &input, target, true).await
}

pub(super) async fn disassociate_numbers(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let g = load(ctx, &input).await?;
    let target = Target::Group(&g.voice_connector_group_id);
    numbers::change_association(ctx, &input, target, false).await
}
