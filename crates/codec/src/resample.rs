//! Streaming sample-rate conversion between 8, 16 and 48 kHz (and any other pair whose
//! ratio reduces to small integers).
//!
//! A polyphase FIR: the prototype low-pass is a windowed sinc (Kaiser window, designed for
//! 70 dB stopband attenuation) at the rate `from × L`, where `to / from = L / M` in lowest
//! terms; each output sample is one dot product of one polyphase branch with the recent
//! input. The pass band reaches 86 % of the lower Nyquist frequency (3.44 kHz at 8 kHz,
//! 6.9 kHz at 16 kHz) and the stop band starts at the lower Nyquist frequency, so aliases and
//! images are at least 60 dB down. State is carried across calls, so a stream can be fed
//! frame by frame with no seams.
//!
//! Ours rather than `rubato` because for these fixed integer ratios a plain polyphase FIR is
//! simple and (see docs/BENCHMARKS.md) faster per 20 ms frame.

use thiserror::Error;

/// Stopband attenuation the prototype filter is designed for, in dB.
const ATTENUATION_DB: f64 = 70.0;
/// Pass band edge as a fraction of the lower Nyquist frequency.
const PASS_FRACTION: f64 = 0.86;
/// Largest interpolation or decimation factor accepted.
const MAX_FACTOR: u32 = 64;

/// Rejected resampler configuration (the caller's fault).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ResampleError {
    /// A rate of zero, or a ratio that does not reduce to factors of at most 64.
    #[error("unsupported resampling ratio {from} Hz -> {to} Hz")]
    UnsupportedRatio {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
}

/// A streaming resampler for one mono channel of `i16` PCM.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Interpolation factor L.
    up: usize,
    /// Decimation factor M.
    down: usize,
    /// Taps per polyphase branch.
    taps: usize,
    /// Centre of the prototype filter in high-rate samples (its group delay).
    half: usize,
    /// `up` branches of `taps` coefficients each, stored time-reversed so that a branch is a
    /// plain dot product with ascending input.
    coeffs: Vec<f32>,
    /// The last `taps - 1` input samples followed by the current input.
    work: Vec<f32>,
    /// High-rate time of the next output relative to the first sample of the current input.
    next_t: usize,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let err = ResampleError::UnsupportedRatio { from, to };
        if from == 0 || to == 0 {
            return Err(err);
        }
        let g = gcd(from, to);
        let (up, down) = (to / g, from / g);
        if up > MAX_FACTOR || down > MAX_FACTOR {
            return Err(err);
        }
        let (up, down) = (up as usize, down as usize);
        let high_rate = f64::from(from) * up as f64;
        let nyquist = f64::from(from.min(to)) / 2.0;
        let pass = nyquist * PASS_FRACTION;
        let transition = nyquist - pass;
        let cutoff = (pass + nyquist) / 2.0;
        // Kaiser's estimate of the length for the attenuation and transition width.
        let dw = 2.0 * std::f64::consts::PI * transition / high_rate;
        let needed = ((ATTENUATION_DB - 7.95) / (2.285 * dw)).ceil() as usize + 1;
        // Odd length with the centre tap at a multiple of L·M, so the group delay is a whole
        // number of both input and output samples; pad with zeros to whole branches.
        let grid = up * down;
        let half = ((needed - 1) / 2).div_ceil(grid) * grid;
        let len = 2 * half + 1;
        let taps = if up == down { 1 } else { len.div_ceil(up) };
        let n = taps * up;
        let beta = 0.1102 * (ATTENUATION_DB - 8.7);
        let centre = half as f64;
        let fc = cutoff / high_rate;
        let mut h: Vec<f64> = (0..n)
            .map(|m| {
                let x = m as f64 - centre;
                let sinc = if x == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
                };
                if m >= len {
                    return 0.0;
                }
                let r = if half > 0 { x / half as f64 } else { 0.0 };
                sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta)
            })
            .collect();
        if up == down {
            h = vec![1.0];
        }
        // Unity gain at DC for every branch on average: scale the whole filter to sum to L.
        let sum: f64 = h.iter().sum();
        let scale = up as f64 / sum;
        let mut coeffs = vec![0f32; up * taps];
        for p in 0..up {
            for j in 0..taps {
                // Branch p, tap j multiplies x[n - j]; store reversed.
                coeffs[p * taps + (taps - 1 - j)] = (h[p + j * up] * scale) as f32;
            }
        }
        Ok(Resampler {
            from,
            to,
            up,
            down,
            taps,
            half: if up == down { 0 } else { half },
            coeffs,
            work: vec![0.0; taps - 1],
            next_t: 0,
        })
    }

    /// Input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Group delay of the filter in output samples (a whole number).
    pub fn delay(&self) -> usize {
        self.half / self.down
    }

    /// Clears the history, as at the start of a new stream.
    pub fn reset(&mut self) {
        self.work.clear();
        self.work.resize(self.taps - 1, 0.0);
        self.next_t = 0;
    }

    /// Number of output samples the next call with `input_len` samples will append.
    pub fn output_len(&self, input_len: usize) -> usize {
        let end = input_len * self.up;
        if end <= self.next_t {
            0
        } else {
            (end - self.next_t).div_ceil(self.down)
        }
    }

    /// Resamples `input` and appends the output to `out`. A 20 ms frame in gives exactly a
    /// 20 ms frame out for the 8/16/48 kHz rates.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let hist = self.taps - 1;
        self.work.truncate(hist);
        self.work.extend(input.iter().map(|&s| f32::from(s)));
        out.reserve(self.output_len(input.len()));
        let end = input.len() * self.up;
        let mut t = self.next_t;
        while t < end {
            let n = t / self.up;
            let p = t % self.up;
            let c = &self.coeffs[p * self.taps..(p + 1) * self.taps];
            // x[n - taps + 1 ..= n] sits at work[n .. n + taps] (history offset hist).
            let x = &self.work[n..n + self.taps];
            let y = dot(c, x);
            out.push(y.round().clamp(-32768.0, 32767.0) as i16);
            t += self.down;
        }
        self.next_t = t - end;
        // Keep the last `hist` samples as history for the next call.
        let len = self.work.len();
        self.work.copy_within(len - hist.., 0);
        self.work.truncate(hist);
    }
}

/// Dot product with eight independent accumulators so that it vectorises.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Modified Bessel function of the first kind, order zero (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ratios() {
        assert!(Resampler::new(0, 8000).is_err());
        assert!(Resampler::new(44_100, 48_000).is_err());
        assert!(Resampler::new(8000, 8000).is_ok());
    }

    #[test]
    fn identity_when_rates_match() {
        let mut r = Resampler::new(16000, 16000).unwrap();
        let input: Vec<i16> = (0..320).map(|i| (i * 37 % 2000) as i16).collect();
        let mut out = Vec::new();
        r.process(&input, &mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn frame_lengths() {
        for (from, to) in [
            (8000, 16000),
            (8000, 48000),
            (16000, 48000),
            (16000, 8000),
            (48000, 8000),
            (48000, 16000),
        ] {
            let mut r = Resampler::new(from, to).unwrap();
            let frame = vec![0i16; (from / 50) as usize];
            for _ in 0..5 {
                let mut out = Vec::new();
                assert_eq!(r.output_len(frame.len()), (to / 50) as usize);
                r.process(&frame, &mut out);
                assert_eq!(out.len(), (to / 50) as usize, "{from}->{to}");
            }
        }
    }
}
