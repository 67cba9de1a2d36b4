//! Random sequences of API calls with arbitrary payloads never panic, and every tick still
//! yields one frame per listener.

use std::time::{Duration, Instant};

use codec::{Channels, Codec};
use mixer::{Mixer, MixerConfig, ParticipantConfig, ParticipantId};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Remove(u8),
    Mute(u8, bool),
    Rtp {
        who: u8,
        seq: u16,
        ts: u32,
        ssrc: u8,
        payload: Vec<u8>,
    },
    Pcm(u8, Vec<i16>),
    /// Advance the clock by this many ms and run the timer.
    Tick(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Add),
        any::<u8>().prop_map(Op::Remove),
        (any::<u8>(), any::<bool>()).prop_map(|(w, m)| Op::Mute(w, m)),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            0u8..3,
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(who, seq, ts, ssrc, payload)| Op::Rtp {
                who,
                seq,
                ts,
                ssrc,
                payload
            }),
        (any::<u8>(), prop::collection::vec(any::<i16>(), 0..2000))
            .prop_map(|(w, p)| Op::Pcm(w, p)),
        (0u16..200).prop_map(Op::Tick),
    ]
}

fn config(kind: u8) -> ParticipantConfig {
    match kind {
        0 => ParticipantConfig::rtp(Codec::Pcmu),
        1 => ParticipantConfig::rtp(Codec::Pcma),
        2 => ParticipantConfig::rtp(Codec::G722),
        3 => ParticipantConfig::rtp(Codec::Opus(Channels::Mono)),
        4 => ParticipantConfig::rtp(Codec::Opus(Channels::Stereo)),
        _ => ParticipantConfig::pcm(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_calls_never_panic(ops in prop::collection::vec(op(), 1..120)) {
        let t0 = Instant::now();
        let mut now = t0;
        let cfg = MixerConfig { max_participants: 8, ..MixerConfig::default() };
        let mut mixer = Mixer::new(cfg, t0);
        let mut ids: Vec<ParticipantId> = Vec::new();
        let pick = |ids: &[ParticipantId], w: u8| -> Option<ParticipantId> {
            (!ids.is_empty()).then(|| ids[usize::from(w) % ids.len()])
        };
        for op in ops {
            match op {
                Op::Add(kind) => {
                    if let Ok(id) = mixer.add_participant(config(kind)) {
                        ids.push(id);
                    }
                }
                Op::Remove(w) => {
                    if let Some(id) = pick(&ids, w) {
                        mixer.remove_participant(id).unwrap();
                        ids.retain(|&x| x != id);
                        // A stale handle is an error, not a panic.
                        prop_assert!(mixer.remove_participant(id).is_err());
                    }
                }
                Op::Mute(w, m) => {
                    if let Some(id) = pick(&ids, w) {
                        mixer.set_muted(id, m).unwrap();
                    }
                }
                Op::Rtp { who, seq, ts, ssrc, payload } => {
                    if let Some(id) = pick(&ids, who) {
                        let _ = mixer.push_rtp(now, id, seq, ts, u32::from(ssrc), &payload);
                    }
                }
                Op::Pcm(w, pcm) => {
                    if let Some(id) = pick(&ids, w) {
                        let _ = mixer.push_pcm(id, &pcm);
                    }
                }
                Op::Tick(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    let before = mixer.stats().ticks;
                    mixer.handle_timeout(now);
                    let ran = mixer.stats().ticks - before;
                    let mut frames = 0u64;
                    while let Some(f) = mixer.poll_output() {
                        prop_assert!(mixer.contains(f.participant));
                        frames += 1;
                    }
                    prop_assert_eq!(frames, ran * ids.len() as u64);
                    while mixer.poll_event().is_some() {}
                }
            }
        }
    }
}
