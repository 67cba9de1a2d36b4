//! Two in-memory user agents on virtual time: dialogs, 2xx/ACK, CANCEL, 100rel, session
//! timers, re-INVITE/UPDATE, and the requests a UA answers by itself.

use std::net::SocketAddr;
use std::time::Duration;

use sip::{
    Body, CallKey, HeaderName, Message, Method, OutgoingCall, Response, SessionTimerConfig,
    TerminationReason, UaConfig, UaError, UaEvent, Uri,
};

mod common;
use common::*;

#[test]
fn basic_call_and_bye() {
    let mut n = Net::new(cfg(), cfg());
    let ca = n.call(&[]);
    let (cb, inv) = n.incoming();
    assert_eq!(inv.body, b"v=0 offer\r\n");
    assert_eq!(inv.uri.as_ref().transport(), Some("udp"));
    n.b.answer(n.now, cb, 180, None).unwrap();
    n.pump();
    assert!(
        n.events_a()
            .iter()
            .any(|e| matches!(e, UaEvent::Provisional { response, .. } if response.status == 180))
    );
    n.b.answer(n.now, cb, 200, Some(Body::sdp("v=0 answer\r\n")))
        .unwrap();
    n.pump();
    let ev = n.events_a();
    let Some(UaEvent::Answered { response, .. }) =
        ev.iter().find(|e| matches!(e, UaEvent::Answered { .. }))
    else {
        panic!("{ev:?}")
    };
    assert_eq!(response.body, b"v=0 answer\r\n");
    assert!(
        n.events_b()
            .iter()
            .any(|e| matches!(e, UaEvent::Confirmed { .. }))
    );

    // The ACK goes to B's Contact with the INVITE's CSeq number (§13.2.2.4).
    let acks = n.sent(true, "ACK ");
    let Message::Request(ack) = &acks[0] else {
        panic!()
    };
    assert_eq!(ack.uri.as_str(), "sip:vc@192.0.2.2:5060");
    assert_eq!(ack.headers.cseq().unwrap().seq, 1);
    assert!(ack.headers.to().unwrap().tag().is_some());

    n.a.hangup(n.now, ca).unwrap();
    n.pump();
    assert!(n.events_b().iter().any(|e| matches!(e, UaEvent::Terminated { call, reason: TerminationReason::RemoteBye } if *call == cb)));
    assert!(n.events_a().iter().any(|e| matches!(
        e,
        UaEvent::Terminated {
            reason: TerminationReason::LocalBye,
            ..
        }
    )));
    let byes = n.sent(true, "BYE ");
    let Message::Request(bye) = &byes[0] else {
        panic!()
    };
    assert_eq!(
        bye.headers.cseq().unwrap().seq,
        2,
        "local CSeq increments (§12.2.1.1)"
    );
    assert!(
        n.sent(false, "SIP/2.0 200").iter().any(
            |m| matches!(m, Message::Response(r) if r.headers.cseq().unwrap().method == "BYE")
        )
    );
    assert_eq!((n.a.calls(), n.b.calls()), (0, 0));
}

#[test]
fn uas_retransmits_2xx_until_ack_then_gives_up_with_bye() {
    let mut n = Net::new(cfg(), cfg());
    n.answered_acks_lost();
    n.advance_to(Duration::from_secs(40));
    let times: Vec<u128> = n
        .log
        .iter()
        .filter(|(_, a, p)| {
            !*a && p.starts_with(b"SIP/2.0 200")
                && Message::parse(p).unwrap().headers().cseq().unwrap().method == "INVITE"
        })
        .map(|(t, _, _)| t.as_millis())
        .collect();
    assert_eq!(
        times,
        vec![
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    // A answers every retransmission with the same ACK (§13.2.2.4).
    assert_eq!(n.sent(true, "ACK ").len(), 11);
    assert!(n.events_b().iter().any(|e| matches!(
        e,
        UaEvent::Terminated {
            reason: TerminationReason::AckTimeout,
            ..
        }
    )));
    assert_eq!(n.sent(false, "BYE ").len(), 1);
}

#[test]
fn cancel_gets_487_for_the_invite() {
    let mut n = Net::new(cfg(), cfg());
    let ca = n.call(&[]);
    let (cb, _) = n.incoming();
    n.b.answer(n.now, cb, 180, None).unwrap();
    n.pump();
    n.a.hangup(n.now, ca).unwrap();
    n.pump();
    assert!(n.events_b().iter().any(|e| matches!(e, UaEvent::Terminated { call, reason: TerminationReason::Cancelled } if *call == cb)));
    assert!(n.events_a().iter().any(|e| matches!(
        e,
        UaEvent::Terminated {
            reason: TerminationReason::Failed(487),
            ..
        }
    )));
    assert_eq!(n.sent(false, "SIP/2.0 487").len(), 1);
    assert_eq!((n.a.calls(), n.b.calls()), (0, 0));
    // RFC 3261 §9.2: the 200 to the CANCEL carries the To tag of the INVITE's responses.
    let tag_of = |m: &Message| m.headers().to().and_then(|t| t.tag().map(str::to_string));
    let r487 = &n.sent(false, "SIP/2.0 487")[0];
    let ok_cancel: Vec<_> = n
        .sent(false, "SIP/2.0 200")
        .into_iter()
        .filter(|m| {
            m.headers()
                .get(sip::HeaderName::CSeq)
                .is_some_and(|c| c.contains("CANCEL"))
        })
        .collect();
    assert_eq!(ok_cancel.len(), 1);
    assert!(tag_of(r487).is_some());
    assert_eq!(tag_of(&ok_cancel[0]), tag_of(r487));
}

#[test]
fn reliable_provisional_is_pracked_and_retransmitted_until_then() {
    let mut n = Net::new(cfg(), cfg());
    let mut dropped = 0;
    n.filter = Box::new(move |by_a, t| {
        // Lose the first PRACK.
        if by_a && t.payload.starts_with(b"PRACK ") && dropped == 0 {
            dropped += 1;
            return false;
        }
        true
    });
    n.call(&[(HeaderName::Require, "100rel")]);
    let (cb, _) = n.incoming();
    n.b.answer(n.now, cb, 183, Some(Body::sdp("v=0 early\r\n")))
        .unwrap();
    n.pump();
    let p = n.sent(false, "SIP/2.0 183");
    let Message::Response(r) = &p[0] else {
        panic!()
    };
    assert_eq!(r.headers.rseq(), Some(1));
    assert!(r.headers.has_option_tag(HeaderName::Require, "100rel"));
    assert!(n.events_b().is_empty(), "PRACK was lost");
    // The lost PRACK is retransmitted by its transaction (Timer E, also at T1); B's 183
    // retransmission crosses it, and A PRACKs RSeq 1 only once.
    n.advance_to(Duration::from_millis(600));
    assert_eq!(n.sent(false, "SIP/2.0 183").len(), 2);
    let ev = n.events_b();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, UaEvent::Prack { .. }))
            .count(),
        1
    );
    let prack = n.sent(true, "PRACK ");
    assert_eq!(
        prack.len(),
        2,
        "the original PRACK and its Timer E retransmission"
    );
    let Message::Request(pr) = &prack[0] else {
        panic!()
    };
    assert_eq!(pr.headers.rack().unwrap().rseq, 1);
    // No more 183 retransmissions after the PRACK.
    let before = n.sent(false, "SIP/2.0 183").len();
    n.advance_to(Duration::from_secs(10));
    assert_eq!(n.sent(false, "SIP/2.0 183").len(), before);
    n.b.answer(n.now, cb, 200, Some(Body::sdp("v=0\r\n")))
        .unwrap();
    n.pump();
    assert!(
        n.events_a()
            .iter()
            .any(|e| matches!(e, UaEvent::Answered { .. }))
    );
}

#[test]
fn session_interval_too_small_gets_422() {
    let small = UaConfig {
        session_timer: Some(SessionTimerConfig {
            session_expires: 60,
            min_se: 60,
        }),
        ..cfg()
    };
    let mut n = Net::new(small, cfg());
    n.call(&[]);
    assert!(n.events_b().is_empty());
    let r = n.sent(false, "SIP/2.0 422");
    let Message::Response(r) = &r[0] else {
        panic!()
    };
    assert_eq!(r.headers.min_se(), Some(90));
    assert!(n.events_a().iter().any(|e| matches!(
        e,
        UaEvent::Terminated {
            reason: TerminationReason::Failed(422),
            ..
        }
    )));
}

#[test]
fn session_refreshed_by_uac_and_expired_when_refreshes_stop() {
    let mut n = Net::new(cfg(), cfg());
    let (_ca, cb) = n.established();
    let ok = n.sent(false, "SIP/2.0 200");
    let Message::Response(r) = &ok[0] else {
        panic!()
    };
    let se = r.headers.session_expires().unwrap();
    assert_eq!((se.delta, se.refresher), (1800, Some(sip::Refresher::Uac)));
    assert!(r.headers.has_option_tag(HeaderName::Require, "timer"));
    // A refreshes with UPDATE at 900 s, 1800 s, ...; the call survives an hour.
    n.advance_to(Duration::from_secs(3600));
    assert!(n.sent(true, "UPDATE ").len() >= 3);
    assert_eq!(n.b.calls(), 1);
    assert!(
        n.events_b()
            .iter()
            .all(|e| !matches!(e, UaEvent::Terminated { .. }))
    );
    // A goes silent: B ends the session before it expires (RFC 4028 §10).
    n.filter = Box::new(|by_a, _| !by_a);
    n.advance_to(Duration::from_secs(3600 + 1800));
    assert!(n.events_b().iter().any(|e| matches!(e, UaEvent::Terminated { call, reason: TerminationReason::SessionExpired } if *call == cb)));
}

#[test]
fn reinvite_from_uas_side_and_update_with_offer() {
    let mut n = Net::new(cfg(), cfg());
    let (ca, cb) = n.established();
    n.b.send_in_dialog(n.now, cb, Method::Invite, Some(Body::sdp("v=0 hold\r\n")))
        .unwrap();
    assert_eq!(
        n.b.send_in_dialog(n.now, cb, Method::Invite, None),
        Err(sip::UaError::RequestPending)
    );
    n.pump();
    let ev = n.events_a();
    let Some(UaEvent::Reinvite { call, request }) = ev
        .into_iter()
        .find(|e| matches!(e, UaEvent::Reinvite { .. }))
    else {
        panic!()
    };
    assert_eq!(call, ca);
    assert_eq!(request.body, b"v=0 hold\r\n");
    // B's re-INVITE goes to A's Contact, with B's tags swapped (§12.2.1.1).
    assert_eq!(request.uri.as_str(), "sip:vc@192.0.2.1:5060");
    n.a.answer(n.now, ca, 200, Some(Body::sdp("v=0 held\r\n")))
        .unwrap();
    n.pump();
    assert!(n.events_b().iter().any(|e| matches!(e, UaEvent::InDialogResponse { method: Method::Invite, response, .. } if response.status == 200)));
    assert!(
        n.events_a()
            .iter()
            .any(|e| matches!(e, UaEvent::Confirmed { .. }))
    );

    // UPDATE with an offer goes to the application.
    n.a.send_in_dialog(n.now, ca, Method::Update, Some(Body::sdp("v=0 upd\r\n")))
        .unwrap();
    n.pump();
    let ev = n.events_b();
    let Some(UaEvent::Request { txn, request, .. }) = ev
        .into_iter()
        .find(|e| matches!(e, UaEvent::Request { .. }))
    else {
        panic!()
    };
    assert_eq!(request.method, Method::Update);
    let mut ok = Response::for_request(&request, 200);
    ok.body = b"v=0 upd-answer\r\n".to_vec();
    n.b.respond_request(n.now, txn, ok).unwrap();
    n.pump();
    assert!(n.events_a().iter().any(|e| matches!(
        e,
        UaEvent::InDialogResponse {
            method: Method::Update,
            ..
        }
    )));
}

#[test]
fn requests_the_ua_answers_itself() {
    let mut n = Net::new(cfg(), cfg());
    let r = raw(&mut n, &request_text("OPTIONS", ""));
    assert_eq!(r.status, 200);
    assert!(r.headers.allow().any(|m| m == Method::Invite));
    assert_eq!(r.headers.get(HeaderName::Accept), Some("application/sdp"));
    assert!(r.headers.has_option_tag(HeaderName::Supported, "100rel"));
    // Via received/rport stamped (RFC 3581): source is 192.0.2.1:5060.
    let v = r.headers.top_via().unwrap();
    assert_eq!(v.received(), Some("192.0.2.1"));
    assert_eq!(v.rport(), Some(Some(5060)));

    // §8.2.2.2: the same request arriving by another path (another branch) is a merge.
    let inv = request_text("INVITE", "").replace("raw-INVITE", "raw-merge");
    let _ =
        n.b.handle_datagram(n.now, inv.replace('\n', "\r\n").as_bytes(), peer(B, A));
    assert!(matches!(n.events_b()[..], [UaEvent::IncomingCall { .. }]));
    assert_eq!(
        raw(&mut n, &inv).status,
        482,
        "same INVITE by another branch while ringing"
    );

    let r = raw(&mut n, &request_text("FOO", ""));
    assert_eq!(r.status, 405);
    assert!(r.headers.get(HeaderName::Allow).is_some());

    let r = raw(
        &mut n,
        &request_text("INVITE", "").replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(r.status, 483);

    let r = raw(&mut n, &request_text("INVITE", "Require: foo, 100rel\n"));
    assert_eq!(r.status, 420);
    assert_eq!(r.headers.get(HeaderName::Unsupported), Some("foo"));

    let r = raw(
        &mut n,
        &request_text("BYE", "")
            .replace("To: <sip:vc@192.0.2.2>", "To: <sip:vc@192.0.2.2>;tag=nope"),
    );
    assert_eq!(r.status, 481);

    let r = raw(
        &mut n,
        &request_text("INVITE", "")
            .replace("sip:vc@192.0.2.2 SIP", "mailto:x@y SIP")
            .replace("raw-INVITE", "raw-mailto"),
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        n.b.calls(),
        1,
        "only the ringing raw-merge INVITE is a call"
    );
}

#[test]
fn record_route_becomes_the_route_set() {
    let mut n = Net::new(cfg(), cfg());
    let (cb, ok) =
        n.raw_call_answered("Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\n");
    assert_eq!(
        ok.headers.record_routes().count(),
        2,
        "§12.1.1: Record-Route copied into the 2xx"
    );
    // ACK, then B hangs up: the BYE follows the route set in order to A's Contact.
    let to = ok.headers.get(HeaderName::To).unwrap().to_owned();
    let ack = request_text("ACK", "")
        .replace("To: <sip:vc@192.0.2.2>", &format!("To: {to}"))
        .replace("raw-ACK", "raw-INVITE");
    let _ =
        n.b.handle_datagram(n.now, ack.replace('\n', "\r\n").as_bytes(), peer(B, A));
    assert!(
        n.events_b()
            .iter()
            .any(|e| matches!(e, UaEvent::Confirmed { .. }))
    );
    n.b.hangup(n.now, cb).unwrap();
    let tx: Vec<_> = std::iter::from_fn(|| n.b.poll_transmit()).collect();
    let Message::Request(bye) = Message::parse(&tx[0].payload).unwrap() else {
        panic!()
    };
    assert_eq!(bye.uri.as_str(), "sip:a@10.0.0.9");
    let routes: Vec<_> = bye
        .headers
        .routes()
        .map(|r| r.uri.host().to_owned())
        .collect();
    assert_eq!(routes, ["p2.example.com", "p1.example.com"]);
    assert_eq!(
        bye.headers.from().unwrap().tag(),
        ok.headers.to().unwrap().tag()
    );
    assert_eq!(bye.headers.to().unwrap().tag(), Some("x1"));
    let _: SocketAddr = tx[0].peer.remote;
}

#[test]
fn uac_answers_a_digest_challenge_once() {
    use sip::auth::{Algorithm, DigestConfig, DigestServer, ha1};
    let mut n = Net::new(cfg(), cfg());
    let mut digest = DigestServer::new(DigestConfig {
        realm: "vc.example.com".into(),
        algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        nonce_lifetime: Duration::from_secs(60),
        max_nonces: 100,
        secret: [3; 32],
    });
    let ca =
        n.a.invite(
            n.now,
            peer(A, B),
            OutgoingCall {
                target: Uri::parse("sip:+17035550122@192.0.2.2").unwrap(),
                from: "<sip:+12065550100@192.0.2.1>".into(),
                to: "<sip:+17035550122@192.0.2.2>".into(),
                body: Some(Body::sdp("v=0\r\n")),
                headers: Vec::new(),
                credentials: Some(sip::Credentials {
                    username: "trunk1".into(),
                    password: "pw".into(),
                }),
            },
        )
        .unwrap();
    n.pump();
    // First INVITE: no credentials -> 401 with both challenges.
    let (cb, inv) = n.incoming();
    assert!(inv.headers.get(HeaderName::Authorization).is_none());
    let mut r = n.b.make_response(cb, 401).unwrap();
    for ch in digest.challenges(n.now, false) {
        r.headers.push(HeaderName::WwwAuthenticate, &ch);
    }
    n.b.respond(n.now, cb, r).unwrap();
    n.pump();
    // The retry carries SHA-256 credentials, same Call-ID, CSeq 2.
    let (cb2, inv2) = n.incoming();
    assert_eq!(inv2.headers.call_id(), inv.headers.call_id());
    assert_eq!(inv2.headers.cseq().unwrap().seq, 2);
    let creds = inv2.headers.get(HeaderName::Authorization).unwrap();
    assert!(creds.contains("algorithm=SHA-256"));
    let v = digest
        .verify(n.now, "INVITE", inv2.uri.as_str(), creds, |u, alg| {
            (u == "trunk1").then(|| ha1(alg, "trunk1", "vc.example.com", "pw"))
        })
        .unwrap();
    assert_eq!(v.username, "trunk1");
    n.b.answer(n.now, cb2, 200, Some(Body::sdp("v=0\r\n")))
        .unwrap();
    n.pump();
    assert!(
        n.events_a()
            .iter()
            .any(|e| matches!(e, UaEvent::Answered { call, .. } if *call == ca))
    );
    assert!(
        !format!(
            "{:?}",
            sip::Credentials {
                username: "u".into(),
                password: "pw".into()
            }
        )
        .contains("pw")
    );
}

#[test]
fn call_limit_answers_503() {
    let mut n = Net::new(
        cfg(),
        UaConfig {
            max_calls: 1,
            ..cfg()
        },
    );
    n.call(&[]);
    n.incoming();
    n.call(&[]);
    assert!(n.events_b().is_empty());
    assert_eq!(n.sent(false, "SIP/2.0 503").len(), 1);
    assert_eq!(n.b.calls(), 1);
}

#[test]
fn uas_bye_waits_for_the_ack() {
    let mut n = Net::new(cfg(), cfg());
    // Hold A's ACK back for a while.
    let mut held = true;
    n.filter = Box::new(move |by_a, t| {
        if by_a && t.payload.starts_with(b"ACK ") && held {
            held = false;
            return false;
        }
        true
    });
    n.call(&[]);
    let (cb, _) = n.incoming();
    n.b.answer(n.now, cb, 200, Some(Body::sdp("v=0\r\n")))
        .unwrap();
    n.pump();
    n.b.hangup(n.now, cb).unwrap();
    n.pump();
    assert!(
        n.sent(false, "BYE ").is_empty(),
        "no BYE before the ACK (§15)"
    );
    // B's 2xx retransmission draws a second ACK, then the BYE goes out.
    n.advance_to(Duration::from_millis(600));
    assert_eq!(n.sent(false, "BYE ").len(), 1);
    assert!(n.events_b().iter().any(|e| matches!(e, UaEvent::Terminated { call, reason: TerminationReason::LocalBye } if *call == cb)));
    assert!(n.events_a().iter().any(|e| matches!(
        e,
        UaEvent::Terminated {
            reason: TerminationReason::RemoteBye,
            ..
        }
    )));
}

#[test]
fn discarded_invite_gets_no_response_at_all() {
    let mut n = Net::new(cfg(), cfg());
    n.call(&[]);
    let (cb, _) = n.incoming();
    n.b.discard(cb).unwrap();
    assert!(matches!(n.b.discard(cb), Err(UaError::UnknownCall)));
    assert!(n.events_b().iter().any(|e| matches!(
        e,
        UaEvent::Terminated { call, reason: TerminationReason::Discarded } if *call == cb
    )));
    assert_eq!(n.b.calls(), 0);
    // Past the 200 ms after which an INVITE server transaction would send 100 Trying,
    // and past A's first retransmission (Timer A, T1 = 500 ms; RFC 3261 §17.1.1.2).
    // (600 ms: before the 100 Trying that the retransmission's own new transaction
    // would send at 700 ms if the application did not decide in time.)
    n.advance_to(Duration::from_millis(600));
    assert!(
        n.sent(false, "SIP/2.0").is_empty(),
        "B answered a discarded INVITE"
    );
    // The retransmission arrives as a new call, which the application may drop again.
    let (again, _) = n.incoming();
    n.b.discard(again).unwrap();
    n.advance_to(Duration::from_millis(1400));
    assert!(n.sent(false, "SIP/2.0").is_empty());
}

#[test]
fn only_an_unanswered_invite_can_be_discarded() {
    let mut n = Net::new(cfg(), cfg());
    n.call(&[]);
    let (cb, _) = n.incoming();
    n.b.answer(n.now, cb, 180, None).unwrap();
    n.pump();
    assert!(matches!(n.b.discard(cb), Err(UaError::InvalidState)));
}

/// The `Terminated` events among `events`.
fn terminations(events: Vec<UaEvent>) -> Vec<(CallKey, TerminationReason)> {
    events
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::Terminated { call, reason } => Some((call, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn unpracked_reliable_provisional_ends_the_call_once_as_prack_timeout() {
    let mut n = Net::new(cfg(), cfg());
    n.filter = Box::new(|by_a, t| !(by_a && t.payload.starts_with(b"PRACK ")));
    let ca = n.call(&[(HeaderName::Require, "100rel")]);
    let (cb, _) = n.incoming();
    n.b.answer(n.now, cb, 183, Some(Body::sdp("v=0 early\r\n")))
        .unwrap();
    n.pump();
    // RFC 3262 §3: no PRACK within 64*T1 -> 500 to the INVITE.
    n.advance_to(Duration::from_secs(40));
    let ended = terminations(n.events_b());
    assert_eq!(ended, vec![(cb, TerminationReason::PrackTimeout)]);
    assert_eq!(n.sent(false, "SIP/2.0 500").len(), 1);
    // A's own PRACK transaction timed out at the same time (Timer F, 408).
    let ev = n.events_a();
    assert!(
        ev.iter()
            .any(|e| matches!(e, UaEvent::Terminated { call, .. } if *call == ca)),
        "{ev:?}"
    );
    assert_eq!((n.a.calls(), n.b.calls()), (0, 0));
}

#[test]
fn cancel_ends_the_uas_call_once_as_cancelled() {
    let mut n = Net::new(cfg(), cfg());
    let ca = n.call(&[]);
    let (cb, _) = n.incoming();
    n.b.answer(n.now, cb, 180, None).unwrap();
    n.pump();
    n.a.cancel(n.now, ca).unwrap();
    n.pump();
    let ended = terminations(n.events_b());
    assert_eq!(ended, vec![(cb, TerminationReason::Cancelled)]);
}

#[test]
fn hangup_with_writes_a_typed_reason_header() {
    let mut n = Net::new(cfg(), cfg());
    let (ca, _) = n.established();
    let reason = sip::Reason::sip(410, "meeting \"ended\"\r\nX: y");
    n.a.hangup_with(n.now, ca, &reason).unwrap();
    n.pump();
    let byes = n.sent(true, "BYE ");
    let Message::Request(bye) = &byes[0] else {
        panic!()
    };
    assert_eq!(
        bye.headers.get(HeaderName::Reason),
        Some(r#"SIP;cause=410;text="meeting \"ended\"X: y""#)
    );
    // The string form stays, with control characters dropped.
    let (ca, _) = n.established();
    n.a.hangup_with_reason(n.now, ca, "Q.850;cause=16\r\nX: y")
        .unwrap();
    n.pump();
    let byes = n.sent(true, "BYE ");
    let Message::Request(bye) = &byes[1] else {
        panic!()
    };
    assert_eq!(
        bye.headers.get(HeaderName::Reason),
        Some("Q.850;cause=16X: y")
    );
}

#[test]
fn our_from_to_and_contact_are_written_whole() {
    let mut n = Net::new(cfg(), cfg());
    n.a.invite(
        n.now,
        peer(A, B),
        OutgoingCall {
            target: Uri::parse("sip:+17035550122@192.0.2.2").unwrap(),
            // A From value with a trailing empty parameter.
            from: "\"Caller\" <sip:+12065550100@192.0.2.1>;".into(),
            to: "<sip:+17035550122@192.0.2.2>".into(),
            body: None,
            headers: Vec::new(),
            credentials: None,
        },
    )
    .unwrap();
    n.pump();
    let (cb, inv) = n.incoming();
    let from = inv.headers.from().unwrap();
    assert!(from.tag().is_some());
    assert_eq!(from.display_name().as_deref(), Some("Caller"));
    assert!(!inv.headers.get(HeaderName::From).unwrap().contains(";;"));
    assert_eq!(
        inv.headers.get(HeaderName::Contact),
        Some("<sip:vc@192.0.2.1:5060>")
    );
    n.b.answer(n.now, cb, 200, None).unwrap();
    n.pump();
    let ok = n.sent(false, "SIP/2.0 200");
    let Message::Response(ok) = &ok[0] else {
        panic!()
    };
    assert!(ok.headers.to().unwrap().tag().is_some());
    assert_eq!(
        ok.headers.get(HeaderName::SessionExpires),
        Some("1800;refresher=uac"),
        "A supports timer and named no refresher: A refreshes (RFC 4028 §9)"
    );
}

fn guarded_cfg() -> UaConfig {
    let mut c = UaConfig::default();
    c.transaction.reflection_guard = true;
    c
}

#[test]
fn reflection_guard_call_verifies_the_caller_by_its_ack_and_keeps_2xx_on_time() {
    // B guards against reflection; A's address is unknown to it until A ACKs B's 2xx.
    let mut n = Net::new(cfg(), guarded_cfg());
    let a_ip = A.parse::<SocketAddr>().unwrap().ip();
    assert!(!n.b.transactions().is_verified(n.now, a_ip));
    let t0 = n.now;
    let (_ca, _cb) = n.established();
    // The 2xx was not held for credit: the call was set up without any time passing.
    assert_eq!(n.now, t0);
    assert!(n.b.transactions().is_verified(n.now, a_ip));
}

#[test]
fn reflection_guard_refusal_reaches_a_caller_through_its_retransmissions() {
    // A refusal larger than the INVITE waits for A's Timer A retransmissions (0.5 s, 1.5 s)
    // to bring the credit; the transaction answers; A ACKs with its To tag: A is verified.
    let mut n = Net::new(cfg(), guarded_cfg());
    let a_ip = A.parse::<SocketAddr>().unwrap().ip();
    let ca = n.call(&[]);
    let (cb, _) = n.incoming();
    let mut r = n.b.make_response(cb, 404).unwrap();
    r.headers.push(
        HeaderName::Warning,
        &format!("399 voice-connector \"{}\"", "x".repeat(300)),
    );
    n.b.respond(n.now, cb, r).unwrap();
    n.pump();
    assert!(
        n.sent(false, "SIP/2.0 404").is_empty(),
        "held: larger than the INVITE"
    );
    assert!(
        n.sent(false, "SIP/2.0 100").is_empty(),
        "no 100 Trying toward an unverified source"
    );
    n.advance_to(Duration::from_millis(1_600));
    assert_eq!(n.sent(false, "SIP/2.0 404").len(), 1);
    assert!(n.events_a().iter().any(|e| matches!(
        e,
        UaEvent::Terminated { call, reason: TerminationReason::Failed(404) } if *call == ca
    )));
    assert!(n.b.transactions().is_verified(n.now, a_ip));
    // Nothing more: no Timer G copies.
    n.advance_to(Duration::from_secs(40));
    assert_eq!(n.sent(false, "SIP/2.0 404").len(), 1);
}
