//! The web console's live calls, SigV4-signed like every admin call:
//! `GET /admin/calls[?voice-connector-id=…][&meeting-id=…]` lists this node's SIP legs with
//! their codec, SRTP suite, loss, jitter and speaking level (from the edge's call table,
//! [`crate::edge::LiveLeg`], and each leg's meeting task, `MeetingMsg::Live`);
//! `DELETE /admin/calls/{callId}` hangs one up with a BYE whose Reason names the operator.

use std::sync::Arc;
use std::time::Duration;

use api::{ApiError, AppState};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::Request;
use axum::response::Response;
use axum::routing::{delete, get};
use domain::timestamp::{iso8601, now_millis};
use engine::LegStats;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::edge::{Controller, LiveLeg};
use crate::meeting::MeetingMsg;

/// Legs listed at most; `Truncated` says when more are up.
pub const MAX_LISTED: usize = 1000;
/// How long one meeting task may take to answer for a leg; a busy one's legs are listed
/// without statistics.
const MEETING_WAIT: Duration = Duration::from_millis(500);
/// Longest Call-ID taken.
const MAX_CALL_ID: usize = 256;

#[derive(Clone)]
struct LiveCalls {
    api: Arc<AppState>,
    controller: Controller,
}

/// The routes, answering from `controller`'s edge.
pub fn routes<S: Clone + Send + Sync + 'static>(
    api: Arc<AppState>,
    controller: Controller,
) -> Router<S> {
    Router::new()
        .route("/admin/calls", get(list))
        .route("/admin/calls/{call_id}", delete(hang_up))
        .with_state(LiveCalls { api, controller })
}

async fn list(State(s): State<LiveCalls>, req: Request<Body>) -> Response {
    let controller = s.controller.clone();
    api::signed_read(&s.api, req, |q| async move {
        let filter = Filter::parse(&q)?;
        let mut legs: Vec<LiveLeg> = controller.live_legs().await;
        legs.retain(|l| filter.keeps(l));
        legs.sort_by(|a, b| (a.since_ms, &a.call_id).cmp(&(b.since_ms, &b.call_id)));
        let truncated = legs.len() > MAX_LISTED;
        legs.truncate(MAX_LISTED);
        let now = now_millis();
        let mut calls = Vec::with_capacity(legs.len());
        for l in legs {
            let live = live_of(&l).await;
            calls.push(describe(&l, live, now));
        }
        Ok(json!({ "Calls": calls, "Truncated": truncated }))
    })
    .await
}

async fn hang_up(
    State(s): State<LiveCalls>,
    Path(call_id): Path<String>,
    req: Request<Body>,
) -> Response {
    let controller = s.controller.clone();
    let operator = s.api.credentials.access_key_id.clone();
    api::signed_read(&s.api, req, |q| async move {
        if !q.is_empty() {
            return Err(ApiError::bad_request(
                "DELETE /admin/calls/{callId} takes no query parameters",
            ));
        }
        if !(1..=MAX_CALL_ID).contains(&call_id.len()) {
            return Err(ApiError::bad_request(format!(
                "callId must be 1 to {MAX_CALL_ID} characters"
            )));
        }
        if controller.hang_up_call(call_id.clone(), operator).await {
            Ok(json!({ "CallId": call_id, "Status": "HangingUp" }))
        } else {
            Err(ApiError::NotFound(format!(
                "no answered call with Call-ID {call_id:?} on this node"
            )))
        }
    })
    .await
}

/// `voice-connector-id` and `meeting-id`, as `/admin/call-records` names them.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    voice_connector_id: Option<String>,
    meeting_id: Option<String>,
}

impl Filter {
    fn parse(raw_query: &str) -> Result<Self, ApiError> {
        let uri: axum::http::Uri = format!("/?{raw_query}")
            .parse()
            .map_err(|_| ApiError::bad_request("the query string is not valid"))?;
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .map_err(|e| ApiError::bad_request(format!("the query string is not valid: {e}")))?;
        let mut f = Filter::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "voice-connector-id" => &mut f.voice_connector_id,
                "meeting-id" => &mut f.meeting_id,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter {other:?} (voice-connector-id, meeting-id)"
                    )));
                }
            };
            if v.is_empty() || v.len() > 128 {
                return Err(ApiError::bad_request(format!(
                    "{k} must be 1 to 128 characters"
                )));
            }
            *slot = Some(v);
        }
        Ok(f)
    }

    fn keeps(&self, l: &LiveLeg) -> bool {
        self.voice_connector_id
            .as_ref()
            .is_none_or(|v| *v == l.voice_connector_id)
            && self.meeting_id.as_ref().is_none_or(|m| *m == l.meeting_id)
    }
}

/// The leg's statistics and last level from its meeting task, if it answers in time.
async fn live_of(l: &LiveLeg) -> Option<(LegStats, Option<u8>)> {
    let meeting = l.meeting.as_ref()?;
    let (reply, rx) = oneshot::channel();
    let asked = async {
        meeting
            .send(MeetingMsg::Live { leg: l.leg, reply })
            .await
            .ok()?;
        rx.await.ok().flatten()
    };
    tokio::time::timeout(MEETING_WAIT, asked)
        .await
        .ok()
        .flatten()
}

/// One leg as the console shows it.
fn describe(l: &LiveLeg, live: Option<(LegStats, Option<u8>)>, now_ms: i64) -> Value {
    let in_meeting = l.kind == "meeting";
    let mut v = json!({
        "CallId": l.call_id,
        "TransactionId": l.transaction_id,
        "VoiceConnectorId": l.voice_connector_id,
        "Kind": l.kind,
        "MeetingId": in_meeting.then_some(&l.meeting_id),
        "AttendeeId": in_meeting.then_some(&l.attendee_id),
        "From": l.from,
        "To": l.to,
        "Direction": l.direction,
        "Transport": l.transport,
        "State": l.state,
        "Codec": l.codec,
        "SrtpSuite": l.srtp_suite,
        "Since": iso8601(l.since_ms),
        "DurationSeconds": (now_ms - l.since_ms).max(0) / 1000,
    });
    if let (Some((st, level)), Some(o)) = (live, v.as_object_mut()) {
        o.extend(media(&st, level));
    }
    v
}

/// A leg's media figures: packets, loss (RFC 3550 cumulative), jitter, round trip and its
/// speaking level in dBov (the mixer's attenuation, RFC 6464: 0 is full scale).
fn media(st: &LegStats, level: Option<u8>) -> serde_json::Map<String, Value> {
    let lost = st.lost.max(0) as u64;
    let expected = st.packets_in + lost;
    let loss = if expected == 0 {
        0.0
    } else {
        (lost as f64 * 10000.0 / expected as f64).round() / 100.0
    };
    let v = json!({
        "PacketsReceived": st.packets_in,
        "PacketsSent": st.packets_out,
        "PacketsLost": lost,
        "LossPercent": loss,
        "JitterMs": st.jitter_ms,
        "RoundTripTimeMs": st.rtt_ms,
        "LevelDbov": level.map(|a| -i32::from(a)),
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_connector_and_meeting_and_refuses_other_parameters() {
        assert_eq!(Filter::parse("").unwrap(), Filter::default());
        let f = Filter::parse("voice-connector-id=abc&meeting-id=m-1").unwrap();
        assert_eq!(f.voice_connector_id.as_deref(), Some("abc"));
        assert_eq!(f.meeting_id.as_deref(), Some("m-1"));
        for bad in ["meetingId=x", "voice-connector-id=", "x=1"] {
            let e = Filter::parse(bad).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn media_figures_give_loss_jitter_and_level() {
        let stats = LegStats {
            packets_in: 99,
            lost: 1,
            jitter_ms: 3,
            ..LegStats::default()
        };
        let m = media(&stats, Some(12));
        assert_eq!(m["LossPercent"], 1.0);
        assert_eq!(m["PacketsLost"], 1);
        assert_eq!(m["JitterMs"], 3);
        assert_eq!(m["LevelDbov"], -12);
        let quiet = media(&LegStats::default(), None);
        assert_eq!(quiet["LossPercent"], 0.0);
        assert!(quiet["LevelDbov"].is_null());
    }
}
