//! Two-party bridges on virtual time: one codec on both legs is relayed without decoding
//! (payload bytes untouched, the outgoing leg's SSRC, sequence, timestamps and SRTP);
//! different codecs go through the mixer; the mode follows renegotiation and a third leg;
//! RFC 4733 events reach the other leg with its payload type in both modes, and digits
//! signalled out of band (SIP INFO) become events.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use codec::Codec;
use codec::telephone_event::EventPayload;
use engine::{Direction, DtmfFormat, EngineConfig, EngineEvent, LegConfig, LegId, MeetingMedia};
use rtp::packet::{RtpPacket, RtpWriter};
use rtp::srtp::SrtpContext;

mod common;
use common::keys;

const A_PT_EVENT: u8 = 101;
const B_PT_EVENT: u8 = 96;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A leg at 127.0.0.1:`port`, SRTP keyed by `seed` (0: plain RTP), telephone-event on
/// `event_pt` both ways (`None`: none negotiated).
fn leg(codec: Codec, pt: u8, event_pt: Option<u8>, seed: u8, port: u16) -> LegConfig {
    LegConfig {
        codec,
        payload_type: pt,
        dtmf_payload_type: event_pt,
        dtmf_out: event_pt.map(|payload_type| DtmfFormat {
            payload_type,
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

/// A packet as a peer reads it.
#[derive(Debug, Clone)]
struct Got {
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

/// The far end of one leg: writes RTP (SRTP with the keys the engine expects) and reads
/// what the engine sends it.
struct Peer {
    leg: LegId,
    addr: SocketAddr,
    tx: Option<SrtpContext>,
    rx: Option<SrtpContext>,
    ssrc: u32,
    seq: u16,
    ts: u32,
    got: Vec<Got>,
}

impl Peer {
    fn new(leg: LegId, seed: u8, port: u16, ssrc: u32) -> Self {
        let (tx, rx) = common::peer_srtp(seed);
        Peer {
            leg,
            addr: addr(port),
            tx,
            rx,
            ssrc,
            seq: 40_000,
            ts: 90_000,
            got: Vec::new(),
        }
    }

    fn write(&mut self, marker: bool, pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        RtpWriter {
            marker,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc: self.ssrc,
            csrcs: &[],
            extension: None,
            padding: 0,
        }
        .write(payload, &mut plain)
        .expect("write");
        match &mut self.tx {
            Some(tx) => {
                let mut out = Vec::new();
                tx.protect_rtp(&plain, &mut out).expect("protect");
                out
            }
            None => plain,
        }
    }

    /// The next 20 ms audio packet of this peer's stream.
    fn audio(&mut self, pt: u8, payload: &[u8]) -> Vec<u8> {
        let p = self.write(false, pt, self.seq, self.ts, payload);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        p
    }

    /// A telephone-event packet of the event that started at `start`.
    fn event(&mut self, marker: bool, start: u32, ev: EventPayload) -> Vec<u8> {
        let p = self.write(marker, A_PT_EVENT, self.seq, start, &ev.to_bytes());
        self.seq = self.seq.wrapping_add(1);
        p
    }

    fn read(&mut self, bytes: &[u8]) {
        let plain = match &mut self.rx {
            Some(rx) => {
                let mut out = Vec::new();
                rx.unprotect_rtp(bytes, &mut out)
                    .expect("the engine's packet authenticates with the leg's keys");
                out
            }
            None => bytes.to_vec(),
        };
        let p = RtpPacket::parse(&plain).expect("rtp");
        self.got.push(Got {
            marker: p.marker(),
            pt: p.payload_type(),
            seq: p.sequence_number(),
            ts: p.timestamp(),
            ssrc: p.ssrc(),
            payload: p.payload().to_vec(),
        });
    }

    fn audio_got(&self, pt: u8) -> Vec<&Got> {
        self.got.iter().filter(|g| g.pt == pt).collect()
    }
}

/// A bridge at virtual time between A (PCMU over SRTP, telephone-event 101) and B.
struct Fixture {
    m: MeetingMedia,
    now: Instant,
    a: Peer,
    b: Peer,
}

impl Fixture {
    /// B negotiated `codec` on payload type `pt`, telephone-event `event_pt`, SRTP keyed
    /// by `seed` (0: plain RTP).
    fn new(codec: Codec, pt: u8, event_pt: Option<u8>, seed: u8) -> Self {
        let now = Instant::now();
        let mut m = MeetingMedia::new(
            now,
            Duration::from_secs(1_800_000_000),
            EngineConfig::default(),
            7,
        );
        m.set_bridge();
        let la = m
            .add_leg(now, leg(Codec::Pcmu, 0, Some(A_PT_EVENT), 1, 41000))
            .expect("a");
        assert!(!m.is_relaying(), "one leg: nothing to relay to");
        let lb = m
            .add_leg(now, leg(codec, pt, event_pt, seed, 41002))
            .expect("b");
        Fixture {
            m,
            now,
            a: Peer::new(la, 1, 41000, 0xaaaa_0001),
            b: Peer::new(lb, seed, 41002, 0xbbbb_0002),
        }
    }

    /// 20 ms on: the packets given (A's, B's) go in, a tick runs, the output goes out.
    fn tick(&mut self, from_a: Option<Vec<u8>>, from_b: Option<Vec<u8>>) {
        self.now += Duration::from_millis(20);
        if let Some(p) = from_a {
            self.m.handle_packet(self.now, self.a.leg, self.a.addr, &p);
        }
        if let Some(p) = from_b {
            self.m.handle_packet(self.now, self.b.leg, self.b.addr, &p);
        }
        self.m.handle_timeout(self.now);
        self.deliver();
    }

    fn deliver(&mut self) {
        while let Some(t) = self.m.poll_transmit() {
            if t.rtcp || rtp::packet::is_rtcp(&t.bytes) {
                continue;
            }
            let p = if t.leg == self.a.leg {
                &mut self.a
            } else {
                &mut self.b
            };
            assert_eq!(t.dest, p.addr);
            p.read(&t.bytes);
        }
    }

    /// `n` steps of A sending audio on payload type `pt` (payloads `marked(0..n)`).
    fn run(&mut self, pt: u8, n: usize) {
        for i in 0..n {
            let p = self.a.audio(pt, &marked(i));
            self.tick(Some(p), None);
        }
    }

    /// A's digit `event` as RFC 4733 packets: a start, four updates, three ends (§2.5).
    fn digit(&mut self, event: u8) {
        let start = self.a.ts;
        for k in 0..8u16 {
            let ev = EventPayload {
                event,
                end: k >= 5,
                volume: 10,
                duration: 160 * (k.min(5) + 1),
            };
            let p = self.a.event(k == 0, start, ev);
            self.tick(Some(p), None);
        }
        self.a.ts = self.a.ts.wrapping_add(160 * 8);
    }

    /// B's audio packets so far: (relayed, mixed).
    fn sent_to_b(&self) -> (u64, u64) {
        let s = self.m.leg_stats(self.b.leg).expect("b");
        (s.relayed, s.mixed)
    }

    /// The engine's events that `keep` keeps.
    fn events(&mut self, keep: fn(&EngineEvent) -> bool) -> Vec<EngineEvent> {
        std::iter::from_fn(|| self.m.poll_event())
            .filter(keep)
            .collect()
    }
}

/// Payload bytes no codec made: only a relay keeps them as they are.
fn marked(i: usize) -> Vec<u8> {
    (0..160).map(|k| (i * 7 + k) as u8).collect()
}

fn assert_continuous(got: &[&Got]) {
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence continues");
        assert_eq!(w[1].ssrc, w[0].ssrc, "one SSRC");
    }
}

/// The events a peer got on `pt`: (event, packets, end packets, largest duration); each
/// starts with the marker and keeps one timestamp.
fn events_of(got: &[Got], pt: u8) -> Vec<(u8, usize, usize, u16)> {
    let mut out: Vec<(u8, usize, usize, u16)> = Vec::new();
    let mut start = None;
    for g in got.iter().filter(|g| g.pt == pt) {
        let ev = EventPayload::parse(&g.payload).expect("event payload");
        if g.marker || start != Some(g.ts) {
            assert!(g.marker, "an event starts with the marker");
            start = Some(g.ts);
            out.push((ev.event, 0, 0, 0));
        }
        let cur = out.last_mut().expect("started");
        assert_eq!(cur.0, ev.event);
        cur.1 += 1;
        cur.2 += usize::from(ev.end);
        cur.3 = cur.3.max(ev.duration);
    }
    out
}

#[test]
fn one_codec_is_relayed_untouched_and_reprotected() {
    let mut f = Fixture::new(Codec::Pcmu, 0, Some(B_PT_EVENT), 2);
    assert!(f.m.is_relaying());
    for i in 0..100 {
        let pa = f.a.audio(0, &marked(i));
        let pb = f.b.audio(0, &marked(1000 + i));
        f.tick(Some(pa), Some(pb));
        if i == 40 {
            // A loses one packet on the way: the gap stays a gap.
            f.a.seq = f.a.seq.wrapping_add(1);
            f.a.ts = f.a.ts.wrapping_add(160);
        }
    }
    let to_b = f.b.audio_got(0);
    assert_eq!(to_b.len(), 100, "every packet of A reaches B, nothing else");
    for (i, g) in to_b.iter().enumerate() {
        assert_eq!(g.payload, marked(i), "payload bytes untouched");
        assert_ne!(g.ssrc, f.a.ssrc, "B's own SSRC, not A's");
    }
    assert_continuous(&to_b[..41]);
    assert_continuous(&to_b[41..]);
    assert_eq!(to_b[41].seq, to_b[40].seq.wrapping_add(2), "A's loss kept");
    assert_eq!(to_b[41].ts, to_b[40].ts.wrapping_add(320));
    assert_eq!(to_b[1].ts, to_b[0].ts.wrapping_add(160));
    assert!(to_b[0].marker, "the relayed stream starts with the marker");
    let to_a = f.a.audio_got(0);
    assert_eq!(to_a.len(), 100);
    assert!(
        to_a.iter()
            .enumerate()
            .all(|(i, g)| g.payload == marked(1000 + i))
    );
    assert_continuous(&to_a);
    let sa = f.m.leg_stats(f.a.leg).expect("a");
    let sb = f.m.leg_stats(f.b.leg).expect("b");
    assert_eq!((sb.relayed, sb.mixed), (100, 0));
    assert_eq!((sa.relayed, sa.mixed), (100, 0));
    assert_eq!(sb.srtp_failures + sa.srtp_failures, 0);
}

#[test]
fn different_codecs_are_transcoded_by_the_mixer() {
    let mut f = Fixture::new(Codec::G722, 9, Some(B_PT_EVENT), 0);
    assert!(!f.m.is_relaying());
    f.run(0, 50);
    let to_b = f.b.audio_got(9);
    assert!(to_b.len() >= 40, "G.722 frames for B: {}", to_b.len());
    assert_continuous(&to_b);
    assert_eq!(f.sent_to_b(), (0, to_b.len() as u64));
}

#[test]
fn the_mode_follows_renegotiation_and_a_third_leg_with_one_timeline() {
    let mut f = Fixture::new(Codec::Pcmu, 0, Some(B_PT_EVENT), 2);
    f.run(0, 20);
    assert_eq!(f.b.got.len(), 20);
    // A re-INVITE moves A to G.722: B's stream now comes from the mixer.
    let g722 = leg(Codec::G722, 9, Some(A_PT_EVENT), 1, 41000);
    f.m.update_leg(f.now, f.a.leg, g722).expect("update");
    assert!(!f.m.is_relaying());
    let relayed_before = f.b.got.len();
    f.run(9, 30);
    let mixed = f.b.got[relayed_before..].to_vec();
    assert!(mixed.len() >= 20, "mixed frames for B: {}", mixed.len());
    assert!(mixed[0].marker, "the first mixed frame marks the change");
    // One SSRC and sequence across the change; the timeline moves on with the clock.
    assert_continuous(&f.b.got.iter().collect::<Vec<_>>());
    let gap = mixed[0].ts.wrapping_sub(f.b.got[relayed_before - 1].ts);
    assert!(
        (160..=160 * 4).contains(&gap),
        "timestamps continue from the relayed stream: +{gap}"
    );
    // Back to PCMU: relayed again, still one sequence.
    let pcmu = leg(Codec::Pcmu, 0, Some(A_PT_EVENT), 1, 41000);
    f.m.update_leg(f.now, f.a.leg, pcmu).expect("update");
    assert!(f.m.is_relaying());
    let mixed_until = f.b.got.len();
    f.run(0, 20);
    let back = &f.b.got[mixed_until..];
    assert_eq!(back.len(), 20);
    assert!(back[0].marker);
    assert!(back.iter().enumerate().all(|(i, g)| g.payload == marked(i)));
    assert_continuous(&f.b.got.iter().collect::<Vec<_>>());
    // A third leg makes it a conference: the mixer runs; when it leaves, relay resumes.
    let lc =
        f.m.add_leg(f.now, leg(Codec::Pcmu, 0, None, 0, 41004))
            .expect("c");
    assert!(!f.m.is_relaying());
    f.m.remove_leg(lc).expect("c leaves");
    assert!(f.m.is_relaying());
    assert_eq!(f.sent_to_b(), (40, mixed.len() as u64));
}

#[test]
fn relayed_events_take_the_other_legs_payload_type() {
    let mut f = Fixture::new(Codec::Pcmu, 0, Some(B_PT_EVENT), 2);
    assert!(f.m.is_relaying());
    f.run(0, 5);
    f.digit(5);
    f.run(0, 5);
    assert!(f.b.got.iter().all(|g| g.pt == 0 || g.pt == B_PT_EVENT));
    assert_eq!(events_of(&f.b.got, B_PT_EVENT), vec![(5, 8, 3, 960)]);
    // Relayed as they came: payloads untouched, one sequence with the audio.
    assert_continuous(&f.b.got.iter().collect::<Vec<_>>());
    // The digit is reported once.
    let dtmf = EngineEvent::Dtmf {
        leg: f.a.leg,
        digit: '5',
        duration_ms: 120,
    };
    assert_eq!(f.events(|e| matches!(e, EngineEvent::Dtmf { .. })), [dtmf]);
    assert_eq!(f.m.leg_stats(f.b.leg).expect("b").dtmf_out, 8);
}

#[test]
fn in_mixer_mode_events_are_generated_with_the_other_payload_type() {
    let mut f = Fixture::new(Codec::G722, 9, Some(B_PT_EVENT), 2);
    assert!(!f.m.is_relaying());
    f.run(0, 10);
    f.digit(11);
    f.run(0, 10);
    let evs = events_of(&f.b.got, B_PT_EVENT);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let (event, packets, ends, duration) = evs[0];
    assert_eq!(event, 11);
    assert_eq!(ends, 3, "three end packets (RFC 4733 §2.5.1.4)");
    assert!(packets >= 4);
    assert_eq!(duration, 960, "the end carries the length A's end gave");
    assert!(f.b.got.iter().all(|g| g.pt == 9 || g.pt == B_PT_EVENT));
    assert_continuous(&f.b.got.iter().collect::<Vec<_>>());
}

#[test]
fn out_of_band_digits_become_events_in_both_modes() {
    for (codec, pt) in [(Codec::Pcmu, 0), (Codec::G722, 9)] {
        let mut f = Fixture::new(codec, pt, Some(B_PT_EVENT), 0);
        f.run(0, 5);
        f.m.send_dtmf(f.now, f.a.leg, 1, Duration::from_millis(160))
            .expect("a's INFO digit");
        f.deliver();
        f.run(0, 15);
        let evs = events_of(&f.b.got, B_PT_EVENT);
        assert_eq!(evs.len(), 1, "{codec:?}: {evs:?}");
        assert_eq!((evs[0].0, evs[0].2, evs[0].3), (1, 3, 1280), "{codec:?}");
        assert_continuous(&f.b.got.iter().collect::<Vec<_>>());
        assert!(
            f.a.got.iter().all(|g| g.pt != A_PT_EVENT),
            "not echoed to A"
        );
    }
}

#[test]
fn a_leg_without_telephone_event_gets_none_and_it_is_said_once() {
    let mut f = Fixture::new(Codec::Pcmu, 0, None, 2);
    f.digit(3);
    f.m.send_dtmf(f.now, f.a.leg, 4, Duration::from_millis(100))
        .expect("INFO digit");
    f.run(0, 10);
    assert!(f.b.got.iter().all(|g| g.pt == 0), "audio only");
    let refused = EngineEvent::DtmfNotSupported { leg: f.b.leg };
    let said = f.events(|e| matches!(e, EngineEvent::DtmfNotSupported { .. }));
    assert_eq!(said, [refused]);
}
