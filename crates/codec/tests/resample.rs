//! Resampler quality: SNR against an ideal sinusoid, pass-band flatness, stop-band
//! rejection (aliases and images ≥ 60 dB down) and seamless streaming.
#![allow(clippy::needless_range_loop)] // small dense linear algebra reads best indexed

mod common;

use codec::resample::Resampler;
use common::*;
use std::f64::consts::PI;

const PAIRS: [(u32, u32); 6] = [
    (8000, 16000),
    (8000, 48000),
    (16000, 48000),
    (16000, 8000),
    (48000, 8000),
    (48000, 16000),
];

fn run(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
    let mut r = Resampler::new(from, to).unwrap();
    let mut out = Vec::new();
    for frame in input.chunks((from / 50) as usize) {
        r.process(frame, &mut out);
    }
    out
}

/// Least-squares fit of a sinusoid at `hz` (plus DC) to `x`; returns (amplitude, residual
/// power relative to the fitted sinusoid's power in dB, i.e. the signal-to-noise+distortion).
fn sine_fit(x: &[i16], rate: u32, hz: f64) -> (f64, f64) {
    let w = 2.0 * PI * hz / f64::from(rate);
    // Normal equations for [sin, cos, 1].
    let mut m = [[0.0f64; 3]; 3];
    let mut v = [0.0f64; 3];
    for (i, &s) in x.iter().enumerate() {
        let b = [(w * i as f64).sin(), (w * i as f64).cos(), 1.0];
        for r in 0..3 {
            for c in 0..3 {
                m[r][c] += b[r] * b[c];
            }
            v[r] += b[r] * f64::from(s);
        }
    }
    let coef = solve3(m, v);
    let amp = (coef[0] * coef[0] + coef[1] * coef[1]).sqrt();
    let mut resid = 0.0;
    for (i, &s) in x.iter().enumerate() {
        let fit = coef[0] * (w * i as f64).sin() + coef[1] * (w * i as f64).cos() + coef[2];
        resid += (f64::from(s) - fit).powi(2);
    }
    let sig = amp * amp / 2.0 * x.len() as f64;
    (amp, 10.0 * (sig / resid.max(1e-9)).log10())
}

fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> [f64; 3] {
    for i in 0..3 {
        let p = m[i][i];
        for c in 0..3 {
            m[i][c] /= p;
        }
        v[i] /= p;
        for r in 0..3 {
            if r != i {
                let f = m[r][i];
                for c in 0..3 {
                    m[r][c] -= f * m[i][c];
                }
                v[r] -= f * v[i];
            }
        }
    }
    v
}

#[test]
fn tone_snr_every_pair() {
    for (from, to) in PAIRS {
        let nyq = f64::from(from.min(to)) / 2.0;
        for hz in [300.0, 1000.0, nyq * 0.8] {
            let input = tone(from, hz, 16000.0, from as usize);
            let out = run(from, to, &input);
            // Skip the filter's start-up transient.
            let steady = &out[out.len() / 4..];
            let (amp, snr) = sine_fit(steady, to, hz);
            assert!(snr > 60.0, "{from}->{to} {hz} Hz: SNR {snr:.1} dB");
            assert!(
                (amp / 16000.0 - 1.0).abs() < 0.01,
                "{from}->{to} {hz} Hz: gain {amp}"
            );
        }
    }
}

#[test]
fn pass_band_is_flat() {
    for (from, to) in PAIRS {
        let nyq = f64::from(from.min(to)) / 2.0;
        let mut hz = 100.0;
        while hz < nyq * 0.86 {
            let input = tone(from, hz, 10000.0, (from / 4) as usize);
            let out = run(from, to, &input);
            let (amp, _) = sine_fit(&out[out.len() / 3..], to, hz);
            let db = 20.0 * (amp / 10000.0).log10();
            assert!(db.abs() < 0.1, "{from}->{to}: {hz} Hz at {db:.3} dB");
            hz += 250.0;
        }
    }
}

#[test]
fn stop_band_rejects_aliases() {
    // Downsampling: everything at or above the output Nyquist frequency must vanish.
    for (from, to) in [(48000, 8000), (48000, 16000), (16000, 8000)] {
        let out_nyq = f64::from(to) / 2.0;
        let in_nyq = f64::from(from) / 2.0;
        let mut hz = out_nyq;
        while hz < in_nyq {
            let input = tone(from, hz, 20000.0, (from / 4) as usize);
            let out = run(from, to, &input);
            let level = rms(&out[out.len() / 3..]) / (20000.0 / 2f64.sqrt());
            let db = 20.0 * level.max(1e-9).log10();
            assert!(db < -60.0, "{from}->{to}: {hz} Hz leaks at {db:.1} dB");
            hz += 700.0;
        }
    }
}

#[test]
fn streaming_equals_one_block() {
    let input = speech_like(8000, 8000, 2);
    let whole = {
        let mut r = Resampler::new(8000, 48000).unwrap();
        let mut out = Vec::new();
        r.process(&input, &mut out);
        out
    };
    let mut r = Resampler::new(8000, 48000).unwrap();
    let mut pieces = Vec::new();
    let mut rng = Rng(5);
    let mut rest = input.as_slice();
    while !rest.is_empty() {
        let n = ((rng.next_u64() % 97) as usize + 1).min(rest.len());
        r.process(&rest[..n], &mut pieces);
        rest = &rest[n..];
    }
    assert_eq!(whole, pieces);
}

#[test]
fn round_trip_8k_48k_8k() {
    let input = sweep(8000, 200.0, 3300.0, 12000.0, 16000);
    let up = run(8000, 48000, &input);
    let back = run(48000, 8000, &up);
    // delay() is in output samples: the first stage's is at 48 kHz.
    let delay = Resampler::new(8000, 48000).unwrap().delay() / 6
        + Resampler::new(48000, 8000).unwrap().delay();
    let (d, snr) = aligned_snr(&input, &back, delay + 4, 800);
    assert!(d.abs_diff(delay) <= 1, "delay {d} expected {delay}");
    assert!(snr > 35.0, "SNR {snr:.1} dB");
}
