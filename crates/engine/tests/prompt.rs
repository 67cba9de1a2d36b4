//! Prompts and taps of SIP media application calls on virtual time: a leg alone in its
//! meeting hears a prompt on its codec (G.711 under SRTP, G.722, Opus) in continuous
//! 20 ms RTP, for exactly its length times its repeats, then `PlayDone`; a stopped or
//! replaced prompt reports `interrupted`; a tap delivers what the leg says and hears;
//! a bridge mixes while a prompt plays and relays again after; digits of a lone leg are
//! reported.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use codec::Codec;
use codec::telephone_event::EventPayload;
use codec::tone::goertzel_energy;
use codec::wav::Pcm;
use engine::{
    Direction, DtmfFormat, EngineConfig, EngineEvent, LegConfig, LegId, MeetingMedia, Prompt,
    TapTrack,
};
use rtp::packet::{RtpPacket, RtpWriter};
use rtp::srtp::SrtpContext;

mod common;
use common::keys;

const TICK: Duration = Duration::from_millis(20);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn leg(codec: Codec, pt: u8, seed: u8, port: u16) -> LegConfig {
    LegConfig {
        codec,
        payload_type: pt,
        dtmf_payload_type: Some(101),
        dtmf_out: Some(DtmfFormat {
            payload_type: 101,
            clock_rate: 8000,
        }),
        remote_ptime: None,
        srtp: (seed != 0).then(|| keys(seed)),
        remote_rtp: Some(addr(port)),
        remote_rtcp: None,
        rtcp_mux: false,
        direction: Direction::SENDRECV,
        muted: false,
        dtx: false,
    }
}

/// A leg that is removed at once: its id names no leg.
fn leg_cfg_gone() -> LegConfig {
    leg(Codec::Pcmu, 0, 0, 42_998)
}

fn sine(rate: u32, hz: f64, n: usize, phase0: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = (i + phase0) as f64 / f64::from(rate);
            (12_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

/// A tone prompt of `ms` milliseconds at 8 kHz.
fn tone_prompt(hz: f64, ms: usize) -> Prompt {
    Prompt::new(Pcm {
        rate: 8000,
        samples: sine(8000, hz, ms * 8, 0),
    })
}

/// One packet the engine sent a leg, as its peer reads it.
struct Heard {
    at: Instant,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

/// The far end of one leg.
struct Peer {
    leg: LegId,
    addr: SocketAddr,
    codec: Codec,
    tx: Option<SrtpContext>,
    rx: Option<SrtpContext>,
    seq: u16,
    sent: usize,
    heard: Vec<Heard>,
}

impl Peer {
    fn new(leg: LegId, codec: Codec, seed: u8, port: u16) -> Self {
        let (tx, rx) = common::peer_srtp(seed);
        Peer {
            leg,
            addr: addr(port),
            codec,
            tx,
            rx,
            seq: 7000,
            sent: 0,
            heard: Vec::new(),
        }
    }

    fn protect(&mut self, plain: Vec<u8>) -> Vec<u8> {
        match &mut self.tx {
            Some(tx) => {
                let mut out = Vec::new();
                tx.protect_rtp(&plain, &mut out).expect("protect");
                out
            }
            None => plain,
        }
    }

    fn rtp(&mut self, marker: bool, pt: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        RtpWriter {
            marker,
            payload_type: pt,
            sequence_number: self.seq,
            timestamp: ts,
            ssrc: 0xCA11_E400,
            csrcs: &[],
            extension: None,
            padding: 0,
        }
        .write(payload, &mut plain)
        .expect("write");
        self.seq = self.seq.wrapping_add(1);
        self.protect(plain)
    }

    /// The next 20 ms of a PCMU tone (`hz` 0: silence).
    fn tone(&mut self, hz: f64) -> Vec<u8> {
        let pcm = sine(8000, hz, 160, self.sent * 160);
        let mut payload = Vec::new();
        codec::g711::ulaw_encode(&pcm, &mut payload);
        let ts = 160 * self.sent as u32;
        self.sent += 1;
        self.rtp(false, 0, ts, &payload)
    }

    fn read(&mut self, at: Instant, bytes: &[u8]) {
        let plain = match &mut self.rx {
            Some(rx) => {
                let mut out = Vec::new();
                rx.unprotect_rtp(bytes, &mut out)
                    .expect("engine output authenticates");
                out
            }
            None => bytes.to_vec(),
        };
        let p = RtpPacket::parse(&plain).expect("rtp");
        self.heard.push(Heard {
            at,
            seq: p.sequence_number(),
            ts: p.timestamp(),
            ssrc: p.ssrc(),
            payload: p.payload().to_vec(),
        });
    }

    /// Every frame heard, decoded, with its time.
    fn decoded(&self) -> Vec<(Instant, Vec<i16>)> {
        let mut dec = self.codec.decoder().expect("decoder");
        self.heard
            .iter()
            .map(|h| {
                let mut pcm = Vec::new();
                dec.decode(Some(&h.payload), &mut pcm).expect("decode");
                (h.at, pcm)
            })
            .collect()
    }

    /// One sequence, one SSRC, timestamps a frame apart: RTP pacing (RFC 3550 §5.1).
    fn assert_continuous(&self) {
        let step = self.codec.rtp_timestamp_per_frame();
        for w in self.heard.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
            assert_eq!(w[1].ts, w[0].ts.wrapping_add(step));
            assert_eq!(w[1].ssrc, w[0].ssrc);
            assert_eq!(w[1].at - w[0].at, TICK);
        }
    }
}

/// A meeting on virtual time and its peers.
struct Call {
    m: MeetingMedia,
    now: Instant,
    peers: Vec<Peer>,
    events: Vec<(Instant, EngineEvent)>,
}

impl Call {
    fn new(legs: &[(Codec, u8, u8)]) -> Self {
        let now = Instant::now();
        let mut m = MeetingMedia::new(
            now,
            Duration::from_secs(1_800_000_000),
            EngineConfig::default(),
            7,
        );
        let peers = legs
            .iter()
            .enumerate()
            .map(|(i, &(codec, pt, seed))| {
                let port = 42_000 + 2 * i as u16;
                let id = m.add_leg(now, leg(codec, pt, seed, port)).expect("leg");
                Peer::new(id, codec, seed, port)
            })
            .collect();
        Call {
            m,
            now,
            peers,
            events: Vec::new(),
        }
    }

    /// One 20 ms step: each peer's packet (if any) in, the tick, transmits out.
    fn step(&mut self, sends: &[Option<Vec<u8>>]) {
        self.now += TICK;
        for (p, pkt) in self.peers.iter().zip(sends) {
            if let Some(pkt) = pkt {
                self.m.handle_packet(self.now, p.leg, p.addr, pkt);
            }
        }
        self.m.handle_timeout(self.now);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(t) = self.m.poll_transmit() {
            if t.rtcp {
                continue;
            }
            if let Some(p) = self.peers.iter_mut().find(|p| p.leg == t.leg) {
                assert_eq!(t.dest, p.addr);
                p.read(self.now, &t.bytes);
            }
        }
        while let Some(e) = self.m.poll_event() {
            self.events.push((self.now, e));
        }
    }

    fn idle(&mut self, steps: usize) {
        for _ in 0..steps {
            let none = vec![None; self.peers.len()];
            self.step(&none);
        }
    }

    fn play_done(&self) -> Vec<(Instant, EngineEvent)> {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, EngineEvent::PlayDone { .. }))
            .cloned()
            .collect()
    }
}

/// Per heard frame after `from`: whether it carries `hz` (vs silence).
fn tone_frames(p: &Peer, from: Instant, hz: f64) -> Vec<bool> {
    let rate = f64::from(p.codec.sample_rate());
    p.decoded()
        .into_iter()
        .filter(|(at, _)| *at > from)
        .map(|(_, pcm)| {
            let e = goertzel_energy(&pcm, rate, hz);
            // Full tone: 0.25 × 12000² = 3.6e7; count a frame at least half full.
            e > 0.25 * 3.6e7
        })
        .collect()
}

fn played_twice(codec: Codec, pt: u8, seed: u8) {
    let mut c = Call::new(&[(codec, pt, seed)]);
    c.idle(10);
    let leg = c.peers[0].leg;
    let start = c.now + Duration::from_millis(7);
    c.m.play(start, leg, tone_prompt(1000.0, 300), 2)
        .expect("play");
    c.idle(60);
    let p = &c.peers[0];
    p.assert_continuous();
    let frames = tone_frames(p, start, 1000.0);
    let on: Vec<usize> = (0..frames.len()).filter(|&i| frames[i]).collect();
    // 600 ms of tone: 30 frames in a row from the first tick after `play`, then silence
    // (a codec with memory may smear one frame at each edge).
    assert!((29..=31).contains(&on.len()), "{codec:?}: {on:?}");
    assert!(on.first().is_some_and(|&f| f <= 1), "{codec:?}: {on:?}");
    assert_eq!(
        on.last().unwrap() - on.first().unwrap() + 1,
        on.len(),
        "{codec:?}: one run"
    );
    assert!(on.last().unwrap() + 10 < frames.len());
    let done = c.play_done();
    assert_eq!(done.len(), 1, "{codec:?}: {done:?}");
    assert_eq!(
        done[0].1,
        EngineEvent::PlayDone {
            leg,
            interrupted: false
        }
    );
    let late = done[0].0 - start;
    assert!(
        late >= Duration::from_millis(580) && late <= Duration::from_millis(620),
        "{codec:?}: PlayDone {late:?} after play"
    );
}

#[test]
fn a_prompt_plays_twice_on_pcmu_under_srtp_then_play_done() {
    played_twice(Codec::Pcmu, 0, 3);
}

#[test]
fn a_prompt_plays_twice_on_g722_then_play_done() {
    played_twice(Codec::G722, 9, 0);
}

#[test]
fn a_prompt_plays_twice_on_opus_then_play_done() {
    played_twice(Codec::Opus(codec::Channels::Mono), 111, 4);
}

#[test]
fn stop_and_replace_report_interrupted() {
    let mut c = Call::new(&[(Codec::Pcmu, 0, 0)]);
    let leg = c.peers[0].leg;
    c.idle(5);
    let start = c.now;
    c.m.play(c.now, leg, tone_prompt(1000.0, 300), 2)
        .expect("play");
    c.idle(10);
    assert!(c.m.stop_play(leg));
    assert!(!c.m.stop_play(leg), "nothing left to stop");
    c.idle(40);
    let interrupted = EngineEvent::PlayDone {
        leg,
        interrupted: true,
    };
    let done: Vec<_> = c.play_done().into_iter().map(|(_, e)| e).collect();
    assert_eq!(done, std::slice::from_ref(&interrupted));
    let on = tone_frames(&c.peers[0], start, 1000.0);
    assert_eq!(on.iter().filter(|b| **b).count(), 10, "{on:?}");

    // A new prompt replaces one still playing: the old one reports interrupted, the new
    // one plays to its end.
    c.events.clear();
    let second = c.now;
    c.m.play(c.now, leg, tone_prompt(1000.0, 1000), 1)
        .expect("play");
    c.idle(3);
    c.m.play(c.now, leg, tone_prompt(500.0, 100), 1)
        .expect("replace");
    c.idle(20);
    let done: Vec<_> = c.play_done().into_iter().map(|(_, e)| e).collect();
    let natural = EngineEvent::PlayDone {
        leg,
        interrupted: false,
    };
    assert_eq!(done, [interrupted, natural]);
    let at_500 = tone_frames(&c.peers[0], second, 500.0);
    assert_eq!(at_500.iter().filter(|b| **b).count(), 5, "{at_500:?}");

    // Bad input: an unknown leg, an unplayable rate.
    let gone = c.m.add_leg(c.now, leg_cfg_gone()).expect("leg");
    c.m.remove_leg(gone).expect("removed");
    assert!(c.m.play(c.now, gone, tone_prompt(1000.0, 20), 1).is_err());
    let odd = Prompt {
        rate: 44_100,
        samples: vec![0; 100].into(),
    };
    assert!(c.m.play(c.now, leg, odd, 1).is_err());
    assert!(!c.m.stop_play(gone));
}

#[test]
fn a_removed_leg_drops_its_prompt_silently() {
    let mut c = Call::new(&[(Codec::Pcmu, 0, 0)]);
    let leg = c.peers[0].leg;
    c.m.play(c.now, leg, tone_prompt(1000.0, 300), 1)
        .expect("play");
    c.idle(3);
    c.m.remove_leg(leg).expect("removed");
    c.idle(30);
    assert!(c.play_done().is_empty());
}

#[test]
fn a_tap_hears_what_the_leg_says_and_what_it_hears() {
    let mut c = Call::new(&[(Codec::Pcmu, 0, 5)]);
    let leg = c.peers[0].leg;
    c.m.set_tap(leg, Some(TapTrack::Both)).expect("tap");
    c.m.play(c.now, leg, tone_prompt(500.0, 1000), 1)
        .expect("play");
    for _ in 0..40 {
        let pkt = c.peers[0].tone(1000.0);
        c.step(&[Some(pkt)]);
    }
    let audio: Vec<(u32, Vec<i16>, Vec<i16>)> = c
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            EngineEvent::Audio {
                leg: l,
                rate,
                incoming,
                outgoing,
            } if *l == leg => Some((*rate, incoming.clone(), outgoing.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(audio.len(), 40, "one a tick");
    for (i, (rate, incoming, outgoing)) in audio.iter().enumerate() {
        assert_eq!((*rate, incoming.len(), outgoing.len()), (8000, 160, 160));
        let e = |pcm: &[i16], hz| goertzel_energy(pcm, 8000.0, hz);
        assert!(
            e(outgoing, 500.0) > 0.25 * 3.6e7,
            "frame {i} hears the prompt"
        );
        assert!(e(outgoing, 1000.0) < 1e4, "frame {i}: not its own voice");
        // After the jitter buffer's initial delay, what the leg says.
        if i >= 5 {
            assert!(
                e(incoming, 1000.0) > 0.25 * 3.6e7,
                "frame {i} has the caller"
            );
            assert!(e(incoming, 500.0) < 1e5, "frame {i}: not the prompt");
        }
    }

    // One track only; then off.
    c.events.clear();
    c.m.set_tap(leg, Some(TapTrack::Incoming)).expect("tap");
    c.idle(2);
    c.m.set_tap(leg, None).expect("untap");
    c.idle(2);
    let tracks: Vec<(usize, usize)> = c
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            EngineEvent::Audio {
                incoming, outgoing, ..
            } => Some((incoming.len(), outgoing.len())),
            _ => None,
        })
        .collect();
    assert_eq!(tracks, [(160, 0), (160, 0)]);
    let gone = c.m.add_leg(c.now, leg_cfg_gone()).expect("leg");
    c.m.remove_leg(gone).expect("removed");
    assert!(c.m.set_tap(gone, Some(TapTrack::Both)).is_err());
}

#[test]
fn a_bridge_mixes_while_a_prompt_plays_and_relays_after() {
    let mut c = Call::new(&[(Codec::Pcmu, 0, 0), (Codec::Pcmu, 0, 0)]);
    c.m.set_bridge();
    assert!(c.m.is_relaying());
    let (a, b) = (c.peers[0].leg, c.peers[1].leg);
    for _ in 0..10 {
        let pa = c.peers[0].tone(0.0);
        let pb = c.peers[1].tone(0.0);
        c.step(&[Some(pa), Some(pb)]);
    }
    let start = c.now;
    c.m.play(c.now, a, tone_prompt(1000.0, 200), 1)
        .expect("play");
    assert!(!c.m.is_relaying(), "mixing while the prompt plays");
    for _ in 0..20 {
        let pa = c.peers[0].tone(0.0);
        let pb = c.peers[1].tone(0.0);
        c.step(&[Some(pa), Some(pb)]);
    }
    assert!(c.m.is_relaying(), "relaying again after it");
    assert_eq!(c.play_done().len(), 1);
    let heard_a = tone_frames(&c.peers[0], start, 1000.0);
    let heard_b = tone_frames(&c.peers[1], start, 1000.0);
    assert_eq!(heard_a.iter().filter(|b| **b).count(), 10, "{heard_a:?}");
    assert!(heard_b.iter().all(|b| !b), "the other leg does not hear it");
    c.peers[0].assert_continuous();
    c.peers[1].assert_continuous();

    // A tap also needs the audio decoded.
    c.m.set_tap(b, Some(TapTrack::Incoming)).expect("tap");
    assert!(!c.m.is_relaying());
    c.m.set_tap(b, None).expect("untap");
    assert!(c.m.is_relaying());
}

#[test]
fn a_lone_legs_digits_are_reported() {
    let mut c = Call::new(&[(Codec::Pcmu, 0, 6)]);
    let leg = c.peers[0].leg;
    c.m.play(c.now, leg, tone_prompt(500.0, 2000), 1)
        .expect("play");
    for _ in 0..5 {
        let pkt = c.peers[0].tone(0.0);
        c.step(&[Some(pkt)]);
    }
    // Digit 5: a start, updates, three ends (RFC 4733 §2.5.1).
    let start = 160 * c.peers[0].sent as u32;
    for k in 0..8u16 {
        let ev = EventPayload {
            event: 5,
            end: k >= 5,
            volume: 10,
            duration: 160 * (k.min(5) + 1),
        };
        let pkt = c.peers[0].rtp(k == 0, 101, start, &ev.to_bytes());
        c.step(&[Some(pkt)]);
    }
    let digits: Vec<_> = c
        .events
        .iter()
        .filter(|(_, e)| matches!(e, EngineEvent::Dtmf { .. }))
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(
        digits,
        [EngineEvent::Dtmf {
            leg,
            digit: '5',
            duration_ms: 120
        }]
    );
}

#[test]
fn a_prompt_goes_on_across_a_codec_change() {
    let mut c = Call::new(&[(Codec::Pcmu, 0, 0)]);
    let leg = c.peers[0].leg;
    c.m.play(c.now, leg, tone_prompt(1000.0, 400), 1)
        .expect("play");
    c.idle(10);
    let g722 = LegConfig {
        codec: Codec::G722,
        payload_type: 9,
        ..leg_cfg_gone()
    };
    let g722 = LegConfig {
        remote_rtp: Some(c.peers[0].addr),
        ..g722
    };
    c.m.update_leg(c.now, leg, g722).expect("renegotiated");
    let switched = c.now;
    c.idle(20);
    let done = c.play_done();
    assert_eq!(done.len(), 1);
    assert_eq!(
        done[0].1,
        EngineEvent::PlayDone {
            leg,
            interrupted: false
        }
    );
    // The second half in G.722 at 16 kHz.
    let mut dec = Codec::G722.decoder().expect("decoder");
    let on = c.peers[0]
        .heard
        .iter()
        .filter(|h| h.at > switched)
        .filter(|h| {
            let mut pcm = Vec::new();
            dec.decode(Some(&h.payload), &mut pcm).expect("decode");
            goertzel_energy(&pcm, 16_000.0, 1000.0) > 0.25 * 3.6e7
        })
        .count();
    assert!((9..=10).contains(&on), "{on}");
}
