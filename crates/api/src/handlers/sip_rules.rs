//! `chime-sdk-voice` SIP rules (issue 13): what starts a SIP media application. A rule is
//! triggered by a call to a phone number of the inventory (`ToPhoneNumber`; the number
//! must not be assigned to a voice connector or group, as AWS checks) or by the
//! Request-URI host of one of our voice connectors (`RequestUriHostname`). The checks the
//! model cannot express are here and in `domain::sma`; the store refuses a second rule
//! with the same trigger and deleting a rule that is enabled.

use domain::sma::{SipRule, SipRuleTargetApplication, SipRuleTriggerType};
use domain::timestamp::{iso8601, now_millis};
use serde_json::{Value, json};

use super::{Ctx, member, next_token, opt_string, page, sma, string};
use crate::ApiError;

async fn load(ctx: &Ctx<'_>, input: &Value) -> Result<SipRule, ApiError> {
    let id = string(input, "SipRuleId");
    ctx.state
        .repo
        .get_sip_rule(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("SIP rule {id} not found")))
}

/// The request's TargetApplications, checked: the domain rules (regions, no priority or
/// application twice), then that each application exists, is in the region given, and
/// that no two targets share a region (AWS: one application per region).
async fn targets(
    ctx: &Ctx<'_>,
    input: &Value,
) -> Result<Option<Vec<SipRuleTargetApplication>>, ApiError> {
    let targets: Vec<SipRuleTargetApplication> = match input.get("TargetApplications") {
        Some(Value::Null) | None => return Ok(None),
        Some(_) => member(input, "TargetApplications")?,
    };
    SipRule::validate_targets(&targets)?;
    for (i, t) in targets.iter().enumerate() {
        let field = format!("TargetApplications[{i}]");
        let a = match sma::load(ctx, &t.sip_media_application_id).await {
            Ok(a) => a,
            Err(ApiError::NotFound(_)) => {
                return Err(ApiError::bad_request(format!(
                    "{field}.SipMediaApplicationId: SIP media application {} does not exist",
                    t.sip_media_application_id
                )));
            }
            Err(e) => return Err(e),
        };
        if a.aws_region != t.aws_region {
            return Err(ApiError::bad_request(format!(
                "{field}.AwsRegion: SIP media application {} is in {}, not {}",
                a.sip_media_application_id, a.aws_region, t.aws_region
            )));
        }
        if let Some(j) = targets[..i]
            .iter()
            .position(|o| o.aws_region == t.aws_region)
        {
            return Err(ApiError::bad_request(format!(
                "{field}.AwsRegion: TargetApplications[{j}] is in {} already; a rule has one application per region",
                t.aws_region
            )));
        }
    }
    Ok(Some(targets))
}

/// The trigger's target exists here and is free for a rule.
async fn check_trigger(ctx: &Ctx<'_>, rule: &SipRule) -> Result<(), ApiError> {
    let value = &rule.trigger_value;
    match rule.trigger_type {
        SipRuleTriggerType::ToPhoneNumber => {
            let n = match ctx.state.repo.get_phone_number(value).await? {
                Some(n) if !n.is_deleted() => n,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "TriggerValue: {value} is not in the phone-number inventory; add it with `voice-connector admin add-numbers`"
                    )));
                }
            };
            if let Some(a) = n.associations.first() {
                return Err(ApiError::bad_request(format!(
                    "TriggerValue: {value} is assigned to {} {}; disassociate it first",
                    a.name, a.value
                )));
            }
        }
        SipRuleTriggerType::RequestUriHostname => {
            let suffix = format!(".{}", ctx.state.config.sip_domain.to_ascii_lowercase());
            let connector = match value.strip_suffix(&suffix) {
                Some(id) if !id.is_empty() => ctx.state.repo.get_voice_connector(id).await?,
                _ => None,
            };
            if !connector.is_some_and(|vc| vc.outbound_host_name.eq_ignore_ascii_case(value)) {
                return Err(ApiError::bad_request(format!(
                    "TriggerValue: {value} is not the outbound host name of a voice connector here (<voice connector id>{suffix})"
                )));
            }
        }
    }
    Ok(())
}

pub(super) async fn create(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let trigger_type: SipRuleTriggerType = member(&input, "TriggerType")?;
    let Some(targets) = targets(ctx, &input).await? else {
        return Err(ApiError::bad_request(
            "TargetApplications: a rule needs at least one SIP media application",
        ));
    };
    let now = now_millis();
    let mut rule = SipRule {
        sip_rule_id: domain::ids::new_uuid(),
        name: string(&input, "Name"),
        disabled: input["Disabled"].as_bool().unwrap_or(false),
        trigger_type,
        trigger_value: string(&input, "TriggerValue"),
        target_applications: targets,
        created_timestamp: iso8601(now),
        updated_timestamp: iso8601(now),
    };
    rule.validate()?;
    check_trigger(ctx, &rule).await?;
    ctx.state.repo.insert_sip_rule(&rule, now).await?;
    tracing::info!(sip_rule = %rule.sip_rule_id, trigger = rule.trigger_type.as_str(), "SIP rule created");
    Ok(json!({ "SipRule": rule }))
}

pub(super) async fn get(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    Ok(json!({ "SipRule": load(ctx, &input).await? }))
}

pub(super) async fn list(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let (max, after) = page(&input);
    let sma_id = opt_string(&input, "SipMediaApplicationId");
    let rules = ctx
        .state
        .repo
        .list_sip_rules(sma_id.as_deref(), after.as_deref(), max)
        .await?;
    let next = next_token(
        rules.len(),
        max,
        rules.last().map(|r| r.sip_rule_id.as_str()),
    );
    Ok(json!({ "SipRules": rules, "NextToken": next }))
}

pub(super) async fn update(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let mut rule = load(ctx, &input).await?;
    rule.name = string(&input, "Name");
    if let Some(disabled) = input["Disabled"].as_bool() {
        rule.disabled = disabled;
    }
    if let Some(targets) = targets(ctx, &input).await? {
        rule.target_applications = targets;
    }
    rule.updated_timestamp = iso8601(now_millis());
    if !ctx.state.repo.update_sip_rule(&rule).await? {
        return Err(ApiError::NotFound(format!(
            "SIP rule {} not found",
            rule.sip_rule_id
        )));
    }
    tracing::info!(sip_rule = %rule.sip_rule_id, disabled = rule.disabled, "SIP rule updated");
    Ok(json!({ "SipRule": rule }))
}

pub(super) async fn delete(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let id = string(&input, "SipRuleId");
    // An enabled rule is refused (ConflictException): disable it first, as AWS requires.
    if !ctx.state.repo.delete_sip_rule(&id).await? {
        return Err(ApiError::NotFound(format!("SIP rule {id} not found")));
    }
    tracing::info!(sip_rule = %id, "SIP rule deleted");
    Ok(json!({}))
}
