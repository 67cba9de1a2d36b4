//! The web console's live calls (`crate::console_calls`): each SIP leg on this node with
//! what the edge knows of it (its call, connector, meeting, negotiated codec and SRTP
//! suite), and an operator's hang-up (BYE with a Reason naming the operator).

use std::time::Instant;

use calls::{HangupCause, LegId, LegState};
use tokio::sync::{mpsc, oneshot};

use super::{Controller, Edge, Input};
use crate::meeting::MeetingMsg;

/// What the console asks the edge.
pub enum Query {
    /// The SIP legs on this node.
    List(oneshot::Sender<Vec<LiveLeg>>),
    /// Hang up the leg with this SIP Call-ID; the reply says whether one was up.
    HangUp {
        call_id: String,
        operator: String,
        reply: oneshot::Sender<bool>,
    },
}

/// One SIP leg as the edge knows it.
pub struct LiveLeg {
    pub leg: LegId,
    pub call_id: String,
    pub transaction_id: String,
    pub voice_connector_id: String,
    /// The meeting (or a PSTN bridge's or an application's own mixer, see `kind`).
    pub meeting_id: String,
    pub attendee_id: String,
    /// `meeting`, `bridge` (a call routed to a carrier or a PBX) or `application`.
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    pub direction: &'static str,
    pub transport: String,
    /// `Active`, `Held`, or a set-up state.
    pub state: String,
    pub codec: Option<String>,
    pub srtp_suite: Option<String>,
    /// When it was answered (or started, if not yet), Unix ms.
    pub since_ms: i64,
    /// Its meeting task, for its statistics and level.
    pub meeting: Option<mpsc::Sender<MeetingMsg>>,
}

/// The Reason text of an operator's hang-up.
pub fn operator_reason(operator: &str) -> String {
    format!("hung up by operator {operator} from the console")
}

impl Controller {
    /// The SIP legs on this node.
    pub async fn live_legs(&self) -> Vec<LiveLeg> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Live(Query::List(reply))).await;
        rx.await.unwrap_or_default()
    }

    /// Hangs up the answered leg whose SIP Call-ID is `call_id` (BYE with
    /// `Reason: SIP;cause=200;text="hung up by operator …"`); false when none is up here.
    pub async fn hang_up_call(&self, call_id: String, operator: String) -> bool {
        let (reply, rx) = oneshot::channel();
        let q = Query::HangUp {
            call_id,
            operator,
            reply,
        };
        self.send(Input::Live(q)).await;
        rx.await.unwrap_or(false)
    }
}

impl Edge {
    pub(super) fn live(&mut self, now: Instant, q: Query) {
        match q {
            Query::List(reply) => {
                let legs = self.legs.iter().map(|(id, l)| {
                    let state = self.table.leg(*id).map(|t| t.state);
                    let m = &l.member.meeting_id;
                    LiveLeg {
                        leg: *id,
                        call_id: l.cdr.call_id.clone(),
                        transaction_id: l.cdr.transaction_id.clone(),
                        voice_connector_id: l.cdr.voice_connector_id.clone(),
                        meeting_id: m.clone(),
                        attendee_id: l.member.attendee_id.clone(),
                        kind: if m.starts_with(super::SMA_PREFIX) {
                            "application"
                        } else if super::is_bridge(m) {
                            "bridge"
                        } else {
                            "meeting"
                        },
                        from: l.cdr.source_phone_number.clone(),
                        to: l.cdr.destination_phone_number.clone(),
                        direction: l.cdr.direction,
                        transport: l.cdr.transport.clone(),
                        state: state.map_or_else(|| "Ended".into(), |s| format!("{s:?}")),
                        codec: l.negotiated.as_ref().map(|n| n.codec.clone()),
                        srtp_suite: l.negotiated.as_ref().and_then(|n| n.srtp_suite.clone()),
                        since_ms: l.cdr.answered_ms.unwrap_or(l.cdr.start_ms),
                        meeting: l.meeting.clone(),
                    }
                });
                let _ = reply.send(legs.collect());
            }
            Query::HangUp {
                call_id,
                operator,
                reply,
            } => {
                let leg = self.legs.iter().find(|(id, l)| {
                    l.cdr.call_id == call_id
                        && self
                            .table
                            .leg(**id)
                            .is_some_and(|t| matches!(t.state, LegState::Active | LegState::Held))
                });
                let done = leg.map(|(id, _)| *id).is_some_and(|leg| {
                    tracing::info!(%leg, operator = %operator, "hung up from the console");
                    let text = operator_reason(&operator);
                    self.table
                        .hang_up(now, leg, HangupCause::Application { code: 200, text })
                });
                let _ = reply.send(done);
            }
        }
    }
}
