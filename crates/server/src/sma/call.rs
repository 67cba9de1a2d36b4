//! One task per SIP media application call (a transaction): it owns the sans-IO
//! [`CallFlow`] and does its I/O. The function is invoked here (one invocation at a time,
//! in a spawned task so that digits and hang-ups keep arriving meanwhile), prompts are
//! loaded here, join tokens are looked up here; everything that touches a SIP leg or its
//! media is asked of the SIP edge as an [`SmaRequest`], and the edge reports what happened
//! to the legs as [`SmaMsg`]s. This module imports no other driver.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use calls::{LegId, Member};
use domain::sma::FunctionEndpoint;
use domain::sma::action::CallAndBridge;
use domain::sma::flow::{Audio, CallFlow, FlowCommand, FlowLeg};
use tokio::sync::mpsc;

use super::invoke::{InvokeError, Invoker};
use super::message_log::MessageLog;
use super::objects::ObjectStore;
use super::prompts::Prompts;
use super::record::Recorder;
use bridge::Bridging;
use recording::CallRecordings;

mod bridge;
mod recording;
use crate::meeting::{TapFrame, TapKey, TapSink};

/// What a call's flow asks of the SIP edge.
#[derive(Debug)]
pub enum SmaRequest {
    /// Answer the unanswered incoming leg (200 with the SDP prepared at the INVITE).
    Answer {
        leg: LegId,
    },
    /// End a leg: an unanswered one is refused with `code` (480 when the function asked
    /// for normal clearing), an answered one gets a BYE with a Reason.
    HangUp {
        leg: LegId,
        code: u16,
        text: String,
    },
    /// Play a prompt to the leg.
    Play {
        leg: LegId,
        prompt: engine::Prompt,
        repeat: u32,
    },
    StopPlay {
        leg: LegId,
    },
    /// Start (Some) or stop (None) the tap `key` on the leg.
    Tap {
        leg: LegId,
        key: TapKey,
        sink: Option<TapSink>,
    },
    /// Send digits to the leg as RFC 4733 events.
    SendDigits {
        leg: LegId,
        digits: String,
        tone_ms: u32,
    },
    /// Mute or unmute these attendees of a meeting (ModifyChimeMeetingAttendees).
    Mute {
        meeting_id: String,
        attendees: Vec<String>,
        mute: bool,
    },
    /// Move the leg's media into this meeting's mixer, as this attendee.
    Join {
        leg: LegId,
        member: Member,
    },
    /// CallAndBridge: dial LEG-B (`call_id`) for LEG-A `leg`, its media into LEG-A's
    /// mixer; the edge answers [`SmaMsg::Dialling`].
    Bridge {
        leg: LegId,
        call_id: String,
        action: CallAndBridge,
    },
    /// The transaction is over: forget it.
    Done {
        transaction_id: String,
    },
}

/// What the SIP edge tells a call's flow.
#[derive(Debug)]
pub enum SmaMsg {
    /// Our 200 for the incoming leg was acknowledged; an outbound leg answered (its
    /// media is in its mixer).
    Answered(LegId),
    /// An outbound leg rings (180 or 183).
    Ringing(LegId),
    Digit(LegId, char),
    /// The leg's prompt finished (or was interrupted).
    PlayDone {
        leg: LegId,
        interrupted: bool,
    },
    /// A [`SmaRequest::Join`] ended: `Err` says why it failed.
    Joined(LegId, Result<(), String>),
    /// The leg is gone, with the SIP status that ended it when there was one.
    Ended(LegId, Option<u16>),
    /// A [`SmaRequest::Bridge`] for LEG-B (its CallId): its INVITE went out (its leg,
    /// which hears [`SmaMsg::Ringing`], [`SmaMsg::Answered`] and [`SmaMsg::Ended`]), or
    /// the ErrorType and message of why not.
    Dialling(String, Result<LegId, (&'static str, String)>),
    /// UpdateSipMediaApplicationCall's arguments.
    Update(BTreeMap<String, String>),
}

/// What the call tasks share.
pub struct Services {
    pub invoker: Invoker,
    /// Prompts, read through a cache.
    pub prompts: Prompts,
    /// Where recordings are written.
    pub objects: ObjectStore,
    /// The text-to-speech program (`--tts-command`), if any.
    pub tts: Option<std::path::PathBuf>,
    pub repo: Arc<dyn store::Repository>,
}

/// A call's legs as the flow names them (AWS CallIds) and as the edge does.
#[derive(Default)]
struct Legs {
    by_call: HashMap<String, LegId>,
    by_leg: HashMap<LegId, String>,
}

impl Legs {
    fn add(&mut self, call_id: &str, leg: LegId) {
        self.by_call.insert(call_id.to_string(), leg);
        self.by_leg.insert(leg, call_id.to_string());
    }
    fn leg(&self, call_id: &str) -> Option<LegId> {
        self.by_call.get(call_id).copied()
    }
    fn call(&self, leg: LegId) -> Option<&str> {
        self.by_leg.get(&leg).map(String::as_str)
    }
}

/// Results of the work the task spawned.
enum Done {
    Invoked(Result<domain::sma::action::FunctionResponse, InvokeError>),
    Prompt {
        call_id: String,
        repeat: u32,
        /// A CallAndBridge's RingbackTone.
        ringback: bool,
        result: Result<engine::Prompt, String>,
    },
    Token {
        call_id: String,
        result: Result<(Member, FlowLeg), String>,
    },
    /// A recording was written (its key) or not.
    Recorded {
        call_id: String,
        result: Result<String, String>,
    },
}

/// Starts a call's task; the returned sender is how the edge reaches it. LEG-A's leg is
/// None for a dial-out that could not be placed (its flow knows the leg is gone).
pub fn spawn(
    flow: CallFlow,
    leg_a: (String, Option<LegId>),
    function: FunctionEndpoint,
    services: Arc<Services>,
    edge: mpsc::Sender<SmaRequest>,
) -> mpsc::Sender<SmaMsg> {
    let (tx, rx) = mpsc::channel(256);
    let mut legs = Legs::default();
    if let Some(leg) = leg_a.1 {
        legs.add(&leg_a.0, leg);
    }
    let task = CallTask {
        flow,
        legs,
        function,
        services,
        edge,
        pending_b: HashMap::new(),
        recording: None,
        tap: mpsc::channel(1).0,
        call_recordings: CallRecordings::default(),
        bridging: None,
        log: None,
    };
    tokio::spawn(task.run(rx));
    tx
}

struct CallTask {
    flow: CallFlow,
    legs: Legs,
    function: FunctionEndpoint,
    services: Arc<Services>,
    edge: mpsc::Sender<SmaRequest>,
    /// LEG-B of a JoinChimeMeeting whose move into the meeting is under way, by LEG-A.
    pending_b: HashMap<LegId, FlowLeg>,
    /// The RecordAudio in progress (its tap's key), and where tapped audio comes in.
    recording: Option<(LegId, TapKey, Recorder)>,
    tap: mpsc::Sender<TapFrame>,
    /// StartCallRecording's recordings.
    call_recordings: CallRecordings,
    bridging: Option<Bridging>,
    /// The application's message log, when its logging configuration asks for one.
    log: Option<MessageLog>,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

impl CallTask {
    async fn run(mut self, mut rx: mpsc::Receiver<SmaMsg>) {
        let (done_tx, mut done_rx) = mpsc::channel::<Done>(16);
        // A recording's frames (50 a second); a full queue loses frames, not the call.
        let (tap_tx, mut tap_rx) = mpsc::channel::<TapFrame>(256);
        self.tap = tap_tx;
        let (call_tap_tx, mut call_tap_rx) = mpsc::channel::<TapFrame>(256);
        self.call_recordings.tap = call_tap_tx;
        let ctx = self.flow.context();
        let (app, tx) = (&ctx.sip_media_application_id, &ctx.transaction_id);
        self.log = MessageLog::for_call(self.services.repo.as_ref(), app, tx).await;
        let mut edge_gone = false;
        loop {
            while let Some(c) = self.flow.poll_command() {
                self.command(c, &done_tx).await;
            }
            if self.flow.is_done() {
                break;
            }
            let deadline = match (self.flow.poll_timeout(), self.bridging.as_ref()) {
                (Some(d), Some(b)) => Some(d.min(b.until)),
                (d, b) => d.or(b.map(|b| b.until)),
            };
            tokio::select! {
                // The edge drops its sender with the call's last leg; the flow still has
                // its invocation in flight and the HANGUP to send, so it goes on.
                msg = rx.recv(), if !edge_gone => match msg {
                    Some(msg) => self.message(Instant::now(), msg, &done_tx),
                    None => edge_gone = true,
                },
                Some(d) = done_rx.recv() => self.finished(Instant::now(), d),
                Some(f) = tap_rx.recv() => {
                    let full = match &mut self.recording {
                        Some((l, _, r)) if *l == f.leg => r.push(f.rate, &f.incoming),
                        _ => false,
                    };
                    if full {
                        self.end_recording(true, &done_tx);
                    }
                }
                Some(f) = call_tap_rx.recv() => self.call_tap_frame(f),
                _ = sleep_until(deadline) => {
                    let now = Instant::now();
                    if self.bridging.as_ref().is_some_and(|b| b.until <= now) {
                        let why = "LEG-B did not answer within CallTimeoutSeconds";
                        self.bridge_failed(now, "CallNotAnswered", why);
                    }
                    self.flow.handle_timeout(now)
                }
            }
        }
        // A LEG-B still ringing when the call is over is cancelled.
        self.drop_bridge();
        self.deliver_call_recordings(None);
        let transaction_id = self.flow.context().transaction_id.clone();
        let _ = self.edge.send(SmaRequest::Done { transaction_id }).await;
    }

    fn message(&mut self, now: Instant, msg: SmaMsg, done: &mpsc::Sender<Done>) {
        if self.recording_message(&msg, done) {
            return;
        }
        if self.bridge_message(now, &msg, done) {
            return;
        }
        let flow = &mut self.flow;
        let call = |leg: LegId| self.legs.call(leg).map(str::to_string);
        match msg {
            SmaMsg::Answered(leg) => {
                if let Some(c) = call(leg) {
                    flow.on_answered(now, &c)
                }
            }
            SmaMsg::Ringing(leg) => {
                if let Some(c) = call(leg) {
                    flow.on_ringing(now, &c)
                }
            }
            SmaMsg::Digit(leg, d) => {
                if let Some(c) = call(leg) {
                    flow.on_digit(now, &c, d)
                }
            }
            SmaMsg::PlayDone { leg, .. } => {
                if let Some(c) = call(leg) {
                    flow.on_play_done(now, &c)
                }
            }
            SmaMsg::Joined(leg, Ok(())) => {
                // LEG-B was made when the token was looked up; the flow learns of it now.
                if let (Some(c), Some(b)) = (call(leg), self.pending_b.remove(&leg)) {
                    flow.on_joined(now, &c, b);
                }
                // The leg's media moved to the meeting's mixer: its taps follow.
                self.retap(leg);
            }
            SmaMsg::Joined(leg, Err(why)) => {
                if let Some(c) = call(leg) {
                    flow.on_action_error(now, &c, "SystemException", &why)
                }
            }
            SmaMsg::Ended(leg, code) => {
                if let Some(c) = call(leg) {
                    flow.on_leg_ended(now, &c, code)
                }
            }
            SmaMsg::Update(args) => flow.on_update_requested(now, args),
            SmaMsg::Dialling(..) => {}
        }
    }
}

impl CallTask {
    async fn command(&mut self, c: FlowCommand, done: &mpsc::Sender<Done>) {
        let now = Instant::now();
        match c {
            FlowCommand::Invoke(event) => {
                if let Some(log) = &self.log {
                    log.event(&event);
                }
                let (invoker, f) = (self.services.invoker.clone(), self.function.clone());
                let done = done.clone();
                tokio::spawn(async move {
                    let result = invoker.invoke(&f, &event).await;
                    let _ = done.send(Done::Invoked(result)).await;
                });
            }
            FlowCommand::Answer { call_id } => {
                if let Some(leg) = self.legs.leg(&call_id) {
                    self.to_edge(SmaRequest::Answer { leg }).await;
                }
            }
            FlowCommand::Hangup { call_id, sip_code } => match self.legs.leg(&call_id) {
                Some(leg) => {
                    let text = hangup_text(sip_code);
                    let code = sip_code;
                    self.to_edge(SmaRequest::HangUp { leg, code, text }).await;
                }
                None => self.flow.on_leg_ended(now, &call_id, Some(sip_code)),
            },
            FlowCommand::Play {
                call_id,
                audio,
                repeat,
            } => self.load_prompt(call_id, audio, repeat, false, done),
            FlowCommand::StopPlay { call_id } => {
                if let Some(leg) = self.legs.leg(&call_id) {
                    self.to_edge(SmaRequest::StopPlay { leg }).await;
                }
            }
            FlowCommand::SendDigits {
                call_id,
                digits,
                tone_ms,
            } => {
                if let Some(leg) = self.legs.leg(&call_id) {
                    let req = SmaRequest::SendDigits {
                        leg,
                        digits,
                        tone_ms,
                    };
                    self.to_edge(req).await;
                }
            }
            FlowCommand::JoinMeeting {
                call_id,
                join_token,
                meeting_id,
            } => {
                let repo = self.services.repo.clone();
                let done = done.clone();
                let leg_b_id = uuid::Uuid::new_v4().to_string();
                tokio::spawn(async move {
                    let result = lookup_token(repo.as_ref(), &join_token, meeting_id.as_deref())
                        .await
                        .map(|(member, to)| {
                            let leg_b = FlowLeg {
                                call_id: leg_b_id,
                                tag: domain::sma::event::ParticipantTag::LegB,
                                to,
                                from: String::new(),
                                direction: domain::sma::event::Direction::Outbound,
                                start_ms: domain::timestamp::now_millis(),
                            };
                            (member, leg_b)
                        });
                    let _ = done.send(Done::Token { call_id, result }).await;
                });
            }
            FlowCommand::Record { call_id, action } => self.record_audio(now, call_id, action),
            FlowCommand::StopRecord { .. } => self.stop_record_audio(),
            FlowCommand::CallRecording { call_id, op } => self.call_recording(now, call_id, op),
            FlowCommand::ModifyAttendees {
                meeting_id,
                attendees,
                mute,
            } => {
                let req = SmaRequest::Mute {
                    meeting_id,
                    attendees,
                    mute,
                };
                self.to_edge(req).await;
            }
            FlowCommand::Bridge { call_id, action } => {
                self.start_bridge(now, call_id, action).await
            }
            // An outbound call's INVITE went out with the flow's start (`edge::sma_dial`).
            FlowCommand::Done | FlowCommand::Dial { .. } => {}
        }
    }

    fn load_prompt(
        &self,
        call_id: String,
        audio: Audio,
        repeat: u32,
        ringback: bool,
        done: &mpsc::Sender<Done>,
    ) {
        let prompts = self.services.prompts.clone();
        let tts = self.services.tts.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let result = match audio {
                Audio::S3(src) => prompts
                    .load(&src.bucket_name, &src.key)
                    .await
                    .map_err(|e| e.to_string()),
                Audio::Speech(p) => match &tts {
                    Some(program) => super::speech::speak(program, &p)
                        .await
                        .map(engine::Prompt::new),
                    None => Err("Speak needs a text-to-speech program, and none is configured on this server (serve --tts-command espeak-ng)".to_string()),
                },
            };
            let _ = done
                .send(Done::Prompt {
                    call_id,
                    repeat,
                    ringback,
                    result,
                })
                .await;
        });
    }

    fn finished(&mut self, now: Instant, d: Done) {
        match d {
            Done::Invoked(Ok(answer)) => {
                if let Some(log) = &self.log {
                    log.answer(&answer);
                }
                self.flow.on_function_answer(now, Ok(answer))
            }
            Done::Invoked(Err(InvokeError::Invalid(why))) => {
                if let Some(log) = &self.log {
                    log.failed(&why.to_string());
                }
                self.flow.on_function_answer(now, Err(why))
            }
            Done::Invoked(Err(e)) => {
                if let Some(log) = &self.log {
                    log.failed(&e.to_string());
                }
                tracing::warn!(transaction = %self.flow.context().transaction_id, function = %self.function.lambda_arn, error = %e, "the function could not be invoked; the call is ended (480)");
                self.flow.on_function_unreachable(now);
            }
            Done::Prompt {
                call_id,
                repeat,
                ringback: true,
                result,
            } => match (
                self.bridging.as_ref().and_then(|b| b.ringback.as_ref()),
                result,
            ) {
                // LEG-B answered or failed meanwhile: no tone any more.
                (None, _) => {}
                (Some(_), Ok(prompt)) => {
                    if let Some(leg) = self.legs.leg(&call_id) {
                        self.try_edge(SmaRequest::Play {
                            leg,
                            prompt,
                            repeat,
                        });
                    }
                }
                (Some(_), Err(why)) => self.bridge_failed(now, "InvalidAudioSource", &why),
            },
            Done::Prompt {
                call_id,
                repeat,
                result,
                ..
            } => match (self.legs.leg(&call_id), result) {
                (Some(leg), Ok(prompt)) => self.try_edge(SmaRequest::Play {
                    leg,
                    prompt,
                    repeat,
                }),
                (_, Err(why)) => {
                    self.flow
                        .on_action_error(now, &call_id, "InvalidAudioSource", &why)
                }
                (None, Ok(_)) => {}
            },
            Done::Recorded { call_id, result } => match result {
                Ok(key) => self.flow.on_record_done(now, &call_id, &key),
                Err(why) => self
                    .flow
                    .on_action_error(now, &call_id, "SystemException", &why),
            },
            Done::Token { call_id, result } => match (self.legs.leg(&call_id), result) {
                (Some(leg), Ok((member, leg_b))) => {
                    self.pending_b.insert(leg, leg_b);
                    self.try_edge(SmaRequest::Join { leg, member });
                }
                (_, Err(why)) => {
                    self.flow
                        .on_action_error(now, &call_id, "InvalidActionParameter", &why)
                }
                (None, Ok(_)) => {}
            },
        }
    }

    async fn to_edge(&self, req: SmaRequest) {
        let _ = self.edge.send(req).await;
    }

    /// From a synchronous step: the edge's queue is deep; a full one (an overloaded edge)
    /// loses the request, and the flow hears nothing back for it.
    fn try_edge(&self, req: SmaRequest) {
        if let Err(e) = self.edge.try_send(req) {
            tracing::warn!(transaction = %self.flow.context().transaction_id, "the SIP edge is overloaded; a request of the call flow was dropped: {e}");
        }
    }
}

/// The Reason text of a Hangup action.
fn hangup_text(code: u16) -> String {
    match code {
        0 | 200 => "hung up by the SIP media application".to_string(),
        c => format!("hung up by the SIP media application ({c})"),
    }
}

/// The meeting and attendee a JoinChimeMeeting's token opens, and the number LEG-B
/// dials (the meeting join number, as AWS shows it).
async fn lookup_token(
    repo: &dyn store::Repository,
    token: &str,
    meeting_id: Option<&str>,
) -> Result<(Member, String), String> {
    let bad = || "the JoinToken does not belong to an attendee of a meeting".to_string();
    if !domain::token::well_formed(token) {
        return Err(bad());
    }
    let hash = domain::token::token_hash(token);
    let attendee = repo
        .find_attendee_by_token_hash(&hash)
        .await
        .map_err(|e| format!("the store failed: {e}"))?
        .ok_or_else(bad)?;
    if let Some(m) = meeting_id.filter(|m| *m != attendee.meeting_id) {
        return Err(format!(
            "the JoinToken belongs to an attendee of another meeting than {m}"
        ));
    }
    let meeting = repo
        .get_meeting(&attendee.meeting_id)
        .await
        .map_err(|e| format!("the store failed: {e}"))?;
    match meeting {
        Some(m) if !m.expired(domain::timestamp::now_millis(), None) => Ok((
            Member {
                meeting_id: attendee.meeting_id.clone(),
                attendee_id: attendee.attendee_id.clone(),
            },
            domain::policy::MEETING_JOIN_NUMBER.to_string(),
        )),
        _ => Err(format!("meeting {} has ended", attendee.meeting_id)),
    }
}
