//! Parser, printer and transaction-layer throughput, with `rsip` (crates.io) parsing the
//! same message in the same run as a peer.
//!
//! Run: `cargo bench -p sip --bench sip -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rsip::prelude::*;
use sip::{
    Event, Message, ParseLimits, Peer, Response, TransactionConfig, TransactionLayer,
    TransportKind, parse_datagram,
};

const SDP: &str = "v=0\r
o=- 3775321410 3775321410 IN IP4 198.51.100.10\r
s=pjmedia\r
b=AS:117\r
t=0 0\r
a=X-nat:0\r
m=audio 4000 RTP/SAVP 0 3 8 9 125 101\r
c=IN IP4 198.51.100.10\r
b=TIAS:96000\r
a=rtcp:4001 IN IP4 198.51.100.10\r
a=sendrecv\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:3 GSM/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:9 G722/8000\r
a=rtpmap:125 opus/48000/2\r
a=fmtp:125 useinbandfec=1\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=crypto:1 AEAD_AES_256_GCM inline:EXAMPLE\r
a=crypto:2 AEAD_AES_256_GCM_8 inline:EXAMPLE\r
a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:EXAMPLE\r
a=crypto:4 AES_256_CM_HMAC_SHA1_32 inline:EXAMPLE\r
a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:EXAMPLE\r
a=crypto:6 AES_CM_128_HMAC_SHA1_32 inline:EXAMPLE\r
";

/// The INVITE from the seed spec, with real addresses and a correct Content-Length.
fn seed_invite(branch: &str) -> Vec<u8> {
    format!(
        "INVITE sip:+17035550122@abcdef1ghij2klmno3pqr4.voiceconnector.chime.aws;transport=tls;X-chime-join-token=join-token SIP/2.0\r
Via: SIP/2.0/TLS 198.51.100.10:12345;rport;branch={branch};alias\r
Max-Forwards: 70\r
From: sip:+12065550100@198.51.100.10;tag=tag\r
To: sip:+17035550122@abcdef1ghij2klmno3pqr4.voiceconnector.chime.aws;X-chime-join-token=join-token\r
Contact: <sip:+12065550100@198.51.100.10:54321;transport=TLS;ob>\r
Call-ID: a1234567-89b0-1c2d-e34f-5gh678j9k2lm\r
CSeq: 6214 INVITE\r
Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS\r
Supported: replaces, 100rel, timer, norefersub\r
Session-Expires: 1800\r
Min-SE: 90\r
Content-Type: application/sdp\r
Content-Length: {}\r
\r
{SDP}",
        SDP.len()
    )
    .into_bytes()
}

fn parse(c: &mut Criterion) {
    let data = seed_invite("z9hG4bKbench");
    let limits = ParseLimits::default();
    let mut g = c.benchmark_group("parse_seed_invite");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sip", |b| {
        b.iter(|| parse_datagram(black_box(&data), &limits).unwrap())
    });
    g.bench_function("sip+typed", |b| {
        b.iter(|| {
            let m = parse_datagram(black_box(&data), &limits).unwrap();
            let h = m.headers();
            let v = h.top_via().unwrap();
            black_box((
                v.branch(),
                h.from().unwrap().tag(),
                h.to().unwrap().uri.user(),
                h.cseq().unwrap().seq,
                h.call_id(),
                h.contact().unwrap().uri.port(),
            ));
        })
    });
    g.bench_function("rsip", |b| {
        b.iter(|| rsip::Request::try_from(black_box(&data[..])).unwrap())
    });
    g.bench_function("rsip+typed", |b| {
        b.iter(|| {
            let r = rsip::Request::try_from(black_box(&data[..])).unwrap();
            let v = r.via_header().unwrap().typed().unwrap();
            let f = r.from_header().unwrap().typed().unwrap();
            let t = r.to_header().unwrap().typed().unwrap();
            let cs = r.cseq_header().unwrap().typed().unwrap();
            let ct = r.contact_header().unwrap().typed().unwrap();
            black_box((
                v.branch().cloned(),
                f.tag().cloned(),
                t.uri.user().map(|u| u.to_owned()),
                cs.seq,
                r.call_id_header().unwrap().value().len(),
                ct.uri.host_with_port.port,
            ));
        })
    });
    g.finish();

    let msg = parse_datagram(&data, &limits).unwrap();
    let rs = rsip::Request::try_from(&data[..]).unwrap();
    let mut g = c.benchmark_group("print_seed_invite");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(4096);
    g.bench_function("sip", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&msg).write_to(&mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("rsip", |b| b.iter(|| black_box(black_box(&rs).to_string())));
    g.finish();
}

fn transactions(c: &mut Criterion) {
    const N: usize = 1000;
    let peer = Peer {
        transport: TransportKind::Udp,
        local: "192.0.2.1:5060".parse().unwrap(),
        remote: "198.51.100.10:5060".parse().unwrap(),
    };
    let datagrams: Vec<Vec<u8>> = (0..N)
        .map(|i| seed_invite(&format!("z9hG4bKb{i:06}")))
        .collect();
    let cfg = TransactionConfig {
        max_transactions_per_source: usize::MAX,
        ..TransactionConfig::default()
    };
    let mut g = c.benchmark_group("server_invite_transactions");
    g.throughput(Throughput::Elements(N as u64));
    // Datagram in -> parse -> new server transaction -> TU event -> 200 OK printed out, then
    // every transaction ended by its timers.
    g.bench_function("datagram_to_200", |b| {
        let mut layer = TransactionLayer::new(cfg, 7);
        let mut now = Instant::now();
        b.iter(|| {
            for d in &datagrams {
                layer.handle_datagram(now, d, peer).unwrap();
                while let Some(ev) = layer.poll_event() {
                    if let Event::Request { key, request, .. } = ev {
                        let mut ok = Response::for_request(&request, 200);
                        ok.headers.set(
                            sip::HeaderName::To,
                            "<sip:+17035550122@vc.example.com>;tag=b1",
                        );
                        layer.send_response(now, key, ok).unwrap();
                    }
                }
                while let Some(t) = layer.poll_transmit() {
                    black_box(t);
                }
            }
            now += Duration::from_secs(40);
            layer.handle_timeout(now);
            while layer.poll_event().is_some() {}
            assert!(layer.is_empty());
        })
    });
    g.finish();
    let _ = Message::parse(&datagrams[0]).unwrap();
}

/// Full call through two in-memory user agents: INVITE (with the seed SDP) -> 200 -> ACK ->
/// BYE -> 200, every message printed and parsed on the way.
fn calls(c: &mut Criterion) {
    use sip::{Body, OutgoingCall, UaConfig, UaEvent, Uri, UserAgent};
    const N: usize = 200;
    let pa = Peer {
        transport: TransportKind::Udp,
        local: "192.0.2.1:5060".parse().unwrap(),
        remote: "192.0.2.2:5060".parse().unwrap(),
    };
    let pb = Peer {
        local: pa.remote,
        remote: pa.local,
        ..pa
    };
    let mut g = c.benchmark_group("ua_calls");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("invite_200_ack_bye", |b| {
        let mut a = UserAgent::new(UaConfig::default(), 1);
        let mut bb = UserAgent::new(UaConfig::default(), 2);
        let mut now = Instant::now();
        let target = Uri::parse("sip:+17035550122@192.0.2.2").unwrap();
        b.iter(|| {
            for _ in 0..N {
                let call = a
                    .invite(
                        now,
                        pa,
                        OutgoingCall {
                            target: target.clone(),
                            from: "<sip:+12065550100@192.0.2.1>".into(),
                            to: "<sip:+17035550122@192.0.2.2>".into(),
                            body: Some(Body::sdp(SDP)),
                            headers: Vec::new(),
                            credentials: None,
                        },
                    )
                    .unwrap();
                let mut answered = false;
                loop {
                    let mut moved = false;
                    while let Some(t) = a.poll_transmit() {
                        moved = true;
                        let _ = bb.handle_datagram(now, &t.payload, pb);
                    }
                    while let Some(t) = bb.poll_transmit() {
                        moved = true;
                        let _ = a.handle_datagram(now, &t.payload, pa);
                    }
                    while let Some(ev) = bb.poll_event() {
                        if let UaEvent::IncomingCall { call, .. } = ev {
                            bb.answer(now, call, 200, Some(Body::sdp(SDP))).unwrap();
                            moved = true;
                        }
                    }
                    while let Some(ev) = a.poll_event() {
                        if matches!(ev, UaEvent::Answered { .. }) && !answered {
                            answered = true;
                            a.hangup(now, call).unwrap();
                            moved = true;
                        }
                    }
                    if !moved {
                        break;
                    }
                }
                assert!(answered);
            }
            now += Duration::from_secs(40);
            a.handle_timeout(now);
            bb.handle_timeout(now);
            while a.poll_event().is_some() || bb.poll_event().is_some() {}
            assert_eq!((a.calls(), bb.calls()), (0, 0));
        })
    });
    g.finish();
}

criterion_group!(benches, parse, transactions, calls);
criterion_main!(benches);
