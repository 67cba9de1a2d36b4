//! Parse/print of the seed INVITE's SDP beside webrtc-sdp (Mozilla), and our full
//! answer path (parse + negotiate + print), which has no peer.
//!
//! `cargo bench -p sdp --bench sdp`

use criterion::{Criterion, criterion_group, criterion_main};
use rtp::sdes::CryptoAttribute;
use rtp::srtp::SrtpSuite;
use sdp::{LocalTransport, MediaConfig, MediaSession, SessionDescription};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

/// The seed INVITE's SDP with `IPaddress` → 198.51.100.10 and real keys.
fn seed() -> String {
    let ip = "198.51.100.10";
    let mut s = format!(
        "v=0\r\no=- 3775321410 3775321410 IN IP4 {ip}\r\ns=pjmedia\r\nb=AS:117\r\nt=0 0\r\n\
         a=X-nat:0\r\nm=audio 4000 RTP/SAVP 0 3 8 9 125 101\r\nc=IN IP4 {ip}\r\n\
         b=TIAS:96000\r\na=rtcp:4001 IN IP4 {ip}\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:3 GSM/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n\
         a=rtpmap:125 opus/48000/2\r\na=fmtp:125 useinbandfec=1\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    );
    for (i, suite) in SrtpSuite::ALL.into_iter().enumerate() {
        let tag = u32::try_from(i + 1).unwrap();
        s.push_str(&format!(
            "a=crypto:{}\r\n",
            CryptoAttribute::generate(tag, suite).to_sdp_value()
        ));
    }
    s
}

fn bench(c: &mut Criterion) {
    let text = seed();
    // Both parsers accept the input.
    let ours: SessionDescription = text.parse().unwrap();
    let theirs = webrtc_sdp::parse_sdp(&text, false).unwrap();

    let mut g = c.benchmark_group("seed_sdp");
    g.bench_function("parse/sdp", |b| {
        b.iter(|| black_box(SessionDescription::parse(black_box(text.as_bytes())).unwrap()));
    });
    g.bench_function("parse/webrtc-sdp", |b| {
        b.iter(|| black_box(webrtc_sdp::parse_sdp(black_box(&text), false).unwrap()));
    });
    g.bench_function("print/sdp", |b| b.iter(|| black_box(ours.to_string())));
    g.bench_function("print/webrtc-sdp", |b| {
        b.iter(|| black_box(theirs.to_string()))
    });
    let local = LocalTransport {
        address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        rtp_port: 20000,
        rtcp_port: None,
    };
    g.bench_function("answer/parse+negotiate+print", |b| {
        b.iter(|| {
            let mut leg = MediaSession::new(MediaConfig::default(), local, 1);
            let answer = leg.answer_body(black_box(text.as_bytes())).unwrap();
            black_box(answer.sdp.to_string())
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
