//! The call flow of a SIP media application, sans-IO: one transaction (a call and the legs
//! it grows) between the function's answers and the server that drives the legs. Inputs
//! carry `now`; commands are pulled with [`CallFlow::poll_command`]; timers go through
//! [`CallFlow::poll_timeout`] and [`CallFlow::handle_timeout`]. No I/O, no clock, no
//! randomness: the driver passes call ids in.
//!
//! What AWS's PSTN audio service documents, and what this follows:
//!
//! - **Invocations.** `Sequence` counts 1, 2, 3… per transaction. One invocation is in flight
//!   at a time; events that happen meanwhile wait in a queue ([`MAX_QUEUED_EVENTS`]; when
//!   full, the oldest waiting event that is not HANGUP is dropped). `CallDetails` lists every
//!   leg with `Status` Connected or Disconnected as it was when the event happened, and the
//!   `TransactionAttributes` as they are when it is sent. AWS invokes a function at most
//!   1,000 times per call ([`MAX_INVOCATIONS`]): past that every leg is hung up with 480.
//! - **Answers** ("Responding to invocations with action lists"): `Actions` null keeps the
//!   actions being run; a list replaces the rest of the current list. The action in progress
//!   is interrupted if it is interruptible — PlayAudio, RecordAudio, Pause (and Speak) —
//!   and reported with ACTION_INTERRUPTED, whose answer is ignored ("Updating in-progress
//!   calls"); any other action finishes first. `[]` only stops. A `TransactionAttributes`
//!   object replaces the attributes; null keeps them.
//! - **Events that report.** The last action of a list reports ACTION_SUCCESSFUL; actions
//!   that always report do so wherever they are in the list (PlayAudioAndGetDigits,
//!   SpeakAndGetDigits, JoinChimeMeeting, CallAndBridge, RecordAudio: "The SIP media
//!   application always invokes its Lambda function after running …"), and the list goes
//!   on. A failed action reports ACTION_FAILED with `ErrorType` and `ErrorMessage`, and the
//!   rest of its list is dropped. An action naming a CallId or ParticipantTag that is not a
//!   connected leg fails with `InvalidActionParameter`; without either it applies to the leg
//!   the answered event was about (LEG-A when it was about none).
//! - **Answering.** An inbound LEG-A is answered ([`FlowCommand::Answer`]) before the first
//!   action other than Hangup runs ("instructs the PSTN audio service to answer the call").
//! - **Hangup** (`SipResponseCode` 0 normal clearing, 480, 486; others fail with
//!   InvalidActionParameter). On an unanswered inbound leg the code is the final response
//!   (0 there becomes 480, since there is no "normal clearing" response to an INVITE); an
//!   answered leg gets a BYE. The leg is Disconnected at once and the function gets a
//!   HANGUP event for it (`ActionData` Type Hangup with SipResponseCode, CallId,
//!   ParticipantTag); the rest of the list is dropped. With no leg left the answer to HANGUP
//!   is ignored and the flow is done; with a leg left (a bridge) its actions run. Hanging up
//!   a meeting leg (LEG-B of JoinChimeMeeting) takes the caller out of the meeting and
//!   reports ACTION_SUCCESSFUL instead. LEG-A going (BYE, our Hangup) takes its meeting leg
//!   with it; a bridged LEG-B stays ("If one call leg hangs up, the other call leg does not
//!   automatically hang up").
//! - **Outbound calls** (CreateSipMediaApplicationCall): NEW_OUTBOUND_CALL, with the
//!   request's ArgumentsMap as the transaction's first `TransactionAttributes`, then the
//!   leg is dialled; RINGING on 180; CALL_ANSWERED when it answers, whose actions run; a
//!   failed leg gives HANGUP. Answers to NEW_OUTBOUND_CALL and RINGING are ignored.
//! - **UpdateSipMediaApplicationCall**: CALL_UPDATE_REQUESTED with `ActionData` Type
//!   `CallUpdateRequest` and `Parameters.Arguments`.
//! - **Invalid answers**: INVALID_LAMBDA_RESPONSE with the error at the top level; the
//!   actions in progress carry on. AWS does not say how many it tolerates; here the
//!   [`MAX_INVALID_ANSWERS`]th in a row hangs every leg up with 480 (as AWS ends a call whose
//!   function fails: "calls terminate with the 480 Unavailable error code").
//! - **Function unreachable** (the invoker gave up): every leg hung up with 480, then done.
//! - **Pause**: a timer. **PlayAudio**: `Repeat` (default 1); a key in
//!   `PlaybackTerminators` stops it, which completes it ("or if a user stops playback with a
//!   key press"; "After a terminating digit stops the audio, it won't be repeated").
//! - **PlayAudioAndGetDigits** (see `digits.rs`): the prompt plays; keys pressed during it
//!   stop it and count. Input ends at `MaxNumberOfDigits` (default 128), a
//!   `TerminatorDigits` key (default `#`), or `InBetweenDigitsDurationInMilliseconds` of
//!   silence (default: `RepeatDurationInMilliseconds`). It is valid with Min..=Max digits
//!   matching `InputDigitsRegex` (with or without the terminator); silence with no digit is
//!   never valid. Otherwise the failure prompt plays, then after
//!   `RepeatDurationInMilliseconds` the prompt again, up to `Repeat` attempts (default 1);
//!   then ACTION_FAILED, ErrorType `InvalidDigitsReceived`. `ReceivedDigits` leaves out the
//!   terminator.
//! - **ReceiveDigits**: completes at once and listens on its leg while other actions run.
//!   Keys go into a buffer (at most 128, sliding); after `InBetweenDigitsDurationInMilliseconds`
//!   of silence a buffer matching `InputDigitsRegex` is sent as DIGITS_RECEIVED and the
//!   listener ends ("discards DTMF digits … until it receives a new ReceiveDigits action");
//!   `FlushDigitsDurationInMilliseconds` after the first key an unmatched buffer is emptied.
//!   Keys go to the action in progress first (GetDigits, playback terminators).
//! - Immediate actions (SendDigits, ModifyChimeMeetingAttendees, the call-recording
//!   controls) succeed once their command is out. StartBotConversation and VoiceFocus fail
//!   with SystemException saying they are not supported.

mod digits;
mod record;
pub(crate) use record::CallRecording;
mod run;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use super::action::{
    ActionList, AudioSource, CallAndBridge, FunctionResponse, InvalidResponse, RecordAudio,
    SpeechParameters, StartCallRecording,
};
use super::event::{
    ACCOUNT_ID, ActionData, CallDetails, Direction, EventType, InvocationEvent, Participant,
    ParticipantStatus, ParticipantTag,
};

pub use digits::MAX_DIGITS;
use run::Current;

/// Most events waiting for the invocation in flight.
pub const MAX_QUEUED_EVENTS: usize = 32;
/// Invalid answers in a row that end the call.
pub const MAX_INVALID_ANSWERS: u32 = 3;
/// Most invocations per transaction (AWS: 1,000 per call).
pub const MAX_INVOCATIONS: u64 = 1000;
/// The SIP status the flow ends legs with when the function fails.
pub const UNAVAILABLE: u16 = 480;
/// Most legs remembered (LEG-A and the LEG-Bs it had).
const MAX_LEGS: usize = 4;

/// What every event of the transaction names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowContext {
    pub transaction_id: String,
    pub aws_region: String,
    pub sip_rule_id: Option<String>,
    pub sip_media_application_id: String,
}

/// A leg as the driver knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLeg {
    pub call_id: String,
    pub tag: ParticipantTag,
    pub to: String,
    pub from: String,
    pub direction: Direction,
    /// Unix milliseconds.
    pub start_ms: i64,
}

/// A prompt: a file, or text to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audio {
    S3(AudioSource),
    Speech(SpeechParameters),
}

/// StartCallRecording and its controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingOp {
    Start(StartCallRecording),
    Stop,
    Pause,
    Resume,
}

/// What the driver must do. (Invoke is the large one; commands are few and short-lived,
/// so it is not boxed.)
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum FlowCommand {
    /// Invoke the function with this event; report with `on_function_answer` or
    /// `on_function_unreachable`. Never two in flight.
    Invoke(InvocationEvent),
    /// Ring the outbound LEG-A (to and from as its `FlowLeg` said).
    Dial {
        call_id: String,
    },
    /// Answer the inbound LEG-A.
    Answer {
        call_id: String,
    },
    /// End a leg: the final response of an unanswered inbound leg (`sip_code` is 480 or
    /// 486), else BYE (`sip_code` 0 for normal clearing). The flow already counts the leg
    /// as gone; a later `on_leg_ended` for it is ignored.
    Hangup {
        call_id: String,
        sip_code: u16,
    },
    /// Play to the leg `repeat` times; report `on_play_done` once, or `on_action_error`.
    Play {
        call_id: String,
        audio: Audio,
        repeat: u32,
    },
    StopPlay {
        call_id: String,
    },
    /// Send the digits (`,` is a 500 ms pause); no report needed.
    SendDigits {
        call_id: String,
        digits: String,
        tone_ms: u32,
    },
    /// Put the leg in the meeting; report `on_joined` or `on_action_error`.
    JoinMeeting {
        call_id: String,
        join_token: String,
        meeting_id: Option<String>,
    },
    ModifyAttendees {
        meeting_id: String,
        attendees: Vec<String>,
        mute: bool,
    },
    /// Call the endpoint and bridge it to the leg; report `on_bridged` or `on_action_error`
    /// (ErrorType `CallNotAnswered` and the like).
    Bridge {
        call_id: String,
        action: CallAndBridge,
    },
    /// Record the leg (the driver applies RecordingTerminators and the durations); report
    /// `on_record_done` or `on_action_error`.
    Record {
        call_id: String,
        action: RecordAudio,
    },
    /// Stop a recording that was interrupted; it is not reported.
    StopRecord {
        call_id: String,
    },
    /// Start, stop, pause or resume the leg's call recording. A start is reported with
    /// `on_call_recording`; the recording ends at a stop or with the leg, and is then
    /// delivered. Pausing records silence.
    CallRecording {
        call_id: String,
        op: RecordingOp,
    },
    /// The transaction is over.
    Done,
}

#[derive(Debug, Clone)]
pub(crate) struct LegState {
    pub(crate) p: Participant,
    pub(crate) answered: bool,
    /// A meeting leg made by JoinChimeMeeting.
    pub(crate) meeting: bool,
    /// Its call recording (StartCallRecording): a leg is recorded once.
    pub(crate) recording: CallRecording,
}

impl LegState {
    fn connected(&self) -> bool {
        self.p.status == ParticipantStatus::Connected
    }
}

/// An event waiting to be sent: `Sequence` and the attributes are set when it goes.
#[derive(Debug, Clone)]
struct Pending {
    event: InvocationEvent,
    /// The leg the event is about (the default leg of the answer's actions).
    leg: Option<String>,
}

#[derive(Debug, Clone)]
struct InFlight {
    kind: EventType,
    leg: Option<String>,
}

/// One SIP media application transaction.
#[derive(Debug)]
pub struct CallFlow {
    ctx: FlowContext,
    legs: Vec<LegState>,
    attributes: Option<BTreeMap<String, String>>,
    sequence: u64,
    queue: VecDeque<Pending>,
    in_flight: Option<InFlight>,
    invalid_in_row: u32,
    commands: VecDeque<FlowCommand>,
    /// The rest of the action list being run.
    actions: VecDeque<super::action::Action>,
    /// The leg actions without CallId or ParticipantTag apply to.
    list_leg: Option<String>,
    current: Option<Current>,
    /// ReceiveDigits listeners: the leg, the listener, the action's data.
    listeners: Vec<(String, digits::Listener, ActionData)>,
    done: bool,
}

fn leg_state(leg: FlowLeg) -> LegState {
    LegState {
        p: Participant::new(
            leg.call_id,
            leg.tag,
            leg.to,
            leg.from,
            leg.direction,
            leg.start_ms,
        ),
        answered: false,
        meeting: false,
        recording: CallRecording::Never,
    }
}

impl CallFlow {
    fn new(ctx: FlowContext, leg_a: FlowLeg) -> CallFlow {
        CallFlow {
            ctx,
            legs: vec![leg_state(leg_a)],
            attributes: None,
            sequence: 0,
            queue: VecDeque::new(),
            in_flight: None,
            invalid_in_row: 0,
            commands: VecDeque::new(),
            actions: VecDeque::new(),
            list_leg: None,
            current: None,
            listeners: Vec::new(),
            done: false,
        }
    }

    /// A call a SIP rule sent here: NEW_INBOUND_CALL. LEG-A is not answered yet.
    pub fn inbound(_now: Instant, ctx: FlowContext, leg_a: FlowLeg) -> CallFlow {
        let mut f = CallFlow::new(ctx, leg_a);
        f.push_event(EventType::NewInboundCall, None, None);
        f.pump();
        f
    }

    /// CreateSipMediaApplicationCall: NEW_OUTBOUND_CALL with `arguments` as the
    /// transaction attributes, then LEG-A is dialled.
    pub fn outbound(
        _now: Instant,
        ctx: FlowContext,
        leg_a: FlowLeg,
        arguments: BTreeMap<String, String>,
    ) -> CallFlow {
        let call_id = leg_a.call_id.clone();
        let mut f = CallFlow::new(ctx, leg_a);
        if !arguments.is_empty() {
            f.attributes = Some(arguments);
        }
        f.push_event(EventType::NewOutboundCall, None, None);
        f.pump();
        f.commands.push_back(FlowCommand::Dial { call_id });
        f
    }

    /// The function's answer to the invocation in flight (a stray one is ignored).
    pub fn on_function_answer(
        &mut self,
        now: Instant,
        answer: Result<FunctionResponse, InvalidResponse>,
    ) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        let ignored = !self.any_connected()
            || matches!(
                flight.kind,
                EventType::NewOutboundCall | EventType::Ringing | EventType::ActionInterrupted
            );
        match answer {
            Err(e) if !ignored => {
                self.invalid_in_row += 1;
                if self.invalid_in_row >= MAX_INVALID_ANSWERS {
                    self.end_all(UNAVAILABLE);
                } else {
                    let ev = InvocationEvent::invalid_response(0, self.details(), &e);
                    self.queue.push_front(Pending {
                        event: ev,
                        leg: flight.leg,
                    });
                }
            }
            Err(_) => {}
            Ok(r) => {
                if !ignored {
                    self.invalid_in_row = 0;
                }
                if let Some(a) = r.transaction_attributes {
                    self.attributes = Some(a);
                }
                if let (false, ActionList::Replace(list)) = (ignored, r.actions) {
                    let leg = flight.leg.filter(|id| self.is_connected(id));
                    self.replace(now, list, leg);
                }
            }
        }
        self.pump();
    }

    /// The invoker gave up on the function: every leg is hung up with 480.
    pub fn on_function_unreachable(&mut self, _now: Instant) {
        self.in_flight = None;
        self.end_all(UNAVAILABLE);
        self.pump();
    }

    /// An outbound LEG-A rings: RINGING.
    pub fn on_ringing(&mut self, _now: Instant, call_id: &str) {
        let outbound_a = self
            .leg(call_id)
            .is_some_and(|l| l.p.direction == Direction::Outbound && !l.answered && l.connected());
        if outbound_a {
            self.push_event(EventType::Ringing, None, Some(call_id.to_string()));
            self.pump();
        }
    }

    /// An outbound LEG-A answered: CALL_ANSWERED. For an inbound leg: our 200 was
    /// acknowledged (nothing to report).
    pub fn on_answered(&mut self, _now: Instant, call_id: &str) {
        let Some(l) = self.leg_mut(call_id) else {
            return;
        };
        if l.answered || !l.connected() {
            return;
        }
        l.answered = true;
        if l.p.direction == Direction::Outbound {
            self.push_event(EventType::CallAnswered, None, Some(call_id.to_string()));
            self.pump();
        }
    }

    /// A key pressed on a leg (0-9, *, #, A-D; anything else is ignored).
    pub fn on_digit(&mut self, now: Instant, call_id: &str, digit: char) {
        if !digits::is_dtmf(digit) || !self.is_connected(call_id) {
            return;
        }
        if !self.digit_to_current(now, call_id, digit)
            && let Some((_, l, _)) = self.listeners.iter_mut().find(|(id, _, _)| id == call_id)
        {
            l.on_digit(now, digit);
        }
        self.pump();
    }

    /// The prompt finished playing (all repeats).
    pub fn on_play_done(&mut self, now: Instant, call_id: &str) {
        self.play_done(now, call_id);
        self.pump();
    }

    /// The action in progress on the leg failed (prompt not found, join refused, bridge
    /// not answered…): ACTION_FAILED with this error.
    pub fn on_action_error(
        &mut self,
        now: Instant,
        call_id: &str,
        error_type: &str,
        message: &str,
    ) {
        if self.current.as_ref().is_some_and(|c| c.call_id == call_id) {
            self.fail_current(now, error_type, message);
        }
        self.pump();
    }

    /// JoinChimeMeeting succeeded: `leg_b` is the meeting leg.
    pub fn on_joined(&mut self, now: Instant, call_id: &str, leg_b: FlowLeg) {
        if self.current.as_ref().is_some_and(|c| c.is_join(call_id)) {
            self.add_leg(leg_b, true);
            self.succeed_current(now, None);
        }
        self.pump();
    }

    /// CallAndBridge's LEG-B answered and is bridged.
    pub fn on_bridged(&mut self, now: Instant, call_id: &str, leg_b: FlowLeg) {
        if self.current.as_ref().is_some_and(|c| c.is_bridge(call_id)) {
            self.add_leg(leg_b, false);
            self.succeed_current(now, None);
        }
        self.pump();
    }

    /// RecordAudio finished; `key` is the object written to the destination bucket.
    pub fn on_record_done(&mut self, now: Instant, call_id: &str, key: &str) {
        if let Some(c) = &self.current
            && let Some(dest) = c.record_destination(call_id, key)
        {
            self.succeed_current(now, Some(dest));
        }
        self.pump();
    }

    /// A leg is gone (BYE, CANCEL, a failed outbound leg). `sip_code`: the status it ended
    /// with, if any (None: normal clearing).
    pub fn on_leg_ended(&mut self, _now: Instant, call_id: &str, sip_code: Option<u16>) {
        if !self.is_connected(call_id) {
            return;
        }
        self.leg_gone(call_id, sip_code.unwrap_or(0));
        self.pump();
    }

    /// UpdateSipMediaApplicationCall: CALL_UPDATE_REQUESTED.
    pub fn on_update_requested(&mut self, _now: Instant, arguments: BTreeMap<String, String>) {
        if !self.any_connected() {
            return;
        }
        let data = ActionData::new(
            "CallUpdateRequest",
            serde_json::json!({ "Arguments": arguments }),
        );
        self.push_event(EventType::CallUpdateRequested, Some(data), None);
        self.pump();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.current_timeout(now);
        let mut matched = Vec::new();
        for (id, l, _) in &mut self.listeners {
            if let Some(d) = l.on_timeout(now) {
                matched.push((id.clone(), d));
            }
        }
        for (id, d) in matched {
            self.digits_received(&id, d);
        }
        self.pump();
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let current = self.current.as_ref().and_then(|c| c.deadline());
        self.listeners
            .iter()
            .filter_map(|(_, l, _)| l.deadline())
            .chain(current)
            .min()
    }

    pub fn poll_command(&mut self) -> Option<FlowCommand> {
        self.commands.pop_front()
    }

    /// The transaction and application this flow runs for.
    pub fn context(&self) -> &FlowContext {
        &self.ctx
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    // ---- legs ----

    fn leg(&self, call_id: &str) -> Option<&LegState> {
        self.legs.iter().find(|l| l.p.call_id == call_id)
    }

    fn leg_mut(&mut self, call_id: &str) -> Option<&mut LegState> {
        self.legs.iter_mut().find(|l| l.p.call_id == call_id)
    }

    fn is_connected(&self, call_id: &str) -> bool {
        self.leg(call_id).is_some_and(LegState::connected)
    }

    fn any_connected(&self) -> bool {
        self.legs.iter().any(LegState::connected)
    }

    fn add_leg(&mut self, leg: FlowLeg, meeting: bool) {
        if self.leg(&leg.call_id).is_some() {
            return;
        }
        if self.legs.len() >= MAX_LEGS
            && let Some(i) = self.legs.iter().position(|l| !l.connected())
        {
            self.legs.remove(i);
        }
        let mut s = leg_state(leg);
        s.answered = true;
        s.meeting = meeting;
        self.legs.push(s);
    }

    /// Marks a leg Disconnected with what goes with it (its meeting leg when it is
    /// LEG-A, its listener, the action in progress on it, the rest of the list), and
    /// queues HANGUP.
    fn leg_gone(&mut self, call_id: &str, code: u16) {
        let Some(l) = self.leg_mut(call_id) else {
            return;
        };
        l.p.status = ParticipantStatus::Disconnected;
        let tag = l.p.participant_tag;
        if tag == ParticipantTag::LegA {
            for b in self.legs.iter_mut().filter(|b| b.meeting && b.connected()) {
                b.p.status = ParticipantStatus::Disconnected;
                self.commands.push_back(FlowCommand::Hangup {
                    call_id: b.p.call_id.clone(),
                    sip_code: 0,
                });
            }
        }
        let gone: Vec<String> = self
            .legs
            .iter()
            .filter(|l| !l.connected())
            .map(|l| l.p.call_id.clone())
            .collect();
        self.listeners.retain(|(id, _, _)| !gone.contains(id));
        if self
            .current
            .as_ref()
            .is_some_and(|c| gone.contains(&c.call_id))
        {
            self.current = None;
        }
        self.actions.clear();
        let data = ActionData::new(
            "Hangup",
            serde_json::json!({
                "SipResponseCode": code,
                "CallId": call_id,
                "ParticipantTag": tag,
            }),
        );
        self.push_event(EventType::Hangup, Some(data), Some(call_id.to_string()));
    }

    /// Hangs every connected leg up with `code` and ends the transaction without telling
    /// the function (it is failing or over its limits).
    fn end_all(&mut self, code: u16) {
        for l in self.legs.iter_mut().filter(|l| l.connected()) {
            l.p.status = ParticipantStatus::Disconnected;
            let sip_code = if l.meeting { 0 } else { code };
            self.commands.push_back(FlowCommand::Hangup {
                call_id: l.p.call_id.clone(),
                sip_code,
            });
        }
        self.queue.clear();
        self.in_flight = None;
        self.actions.clear();
        self.current = None;
        self.listeners.clear();
    }

    // ---- events ----

    fn details(&self) -> CallDetails {
        CallDetails {
            transaction_id: self.ctx.transaction_id.clone(),
            aws_account_id: ACCOUNT_ID.to_string(),
            aws_region: self.ctx.aws_region.clone(),
            sip_rule_id: self.ctx.sip_rule_id.clone(),
            sip_media_application_id: self.ctx.sip_media_application_id.clone(),
            participants: self.legs.iter().map(|l| l.p.clone()).collect(),
            transaction_attributes: None,
        }
    }

    fn push_event(&mut self, kind: EventType, data: Option<ActionData>, leg: Option<String>) {
        if self.done {
            return;
        }
        let mut event = InvocationEvent::new(kind, 0, self.details());
        event.action_data = data;
        if self.queue.len() >= MAX_QUEUED_EVENTS {
            let oldest = self
                .queue
                .iter()
                .position(|p| p.event.invocation_event_type != EventType::Hangup);
            match oldest {
                Some(i) => {
                    self.queue.remove(i);
                }
                None if kind != EventType::Hangup => return,
                None => {}
            }
        }
        self.queue.push_back(Pending { event, leg });
    }

    /// Sends the next event if none is in flight; says Done once nothing is left.
    fn pump(&mut self) {
        if self.done {
            return;
        }
        if self.in_flight.is_none()
            && let Some(mut p) = self.queue.pop_front()
        {
            if self.sequence >= MAX_INVOCATIONS {
                self.end_all(UNAVAILABLE);
            } else {
                self.sequence += 1;
                p.event.sequence = self.sequence;
                p.event.call_details.transaction_attributes = self.attributes.clone();
                self.in_flight = Some(InFlight {
                    kind: p.event.invocation_event_type,
                    leg: p.leg,
                });
                self.commands.push_back(FlowCommand::Invoke(p.event));
            }
        }
        if self.in_flight.is_none() && self.queue.is_empty() && !self.any_connected() {
            self.done = true;
            self.commands.push_back(FlowCommand::Done);
        }
    }
}

#[cfg(test)]
mod tests;
