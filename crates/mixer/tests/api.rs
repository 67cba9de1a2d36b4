//! API contracts: errors by blame, limits, removal, hostile payloads.

mod common;

use codec::{Channels, Codec};
use common::*;
use mixer::{Media, Mixer, MixerConfig, MixerError, MixerEvent, ParticipantConfig};

#[test]
fn errors_name_the_problem() {
    let t0 = start();
    let config = MixerConfig {
        max_participants: 2,
        ..MixerConfig::default()
    };
    let mut mixer = Mixer::new(config, t0);
    let rtp = mixer
        .add_participant(ParticipantConfig::rtp(Codec::Pcmu))
        .unwrap();
    let pcm = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    assert_eq!(
        mixer.add_participant(ParticipantConfig::pcm()),
        Err(MixerError::TooManyParticipants { limit: 2 })
    );
    assert_eq!(mixer.push_pcm(rtp, &[0; 960]), Err(MixerError::NotPcmInput));
    assert_eq!(
        mixer.push_rtp(t0, pcm, 1, 1, 1, &[0; 160]),
        Err(MixerError::NotRtpInput)
    );
    assert_eq!(
        mixer.push_rtp(t0, rtp, 1, 1, 1, &[0; 1501]),
        Err(MixerError::PayloadTooLarge {
            len: 1501,
            limit: 1500
        })
    );
    mixer.remove_participant(pcm).unwrap();
    assert!(!mixer.contains(pcm));
    assert_eq!(
        mixer.remove_participant(pcm),
        Err(MixerError::UnknownParticipant(pcm))
    );
    assert_eq!(
        mixer.push_pcm(pcm, &[0; 960]),
        Err(MixerError::UnknownParticipant(pcm))
    );
    assert!(mixer.is_muted(pcm).is_err());
    // The slot is reused, the old handle stays dead.
    let again = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    assert_eq!(again.index(), pcm.index());
    assert_ne!(again, pcm);
    assert!(mixer.push_pcm(pcm, &[0; 960]).is_err());
    assert_eq!(mixer.len(), 2);
    assert_eq!(mixer.participants().count(), 2);
}

#[test]
fn removal_drops_queued_frames_and_speaker_status() {
    let t0 = start();
    let mut mixer = Mixer::new(MixerConfig::default(), t0);
    let a = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let b = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let mut tone = Tone::new(500.0, 8000.0);
    for k in 1..=10u64 {
        mixer.push_pcm(a, &tone.next(48_000, 960)).unwrap();
        mixer.handle_timeout(t0 + ms(20 * k));
    }
    assert_eq!(mixer.active_speakers(), &[a]);
    while mixer.poll_event().is_some() {}
    // Frames of the last tick are still queued for both.
    mixer.remove_participant(a).unwrap();
    let mut left = Vec::new();
    while let Some(f) = mixer.poll_output() {
        left.push(f.participant);
    }
    assert!(!left.is_empty() && left.iter().all(|&p| p == b));
    assert!(mixer.active_speakers().is_empty());
    assert_eq!(
        mixer.poll_event(),
        Some(MixerEvent::ActiveSpeakersChanged(vec![]))
    );
}

#[test]
fn undrained_output_is_bounded() {
    let t0 = start();
    let mut mixer = Mixer::new(MixerConfig::default(), t0);
    for _ in 0..3 {
        mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    }
    for k in 1..=100u64 {
        mixer.handle_timeout(t0 + ms(20 * k));
    }
    let mut n = 0;
    while mixer.poll_output().is_some() {
        n += 1;
    }
    assert_eq!(n, 3 * 4);
    assert_eq!(mixer.stats().frames_dropped, 300 - 12);
}

#[test]
fn garbage_payloads_are_concealed_not_fatal() {
    let t0 = start();
    let mut mixer = Mixer::new(MixerConfig::default(), t0);
    let codecs = [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::G722,
        Codec::Opus(Channels::Mono),
        Codec::Opus(Channels::Stereo),
    ];
    let ids: Vec<_> = codecs
        .iter()
        .map(|&c| mixer.add_participant(ParticipantConfig::rtp(c)).unwrap())
        .collect();
    let mut rng = Rng(12345);
    let mut frames = 0;
    for k in 1..=200u64 {
        let now = t0 + ms(20 * k);
        for (i, (&id, &c)) in ids.iter().zip(&codecs).enumerate() {
            let len = rng.below(400) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let ts = (k as u32).wrapping_mul(c.rtp_timestamp_per_frame());
            // Sometimes wild sequence numbers and timestamps too.
            let (seq, ts) = if rng.below(10) == 0 {
                (rng.next() as u16, rng.next() as u32)
            } else {
                (k as u16, ts)
            };
            mixer
                .push_rtp(now, id, seq, ts, 100 + i as u32, &payload)
                .unwrap();
        }
        mixer.handle_timeout(now);
        while mixer.poll_output().is_some() {
            frames += 1;
        }
    }
    assert_eq!(frames, 200 * codecs.len());
    let opus = mixer.participant_stats(ids[3]).unwrap();
    assert!(opus.decode_errors > 0, "{opus:?}");
}

#[test]
fn reconfigure_switches_codec_and_keeps_handle_and_mute() {
    let t0 = start();
    let mut mixer = Mixer::new(MixerConfig::default(), t0);
    let talker = mixer.add_participant(ParticipantConfig::pcm()).unwrap();
    let phone = mixer
        .add_participant(ParticipantConfig::rtp(Codec::Pcmu))
        .unwrap();
    mixer.set_muted(phone, true).unwrap();
    let opus = Codec::Opus(Channels::Mono);
    let mut tone = Tone::new(700.0, 8000.0);
    let mut rx = Received::new(Some(opus));
    for k in 1..=60u64 {
        if k == 10 {
            mixer
                .reconfigure(phone, ParticipantConfig::rtp(opus))
                .unwrap();
            assert!(mixer.is_muted(phone).unwrap());
        }
        mixer.push_pcm(talker, &tone.next(48_000, 960)).unwrap();
        mixer.handle_timeout(t0 + ms(20 * k));
        while let Some(f) = mixer.poll_output() {
            if f.participant != phone {
                continue;
            }
            match &f.media {
                Media::Encoded { codec, .. } if k >= 10 => {
                    assert_eq!(*codec, opus);
                    rx.take(&f);
                }
                Media::Encoded { codec, .. } => assert_eq!(*codec, Codec::Pcmu),
                _ => panic!("encoded"),
            }
        }
    }
    assert_eq!(rx.frames[0], (0, true));
    assert_eq!(rx.frames.len(), 51);
    assert!(rx.frames[1..].iter().all(|&(_, m)| !m));
    assert!(tone_amplitude(rx.tail(0.5), 48_000, 700.0) > 7000.0);
    mixer.remove_participant(talker).unwrap();
    assert_eq!(
        mixer.reconfigure(talker, ParticipantConfig::pcm()),
        Err(MixerError::UnknownParticipant(talker))
    );
}
