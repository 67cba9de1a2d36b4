//! StartCallRecording, StopCallRecording, PauseCallRecording and ResumeCallRecording: each
//! leg's recording state, and the start's report. The driver taps the leg and writes the
//! file; the flow keeps the rules (a leg is recorded once; pause only what records, resume
//! only what is paused).

use std::time::Instant;

use super::run::{Running, Start};
use super::{CallFlow, FlowCommand, RecordingOp};

/// Where a leg's call recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CallRecording {
    #[default]
    Never,
    On,
    Paused,
    Stopped,
}

impl CallFlow {
    /// StartCallRecording's recording of `call_id` began, to be delivered to `location`
    /// (`bucket/key`) when it stops; or it could not (`Err`: why).
    pub fn on_call_recording(&mut self, now: Instant, call_id: &str, location: Result<&str, &str>) {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.is_call_recording(call_id))
        {
            match location {
                Ok(l) => {
                    let dest = serde_json::json!({"Type": "S3", "Location": l});
                    self.succeed_with(now, |d| d.call_recording_destination = Some(dest));
                }
                Err(why) => {
                    if let Some(l) = self.leg_mut(call_id) {
                        l.recording = CallRecording::Stopped;
                    }
                    self.fail_current(now, "SystemException", why)
                }
            }
        }
        self.pump();
    }

    /// StartCallRecording and its controls. A leg is recorded once: started, paused and
    /// resumed as often as wanted, stopped once (or by its hang-up).
    pub(super) fn recording(&mut self, call_id: &str, op: RecordingOp) -> Result<Start, String> {
        use CallRecording as R;
        let id = self.resolve_id(call_id)?;
        let Some(l) = self.leg_mut(&id) else {
            return Err(format!("CallId {id:?} is not a connected leg of this call"));
        };
        let next = match (&op, l.recording) {
            (RecordingOp::Start(_), R::Never) => R::On,
            (RecordingOp::Start(_), _) => {
                return Err(format!(
                    "CallId {id:?} was already recorded: a call leg's recording starts once"
                ));
            }
            (RecordingOp::Stop, R::On | R::Paused) => R::Stopped,
            (RecordingOp::Pause, R::On) => R::Paused,
            (RecordingOp::Resume, R::Paused) => R::On,
            (op, state) => {
                let what = match op {
                    RecordingOp::Stop => "StopCallRecording",
                    RecordingOp::Pause => "PauseCallRecording",
                    _ => "ResumeCallRecording",
                };
                let state = match state {
                    R::Never => "is not being recorded",
                    R::On => "is being recorded (not paused)",
                    R::Paused => "has its recording paused",
                    R::Stopped => "has its recording stopped already",
                };
                return Err(format!("{what}: CallId {id:?} {state}"));
            }
        };
        l.recording = next;
        let start = matches!(op, RecordingOp::Start(_));
        self.commands.push_back(FlowCommand::CallRecording {
            call_id: id.clone(),
            op,
        });
        Ok(if start {
            Start::Running(id, Running::CallRecording)
        } else {
            Start::Succeeded(id)
        })
    }
}
