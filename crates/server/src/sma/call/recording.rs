//! Recordings in a call's task: RecordAudio (one at a time, its outcome reported) and
//! StartCallRecording's recordings of whole legs (one per leg; paused, resumed, stopped,
//! delivered when stopped or when the leg or the call ends). Both take the leg's audio from
//! a tap of its mixer, keyed so that they and other taps (a live stream) stand side by
//! side; a tap follows its leg into a meeting (JoinChimeMeeting).

use std::collections::HashMap;
use std::time::Instant;

use calls::LegId;
use domain::sma::action::RecordAudio;
use domain::sma::flow::RecordingOp;
use tokio::sync::mpsc;

use super::{CallTask, Done, SmaMsg, SmaRequest};
use crate::meeting::{TapFrame, TapKey, taps};
use crate::sma::record::{CallRecorder, Recorder};

/// The call recordings of a call's legs, and where their taps' frames come in.
pub(super) struct CallRecordings {
    by_leg: HashMap<LegId, (TapKey, CallRecorder)>,
    pub(super) tap: mpsc::Sender<TapFrame>,
}

impl Default for CallRecordings {
    fn default() -> Self {
        CallRecordings {
            by_leg: HashMap::new(),
            tap: mpsc::channel(1).0,
        }
    }
}

impl CallTask {
    /// RecordAudio on `call_id`: its tap starts.
    pub(super) fn record_audio(&mut self, now: Instant, call_id: String, action: RecordAudio) {
        let Some(leg) = self.legs.leg(&call_id) else {
            let why = "no such call to record";
            return self
                .flow
                .on_action_error(now, &call_id, "InvalidActionParameter", why);
        };
        let r = Recorder::new(&call_id, &action, domain::timestamp::now_millis());
        let key = taps::next_key();
        self.recording = Some((leg, key, r));
        let sink = Some((engine::TapTrack::Incoming, self.tap.clone()));
        self.try_edge(SmaRequest::Tap { leg, key, sink });
    }

    /// A RecordAudio interrupted by a new action list: nothing is written.
    pub(super) fn stop_record_audio(&mut self) {
        if let Some((leg, key, r)) = self.recording.take() {
            tracing::info!(call = %r.call_id, "recording interrupted; discarded");
            self.untap(leg, key);
        }
    }

    fn untap(&self, leg: LegId, key: TapKey) {
        self.try_edge(SmaRequest::Tap {
            leg,
            key,
            sink: None,
        });
    }

    /// What a leg's digit or hang-up does to the recordings; true when the message is
    /// spent (a RecordAudio terminator).
    pub(super) fn recording_message(&mut self, msg: &SmaMsg, done: &mpsc::Sender<Done>) -> bool {
        let recording = self.recording.as_ref().map(|(l, _, r)| (*l, r));
        match msg {
            SmaMsg::Digit(leg, d)
                if recording.is_some_and(|(l, r)| l == *leg && r.stops_on(*d)) =>
            {
                self.end_recording(true, done);
                return true;
            }
            SmaMsg::Ended(leg, _) => {
                // What was said before the hang-up is kept.
                if recording.is_some_and(|(l, _)| l == *leg) {
                    self.end_recording(false, done)
                }
                self.deliver_call_recordings(Some(*leg));
            }
            _ => {}
        }
        false
    }

    /// The RecordAudio ends: its tap stops and, when `report`, the file is written and the
    /// flow told where (a recording cut short by a hang-up is written and not reported).
    pub(super) fn end_recording(&mut self, report: bool, done: &mpsc::Sender<Done>) {
        let Some((leg, key, r)) = self.recording.take() else {
            return;
        };
        self.untap(leg, key);
        let call_id = r.call_id.clone();
        let (bucket, key, wav) = r.finish();
        let (objects, done) = (self.services.objects.clone(), done.clone());
        tokio::spawn(async move {
            let result = objects
                .put(&bucket, &key, wav, "audio/wav")
                .await
                .map(|()| key)
                .map_err(|e| e.to_string());
            if let Err(e) = &result {
                tracing::warn!(call = %call_id, error = %e, "recording not written");
            }
            if report {
                let _ = done.send(Done::Recorded { call_id, result }).await;
            }
        });
    }

    /// StartCallRecording and its controls (the flow checked the leg's state).
    pub(super) fn call_recording(&mut self, now: Instant, call_id: String, op: RecordingOp) {
        let Some(leg) = self.legs.leg(&call_id) else {
            if matches!(op, RecordingOp::Start(_)) {
                let why = "no such call to record";
                self.flow.on_call_recording(now, &call_id, Err(why));
            }
            return;
        };
        match op {
            RecordingOp::Start(action) => {
                let transaction = &self.flow.context().transaction_id;
                let now_ms = domain::timestamp::now_millis();
                match CallRecorder::new(transaction, &action, now_ms) {
                    Ok(r) => {
                        let key = taps::next_key();
                        let sink = Some((r.tap_track(), self.call_recordings.tap.clone()));
                        let location = r.location();
                        tracing::info!(transaction = %transaction, call = %call_id, location = %location, "call recording started");
                        self.call_recordings.by_leg.insert(leg, (key, r));
                        self.try_edge(SmaRequest::Tap { leg, key, sink });
                        self.flow.on_call_recording(now, &call_id, Ok(&location));
                    }
                    Err(why) => self.flow.on_call_recording(now, &call_id, Err(&why)),
                }
            }
            RecordingOp::Pause | RecordingOp::Resume => {
                if let Some((_, r)) = self.call_recordings.by_leg.get_mut(&leg) {
                    r.set_paused(matches!(op, RecordingOp::Pause));
                }
            }
            RecordingOp::Stop => self.deliver_call_recordings(Some(leg)),
        }
    }

    /// A tick of a recorded leg's audio.
    pub(super) fn call_tap_frame(&mut self, f: TapFrame) {
        let full = match self.call_recordings.by_leg.get_mut(&f.leg) {
            Some((_, r)) => r.push(f.rate, &f.incoming, &f.outgoing),
            None => false,
        };
        if full {
            tracing::warn!(call = %f.leg, "call recording reached its longest; delivered now");
            self.deliver_call_recordings(Some(f.leg));
        }
    }

    /// Stops the call recordings of `leg` (all when None) and delivers them.
    pub(super) fn deliver_call_recordings(&mut self, leg: Option<LegId>) {
        let legs: Vec<LegId> = match leg {
            Some(l) => vec![l],
            None => self.call_recordings.by_leg.keys().copied().collect(),
        };
        for leg in legs {
            let Some((key, r)) = self.call_recordings.by_leg.remove(&leg) else {
                continue;
            };
            self.untap(leg, key);
            let call_id = r.call_id.clone();
            let (bucket, key, wav) = r.finish();
            let objects = self.services.objects.clone();
            tokio::spawn(async move {
                match objects.put(&bucket, &key, wav, "audio/wav").await {
                    Ok(()) => {
                        tracing::info!(call = %call_id, bucket = %bucket, key = %key, "call recording delivered")
                    }
                    Err(e) => {
                        tracing::warn!(call = %call_id, bucket = %bucket, key = %key, error = %e, "call recording not delivered")
                    }
                }
            });
        }
    }

    /// The leg's media moved to another mixer: its taps are asked of the new one.
    pub(super) fn retap(&self, leg: LegId) {
        if let Some((l, key, _)) = &self.recording
            && *l == leg
        {
            let sink = Some((engine::TapTrack::Incoming, self.tap.clone()));
            self.try_edge(SmaRequest::Tap {
                leg,
                key: *key,
                sink,
            });
        }
        if let Some((key, r)) = self.call_recordings.by_leg.get(&leg) {
            let sink = Some((r.tap_track(), self.call_recordings.tap.clone()));
            self.try_edge(SmaRequest::Tap {
                leg,
                key: *key,
                sink,
            });
        }
    }
}
