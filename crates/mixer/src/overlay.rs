//! Audio for one listener only, added to what it hears: the prompts a SIP media application
//! plays to a caller ([`crate::Mixer::play`]).
//!
//! The samples are shared (`Arc`) and read in place; a listener at another rate hears them
//! through a streaming resampler, so a prompt costs no copy and one frame of work a tick.
//! Repeats follow each other without a gap. The frame that holds the last sample of the
//! last repeat is padded with silence and marks the prompt finished.

use std::sync::Arc;

use codec::resample::{ResampleError, Resampler};

use crate::participant::frame_len;
use crate::{Mixer, MixerError, ParticipantId};

/// 20 ms of one tapped participant's audio ([`Mixer::set_tap`]), both ways at one rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFrame {
    /// The participant.
    pub participant: ParticipantId,
    /// Sample rate of both tracks: that of the mix the participant hears.
    pub rate: u32,
    /// What it sent: decoded, concealed where packets were lost, silence where none came
    /// (also while muted: mute keeps it out of the others' mix, not out of its tap).
    pub incoming: Vec<i16>,
    /// What it hears: its mix and its prompt, limited, before encoding.
    pub outgoing: Vec<i16>,
}

impl Mixer {
    /// Plays `samples` (mono at `rate`, one of [`PROMPT_RATES`]) to `id` only, `repeat`
    /// times (0 counts as 1) back to back, added to what it hears, from the next tick on.
    /// Returns whether this replaced a prompt still playing (which then never finishes).
    /// When the frame with the last sample is made, [`Mixer::poll_played`] yields `id`.
    pub fn play(
        &mut self,
        id: ParticipantId,
        samples: Arc<[i16]>,
        rate: u32,
        repeat: u32,
    ) -> Result<bool, MixerError> {
        let overlay = Overlay::new(samples, rate, repeat)?;
        let p = self
            .participants
            .get_mut(id)
            .ok_or(MixerError::UnknownParticipant(id))?;
        Ok(p.overlay.replace(Box::new(overlay)).is_some())
    }

    /// Stops `id`'s prompt; whether one was playing.
    pub fn stop_play(&mut self, id: ParticipantId) -> Result<bool, MixerError> {
        let p = self
            .participants
            .get_mut(id)
            .ok_or(MixerError::UnknownParticipant(id))?;
        Ok(p.overlay.take().is_some())
    }

    /// Whether a prompt is playing to `id`.
    pub fn is_playing(&self, id: ParticipantId) -> bool {
        self.participants
            .get(id)
            .is_some_and(|p| p.overlay.is_some())
    }

    /// The next participant whose prompt played to its end (one entry per prompt; a
    /// participant removed meanwhile is not reported).
    pub fn poll_played(&mut self) -> Option<ParticipantId> {
        self.played.pop_front()
    }

    /// Starts or stops delivering `id`'s audio as [`TapFrame`]s, one per tick, from the
    /// next tick on. At most [`crate::MixerConfig::max_queued_frames`] per tapped
    /// participant wait undrained; older ones are dropped.
    pub fn set_tap(&mut self, id: ParticipantId, on: bool) -> Result<(), MixerError> {
        let p = self
            .participants
            .get_mut(id)
            .ok_or(MixerError::UnknownParticipant(id))?;
        p.tapped = on;
        if !on {
            self.taps.retain(|t| t.participant != id);
        }
        Ok(())
    }

    /// The next tapped frame, oldest first.
    pub fn poll_tap(&mut self) -> Option<TapFrame> {
        self.taps.pop_front()
    }

    /// A leaving participant's finished prompt and tapped audio are not reported.
    pub(crate) fn forget_playback(&mut self, id: ParticipantId) {
        self.played.retain(|p| *p != id);
        self.taps.retain(|t| t.participant != id);
    }

    /// After a tick: at most `max_queued_frames` per tapped participant wait, the oldest
    /// go first.
    pub(crate) fn trim_taps(&mut self) {
        let tapped = self.participants.iter().filter(|(_, p)| p.tapped).count();
        let cap = tapped.saturating_mul(self.config.max_queued_frames.max(1));
        while self.taps.len() > cap {
            self.taps.pop_front();
        }
    }
}

/// A prompt playing to one listener.
#[derive(Debug)]
pub(crate) struct Overlay {
    samples: Arc<[i16]>,
    rate: u32,
    /// Next sample to play.
    pos: usize,
    /// Plays still to start after the current one.
    repeats_left: u32,
    /// To the listener's rate, built for the rate it was last asked for.
    resampler: Option<Resampler>,
    /// This tick's frame at the prompt's rate.
    native: Vec<i16>,
    /// This tick's frame at the listener's rate.
    pub(crate) frame: Vec<i16>,
}

/// Sample rates a prompt may have: those of the codecs, whose ratios the resampler takes
/// and whose 20 ms frames are whole samples.
pub const PROMPT_RATES: [u32; 3] = [8000, 16_000, 48_000];

impl Overlay {
    /// `repeat` plays (at least one) of `samples` at `rate`, one of [`PROMPT_RATES`].
    pub(crate) fn new(samples: Arc<[i16]>, rate: u32, repeat: u32) -> Result<Self, MixerError> {
        if !PROMPT_RATES.contains(&rate) {
            return Err(ResampleError::UnsupportedRatio {
                from: rate,
                to: crate::SAMPLE_RATE,
            }
            .into());
        }
        Ok(Overlay {
            samples,
            rate,
            pos: 0,
            repeats_left: repeat.max(1) - 1,
            resampler: None,
            native: Vec::with_capacity(frame_len(rate)),
            frame: Vec::new(),
        })
    }

    /// Makes this tick's [`Overlay::frame`] at `rate` (one of [`PROMPT_RATES`]). True when
    /// the frame holds the end of the last repeat: the prompt is over.
    pub(crate) fn next_frame(&mut self, rate: u32) -> bool {
        let want = frame_len(self.rate);
        self.native.clear();
        while self.native.len() < want {
            if self.pos >= self.samples.len() {
                if self.repeats_left == 0 || self.samples.is_empty() {
                    break;
                }
                self.repeats_left -= 1;
                self.pos = 0;
            }
            let take = (want - self.native.len()).min(self.samples.len() - self.pos);
            self.native
                .extend_from_slice(&self.samples[self.pos..self.pos + take]);
            self.pos += take;
        }
        let done =
            self.pos >= self.samples.len() && (self.repeats_left == 0 || self.samples.is_empty());
        self.native.resize(want, 0);
        self.frame.clear();
        if rate == self.rate {
            self.frame.extend_from_slice(&self.native);
        } else {
            if self.resampler.as_ref().is_none_or(|r| r.to_rate() != rate) {
                self.resampler = Resampler::new(self.rate, rate).ok();
            }
            if let Some(r) = self.resampler.as_mut() {
                r.process(&self.native, &mut self.frame);
            }
        }
        self.frame.resize(frame_len(rate), 0);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_back_to_back_and_ends_on_the_frame_with_the_last_sample() {
        // 250 samples at 8 kHz (31.25 ms) twice: 500 samples, four frames of 160.
        let samples: Arc<[i16]> = (1..=250).map(|i| i as i16).collect();
        let mut o = Overlay::new(samples, 8000, 2).unwrap();
        let mut all = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..4 {
            ends.push(o.next_frame(8000));
            all.extend_from_slice(&o.frame);
        }
        assert_eq!(ends, [false, false, false, true]);
        let want: Vec<i16> = (1..=250).chain(1..=250).map(|i| i as i16).collect();
        assert_eq!(&all[..500], &want[..]);
        assert!(all[500..].iter().all(|&s| s == 0));
    }

    #[test]
    fn other_rates_are_converted_and_bad_ones_refused() {
        let samples: Arc<[i16]> = vec![1000; 1600].into();
        let mut o = Overlay::new(samples, 8000, 1).unwrap();
        assert!(!o.next_frame(48_000));
        assert_eq!(o.frame.len(), 960);
        assert!(Overlay::new(vec![0; 10].into(), 44_100, 1).is_err());
        let mut empty = Overlay::new(Vec::new().into(), 16_000, 5).unwrap();
        assert!(empty.next_frame(16_000));
        assert_eq!(empty.frame, vec![0; 320]);
    }
}
