//! Cost of one 20 ms tick of the meeting mixer, per participant-frame, beside the CPU
//! floor: a plain loop that, for each listener, sums all the others' i16 frames.
//!
//! `cargo bench -p mixer --bench mixer`; divide the time per tick by the participant count
//! (criterion's throughput line reports participant-frames per second).

use std::hint::black_box;
use std::time::{Duration, Instant};

use codec::Codec;
use codec::g711;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mixer::{Mixer, MixerConfig, ParticipantConfig, ParticipantId};

const TICK: Duration = Duration::from_millis(20);
const SIZES: [usize; 2] = [5, 50];
/// Frames of tone precomputed per participant (cycled).
const CYCLE: usize = 50;

/// `CYCLE` consecutive 20 ms frames of a tone at `rate`, one frequency per participant.
fn tone_frames(i: usize, rate: u32) -> Vec<Vec<i16>> {
    let n = (rate / 50) as usize;
    let f = 200.0 + 37.0 * i as f64;
    let amp = 2000.0 + 100.0 * i as f64;
    (0..CYCLE)
        .map(|k| {
            (0..n)
                .map(|j| {
                    let t = (k * n + j) as f64 / f64::from(rate);
                    (amp * (2.0 * std::f64::consts::PI * f * t).sin()) as i16
                })
                .collect()
        })
        .collect()
}

struct PcmMeeting {
    mixer: Mixer,
    now: Instant,
    ids: Vec<ParticipantId>,
    frames: Vec<Vec<Vec<i16>>>,
    k: usize,
}

impl PcmMeeting {
    fn new(n: usize, speakers: usize) -> Self {
        let now = Instant::now();
        let config = MixerConfig {
            max_participants: n,
            max_speakers: speakers,
            ..MixerConfig::default()
        };
        let mut mixer = Mixer::new(config, now);
        let ids = (0..n)
            .map(|_| mixer.add_participant(ParticipantConfig::pcm()).unwrap())
            .collect();
        let frames = (0..n).map(|i| tone_frames(i, 48_000)).collect();
        PcmMeeting {
            mixer,
            now,
            ids,
            frames,
            k: 0,
        }
    }

    fn tick(&mut self) -> usize {
        self.now += TICK;
        let k = self.k % CYCLE;
        self.k += 1;
        for (id, f) in self.ids.iter().zip(&self.frames) {
            self.mixer.push_pcm(*id, &f[k]).unwrap();
        }
        self.mixer.handle_timeout(self.now);
        let mut n = 0;
        while let Some(f) = self.mixer.poll_output() {
            black_box(&f);
            n += 1;
        }
        n
    }
}

/// `CYCLE` payloads per leg of `codec`: the first `talkers` legs a tone each, the others
/// digital silence (a phone without DTX).
fn payloads(n: usize, codec: Codec, talkers: usize) -> Vec<Vec<Vec<u8>>> {
    (0..n)
        .map(|i| {
            let mut enc = codec.encoder().unwrap();
            let mut frames = tone_frames(i, codec.sample_rate());
            if i >= talkers {
                frames.iter_mut().for_each(|f| f.fill(0));
            }
            frames
                .iter()
                .map(|f| {
                    let mut p = Vec::new();
                    enc.encode(f, &mut p).unwrap();
                    p
                })
                .collect()
        })
        .collect()
}

struct RtpMeeting {
    mixer: Mixer,
    now: Instant,
    ids: Vec<ParticipantId>,
    payloads: Vec<Vec<Vec<u8>>>,
    seq: u16,
    ts: u32,
    ts_step: u32,
    k: usize,
}

impl RtpMeeting {
    /// `n` legs of `codec`; the first `talkers` send a tone, the others digital silence
    /// (a phone without DTX).
    fn new(n: usize, codec: Codec, talkers: usize) -> Self {
        let now = Instant::now();
        let config = MixerConfig {
            max_participants: n,
            ..MixerConfig::default()
        };
        let mut mixer = Mixer::new(config, now);
        let ids = (0..n)
            .map(|_| {
                mixer
                    .add_participant(ParticipantConfig::rtp(codec))
                    .unwrap()
            })
            .collect();
        let payloads = payloads(n, codec, talkers);
        let mut m = RtpMeeting {
            mixer,
            now,
            ids,
            payloads,
            seq: 0,
            ts: 0,
            ts_step: codec.rtp_timestamp_per_frame(),
            k: 0,
        };
        // Fill the jitter buffers and reach steady state.
        for _ in 0..20 {
            m.tick();
        }
        m
    }

    fn tick(&mut self) -> usize {
        self.now += TICK;
        let k = self.k % CYCLE;
        self.k += 1;
        for (i, id) in self.ids.iter().enumerate() {
            let p = &self.payloads[i][k];
            self.mixer
                .push_rtp(self.now, *id, self.seq, self.ts, i as u32, p)
                .unwrap();
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.ts_step);
        self.mixer.handle_timeout(self.now);
        let mut n = 0;
        while let Some(f) = self.mixer.poll_output() {
            black_box(&f);
            n += 1;
        }
        n
    }
}

/// The CPU floor: for each listener, sum all the others' frames (i32, saturated to i16).
fn naive_n_minus_one(frames: &[&[i16]], out: &mut [Vec<i16>]) {
    let mut acc = vec![0i32; frames.first().map_or(0, |f| f.len())];
    for (l, o) in out.iter_mut().enumerate() {
        acc.fill(0);
        for (j, f) in frames.iter().enumerate() {
            if j != l {
                for (a, &s) in acc.iter_mut().zip(f.iter()) {
                    *a += i32::from(s);
                }
            }
        }
        for (o, &a) in o.iter_mut().zip(&acc) {
            *o = a.clamp(-32768, 32767) as i16;
        }
    }
}

fn bench_pcm(c: &mut Criterion) {
    let mut g = c.benchmark_group("mixer_pcm_48k");
    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("ours_top3", n), &n, |b, &n| {
            let mut m = PcmMeeting::new(n, 3);
            for _ in 0..10 {
                m.tick();
            }
            b.iter(|| m.tick());
        });
        g.bench_with_input(BenchmarkId::new("ours_all_mixed", n), &n, |b, &n| {
            let mut m = PcmMeeting::new(n, n);
            for _ in 0..10 {
                m.tick();
            }
            b.iter(|| m.tick());
        });
        g.bench_with_input(BenchmarkId::new("naive_loop", n), &n, |b, &n| {
            let frames: Vec<Vec<i16>> = (0..n).map(|i| tone_frames(i, 48_000).remove(0)).collect();
            let refs: Vec<&[i16]> = frames.iter().map(Vec::as_slice).collect();
            let mut out = vec![vec![0i16; 960]; n];
            b.iter(|| {
                naive_n_minus_one(black_box(&refs), &mut out);
                black_box(&out);
            });
        });
    }
    g.finish();
}

fn bench_g711(c: &mut Criterion) {
    let mut g = c.benchmark_group("mixer_pcmu_rtp");
    // 250 is the default meeting limit; four such meetings are 1000 legs.
    for n in [5, 50, 250] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("ours_top3", n), &n, |b, &n| {
            let mut m = RtpMeeting::new(n, Codec::Pcmu, n);
            b.iter(|| m.tick());
        });
        g.bench_with_input(BenchmarkId::new("naive_loop", n), &n, |b, &n| {
            // Decode every payload, sum the others for each listener at 8 kHz, encode.
            let payloads: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    let mut p = Vec::new();
                    g711::ulaw_encode(&tone_frames(i, 8000)[0], &mut p);
                    p
                })
                .collect();
            let mut pcm: Vec<Vec<i16>> = vec![Vec::with_capacity(160); n];
            let mut out = vec![vec![0i16; 160]; n];
            let mut enc: Vec<Vec<u8>> = vec![Vec::with_capacity(160); n];
            b.iter(|| {
                for (p, d) in payloads.iter().zip(pcm.iter_mut()) {
                    d.clear();
                    g711::ulaw_decode(black_box(p), d);
                }
                let refs: Vec<&[i16]> = pcm.iter().map(Vec::as_slice).collect();
                naive_n_minus_one(&refs, &mut out);
                for (o, e) in out.iter().zip(enc.iter_mut()) {
                    e.clear();
                    g711::ulaw_encode(o, e);
                }
                black_box(&enc);
            });
        });
    }
    g.finish();
}

fn bench_mixed_codecs(c: &mut Criterion) {
    let mut g = c.benchmark_group("mixer_rtp_codecs");
    let n = 50;
    g.throughput(Throughput::Elements(n as u64));
    for codec in [Codec::G722, Codec::Opus(codec::Channels::Mono)] {
        g.bench_with_input(BenchmarkId::new(codec.name(), n), &n, |b, &n| {
            let mut m = RtpMeeting::new(n, codec, n);
            b.iter(|| m.tick());
        });
    }
    g.finish();
}

/// Opus meetings (GitHub issue 17): a 50-party meeting with 2 talkers (48 listeners hear
/// the same mix: one shared encode) and a 5-party meeting where all talk, per tick, beside
/// the same meeting mixed the plain way with libopus: every sender decoded, an N−1 sum
/// and a libopus encode (the codec crate's VoIP defaults) per listener. Legs per core =
/// legs × 20 ms / time per tick.
fn bench_opus_meeting(c: &mut Criterion) {
    let mut g = c.benchmark_group("mixer_opus_meeting");
    let codec = Codec::Opus(codec::Channels::Mono);
    for (n, talkers) in [(50, 2), (5, 5)] {
        let id = format!("{n}x{talkers}");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("ours_shared", &id), |b| {
            let mut m = RtpMeeting::new(n, codec, talkers);
            b.iter(|| m.tick());
        });
        g.bench_function(BenchmarkId::new("libopus_per_listener", &id), |b| {
            let mut m = PlainOpusMeeting::new(n, talkers);
            b.iter(|| m.tick());
        });
    }
    g.finish();
}

/// The plain way: a decoder and an encoder per leg, everything decoded, each listener's
/// N−1 sum encoded for it alone.
struct PlainOpusMeeting {
    payloads: Vec<Vec<Vec<u8>>>,
    decoders: Vec<Box<dyn codec::Decoder>>,
    encoders: Vec<Box<dyn codec::Encoder>>,
    pcm: Vec<Vec<i16>>,
    out: Vec<Vec<i16>>,
    packet: Vec<u8>,
    k: usize,
}

impl PlainOpusMeeting {
    fn new(n: usize, talkers: usize) -> Self {
        let codec = Codec::Opus(codec::Channels::Mono);
        let payloads = payloads(n, codec, talkers);
        PlainOpusMeeting {
            payloads,
            decoders: (0..n).map(|_| codec.decoder().unwrap()).collect(),
            encoders: (0..n).map(|_| codec.encoder().unwrap()).collect(),
            pcm: vec![Vec::with_capacity(960); n],
            out: vec![vec![0; 960]; n],
            packet: Vec::with_capacity(1500),
            k: 0,
        }
    }

    fn tick(&mut self) -> usize {
        let k = self.k % CYCLE;
        self.k += 1;
        for ((d, p), pcm) in self
            .decoders
            .iter_mut()
            .zip(&self.payloads)
            .zip(&mut self.pcm)
        {
            pcm.clear();
            d.decode(Some(&p[k]), pcm).unwrap();
        }
        let refs: Vec<&[i16]> = self.pcm.iter().map(Vec::as_slice).collect();
        naive_n_minus_one(&refs, &mut self.out);
        let mut bytes = 0;
        for (e, o) in self.encoders.iter_mut().zip(&self.out) {
            self.packet.clear();
            e.encode(o, &mut self.packet).unwrap();
            bytes += self.packet.len();
        }
        black_box(bytes)
    }
}

criterion_group!(
    benches,
    bench_pcm,
    bench_g711,
    bench_mixed_codecs,
    bench_opus_meeting
);
criterion_main!(benches);
