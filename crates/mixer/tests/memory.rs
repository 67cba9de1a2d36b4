//! Memory per Opus leg (GitHub issue 17: at most 64 KiB): encoder state only where a
//! distinct mix exists, decoder state only for participants who sent.
//!
//! Its own test binary (so no other test's allocations share the process): 20 meetings of
//! 50 Opus legs with 2 talkers each, run for 2 s of ticks, and the growth of the resident
//! set (libopus allocates with the C allocator, so a Rust allocator hook would not see its
//! state) divided by the 1000 legs. The packets are made before the measurement.

mod common;

use codec::{Channels, Codec};
use common::*;
use mixer::{Mixer, MixerConfig, ParticipantConfig, ParticipantId};

const MEETINGS: usize = 20;
const LEGS: usize = 50;
const TICKS: usize = 100;
const OPUS: Codec = Codec::Opus(Channels::Mono);

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `TICKS` packets (seq, timestamp, payload) of a tone (or of digital silence).
fn packets(tone: Tone) -> Vec<(u16, u32, Vec<u8>)> {
    let mut scratch = Mixer::new(MixerConfig::default(), start());
    let id = scratch.add_participant(ParticipantConfig::pcm()).unwrap();
    let mut s = RtpSender::new(id, OPUS, tone, 0);
    (0..TICKS).map(|_| s.next_packet()).collect()
}

/// KiB of resident memory per leg that `MEETINGS` meetings add; legs `0..senders` of each
/// send (the first two a tone, the rest silence). Returns it with meeting 0's stats.
fn per_leg_kib(senders: usize) -> (f64, mixer::MixerStats) {
    let streams = [
        packets(Tone::new(440.0, 8000.0)),
        packets(Tone::new(700.0, 6000.0)),
        packets(Tone::silent()),
    ];
    let t0 = start();
    let build = |count: usize| -> Vec<(Mixer, Vec<ParticipantId>)> {
        (0..count)
            .map(|_| {
                let mut mixer = Mixer::new(MixerConfig::default(), t0);
                let ids = (0..LEGS)
                    .map(|_| mixer.add_participant(ParticipantConfig::rtp(OPUS)).unwrap())
                    .collect();
                (mixer, ids)
            })
            .collect()
    };
    let run = |meetings: &mut Vec<(Mixer, Vec<ParticipantId>)>| {
        let mut now = t0;
        // `k` indexes each sender's own stream, chosen per leg.
        #[allow(clippy::needless_range_loop)]
        for k in 0..TICKS {
            now += ms(20);
            for (mixer, ids) in meetings.iter_mut() {
                for (i, id) in ids.iter().enumerate().take(senders) {
                    let (seq, ts, p) = &streams[i.min(2)][k];
                    mixer.push_rtp(now, *id, *seq, *ts, i as u32, p).unwrap();
                }
                mixer.handle_timeout(now);
                while mixer.poll_output().is_some() {}
            }
        }
    };
    // Warm the allocator and libopus with one meeting first.
    let mut warm = build(1);
    run(&mut warm);
    let before = rss_kib();
    let mut meetings = build(MEETINGS);
    run(&mut meetings);
    let after = rss_kib();
    let per_leg = after.saturating_sub(before) as f64 / (MEETINGS * LEGS) as f64;
    println!("{senders} senders: RSS {before} -> {after} KiB: {per_leg:.1} KiB per Opus leg");
    (per_leg, meetings[0].0.stats())
}

#[test]
fn opus_legs_of_a_50_party_meeting_with_2_talkers_take_at_most_64_kib() {
    // Listeners that send nothing (muted clients, DTX) hold no codec state at all.
    let (quiet, stats) = per_leg_kib(2);
    // Listeners that send digital silence (phones without DTX) each hold a decoder.
    let (all, _) = per_leg_kib(LEGS);
    // Once both talkers are mixed: one shared encode for the 48 listeners, one private
    // per talker (3 a tick), not 50.
    assert!(stats.encodes <= 3 * TICKS as u64, "{stats:?}");
    assert!(stats.shared_encodes >= (TICKS - 10) as u64, "{stats:?}");
    assert!(quiet > 0.0, "the legs cost something");
    assert!(quiet <= 64.0, "{quiet:.1} KiB per leg");
    assert!(all <= 64.0, "{all:.1} KiB per leg");
}
