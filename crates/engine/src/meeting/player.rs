//! Prompts played to one leg ([`MeetingMedia::play`]): what a SIP media application's
//! `PlayAudio` and `PlayAudioAndGetDigits` actions make a caller hear.
//!
//! The mixer adds the prompt to that leg's mix ([`mixer::Mixer::play`]): the leg hears it
//! over whatever else it hears in the meeting (in a one-leg application call, nothing
//! else), on its own codec, in its usual 20 ms frames with a continuous RTP timeline, under
//! its SRTP. Nobody else hears it. In a two-party bridge that relays packets undecoded,
//! a prompt to either leg switches the bridge to mixing until the prompt ends (see
//! `bridge.rs`); the other leg's audio goes on reaching both meanwhile.
//!
//! [`EngineEvent::PlayDone`] comes from the [`MeetingMedia::handle_timeout`] that sends the
//! frame holding the prompt's last sample: `duration × repeat` after [`MeetingMedia::play`],
//! give or take a frame. A prompt replaced or stopped reports `interrupted: true` at once;
//! a prompt to a leg that is removed ends silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use codec::resample::ResampleError;
use codec::wav::Pcm;
use mixer::{MixerError, PROMPT_RATES};

use super::{EngineError, EngineEvent, MeetingMedia};
use crate::leg::LegId;

/// Mono audio to play to a leg, at 8, 16 or 48 kHz (the codecs' rates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Samples per second: 8000, 16000 or 48000 ([`MeetingMedia::play`] refuses others).
    pub rate: u32,
    /// The samples, shared by every leg it plays to.
    pub samples: Arc<[i16]>,
}

impl Prompt {
    /// A prompt from decoded audio at any rate. Audio at 8, 16 or 48 kHz is kept as it is;
    /// other rates are converted to the next of those at or above them (22.05 kHz and
    /// 44.1 kHz to 48 kHz, 11.025 kHz to 16 kHz), or 48 kHz above 48 kHz.
    pub fn new(pcm: Pcm) -> Prompt {
        if PROMPT_RATES.contains(&pcm.rate) {
            return Prompt {
                rate: pcm.rate,
                samples: pcm.samples.into(),
            };
        }
        let to = PROMPT_RATES
            .iter()
            .copied()
            .find(|r| *r >= pcm.rate)
            .unwrap_or(mixer::SAMPLE_RATE);
        Prompt {
            rate: to,
            samples: convert(&pcm.samples, pcm.rate, to).into(),
        }
    }

    /// How long one play lasts.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(
            (self.samples.len() as u64).saturating_mul(1_000_000_000) / u64::from(self.rate.max(1)),
        )
    }
}

/// Zero crossings of the interpolation kernel on each side of its centre.
const ZEROS: f64 = 16.0;
/// Kernel table entries per input sample.
const STEPS: usize = 64;

/// Converts `x` from `from` Hz to `to` Hz in one go: band-limited interpolation with a
/// Blackman-windowed sinc whose cut-off is 90 % of the lower Nyquist frequency (about
/// 75 dB stop band). For any pair of rates, unlike [`codec::resample`], which streams
/// between rates whose ratio reduces to small integers.
fn convert(x: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == 0 || to == 0 || x.is_empty() {
        return Vec::new();
    }
    // The kernel in input samples: its cut-off in cycles per input sample, and its reach.
    let fc = 0.45 * (f64::from(to) / f64::from(from)).min(1.0);
    let reach = ZEROS / (2.0 * fc);
    let table: Vec<f64> = (0..=(reach * STEPS as f64).ceil() as usize + 1)
        .map(|i| {
            let d = i as f64 / STEPS as f64;
            if d >= reach {
                return 0.0;
            }
            let sinc = if d == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * d).sin() / (std::f64::consts::PI * d)
            };
            let r = std::f64::consts::PI * d / reach;
            sinc * (0.42 + 0.5 * r.cos() + 0.08 * (2.0 * r).cos())
        })
        .collect();
    let kernel = |d: f64| {
        let pos = d.abs() * STEPS as f64;
        let i = pos as usize;
        match (table.get(i), table.get(i + 1)) {
            (Some(a), Some(b)) => a + (b - a) * (pos - i as f64),
            _ => 0.0,
        }
    };
    let n = (x.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    let last = x.len() as isize - 1;
    (0..n)
        .map(|k| {
            let t = k as f64 * step;
            let first = ((t - reach).ceil() as isize).max(0);
            let end = ((t + reach).floor() as isize).min(last);
            let mut acc = 0.0;
            for j in first..=end {
                acc += f64::from(x[j as usize]) * kernel(t - j as f64);
            }
            acc.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

impl MeetingMedia {
    /// Plays `prompt` to `leg` only, `repeat` times back to back (0 plays it once), from
    /// the next mixer tick. Replaces a prompt still playing to that leg, which reports
    /// [`EngineEvent::PlayDone`] with `interrupted: true`. See the module docs.
    pub fn play(
        &mut self,
        now: Instant,
        leg: LegId,
        prompt: Prompt,
        repeat: u32,
    ) -> Result<(), EngineError> {
        let participant = self
            .legs
            .get(&leg)
            .ok_or(EngineError::UnknownLeg(leg))?
            .participant;
        if !PROMPT_RATES.contains(&prompt.rate) {
            return Err(MixerError::from(ResampleError::UnsupportedRatio {
                from: prompt.rate,
                to: mixer::SAMPLE_RATE,
            })
            .into());
        }
        let replaced = !self.prompts.insert(leg);
        // Out of relaying first, so the mixer's catching up does not eat the prompt.
        self.refresh_mode();
        self.wake_mixer(now);
        self.mixer
            .play(participant, prompt.samples, prompt.rate, repeat)?;
        if replaced {
            self.push_event(EngineEvent::PlayDone {
                leg,
                interrupted: true,
            });
        }
        Ok(())
    }

    /// Stops the prompt playing to `leg`: true if one was (it reports
    /// [`EngineEvent::PlayDone`] with `interrupted: true`).
    pub fn stop_play(&mut self, leg: LegId) -> bool {
        let Some(l) = self.legs.get(&leg) else {
            return false;
        };
        let stopped = self.mixer.stop_play(l.participant).unwrap_or(false);
        if self.prompts.remove(&leg) {
            self.push_event(EngineEvent::PlayDone {
                leg,
                interrupted: true,
            });
            self.refresh_mode();
        }
        stopped
    }

    /// After a mixer tick: the prompts that played to their end.
    pub(super) fn collect_played(&mut self) {
        let mut ended = false;
        while let Some(p) = self.mixer.poll_played() {
            let Some(leg) = self.by_participant.get(&p).copied() else {
                continue;
            };
            if self.prompts.remove(&leg) {
                ended = true;
                self.push_event(EngineEvent::PlayDone {
                    leg,
                    interrupted: false,
                });
            }
        }
        if ended {
            // A bridge may relay again.
            self.refresh_mode();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::tone::goertzel_energy;

    fn sine(rate: u32, hz: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (10_000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn odd_rates_are_converted_and_keep_the_pitch() {
        let p = Prompt::new(Pcm {
            rate: 44_100,
            samples: sine(44_100, 1000.0, 44_100),
        });
        assert_eq!(p.rate, 48_000);
        assert_eq!(p.samples.len(), 48_000);
        assert_eq!(p.duration(), Duration::from_secs(1));
        let mid = &p.samples[20_000..28_000];
        let on = goertzel_energy(mid, 48_000.0, 1000.0);
        assert!((on / (0.25 * 1e8) - 1.0).abs() < 0.05, "{on}");
        assert!(goertzel_energy(mid, 48_000.0, 1100.0) < on / 1000.0);

        // 11.025 kHz to 16 kHz; 6 kHz content of 22.05 kHz audio survives to 48 kHz.
        let p = Prompt::new(Pcm {
            rate: 11_025,
            samples: sine(11_025, 440.0, 11_025),
        });
        assert_eq!((p.rate, p.samples.len()), (16_000, 16_000));
        let p = Prompt::new(Pcm {
            rate: 22_050,
            samples: sine(22_050, 6000.0, 22_050),
        });
        let on = goertzel_energy(&p.samples[10_000..20_000], 48_000.0, 6000.0);
        assert!(on > 0.9 * 0.25 * 1e8, "{on}");
    }

    #[test]
    fn downsampling_removes_what_the_lower_rate_cannot_carry() {
        let got = convert(&sine(12_000, 5000.0, 12_000), 12_000, 8000);
        assert_eq!(got.len(), 8000);
        // 5 kHz is above 4 kHz: it must not fold back to 3 kHz.
        let alias = goertzel_energy(&got[2000..6000], 8000.0, 3000.0);
        assert!(alias < 0.25 * 1e8 * 1e-6, "{alias}");
        assert!(convert(&[], 8000, 16_000).is_empty());
        assert!(convert(&[1, 2], 0, 16_000).is_empty());
    }
}
