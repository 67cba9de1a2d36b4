//! TagResource, UntagResource and ListTagsForResource of both services, by ARN: voice
//! connectors (`vc/`), voice connector groups (`vcg/`), SIP media applications (`sma/`) and
//! meetings (`meeting/`). Both services model the same routes (`/tags`); which one a request
//! is for follows from the ARN, so validation and error names are that service's.

use serde::Deserialize;
use serde_json::{Value, json};
use store::MAX_TAGS_PER_RESOURCE;

use super::{Ctx, member, string};
use crate::ApiError;
use crate::model::{Matched, Model, Service};

const TAG_OPERATIONS: [&str; 3] = ["TagResource", "UntagResource", "ListTagsForResource"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    value: String,
}

/// The service whose resource an ARN names.
fn service_of(arn: &str) -> Service {
    if arn.contains(":meeting/") {
        Service::Meetings
    } else {
        Service::Voice
    }
}

/// For a tag operation, the same operation of the service the ARN (query `arn` or body
/// `ResourceARN`) belongs to; any other operation as routed.
pub(crate) fn for_arn_service<'m>(
    model: &'m Model,
    matched: Matched<'m>,
    method: &str,
    raw_path: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Matched<'m> {
    if !TAG_OPERATIONS.contains(&matched.op.name.as_str()) {
        return matched;
    }
    let from_query = query
        .iter()
        .find(|(k, _)| k == "arn")
        .map(|(_, v)| v.clone());
    let arn = from_query.or_else(|| {
        serde_json::from_slice::<Value>(body)
            .ok()?
            .get("ResourceARN")?
            .as_str()
            .map(str::to_string)
    });
    let Some(arn) = arn else { return matched };
    let want = service_of(&arn);
    if want == matched.op.service {
        return matched;
    }
    model
        .route_in(want, method, raw_path, query)
        .unwrap_or(matched)
}

/// Checks that the ARN names an existing resource of ours (its stored ARN is this one).
async fn check_exists(ctx: &Ctx<'_>, arn: &str) -> Result<(), ApiError> {
    let repo = &ctx.state.repo;
    let id = arn.rsplit_once('/').map(|(_, id)| id).unwrap_or_default();
    let kind = arn
        .rsplit_once('/')
        .and_then(|(head, _)| head.rsplit_once(':'))
        .map(|(_, kind)| kind)
        .unwrap_or_default();
    let stored = match kind {
        "vc" => repo
            .get_voice_connector(id)
            .await?
            .map(|v| v.voice_connector_arn),
        "vcg" => repo
            .get_voice_connector_group(id)
            .await?
            .map(|g| g.voice_connector_group_arn),
        "sma" => repo
            .get_sip_media_application(id)
            .await?
            .map(|a| a.sip_media_application_arn),
        "meeting" => repo.get_meeting(id).await?.map(|m| m.meeting.meeting_arn),
        _ => None,
    };
    if stored.as_deref() == Some(arn) {
        return Ok(());
    }
    let msg = format!(
        "ResourceARN {arn} names no voice connector, voice connector group, SIP media application or meeting here"
    );
    Err(match service_of(arn) {
        Service::Meetings => ApiError::ResourceNotFound(msg),
        Service::Voice => ApiError::NotFound(msg),
    })
}

/// The `Tags` given at creation (CreateVoiceConnector, CreateSipMediaApplication,
/// CreateMeeting…), checked before the resource is created; none when there are none.
pub(crate) fn creation_tags(input: &Value) -> Result<Vec<(String, String)>, ApiError> {
    if input.get("Tags").is_none() {
        return Ok(Vec::new());
    }
    read_tags(input)
}

/// Stores creation tags on the resource just created.
pub(crate) async fn tag_new(
    ctx: &Ctx<'_>,
    arn: &str,
    tags: &[(String, String)],
) -> Result<(), ApiError> {
    if !tags.is_empty() {
        ctx.state.repo.tag_resource(arn, tags).await?;
    }
    Ok(())
}

fn read_tags(input: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let tags: Vec<Tag> = member(input, "Tags")?;
    if let Some(t) = tags.iter().find(|t| t.key.starts_with("aws:")) {
        return Err(ApiError::bad_request(format!(
            "Tags: the key {:?} starts with \"aws:\", which is reserved",
            t.key
        )));
    }
    Ok(tags.into_iter().map(|t| (t.key, t.value)).collect())
}

pub(super) async fn tag(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let arn = string(&input, "ResourceARN");
    check_exists(ctx, &arn).await?;
    let tags = read_tags(&input)?;
    match ctx.state.repo.tag_resource(&arn, &tags).await {
        Err(store::StoreError::Domain(domain::DomainError::LimitExceeded { .. })) => {
            let msg = format!(
                "Tags: a resource carries at most {MAX_TAGS_PER_RESOURCE} tags; {arn} would have more"
            );
            Err(match service_of(&arn) {
                Service::Meetings => ApiError::TooManyTags(msg),
                Service::Voice => ApiError::LimitExceeded(msg),
            })
        }
        other => Ok(other.map(|()| Value::Null)?),
    }
}

pub(super) async fn untag(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let arn = string(&input, "ResourceARN");
    check_exists(ctx, &arn).await?;
    let keys: Vec<String> = member(&input, "TagKeys")?;
    ctx.state.repo.untag_resource(&arn, &keys).await?;
    Ok(Value::Null)
}

pub(super) async fn list(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let arn = string(&input, "ResourceARN");
    check_exists(ctx, &arn).await?;
    let tags: Vec<Value> = ctx
        .state
        .repo
        .list_tags(&arn)
        .await?
        .into_iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({ "Tags": tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arn_picks_the_service() {
        assert_eq!(
            service_of("arn:aws:chime:us-east-1:000000000000:meeting/abc"),
            Service::Meetings
        );
        assert_eq!(
            service_of("arn:aws:chime:us-east-1:000000000000:vc/abc"),
            Service::Voice
        );
        let model = Model::load();
        let q = vec![(
            "arn".to_string(),
            "arn:aws:chime:us-east-1:000000000000:meeting/abc".to_string(),
        )];
        let first = model.route("GET", "/tags", &q).expect("routed");
        let m = for_arn_service(&model, first, "GET", "/tags", &q, b"");
        assert_eq!(
            (m.op.name.as_str(), m.op.service),
            ("ListTagsForResource", Service::Meetings)
        );
        let body =
            br#"{"ResourceARN":"arn:aws:chime:us-east-1:000000000000:sma/x","TagKeys":["a"]}"#;
        let tq = vec![("operation".to_string(), "untag-resource".to_string())];
        let first = model.route("POST", "/tags", &tq).expect("routed");
        let m = for_arn_service(&model, first, "POST", "/tags", &tq, body);
        assert_eq!(
            (m.op.name.as_str(), m.op.service),
            ("UntagResource", Service::Voice)
        );
    }
}
