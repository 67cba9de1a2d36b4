//! Continuity on virtual time: loss, jitter, reordering, late and early timer calls.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use codec::{Channels, Codec};
use common::*;
use mixer::{Mixer, MixerConfig, ParticipantConfig, ParticipantId};

const OPUS: Codec = Codec::Opus(Channels::Mono);

/// Sequence number, RTP timestamp, payload.
type Packet = (u16, u32, Vec<u8>);

#[test]
fn loss_and_jitter_still_give_50_frames_per_second() {
    let t0 = start();
    let mut mixer = Mixer::new(MixerConfig::default(), t0);
    let specs = [
        (Codec::Pcmu, Tone::new(440.0, 8000.0), 10u64),
        (OPUS, Tone::new(1000.0, 8000.0), 10),
        (Codec::G722, Tone::silent(), 0),
    ];
    let mut legs = Vec::new();
    let mut rx = HashMap::new();
    for (i, (codec, tone, _)) in specs.iter().enumerate() {
        let id = mixer
            .add_participant(ParticipantConfig::rtp(*codec))
            .unwrap();
        legs.push(RtpSender::new(id, *codec, tone.clone(), 77 + i as u32));
        rx.insert(id, Received::new(Some(*codec)));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Packets in flight by arrival time (ms), then leg index.
    let mut in_flight: BTreeMap<(u64, usize, u64), Packet> = BTreeMap::new();
    let mut sent = 0u64;
    let total_ms = 5000u64;
    for now_ms in 1..=total_ms {
        let now = t0 + ms(now_ms);
        if now_ms % 20 == 0 {
            for (i, leg) in legs.iter_mut().enumerate() {
                let pkt = leg.next_packet();
                sent += 1;
                if rng.below(100) < specs[i].2 {
                    continue; // lost
                }
                // 0..40 ms of network jitter (reorders packets).
                let jitter = if specs[i].2 > 0 { rng.below(40) } else { 0 };
                in_flight.insert((now_ms + jitter, i, sent), pkt);
            }
        }
        while let Some(entry) = in_flight.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let ((_, i, _), (seq, ts, payload)) = entry.remove_entry();
            let leg = &legs[i];
            mixer
                .push_rtp(now, leg.id, seq, ts, leg.ssrc, &payload)
                .unwrap();
        }
        // The caller's timer fires 0..6 ms late, and sometimes early.
        let due = mixer.poll_timeout();
        let fire = due + ms(rng.below(7));
        if now >= fire || rng.below(50) == 0 {
            mixer.handle_timeout(now);
        }
        drain(&mut mixer, &mut rx);
    }
    let stats = mixer.stats();
    assert_eq!(stats.ticks_skipped, 0);
    assert!(stats.ticks >= 245, "{stats:?}");
    for leg in &legs {
        let r = &rx[&leg.id];
        assert_eq!(r.frames.len() as u64, stats.ticks, "{:?}", leg.codec);
        let step = leg.codec.rtp_timestamp_per_frame();
        assert_eq!(r.frames[0], (0, true));
        for w in r.frames.windows(2) {
            assert_eq!(w[1].0.wrapping_sub(w[0].0), step);
            assert!(!w[1].1, "marker only on the first frame");
        }
    }
    // The lossy legs were concealed (Opus from FEC where the next packet was there).
    let pcmu = mixer.participant_stats(legs[0].id).unwrap();
    let opus = mixer.participant_stats(legs[1].id).unwrap();
    assert!(pcmu.concealed > 5, "{pcmu:?}");
    assert!(opus.concealed > 5 && opus.fec > 0, "{opus:?}");
    assert!(pcmu.jitter.unwrap().received > 200);
    assert_eq!(pcmu.decode_errors, 0);
    // The silent listener still hears both tones through the loss.
    let c = &rx[&legs[2].id];
    let x = c.tail(2.0);
    assert!(tone_amplitude(x, c.rate, 440.0) > 4000.0);
    assert!(tone_amplitude(x, c.rate, 1000.0) > 4000.0);
}

fn pcm_meeting(n: usize) -> (Mixer, Instant, Vec<ParticipantId>) {
    let t0 = start();
    let mut mixer = Mixer::new(MixerConfig::default(), t0);
    let ids = (0..n)
        .map(|_| mixer.add_participant(ParticipantConfig::pcm()).unwrap())
        .collect();
    (mixer, t0, ids)
}

#[test]
fn early_calls_do_nothing_and_late_calls_catch_up_then_resync() {
    let (mut mixer, t0, ids) = pcm_meeting(2);
    let mut rx: HashMap<ParticipantId, Received> =
        ids.iter().map(|&id| (id, Received::new(None))).collect();
    assert_eq!(mixer.poll_timeout(), t0 + ms(20));
    mixer.handle_timeout(t0 + ms(19));
    assert_eq!(drain(&mut mixer, &mut rx), 0);
    assert_eq!(mixer.stats().ticks, 0);
    for k in 1..=10u64 {
        mixer.handle_timeout(t0 + ms(20 * k));
        assert_eq!(drain(&mut mixer, &mut rx), 2);
    }
    assert_eq!(mixer.poll_timeout(), t0 + ms(220));
    // 200 ms late: ticks due at 220, 240, ..., 420 (11); three run, eight are skipped.
    mixer.handle_timeout(t0 + ms(420));
    assert_eq!(drain(&mut mixer, &mut rx), 2 * 3);
    let s = mixer.stats();
    assert_eq!((s.ticks, s.ticks_skipped), (13, 8));
    // Back on the 20 ms grid.
    assert_eq!(mixer.poll_timeout(), t0 + ms(440));
    mixer.handle_timeout(t0 + ms(440));
    drain(&mut mixer, &mut rx);
    for id in &ids {
        let f = &rx[id].frames;
        assert_eq!(f.len(), 14);
        // The frame after the gap jumps by the skipped time and carries the marker.
        assert_eq!(f[13].0 - f[12].0, 960 * 9);
        assert!(f[13].1);
        assert!(f[1..13].iter().all(|&(_, m)| !m));
        assert_eq!(f[12].0, 960 * 12);
    }
}

#[test]
fn nobody_speaking_still_gives_encoded_silence_at_50_pps() {
    let t0 = start();
    let mut mixer = Mixer::new(MixerConfig::default(), t0);
    let codecs = [Codec::Pcmu, Codec::Pcma, Codec::G722, OPUS];
    let mut rx = HashMap::new();
    for c in codecs {
        let id = mixer.add_participant(ParticipantConfig::rtp(c)).unwrap();
        rx.insert(id, Received::new(Some(c)));
    }
    for k in 1..=100u64 {
        mixer.handle_timeout(t0 + ms(20 * k));
        assert_eq!(drain(&mut mixer, &mut rx), codecs.len());
    }
    for r in rx.values() {
        assert_eq!(r.frames.len(), 100);
        let peak = r.pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak < 50, "silence decodes to (near) silence, peak {peak}");
    }
    // One shared encode per codec per tick and nothing else.
    assert_eq!(mixer.stats().encodes, 100 * codecs.len() as u64);
    assert_eq!(mixer.stats().shared_encodes, 100 * codecs.len() as u64);
}

#[test]
fn pcm_queue_is_bounded_and_underruns_are_padded() {
    let (mut mixer, t0, ids) = pcm_meeting(2);
    // Two seconds at once: only the configured 200 ms is kept.
    mixer.push_pcm(ids[0], &vec![1000; 96_000]).unwrap();
    let s = mixer.participant_stats(ids[0]).unwrap();
    assert_eq!(s.pcm_dropped, 96_000 - 9_600);
    // Half a frame: padded.
    mixer.push_pcm(ids[1], &[1000; 480]).unwrap();
    mixer.handle_timeout(t0 + ms(20));
    let s = mixer.participant_stats(ids[1]).unwrap();
    assert_eq!(s.pcm_underruns, 1);
}
