//! Virtual-time harness shared by the mixer tests: RTP legs that encode tones with the real
//! codecs, listeners that decode what the mixer sends, and a Goertzel detector.
#![allow(dead_code)]

use std::collections::HashMap;
use std::f64::consts::PI;
use std::time::{Duration, Instant};

use codec::{Codec, Decoder, Encoder};
use mixer::{Media, Mixer, OutputFrame, ParticipantId};

/// Power of `x` at `freq` Hz (Goertzel), normalised so a sine of amplitude A reads A²/4·N²
/// scaled down by N²: returns the squared amplitude estimate (A²).
pub fn tone_power(x: &[i16], rate: u32, freq: f64) -> f64 {
    let n = x.len();
    if n == 0 {
        return 0.0;
    }
    let w = 2.0 * PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    4.0 * p / (n as f64 * n as f64)
}

/// Amplitude of the `freq` component of `x`.
pub fn tone_amplitude(x: &[i16], rate: u32, freq: f64) -> f64 {
    tone_power(x, rate, freq).sqrt()
}

/// A continuous sine generator.
#[derive(Debug, Clone)]
pub struct Tone {
    pub freq: f64,
    pub amp: f64,
    phase: f64,
}

impl Tone {
    pub fn new(freq: f64, amp: f64) -> Self {
        Tone {
            freq,
            amp,
            phase: 0.0,
        }
    }

    pub fn silent() -> Self {
        Tone::new(0.0, 0.0)
    }

    pub fn next(&mut self, rate: u32, n: usize) -> Vec<i16> {
        let step = 2.0 * PI * self.freq / f64::from(rate);
        (0..n)
            .map(|_| {
                let v = (self.amp * self.phase.sin()).round() as i16;
                self.phase = (self.phase + step) % (2.0 * PI);
                v
            })
            .collect()
    }
}

/// The sending side of an RTP leg.
pub struct RtpSender {
    pub id: ParticipantId,
    pub codec: Codec,
    pub tone: Tone,
    enc: Box<dyn Encoder>,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
}

impl RtpSender {
    pub fn new(id: ParticipantId, codec: Codec, tone: Tone, ssrc: u32) -> Self {
        RtpSender {
            id,
            codec,
            tone,
            enc: codec.encoder().unwrap(),
            seq: 1000,
            ts: 50_000,
            ssrc,
        }
    }

    /// The next 20 ms packet: (seq, timestamp, payload).
    pub fn next_packet(&mut self) -> (u16, u32, Vec<u8>) {
        let pcm = self
            .tone
            .next(self.codec.sample_rate(), self.codec.samples_per_frame());
        let mut payload = Vec::new();
        self.enc.encode(&pcm, &mut payload).unwrap();
        let r = (self.seq, self.ts, payload);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.codec.rtp_timestamp_per_frame());
        r
    }
}

/// What one listener received, decoded.
pub struct Received {
    pub rate: u32,
    pub pcm: Vec<i16>,
    pub frames: Vec<(u32, bool)>,
    dec: Option<Box<dyn Decoder>>,
}

impl Received {
    pub fn new(codec: Option<Codec>) -> Self {
        Received {
            rate: codec.map_or(48_000, Codec::sample_rate),
            pcm: Vec::new(),
            frames: Vec::new(),
            dec: codec.map(|c| c.decoder().unwrap()),
        }
    }

    pub fn take(&mut self, f: &OutputFrame) {
        self.frames.push((f.timestamp, f.marker));
        match &f.media {
            Media::Encoded { payload, .. } => {
                self.dec
                    .as_mut()
                    .expect("encoded output for a PCM listener")
                    .decode(Some(payload), &mut self.pcm)
                    .unwrap();
            }
            Media::Pcm(p) => self.pcm.extend_from_slice(p),
            _ => panic!("unknown media"),
        }
    }

    /// The last `secs` seconds of audio.
    pub fn tail(&self, secs: f64) -> &[i16] {
        let n = (secs * f64::from(self.rate)) as usize;
        &self.pcm[self.pcm.len().saturating_sub(n)..]
    }
}

/// Drains the mixer's output into per-listener `Received`.
pub fn drain(mixer: &mut Mixer, rx: &mut HashMap<ParticipantId, Received>) -> usize {
    let mut n = 0;
    while let Some(f) = mixer.poll_output() {
        if let Some(r) = rx.get_mut(&f.participant) {
            r.take(&f);
        }
        n += 1;
    }
    n
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Deterministic xorshift for loss and jitter.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn start() -> Instant {
    Instant::now()
}
