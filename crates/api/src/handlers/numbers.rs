//! `chime-sdk-voice` phone-number operations beyond get and list: update (one or a batch),
//! delete into the deletion queue and restore from it, the account's default calling name,
//! and association with a voice connector or a group (shared by both).

use domain::timestamp::{iso8601, now_millis};
use domain::voice_connector::{DELETE_IN_PROGRESS, PhoneNumber, PhoneNumberAssociation};
use serde_json::{Value, json};

use super::{Ctx, member, opt_string, string};
use crate::ApiError;

/// The account setting document holding the default calling name.
const PHONE_NUMBER_SETTINGS: &str = "phone-number";

/// One entry of a `PhoneNumberErrors` list.
fn number_error(number: &str, code: &str, message: String) -> Value {
    json!({ "PhoneNumberId": number, "ErrorCode": code, "ErrorMessage": message })
}

/// Associates each number with the voice connector or group `id` (`kind` is the
/// association's name: `VoiceConnectorId` or `VoiceConnectorGroupId`). Returns the
/// `PhoneNumberErrors`: numbers not in the inventory, in the deletion queue, or associated
/// elsewhere without `force`.
async fn associate(
    ctx: &Ctx<'_>,
    numbers: Vec<String>,
    kind: &str,
    id: &str,
    force: bool,
) -> Result<Vec<Value>, ApiError> {
    let mut errors = Vec::new();
    for n in numbers {
        let Some(mut pn) = ctx.state.repo.get_phone_number(&n).await? else {
            errors.push(number_error(&n, "NotFound", format!("{n} is not in the phone-number inventory; add it with `voice-connector admin add-numbers`")));
            continue;
        };
        if pn.is_deleted() {
            errors.push(number_error(
                &n,
                "BadRequest",
                format!("{n} is being deleted; restore it with RestorePhoneNumber first"),
            ));
            continue;
        }
        // As AWS: a number a SIP rule answers is the rule's, whatever ForceAssociate says.
        if let Some(rule) = ctx.state.repo.sip_rule_for_number(&n).await? {
            errors.push(number_error(
                &n,
                "Conflict",
                format!(
                    "{n} triggers SIP rule {}; delete the rule first",
                    rule.sip_rule_id
                ),
            ));
            continue;
        }
        match pn.associations.first() {
            Some(a) if a.name == kind && a.value == id => continue,
            Some(a) if !force => {
                let what = if a.name == "VoiceConnectorGroupId" {
                    "voice connector group"
                } else {
                    "voice connector"
                };
                errors.push(number_error(
                    &n,
                    "Conflict",
                    format!(
                        "{n} is associated with {what} {}; set ForceAssociate to move it",
                        a.value
                    ),
                ));
                continue;
            }
            _ => {}
        }
        let now = iso8601(now_millis());
        pn.associations = vec![PhoneNumberAssociation {
            value: id.to_string(),
            name: kind.to_string(),
            associated_timestamp: now.clone(),
        }];
        pn.status = "Assigned".to_string();
        pn.updated_timestamp = now;
        ctx.state.repo.update_phone_number(&pn).await?;
    }
    Ok(errors)
}

/// Disassociates each number from the voice connector or group `id`; `what` names it in
/// the errors ("voice connector", "voice connector group").
async fn disassociate(
    ctx: &Ctx<'_>,
    numbers: Vec<String>,
    kind: &str,
    id: &str,
    what: &str,
) -> Result<Vec<Value>, ApiError> {
    let mut errors = Vec::new();
    for n in numbers {
        match ctx.state.repo.get_phone_number(&n).await? {
            Some(mut pn)
                if pn
                    .associations
                    .iter()
                    .any(|a| a.name == kind && a.value == id) =>
            {
                pn.associations.clear();
                pn.status = "Unassigned".to_string();
                pn.updated_timestamp = iso8601(now_millis());
                ctx.state.repo.update_phone_number(&pn).await?;
            }
            Some(_) => errors.push(number_error(
                &n,
                "BadRequest",
                format!("{n} is not associated with {what} {id}"),
            )),
            None => errors.push(number_error(
                &n,
                "NotFound",
                format!("{n} is not in the phone-number inventory"),
            )),
        }
    }
    Ok(errors)
}

/// Which association a request changes: a voice connector's or a group's.
pub(super) enum Target<'a> {
    Connector(&'a str),
    Group(&'a str),
}

/// The body of the four Associate/Disassociate operations: reads `E164PhoneNumbers` (and
/// `ForceAssociate`) and answers `PhoneNumberErrors`.
pub(super) async fn change_association(
    ctx: &Ctx<'_>,
    input: &Value,
    target: Target<'_>,
    add: bool,
) -> Result<Value, ApiError> {
    let numbers: Vec<String> = member(input, "E164PhoneNumbers")?;
    let (kind, id, what) = match target {
        Target::Connector(id) => ("VoiceConnectorId", id, "voice connector"),
        Target::Group(id) => ("VoiceConnectorGroupId", id, "voice connector group"),
    };
    let errors = if add {
        let force = input
            .get("ForceAssociate")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        associate(ctx, numbers, kind, id, force).await?
    } else {
        disassociate(ctx, numbers, kind, id, what).await?
    };
    Ok(json!({ "PhoneNumberErrors": errors }))
}

async fn load(ctx: &Ctx<'_>, id: &str) -> Result<PhoneNumber, ApiError> {
    ctx.state
        .repo
        .get_phone_number(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("phone number {id} not found")))
}

/// `^$|^[a-zA-Z0-9 ]{2,15}$` (the model checks it on requests; batch items are checked
/// here too, since their errors go in the list rather than failing the call).
fn valid_calling_name(s: &str) -> bool {
    s.is_empty()
        || ((2..=15).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' '))
}

/// Applies one update item (`ProductType`, `CallingName`, `Name`) to number `id`.
async fn apply_update(ctx: &Ctx<'_>, id: &str, item: &Value) -> Result<PhoneNumber, ApiError> {
    let mut pn = load(ctx, id).await?;
    if pn.is_deleted() {
        return Err(ApiError::bad_request(format!(
            "PhoneNumberId: {id} is being deleted; restore it with RestorePhoneNumber first"
        )));
    }
    if let Some(product) = opt_string(item, "ProductType")
        && product != pn.product_type
    {
        if !pn.associations.is_empty() {
            return Err(ApiError::Conflict(format!(
                "{id} is associated; disassociate it before changing its ProductType"
            )));
        }
        pn.product_type = product;
    }
    if let Some(name) = opt_string(item, "CallingName") {
        if !valid_calling_name(&name) {
            return Err(ApiError::bad_request(
                "CallingName: 2 to 15 letters, digits or spaces (or empty to clear it)",
            ));
        }
        // Self-hosted: nothing to propagate to a carrier database, so it takes effect now.
        if name.is_empty() {
            pn.calling_name = None;
            pn.calling_name_status = Some("Unassigned".to_string());
        } else {
            pn.calling_name = Some(name);
            pn.calling_name_status = Some("UpdateSucceeded".to_string());
        }
    }
    if let Some(name) = opt_string(item, "Name") {
        pn.name = (!name.is_empty()).then_some(name);
    }
    pn.updated_timestamp = iso8601(now_millis());
    ctx.state.repo.update_phone_number(&pn).await?;
    Ok(pn)
}

pub(super) async fn update(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let id = string(&input, "PhoneNumberId");
    let pn = apply_update(ctx, &id, &input).await?;
    Ok(json!({ "PhoneNumber": pn }))
}

pub(super) async fn batch_update(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let items: Vec<Value> = member(&input, "UpdatePhoneNumberRequestItems")?;
    let mut errors = Vec::new();
    for item in &items {
        let id = string(item, "PhoneNumberId");
        if let Err(e) = apply_update(ctx, &id, item).await {
            let code = match &e {
                ApiError::NotFound(_) => "NotFound",
                ApiError::Conflict(_) => "Conflict",
                ApiError::BadRequest(_) => "BadRequest",
                // A fault of ours fails the whole call, as any other operation would.
                _ => return Err(e),
            };
            errors.push(number_error(&id, code, e.to_string()));
        }
    }
    Ok(json!({ "PhoneNumberErrors": errors }))
}

pub(super) async fn delete(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    delete_one(ctx, &string(&input, "PhoneNumberId")).await?;
    Ok(json!({}))
}

/// Most numbers in one BatchDeletePhoneNumber.
const MAX_BATCH_DELETE: usize = 100;

pub(super) async fn batch_delete(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let ids: Vec<String> = member(&input, "PhoneNumberIds")?;
    if ids.len() > MAX_BATCH_DELETE {
        return Err(ApiError::bad_request(format!(
            "PhoneNumberIds: at most {MAX_BATCH_DELETE} numbers at once (got {})",
            ids.len()
        )));
    }
    let mut errors = Vec::new();
    for id in &ids {
        if let Err(e) = delete_one(ctx, id).await {
            let code = match &e {
                ApiError::NotFound(_) => "NotFound",
                ApiError::BadRequest(_) => "BadRequest",
                _ => return Err(e),
            };
            errors.push(number_error(id, code, e.to_string()));
        }
    }
    Ok(json!({ "PhoneNumberErrors": errors }))
}

/// Moves a number into the deletion queue (already there: nothing to do).
async fn delete_one(ctx: &Ctx<'_>, id: &str) -> Result<(), ApiError> {
    let id = id.to_string();
    let mut pn = load(ctx, &id).await?;
    if pn.is_deleted() {
        return Ok(());
    }
    if let Some(a) = pn.associations.first() {
        return Err(ApiError::bad_request(format!(
            "PhoneNumberId: {id} is associated with {} {}; disassociate it first",
            a.name, a.value
        )));
    }
    let now = iso8601(now_millis());
    pn.status = DELETE_IN_PROGRESS.to_string();
    pn.deletion_timestamp = Some(now.clone());
    pn.updated_timestamp = now;
    ctx.state.repo.update_phone_number(&pn).await?;
    tracing::info!(number = %id, "phone number moved to the deletion queue");
    Ok(())
}

pub(super) async fn restore(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let id = string(&input, "PhoneNumberId");
    let mut pn = load(ctx, &id).await?;
    if !pn.is_deleted() {
        return Err(ApiError::bad_request(format!(
            "PhoneNumberId: {id} is not in the deletion queue (status {})",
            pn.status
        )));
    }
    pn.status = "Unassigned".to_string();
    pn.deletion_timestamp = None;
    pn.updated_timestamp = iso8601(now_millis());
    ctx.state.repo.update_phone_number(&pn).await?;
    Ok(json!({ "PhoneNumber": pn }))
}

pub(super) async fn get_settings(ctx: &Ctx<'_>, _input: Value) -> Result<Value, ApiError> {
    let doc = ctx
        .state
        .repo
        .get_account_setting(PHONE_NUMBER_SETTINGS)
        .await?;
    Ok(doc.unwrap_or_else(|| json!({})))
}

pub(super) async fn update_settings(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let name = string(&input, "CallingName");
    let doc = json!({
        "CallingName": name,
        "CallingNameUpdatedTimestamp": iso8601(now_millis()),
    });
    ctx.state
        .repo
        .put_account_setting(PHONE_NUMBER_SETTINGS, &doc)
        .await?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    #[test]
    fn calling_names() {
        for ok in ["", "Example Co", "AB", "123456789012345"] {
            assert!(super::valid_calling_name(ok), "{ok:?}");
        }
        for bad in ["A", "Example, Inc.", "1234567890123456", "Zoë"] {
            assert!(!super::valid_calling_name(bad), "{bad:?}");
        }
    }
}
