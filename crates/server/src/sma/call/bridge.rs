//! CallAndBridge in a call's task: LEG-B is asked of the edge (`edge::sma_bridge`), which
//! dials it into LEG-A's mixer and reports its leg; until LEG-B answers, the task keeps the
//! CallTimeoutSeconds timer and the RingbackTone played to LEG-A. An answer is
//! ACTION_SUCCESSFUL with LEG-B among the participants; a final failure, the timer or a
//! ringback that cannot be loaded is ACTION_FAILED (LEG-B cancelled). Once bridged, LEG-B
//! is a leg of the flow like any other: its hang-up is HANGUP, LEG-A stays up.

use std::time::Instant;

use calls::LegId;
use domain::sma::action::CallAndBridge;
use domain::sma::flow::{Audio, FlowLeg};
use tokio::sync::mpsc;

use super::{CallTask, Done, SmaMsg, SmaRequest};

/// A CallAndBridge waiting for LEG-B's answer.
pub(super) struct Bridging {
    /// LEG-A's CallId.
    a: String,
    b: FlowLeg,
    /// LEG-B's leg once its INVITE went out.
    leg: Option<LegId>,
    /// When CallTimeoutSeconds runs out.
    pub(super) until: Instant,
    /// RingbackTone, played to LEG-A while LEG-B rings.
    pub(super) ringback: Option<domain::sma::action::AudioSource>,
}

/// CallTimeoutSeconds when the action has none.
pub(super) const CALL_TIMEOUT_S: u64 = 30;
/// A ringback tone's repeats (it is stopped on LEG-B's answer).
pub(super) const RINGBACK_REPEAT: u32 = 1000;

impl CallTask {
    /// CallAndBridge on LEG-A `call_id`: LEG-B is asked of the edge, the timer starts.
    pub(super) async fn start_bridge(
        &mut self,
        now: Instant,
        call_id: String,
        action: CallAndBridge,
    ) {
        match self.legs.leg(&call_id) {
            Some(leg) => {
                let uri = action.endpoints.first().and_then(|e| e.uri.clone());
                let b = FlowLeg {
                    call_id: uuid::Uuid::new_v4().to_string(),
                    tag: domain::sma::event::ParticipantTag::LegB,
                    to: uri.unwrap_or_default(),
                    from: action.caller_id_number.clone(),
                    direction: domain::sma::event::Direction::Outbound,
                    start_ms: domain::timestamp::now_millis(),
                };
                let secs = action.call_timeout_seconds.unwrap_or(CALL_TIMEOUT_S);
                let call_b = b.call_id.clone();
                self.bridging = Some(Bridging {
                    a: call_id,
                    b,
                    leg: None,
                    until: now + std::time::Duration::from_secs(secs),
                    ringback: action.ringback_tone.clone(),
                });
                let req = SmaRequest::Bridge {
                    leg,
                    call_id: call_b,
                    action,
                };
                self.to_edge(req).await;
            }
            None => self.flow.on_action_error(
                now,
                &call_id,
                "InvalidActionParameter",
                "no such call to bridge",
            ),
        }
    }

    /// What the edge says of a CallAndBridge's LEG-B before it is bridged; true when the
    /// message was about it. LEG-A ending cancels LEG-B (and the flow hears of LEG-A).
    pub(super) fn bridge_message(
        &mut self,
        now: Instant,
        msg: &SmaMsg,
        done: &mpsc::Sender<Done>,
    ) -> bool {
        let ours = |b: &Bridging, call: &str| b.leg.is_none() && b.b.call_id == call;
        let b = match (self.bridging.as_mut(), msg) {
            (Some(b), SmaMsg::Dialling(call, _)) if ours(b, call) => b,
            (_, SmaMsg::Dialling(_, dialled)) => {
                // Given up on before its INVITE went out.
                if let Ok(leg) = dialled {
                    self.try_edge(hang_up(*leg, "CallAndBridge gave up"));
                }
                return true;
            }
            (Some(b), _) => b,
            (None, _) => return false,
        };
        let mine = |leg: &LegId| b.leg == Some(*leg);
        match msg {
            SmaMsg::Dialling(_, Ok(leg)) => {
                b.leg = Some(*leg);
                let (call_id, tone) = (b.a.clone(), b.ringback.clone());
                self.legs.add(&b.b.call_id, *leg);
                if let Some(src) = tone {
                    // Until LEG-B answers or the call gives up.
                    self.load_prompt(call_id, Audio::S3(src), RINGBACK_REPEAT, true, done);
                }
            }
            SmaMsg::Dialling(_, Err((kind, why))) => {
                let (kind, why) = (*kind, why.clone());
                self.bridge_failed(now, kind, &why);
            }
            SmaMsg::Answered(leg) if mine(leg) => {
                if let Some(b) = self.bridging.take() {
                    self.stop_ringback(&b);
                    self.flow.on_bridged(now, &b.a, b.b);
                }
            }
            SmaMsg::Ended(leg, code) if mine(leg) => {
                let why = match code {
                    Some(c) => format!("LEG-B was not answered (SIP {c})"),
                    None => "LEG-B was not answered".to_string(),
                };
                self.bridge_failed(now, "CallNotAnswered", &why);
            }
            SmaMsg::Ringing(leg) | SmaMsg::Digit(leg, _) | SmaMsg::PlayDone { leg, .. }
                if mine(leg) => {}
            SmaMsg::Ended(leg, _) if self.legs.call(*leg) == Some(b.a.as_str()) => {
                self.drop_bridge();
                return false;
            }
            _ => return false,
        }
        true
    }

    /// The CallAndBridge in progress fails: LEG-B (if dialled) is cancelled, the flow hears
    /// ACTION_FAILED with this error.
    pub(super) fn bridge_failed(&mut self, now: Instant, error_type: &str, why: &str) {
        if let Some(a) = self.drop_bridge() {
            tracing::info!(transaction = %self.flow.context().transaction_id, error = error_type, reason = why, "CallAndBridge failed");
            self.flow.on_action_error(now, &a, error_type, why);
        }
    }

    /// Gives up on the CallAndBridge in progress without telling the flow (LEG-A is gone,
    /// or the call is over): its ringback stops, LEG-B is cancelled. LEG-A's CallId.
    pub(super) fn drop_bridge(&mut self) -> Option<String> {
        let b = self.bridging.take()?;
        self.stop_ringback(&b);
        if let Some(leg) = b.leg {
            self.try_edge(hang_up(leg, "CallAndBridge gave up"));
        }
        Some(b.a)
    }

    fn stop_ringback(&self, b: &Bridging) {
        if let (Some(_), Some(leg)) = (&b.ringback, self.legs.leg(&b.a)) {
            self.try_edge(SmaRequest::StopPlay { leg });
        }
    }
}

/// An edge request ending a leg with normal clearing.
fn hang_up(leg: LegId, text: &str) -> SmaRequest {
    SmaRequest::HangUp {
        leg,
        code: 0,
        text: text.to_string(),
    }
}
