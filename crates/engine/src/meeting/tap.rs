//! Audio taps ([`MeetingMedia::set_tap`]): a leg's audio handed to the application as it
//! flows, for a SIP media application's `RecordAudio` and call recording.
//!
//! Every mixer tick a tapped leg yields one [`EngineEvent::Audio`]: 20 ms of what the leg
//! sent (decoded, concealed where packets were lost, silence where none came) and of what
//! it hears (its mix and its prompt, before encoding), at the rate of its codec's audio
//! (8 kHz for G.711, 16 kHz for G.722, 48 kHz for Opus). That is 50 events a second per
//! tapped leg. They wait in a queue of their own, so they never crowd out digits or other
//! events; the queue keeps [`MAX_AUDIO`] frames (10 s of one tap) and drops the oldest
//! beyond that, so a driver that drains [`MeetingMedia::poll_event`] every tick loses
//! nothing. A tapped leg of a two-party bridge has its audio decoded: the bridge mixes
//! instead of relaying while the tap is on.

use std::collections::{BTreeMap, VecDeque};

use super::{EngineError, EngineEvent, MeetingMedia};
use crate::leg::LegId;

/// Which way of a leg's audio a tap delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapTrack {
    /// What the leg sends us.
    Incoming,
    /// What we send the leg.
    Outgoing,
    /// Both.
    Both,
}

/// Most tapped frames kept undrained.
pub const MAX_AUDIO: usize = 500;

/// The taps of one meeting.
#[derive(Debug, Default)]
pub(super) struct Taps {
    tracks: BTreeMap<LegId, TapTrack>,
    audio: VecDeque<EngineEvent>,
}

impl Taps {
    pub(super) fn is_tapped(&self, leg: LegId) -> bool {
        self.tracks.contains_key(&leg)
    }

    /// The leg left: no more of its audio (what is queued stays).
    pub(super) fn forget(&mut self, leg: LegId) {
        self.tracks.remove(&leg);
    }

    /// The next queued audio frame.
    pub(super) fn pop(&mut self) -> Option<EngineEvent> {
        self.audio.pop_front()
    }
}

impl MeetingMedia {
    /// Starts (`Some`) or stops (`None`) delivering `leg`'s audio as
    /// [`EngineEvent::Audio`], one every 20 ms tick from the next one on. A new track
    /// replaces the old. See the module docs.
    pub fn set_tap(&mut self, leg: LegId, track: Option<TapTrack>) -> Result<(), EngineError> {
        let participant = self
            .legs
            .get(&leg)
            .ok_or(EngineError::UnknownLeg(leg))?
            .participant;
        match track {
            Some(t) => self.taps.tracks.insert(leg, t),
            None => self.taps.tracks.remove(&leg),
        };
        self.mixer.set_tap(participant, track.is_some())?;
        // A bridge decodes a tapped leg, and may relay again once no leg is tapped.
        self.refresh_mode();
        Ok(())
    }

    /// After a mixer tick: the tapped legs' audio.
    pub(super) fn collect_taps(&mut self) {
        while let Some(f) = self.mixer.poll_tap() {
            let Some(leg) = self.by_participant.get(&f.participant).copied() else {
                continue;
            };
            let Some(track) = self.taps.tracks.get(&leg) else {
                continue;
            };
            let (incoming, outgoing) = match track {
                TapTrack::Incoming => (f.incoming, Vec::new()),
                TapTrack::Outgoing => (Vec::new(), f.outgoing),
                TapTrack::Both => (f.incoming, f.outgoing),
            };
            if self.taps.audio.len() >= MAX_AUDIO {
                self.taps.audio.pop_front();
            }
            self.taps.audio.push_back(EngineEvent::Audio {
                leg,
                rate: f.rate,
                incoming,
                outgoing,
            });
        }
    }
}
