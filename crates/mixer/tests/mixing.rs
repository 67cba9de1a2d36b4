//! End-to-end mixing on virtual time: real codecs in and out, Goertzel on what each listener
//! decodes.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use codec::{Channels, Codec};
use common::*;
use mixer::{Media, Mixer, MixerConfig, MixerEvent, ParticipantConfig, ParticipantId};

const OPUS: Codec = Codec::Opus(Channels::Mono);

/// A meeting of RTP legs sending tones (frequency 0 = silence) with the given codecs.
struct Meeting {
    mixer: Mixer,
    now: Instant,
    legs: Vec<RtpSender>,
    rx: HashMap<ParticipantId, Received>,
}

impl Meeting {
    fn new(config: MixerConfig, legs: &[(Codec, Tone)]) -> Self {
        let now = start();
        let mut mixer = Mixer::new(config, now);
        let mut senders = Vec::new();
        let mut rx = HashMap::new();
        for (i, (codec, tone)) in legs.iter().enumerate() {
            let id = mixer
                .add_participant(ParticipantConfig::rtp(*codec))
                .unwrap();
            senders.push(RtpSender::new(id, *codec, tone.clone(), 0x1000 + i as u32));
            rx.insert(id, Received::new(Some(*codec)));
        }
        Meeting {
            mixer,
            now,
            legs: senders,
            rx,
        }
    }

    /// 20 ms of virtual time: every leg sends a packet, then the mixer ticks.
    fn step(&mut self) {
        self.now += ms(20);
        for leg in &mut self.legs {
            let (seq, ts, payload) = leg.next_packet();
            self.mixer
                .push_rtp(self.now, leg.id, seq, ts, leg.ssrc, &payload)
                .unwrap();
        }
        self.mixer.handle_timeout(self.now);
        drain(&mut self.mixer, &mut self.rx);
    }

    fn heard(&self, i: usize) -> &Received {
        &self.rx[&self.legs[i].id]
    }
}

/// Listener `i` hears the tones of the others and not its own.
fn assert_n_minus_one(m: &Meeting, tones: &[f64]) {
    for (i, leg) in m.legs.iter().enumerate() {
        let r = m.heard(i);
        let x = r.tail(1.0);
        let own = tones[i];
        for (j, &f) in tones.iter().enumerate() {
            if f == 0.0 {
                continue;
            }
            let a = tone_amplitude(x, r.rate, f);
            if j == i {
                continue;
            }
            // The tones are sent at amplitude 8000; codecs and resampling lose little.
            assert!(
                a > 5000.0,
                "listener {i} ({:?}) hears {f} Hz at only {a:.0}",
                leg.codec
            );
        }
        if own != 0.0 {
            let own_a = tone_amplitude(x, r.rate, own);
            let other = tones
                .iter()
                .enumerate()
                .filter(|&(j, &f)| j != i && f != 0.0)
                .map(|(_, &f)| tone_amplitude(x, r.rate, f))
                .fold(f64::INFINITY, f64::min);
            let db = 20.0 * (own_a.max(1e-9) / other).log10();
            assert!(
                db < -50.0,
                "listener {i} ({:?}) hears itself at {db:.1} dB relative to the others",
                leg.codec
            );
        }
    }
}

fn three_party(codecs: [Codec; 3]) {
    let tones = [440.0, 1000.0, 0.0];
    let legs: Vec<(Codec, Tone)> = codecs
        .iter()
        .zip(tones)
        .map(|(&c, f)| {
            let t = if f == 0.0 {
                Tone::silent()
            } else {
                Tone::new(f, 8000.0)
            };
            (c, t)
        })
        .collect();
    let mut m = Meeting::new(MixerConfig::default(), &legs);
    for _ in 0..100 {
        m.step();
    }
    assert_n_minus_one(&m, &tones);
    // Both talkers are the active speakers; the silent one is not.
    let mut speakers = m.mixer.active_speakers().to_vec();
    speakers.sort();
    let mut want = vec![m.legs[0].id, m.legs[1].id];
    want.sort();
    assert_eq!(speakers, want);
}

#[test]
fn three_party_pcmu_g722_opus() {
    three_party([Codec::Pcmu, Codec::G722, OPUS]);
}

#[test]
fn three_party_opus_pcmu_g722() {
    three_party([OPUS, Codec::Pcmu, Codec::G722]);
}

#[test]
fn three_party_g722_opus_pcmu() {
    three_party([Codec::G722, OPUS, Codec::Pcmu]);
}

#[test]
fn three_party_same_codec() {
    three_party([Codec::Pcmu; 3]);
    three_party([Codec::Pcma; 3]);
    three_party([Codec::G722; 3]);
    three_party([OPUS; 3]);
}

#[test]
fn stereo_opus_legs_mix_in_mono() {
    let stereo = Codec::Opus(Channels::Stereo);
    let now = start();
    let mut mixer = Mixer::new(MixerConfig::default(), now);
    let a = mixer
        .add_participant(ParticipantConfig::rtp(stereo))
        .unwrap();
    let b = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let mut enc = stereo.encoder().unwrap();
    let mut dec = stereo.decoder().unwrap();
    let mut tone = Tone::new(600.0, 8000.0);
    let mut heard_a = Vec::new();
    let mut heard_b = Vec::new();
    let mut btone = Tone::new(1500.0, 8000.0);
    let mut t = now;
    for i in 0..100u32 {
        t += ms(20);
        let mono = tone.next(48_000, 960);
        let inter: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
        let mut payload = Vec::new();
        enc.encode(&inter, &mut payload).unwrap();
        mixer
            .push_rtp(t, a, i as u16, i * 960, 7, &payload)
            .unwrap();
        mixer.push_pcm(b, &btone.next(48_000, 960)).unwrap();
        mixer.handle_timeout(t);
        while let Some(f) = mixer.poll_output() {
            match f.media {
                Media::Encoded { payload, codec } => {
                    assert_eq!(f.participant, a);
                    assert_eq!(codec, stereo);
                    dec.decode(Some(&payload), &mut heard_a).unwrap();
                }
                Media::Pcm(p) => {
                    assert_eq!(f.participant, b);
                    heard_b.extend_from_slice(&p);
                }
                _ => unreachable!(),
            }
        }
    }
    // A hears B's tone on both channels.
    let left: Vec<i16> = heard_a.iter().step_by(2).copied().collect();
    let right: Vec<i16> = heard_a.iter().skip(1).step_by(2).copied().collect();
    let tail = |x: &[i16]| x[x.len() - 48_000..].to_vec();
    assert!(tone_amplitude(&tail(&left), 48_000, 1500.0) > 5000.0);
    assert!(tone_amplitude(&tail(&right), 48_000, 1500.0) > 5000.0);
    assert!(tone_amplitude(&tail(&left), 48_000, 600.0) < 100.0);
    // B hears A's tone.
    assert!(tone_amplitude(&tail(&heard_b), 48_000, 600.0) > 5000.0);
    assert!(tone_amplitude(&tail(&heard_b), 48_000, 1500.0) < 10.0);
}

#[test]
fn mute_removes_from_every_mix_and_unmute_restores() {
    let now = start();
    let mut mixer = Mixer::new(MixerConfig::default(), now);
    let ids: Vec<ParticipantId> = (0..3)
        .map(|_| mixer.add_participant(ParticipantConfig::pcm()).unwrap())
        .collect();
    let mut tones = [
        Tone::new(440.0, 8000.0),
        Tone::new(1000.0, 8000.0),
        Tone::silent(),
    ];
    let mut rx: HashMap<ParticipantId, Received> =
        ids.iter().map(|&id| (id, Received::new(None))).collect();
    let mut t = now;
    let mut run = |mixer: &mut Mixer, rx: &mut HashMap<_, Received>, ticks: usize| {
        for _ in 0..ticks {
            t += ms(20);
            for (id, tone) in ids.iter().zip(tones.iter_mut()) {
                mixer.push_pcm(*id, &tone.next(48_000, 960)).unwrap();
            }
            mixer.handle_timeout(t);
            drain(mixer, rx);
        }
    };
    run(&mut mixer, &mut rx, 50);
    let amp = |rx: &HashMap<ParticipantId, Received>, who: ParticipantId, f: f64| {
        tone_amplitude(rx[&who].tail(0.5), 48_000, f)
    };
    assert!(amp(&rx, ids[2], 440.0) > 7000.0);
    assert!(amp(&rx, ids[1], 440.0) > 7000.0);

    mixer.set_muted(ids[0], true).unwrap();
    assert!(mixer.is_muted(ids[0]).unwrap());
    run(&mut mixer, &mut rx, 50);
    assert!(amp(&rx, ids[2], 440.0) < 1.0, "{}", amp(&rx, ids[2], 440.0));
    assert!(amp(&rx, ids[1], 440.0) < 1.0);
    // The muted one still hears the others, and the others still hear each other.
    assert!(amp(&rx, ids[0], 1000.0) > 7000.0);
    assert!(amp(&rx, ids[2], 1000.0) > 7000.0);
    // Its level is still measured and reported as muted, not speaking.
    let level = mixer.level(ids[0]).unwrap();
    assert!(level.muted && !level.speaking);
    // A sine of amplitude 8000 is 20·log10(8000 / 32767) = −12.2 dBov.
    assert_eq!(level.volume, 12, "{level:?}");
    assert!(!mixer.active_speakers().contains(&ids[0]));

    mixer.set_muted(ids[0], false).unwrap();
    run(&mut mixer, &mut rx, 50);
    assert!(amp(&rx, ids[2], 440.0) > 7000.0);
    assert!(amp(&rx, ids[1], 440.0) > 7000.0);
    assert!(mixer.active_speakers().contains(&ids[0]));
}

#[test]
fn two_full_scale_inputs_do_not_wrap() {
    let now = start();
    let mut mixer = Mixer::new(MixerConfig::default(), now);
    let a = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let b = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let c = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let mut ta = Tone::new(440.0, 32767.0);
    let mut tb = Tone::new(440.0, 32767.0);
    let mut rx: HashMap<ParticipantId, Received> = [a, b, c]
        .iter()
        .map(|&id| (id, Received::new(None)))
        .collect();
    let mut t = now;
    for _ in 0..50 {
        t += ms(20);
        mixer.push_pcm(a, &ta.next(48_000, 960)).unwrap();
        mixer.push_pcm(b, &tb.next(48_000, 960)).unwrap();
        mixer.push_pcm(c, &[0; 960]).unwrap();
        mixer.handle_timeout(t);
        drain(&mut mixer, &mut rx);
    }
    let out = &rx[&c].pcm;
    // The in-phase sum peaks at 65534: limited, so loud but never wrapped. A wrap would be
    // a jump of tens of thousands between adjacent samples; the unlimited sum of two
    // full-scale 440 Hz sines moves at most 3774 per sample at 48 kHz, and once the
    // limiter's gain has settled (after the first millisecond) less than half of that.
    let max_step = |x: &[i16]| {
        x.windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap()
    };
    assert!(max_step(out) < 3800, "largest step {}", max_step(out));
    assert!(
        max_step(&out[48..]) < 1700,
        "largest step {}",
        max_step(&out[48..])
    );
    let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 25_000, "peak {peak}");
    // Still a clean sine: the 440 Hz component dominates, no harmonics to speak of.
    let tail = rx[&c].tail(0.5);
    let fund = tone_amplitude(tail, 48_000, 440.0);
    let h3 = tone_amplitude(tail, 48_000, 1320.0);
    assert!(fund > 25_000.0, "{fund}");
    assert!(h3 < fund / 100.0, "third harmonic {h3} vs {fund}");
    // Sign follows the input (not inverted by overflow): correlate with the reference.
    let corr: f64 = out
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            f64::from(x) * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48_000.0).sin()
        })
        .sum();
    let energy: f64 = out.iter().map(|&x| f64::from(x).powi(2)).sum();
    let ref_energy = out.len() as f64 / 2.0;
    // Normalised correlation close to 1: the output is the input sine, scaled.
    assert!(corr / (energy * ref_energy).sqrt() > 0.99);
}

#[test]
fn top_k_loudest_are_mixed() {
    let now = start();
    let config = MixerConfig {
        max_speakers: 3,
        ..MixerConfig::default()
    };
    let mut mixer = Mixer::new(config, now);
    // Seven talkers at different levels and frequencies, one silent listener.
    let talkers: Vec<(f64, f64)> = vec![
        (300.0, 2000.0),
        (500.0, 9000.0),
        (700.0, 1000.0),
        (900.0, 7000.0),
        (1100.0, 3000.0),
        (1300.0, 8000.0),
        (1500.0, 500.0),
    ];
    let mut ids = Vec::new();
    let mut tones = Vec::new();
    for &(f, a) in &talkers {
        ids.push(mixer.add_participant(ParticipantConfig::pcm()).unwrap());
        tones.push(Tone::new(f, a));
    }
    let listener = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let mut rx: HashMap<ParticipantId, Received> = ids
        .iter()
        .chain([&listener])
        .map(|&id| (id, Received::new(None)))
        .collect();
    let mut t = now;
    let mut events = Vec::new();
    for _ in 0..50 {
        t += ms(20);
        for (id, tone) in ids.iter().zip(tones.iter_mut()) {
            mixer.push_pcm(*id, &tone.next(48_000, 960)).unwrap();
        }
        mixer.handle_timeout(t);
        drain(&mut mixer, &mut rx);
        while let Some(e) = mixer.poll_event() {
            events.push(e);
        }
    }
    // The three loudest: 500 Hz (9000), 1300 Hz (8000), 900 Hz (7000), loudest first.
    assert_eq!(mixer.active_speakers(), &[ids[1], ids[5], ids[3]]);
    let x = rx[&listener].tail(0.5);
    for (i, &(f, a)) in talkers.iter().enumerate() {
        let got = tone_amplitude(x, 48_000, f);
        if [1, 3, 5].contains(&i) {
            assert!((got - a).abs() < a * 0.05, "{f} Hz: {got} vs {a}");
        } else {
            assert!(got < 1.0, "{f} Hz should not be mixed, got {got}");
        }
    }
    // A mixed talker hears the other two mixed talkers only.
    let x = rx[&ids[1]].tail(0.5);
    assert!(tone_amplitude(x, 48_000, 500.0) < 1.0);
    assert!(tone_amplitude(x, 48_000, 1300.0) > 7500.0);
    assert!(tone_amplitude(x, 48_000, 300.0) < 1.0);
    // The active-speaker event said so.
    let last_speakers = events
        .iter()
        .rev()
        .find_map(|e| match e {
            MixerEvent::ActiveSpeakersChanged(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let mut got = last_speakers;
    got.sort();
    let mut want = vec![ids[1], ids[3], ids[5]];
    want.sort();
    assert_eq!(got, want);
    // Levels events at 5 Hz: 50 ticks = 1 s.
    let levels: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            MixerEvent::Levels(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(levels.len(), 5);
    let last = levels.last().unwrap();
    assert_eq!(last.len(), 8);
    for l in last.iter() {
        if let Some(i) = ids.iter().position(|&id| id == l.participant) {
            // A sine of amplitude a is 20·log10(a / 32767) dBov.
            let want = -20.0 * (talkers[i].1 / 32767.0).log10();
            assert!(
                (f64::from(l.volume) - want).abs() <= 1.0,
                "volume {} vs {want:.1}",
                l.volume
            );
            assert_eq!(l.speaking, [1, 3, 5].contains(&i));
        } else {
            assert_eq!(l.participant, listener);
            assert_eq!(l.volume, 127);
            assert!(!l.speaking);
        }
    }
}

#[test]
fn speaker_hysteresis_keeps_the_current_talker() {
    let now = start();
    let config = MixerConfig {
        max_speakers: 1,
        ..MixerConfig::default()
    };
    let mut mixer = Mixer::new(config, now);
    let a = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let b = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let mut ta = Tone::new(400.0, 6000.0);
    let mut tb = Tone::new(800.0, 6000.0 * 1.5); // +3.5 dB: under the 6 dB bonus
    let mut t = now;
    for i in 0..100 {
        t += ms(20);
        mixer.push_pcm(a, &ta.next(48_000, 960)).unwrap();
        if i >= 20 {
            mixer.push_pcm(b, &tb.next(48_000, 960)).unwrap();
        }
        mixer.handle_timeout(t);
        while mixer.poll_output().is_some() {}
    }
    assert_eq!(mixer.active_speakers(), &[a]);
    // Twice as loud again (+9.5 dB over A) takes over.
    let mut tb = Tone::new(800.0, 6000.0 * 3.0);
    for _ in 0..20 {
        t += ms(20);
        mixer.push_pcm(a, &ta.next(48_000, 960)).unwrap();
        mixer.push_pcm(b, &tb.next(48_000, 960)).unwrap();
        mixer.handle_timeout(t);
        while mixer.poll_output().is_some() {}
    }
    assert_eq!(mixer.active_speakers(), &[b]);
}

/// Loud PCM talkers in phase: every N−1 mix (two of them summed, ~60,000) and the quiet
/// listener's full mix are limited, never narrowed by wrapping or flat saturation; quiet
/// talkers pass untouched (the mix known below the threshold takes the short path).
#[test]
fn loud_mixes_are_limited_and_quiet_ones_exact() {
    let t0 = Instant::now();
    let mut mixer = Mixer::new(MixerConfig::default(), t0);
    let ids: Vec<_> = (0..3)
        .map(|_| mixer.add_participant(ParticipantConfig::pcm()).unwrap())
        .collect();
    let quiet = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let square = |amp: i16| -> Vec<i16> {
        (0..960)
            .map(|i| if (i / 24) % 2 == 0 { amp } else { -amp })
            .collect()
    };
    let mut now = t0;
    for tick in 0..40 {
        // Loud for 10 ticks, then 1,000 each: a sum of 3,000 at most, exact once the
        // gain is back at 1 (+0.5 dB a frame).
        let amp = if tick < 10 { 30_000 } else { 1_000 };
        for id in &ids {
            mixer.push_pcm(*id, &square(amp)).unwrap();
        }
        now += std::time::Duration::from_millis(20);
        mixer.handle_timeout(now);
        let mut heard = 0;
        while let Some(f) = mixer.poll_output() {
            let Media::Pcm(pcm) = &f.media else {
                panic!("PCM out");
            };
            heard += 1;
            let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            let sign_ok = pcm
                .iter()
                .zip(square(1))
                .all(|(&s, q)| s == 0 || (s > 0) == (q > 0));
            assert!(sign_ok, "tick {tick}: a mix wrapped");
            if tick < 10 {
                // The first loud frame ramps the gain down over 1 ms, soft-clipped meanwhile.
                if tick > 0 {
                    assert!(peak < 32_000, "tick {tick}: peak {peak} not limited");
                }
                assert!(peak > 10_000, "tick {tick}: peak {peak}");
            } else if tick >= 30 {
                // Once the gain has recovered: the exact sum of the others.
                let others = if f.participant == quiet { 3 } else { 2 };
                assert_eq!(peak, 1_000 * others, "tick {tick}");
            }
        }
        assert_eq!(heard, 4, "tick {tick}");
    }
}
