//! Settings documents beyond termination and origination: the account's global settings
//! (the call-record bucket), a voice connector's external systems and emergency calling
//! configuration, and the regions a voice connector may be created in.

use std::collections::HashSet;

use domain::emergency::Dnis;
use domain::voice_connector::{country_of, is_country_code};
use serde_json::{Value, json};
use store::SettingKind;

use super::voice::{delete_setting, get_setting, load};
use super::{Ctx, member, string};
use crate::ApiError;
use crate::model::Service;

/// The account-settings document that holds UpdateGlobalSettings' input.
const GLOBAL_SETTINGS: &str = "global-settings";

pub(super) async fn list_regions(ctx: &Ctx<'_>, _input: Value) -> Result<Value, ApiError> {
    let regions = ctx
        .state
        .model
        .enum_values(Service::Voice, "VoiceConnectorAwsRegion")
        .unwrap_or_default();
    Ok(json!({ "VoiceConnectorRegions": regions }))
}

/// An S3 bucket name as S3 accepts it: 3–63 characters of lowercase letters, digits, dots
/// and hyphens, starting and ending with a letter or digit, no `..`, not an IPv4 address.
fn bucket_problem(name: &str) -> Option<&'static str> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&name.len()) {
        Some("must be 3 to 63 characters long")
    } else if !name.chars().all(ok_char) {
        Some("may hold only lowercase letters, digits, dots and hyphens")
    } else if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        Some("must start and end with a letter or digit")
    } else if name.contains("..") {
        Some("must not contain two dots in a row")
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        Some("must not be an IP address")
    } else {
        None
    }
}

pub(super) async fn get_global(ctx: &Ctx<'_>, _input: Value) -> Result<Value, ApiError> {
    let doc = ctx
        .state
        .repo
        .get_account_setting(GLOBAL_SETTINGS)
        .await?
        .unwrap_or_else(|| json!({ "VoiceConnector": {} }));
    Ok(doc)
}

pub(super) async fn update_global(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let mut doc = ctx
        .state
        .repo
        .get_account_setting(GLOBAL_SETTINGS)
        .await?
        .unwrap_or_else(|| json!({ "VoiceConnector": {} }));
    if let Some(vc) = input.get("VoiceConnector") {
        if let Some(bucket) = vc.get("CdrBucket").and_then(Value::as_str)
            && let Some(why) = bucket_problem(bucket)
        {
            return Err(ApiError::bad_request(format!(
                "VoiceConnector.CdrBucket {bucket:?} is not a valid bucket name: it {why}"
            )));
        }
        doc["VoiceConnector"] = vc.clone();
    }
    ctx.state
        .repo
        .put_account_setting(GLOBAL_SETTINGS, &doc)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn put_external_systems(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let mut doc = json!({});
    for field in ["SessionBorderControllerTypes", "ContactCenterSystemTypes"] {
        let list: Vec<String> = member::<Option<Vec<String>>>(&input, field)?.unwrap_or_default();
        let mut seen = HashSet::new();
        if let Some(dup) = list.iter().find(|v| !seen.insert(v.as_str())) {
            return Err(ApiError::bad_request(format!("{field} lists {dup} twice")));
        }
        doc[field] = json!(list);
    }
    ctx.state
        .repo
        .put_setting(
            &connector.voice_connector_id,
            SettingKind::ExternalSystems,
            &doc,
        )
        .await?;
    Ok(json!({ "ExternalSystemsConfiguration": doc }))
}

pub(super) async fn get_external_systems(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    match get_setting(ctx, &input, SettingKind::ExternalSystems).await? {
        Some(doc) => Ok(json!({ "ExternalSystemsConfiguration": doc })),
        None => Err(ApiError::NotFound(format!(
            "voice connector {} has no external systems configuration; call PutVoiceConnectorExternalSystemsConfiguration first",
            string(&input, "VoiceConnectorId")
        ))),
    }
}

pub(super) async fn delete_external_systems(
    ctx: &Ctx<'_>,
    input: Value,
) -> Result<Value, ApiError> {
    delete_setting(
        ctx,
        &input,
        SettingKind::ExternalSystems,
        "external systems",
    )
    .await
}

/// The number in E.164 with its `+` (the model allows it without).
fn e164(n: &str) -> String {
    if n.starts_with('+') {
        n.to_string()
    } else {
        format!("+{n}")
    }
}

pub(super) async fn put_emergency(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let config = input
        .get("EmergencyCallingConfiguration")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut dnis: Vec<Dnis> = member::<Option<Vec<Dnis>>>(&config, "DNIS")?.unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, d) in dnis.iter_mut().enumerate() {
        d.emergency_phone_number = e164(&d.emergency_phone_number);
        d.test_phone_number = d.test_phone_number.as_deref().map(e164);
        if country_of(&d.emergency_phone_number).is_none() {
            return Err(ApiError::bad_request(format!(
                "EmergencyCallingConfiguration.DNIS[{i}].EmergencyPhoneNumber {} is in no country's numbering plan",
                d.emergency_phone_number
            )));
        }
        if let Some(t) = d
            .test_phone_number
            .as_deref()
            .filter(|t| country_of(t).is_none())
        {
            return Err(ApiError::bad_request(format!(
                "EmergencyCallingConfiguration.DNIS[{i}].TestPhoneNumber {t} is in no country's numbering plan"
            )));
        }
        if !is_country_code(&d.calling_country) {
            return Err(ApiError::bad_request(format!(
                "EmergencyCallingConfiguration.DNIS[{i}].CallingCountry {:?} is not an ISO 3166-1 alpha-2 country code with a numbering plan (e.g. US)",
                d.calling_country
            )));
        }
        if !seen.insert((d.emergency_phone_number.clone(), d.calling_country.clone())) {
            return Err(ApiError::bad_request(format!(
                "EmergencyCallingConfiguration.DNIS[{i}]: {} for {} is listed twice",
                d.emergency_phone_number, d.calling_country
            )));
        }
    }
    let doc = json!({ "DNIS": dnis });
    ctx.state
        .repo
        .put_setting(
            &connector.voice_connector_id,
            SettingKind::EmergencyCalling,
            &doc,
        )
        .await?;
    Ok(json!({ "EmergencyCallingConfiguration": doc }))
}

pub(super) async fn get_emergency(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    match get_setting(ctx, &input, SettingKind::EmergencyCalling).await? {
        Some(doc) => Ok(json!({ "EmergencyCallingConfiguration": doc })),
        None => Err(ApiError::NotFound(format!(
            "voice connector {} has no emergency calling configuration; call PutVoiceConnectorEmergencyCallingConfiguration first",
            string(&input, "VoiceConnectorId")
        ))),
    }
}

pub(super) async fn delete_emergency(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    delete_setting(
        ctx,
        &input,
        SettingKind::EmergencyCalling,
        "emergency calling",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::bucket_problem;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["cdrs", "my.call-records.2026", "a1b"] {
            assert_eq!(bucket_problem(ok), None, "{ok}");
        }
        for bad in [
            "ab",
            "Upper",
            "-lead",
            "trail.",
            "a..b",
            "192.168.1.1",
            "under_score",
        ] {
            assert!(bucket_problem(bad).is_some(), "{bad}");
        }
    }
}
