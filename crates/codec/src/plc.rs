//! Packet loss concealment for waveform codecs (G.711, G.722).
//!
//! The method is the classic pitch-repetition concealment described in ITU-T G.711
//! Appendix I in outline (this is our own, simpler variant): on the first lost frame the
//! pitch period of the recent history is estimated by normalised autocorrelation; lost
//! frames are synthesised by repeating the last pitch period, attenuated linearly so that the
//! output is silent after [`Plc::FADE_MS`] of consecutive loss. When audio resumes, the first
//! few milliseconds of the good frame are cross-faded with the continuation of the synthetic
//! signal to avoid a click.

/// Pitch-repetition concealment state for one mono stream.
#[derive(Debug, Clone)]
pub struct Plc {
    rate: u32,
    /// Most recent output samples, oldest first; length is `history_len`.
    history: Vec<i16>,
    history_len: usize,
    /// Pitch period in samples chosen at the start of the current loss burst.
    pitch: usize,
    /// The last pitch period before the loss burst, repeated while concealing.
    template: Vec<i16>,
    /// Read position inside `template`.
    phase: usize,
    /// Samples synthesised since the loss burst started (0 when not concealing).
    lost_samples: usize,
}

impl Plc {
    /// Total concealment time before the output fades to silence, in milliseconds.
    pub const FADE_MS: u32 = 60;
    /// Time at full level before the fade starts, in milliseconds.
    const HOLD_MS: u32 = 10;
    /// Shortest pitch period searched (400 Hz).
    const MIN_PITCH_HZ: u32 = 400;
    /// Longest pitch period searched (66.7 Hz).
    const MAX_PITCH_MS_X10: u32 = 150;
    /// Cross-fade length when audio resumes, in milliseconds.
    const RESUME_MS: u32 = 2;

    /// A concealer for a stream at `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> Self {
        let sample_rate = sample_rate.clamp(Self::MIN_PITCH_HZ, 192_000);
        let max_pitch = ((sample_rate * Self::MAX_PITCH_MS_X10 / 10_000) as usize).max(1);
        let history_len = max_pitch * 3;
        Plc {
            rate: sample_rate,
            history: vec![0; history_len],
            history_len,
            pitch: max_pitch.max(1),
            template: Vec::new(),
            phase: 0,
            lost_samples: 0,
        }
    }

    /// `true` while a loss burst is being concealed.
    pub fn concealing(&self) -> bool {
        self.lost_samples > 0
    }

    /// Records a correctly decoded frame. `frame` is modified in place: if it follows
    /// concealed frames, its start is cross-faded from the synthetic signal.
    pub fn good_frame(&mut self, frame: &mut [i16]) {
        if self.lost_samples > 0 {
            let n = ((self.rate * Self::RESUME_MS / 1000) as usize).min(frame.len());
            let mut synth = vec![0i16; n];
            self.synthesise(&mut synth);
            for (i, (s, f)) in synth.iter().zip(frame.iter_mut()).enumerate() {
                let w = (i + 1) as f32 / (n + 1) as f32;
                *f = (f32::from(*s) * (1.0 - w) + f32::from(*f) * w) as i16;
            }
            self.lost_samples = 0;
        }
        self.remember(frame);
    }

    /// Fills `frame` with concealment for one lost frame.
    pub fn lost_frame(&mut self, frame: &mut [i16]) {
        if self.lost_samples == 0 {
            self.pitch = self.estimate_pitch().clamp(1, self.history_len);
            self.template.clear();
            self.template
                .extend_from_slice(&self.history[self.history_len - self.pitch..]);
            self.phase = 0;
        }
        self.synthesise(frame);
        self.remember(frame);
    }

    fn remember(&mut self, frame: &[i16]) {
        if frame.len() >= self.history_len {
            self.history.clear();
            self.history
                .extend_from_slice(&frame[frame.len() - self.history_len..]);
        } else {
            self.history.drain(..frame.len());
            self.history.extend_from_slice(frame);
        }
    }

    /// Writes the repeated, attenuated pitch period into `out` and advances the fade.
    fn synthesise(&mut self, out: &mut [i16]) {
        let hold = (self.rate * Self::HOLD_MS / 1000) as usize;
        let fade = (self.rate * Self::FADE_MS / 1000) as usize;
        for o in out.iter_mut() {
            let gain = if self.lost_samples < hold {
                1.0
            } else if self.lost_samples < fade {
                1.0 - (self.lost_samples - hold) as f32 / (fade - hold) as f32
            } else {
                0.0
            };
            let s = self.template.get(self.phase).copied().unwrap_or(0);
            *o = (f32::from(s) * gain) as i16;
            self.phase += 1;
            if self.phase >= self.template.len() {
                self.phase = 0;
            }
            self.lost_samples = self.lost_samples.saturating_add(1);
        }
    }

    /// Pitch period (samples) maximising the normalised autocorrelation of the history.
    fn estimate_pitch(&self) -> usize {
        let min_lag = (self.rate / Self::MIN_PITCH_HZ) as usize;
        let max_lag = self.history_len / 3;
        let h = &self.history;
        let n = h.len();
        // Correlate the last `max_lag` samples with the same span `lag` samples earlier.
        let win = max_lag;
        let tail = &h[n - win..];
        let mut best = (max_lag, f32::MIN);
        for lag in min_lag.max(1)..=max_lag {
            let past = &h[n - win - lag..n - lag];
            let mut xy = 0f32;
            let mut yy = 0f32;
            for (a, b) in tail.iter().zip(past) {
                xy += f32::from(*a) * f32::from(*b);
                yy += f32::from(*b) * f32::from(*b);
            }
            let score = if yy > 0.0 { xy / yy.sqrt() } else { 0.0 };
            if score > best.1 {
                best = (lag, score);
            }
        }
        best.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, start: usize, n: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| {
                (10_000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn conceals_a_tone_by_continuing_it() {
        let rate = 8000;
        let mut plc = Plc::new(rate);
        for k in 0..5 {
            let mut f = tone(rate, 200.0, k * 160, 160);
            plc.good_frame(&mut f);
        }
        let mut lost = vec![0i16; 80];
        plc.lost_frame(&mut lost);
        // The first 10 ms continue the 200 Hz tone closely (period 40 samples exactly).
        let want = tone(rate, 200.0, 800, 80);
        let err: f64 = lost
            .iter()
            .zip(&want)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum();
        let sig: f64 = want.iter().map(|b| f64::from(*b).powi(2)).sum();
        assert!(10.0 * (sig / err.max(1.0)).log10() > 20.0);
    }

    #[test]
    fn fades_to_silence_after_long_loss() {
        let rate = 16000;
        let mut plc = Plc::new(rate);
        let mut f = tone(rate, 300.0, 0, 320);
        plc.good_frame(&mut f);
        let mut out = vec![0i16; 320];
        for _ in 0..4 {
            plc.lost_frame(&mut out);
        }
        assert!(out.iter().all(|&s| s == 0));
        assert!(plc.concealing());
        let mut f = tone(rate, 300.0, 0, 320);
        plc.good_frame(&mut f);
        assert!(!plc.concealing());
    }
}
