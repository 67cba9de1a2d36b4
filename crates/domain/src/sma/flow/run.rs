//! Running an action list: starting each action, the one in progress ([`Current`]), its
//! outcome and the event that reports it. The rules are in the module docs of `flow`.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::digits::{self, CollectSpec, Collector, Listener, Step};
use super::{Audio, CallFlow, FlowCommand, RecordingOp};
use crate::sma::action::{Action, ActionKind, AttendeeOperation, Leg};
use crate::sma::event::{ActionData, Direction, EventType, ParticipantStatus, ParticipantTag};

/// Most attempts of a PlayAudioAndGetDigits and most repeats of a prompt.
const MAX_REPEAT: u64 = 100;

/// The action in progress.
#[derive(Debug)]
pub(super) struct Current {
    action: Action,
    pub(super) call_id: String,
    run: Running,
    /// A newer list waits for this action (it is not interruptible).
    replaced: bool,
}

#[derive(Debug)]
pub(super) enum Running {
    /// PlayAudio or Speak: until `on_play_done`, or a terminator key.
    Play {
        terminators: Vec<char>,
    },
    Pause {
        until: Instant,
    },
    Collect(Box<Collector>),
    Join,
    Bridge,
    Record,
    /// StartCallRecording: until `on_call_recording`.
    CallRecording,
}

impl Current {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match &self.run {
            Running::Pause { until } => Some(*until),
            Running::Collect(c) => c.deadline(),
            _ => None,
        }
    }

    pub(super) fn is_join(&self, call_id: &str) -> bool {
        matches!(self.run, Running::Join) && self.call_id == call_id
    }

    pub(super) fn is_call_recording(&self, call_id: &str) -> bool {
        matches!(self.run, Running::CallRecording) && self.call_id == call_id
    }

    pub(super) fn is_bridge(&self, call_id: &str) -> bool {
        matches!(self.run, Running::Bridge) && self.call_id == call_id
    }

    /// Where a finished RecordAudio on `call_id` wrote `key`, as AWS reports it.
    pub(super) fn record_destination(&self, call_id: &str, key: &str) -> Option<Value> {
        let (Running::Record, ActionKind::RecordAudio(r)) = (&self.run, &self.action.kind) else {
            return None;
        };
        (self.call_id == call_id).then(|| {
            serde_json::json!({
                "Type": r.recording_destination.kind,
                "BucketName": r.recording_destination.bucket_name,
                "Key": key,
            })
        })
    }

    /// PlayAudio, Speak, RecordAudio and Pause stop for a new list.
    fn interruptible(&self) -> bool {
        matches!(
            self.run,
            Running::Play { .. } | Running::Pause { .. } | Running::Record
        )
    }

    /// Actions that report their outcome wherever they are in the list.
    fn reports_always(&self) -> bool {
        matches!(
            self.run,
            Running::Collect(_)
                | Running::Join
                | Running::Bridge
                | Running::Record
                | Running::CallRecording
        )
    }
}

fn data(action: &Action) -> ActionData {
    ActionData::new(action.type_name(), action.parameters.clone())
}

/// How starting an action went.
pub(super) enum Start {
    Running(String, Running),
    Succeeded(String),
    Failed(&'static str, String),
    /// A Hangup of a leg that was not a meeting leg: HANGUP is queued, the list is over.
    Ended,
}

const INVALID: &str = "InvalidActionParameter";

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// [`Collecting`] from a PlayAudioAndGetDigits or SpeakAndGetDigits (same field names).
macro_rules! collecting {
    ($p:expr) => {
        Collecting {
            regex: &$p.input_digits_regex,
            min: $p.min_number_of_digits,
            max: $p.max_number_of_digits,
            terminators: &$p.terminator_digits,
            in_between: $p.in_between_digits_duration_in_milliseconds,
            repeat: $p.repeat,
            repeat_ms: $p.repeat_duration_in_milliseconds,
        }
    };
}

impl CallFlow {
    /// A new list from an answer; `leg` is the leg the answered event was about.
    pub(super) fn replace(&mut self, now: Instant, list: Vec<Action>, leg: Option<String>) {
        self.actions = list.into();
        self.list_leg = leg;
        match &mut self.current {
            Some(c) if c.interruptible() => {
                if let Some(c) = self.current.take() {
                    match c.run {
                        Running::Play { .. } => self.commands.push_back(FlowCommand::StopPlay {
                            call_id: c.call_id.clone(),
                        }),
                        Running::Record => self.commands.push_back(FlowCommand::StopRecord {
                            call_id: c.call_id.clone(),
                        }),
                        _ => {}
                    }
                    self.push_event(
                        EventType::ActionInterrupted,
                        Some(data(&c.action)),
                        Some(c.call_id),
                    );
                }
            }
            Some(c) => {
                c.replaced = true;
                return;
            }
            None => {}
        }
        self.advance(now);
    }

    /// Starts actions until one is in progress or the list is over.
    fn advance(&mut self, now: Instant) {
        while self.current.is_none() {
            let Some(action) = self.actions.pop_front() else {
                return;
            };
            if !self.any_connected() {
                self.actions.clear();
                return;
            }
            match self.start(now, &action) {
                Start::Running(call_id, run) => {
                    self.current = Some(Current {
                        action,
                        call_id,
                        run,
                        replaced: false,
                    })
                }
                Start::Succeeded(call_id) => {
                    self.report(Ok(data(&action)), call_id, false, false);
                }
                Start::Failed(kind, message) => {
                    let leg = self.list_leg.clone().unwrap_or_default();
                    let failed = (data(&action), kind.to_string(), message);
                    self.report(Err(failed), leg, false, false);
                }
                Start::Ended => {}
            }
        }
    }

    /// Queues the event for an outcome. A failure drops the rest of the list (unless a
    /// newer list already replaced it).
    fn report(
        &mut self,
        outcome: Result<ActionData, (ActionData, String, String)>,
        call_id: String,
        always: bool,
        replaced: bool,
    ) {
        let leg = Some(call_id).filter(|id| !id.is_empty());
        match outcome {
            Ok(d) => {
                if always || (self.actions.is_empty() && !replaced) {
                    self.push_event(EventType::ActionSuccessful, Some(d), leg);
                }
            }
            Err((mut d, kind, message)) => {
                d.error_type = Some(kind);
                d.error_message = Some(message);
                self.push_event(EventType::ActionFailed, Some(d), leg);
                if !replaced {
                    self.actions.clear();
                }
            }
        }
    }

    fn finish_current(&mut self, now: Instant, outcome: Result<ActionData, (String, String)>) {
        let Some(c) = self.current.take() else {
            return;
        };
        let always = c.reports_always();
        let outcome = outcome.map_err(|(kind, message)| (data(&c.action), kind, message));
        self.report(outcome, c.call_id, always, c.replaced);
        self.advance(now);
    }

    pub(super) fn succeed_current(&mut self, now: Instant, recording: Option<Value>) {
        self.succeed_with(now, |d| d.recording_destination = recording);
    }

    /// The action in progress succeeded; `fill` adds to its ActionData.
    pub(super) fn succeed_with(&mut self, now: Instant, fill: impl FnOnce(&mut ActionData)) {
        let Some(c) = &self.current else {
            return;
        };
        let mut d = data(&c.action);
        fill(&mut d);
        self.finish_current(now, Ok(d));
    }

    pub(super) fn fail_current(&mut self, now: Instant, kind: &str, message: &str) {
        self.finish_current(now, Err((kind.to_string(), message.to_string())));
    }

    /// The leg an action names: its CallId, else its ParticipantTag, else the leg the
    /// answered event was about, else LEG-A. It must be connected.
    fn resolve(&self, leg: &Leg) -> Result<String, String> {
        if let Some(id) = &leg.call_id {
            return self.resolve_id(id);
        }
        if let Some(tag) = leg.participant_tag {
            return self
                .legs
                .iter()
                .rev()
                .find(|l| l.p.participant_tag == tag && l.connected())
                .map(|l| l.p.call_id.clone())
                .ok_or_else(|| {
                    let tag = serde_json::to_value(tag).unwrap_or_default();
                    format!("ParticipantTag {tag} is not a connected leg of this call")
                });
        }
        self.list_leg
            .iter()
            .filter(|id| self.is_connected(id))
            .cloned()
            .chain(
                self.legs
                    .iter()
                    .filter(|l| l.p.participant_tag == ParticipantTag::LegA && l.connected())
                    .map(|l| l.p.call_id.clone()),
            )
            .next()
            .ok_or_else(|| "the call has no connected leg".to_string())
    }

    pub(super) fn resolve_id(&self, id: &str) -> Result<String, String> {
        if self.is_connected(id) {
            Ok(id.to_string())
        } else {
            Err(format!("CallId {id:?} is not a connected leg of this call"))
        }
    }

    /// Answers an inbound LEG-A that is still ringing.
    fn answer_leg_a(&mut self) {
        if let Some(a) = self.legs.iter_mut().find(|l| {
            l.p.participant_tag == ParticipantTag::LegA
                && l.p.direction == Direction::Inbound
                && !l.answered
                && l.connected()
        }) {
            a.answered = true;
            self.commands.push_back(FlowCommand::Answer {
                call_id: a.p.call_id.clone(),
            });
        }
    }

    fn bridged(&self) -> bool {
        self.legs
            .iter()
            .any(|l| l.p.participant_tag == ParticipantTag::LegB && l.connected())
    }

    fn start(&mut self, now: Instant, action: &Action) -> Start {
        match self.try_start(now, action) {
            Ok(s) => s,
            Err(message) => Start::Failed(INVALID, message),
        }
    }

    fn try_start(&mut self, now: Instant, action: &Action) -> Result<Start, String> {
        use ActionKind as K;
        if action.answers_call() {
            self.answer_leg_a();
        }
        let cmd = |s: &mut Self, c: FlowCommand| s.commands.push_back(c);
        Ok(match &action.kind {
            K::Hangup(h) => return self.hangup(&h.leg, h.sip_response_code.unwrap_or(0)),
            K::Pause(p) => {
                let id = self.resolve(&p.leg)?;
                let until = now
                    .checked_add(millis(p.duration_in_milliseconds))
                    .ok_or("DurationInMilliseconds is too large")?;
                Start::Running(id, Running::Pause { until })
            }
            K::PlayAudio(p) => {
                let id = self.resolve(&p.leg)?;
                let repeat = p.repeat.unwrap_or(1).clamp(1, MAX_REPEAT) as u32;
                let audio = Audio::S3(p.audio_source.clone());
                let (call_id, terminators) = (id.clone(), digits::keys(&p.playback_terminators));
                cmd(
                    self,
                    FlowCommand::Play {
                        call_id,
                        audio,
                        repeat,
                    },
                );
                Start::Running(id, Running::Play { terminators })
            }
            K::Speak(s) => {
                let id = self.resolve_id(&s.call_id)?;
                let audio = Audio::Speech(s.speech.clone());
                let call_id = id.clone();
                cmd(
                    self,
                    FlowCommand::Play {
                        call_id,
                        audio,
                        repeat: 1,
                    },
                );
                let terminators = Vec::new();
                Start::Running(id, Running::Play { terminators })
            }
            K::PlayAudioAndGetDigits(p) => {
                let id = self.resolve(&p.leg)?;
                let prompt = Audio::S3(p.audio_source.clone());
                let failure = Audio::S3(p.failure_audio_source.clone());
                self.start_collect(id, collect_spec(prompt, failure, collecting!(p))?)
            }
            K::SpeakAndGetDigits(p) => {
                let id = self.resolve_id(&p.call_id)?;
                let prompt = Audio::Speech(p.speech_parameters.clone());
                let failure = Audio::Speech(p.failure_speech_parameters.clone());
                self.start_collect(id, collect_spec(prompt, failure, collecting!(p))?)
            }
            K::ReceiveDigits(r) => {
                let id = self.resolve(&r.leg)?;
                let regex = digits::compile(&r.input_digits_regex)?;
                let l = Listener::new(
                    regex,
                    millis(r.in_between_digits_duration_in_milliseconds),
                    millis(r.flush_digits_duration_in_milliseconds),
                );
                self.listeners.retain(|(leg, _, _)| *leg != id);
                self.listeners.push((id.clone(), l, data(action)));
                Start::Succeeded(id)
            }
            K::SendDigits(s) => {
                let id = self.resolve_id(&s.call_id)?;
                let tone = s.tone_duration_in_milliseconds.unwrap_or(250);
                if !(50..=24_000).contains(&tone) {
                    return Err(format!(
                        "ToneDurationInMilliseconds {tone} is not 50 to 24000"
                    ));
                }
                let (call_id, digits) = (id.clone(), s.digits.clone());
                cmd(
                    self,
                    FlowCommand::SendDigits {
                        call_id,
                        digits,
                        tone_ms: tone as u32,
                    },
                );
                Start::Succeeded(id)
            }
            K::JoinChimeMeeting(j) => {
                let id = self.resolve(&j.leg)?;
                let leg_a = self
                    .leg(&id)
                    .is_some_and(|l| l.p.participant_tag == ParticipantTag::LegA);
                if !leg_a {
                    return Err("JoinChimeMeeting applies to LEG-A only".into());
                }
                if self.bridged() {
                    return Err("JoinChimeMeeting cannot run on a bridged call".into());
                }
                cmd(
                    self,
                    FlowCommand::JoinMeeting {
                        call_id: id.clone(),
                        join_token: j.join_token.clone(),
                        meeting_id: j.meeting_id.clone(),
                    },
                );
                Start::Running(id, Running::Join)
            }
            K::ModifyChimeMeetingAttendees(m) => {
                let id = self.resolve(&m.leg)?;
                cmd(
                    self,
                    FlowCommand::ModifyAttendees {
                        meeting_id: m.meeting_id.clone(),
                        attendees: m.attendee_list.clone(),
                        mute: m.operation == AttendeeOperation::Mute,
                    },
                );
                Start::Succeeded(id)
            }
            K::CallAndBridge(c) => {
                let id = self.resolve(&Leg::default())?;
                if self.bridged() {
                    return Err("the call already has a connected LEG-B".into());
                }
                let (call_id, action) = (id.clone(), c.clone());
                cmd(self, FlowCommand::Bridge { call_id, action });
                Start::Running(id, Running::Bridge)
            }
            K::RecordAudio(r) => {
                let id = self.resolve(&r.leg)?;
                let (call_id, action) = (id.clone(), r.clone());
                cmd(self, FlowCommand::Record { call_id, action });
                Start::Running(id, Running::Record)
            }
            K::StartCallRecording(s) => {
                self.recording(&s.call_id, RecordingOp::Start(s.clone()))?
            }
            K::StopCallRecording(c) => self.recording(&c.call_id, RecordingOp::Stop)?,
            K::PauseCallRecording(c) => self.recording(&c.call_id, RecordingOp::Pause)?,
            K::ResumeCallRecording(c) => self.recording(&c.call_id, RecordingOp::Resume)?,
            K::StartBotConversation(_) | K::VoiceFocus(_) => Start::Failed(
                "SystemException",
                format!(
                    "{} is not supported by this self-hosted service",
                    action.type_name()
                ),
            ),
        })
    }

    fn hangup(&mut self, leg: &Leg, code: u64) -> Result<Start, String> {
        let id = self.resolve(leg)?;
        let code = match code {
            0 | 480 | 486 => code as u16,
            _ => return Err(format!("SipResponseCode {code} is not 0, 480 or 486")),
        };
        let Some(l) = self.leg_mut(&id) else {
            return Err(format!("CallId {id:?} is not a connected leg of this call"));
        };
        if l.meeting {
            l.p.status = ParticipantStatus::Disconnected;
            self.listeners.retain(|(leg, _, _)| *leg != id);
            let call_id = id.clone();
            self.commands.push_back(FlowCommand::Hangup {
                call_id,
                sip_code: 0,
            });
            return Ok(Start::Succeeded(id));
        }
        let ringing = !l.answered && l.p.direction == Direction::Inbound;
        let sip_code = if ringing && code == 0 { 480 } else { code };
        let call_id = id.clone();
        self.commands
            .push_back(FlowCommand::Hangup { call_id, sip_code });
        self.leg_gone(&id, code);
        Ok(Start::Ended)
    }

    fn start_collect(&mut self, id: String, spec: CollectSpec) -> Start {
        let (c, step) = Collector::start(spec);
        if let Step::Play(audio) = step {
            let call_id = id.clone();
            self.commands.push_back(FlowCommand::Play {
                call_id,
                audio,
                repeat: 1,
            });
        }
        Start::Running(id, Running::Collect(Box::new(c)))
    }

    /// What a collector asked for, for the action in progress on `call_id`.
    fn collector_steps(&mut self, now: Instant, call_id: &str, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Nothing => {}
                Step::Play(audio) => self.commands.push_back(FlowCommand::Play {
                    call_id: call_id.to_string(),
                    audio,
                    repeat: 1,
                }),
                Step::StopPlay => self.commands.push_back(FlowCommand::StopPlay {
                    call_id: call_id.to_string(),
                }),
                Step::Done(digits) => {
                    if let Some(c) = &self.current {
                        let mut d = data(&c.action);
                        d.received_digits = Some(digits);
                        self.finish_current(now, Ok(d));
                    }
                }
                Step::Failed(message) => {
                    self.finish_current(now, Err(("InvalidDigitsReceived".into(), message)))
                }
            }
        }
    }

    /// A key for the action in progress on the leg; false when it does not take keys.
    pub(super) fn digit_to_current(&mut self, now: Instant, call_id: &str, d: char) -> bool {
        let Some(c) = self.current.as_mut().filter(|c| c.call_id == call_id) else {
            return false;
        };
        match &mut c.run {
            Running::Play { terminators } if terminators.contains(&d) => {
                let call_id = call_id.to_string();
                self.commands.push_back(FlowCommand::StopPlay { call_id });
                self.succeed_current(now, None);
                true
            }
            Running::Collect(col) => {
                let steps = col.on_digit(now, d);
                self.collector_steps(now, call_id, steps);
                true
            }
            _ => false,
        }
    }

    pub(super) fn play_done(&mut self, now: Instant, call_id: &str) {
        let Some(c) = self.current.as_mut().filter(|c| c.call_id == call_id) else {
            return;
        };
        match &mut c.run {
            Running::Play { .. } => self.succeed_current(now, None),
            Running::Collect(col) => {
                let step = col.on_play_done(now);
                self.collector_steps(now, call_id, vec![step]);
            }
            _ => {}
        }
    }

    pub(super) fn current_timeout(&mut self, now: Instant) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let call_id = c.call_id.clone();
        match &mut c.run {
            Running::Pause { until } if *until <= now => self.succeed_current(now, None),
            Running::Collect(col) => {
                let step = col.on_timeout(now);
                self.collector_steps(now, &call_id, vec![step]);
            }
            _ => {}
        }
    }

    /// A listener matched: DIGITS_RECEIVED, and the listener ends.
    pub(super) fn digits_received(&mut self, call_id: &str, digits: String) {
        let Some(i) = self.listeners.iter().position(|(id, _, _)| id == call_id) else {
            return;
        };
        let (_, _, mut d) = self.listeners.remove(i);
        d.received_digits = Some(digits);
        self.push_event(
            EventType::DigitsReceived,
            Some(d),
            Some(call_id.to_string()),
        );
    }
}

/// The digit-collection parameters PlayAudioAndGetDigits and SpeakAndGetDigits share.
struct Collecting<'a> {
    regex: &'a Option<String>,
    min: Option<u64>,
    max: Option<u64>,
    terminators: &'a Option<Vec<String>>,
    in_between: Option<u64>,
    repeat: Option<u64>,
    repeat_ms: u64,
}

/// AWS's defaults: Min 0, Max 128, terminator `#`, the silence between digits
/// RepeatDurationInMilliseconds, one attempt.
fn collect_spec(prompt: Audio, failure: Audio, c: Collecting) -> Result<CollectSpec, String> {
    let regex = c.regex.as_deref().map(digits::compile).transpose()?;
    let max = c.max.unwrap_or(digits::MAX_DIGITS as u64);
    if max == 0 || max > digits::MAX_DIGITS as u64 {
        return Err(format!(
            "MaxNumberOfDigits {max} is not 1 to {}",
            digits::MAX_DIGITS
        ));
    }
    let terminators = match c.terminators {
        Some(_) => digits::keys(c.terminators),
        None => vec!['#'],
    };
    Ok(CollectSpec {
        prompt,
        failure,
        min: c.min.unwrap_or(0) as usize,
        max: max as usize,
        terminators,
        regex,
        in_between: millis(c.in_between.unwrap_or(c.repeat_ms)),
        attempts: c.repeat.unwrap_or(1).clamp(1, MAX_REPEAT) as u32,
        repeat_gap: millis(c.repeat_ms),
    })
}
