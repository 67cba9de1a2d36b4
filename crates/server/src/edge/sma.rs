//! SIP media application calls at the edge (issue 13). A SIP rule sends an INVITE to an
//! application: a `ToPhoneNumber` rule takes a carrier's call to that number, a
//! `RequestUriHostname` rule takes a PBX's call to that connector host (after the
//! connector's policy admitted it; a meeting join by token stays a meeting join). The
//! caller's leg gets its ports and SDP at once and its media in a one-leg mixer of its own
//! (`sma-<TransactionId>` in the meeting directory), but is answered only when the
//! function's first action other than Hangup runs; the call's flow runs in its own task
//! (`crate::sma::call`), which asks the edge for what touches SIP legs ([`SmaRequest`]) and
//! hears what happened to them ([`SmaMsg`]).

use std::collections::HashMap;
use std::time::Instant;

use calls::{Answer, CallEnd, EndStatus, HangupCause, LegId, Member, Refusal};
use domain::sma::flow::{CallFlow, FlowContext, FlowLeg};
use domain::sma::{FunctionEndpoint, SipRule};
use sip::{Body, Peer, Request};
use tokio::sync::mpsc;

use super::join::{self, JoinContext, JoinOutcome, MediaOwner};
use super::{Edge, Input};
use crate::meeting::{MeetingEvent, MeetingMsg};
use crate::sma::call::{SmaMsg, SmaRequest};

/// Meeting-directory ids of application calls' own mixers start with this; like bridges
/// they are not meetings in the store.
pub const SMA_PREFIX: &str = "sma-";

/// A call a rule sent to an application, its media ready, not yet answered.
pub struct SmaSetup {
    pub member: Member,
    pub sdp: Body,
    pub delayed_offer: bool,
    pub media: Box<super::legs::SipLeg>,
    pub flow: CallFlow,
    pub call_id: String,
    pub function: FunctionEndpoint,
}

/// An application call's leg, as the edge keeps it.
pub(super) struct SmaLeg {
    flow: mpsc::Sender<SmaMsg>,
    /// Until the flow answers: what answering takes.
    unanswered: Option<(Member, Body, bool)>,
}

/// A carrier's INVITE to a number with an enabled `ToPhoneNumber` rule, or `None`.
pub(super) async fn for_number(
    ctx: &JoinContext,
    leg: LegId,
    req: &Request,
    peer: &Peer,
    number: &str,
) -> Option<JoinOutcome> {
    let repo = ctx.admission.repo();
    let carriers = repo.list_carriers().await.ok()?;
    domain::carrier::carrier_for_source(peer.remote.ip(), &carriers)?;
    let rule = repo.sip_rule_for_number(number).await.ok()??;
    let owner = MediaOwner {
        voice_connector_id: String::new(),
        require_encryption: false,
    };
    start(ctx, leg, req, peer, rule, owner).await
}

/// A PBX's INVITE (admitted by its connector's policy) to a host with an enabled
/// `RequestUriHostname` rule, or `None`.
pub(super) async fn for_host(
    ctx: &JoinContext,
    leg: LegId,
    req: &Request,
    peer: &Peer,
    host: &str,
    owner: MediaOwner,
) -> Option<JoinOutcome> {
    let rule = ctx.admission.repo().sip_rule_for_host(host).await.ok()??;
    start(ctx, leg, req, peer, rule, owner).await
}

fn refused(status: u16, why: String) -> JoinOutcome {
    tracing::info!(status, reason = %why, "SIP media application call refused");
    JoinOutcome::Refused(Answer::Refuse(Refusal::new(status, why)))
}

async fn start(
    ctx: &JoinContext,
    leg: LegId,
    req: &Request,
    peer: &Peer,
    rule: SipRule,
    owner: MediaOwner,
) -> Option<JoinOutcome> {
    if rule.disabled {
        return None;
    }
    let repo = ctx.admission.repo();
    // The first target (by priority) whose application exists and whose function is
    // registered.
    let mut why = format!("SIP rule {} has no target application", rule.sip_rule_id);
    let mut chosen = None;
    for t in rule.targets_in_order() {
        let app = match repo
            .get_sip_media_application(&t.sip_media_application_id)
            .await
        {
            Ok(Some(a)) => a,
            Ok(None) => {
                why = format!(
                    "SIP media application {} does not exist",
                    t.sip_media_application_id
                );
                continue;
            }
            Err(e) => return Some(refused(500, format!("store failed: {e}"))),
        };
        let Some(arn) = app.lambda_arn() else {
            continue;
        };
        match repo.function(arn).await {
            Ok(Some(f)) => {
                chosen = Some((app, f));
                break;
            }
            Ok(None) => {
                why = format!(
                    "no endpoint is registered for function {arn} (voice-connector admin functions add)"
                )
            }
            Err(e) => return Some(refused(500, format!("store failed: {e}"))),
        }
    }
    let Some((app, function)) = chosen else {
        return Some(refused(480, why));
    };
    let transaction_id = uuid::Uuid::new_v4().to_string();
    let call_id = uuid::Uuid::new_v4().to_string();
    let user = |na: Option<sip::NameAddr<'_>>| {
        na.and_then(|n| n.uri.user_decoded().map(|u| u.into_owned()))
            .unwrap_or_default()
    };
    let to = req
        .uri
        .user()
        .map(|u| String::from_utf8_lossy(&sip::percent_decode(u)).into_owned())
        .unwrap_or_default();
    let leg_a = FlowLeg {
        call_id: call_id.clone(),
        tag: domain::sma::event::ParticipantTag::LegA,
        to,
        from: user(req.headers.from()),
        direction: domain::sma::event::Direction::Inbound,
        start_ms: domain::timestamp::now_millis(),
    };
    let context = FlowContext {
        transaction_id: transaction_id.clone(),
        aws_region: app.aws_region.clone(),
        sip_rule_id: Some(rule.sip_rule_id.clone()),
        sip_media_application_id: app.sip_media_application_id.clone(),
    };
    let member = Member {
        meeting_id: format!("{SMA_PREFIX}{transaction_id}"),
        attendee_id: call_id.clone(),
    };
    tracing::info!(%leg, transaction = %transaction_id, application = %app.sip_media_application_id, rule = %rule.sip_rule_id, "call for a SIP media application");
    let ready = match join::join(ctx, leg, req, peer, &owner, member).await {
        Ok(r) => r,
        Err(e) => return Some(JoinOutcome::Failed(e)),
    };
    let JoinOutcome::Ready {
        member,
        sdp,
        delayed_offer,
        mut media,
    } = ready
    else {
        return Some(ready);
    };
    // The leg's record is the application call's: its TransactionId and CallId.
    media.cdr.transaction_id = transaction_id.clone();
    media.cdr.call_id = call_id.clone();
    media.cdr.direction = "Inbound";
    media.cdr.sma = Some(crate::records::SmaSeed {
        sip_application_id: app.sip_media_application_id.clone(),
        sip_rule_id: Some(rule.sip_rule_id.clone()),
        trigger: match rule.trigger_type {
            domain::sma::SipRuleTriggerType::ToPhoneNumber => "ToPhoneNumber",
            domain::sma::SipRuleTriggerType::RequestUriHostname => "RequestUriHostname",
        },
    });
    let flow = CallFlow::inbound(Instant::now(), context, leg_a);
    Some(JoinOutcome::Sma(Box::new(SmaSetup {
        member,
        sdp,
        delayed_offer,
        media,
        flow,
        call_id,
        function,
    })))
}

impl Edge {
    /// An application call's media is ready: its flow starts.
    pub(super) fn sma_started(&mut self, leg: LegId, s: SmaSetup) {
        self.legs.insert(leg, *s.media);
        let flow = crate::sma::call::spawn(
            s.flow,
            (s.call_id, Some(leg)),
            s.function,
            self.ctx.sma.clone(),
            self.sma_tx.clone(),
        );
        let entry = SmaLeg {
            flow,
            unanswered: Some((s.member, s.sdp, s.delayed_offer)),
        };
        self.sma.insert(leg, entry);
        // The call rings until the function's first action answers it. The 180 also lets
        // the caller CANCEL meanwhile (RFC 3261 §9.1: not before a provisional), which the
        // transaction layer's own 100 Trying does not give an unverified UDP source.
        if let Some(k) = self.table.leg(leg).and_then(|l| l.endpoint.sip()) {
            let _ = self.ua.answer(std::time::Instant::now(), k, 180, None);
        }
    }

    pub(super) fn tell(&self, leg: LegId, msg: SmaMsg) {
        if let Some(s) = self.sma.get(&leg)
            && s.flow.try_send(msg).is_err()
        {
            tracing::warn!(call = %leg, "a SIP media application's flow is not keeping up; an event for it was dropped");
        }
    }

    /// What a meeting task reported about a leg an application may be waiting on.
    pub(super) fn sma_media_event(&mut self, ev: MeetingEvent) {
        match ev {
            MeetingEvent::Dtmf(leg, d) => self.tell(leg, SmaMsg::Digit(leg, d)),
            MeetingEvent::PlayDone { leg, interrupted } => {
                self.tell(leg, SmaMsg::PlayDone { leg, interrupted })
            }
            MeetingEvent::Inactive(_) => {}
        }
    }

    /// A SIP INFO digit on an application's leg.
    pub(super) fn sma_info_digit(&mut self, leg: LegId, event: u8) {
        if let Some(d) = codec::telephone_event::event_char(event) {
            self.tell(leg, SmaMsg::Digit(leg, d));
        }
    }

    /// The ACK of our 200 came.
    pub(super) fn sma_confirmed(&mut self, leg: LegId) {
        self.tell(leg, SmaMsg::Answered(leg));
    }

    /// The leg's SIP side ended before the flow answered it (CANCEL): the table undoes it
    /// as a join that lost the race, so that the leg is released and the flow hears of it.
    pub(super) fn sma_ended_in_setup(&mut self, leg: LegId) {
        if let Some((member, sdp, delayed)) =
            self.sma.get_mut(&leg).and_then(|s| s.unanswered.take())
        {
            self.table
                .sip_join_ready(Instant::now(), leg, member, sdp, delayed);
        }
    }

    /// The leg was released.
    pub(super) fn sma_released(&mut self, leg: LegId, end: &CallEnd) {
        let code = (end.code != 0).then_some(end.code);
        self.tell(leg, SmaMsg::Ended(leg, code));
        self.sma.remove(&leg);
    }

    pub(super) fn on_sma(&mut self, req: SmaRequest) {
        let now = Instant::now();
        match req {
            SmaRequest::Answer { leg } => {
                let pending = self.sma.get_mut(&leg).and_then(|s| s.unanswered.take());
                if let Some((member, sdp, delayed)) = pending {
                    if self.table.leg(leg).is_some() {
                        self.table.sip_join_ready(now, leg, member, sdp, delayed);
                    } else {
                        self.sma_release_unanswered(leg, 408, "no longer in set-up");
                    }
                }
            }
            SmaRequest::HangUp { leg, .. } if self.sma_cancel(leg) => {}
            SmaRequest::HangUp { leg, code, text } => {
                let unanswered = self.sma.get_mut(&leg).and_then(|s| s.unanswered.take());
                if unanswered.is_some() {
                    // AWS refuses an unanswered call with the Hangup's code; normal
                    // clearing (0) of a call never answered is 480 there too.
                    let status = if (400..700).contains(&code) {
                        code
                    } else {
                        480
                    };
                    let r = Refusal::new(status, text.clone());
                    self.table.sip_refused(now, leg, Answer::Refuse(r));
                    self.sma_release_unanswered(leg, status, &text);
                } else {
                    let code = if code == 0 { 200 } else { code };
                    let cause = HangupCause::Application { code, text };
                    if !self.table.hang_up(now, leg, cause) {
                        self.tell(leg, SmaMsg::Ended(leg, None));
                    }
                }
            }
            SmaRequest::Play {
                leg,
                prompt,
                repeat,
            } => self.sma_media(
                leg,
                MeetingMsg::Play {
                    leg,
                    prompt,
                    repeat,
                },
            ),
            SmaRequest::StopPlay { leg } => self.sma_media(leg, MeetingMsg::StopPlay { leg }),
            SmaRequest::Tap { leg, key, sink } => {
                let media = self.legs.get(&leg).and_then(|l| l.meeting.as_ref());
                let tap = MeetingMsg::Tap { leg, key, sink };
                if media.is_none_or(|tx| tx.try_send(tap).is_err()) {
                    tracing::info!(call = %leg, "no media to record from");
                }
            }
            SmaRequest::SendDigits {
                leg,
                digits,
                tone_ms,
            } => {
                let length = std::time::Duration::from_millis(u64::from(tone_ms.clamp(50, 2000)));
                for event in digits
                    .chars()
                    .filter_map(codec::telephone_event::char_event)
                {
                    self.sma_media(leg, MeetingMsg::Dtmf { leg, event, length });
                }
            }
            SmaRequest::Join { leg, member } => self.sma_join(leg, member),
            SmaRequest::Bridge {
                leg,
                call_id,
                action,
            } => self.sma_bridge(leg, call_id, action),
            SmaRequest::Mute {
                meeting_id,
                attendees,
                mute,
            } => {
                // Every leg here of those attendees, SIP or browser (another node's legs are
                // that node's).
                let legs: Vec<LegId> = self
                    .table
                    .legs()
                    .filter(|l| {
                        l.member.as_ref().is_some_and(|m| {
                            m.meeting_id == meeting_id && attendees.contains(&m.attendee_id)
                        })
                    })
                    .map(|l| l.id)
                    .collect();
                if let Some(tx) = self.ctx.meetings.get(&meeting_id) {
                    for leg in legs {
                        let _ = tx.try_send(MeetingMsg::Mute { leg, muted: mute });
                    }
                }
            }
            SmaRequest::Done { transaction_id } => {
                tracing::info!(transaction = %transaction_id, "SIP media application call over");
                self.sma.retain(|_, s| !s.flow.is_closed());
            }
        }
    }

    fn sma_media(&mut self, leg: LegId, msg: MeetingMsg) {
        let play = matches!(msg, MeetingMsg::Play { .. });
        let sent = self
            .legs
            .get(&leg)
            .and_then(|l| l.meeting.as_ref())
            .map(|tx| tx.try_send(msg).is_ok());
        if sent != Some(true) && !play {
            // Digits or a stop for a leg without media: nothing to do, and no prompt of
            // its ends.
            tracing::info!(call = %leg, "no media for the application's request; not sent");
        } else if sent != Some(true) {
            // No media (yet, or any more): a prompt counts as played out.
            self.tell(
                leg,
                SmaMsg::PlayDone {
                    leg,
                    interrupted: true,
                },
            );
        }
    }

    /// A leg refused before its answer: its media goes, its record says so.
    fn sma_release_unanswered(&mut self, leg: LegId, code: u16, why: &str) {
        if let Some(media) = self.legs.remove(&leg) {
            let end = CallEnd {
                status: EndStatus::Failed,
                code,
                reason: why.to_string(),
            };
            let release = self.release.clone();
            let hold = self.release.records.hold();
            tokio::spawn(async move {
                release.sip_leg(leg, media, end).await;
                drop(hold);
            });
        }
        self.tell(leg, SmaMsg::Ended(leg, Some(code)));
        self.sma.remove(&leg);
    }

    /// JoinChimeMeeting: the leg's media leaves its own mixer for the meeting's.
    fn sma_join(&mut self, leg: LegId, member: Member) {
        let Some(l) = self.legs.get(&leg) else {
            self.tell(leg, SmaMsg::Joined(leg, Err("the call has ended".into())));
            return;
        };
        let Some(cfg) = l.negotiated.as_ref().map(|n| n.leg.clone()) else {
            let why = "the call's media is not negotiated yet".to_string();
            self.tell(leg, SmaMsg::Joined(leg, Err(why)));
            return;
        };
        let old = l.meeting.clone();
        let req = join::AttachRequest {
            member: member.clone(),
            caller: l.caller.clone(),
            rtp: l.rtp.clone(),
            rtcp: l.rtcp.clone(),
            cfg,
        };
        let meetings = self.ctx.meetings.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Some(old) = old {
                let (reply, rx) = tokio::sync::oneshot::channel();
                let msg = MeetingMsg::Remove {
                    leg,
                    dropped: false,
                    reply: Some(reply),
                };
                if old.send(msg).await.is_ok() {
                    let _ = rx.await;
                }
            }
            let result = join::attach(&meetings, leg, req)
                .await
                .map_err(|e| e.refusal().warning);
            let _ = tx
                .send(Input::SmaMoved {
                    leg,
                    member,
                    result,
                })
                .await;
        });
    }

    /// A JoinChimeMeeting's move ended.
    pub(super) fn sma_moved(
        &mut self,
        leg: LegId,
        member: Member,
        result: Result<mpsc::Sender<MeetingMsg>, String>,
    ) {
        let now = Instant::now();
        let Some(l) = self.legs.get_mut(&leg) else {
            // Ended meanwhile: out of the meeting again.
            if let Ok(tx) = result {
                let _ = tx.try_send(MeetingMsg::Remove {
                    leg,
                    dropped: false,
                    reply: None,
                });
            }
            return;
        };
        match result {
            Ok(tx) => {
                l.meeting = Some(tx);
                l.member = member.clone();
                self.table.move_member(now, leg, member);
                self.tell(leg, SmaMsg::Joined(leg, Ok(())));
            }
            Err(why) => {
                // Its own mixer is gone: the call cannot go on.
                l.meeting = None;
                self.tell(leg, SmaMsg::Joined(leg, Err(why)));
                self.table.media_failed(now, leg);
            }
        }
    }
}

/// Application calls by leg.
pub(super) type SmaLegs = HashMap<LegId, SmaLeg>;

impl SmaLeg {
    /// An application's own outbound leg (`edge::sma_dial`): nothing to answer.
    pub(super) fn dialled(flow: mpsc::Sender<SmaMsg>) -> SmaLeg {
        SmaLeg {
            flow,
            unanswered: None,
        }
    }

    /// Where its flow hears of it.
    pub(super) fn sender(&self) -> mpsc::Sender<SmaMsg> {
        self.flow.clone()
    }

    /// Whether its flow is still running.
    pub(super) fn running(&self) -> bool {
        !self.flow.is_closed()
    }
}
