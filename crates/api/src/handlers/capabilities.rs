//! UpdateAttendeeCapabilities and BatchUpdateAttendeeCapabilitiesExcept. A change reaches
//! the attendee's live legs through a [`ControlEvent`].

use domain::meeting::AttendeeCapabilities;
use serde::Deserialize;
use serde_json::{Value, json};

use super::meetings::{load, to_attendee};
use super::{ControlEvent, Ctx, member, string};
use crate::ApiError;

/// Shape `AttendeeIdItem`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttendeeIdItem {
    attendee_id: String,
}

/// The request's `Capabilities`, checked against AWS's rules and the meeting's features.
async fn requested(
    ctx: &Ctx<'_>,
    meeting_id: &str,
    input: &Value,
) -> Result<AttendeeCapabilities, ApiError> {
    let rec = load(ctx, meeting_id).await?;
    let caps: AttendeeCapabilities = member(input, "Capabilities")?;
    caps.validate(rec.meeting.meeting_features.as_ref(), "Capabilities")?;
    Ok(caps)
}

fn announce(ctx: &Ctx<'_>, meeting_id: &str, attendee_id: String, caps: AttendeeCapabilities) {
    tracing::info!(meeting = %meeting_id, attendee = %attendee_id, audio = ?caps.audio, "attendee capabilities changed");
    let _ = ctx.state.events.send(ControlEvent::AttendeeCapabilities {
        meeting_id: meeting_id.to_string(),
        attendee_id,
        capabilities: caps,
    });
}

pub(super) async fn update(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let meeting_id = string(&input, "MeetingId");
    let attendee_id = string(&input, "AttendeeId");
    let caps = requested(ctx, &meeting_id, &input).await?;
    let repo = &ctx.state.repo;
    let not_found = || {
        ApiError::NotFound(format!(
            "attendee {attendee_id} not found in meeting {meeting_id}"
        ))
    };
    if !repo
        .update_attendee_capabilities(&meeting_id, &attendee_id, &caps)
        .await?
    {
        return Err(not_found());
    }
    let rec = repo
        .get_attendee(&meeting_id, &attendee_id)
        .await?
        .ok_or_else(not_found)?;
    announce(ctx, &meeting_id, attendee_id.clone(), caps);
    Ok(json!({ "Attendee": to_attendee(ctx, &rec) }))
}

pub(super) async fn batch_update_except(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let meeting_id = string(&input, "MeetingId");
    let caps = requested(ctx, &meeting_id, &input).await?;
    let excluded: Vec<AttendeeIdItem> = member(&input, "ExcludedAttendeeIds")?;
    let excluded: Vec<String> = excluded.into_iter().map(|i| i.attendee_id).collect();
    let changed = ctx
        .state
        .repo
        .update_capabilities_except(&meeting_id, &excluded, &caps)
        .await?;
    for id in changed {
        announce(ctx, &meeting_id, id, caps);
    }
    Ok(Value::Null)
}
