//! Signal generators and measurements shared by the codec tests.
#![allow(dead_code)]

use std::f64::consts::PI;

/// A sine tone.
pub fn tone(rate: u32, hz: f64, amp: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (amp * (2.0 * PI * hz * i as f64 / f64::from(rate)).sin()).round() as i16)
        .collect()
}

/// A linear chirp from `f0` to `f1` Hz over `n` samples.
pub fn sweep(rate: u32, f0: f64, f1: f64, amp: f64, n: usize) -> Vec<i16> {
    let dur = n as f64 / f64::from(rate);
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let phase = 2.0 * PI * (f0 * t + (f1 - f0) * t * t / (2.0 * dur));
            (amp * phase.sin()).round() as i16
        })
        .collect()
}

/// Deterministic xorshift64* generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// White noise, uniform in ±amp.
pub fn noise(seed: u64, amp: f64, n: usize) -> Vec<i16> {
    let mut r = Rng(seed | 1);
    (0..n)
        .map(|_| ((r.unit() * 2.0 - 1.0) * amp) as i16)
        .collect()
}

/// A crude voiced-speech-like signal: a glottal pulse train with a wandering pitch through
/// two resonances, with syllable-rate amplitude modulation and unvoiced noise bursts.
pub fn speech_like(rate: u32, n: usize, seed: u64) -> Vec<i16> {
    let mut r = Rng(seed | 1);
    let fs = f64::from(rate);
    let mut out = Vec::with_capacity(n);
    let mut phase = 0.0f64;
    // Two-pole resonators (formants ~700 Hz and ~1200 Hz).
    let res = |f: f64, bw: f64| {
        let rr = (-PI * bw / fs).exp();
        (2.0 * rr * (2.0 * PI * f / fs).cos(), -rr * rr)
    };
    let (a1, a2) = res(700.0, 130.0);
    let (b1, b2) = res(1200.0, 150.0);
    let (mut y1, mut y2, mut z1, mut z2) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let t = i as f64 / fs;
        let f0 = 120.0 + 30.0 * (2.0 * PI * 0.7 * t).sin();
        phase += f0 / fs;
        let voiced = (2.0 * PI * 3.0 * t).sin() > -0.3;
        let exc = if voiced {
            if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            }
        } else {
            (r.unit() - 0.5) * 0.3
        };
        let y = exc + a1 * y1 + a2 * y2;
        y2 = y1;
        y1 = y;
        let z = y + b1 * z1 + b2 * z2;
        z2 = z1;
        z1 = z;
        let env = 0.5 + 0.5 * (2.0 * PI * 4.0 * t).sin().abs();
        out.push((z * 250.0 * env).clamp(-32000.0, 32000.0) as i16);
    }
    out
}

/// Finds the delay (0..=max_delay) of `out` relative to `reference` that maximises their
/// normalised cross-correlation, then returns `(delay, snr_db)` measured after skipping the
/// first `skip` reference samples.
pub fn aligned_snr(reference: &[i16], out: &[i16], max_delay: usize, skip: usize) -> (usize, f64) {
    let n = reference.len().min(out.len().saturating_sub(max_delay)) - skip;
    let mut best = (0, f64::MIN);
    for d in 0..=max_delay {
        let mut xy = 0.0;
        let mut yy = 0.0;
        for i in skip..skip + n {
            let x = f64::from(reference[i]);
            let y = f64::from(out[i + d]);
            xy += x * y;
            yy += y * y;
        }
        let c = if yy > 0.0 { xy / yy.sqrt() } else { 0.0 };
        if c > best.1 {
            best = (d, c);
        }
    }
    let d = best.0;
    (
        d,
        snr(&reference[skip..skip + n], &out[skip + d..skip + d + n]),
    )
}

/// Signal-to-noise ratio of `out` against `reference`, in dB.
pub fn snr(reference: &[i16], out: &[i16]) -> f64 {
    let mut sig = 0.0;
    let mut err = 0.0;
    for (x, y) in reference.iter().zip(out) {
        let x = f64::from(*x);
        let y = f64::from(*y);
        sig += x * x;
        err += (x - y) * (x - y);
    }
    10.0 * (sig / err.max(1e-9)).log10()
}

/// Root-mean-square level.
pub fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}
