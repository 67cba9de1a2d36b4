//! Where a leg's media may come from (GitHub issue 14, H2), on virtual time with plain RTP
//! legs: a third party's packets (another address, its own SSRC or the victim's) never move
//! the leg's destination and never reach the mixer; with `media_latch` the first valid packet
//! latches, later ones from elsewhere do not, the SDP's address takes a leg back, and an
//! SSRC change from the latched source waits for a renegotiation.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use codec::Codec;
use codec::tone::goertzel_energy as goertzel;
use engine::{Direction, EngineConfig, LegConfig, LegId, MeetingMedia, Transmit};
use rtp::packet::{RtpPacket, RtpWriter};

/// The victim's tone and the attacker's: the listener must hear the first, never the second.
const VICTIM_HZ: f64 = 440.0;
const ATTACKER_HZ: f64 = 1000.0;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn plain_leg(remote: Option<SocketAddr>) -> LegConfig {
    LegConfig {
        codec: Codec::Pcmu,
        payload_type: 0,
        dtmf_payload_type: Some(101),
        dtmf_out: Some(engine::DtmfFormat {
            payload_type: 101,
            clock_rate: 8000,
        }),
        remote_ptime: None,
        srtp: None,
        remote_rtp: remote,
        remote_rtcp: None,
        rtcp_mux: false,
        direction: Direction::SENDRECV,
        muted: false,
        dtx: false,
    }
}

/// A PCMU sender with a tone of its own.
struct Sender {
    ssrc: u32,
    seq: u16,
    ts: u32,
    freq: f64,
    phase: f64,
}

impl Sender {
    fn new(ssrc: u32, freq: f64) -> Self {
        Sender {
            ssrc,
            seq: (ssrc as u16).wrapping_mul(7),
            ts: ssrc.wrapping_mul(13),
            freq,
            phase: 0.0,
        }
    }

    fn packet_pt(&mut self, pt: u8) -> Vec<u8> {
        let mut pcm = vec![0i16; 160];
        for s in &mut pcm {
            *s = (self.phase.sin() * 8000.0) as i16;
            self.phase += 2.0 * std::f64::consts::PI * self.freq / 8000.0;
        }
        let mut enc = Vec::new();
        Codec::Pcmu
            .encoder()
            .expect("encoder")
            .encode(&pcm, &mut enc)
            .expect("encode");
        let mut out = Vec::new();
        RtpWriter {
            marker: false,
            payload_type: pt,
            sequence_number: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
            csrcs: &[],
            extension: None,
            padding: 0,
        }
        .write(&enc, &mut out)
        .expect("write");
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        out
    }

    fn packet(&mut self) -> Vec<u8> {
        self.packet_pt(0)
    }
}

/// A meeting with the leg under attack (`victim`) and a listener at 127.0.0.1:42000 who
/// hears what gets into the mix.
struct Meeting {
    m: MeetingMedia,
    now: Instant,
    victim: LegId,
    listener: LegId,
    listener_addr: SocketAddr,
    /// Destinations of the victim leg's RTP, in order.
    victim_dests: Vec<SocketAddr>,
    /// Destinations of the victim leg's RTCP reports.
    victim_rtcp_dests: Vec<SocketAddr>,
    /// What the listener heard, decoded.
    heard: Vec<i16>,
}

impl Meeting {
    fn new(latch: bool, victim_remote: Option<SocketAddr>) -> Self {
        let now = Instant::now();
        let mut m = MeetingMedia::new(
            now,
            Duration::from_secs(1_800_000_000),
            EngineConfig {
                media_latch: latch,
                ..Default::default()
            },
            14,
        );
        let listener_addr = addr("127.0.0.1:42000");
        let victim = m.add_leg(now, plain_leg(victim_remote)).expect("victim");
        let listener = m
            .add_leg(now, plain_leg(Some(listener_addr)))
            .expect("listener");
        Meeting {
            m,
            now,
            victim,
            listener,
            listener_addr,
            victim_dests: Vec::new(),
            victim_rtcp_dests: Vec::new(),
            heard: Vec::new(),
        }
    }

    fn send(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.m.handle_packet(self.now, self.victim, from, bytes);
    }

    /// Advances 20 ms and collects what went out.
    fn tick(&mut self) {
        self.now += Duration::from_millis(20);
        self.m.handle_timeout(self.now);
        let mut dec = Codec::Pcmu.decoder().expect("decoder");
        while let Some(Transmit {
            leg,
            dest,
            rtcp,
            bytes,
        }) = self.m.poll_transmit()
        {
            if leg == self.victim && rtcp {
                self.victim_rtcp_dests.push(dest);
            } else if leg == self.victim {
                self.victim_dests.push(dest);
            } else if leg == self.listener && !rtcp {
                assert_eq!(dest, self.listener_addr);
                let pkt = RtpPacket::parse(&bytes).expect("rtp");
                let mut pcm = Vec::new();
                dec.decode(Some(pkt.payload()), &mut pcm).expect("decode");
                self.heard.extend_from_slice(&pcm);
            }
        }
    }

    fn stats(&self) -> engine::LegStats {
        self.m.leg_stats(self.victim).expect("stats")
    }

    /// The listener heard the victim's tone, and not the attacker's.
    fn assert_mix_is_the_victims(&self) {
        let evil = goertzel(&self.heard, 8000.0, ATTACKER_HZ);
        let victim = goertzel(&self.heard, 8000.0, VICTIM_HZ);
        assert!(
            victim > 100.0 * evil.max(1.0),
            "the listener hears the victim ({victim}), not the third party ({evil})"
        );
    }
}

/// Two seconds of the victim talking from `victim_from` while a third party at `evil`
/// sends three packets per 20 ms: one with its own SSRC, one with the victim's, one with
/// a payload type that was not negotiated.
fn attack(t: &mut Meeting, victim_from: SocketAddr, evil: SocketAddr) -> u64 {
    let mut victim = Sender::new(0x0bad_cafe, VICTIM_HZ);
    let mut own = Sender::new(0x6666_0001, ATTACKER_HZ);
    let mut mimic = Sender::new(0x0bad_cafe, ATTACKER_HZ);
    mimic.seq = victim.seq.wrapping_add(1);
    let mut sent = 0;
    for _ in 0..100 {
        let p = victim.packet();
        t.send(victim_from, &p);
        for bytes in [own.packet(), mimic.packet(), own.packet_pt(8)] {
            t.send(evil, &bytes);
            sent += 1;
        }
        t.tick();
    }
    sent
}

#[test]
fn a_third_party_neither_moves_the_destination_nor_reaches_the_mix() {
    let victim_addr = addr("127.0.0.1:41000");
    let evil = addr("127.0.0.3:41000");
    let mut t = Meeting::new(false, Some(victim_addr));
    // The attacker first, before the victim sent anything.
    let mut early = Sender::new(0x6666_0002, ATTACKER_HZ);
    for _ in 0..5 {
        let p = early.packet();
        t.send(evil, &p);
        t.tick();
    }
    let sent = 5 + attack(&mut t, victim_addr, evil);
    // RTCP from the third party is refused as well; the victim's (RTP port + 1) is read.
    let mut rr = Vec::new();
    let none = std::iter::empty::<&mut rtp::stats::ReceptionStats>();
    rtp::stats::write_receiver_report(&mut rr, 0x6666_0001, none, t.now).expect("rr");
    let cname: &[u8] = b"peer";
    let mut sdes = Vec::new();
    rtp::rtcp::write_sdes(
        &mut sdes,
        &[(0x6666_0001, &[(rtp::rtcp::sdes_item::CNAME, cname)])],
    )
    .expect("sdes");
    rr.extend_from_slice(&sdes);
    t.send(evil, &rr);
    t.send(addr("127.0.0.1:41001"), &rr);
    t.tick();

    assert!(!t.victim_dests.is_empty(), "the victim hears the meeting");
    assert!(
        t.victim_dests.iter().all(|d| *d == victim_addr),
        "nothing went to the third party: {:?}",
        t.victim_dests
    );
    assert!(
        t.victim_rtcp_dests
            .iter()
            .all(|d| *d == addr("127.0.0.1:41001")),
        "{:?}",
        t.victim_rtcp_dests
    );
    let s = t.stats();
    assert_eq!(s.foreign_source, sent + 1, "{s:?}");
    assert_eq!(s.packets_in, 100, "{s:?}");
    assert_eq!((s.invalid, s.rtcp_in), (0, 1), "{s:?}");
    t.assert_mix_is_the_victims();
}

#[test]
fn without_latching_a_leg_with_no_usable_address_takes_and_sends_nothing() {
    let mut t = Meeting::new(false, None);
    let mut peer = Sender::new(7, VICTIM_HZ);
    for _ in 0..20 {
        let p = peer.packet();
        t.send(addr("203.0.113.7:5004"), &p);
        t.tick();
    }
    assert!(t.victim_dests.is_empty(), "{:?}", t.victim_dests);
    let s = t.stats();
    assert_eq!((s.foreign_source, s.packets_in), (20, 0), "{s:?}");
}

#[test]
fn latching_takes_the_first_valid_packet_and_no_later_source() {
    // A PBX behind NAT: its SDP names a private address its packets never come from.
    let signalled = addr("10.1.2.3:4000");
    let nat = addr("198.51.100.7:61000");
    let evil = addr("127.0.0.3:41000");
    let mut t = Meeting::new(true, Some(signalled));
    // Before anything valid arrived: a payload type that was not negotiated latches nothing.
    let mut probe = Sender::new(0x6666_0003, ATTACKER_HZ);
    let p = probe.packet_pt(8);
    t.send(evil, &p);
    t.tick();
    assert!(
        t.victim_dests.iter().all(|d| *d == signalled),
        "{:?}",
        t.victim_dests
    );
    assert_eq!(t.stats().invalid, 1);
    let before = t.victim_dests.len();

    let sent = attack(&mut t, nat, evil);
    assert_eq!(
        t.victim_dests[before..].iter().collect::<Vec<_>>(),
        vec![&nat; t.victim_dests.len() - before],
        "latched onto the victim's first packet, and only it"
    );
    let s = t.stats();
    assert_eq!(s.packets_in, 100, "{s:?}");
    assert_eq!(s.foreign_source, sent, "{s:?}");
    t.assert_mix_is_the_victims();
}

#[test]
fn latching_on_srtp_needs_authentication() {
    // The existing SRTP test forges from another address; here latching is on, so the
    // forged packet reaches SRTP and must fail there without latching.
    let now = Instant::now();
    let mut m = MeetingMedia::new(
        now,
        Duration::from_secs(1_800_000_000),
        EngineConfig {
            media_latch: true,
            ..Default::default()
        },
        3,
    );
    let suite = rtp::srtp::SrtpSuite::AesCm128HmacSha1_80;
    let mut cfg = plain_leg(Some(addr("10.1.2.3:4000")));
    cfg.srtp = Some(engine::SrtpKeys {
        suite,
        remote_key: vec![1; 16],
        remote_salt: vec![2; 14],
        local_key: vec![3; 16],
        local_salt: vec![4; 14],
    });
    let leg = m.add_leg(now, cfg).expect("leg");
    let mut ctx = rtp::srtp::SrtpContext::new(suite, &[1; 16], &[2; 14]).expect("ctx");
    let mut sender = Sender::new(99, VICTIM_HZ);
    let mut good = Vec::new();
    ctx.protect_rtp(&sender.packet(), &mut good)
        .expect("protect");
    let mut forged = good.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let evil = addr("127.0.0.3:41000");
    m.handle_packet(now, leg, evil, &forged);
    m.handle_timeout(now + Duration::from_millis(40));
    while let Some(t) = m.poll_transmit() {
        assert_ne!(t.dest.ip(), evil.ip(), "a forged packet latches nothing");
    }
    let nat = addr("198.51.100.7:61000");
    m.handle_packet(now + Duration::from_millis(40), leg, nat, &good);
    m.handle_timeout(now + Duration::from_millis(80));
    let mut sent = 0;
    while let Some(t) = m.poll_transmit() {
        if !t.rtcp {
            assert_eq!(t.dest, nat, "latched onto the authenticated packet");
            sent += 1;
        }
    }
    assert!(sent > 0);
    let s = m.leg_stats(leg).expect("stats");
    assert_eq!((s.srtp_failures, s.packets_in), (1, 1), "{s:?}");
}

#[test]
fn the_signalled_address_takes_a_latched_leg_back() {
    let signalled = addr("127.0.0.1:41000");
    let evil = addr("127.0.0.3:41000");
    let mut t = Meeting::new(true, Some(signalled));
    let mut intruder = Sender::new(0x6666_0004, ATTACKER_HZ);
    let p = intruder.packet();
    t.send(evil, &p);
    t.tick();
    t.tick();
    assert_eq!(
        t.victim_dests.last(),
        Some(&evil),
        "the first valid packet latched"
    );
    let first_after = t.victim_dests.len();
    let sent = attack(&mut t, signalled, evil);
    // The victim's first packet went in before the first tick of the attack: every packet
    // of the attack's ticks went to the victim.
    assert!(
        t.victim_dests[first_after..]
            .iter()
            .all(|d| *d == signalled),
        "{:?}",
        &t.victim_dests[first_after..]
    );
    let s = t.stats();
    assert_eq!(s.packets_in, 101, "{s:?}");
    assert_eq!(s.foreign_source, sent, "{s:?}");
}

#[test]
fn an_ssrc_change_from_the_latched_source_waits_for_a_renegotiation() {
    let signalled = addr("10.1.2.3:4000");
    let nat = addr("198.51.100.7:61000");
    let mut t = Meeting::new(true, Some(signalled));
    let mut first = Sender::new(1111, VICTIM_HZ);
    let mut second = Sender::new(2222, ATTACKER_HZ);
    for _ in 0..10 {
        let p = first.packet();
        t.send(nat, &p);
        t.tick();
    }
    for _ in 0..10 {
        let p = second.packet();
        t.send(nat, &p);
        t.tick();
    }
    let s = t.stats();
    assert_eq!((s.packets_in, s.foreign_source), (10, 10), "{s:?}");

    // A re-INVITE with the same SDP: the new stream is taken, the latched address kept.
    t.m.update_leg(t.now, t.victim, plain_leg(Some(signalled)))
        .expect("update");
    let before = t.victim_dests.len();
    for _ in 0..10 {
        let p = second.packet();
        t.send(nat, &p);
        t.tick();
    }
    let p = first.packet();
    t.send(nat, &p);
    t.tick();
    let s = t.stats();
    assert_eq!(
        (s.packets_in, s.foreign_source),
        (20, 11),
        "the new SSRC after the update, the old one refused: {s:?}"
    );
    assert!(
        t.victim_dests[before..].iter().all(|d| *d == nat),
        "{:?}",
        &t.victim_dests[before..]
    );
}
