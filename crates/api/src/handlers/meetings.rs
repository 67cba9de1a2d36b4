//! `chime-sdk-meetings` operations: meetings and attendees, with join tokens.

use domain::meeting::{
    self as mt, Attendee, AttendeeCapabilities, AttendeeRecord, MAX_ATTENDEES, MediaPlacement,
    Meeting, MeetingRecord,
};
use domain::timestamp::now_millis;
use domain::token;
use serde_json::{Value, json};
use store::{AttendeeInsert, MeetingInsert, StoreError};

use super::{ControlEvent, Ctx, member, next_token, opt_string, page, string};
use crate::ApiError;

/// Loads a meeting, ending it first if AWS's auto-end rules say it is over.
pub(super) async fn load(ctx: &Ctx<'_>, meeting_id: &str) -> Result<MeetingRecord, ApiError> {
    let not_found = || ApiError::NotFound(format!("meeting {meeting_id} not found or has ended"));
    let rec = ctx
        .state
        .repo
        .get_meeting(meeting_id)
        .await?
        .ok_or_else(not_found)?;
    if rec.expired(now_millis(), None) {
        end_meeting(ctx.state, meeting_id).await?;
        return Err(not_found());
    }
    Ok(rec)
}

/// Deletes a meeting and tells the media side. Used by DeleteMeeting and the auto-end sweep.
pub async fn end_meeting(state: &crate::AppState, meeting_id: &str) -> Result<bool, StoreError> {
    let Some(rec) = state.repo.get_meeting(meeting_id).await? else {
        return Ok(false);
    };
    let deleted = state.repo.delete_meeting(meeting_id).await?;
    if deleted {
        state.repo.delete_tags(&rec.meeting.meeting_arn).await?;
        tracing::info!(meeting = %meeting_id, "meeting ended");
        let _ = state.events.send(ControlEvent::MeetingDeleted {
            meeting_id: meeting_id.to_string(),
        });
    }
    Ok(deleted)
}

fn max_attendees(m: &Meeting) -> u32 {
    m.meeting_features
        .as_ref()
        .and_then(|f| f.pointer("/Attendee/MaxCount"))
        .and_then(Value::as_u64)
        .map(|n| (n as u32).min(MAX_ATTENDEES))
        .unwrap_or(MAX_ATTENDEES)
}

pub(super) async fn create(
    ctx: &Ctx<'_>,
    input: Value,
    with_attendees: bool,
) -> Result<Value, ApiError> {
    let crt = string(&input, "ClientRequestToken");
    // ClientRequestToken makes creation idempotent: a retry returns the same meeting, also
    // when it races the first try (the store resolves that atomically). A meeting that has
    // ended by AWS's auto-end rules no longer holds its token.
    let existing = match ctx.state.repo.find_meeting_by_request_token(&crt).await? {
        Some(m) if m.expired(now_millis(), None) => {
            end_meeting(ctx.state, &m.meeting.meeting_id).await?;
            None
        }
        other => other,
    };
    let rec = match existing {
        Some(m) => m,
        None => {
            let id = domain::ids::new_uuid();
            let region = string(&input, "MediaRegion");
            let now = now_millis();
            let rec = MeetingRecord {
                meeting: Meeting {
                    media_placement: MediaPlacement::for_origin(ctx.secure, &ctx.host, &id),
                    meeting_arn: mt::meeting_arn(&region, &id),
                    meeting_id: id,
                    meeting_host_id: opt_string(&input, "MeetingHostId"),
                    external_meeting_id: string(&input, "ExternalMeetingId"),
                    media_region: region,
                    meeting_features: input.get("MeetingFeatures").cloned(),
                    primary_meeting_id: opt_string(&input, "PrimaryMeetingId"),
                    tenant_ids: member(&input, "TenantIds")?,
                },
                client_request_token: crt,
                created_ms: now,
                last_audio_ms: now,
            };
            let tags = super::tags::creation_tags(&input)?;
            match ctx.state.repo.insert_meeting(&rec).await? {
                MeetingInsert::Created(rec) => {
                    super::tags::tag_new(ctx, &rec.meeting.meeting_arn, &tags).await?;
                    tracing::info!(meeting = %rec.meeting.meeting_id, "meeting created");
                    rec
                }
                MeetingInsert::Existing(rec) => rec,
            }
        }
    };
    if !with_attendees {
        return Ok(json!({ "Meeting": rec.meeting }));
    }
    let items: Vec<Value> = member(&input, "Attendees")?;
    let (attendees, errors) = add_attendees(ctx, &rec.meeting, &items).await?;
    Ok(json!({ "Meeting": rec.meeting, "Attendees": attendees, "Errors": errors }))
}

pub(super) async fn get(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let rec = load(ctx, &string(&input, "MeetingId")).await?;
    Ok(json!({ "Meeting": rec.meeting }))
}

pub(super) async fn delete(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let id = string(&input, "MeetingId");
    if !end_meeting(ctx.state, &id).await? {
        return Err(ApiError::NotFound(format!(
            "meeting {id} not found or has ended"
        )));
    }
    Ok(Value::Null)
}

pub(super) fn to_attendee(ctx: &Ctx<'_>, r: &AttendeeRecord) -> Attendee {
    Attendee {
        external_user_id: r.external_user_id.clone(),
        attendee_id: r.attendee_id.clone(),
        join_token: ctx
            .state
            .token_key
            .token_for(&r.attendee_id, &r.token_nonce),
        capabilities: r.capabilities,
    }
}

/// Adds one attendee, or returns the existing one with the same ExternalUserId.
async fn add_attendee(
    ctx: &Ctx<'_>,
    meeting: &Meeting,
    item: &Value,
) -> Result<Attendee, ApiError> {
    let external_user_id = string(item, "ExternalUserId");
    let features = meeting.meeting_features.as_ref();
    let capabilities = match member::<Option<AttendeeCapabilities>>(item, "Capabilities")? {
        Some(c) => {
            c.validate(features, "Capabilities")?;
            c
        }
        None => AttendeeCapabilities::default_for(features),
    };
    let attendee_id = domain::ids::new_uuid();
    let (nonce, tok) = ctx.state.token_key.mint(&attendee_id);
    let rec = AttendeeRecord {
        meeting_id: meeting.meeting_id.clone(),
        attendee_id,
        external_user_id,
        capabilities,
        token_nonce: nonce,
        token_hash: token::token_hash(&tok),
        created_ms: now_millis(),
    };
    match ctx
        .state
        .repo
        .insert_attendee(&rec, max_attendees(meeting))
        .await?
    {
        AttendeeInsert::Created(r) | AttendeeInsert::Existing(r) => Ok(to_attendee(ctx, &r)),
    }
}

async fn add_attendees(
    ctx: &Ctx<'_>,
    meeting: &Meeting,
    items: &[Value],
) -> Result<(Vec<Attendee>, Vec<Value>), ApiError> {
    let mut attendees = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        match add_attendee(ctx, meeting, item).await {
            Ok(a) => attendees.push(a),
            Err(e @ (ApiError::LimitExceeded(_) | ApiError::BadRequest(_))) => {
                let code = if matches!(e, ApiError::LimitExceeded(_)) {
                    "LimitExceeded"
                } else {
                    "BadRequest"
                };
                errors.push(json!({
                    "ExternalUserId": string(item, "ExternalUserId"),
                    "ErrorCode": code,
                    "ErrorMessage": e.to_string(),
                }));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((attendees, errors))
}

pub(super) async fn create_attendee(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let rec = load(ctx, &string(&input, "MeetingId")).await?;
    let attendee = add_attendee(ctx, &rec.meeting, &input).await?;
    Ok(json!({ "Attendee": attendee }))
}

pub(super) async fn batch_create_attendee(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let rec = load(ctx, &string(&input, "MeetingId")).await?;
    let items: Vec<Value> = member(&input, "Attendees")?;
    let (attendees, errors) = add_attendees(ctx, &rec.meeting, &items).await?;
    Ok(json!({ "Attendees": attendees, "Errors": errors }))
}

pub(super) async fn get_attendee(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let meeting_id = string(&input, "MeetingId");
    load(ctx, &meeting_id).await?;
    let attendee_id = string(&input, "AttendeeId");
    let r = ctx
        .state
        .repo
        .get_attendee(&meeting_id, &attendee_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "attendee {attendee_id} not found in meeting {meeting_id}"
            ))
        })?;
    Ok(json!({ "Attendee": to_attendee(ctx, &r) }))
}

pub(super) async fn list_attendees(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let meeting_id = string(&input, "MeetingId");
    load(ctx, &meeting_id).await?;
    let (max, after) = page(&input);
    let rows = ctx
        .state
        .repo
        .list_attendees(&meeting_id, after.as_deref(), max)
        .await?;
    let next = next_token(rows.len(), max, rows.last().map(|r| r.attendee_id.as_str()));
    let attendees: Vec<Attendee> = rows.iter().map(|r| to_attendee(ctx, r)).collect();
    Ok(json!({ "Attendees": attendees, "NextToken": next }))
}

pub(super) async fn delete_attendee(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let meeting_id = string(&input, "MeetingId");
    let attendee_id = string(&input, "AttendeeId");
    load(ctx, &meeting_id).await?;
    if !ctx
        .state
        .repo
        .delete_attendee(&meeting_id, &attendee_id)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "attendee {attendee_id} not found in meeting {meeting_id}"
        )));
    }
    tracing::info!(meeting = %meeting_id, attendee = %attendee_id, "attendee deleted; its join token is void");
    let _ = ctx.state.events.send(ControlEvent::AttendeeDeleted {
        meeting_id,
        attendee_id,
    });
    Ok(Value::Null)
}
