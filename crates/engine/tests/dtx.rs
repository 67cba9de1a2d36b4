//! Opus DTX follows the leg's offer (`LegConfig::dtx`, from `usedtx=1`): in a silent
//! meeting a listener whose offer allows DTX gets the encoder's DTX frames (TOC-only
//! packets of one or two bytes, RFC 6716 §3.2.1), a listener without it gets coded
//! silence; a re-negotiation that drops `usedtx` turns it off.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use codec::{Channels, Codec};
use engine::{Direction, EngineConfig, LegConfig, LegId, MeetingMedia};
use rtp::packet::{RtpPacket, is_rtcp};

fn leg(codec: Codec, payload_type: u8, addr: SocketAddr, dtx: bool) -> LegConfig {
    LegConfig {
        codec,
        payload_type,
        dtmf_payload_type: None,
        dtmf_out: None,
        remote_ptime: None,
        srtp: None,
        remote_rtp: Some(addr),
        remote_rtcp: None,
        rtcp_mux: false,
        direction: Direction::SENDRECV,
        muted: false,
        dtx,
    }
}

/// Runs the meeting from `from` to `to` on virtual time; returns the RTP payload sizes
/// sent to each address in the second half of that span (the encoders have settled).
fn run(m: &mut MeetingMedia, from: Instant, to: Instant, dests: &[SocketAddr]) -> Vec<Vec<usize>> {
    let settled = from + (to - from) / 2;
    let mut sizes = vec![Vec::new(); dests.len()];
    let mut now = from;
    while now < to {
        now = m.poll_timeout().max(now);
        m.handle_timeout(now);
        while let Some(t) = m.poll_transmit() {
            if now < settled || t.rtcp || is_rtcp(&t.bytes) {
                continue;
            }
            if let Some(i) = dests.iter().position(|d| *d == t.dest) {
                let p = RtpPacket::parse(&t.bytes).expect("RTP");
                sizes[i].push(p.payload().len());
            }
        }
    }
    sizes
}

fn dtx_frames(sizes: &[usize]) -> usize {
    sizes.iter().filter(|&&n| n <= 2).count()
}

#[test]
fn opus_dtx_follows_the_legs_offer() {
    let t0 = Instant::now();
    let mut m = MeetingMedia::new(
        t0,
        Duration::from_secs(1_800_000_000),
        EngineConfig::default(),
        7,
    );
    let opus = Codec::Opus(Channels::Mono);
    let a: SocketAddr = "192.0.2.1:40000".parse().expect("addr");
    let b: SocketAddr = "192.0.2.2:40000".parse().expect("addr");
    let c: SocketAddr = "192.0.2.3:40000".parse().expect("addr");
    let la: LegId = m.add_leg(t0, leg(opus, 111, a, true)).expect("leg a");
    m.add_leg(t0, leg(opus, 111, b, false)).expect("leg b");
    // A third leg, so that the meeting mixes rather than relays between two legs.
    m.add_leg(t0, leg(Codec::Pcmu, 0, c, false)).expect("leg c");

    let t1 = t0 + Duration::from_secs(2);
    let sizes = run(&mut m, t0, t1, &[a, b]);
    let (sa, sb) = (&sizes[0], &sizes[1]);
    assert!(
        !sa.is_empty() && !sb.is_empty(),
        "both listeners hear the mix"
    );
    assert!(
        dtx_frames(sa) * 2 > sa.len(),
        "the DTX listener gets mostly DTX frames: {sa:?}"
    );
    assert_eq!(dtx_frames(sb), 0, "no DTX without usedtx: {sb:?}");

    // A re-INVITE without usedtx: coded silence from then on.
    m.update_leg(t1, la, leg(opus, 111, a, false))
        .expect("update");
    let sizes = run(&mut m, t1, t1 + Duration::from_secs(2), &[a]);
    assert!(!sizes[0].is_empty(), "the listener still hears the mix");
    assert_eq!(dtx_frames(&sizes[0]), 0, "DTX off: {:?}", sizes[0]);
}
