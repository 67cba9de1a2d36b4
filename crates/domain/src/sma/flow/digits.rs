//! Digit collection, sans-IO: the collector of PlayAudioAndGetDigits and SpeakAndGetDigits
//! ([`Collector`]) and the listener of ReceiveDigits ([`Listener`]). Both take digits and
//! time in and say what to do next; neither knows about legs or events.

use std::time::{Duration, Instant};

use regex::{Regex, RegexBuilder};

use super::Audio;

/// Most digits a collector or listener holds (PlayAudioAndGetDigits' MaxNumberOfDigits
/// default, and the listener's sliding buffer).
pub const MAX_DIGITS: usize = 128;
/// Most bytes of a compiled digit pattern (the function writes it; it must stay cheap).
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Whether `c` is a DTMF key: 0-9, *, #, A-D.
pub fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')
}

/// Compiles an InputDigitsRegex, refusing one that is too large.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("InputDigitsRegex {pattern:?} is not a valid pattern: {e}"))
}

/// Single-key terminators from the action's list of strings (bad entries were refused when
/// the answer was parsed).
pub fn keys(list: &Option<Vec<String>>) -> Vec<char> {
    list.iter()
        .flatten()
        .filter_map(|s| s.chars().next())
        .collect()
}

/// The settings of one PlayAudioAndGetDigits (or SpeakAndGetDigits), defaults filled in.
#[derive(Debug, Clone)]
pub struct CollectSpec {
    pub prompt: Audio,
    pub failure: Audio,
    pub min: usize,
    pub max: usize,
    pub terminators: Vec<char>,
    pub regex: Option<Regex>,
    pub in_between: Duration,
    pub attempts: u32,
    pub repeat_gap: Duration,
}

/// What the collector asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Nothing,
    Play(Audio),
    StopPlay,
    /// Valid digits (the terminator not included).
    Done(String),
    /// Every attempt failed.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The prompt is playing; a digit stops it (barge-in) and counts.
    Prompt,
    /// Waiting for digits, `deadline` for the next one.
    Collect,
    /// The failure prompt is playing; digits are ignored.
    Failure,
    /// Waiting RepeatDurationInMilliseconds before the next attempt.
    Gap,
}

/// One PlayAudioAndGetDigits in progress.
#[derive(Debug, Clone)]
pub struct Collector {
    spec: CollectSpec,
    phase: Phase,
    attempt: u32,
    digits: String,
    deadline: Option<Instant>,
}

impl Collector {
    /// Starts the first attempt: the caller plays what the returned step says.
    pub fn start(spec: CollectSpec) -> (Collector, Step) {
        let step = Step::Play(spec.prompt.clone());
        let c = Collector {
            spec,
            phase: Phase::Prompt,
            attempt: 0,
            digits: String::new(),
            deadline: None,
        };
        (c, step)
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The prompt or the failure prompt finished.
    pub fn on_play_done(&mut self, now: Instant) -> Step {
        match self.phase {
            Phase::Prompt => {
                self.phase = Phase::Collect;
                self.deadline = now.checked_add(self.spec.in_between);
            }
            Phase::Failure => {
                self.phase = Phase::Gap;
                self.deadline = now.checked_add(self.spec.repeat_gap);
            }
            // A late report of a prompt stopped by a digit.
            Phase::Collect | Phase::Gap => {}
        }
        Step::Nothing
    }

    /// A key was pressed. Returns the steps to take, in order (at most two: stop the
    /// prompt, then the outcome).
    pub fn on_digit(&mut self, now: Instant, d: char) -> Vec<Step> {
        let mut steps = Vec::new();
        match self.phase {
            Phase::Failure | Phase::Gap => return steps,
            Phase::Prompt => {
                steps.push(Step::StopPlay);
                self.phase = Phase::Collect;
            }
            Phase::Collect => {}
        }
        if self.spec.terminators.contains(&d) {
            steps.push(self.finish(now));
            return steps;
        }
        self.digits.push(d);
        if self.digits.len() >= self.spec.max {
            steps.push(self.finish(now));
        } else {
            self.deadline = now.checked_add(self.spec.in_between);
        }
        steps
    }

    /// The deadline passed: silence after the prompt or between digits, or the gap
    /// before the next attempt ended.
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        match self.deadline {
            Some(d) if d <= now => {}
            _ => return Step::Nothing,
        }
        self.deadline = None;
        match self.phase {
            Phase::Collect if self.digits.is_empty() => self.fail(),
            Phase::Collect => self.finish(now),
            Phase::Gap => {
                self.phase = Phase::Prompt;
                Step::Play(self.spec.prompt.clone())
            }
            Phase::Prompt | Phase::Failure => Step::Nothing,
        }
    }

    fn finish(&mut self, _now: Instant) -> Step {
        self.deadline = None;
        let digits = std::mem::take(&mut self.digits);
        let count = digits.chars().count();
        let length_ok = count >= self.spec.min && count <= self.spec.max;
        let pattern_ok = match &self.spec.regex {
            None => true,
            // The pattern may or may not include the terminator (AWS's own example is
            // `^\d{2}#$` with `#` as terminator): either form matching is valid.
            Some(r) => {
                r.is_match(&digits)
                    || self
                        .spec
                        .terminators
                        .iter()
                        .any(|t| r.is_match(&format!("{digits}{t}")))
            }
        };
        if length_ok && pattern_ok {
            Step::Done(digits)
        } else {
            self.fail()
        }
    }

    fn fail(&mut self) -> Step {
        self.digits.clear();
        self.attempt += 1;
        if self.attempt >= self.spec.attempts {
            self.deadline = None;
            return Step::Failed(format!(
                "no valid digits after {} attempt(s)",
                self.spec.attempts
            ));
        }
        self.phase = Phase::Failure;
        self.deadline = None;
        Step::Play(self.spec.failure.clone())
    }
}

/// A ReceiveDigits listener on one leg: digits go into a buffer; after
/// InBetweenDigitsDurationInMilliseconds of silence the buffer is matched against the
/// pattern; FlushDigitsDurationInMilliseconds after the first digit the buffer is emptied.
#[derive(Debug, Clone)]
pub struct Listener {
    regex: Regex,
    in_between: Duration,
    flush: Duration,
    buffer: String,
    check_at: Option<Instant>,
    flush_at: Option<Instant>,
}

impl Listener {
    pub fn new(regex: Regex, in_between: Duration, flush: Duration) -> Listener {
        Listener {
            regex,
            in_between,
            flush,
            buffer: String::new(),
            check_at: None,
            flush_at: None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match (self.check_at, self.flush_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn on_digit(&mut self, now: Instant, d: char) {
        if self.buffer.is_empty() {
            self.flush_at = now.checked_add(self.flush);
        }
        if self.buffer.len() >= MAX_DIGITS {
            // A sliding window: the oldest digit goes.
            self.buffer.remove(0);
        }
        self.buffer.push(d);
        self.check_at = now.checked_add(self.in_between);
    }

    /// Digits that matched, if the check is due and they do.
    pub fn on_timeout(&mut self, now: Instant) -> Option<String> {
        if self.check_at.is_some_and(|t| t <= now) {
            self.check_at = None;
            if self.regex.is_match(&self.buffer) {
                self.flush_at = None;
                return Some(std::mem::take(&mut self.buffer));
            }
        }
        if self.flush_at.is_some_and(|t| t <= now) {
            self.buffer.clear();
            self.flush_at = None;
            self.check_at = None;
        }
        None
    }
}
