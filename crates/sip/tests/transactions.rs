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

// ----- budgets (per source and global, count and bytes) and the reflection guard -----

use sip::transaction::{
    GLOBAL_LIMIT_WARNING, SOURCE_LIMIT_WARNING, TXN_OVERHEAD, VERIFIED_TTL, source_key,
};

/// `method` from `from` (an address literal) with a branch, a To without tag and a body of
/// `body` bytes, printed.
fn wire(method: &str, branch: &str, from: &str, body: usize) -> Vec<u8> {
    let mut r = request(method, branch, TransportKind::Udp);
    r.headers.set(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {from};branch={branch}"),
    );
    if body > 0 {
        r.headers.set(HeaderName::ContentType, "application/sdp");
        r.body = vec![b'x'; body];
    }
    r.to_bytes()
}

/// Feeds `bytes` from `from` and returns the new server transaction, if one was made.
fn feed(
    l: &mut TransactionLayer,
    now: Instant,
    bytes: &[u8],
    from: &str,
) -> Option<TransactionKey> {
    let _ = l.handle_datagram(now, bytes, peer(TransportKind::Udp, UAS, from));
    drain_ev(l).into_iter().find_map(|e| match e {
        Event::Request { key, .. } => Some(key),
        _ => None,
    })
}

fn status_and_warning(t: &Transmit) -> (u16, String, String) {
    let Message::Response(r) = parse(t) else {
        panic!("not a response")
    };
    (
        r.status,
        r.headers.get(HeaderName::Warning).unwrap_or("").to_owned(),
        r.headers
            .get(HeaderName::RetryAfter)
            .unwrap_or("")
            .to_owned(),
    )
}

#[test]
fn per_source_budget_counts_transactions() {
    let cfg = TransactionConfig {
        max_transactions_per_source: 3,
        ..TransactionConfig::default()
    };
    let now = Instant::now();
    let mut l = TransactionLayer::new(cfg, 3);
    for i in 0..3 {
        let b = wire("OPTIONS", &format!("z9hG4bKc{i}"), UAC, 0);
        assert!(feed(&mut l, now, &b, UAC).is_some());
    }
    assert!(drain_tx(&mut l).is_empty());
    let b = wire("OPTIONS", "z9hG4bKc3", UAC, 0);
    assert!(feed(&mut l, now, &b, UAC).is_none());
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    let (status, warning, retry) = status_and_warning(&tx[0]);
    assert_eq!(status, 503);
    assert!(warning.contains(SOURCE_LIMIT_WARNING), "{warning}");
    assert_eq!(retry, "5");
    assert_eq!(
        l.source_usage(UAC.parse::<std::net::SocketAddr>().unwrap().ip())
            .0,
        3
    );
    // Another source has a budget of its own.
    let b = wire("OPTIONS", "z9hG4bKother", "198.51.100.7:5060", 0);
    assert!(feed(&mut l, now, &b, "198.51.100.7:5060").is_some());
    assert_eq!(l.len(), 4);
}

#[test]
fn per_source_budget_counts_bytes() {
    // Room for two requests with 4,000-byte bodies and a small one, not three large.
    let cfg = TransactionConfig {
        max_transaction_bytes_per_source: 2 * (TXN_OVERHEAD + 4_600) + 1_000,
        ..TransactionConfig::default()
    };
    let now = Instant::now();
    let mut l = TransactionLayer::new(cfg, 3);
    let ip = UAC.parse::<std::net::SocketAddr>().unwrap().ip();
    for i in 0..2 {
        let b = wire("MESSAGE", &format!("z9hG4bKb{i}"), UAC, 4_000);
        assert!(feed(&mut l, now, &b, UAC).is_some());
    }
    let (count, bytes) = l.source_usage(ip);
    assert_eq!(count, 2);
    assert!(
        bytes > 8_000 && bytes <= 2 * (TXN_OVERHEAD + 4_600),
        "{bytes}"
    );
    assert_eq!(l.retained_bytes(), bytes);
    let b = wire("MESSAGE", "z9hG4bKb2", UAC, 4_000);
    assert!(feed(&mut l, now, &b, UAC).is_none());
    let (status, warning, _) = status_and_warning(&drain_tx(&mut l)[0]);
    assert_eq!(status, 503);
    assert!(warning.contains(SOURCE_LIMIT_WARNING), "{warning}");
    // Small requests still fit beside them.
    let b = wire("OPTIONS", "z9hG4bKsmall", UAC, 0);
    assert!(feed(&mut l, now, &b, UAC).is_some());
}

#[test]
fn ipv6_sources_are_grouped_by_64() {
    let a: std::net::IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: std::net::IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
    let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(source_key(a), source_key(b));
    assert_ne!(source_key(a), source_key(c));
    assert_eq!(
        source_key(a),
        "2001:db8:1:2::".parse::<std::net::IpAddr>().unwrap()
    );
    // An IPv4-mapped address is its IPv4 address.
    let mapped: std::net::IpAddr = "::ffff:192.0.2.9".parse().unwrap();
    assert_eq!(
        source_key(mapped),
        "192.0.2.9".parse::<std::net::IpAddr>().unwrap()
    );

    let cfg = TransactionConfig {
        max_transactions_per_source: 2,
        ..TransactionConfig::default()
    };
    let now = Instant::now();
    let mut l = TransactionLayer::new(cfg, 3);
    let from = |i: &str| format!("[2001:db8:1:2::{i}]:5060");
    assert!(
        feed(
            &mut l,
            now,
            &wire("OPTIONS", "z9hG4bK6a", &from("1"), 0),
            &from("1")
        )
        .is_some()
    );
    assert!(
        feed(
            &mut l,
            now,
            &wire("OPTIONS", "z9hG4bK6b", &from("2"), 0),
            &from("2")
        )
        .is_some()
    );
    // A third address of the same /64 is over the budget of the /64.
    assert!(
        feed(
            &mut l,
            now,
            &wire("OPTIONS", "z9hG4bK6c", &from("3"), 0),
            &from("3")
        )
        .is_none()
    );
    let (status, warning, _) = status_and_warning(&drain_tx(&mut l)[0]);
    assert_eq!(
        (status, warning.contains(SOURCE_LIMIT_WARNING)),
        (503, true)
    );
    assert_eq!(l.source_usage(b), (2, l.retained_bytes()));
    // Another /64 is another source.
    let other = "[2001:db8:1:3::1]:5060";
    assert!(feed(&mut l, now, &wire("OPTIONS", "z9hG4bK6d", other, 0), other).is_some());
}

#[test]
fn global_caps_have_their_own_wording() {
    // Count: two transactions in all, any source.
    let cfg = TransactionConfig {
        max_transactions: 2,
        ..TransactionConfig::default()
    };
    let now = Instant::now();
    let mut l = TransactionLayer::new(cfg, 3);
    assert!(feed(&mut l, now, &wire("OPTIONS", "z9hG4bKg1", UAC, 0), UAC).is_some());
    let second = "198.51.100.7:5060";
    assert!(
        feed(
            &mut l,
            now,
            &wire("OPTIONS", "z9hG4bKg2", second, 0),
            second
        )
        .is_some()
    );
    let third = "203.0.113.9:5060";
    assert!(feed(&mut l, now, &wire("OPTIONS", "z9hG4bKg3", third, 0), third).is_none());
    let (status, warning, retry) = status_and_warning(&drain_tx(&mut l)[0]);
    assert_eq!(status, 503);
    assert!(warning.contains(GLOBAL_LIMIT_WARNING), "{warning}");
    assert!(!warning.contains(SOURCE_LIMIT_WARNING), "{warning}");
    assert_eq!(retry, "10");

    // Bytes: one large request fills the table's byte cap for everyone.
    let cfg = TransactionConfig {
        max_transaction_bytes: TXN_OVERHEAD + 6_000,
        ..TransactionConfig::default()
    };
    let mut l = TransactionLayer::new(cfg, 3);
    assert!(feed(&mut l, now, &wire("MESSAGE", "z9hG4bKgb", UAC, 5_000), UAC).is_some());
    assert!(
        feed(
            &mut l,
            now,
            &wire("MESSAGE", "z9hG4bKgc", third, 1_000),
            third
        )
        .is_none()
    );
    let (status, warning, _) = status_and_warning(&drain_tx(&mut l)[0]);
    assert_eq!(
        (status, warning.contains(GLOBAL_LIMIT_WARNING)),
        (503, true)
    );
}

#[test]
fn final_response_keeps_only_what_retransmission_needs() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(TransactionConfig::default(), 3);
    let inv = wire("INVITE", "z9hG4bKmem", UAC, 20_000);
    let key = feed(&mut l, now, &inv, UAC).unwrap();
    assert!(l.retained_bytes() >= 20_000);
    assert!(l.request(key).is_some());
    let Message::Request(req) = Message::parse(&inv).unwrap() else {
        panic!()
    };
    let mut nf = Response::for_request(&req, 404);
    nf.headers
        .set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=nf1");
    let nf_len = nf.to_bytes().len();
    l.send_response(now, key, nf).unwrap();
    drain_tx(&mut l);
    // Completed: the 404 and the key, the request (and its 20 kB body) gone.
    assert!(l.request(key).is_none());
    let completed = l.retained_bytes();
    assert!(completed < TXN_OVERHEAD + nf_len + 200, "{completed}");
    assert!(completed >= TXN_OVERHEAD + nf_len);
    // A retransmission is still answered with the 404.
    let _ = l.handle_datagram(now, &inv, peer(TransportKind::Udp, UAS, UAC));
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(status_and_warning(&tx[0]).0, 404);
    // The ACK: Confirmed answers nothing, so the 404 goes too.
    let mut ack = request("ACK", "z9hG4bKmem", TransportKind::Udp);
    ack.headers.set(HeaderName::CSeq, "1 ACK");
    ack.headers
        .set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=nf1");
    l.handle_message(
        now,
        Message::Request(ack),
        peer(TransportKind::Udp, UAS, UAC),
    );
    assert_eq!(l.state(key), Some(State::Confirmed));
    assert!(l.retained_bytes() < TXN_OVERHEAD + 200);
    l.handle_timeout(now + Duration::from_secs(5));
    assert!(l.is_empty());
    assert_eq!(l.retained_bytes(), 0);
    assert_eq!(
        l.source_usage(UAC.parse::<std::net::SocketAddr>().unwrap().ip()),
        (0, 0)
    );

    // A 2xx (Accepted): the TU retransmits it, the transaction keeps no message.
    let inv = wire("INVITE", "z9hG4bKmem2", UAC, 20_000);
    let key = feed(&mut l, now, &inv, UAC).unwrap();
    let Message::Request(req) = Message::parse(&inv).unwrap() else {
        panic!()
    };
    l.send_response(now, key, Response::for_request(&req, 200))
        .unwrap();
    assert_eq!(l.state(key), Some(State::Accepted));
    assert!(l.retained_bytes() < TXN_OVERHEAD + 200);

    // A non-INVITE keeps its final response only.
    let msg = wire("MESSAGE", "z9hG4bKmem3", UAC, 20_000);
    let key = feed(&mut l, now, &msg, UAC).unwrap();
    let Message::Request(req) = Message::parse(&msg).unwrap() else {
        panic!()
    };
    let before = l.retained_bytes();
    l.send_response(now, key, Response::for_request(&req, 200))
        .unwrap();
    assert!(before - l.retained_bytes() >= 19_000);
}

fn guarded() -> TransactionConfig {
    TransactionConfig {
        reflection_guard: true,
        ..TransactionConfig::default()
    }
}

/// A 404 with a long Warning, larger than a small INVITE.
fn big_404(req_bytes: &[u8], tag: &str) -> Response {
    let Message::Request(req) = Message::parse(req_bytes).unwrap() else {
        panic!()
    };
    let mut nf = Response::for_request(&req, 404);
    nf.headers
        .set(HeaderName::To, &format!("<sip:bob@192.0.2.2>;tag={tag}"));
    nf.headers.push(
        HeaderName::Warning,
        "399 voice-connector \"nosuchhost.example is not a voice connector host name here; dial <voice connector id>.voiceconnector.localhost\"",
    );
    nf.headers.push(
        HeaderName::Allow,
        "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO",
    );
    nf
}

#[test]
fn unverified_udp_source_gets_no_more_bytes_than_it_sent() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(guarded(), 3);
    let inv = wire("INVITE", "z9hG4bKrf", UAC, 0);
    let key = feed(&mut l, now, &inv, UAC).unwrap();
    // No 100 Trying: it would stop the caller's retransmissions, which carry the answer.
    l.handle_timeout(now + Duration::from_millis(200));
    assert!(drain_tx(&mut l).is_empty());
    let nf = big_404(&inv, "r1");
    let nf_len = nf.to_bytes().len();
    assert!(nf_len > inv.len(), "{nf_len} <= {}", inv.len());
    l.send_response(now, key, nf).unwrap();
    // Held: larger than the INVITE, and no Timer G toward an unverified source.
    assert!(drain_tx(&mut l).is_empty());
    assert!(run(&mut l, now, Duration::from_secs(31)).is_empty());
    // The caller's retransmission (Timer A) brings the credit: one 404, once.
    let later = now + Duration::from_millis(31_500);
    let _ = l.handle_datagram(later, &inv, peer(TransportKind::Udp, UAS, UAC));
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(status_and_warning(&tx[0]).0, 404);
    assert!(tx[0].payload.len() <= 2 * inv.len());
    assert_eq!(l.state(key), Some(State::Completed));
    l.handle_timeout(now + Duration::from_secs(32));
    assert!(l.is_empty(), "Timer H still ends it");
    assert!(drain_ev(&mut l).iter().any(|e| matches!(
        e,
        Event::Timeout {
            timer: Timer::H,
            ..
        }
    )));
}

#[test]
fn reflection_ratio_stays_at_most_one_for_a_flood_of_invites() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(guarded(), 3);
    let (mut bytes_in, mut bytes_out) = (0usize, 0usize);
    for i in 0..50 {
        let inv = wire("INVITE", &format!("z9hG4bKfl{i}"), UAC, 0);
        bytes_in += inv.len();
        let t = now + Duration::from_millis(i * 10);
        let key = feed(&mut l, t, &inv, UAC).unwrap();
        // No automatic 100 Trying toward an unverified source.
        l.handle_timeout(t + Duration::from_millis(200));
        l.send_response(t + Duration::from_millis(250), key, big_404(&inv, "f"))
            .unwrap();
    }
    for (_, x) in run(&mut l, now, Duration::from_secs(40)) {
        bytes_out += x.payload.len();
    }
    bytes_out += drain_tx(&mut l)
        .iter()
        .map(|x| x.payload.len())
        .sum::<usize>();
    assert!(bytes_out <= bytes_in, "{bytes_out} > {bytes_in}");
    assert!(l.is_empty());
}

#[test]
fn a_small_enough_final_goes_once_and_an_ack_with_its_tag_verifies_the_source() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(guarded(), 3);
    let ip = UAC.parse::<std::net::SocketAddr>().unwrap().ip();
    let inv = wire("INVITE", "z9hG4bKv1", UAC, 600);
    let key = feed(&mut l, now, &inv, UAC).unwrap();
    l.send_response(now, key, big_404(&inv, "v1")).unwrap();
    assert_eq!(drain_tx(&mut l).len(), 1, "fits the credit: sent at once");
    assert!(
        run(&mut l, now, Duration::from_secs(10)).is_empty(),
        "no Timer G"
    );
    assert!(!l.is_verified(now, ip));
    // An ACK with another To tag proves nothing (a spoofer knows only its own branch).
    let mut ack = request("ACK", "z9hG4bKv1", TransportKind::Udp);
    ack.headers.set(HeaderName::CSeq, "1 ACK");
    ack.headers
        .set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=guess");
    l.handle_message(
        now,
        Message::Request(ack),
        peer(TransportKind::Udp, UAS, UAC),
    );
    assert!(!l.is_verified(now, ip));

    // The next one is ACKed with our tag: the source is verified...
    let inv = wire("INVITE", "z9hG4bKv2", UAC, 600);
    let key = feed(&mut l, now, &inv, UAC).unwrap();
    l.send_response(now, key, big_404(&inv, "v2")).unwrap();
    drain_tx(&mut l);
    let mut ack = request("ACK", "z9hG4bKv2", TransportKind::Udp);
    ack.headers.set(HeaderName::CSeq, "1 ACK");
    ack.headers
        .set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=v2");
    l.handle_message(
        now,
        Message::Request(ack),
        peer(TransportKind::Udp, UAS, UAC),
    );
    assert!(l.is_verified(now, ip));
    assert!(!l.is_verified(now + VERIFIED_TTL, ip), "for a while");

    // ...and gets RFC 3261 §17.2.1: a large final at once, Timer G until the ACK.
    let inv = wire("INVITE", "z9hG4bKv3", UAC, 0);
    let key = feed(&mut l, now, &inv, UAC).unwrap();
    l.send_response(now, key, big_404(&inv, "v3")).unwrap();
    assert_eq!(drain_tx(&mut l).len(), 1);
    let times: Vec<u64> = run(&mut l, now, Duration::from_millis(4_000))
        .iter()
        .map(|(t, _)| t.as_millis() as u64)
        .collect();
    assert_eq!(times, vec![500, 1500, 3500]);
}

#[test]
fn a_response_to_our_request_verifies_its_destination() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(guarded(), 1);
    let ip = UAS.parse::<std::net::SocketAddr>().unwrap().ip();
    let req = request("OPTIONS", "z9hG4bKcv", TransportKind::Udp);
    l.send_request(now, req.clone(), peer(TransportKind::Udp, UAC, UAS))
        .unwrap();
    assert!(!l.is_verified(now, ip));
    l.handle_message(
        now,
        Message::Response(Response::for_request(&req, 200)),
        peer(TransportKind::Udp, UAC, UAS),
    );
    assert!(l.is_verified(now, ip));
}

#[test]
fn stateless_answers_to_unverified_sources_never_exceed_the_request() {
    let now = Instant::now();
    let mut l = TransactionLayer::new(guarded(), 3);
    // Junk: its 400 (with a Warning) is larger than the datagram: not sent.
    let bad = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
    assert!(
        l.handle_datagram(now, bad, peer(TransportKind::Udp, UAS, UAC))
            .is_err()
    );
    assert!(drain_tx(&mut l).is_empty());
    // Without the guard the layer answers it (RFC 3261 §8.2).
    let mut plain = TransactionLayer::new(TransactionConfig::default(), 3);
    assert!(
        plain
            .handle_datagram(now, bad, peer(TransportKind::Udp, UAS, UAC))
            .is_err()
    );
    assert_eq!(drain_tx(&mut plain).len(), 1);
    // Over TCP the connection proves the address: answered.
    assert!(
        l.handle_datagram(now, bad, peer(TransportKind::Tcp, UAS, UAC))
            .is_err()
    );
    assert_eq!(drain_tx(&mut l).len(), 1);

    // A 503 over the budget goes only to a request at least its size.
    let cfg = TransactionConfig {
        max_transactions_per_source: 1,
        ..guarded()
    };
    let mut l = TransactionLayer::new(cfg, 3);
    assert!(feed(&mut l, now, &wire("OPTIONS", "z9hG4bKs0", UAC, 0), UAC).is_some());
    assert!(feed(&mut l, now, &wire("OPTIONS", "z9hG4bKs1", UAC, 0), UAC).is_none());
    assert!(drain_tx(&mut l).is_empty());
    assert!(feed(&mut l, now, &wire("MESSAGE", "z9hG4bKs2", UAC, 400), UAC).is_none());
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(status_and_warning(&tx[0]).0, 503);
}

#[test]
fn response_token_bucket_limits_what_the_layer_sends_by_itself() {
    // A verified source over its budget: 503s only as fast as its bucket allows.
    let cfg = TransactionConfig {
        max_transactions_per_source: 1,
        response_rate_per_source: 1_000,
        response_burst_per_source: 2_000,
        ..guarded()
    };
    let now = Instant::now();
    let mut l = TransactionLayer::new(cfg, 3);
    let ip = UAC.parse::<std::net::SocketAddr>().unwrap().ip();
    l.verify_source(now, ip);
    assert!(feed(&mut l, now, &wire("OPTIONS", "z9hG4bKtb", UAC, 0), UAC).is_some());
    let mut sent = 0;
    for i in 0..20 {
        feed(
            &mut l,
            now,
            &wire("OPTIONS", &format!("z9hG4bKtb{i}"), UAC, 0),
            UAC,
        );
        sent += drain_tx(&mut l)
            .iter()
            .map(|t| t.payload.len())
            .sum::<usize>();
    }
    assert!(sent > 0 && sent <= 2_000, "{sent}");
    // One second later the bucket has refilled by 1,000 bytes.
    let later = now + Duration::from_secs(1);
    let mut more = 0;
    for i in 0..20 {
        feed(
            &mut l,
            later,
            &wire("OPTIONS", &format!("z9hG4bKtc{i}"), UAC, 0),
            UAC,
        );
        more += drain_tx(&mut l)
            .iter()
            .map(|t| t.payload.len())
            .sum::<usize>();
    }
    assert!(more > 0 && more <= 1_000 + 400, "{more}");
    // Another source has its own bucket.
    let other = "198.51.100.7:5060";
    l.verify_source(now, other.parse::<std::net::SocketAddr>().unwrap().ip());
    feed(
        &mut l,
        later,
        &wire("OPTIONS", "z9hG4bKtd0", other, 0),
        other,
    );
    feed(
        &mut l,
        later,
        &wire("OPTIONS", "z9hG4bKtd1", other, 0),
        other,
    );
    assert_eq!(drain_tx(&mut l).len(), 1);
}
