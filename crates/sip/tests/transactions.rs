//! Transaction layer on virtual time (RFC 3261 §17, RFC 6026).

use std::time::{Duration, Instant};

use sip::{
    Event, HeaderName, Message, Method, Peer, Request, Response, State, Timer, TransactionConfig,
    TransactionKey, TransactionLayer, Transmit, TransportKind,
};

fn peer(t: TransportKind, a: &str, b: &str) -> Peer {
    Peer {
        transport: t,
        local: a.parse().unwrap(),
        remote: b.parse().unwrap(),
    }
}

const UAC: &str = "192.0.2.1:5060";
const UAS: &str = "192.0.2.2:5060";

fn request(method: &str, branch: &str, transport: TransportKind) -> Request {
    let text = format!(
        "{method} sip:bob@192.0.2.2 SIP/2.0\r\n\
         Via: SIP/2.0/{} 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@192.0.2.1>;tag=a1\r\n\
         To: <sip:bob@192.0.2.2>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:alice@192.0.2.1>\r\n\
         Content-Length: 0\r\n\r\n",
        transport.via_token()
    );
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn drain_tx(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

fn drain_ev(l: &mut TransactionLayer) -> Vec<Event> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn parse(t: &Transmit) -> Message {
    Message::parse(&t.payload).unwrap()
}

/// Runs the clock in 10 ms steps until `until`, recording when transmits happen.
fn run(l: &mut TransactionLayer, start: Instant, until: Duration) -> Vec<(Duration, Transmit)> {
    let mut out = Vec::new();
    let mut t = Duration::ZERO;
    while t <= until {
        l.handle_timeout(start + t);
        for x in drain_tx(l) {
            out.push((t, x));
        }
        t += Duration::from_millis(10);
    }
    out
}

#[test]
fn invite_client_udp_timer_a_doubles_and_timer_b_at_64_t1() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 1);
    let key = l
        .send_request(
            now,
            request("INVITE", "z9hG4bKa", TransportKind::Udp),
            peer(TransportKind::Udp, UAC, UAS),
        )
        .unwrap();
    assert_eq!(drain_tx(&mut l).len(), 1);
    let sent = run(&mut l, now, Duration::from_secs(33));
    let times: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    // Timer A: 0.5, 1, 2, 4, 8, 16 s intervals (§17.1.1.2), no T2 cap for INVITE.
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500]);
    let ev = drain_ev(&mut l);
    assert!(matches!(ev[0], Event::Timeout { key: k, timer: Timer::B } if k == key));
    assert!(matches!(ev[1], Event::Terminated { .. }));
    assert!(l.is_empty());
}

#[test]
fn non_invite_client_timer_e_capped_at_t2_and_timer_f() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 1);
    l.send_request(
        now,
        request("OPTIONS", "z9hG4bKo", TransportKind::Udp),
        peer(TransportKind::Udp, UAC, UAS),
    )
    .unwrap();
    drain_tx(&mut l);
    let sent = run(&mut l, now, Duration::from_secs(33));
    let times: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(
        times,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(drain_ev(&mut l).iter().any(|e| matches!(
        e,
        Event::Timeout {
            timer: Timer::F,
            ..
        }
    )));
}

#[test]
fn timers_follow_configured_t1_t2() {
    let cfg = TransactionConfig {
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(400),
        ..TransactionConfig::default()
    };
    let now = Instant::now();
    let mut l = TransactionLayer::new(cfg, 1);
    l.send_request(
        now,
        request("OPTIONS", "z9hG4bKo", TransportKind::Udp),
        peer(TransportKind::Udp, UAC, UAS),
    )
    .unwrap();
    drain_tx(&mut l);
    let sent = run(&mut l, now, Duration::from_millis(6500));
    let times: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(&times[..5], &[100, 300, 700, 1100, 1500]);
    // Timer F = 64*T1 = 6.4 s.
    assert!(drain_ev(&mut l).iter().any(|e| matches!(
        e,
        Event::Timeout {
            timer: Timer::F,
            ..
        }
    )));
}

#[test]
fn reliable_transport_skips_retransmissions_but_keeps_timer_b() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 1);
    l.send_request(
        now,
        request("INVITE", "z9hG4bKt", TransportKind::Tcp),
        peer(TransportKind::Tcp, UAC, UAS),
    )
    .unwrap();
    assert_eq!(drain_tx(&mut l).len(), 1);
    assert!(run(&mut l, now, Duration::from_millis(31_990)).is_empty());
    assert!(drain_ev(&mut l).is_empty());
    l.handle_timeout(now + Duration::from_secs(32));
    assert!(matches!(
        drain_ev(&mut l)[0],
        Event::Timeout {
            timer: Timer::B,
            ..
        }
    ));
}

fn server_with_invite(t: TransportKind) -> (TransactionLayer, TransactionKey, Request, Instant) {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 2);
    let inv = request("INVITE", "z9hG4bKsrv", t);
    l.handle_message(now, Message::Request(inv.clone()), peer(t, UAS, UAC));
    let ev = drain_ev(&mut l);
    let Event::Request { key, .. } = ev[0] else {
        panic!("{ev:?}")
    };
    (l, key, inv, now)
}

#[test]
fn invite_server_sends_100_trying_after_200ms_only_if_tu_is_silent() {
    let (mut l, _key, _inv, now) = server_with_invite(TransportKind::Udp);
    l.handle_timeout(now + Duration::from_millis(199));
    assert!(drain_tx(&mut l).is_empty());
    assert_eq!(l.poll_timeout(), Some(now + Duration::from_millis(200)));
    l.handle_timeout(now + Duration::from_millis(200));
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    let Message::Response(r) = parse(&tx[0]) else {
        panic!()
    };
    assert_eq!(r.status, 100);
    assert!(
        r.headers.to().unwrap().tag().is_none(),
        "100 has no To tag (§8.2.6.2)"
    );

    // TU answers within 200 ms: no 100.
    let (mut l, key, inv, now) = server_with_invite(TransportKind::Udp);
    l.send_response(
        now + Duration::from_millis(50),
        key,
        Response::for_request(&inv, 180),
    )
    .unwrap();
    drain_tx(&mut l);
    l.handle_timeout(now + Duration::from_millis(300));
    assert!(drain_tx(&mut l).is_empty());
}

#[test]
fn retransmitted_invite_is_answered_from_the_transaction() {
    let (mut l, key, inv, now) = server_with_invite(TransportKind::Udp);
    let mut ringing = Response::for_request(&inv, 180);
    ringing
        .headers
        .set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=b1");
    l.send_response(now, key, ringing).unwrap();
    assert_eq!(drain_tx(&mut l).len(), 1);
    l.handle_message(
        now + Duration::from_millis(500),
        Message::Request(inv.clone()),
        peer(TransportKind::Udp, UAS, UAC),
    );
    assert!(
        drain_ev(&mut l).is_empty(),
        "the TU does not see the retransmission"
    );
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    let Message::Response(r) = parse(&tx[0]) else {
        panic!()
    };
    assert_eq!(r.status, 180);
    assert_eq!(r.headers.to().unwrap().tag(), Some("b1"));
}

#[test]
fn non_2xx_final_retransmits_with_timer_g_until_ack_is_absorbed() {
    let (mut l, key, inv, now) = server_with_invite(TransportKind::Udp);
    let mut busy = Response::for_request(&inv, 486);
    busy.headers
        .set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=b1");
    l.send_response(now, key, busy).unwrap();
    drain_tx(&mut l);
    let sent = run(&mut l, now, Duration::from_millis(12_000));
    let times: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500],
        "Timer G doubles up to T2"
    );
    // The ACK (same branch, §17.1.1.3) is absorbed: no event, no more retransmissions.
    let mut ack = request("ACK", "z9hG4bKsrv", TransportKind::Udp);
    ack.headers.set(HeaderName::CSeq, "1 ACK");
    l.handle_message(
        now + Duration::from_secs(12),
        Message::Request(ack),
        peer(TransportKind::Udp, UAS, UAC),
    );
    assert!(drain_ev(&mut l).is_empty());
    assert_eq!(l.state(key), Some(State::Confirmed));
    let later = run(&mut l, now, Duration::from_millis(16_000));
    assert!(later.is_empty());
    // Timer I (T4) ends it.
    l.handle_timeout(now + Duration::from_secs(18));
    assert!(matches!(drain_ev(&mut l)[..], [Event::Terminated { .. }]));
}

#[test]
fn timer_h_reports_a_missing_ack() {
    let (mut l, key, inv, now) = server_with_invite(TransportKind::Udp);
    l.send_response(now, key, Response::for_request(&inv, 486))
        .unwrap();
    run(&mut l, now, Duration::from_secs(33));
    assert!(matches!(
        drain_ev(&mut l)[0],
        Event::Timeout {
            timer: Timer::H,
            ..
        }
    ));
}

#[test]
fn client_acks_non_2xx_itself_and_absorbs_retransmissions() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 1);
    let inv = request("INVITE", "z9hG4bKc", TransportKind::Udp);
    let key = l
        .send_request(now, inv.clone(), peer(TransportKind::Udp, UAC, UAS))
        .unwrap();
    drain_tx(&mut l);
    let mut busy = Response::for_request(&inv, 486);
    busy.headers
        .set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=b1");
    l.handle_message(
        now,
        Message::Response(busy.clone()),
        peer(TransportKind::Udp, UAC, UAS),
    );
    let tx = drain_tx(&mut l);
    let Message::Request(ack) = parse(&tx[0]) else {
        panic!()
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.headers.to().unwrap().tag(), Some("b1"));
    assert_eq!(ack.headers.top_via().unwrap().branch(), Some("z9hG4bKc"));
    assert_eq!(ack.headers.cseq().unwrap().method, "ACK");
    assert!(
        matches!(&drain_ev(&mut l)[..], [Event::Response { response, .. }] if response.status == 486)
    );
    l.handle_message(
        now,
        Message::Response(busy),
        peer(TransportKind::Udp, UAC, UAS),
    );
    assert_eq!(drain_tx(&mut l).len(), 1, "ACK re-sent");
    assert!(drain_ev(&mut l).is_empty(), "retransmission absorbed");
    l.handle_timeout(now + Duration::from_secs(32));
    assert_eq!(l.state(key), None, "Timer D");
}

/// Two layers wired back to back over an in-memory network.
struct Pair {
    uac: TransactionLayer,
    uas: TransactionLayer,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            uac: TransactionLayer::new(TransactionConfig::default(), 10),
            uas: TransactionLayer::new(TransactionConfig::default(), 20),
            now: Instant::now(),
        }
    }

    /// Delivers everything in flight, both ways, until quiet.
    fn pump(&mut self) {
        loop {
            let a: Vec<_> = drain_tx(&mut self.uac);
            let b: Vec<_> = drain_tx(&mut self.uas);
            if a.is_empty() && b.is_empty() {
                break;
            }
            for t in a {
                self.uas
                    .handle_datagram(self.now, &t.payload, peer(TransportKind::Udp, UAS, UAC))
                    .unwrap();
            }
            for t in b {
                self.uac
                    .handle_datagram(self.now, &t.payload, peer(TransportKind::Udp, UAC, UAS))
                    .unwrap();
            }
        }
    }
}

#[test]
fn cancel_racing_a_200() {
    let mut p = Pair::new();
    let branch = p.uac.new_branch();
    let inv = request("INVITE", &branch, TransportKind::Udp);
    let ikey = p
        .uac
        .send_request(p.now, inv, peer(TransportKind::Udp, UAC, UAS))
        .unwrap();
    p.pump();
    let Some(Event::Request {
        key: skey,
        request: sreq,
        ..
    }) = p.uas.poll_event()
    else {
        panic!()
    };
    let mut ringing = Response::for_request(&sreq, 180);
    ringing
        .headers
        .set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=b1");
    p.uas.send_response(p.now, skey, ringing).unwrap();
    p.pump();
    assert!(
        matches!(p.uac.poll_event(), Some(Event::Response { response, .. }) if response.status == 180)
    );

    // The UAS answers 200 while the UAC's CANCEL is in flight.
    let mut ok = Response::for_request(&sreq, 200);
    ok.headers.set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=b1");
    p.uas.send_response(p.now, skey, ok).unwrap();
    let ckey = p
        .uac
        .cancel(p.now, ikey)
        .unwrap()
        .expect("sent at once after a 180");
    p.pump();

    // UAS: the CANCEL matches the INVITE, which is already Accepted: answer 200, no 487.
    let Some(Event::Cancel {
        key: cancel_key,
        request: creq,
        invite,
        ..
    }) = p.uas.poll_event()
    else {
        panic!()
    };
    assert_eq!(invite, Some(skey));
    assert_eq!(p.uas.state(skey), Some(State::Accepted));
    assert!(
        p.uas
            .send_response(p.now, skey, Response::for_request(&sreq, 487))
            .is_err(),
        "final already sent"
    );
    p.uas
        .send_response(p.now, cancel_key, Response::for_request(&creq, 200))
        .unwrap();
    p.pump();

    // UAC: 200 for the INVITE (Accepted, RFC 6026) and 200 for the CANCEL.
    let evs = drain_ev(&mut p.uac);
    assert!(evs.iter().any(
        |e| matches!(e, Event::Response { key, response } if *key == ikey && response.status == 200)
    ));
    assert!(evs.iter().any(
        |e| matches!(e, Event::Response { key, response } if *key == ckey && response.status == 200)
    ));
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Event::Response { response, .. } if response.status == 487))
    );
    assert_eq!(p.uac.state(ikey), Some(State::Accepted));

    // The TU's ACK for the 2xx reaches the UAS TU via the Accepted transaction.
    let mut ack = request("ACK", &p.uac.new_branch(), TransportKind::Udp);
    ack.headers
        .set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=b1");
    p.uac
        .send_stateless(peer(TransportKind::Udp, UAC, UAS), &Message::Request(ack));
    p.pump();
    assert!(
        drain_ev(&mut p.uas)
            .iter()
            .any(|e| matches!(e, Event::Ack { .. }))
    );
}

#[test]
fn retransmitted_2xx_reaches_the_tu_in_accepted() {
    let mut p = Pair::new();
    let branch = p.uac.new_branch();
    let ikey = p
        .uac
        .send_request(
            p.now,
            request("INVITE", &branch, TransportKind::Udp),
            peer(TransportKind::Udp, UAC, UAS),
        )
        .unwrap();
    p.pump();
    let Some(Event::Request { key, request, .. }) = p.uas.poll_event() else {
        panic!()
    };
    let mut ok = Response::for_request(&request, 200);
    ok.headers.set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=b1");
    p.uas.send_response(p.now, key, ok.clone()).unwrap();
    p.pump();
    p.uas.send_response(p.now, key, ok).unwrap();
    p.pump();
    let n = drain_ev(&mut p.uac)
        .iter()
        .filter(|e| matches!(e, Event::Response { key, response } if *key == ikey && response.status == 200))
        .count();
    assert_eq!(n, 2);
    // Timer M / L end both sides after 64*T1.
    p.uac.handle_timeout(p.now + Duration::from_secs(32));
    p.uas.handle_timeout(p.now + Duration::from_secs(32));
    assert!(p.uac.is_empty() && p.uas.is_empty());
}

#[test]
fn per_source_limit_answers_503() {
    let cfg = TransactionConfig {
        max_transactions_per_source: 2,
        ..TransactionConfig::default()
    };
    let now = Instant::now();
    let mut l = TransactionLayer::new(cfg, 3);
    for i in 0..3 {
        let r = request("OPTIONS", &format!("z9hG4bKlim{i}"), TransportKind::Udp);
        l.handle_message(now, Message::Request(r), peer(TransportKind::Udp, UAS, UAC));
    }
    assert_eq!(l.len(), 2);
    let tx = drain_tx(&mut l);
    let Message::Response(r) = parse(&tx[0]) else {
        panic!()
    };
    assert_eq!(r.status, 503);
    // Another source is not affected.
    let r = request("OPTIONS", "z9hG4bKother", TransportKind::Udp);
    l.handle_message(
        now,
        Message::Request(r),
        peer(TransportKind::Udp, UAS, "198.51.100.7:5060"),
    );
    assert_eq!(l.len(), 3);
}

#[test]
fn rfc2543_requests_match_without_magic_cookie() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 3);
    let inv = request("INVITE", "oldbranch", TransportKind::Udp);
    l.handle_message(
        now,
        Message::Request(inv.clone()),
        peer(TransportKind::Udp, UAS, UAC),
    );
    let Some(Event::Request { key, .. }) = l.poll_event() else {
        panic!()
    };
    l.send_response(now, key, Response::for_request(&inv, 404))
        .unwrap();
    drain_tx(&mut l);
    l.handle_message(
        now,
        Message::Request(inv),
        peer(TransportKind::Udp, UAS, UAC),
    );
    assert_eq!(
        drain_tx(&mut l).len(),
        1,
        "retransmission matched by RFC 2543 rules"
    );
    assert!(l.poll_event().is_none());
}

#[test]
fn non_invite_server_resends_final_and_waits_timer_j() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 3);
    let r = request("OPTIONS", "z9hG4bKnis", TransportKind::Udp);
    l.handle_message(
        now,
        Message::Request(r.clone()),
        peer(TransportKind::Udp, UAS, UAC),
    );
    let Some(Event::Request { key, .. }) = l.poll_event() else {
        panic!()
    };
    l.send_response(now, key, Response::for_request(&r, 200))
        .unwrap();
    drain_tx(&mut l);
    l.handle_message(now, Message::Request(r), peer(TransportKind::Udp, UAS, UAC));
    assert_eq!(drain_tx(&mut l).len(), 1);
    l.handle_timeout(now + Duration::from_millis(31_999));
    assert_eq!(l.state(key), Some(State::Completed));
    l.handle_timeout(now + Duration::from_secs(32));
    assert_eq!(l.state(key), None);
}

#[test]
fn malformed_datagram_gets_400_from_the_layer() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 3);
    let bad = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
    assert!(
        l.handle_datagram(now, bad, peer(TransportKind::Udp, UAS, UAC))
            .is_err()
    );
    let tx = drain_tx(&mut l);
    let Message::Response(r) = parse(&tx[0]) else {
        panic!()
    };
    assert_eq!(r.status, 400);
    assert!(l.is_empty());
}

#[test]
fn cancel_waits_for_a_provisional_and_bounds_the_invite() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 1);
    let inv = request("INVITE", "z9hG4bKcw", TransportKind::Tcp);
    let key = l
        .send_request(now, inv.clone(), peer(TransportKind::Tcp, UAC, UAS))
        .unwrap();
    drain_tx(&mut l);
    assert_eq!(
        l.cancel(now, key),
        Ok(None),
        "no provisional yet: deferred (§9.1)"
    );
    assert!(drain_tx(&mut l).is_empty());
    let trying = Response::for_request(&inv, 100);
    l.handle_message(
        now,
        Message::Response(trying),
        peer(TransportKind::Tcp, UAC, UAS),
    );
    let tx = drain_tx(&mut l);
    let Message::Request(c) = parse(&tx[0]) else {
        panic!()
    };
    assert_eq!(c.method, Method::Cancel);
    assert_eq!(c.headers.top_via().unwrap().branch(), Some("z9hG4bKcw"));
    assert_eq!(c.headers.cseq().unwrap().seq, 1);
    // The UAS never sends a final response: the INVITE ends after 64*T1.
    l.handle_timeout(now + Duration::from_secs(32));
    assert!(
        drain_ev(&mut l)
            .iter()
            .any(|e| matches!(e, Event::Timeout { key: k, .. } if *k == key))
    );
}
