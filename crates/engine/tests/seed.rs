//! Seeded randomness on virtual time: two meetings with the same seed and the same inputs
//! send the same bytes (SSRCs, sequence numbers, RTP timestamps, RTCP intervals and CNAME)
//! and answer a browser's offer with the same ICE credentials, SSRCs and session id; a
//! different seed changes them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use codec::Codec;
use engine::{Direction, EngineConfig, LegConfig, MeetingMedia};
use rtp::packet::{RtpPacket, is_rtcp};
use str0m::media::{Direction as Str0mDirection, MediaKind};
use str0m::{Candidate, RtcConfig};

const SERVER: &str = "10.0.0.1:3478";

fn plain_leg(codec: Codec, payload_type: u8, addr: &str) -> LegConfig {
    LegConfig {
        codec,
        payload_type,
        dtmf_payload_type: Some(101),
        dtmf_out: Some(engine::DtmfFormat {
            payload_type: 101,
            clock_rate: 8000,
        }),
        remote_ptime: None,
        srtp: None,
        remote_rtp: Some(addr.parse().expect("addr")),
        remote_rtcp: None,
        rtcp_mux: false,
        direction: Direction::SENDRECV,
        muted: false,
        dtx: false,
    }
}

/// A browser's offer (audio sendrecv, video inactive), made once and fed to every run.
fn browser_offer(now: Instant) -> String {
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(now);
    rtc.add_local_candidate(
        Candidate::host("10.0.0.2:50000".parse().expect("a"), "udp").expect("c"),
    );
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Str0mDirection::SendRecv, None, None, None);
    api.add_media(MediaKind::Video, Str0mDirection::Inactive, None, None, None);
    let (offer, _) = api.apply().expect("offer");
    offer.to_sdp_string()
}

/// What one run shows of its randomness.
#[derive(Debug, PartialEq)]
struct Run {
    /// Every datagram of the plain RTP legs: (ms since start, destination, bytes).
    wire: Vec<(u128, SocketAddr, Vec<u8>)>,
    /// The WebRTC answer without its `a=fingerprint` (the DTLS certificate is not seeded).
    answer: String,
    ufrag: String,
}

impl Run {
    /// (SSRC, sequence number, timestamp) of the first RTP packet to `dest`.
    fn first_rtp(&self, dest: &str) -> (u32, u16, u32) {
        let dest: SocketAddr = dest.parse().expect("addr");
        let (_, _, bytes) = self
            .wire
            .iter()
            .find(|(_, d, b)| *d == dest && !is_rtcp(b))
            .expect("an RTP packet");
        let p = RtpPacket::parse(bytes).expect("RTP");
        (p.ssrc(), p.sequence_number(), p.timestamp())
    }

    fn rtcp_count(&self) -> usize {
        self.wire.iter().filter(|(_, _, b)| is_rtcp(b)).count()
    }
}

/// Two plain RTP legs (one talking), a codec change on the second, and a WebRTC leg, over
/// 12 s of virtual time.
fn run(seed: u64, t0: Instant, offer: &str) -> Run {
    let mut m = MeetingMedia::new(
        t0,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        seed,
    );
    let a_addr: SocketAddr = "192.0.2.1:40000".parse().expect("addr");
    let a = m
        .add_leg(t0, plain_leg(Codec::Pcmu, 0, "192.0.2.1:40000"))
        .expect("leg");
    let b = m
        .add_leg(t0, plain_leg(Codec::Pcmu, 0, "192.0.2.2:40000"))
        .expect("leg");
    let thread_state = fastrand::get_seed();
    let answer = m
        .add_webrtc_leg(t0, offer, SERVER.parse().expect("addr"), false)
        .expect("answer");
    assert_eq!(
        fastrand::get_seed(),
        thread_state,
        "the thread's fastrand state is left as it was"
    );
    let mut wire = Vec::new();
    let mut now = t0;
    let mut seq = 0u16;
    let mut next_send = t0;
    let mut changed = false;
    while now < t0 + Duration::from_secs(12) {
        now = m.poll_timeout().min(next_send).max(now);
        if now >= next_send {
            // Leg A talks: a PCMU packet of a square wave every 20 ms.
            let payload: Vec<u8> = (0..160)
                .map(|i| if i % 20 < 10 { 0x10 } else { 0x90 })
                .collect();
            let mut pkt = Vec::new();
            rtp::packet::RtpWriter {
                marker: seq == 0,
                payload_type: 0,
                sequence_number: seq,
                timestamp: u32::from(seq) * 160,
                ssrc: 0x1234_5678,
                csrcs: &[],
                extension: None,
                padding: 0,
            }
            .write(&payload, &mut pkt)
            .expect("write");
            m.handle_packet(now, a, a_addr, &pkt);
            seq = seq.wrapping_add(1);
            next_send += Duration::from_millis(20);
        }
        if !changed && now >= t0 + Duration::from_secs(1) {
            changed = true;
            m.update_leg(now, b, plain_leg(Codec::Pcma, 8, "192.0.2.2:40000"))
                .expect("update");
        }
        m.handle_timeout(now);
        while let Some(t) = m.poll_transmit() {
            if t.leg == a || t.leg == b {
                wire.push(((now - t0).as_millis(), t.dest, t.bytes));
            }
        }
        now += Duration::from_millis(1);
    }
    let answer_sdp = answer
        .sdp
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint:"))
        .collect::<Vec<_>>()
        .join("\n");
    Run {
        wire,
        answer: answer_sdp,
        ufrag: answer.ufrag,
    }
}

#[test]
fn the_same_seed_and_inputs_give_the_same_output_and_another_seed_does_not() {
    let t0 = Instant::now();
    let offer = browser_offer(t0);
    let one = run(7, t0, &offer);
    let two = run(7, t0, &offer);
    let other = run(8, t0, &offer);

    // Leg B hears leg A, leg A hears the mix without itself; both send RTCP.
    assert!(one.wire.len() > 500, "{} datagrams", one.wire.len());
    assert!(one.rtcp_count() >= 2, "{} RTCP", one.rtcp_count());
    assert!(one.answer.contains(&format!("a=ice-ufrag:{}", one.ufrag)));
    assert!(one.answer.contains("a=ssrc:"), "{}", one.answer);

    assert_eq!(
        one.first_rtp("192.0.2.2:40000"),
        two.first_rtp("192.0.2.2:40000")
    );
    assert_eq!(one.ufrag, two.ufrag);
    assert_eq!(one.answer, two.answer);
    assert!(one == two, "same seed, same inputs: every byte the same");

    let (ssrc, seq, ts) = one.first_rtp("192.0.2.2:40000");
    let (ssrc2, seq2, ts2) = other.first_rtp("192.0.2.2:40000");
    assert_ne!(ssrc, ssrc2);
    assert!(seq != seq2 || ts != ts2);
    assert_ne!(one.ufrag, other.ufrag);
    let ssrc_lines = |sdp: &str| {
        sdp.lines()
            .filter(|l| l.starts_with("a=ssrc:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_ne!(ssrc_lines(&one.answer), ssrc_lines(&other.answer));
}
