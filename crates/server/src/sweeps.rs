//! The server's background sweeps: deletions from the API end their calls (and a
//! reconciliation with the store catches any that were missed), meetings end by AWS's
//! auto-end rules, and call records past their retention are deleted.

use std::sync::Arc;
use std::time::Duration;

use store::Repository;

use crate::meeting::MeetingMsg;

/// Ends the calls of meetings and attendees that are no longer in the store: deletions
/// missed on the event channel, or made by another node sharing the database. A store
/// error leaves the calls alone (they are checked again at the next sweep).
pub async fn reconcile(repo: &dyn Repository, controller: &crate::edge::Controller) {
    let mut gone_meetings = Vec::new();
    let is_bridge = crate::edge::is_bridge;
    for id in controller.meetings().await {
        if is_bridge(&id) {
            continue;
        }
        if let Ok(None) = repo.get_meeting(&id).await {
            gone_meetings.push(id);
        }
    }
    for id in &gone_meetings {
        tracing::info!(meeting = %id, "meeting no longer in the store: ending its calls");
        controller.delete_meeting(id).await;
    }
    for m in controller.members().await {
        if is_bridge(&m.meeting_id) || gone_meetings.contains(&m.meeting_id) {
            continue;
        }
        // A content share (`<AttendeeId>#content`) lives as long as its attendee.
        let attendee_id = m
            .attendee_id
            .strip_suffix("#content")
            .unwrap_or(&m.attendee_id);
        if let Ok(None) = repo.get_attendee(&m.meeting_id, attendee_id).await {
            tracing::info!(attendee = %m.attendee_id, "attendee no longer in the store: ending its calls");
            controller.delete_attendee(&m.attendee_id).await;
        }
    }
}

/// Deleted meetings and attendees end their calls.
/// Reconciles every `period` (deletions by other nodes sharing the database end calls
/// here within it).
pub async fn reconcile_every(
    repo: Arc<dyn Repository>,
    controller: crate::edge::Controller,
    period: Duration,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        reconcile(repo.as_ref(), &controller).await;
    }
}

/// Sends each enabled carrier an OPTIONS keep-alive every `secs` seconds (0: never).
pub async fn probe_carriers(
    repo: Arc<dyn Repository>,
    controller: crate::edge::Controller,
    secs: u32,
) {
    if secs == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(secs)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some((_, carriers)) =
            crate::edge::resolve_carriers(repo.as_ref(), "keep-alives", |c| c.enabled).await
        else {
            continue;
        };
        for (c, remote) in carriers {
            let probe = crate::edge::Probe {
                host: c
                    .addresses
                    .first()
                    .map(|a| a.host.clone())
                    .unwrap_or_default(),
                carrier: c.name,
                transport: c.transport,
                remote,
            };
            controller.probe(probe).await;
        }
    }
}

/// A deletion missed on the channel is caught by [`reconcile`].
pub async fn forward_control_events(
    mut rx: tokio::sync::broadcast::Receiver<api::ControlEvent>,
    controller: crate::edge::Controller,
    repo: Arc<dyn Repository>,
    meetings: Arc<crate::directory::Meetings>,
) {
    loop {
        match rx.recv().await {
            Ok(api::ControlEvent::MeetingDeleted { meeting_id }) => {
                controller.delete_meeting(&meeting_id).await
            }
            Ok(api::ControlEvent::AttendeeDeleted { attendee_id, .. }) => {
                controller.delete_attendee(&attendee_id).await;
                // Its content share goes with it.
                let content = format!("{attendee_id}#content");
                controller.delete_attendee(&content).await
            }
            Ok(api::ControlEvent::AttendeeCapabilities {
                meeting_id,
                attendee_id,
                capabilities,
            }) => {
                // Only a meeting running on this node has legs to change; the others
                // read the stored capabilities when their legs join.
                if let Some(tx) = meetings.get(&meeting_id) {
                    let audio = capabilities.audio;
                    let _ = tx.try_send(MeetingMsg::Capabilities { attendee_id, audio });
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Some deletions went by unseen: the store says what is gone.
                tracing::warn!(
                    missed = n,
                    "control events lagged; reconciling the calls with the store"
                );
                reconcile(repo.as_ref(), &controller).await;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// Ends meetings that AWS's auto-end rules say are over, every 30 seconds.
/// Meetings with calls on this node count as having audio; the others end after `idle_secs`
/// without one (several nodes sharing a database each refresh their own meetings).
pub async fn sweep_meetings(
    state: Arc<api::AppState>,
    controller: crate::edge::Controller,
    idle_secs: i64,
) {
    let period = Duration::from_secs((idle_secs as u64 / 4).clamp(1, 30));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let now = domain::timestamp::now_millis();
        for id in controller.meetings().await {
            if crate::edge::is_bridge(&id) {
                continue;
            }
            if let Err(e) = state.repo.touch_meeting_audio(&id, now).await {
                tracing::warn!(meeting = %id, error = %e, "could not record audio activity");
            }
        }
        match state.repo.list_meetings().await {
            Ok(meetings) => {
                for m in meetings.iter().filter(|m| m.expired(now, Some(idle_secs))) {
                    if let Err(e) = api::end_meeting(&state, &m.meeting.meeting_id).await {
                        tracing::warn!(meeting = %m.meeting.meeting_id, error = %e, "auto-end failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "auto-end sweep could not list meetings"),
        }
    }
}

/// Deletes call records older than `days` (0: keeps them forever), at start and hourly.
pub async fn sweep_call_records(repo: Arc<dyn Repository>, days: u32) {
    if days == 0 {
        return;
    }
    let keep_ms = i64::from(days) * 86_400_000;
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let before = domain::timestamp::now_millis() - keep_ms;
        match repo.delete_call_records_before(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                days,
                "call records past their retention deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "call-record retention sweep failed"),
        }
    }
}

/// Deletes retained call audio past its period (`streaming::retention`) every `secs`.
pub async fn sweep_stream_audio(secs: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(secs.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let n = crate::streaming::retention::sweep().await;
        if n > 0 {
            tracing::info!(calls = n, "retained call audio past its period deleted");
        }
    }
}
