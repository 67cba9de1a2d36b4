//! The registration state machine on virtual time.

use std::time::{Duration, Instant};

use super::*;
use domain::carrier::{CarrierTransport, RegistrationState};

fn target(name: &str) -> RegTarget {
    RegTarget {
        carrier: name.into(),
        transport: CarrierTransport::Udp,
        remote: "127.0.0.9:5060".parse().unwrap(),
        host: "127.0.0.9".into(),
        username: "trunk".into(),
        credentials: None,
    }
}

fn tick(targets: &[&str], carriers: &[&str]) -> Tick {
    Tick {
        targets: targets.iter().map(|t| target(t)).collect(),
        wanted: targets.iter().map(|t| t.to_string()).collect(),
        carriers: carriers.iter().map(|c| c.to_string()).collect(),
    }
}

fn ok(expires: Option<u32>) -> Answer {
    Answer {
        status: 200,
        answered: true,
        expires,
        ..Answer::default()
    }
}

/// Sends what is due, numbering the transactions from `*n`.
fn send(r: &mut Registrations<u32>, now: Instant, n: &mut u32) -> Vec<(Outgoing, u32)> {
    r.due(now)
        .into_iter()
        .map(|o| {
            *n += 1;
            let k = *n;
            r.sent(&o.target.carrier, k, o.expires);
            (o, k)
        })
        .collect()
}

#[test]
fn registers_at_once_and_refreshes_half_way_with_the_granted_expiry() {
    let t0 = Instant::now();
    let mut r = Registrations::<u32>::default();
    let mut n = 0;
    assert!(r.sync(t0, 0, tick(&["c1"], &["c1"])).is_empty());
    let sent = send(&mut r, t0, &mut n);
    assert_eq!(sent.len(), 1);
    let (first, k) = sent[0].clone();
    assert_eq!(first.expires, DEFAULT_EXPIRES);
    // The registrar grants 6 s: refreshed after 3.
    let o = r.on_answer(t0, 1_000, &k, ok(Some(6)), 0.0).unwrap();
    assert_eq!(o.status.state, RegistrationState::Registered);
    assert_eq!(o.status.expires_ms, Some(7_000));
    assert_eq!(o.next_in, Some(Duration::from_secs(3)));
    assert!(send(&mut r, t0 + Duration::from_millis(2_900), &mut n).is_empty());
    let (refresh, _) = send(&mut r, t0 + Duration::from_secs(3), &mut n).remove(0);
    // Same Call-ID, a higher CSeq (RFC 3261 §10.2.4).
    assert_eq!(refresh.call_id, first.call_id);
    assert!(refresh.cseq > first.cseq);
    // Nothing else is sent while it is in flight.
    assert!(send(&mut r, t0 + Duration::from_secs(60), &mut n).is_empty());
}

#[test]
fn failures_back_off_exponentially_and_retry_after_is_honoured() {
    let t0 = Instant::now();
    let mut r = Registrations::<u32>::default();
    let mut n = 0;
    r.sync(t0, 0, tick(&["c1"], &["c1"]));
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let (_, k) = send(&mut r, now, &mut n).remove(0);
        let timeout = Answer {
            status: 408,
            ..Answer::default()
        };
        let o = r.on_answer(now, 0, &k, timeout, 0.999_999).unwrap();
        assert_eq!(o.status.state, RegistrationState::Failing);
        assert_eq!(o.status.last_status, None);
        let wait = o.next_in.unwrap();
        waits.push(wait.as_secs());
        assert!(send(&mut r, now + wait - Duration::from_millis(1), &mut n).is_empty());
        now += wait;
    }
    assert_eq!(waits, [3, 7, 15, 31]);
    let (_, k) = send(&mut r, now, &mut n).remove(0);
    let busy = Answer {
        status: 503,
        answered: true,
        retry_after: Some(2),
        ..Answer::default()
    };
    let o = r.on_answer(now, 0, &k, busy, 0.5).unwrap();
    assert_eq!(o.status.last_status, Some(503));
    assert_eq!(o.next_in, Some(Duration::from_secs(2)));
    // A success starts the backoff over.
    let (_, k) = send(&mut r, now + Duration::from_secs(2), &mut n).remove(0);
    r.on_answer(now, 0, &k, ok(None), 0.5).unwrap();
    assert_eq!(backoff(1, 0.0), Duration::from_secs(2));
    assert_eq!(backoff(40, 1.0), Duration::from_secs(600));
}

#[test]
fn interval_too_brief_asks_again_with_min_expires() {
    let t0 = Instant::now();
    let mut r = Registrations::<u32>::default();
    let mut n = 0;
    r.sync(t0, 0, tick(&["c1"], &["c1"]));
    let (_, k) = send(&mut r, t0, &mut n).remove(0);
    let brief = Answer {
        status: 423,
        answered: true,
        min_expires: Some(7200),
        ..Answer::default()
    };
    assert_eq!(
        r.on_answer(t0, 0, &k, brief, 0.0).unwrap().next_in,
        Some(Duration::ZERO)
    );
    let (again, _) = send(&mut r, t0, &mut n).remove(0);
    assert_eq!(again.expires, 7200);
}

#[test]
fn turned_off_or_removed_unregisters_a_binding_with_expires_zero() {
    let t0 = Instant::now();
    let mut r = Registrations::<u32>::default();
    let mut n = 0;
    r.sync(t0, 0, tick(&["c1", "c2"], &["c1", "c2"]));
    for (_, k) in send(&mut r, t0, &mut n) {
        r.on_answer(t0, 0, &k, ok(Some(60)), 0.0).unwrap();
    }
    // c1 stops registering, c2 is removed.
    assert!(r.sync(t0, 0, tick(&[], &["c1"])).is_empty());
    let mut sent = send(&mut r, t0, &mut n);
    sent.sort_by(|a, b| a.0.target.carrier.cmp(&b.0.target.carrier));
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(o, _)| o.expires == 0));
    let c1 = r.on_answer(t0, 5, &sent[0].1, ok(None), 0.0).unwrap();
    assert_eq!(c1.status.state, RegistrationState::Unregistered);
    assert!(!c1.removed);
    let c2 = r.on_answer(t0, 5, &sent[1].1, ok(None), 0.0).unwrap();
    assert!(c2.removed);
    // Nothing left to do.
    assert!(send(&mut r, t0 + Duration::from_secs(3600), &mut n).is_empty());
}

#[test]
fn a_carrier_never_bound_is_dropped_without_a_request() {
    let t0 = Instant::now();
    let mut r = Registrations::<u32>::default();
    let mut n = 0;
    r.sync(t0, 0, tick(&["c1"], &["c1"]));
    let (_, k) = send(&mut r, t0, &mut n).remove(0);
    let refused = Answer {
        status: 403,
        answered: true,
        ..Answer::default()
    };
    r.on_answer(t0, 0, &k, refused, 0.0).unwrap();
    let dropped = r.sync(t0, 0, tick(&[], &["c1"]));
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].status.state, RegistrationState::Unregistered);
    assert!(send(&mut r, t0 + Duration::from_secs(3600), &mut n).is_empty());
}

#[test]
fn answers_read_expires_retry_after_and_min_expires() {
    let parse = |text: &str| {
        let msg = sip::parse_datagram(text.as_bytes(), &sip::ParseLimits::default()).unwrap();
        match msg {
            sip::Message::Response(r) => r,
            _ => panic!("not a response"),
        }
    };
    let head = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: x\r\nCSeq: 2 REGISTER\r\n";
    let r = parse(&format!(
        "{head}Contact: <sip:vc@127.0.0.1>;expires=120\r\nContent-Length: 0\r\n\r\n"
    ));
    assert_eq!(answer_of(200, Some(&r)).expires, Some(120));
    let r = parse(&format!("{head}Expires: 6\r\nContent-Length: 0\r\n\r\n"));
    assert_eq!(answer_of(200, Some(&r)).expires, Some(6));
    let r = parse(&format!(
        "{head}Retry-After: 2 (busy)\r\nMin-Expires: 60\r\nContent-Length: 0\r\n\r\n"
    ));
    let a = answer_of(503, Some(&r));
    assert_eq!(
        (a.retry_after, a.min_expires, a.answered),
        (Some(2), Some(60), true)
    );
    assert!(!answer_of(408, None).answered);
}

#[test]
fn a_carrier_whose_address_stops_resolving_keeps_its_binding() {
    let t0 = Instant::now();
    let mut r = Registrations::<u32>::default();
    let mut n = 0;
    r.sync(t0, 0, tick(&["c1"], &["c1"]));
    let (_, k) = send(&mut r, t0, &mut n).remove(0);
    r.on_answer(t0, 0, &k, ok(Some(60)), 0.0).unwrap();
    // Still wanted, but no address this round: nothing is un-registered.
    let unresolved = Tick {
        targets: Vec::new(),
        wanted: vec!["c1".into()],
        carriers: vec!["c1".into()],
    };
    assert!(r.sync(t0, 0, unresolved).is_empty());
    assert!(send(&mut r, t0 + Duration::from_secs(29), &mut n).is_empty());
    let (refresh, _) = send(&mut r, t0 + Duration::from_secs(30), &mut n).remove(0);
    assert_eq!(refresh.expires, DEFAULT_EXPIRES);
}

#[test]
fn shutdown_unregisters_every_binding_and_registers_nothing_more() {
    let t0 = Instant::now();
    let mut r = Registrations::<u32>::default();
    let mut n = 0;
    r.sync(t0, 0, tick(&["c1", "c2"], &["c1", "c2"]));
    let sent = send(&mut r, t0, &mut n);
    // c1 is bound, c2's REGISTER failed.
    let c1 = sent
        .iter()
        .find(|(o, _)| o.target.carrier == "c1")
        .unwrap()
        .1;
    let c2 = sent
        .iter()
        .find(|(o, _)| o.target.carrier == "c2")
        .unwrap()
        .1;
    r.on_answer(t0, 0, &c1, ok(Some(60)), 0.0).unwrap();
    let refused = Answer {
        status: 403,
        answered: true,
        ..Answer::default()
    };
    r.on_answer(t0, 0, &c2, refused, 0.0).unwrap();
    let dropped = r.stop(t0, 0);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].status.carrier, "c2");
    let last = send(&mut r, t0, &mut n);
    assert_eq!(last.len(), 1);
    assert_eq!(
        (last[0].0.target.carrier.as_str(), last[0].0.expires),
        ("c1", 0)
    );
    // The registration task's next round changes nothing.
    assert!(r.sync(t0, 0, tick(&["c1", "c2"], &["c1", "c2"])).is_empty());
    assert!(send(&mut r, t0 + Duration::from_secs(3600), &mut n).is_empty());
}
