//! Two SRTP legs in one meeting on virtual time: a tone sent by one reaches the other, not
//! itself; authentication failures are counted and never latch; silence triggers the
//! inactivity event.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use codec::Codec;
use engine::{Direction, EngineConfig, EngineEvent, LegConfig, MeetingMedia};
use rtp::packet::{RtpPacket, RtpWriter};
use rtp::srtp::SrtpContext;

mod common;
use common::{SUITE, keys};

fn leg(seed: u8, addr: SocketAddr) -> LegConfig {
    LegConfig {
        codec: Codec::Pcmu,
        payload_type: 0,
        dtmf_payload_type: Some(101),
        dtmf_out: Some(engine::DtmfFormat {
            payload_type: 101,
            clock_rate: 8000,
        }),
        remote_ptime: None,
        srtp: Some(keys(seed)),
        remote_rtp: Some(addr),
        remote_rtcp: None,
        rtcp_mux: false,
        direction: Direction::SENDRECV,
        muted: false,
        dtx: false,
    }
}

/// A meeting at a fixed wallclock with one SRTP leg (keys of seed 1) at 127.0.0.1:41000.
fn one_leg() -> (Instant, MeetingMedia, SocketAddr, engine::LegId) {
    let t0 = Instant::now();
    let mut m = MeetingMedia::new(
        t0,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        1,
    );
    let a_addr: SocketAddr = "127.0.0.1:41000".parse().expect("addr");
    let la = m.add_leg(t0, leg(1, a_addr)).expect("leg");
    (t0, m, a_addr, la)
}

use codec::tone::goertzel_energy as goertzel;

/// A peer: sends a PCMU tone over SRTP with the keys the engine expects from it, and
/// decrypts what the engine sends it.
struct Peer {
    addr: SocketAddr,
    tx: SrtpContext,
    rx: SrtpContext,
    seq: u16,
    ts: u32,
    phase: f64,
    freq: f64,
    heard: Vec<i16>,
}

impl Peer {
    fn new(seed: u8, addr: SocketAddr, freq: f64) -> Self {
        let k = keys(seed);
        Peer {
            addr,
            tx: SrtpContext::new(SUITE, &k.remote_key, &k.remote_salt).expect("tx"),
            rx: SrtpContext::new(SUITE, &k.local_key, &k.local_salt).expect("rx"),
            seq: 1000,
            ts: 5000,
            phase: 0.0,
            freq,
            heard: Vec::new(),
        }
    }

    fn packet(&mut self) -> Vec<u8> {
        let mut enc = Vec::new();
        let mut pcm = vec![0i16; 160];
        for s in &mut pcm {
            *s = (self.phase.sin() * 8000.0) as i16;
            self.phase += 2.0 * std::f64::consts::PI * self.freq / 8000.0;
        }
        if self.freq > 0.0 {
            codec::Codec::Pcmu
                .encoder()
                .expect("enc")
                .encode(&pcm, &mut enc)
                .expect("encode");
        } else {
            enc = vec![0xff; 160];
        }
        let mut plain = Vec::new();
        RtpWriter {
            marker: false,
            payload_type: 0,
            sequence_number: self.seq,
            timestamp: self.ts,
            ssrc: 0x1234_0000 + self.freq as u32,
            csrcs: &[],
            extension: None,
            padding: 0,
        }
        .write(&enc, &mut plain)
        .expect("write");
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        let mut out = Vec::new();
        self.tx.protect_rtp(&plain, &mut out).expect("protect");
        out
    }

    fn receive(&mut self, bytes: &[u8]) {
        let mut plain = Vec::new();
        self.rx
            .unprotect_rtp(bytes, &mut plain)
            .expect("engine output authenticates");
        let pkt = RtpPacket::parse(&plain).expect("rtp");
        let mut dec = codec::Codec::Pcmu.decoder().expect("dec");
        let mut pcm = Vec::new();
        dec.decode(Some(pkt.payload()), &mut pcm).expect("decode");
        self.heard.extend_from_slice(&pcm);
    }
}

#[test]
fn each_leg_hears_the_other_not_itself() {
    let t0 = Instant::now();
    let mut m = MeetingMedia::new(
        t0,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        2,
    );
    let a_addr: SocketAddr = "127.0.0.1:41000".parse().expect("addr");
    let b_addr: SocketAddr = "127.0.0.1:41002".parse().expect("addr");
    let la = m.add_leg(t0, leg(1, a_addr)).expect("leg a");
    let lb = m.add_leg(t0, leg(2, b_addr)).expect("leg b");
    let mut a = Peer::new(1, a_addr, 440.0);
    let mut b = Peer::new(2, b_addr, 1000.0);
    let mut now = t0;
    for _ in 0..150 {
        now += Duration::from_millis(20);
        let pa = a.packet();
        m.handle_packet(now, la, a.addr, &pa);
        let pb = b.packet();
        m.handle_packet(now, lb, b.addr, &pb);
        m.handle_timeout(now);
        while let Some(t) = m.poll_transmit() {
            if t.rtcp {
                continue;
            }
            if t.leg == la {
                assert_eq!(t.dest, a_addr);
                a.receive(&t.bytes);
            } else {
                assert_eq!(t.dest, b_addr);
                b.receive(&t.bytes);
            }
        }
    }
    assert!(a.heard.len() >= 100 * 160, "50 pps to A: {}", a.heard.len());
    let tail = |v: &[i16]| v[v.len() - 8000..].to_vec();
    let (ah, bh) = (tail(&a.heard), tail(&b.heard));
    let a_own = goertzel(&ah, 8000.0, 440.0);
    let a_other = goertzel(&ah, 8000.0, 1000.0);
    let b_own = goertzel(&bh, 8000.0, 1000.0);
    let b_other = goertzel(&bh, 8000.0, 440.0);
    assert!(
        a_other > 100.0 * a_own.max(1.0),
        "A hears 1 kHz ({a_other}) not 440 Hz ({a_own})"
    );
    assert!(
        b_other > 100.0 * b_own.max(1.0),
        "B hears 440 Hz ({b_other}) not 1 kHz ({b_own})"
    );
    let s = m.leg_stats(la).expect("stats");
    assert_eq!(s.packets_in, 150);
    assert_eq!(s.srtp_failures, 0);
}

#[test]
fn forged_packets_are_refused_and_do_not_latch() {
    let (t0, mut m, a_addr, la) = one_leg();
    let evil: SocketAddr = "127.0.0.9:9999".parse().expect("addr");
    let mut a = Peer::new(1, a_addr, 440.0);
    let mut pkt = a.packet();
    let last = pkt.len() - 1;
    pkt[last] ^= 1;
    // From another address: dropped unread (see tests/media_source.rs); from the leg's
    // own address: refused by SRTP authentication.
    m.handle_packet(t0, la, evil, &pkt);
    m.handle_packet(t0, la, a_addr, &pkt);
    m.handle_timeout(t0 + Duration::from_millis(40));
    let mut sent = 0;
    while let Some(t) = m.poll_transmit() {
        assert_eq!(
            t.dest, a_addr,
            "a forged packet never moves the media destination"
        );
        sent += 1;
    }
    assert!(
        sent > 0,
        "the leg keeps receiving the mix at its SDP address"
    );
    let s = m.leg_stats(la).expect("stats");
    assert_eq!((s.foreign_source, s.srtp_failures, s.packets_in), (1, 1, 0));
}

#[test]
fn silence_on_the_wire_reports_inactivity() {
    let t0 = Instant::now();
    let mut m = MeetingMedia::new(
        t0,
        Duration::from_secs(1_800_000_000),
        EngineConfig {
            inactivity: Duration::from_secs(5),
            ..Default::default()
        },
        3,
    );
    let la = m
        .add_leg(t0, leg(1, "127.0.0.1:41000".parse().expect("addr")))
        .expect("leg");
    let mut now = t0;
    let mut seen = false;
    while now < t0 + Duration::from_secs(7) {
        now = m.poll_timeout().max(now + Duration::from_millis(1));
        m.handle_timeout(now);
        while m.poll_transmit().is_some() {}
        while let Some(ev) = m.poll_event() {
            if ev == (EngineEvent::Inactive { leg: la }) {
                assert!(now >= t0 + Duration::from_secs(5));
                seen = true;
            }
        }
    }
    assert!(seen, "inactivity reported");
}

#[test]
fn rtcp_reports_go_to_the_rtcp_port_under_srtcp() {
    let (t0, mut m, a_addr, la) = one_leg();
    let mut a = Peer::new(1, a_addr, 440.0);
    let mut now = t0;
    let mut reports = 0;
    while now < t0 + Duration::from_secs(16) {
        now += Duration::from_millis(20);
        let p = a.packet();
        m.handle_packet(now, la, a_addr, &p);
        m.handle_timeout(now);
        while let Some(t) = m.poll_transmit() {
            if t.rtcp {
                assert_eq!(
                    t.dest,
                    "127.0.0.1:41001".parse::<SocketAddr>().expect("addr")
                );
                let mut plain = Vec::new();
                a.rx.unprotect_rtcp(&t.bytes, &mut plain)
                    .expect("SRTCP authenticates");
                let kinds: Vec<_> = rtp::rtcp::parse_compound(&plain)
                    .map(|p| p.expect("parses").0)
                    .map(|p| matches!(p, rtp::rtcp::RtcpPacket::SenderReport(_)))
                    .collect();
                assert_eq!(
                    kinds.first(),
                    Some(&true),
                    "an SR first, since we send media"
                );
                reports += 1;
            }
        }
    }
    assert!(
        (2..=7).contains(&reports),
        "about one report per 5 s: {reports}"
    );
    assert_eq!(m.leg_stats(la).expect("stats").rtcp_out, reports);
}

#[test]
fn renegotiation_switches_codec_and_keys() {
    let (t0, mut m, a_addr, la) = one_leg();
    let mut cfg = leg(7, a_addr);
    cfg.codec = Codec::Pcma;
    cfg.payload_type = 8;
    m.update_leg(t0, la, cfg).expect("update");
    let k = keys(7);
    let mut rx = SrtpContext::new(SUITE, &k.local_key, &k.local_salt).expect("rx");
    let mut now = t0;
    let mut seen = 0;
    for _ in 0..10 {
        now += Duration::from_millis(20);
        m.handle_timeout(now);
        while let Some(t) = m.poll_transmit() {
            if t.rtcp {
                continue;
            }
            let mut plain = Vec::new();
            rx.unprotect_rtp(&t.bytes, &mut plain)
                .expect("sent with the new key");
            assert_eq!(
                RtpPacket::parse(&plain).expect("rtp").payload_type(),
                8,
                "PCMA after the update"
            );
            seen += 1;
        }
    }
    assert!(seen >= 8, "{seen}");
}

#[test]
fn old_key_packets_in_flight_survive_a_rekey_briefly() {
    let (t0, mut m, a_addr, la) = one_leg();
    let mut old = Peer::new(1, a_addr, 440.0);
    let first = old.packet();
    m.handle_packet(t0, la, a_addr, &first);
    m.update_leg(t0, la, leg(7, a_addr)).expect("re-key");
    let late = old.packet();
    m.handle_packet(t0 + Duration::from_millis(30), la, a_addr, &late);
    let s = m.leg_stats(la).expect("stats");
    assert_eq!(
        (s.packets_in, s.srtp_failures),
        (2, 0),
        "in flight with the old key: accepted"
    );
    let stale = old.packet();
    m.handle_packet(t0 + Duration::from_secs(3), la, a_addr, &stale);
    assert_eq!(
        m.leg_stats(la).expect("stats").srtp_failures,
        1,
        "the old key expires"
    );
    let mut new = Peer::new(7, a_addr, 440.0);
    let fresh = new.packet();
    m.handle_packet(t0 + Duration::from_secs(3), la, a_addr, &fresh);
    assert_eq!(
        m.leg_stats(la).expect("stats").packets_in,
        3,
        "the new key works"
    );
}

/// Found by the `engine_meeting` fuzz target (fuzz/corpus/engine_meeting/
/// regression-rtcp-mux-srtcp-on-the-rtp-port): after a renegotiation to rtcp-mux with new
/// keys, the first RTCP report goes to the RTP address with `rtcp: false`, so a peer that
/// took every `rtcp: false` transmit for SRTP failed to authenticate it. Under rtcp-mux the
/// receiver tells RTCP from RTP by the packet type (RFC 5761 §4); so demultiplexed,
/// everything the engine sends authenticates with the new key.
#[test]
fn under_rtcp_mux_srtcp_goes_to_the_rtp_port_and_authenticates() {
    let (t0, mut m, a_addr, la) = one_leg();
    let mut cfg = leg(7, a_addr);
    cfg.rtcp_mux = true;
    m.update_leg(t0, la, cfg).expect("re-key to rtcp-mux");
    let k = keys(7);
    let mut rx = SrtpContext::new(SUITE, &k.local_key, &k.local_salt).expect("rx");
    // The driver wakes up late, as in the fuzzer's input: a tick and a report are due.
    m.handle_timeout(t0 + Duration::from_secs(103));
    let (mut rtp, mut rtcp) = (0, 0);
    while let Some(t) = m.poll_transmit() {
        assert_eq!(
            t.dest, a_addr,
            "everything to the RTP address under rtcp-mux"
        );
        assert!(!t.rtcp, "nothing to a separate RTCP port under rtcp-mux");
        let mut plain = Vec::new();
        if rtp::packet::is_rtcp(&t.bytes) {
            rx.unprotect_rtcp(&t.bytes, &mut plain)
                .expect("SRTCP authenticates with the new key");
            rtcp += 1;
        } else {
            rx.unprotect_rtp(&t.bytes, &mut plain)
                .expect("SRTP authenticates with the new key");
            rtp += 1;
        }
    }
    assert_eq!(rtcp, 1, "one report is due");
    assert!(rtp >= 1, "a mixed frame is due");
}
