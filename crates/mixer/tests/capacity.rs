//! Shared encodes: listeners hearing the same mix in the same codec share one encode.

mod common;

use std::collections::HashMap;

use codec::Codec;
use common::*;
use mixer::{Media, Mixer, MixerConfig, ParticipantConfig, ParticipantId};

#[test]
fn silent_listeners_share_one_encode_per_codec() {
    let t0 = start();
    let mut mixer = Mixer::new(MixerConfig::default(), t0);
    let mut legs = Vec::new();
    for i in 0..15u32 {
        let codec = if i < 10 { Codec::Pcmu } else { Codec::G722 };
        let tone = match i {
            0 => Tone::new(440.0, 8000.0),
            1 => Tone::new(1000.0, 8000.0),
            _ => Tone::silent(),
        };
        let id = mixer
            .add_participant(ParticipantConfig::rtp(codec))
            .unwrap();
        legs.push(RtpSender::new(id, codec, tone, i));
    }
    let mut now = t0;
    let mut step = |mixer: &mut Mixer, legs: &mut Vec<RtpSender>| -> Vec<(ParticipantId, Media)> {
        now += ms(20);
        for leg in legs.iter_mut() {
            let (seq, ts, p) = leg.next_packet();
            mixer.push_rtp(now, leg.id, seq, ts, leg.ssrc, &p).unwrap();
        }
        mixer.handle_timeout(now);
        let mut out = Vec::new();
        while let Some(f) = mixer.poll_output() {
            out.push((f.participant, f.media));
        }
        out
    };
    for _ in 0..50 {
        assert_eq!(step(&mut mixer, &mut legs).len(), 15);
    }
    // Two talkers: two private encodes plus one shared PCMU and one shared G.722.
    let before = mixer.stats();
    let mut last = Vec::new();
    for _ in 0..10 {
        last = step(&mut mixer, &mut legs);
        assert_eq!(last.len(), 15);
    }
    let after = mixer.stats();
    assert_eq!(after.encodes - before.encodes, 10 * 4);
    assert_eq!(after.shared_encodes - before.shared_encodes, 10 * 2);
    let payload = |i: usize| match &last[i].1 {
        Media::Encoded { payload, .. } => payload.clone(),
        _ => panic!("encoded"),
    };
    let by_id: HashMap<ParticipantId, usize> = last
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let slot = |leg: usize| by_id[&legs[leg].id];
    // The eight silent PCMU listeners got the very same buffer, as did the five G.722 ones.
    let shared_pcmu = payload(slot(2));
    for leg in 3..10 {
        assert_eq!(payload(slot(leg)).as_ptr(), shared_pcmu.as_ptr());
    }
    let shared_g722 = payload(slot(10));
    for leg in 11..15 {
        assert_eq!(payload(slot(leg)).as_ptr(), shared_g722.as_ptr());
    }
    // The talkers each got their own.
    assert_ne!(payload(slot(0)).as_ptr(), shared_pcmu.as_ptr());
    assert_ne!(payload(slot(1)).as_ptr(), shared_pcmu.as_ptr());
    assert_ne!(payload(slot(0)), payload(slot(1)));
    for leg in &legs[..2] {
        let s = mixer.participant_stats(leg.id).unwrap();
        assert!(s.private_frames >= 10, "{s:?}");
    }

    // A third talker (G.722): one more private encode.
    legs[12].tone = Tone::new(700.0, 8000.0);
    for _ in 0..5 {
        step(&mut mixer, &mut legs);
    }
    let before = mixer.stats();
    for _ in 0..10 {
        step(&mut mixer, &mut legs);
    }
    assert_eq!(mixer.stats().encodes - before.encodes, 10 * 5);

    // Everyone stops: after the hang-over only the shared encodes remain, and every
    // listener still gets 50 frames per second.
    for leg in legs.iter_mut() {
        leg.tone = Tone::silent();
    }
    for _ in 0..100 {
        assert_eq!(step(&mut mixer, &mut legs).len(), 15);
    }
    assert!(mixer.active_speakers().is_empty());
    let before = mixer.stats();
    for _ in 0..10 {
        step(&mut mixer, &mut legs);
    }
    assert_eq!(mixer.stats().encodes - before.encodes, 10 * 2);
}
