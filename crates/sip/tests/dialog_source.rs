//! In-dialog requests are accepted only from an address the dialog knows (its peer, its
//! remote target's host, a hop of its route set), issue 14: a BYE forged from elsewhere
//! with the right Call-ID and tags gets 403 and the call goes on. Virtual time, two
//! in-memory user agents (A calls B).

use sip::{
    Body, FOREIGN_SOURCE_WARNING, HeaderName, Message, Method, Response, TerminationReason, UaEvent,
};

mod common;
use common::*;

/// Where the forger sends from.
const FORGER: &str = "198.51.100.66:5060";

/// The dialog's identifiers as B sees them: Call-ID, A's tag (remote), B's tag (local).
fn dialog_ids(n: &Net) -> (String, String, String) {
    let Message::Request(inv) = &n.sent(true, "INVITE ")[0] else {
        panic!()
    };
    let Message::Response(ok) = &n.sent(false, "SIP/2.0 200")[0] else {
        panic!()
    };
    let h = &inv.headers;
    (
        h.call_id().unwrap().to_owned(),
        h.from().unwrap().tag().unwrap().to_owned(),
        ok.headers.to().unwrap().tag().unwrap().to_owned(),
    )
}

/// `method` inside the dialog `ids`, as A would send it to B but from `via_host`.
fn in_dialog(method: &str, ids: &(String, String, String), via_host: &str, cseq: u32) -> String {
    let (cid, a_tag, b_tag) = ids;
    format!(
        "{method} sip:vc@192.0.2.2:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via_host};branch=z9hG4bKforged{method}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+12065550100@192.0.2.1>;tag={a_tag}\r\n\
         To: <sip:+17035550122@192.0.2.2>;tag={b_tag}\r\n\
         Call-ID: {cid}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:x@{via_host}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Feeds `text` to B from `source` and returns what B answered (to that source).
fn to_b_from(n: &mut Net, text: &str, source: &str) -> Vec<Response> {
    let _ = n.b.handle_datagram(n.now, text.as_bytes(), peer(B, source));
    std::iter::from_fn(|| n.b.poll_transmit())
        .map(|t| {
            assert_eq!(t.peer.remote.to_string(), source);
            match Message::parse(&t.payload).unwrap() {
                Message::Response(r) => r,
                Message::Request(r) => panic!("B sent {} {}", r.method.as_str(), r.uri),
            }
        })
        .collect()
}

fn foreign(events: &[UaEvent]) -> Vec<(Method, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            UaEvent::ForeignSource { method, source, .. } => {
                Some((method.clone(), source.to_string()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn forged_bye_from_elsewhere_is_refused_and_the_call_goes_on() {
    let mut n = Net::new(cfg(), cfg());
    let (ca, cb) = n.established();
    let ids = dialog_ids(&n);
    // Tags and Call-IDs are 128 random bits (IdGenerator), not a counter.
    assert_eq!(ids.2.len(), 32, "{ids:?}");

    for method in ["BYE", "INVITE", "UPDATE", "INFO"] {
        let answers = to_b_from(&mut n, &in_dialog(method, &ids, FORGER, 50), FORGER);
        assert_eq!(answers.len(), 1, "{method}: {answers:?}");
        assert_eq!(answers[0].status, 403, "{method}");
        let warning = answers[0].headers.get(HeaderName::Warning).unwrap();
        assert!(warning.contains(FOREIGN_SOURCE_WARNING), "{warning}");
        let ev = n.events_b();
        assert_eq!(
            foreign(&ev),
            [(Method::from_token(method), FORGER.to_owned())],
            "{ev:?}"
        );
        assert!(
            !ev.iter()
                .any(|e| matches!(e, UaEvent::Terminated { .. } | UaEvent::Reinvite { .. })),
            "{ev:?}"
        );
    }
    assert_eq!(n.b.calls(), 1, "the call is still up");

    // A's own BYE (CSeq 2: the forged CSeq 50 did not count) ends it.
    n.a.hangup(n.now, ca).unwrap();
    n.pump();
    let ev = n.events_b();
    assert!(
        ev.iter().any(|e| matches!(e,
            UaEvent::Terminated { call, reason: TerminationReason::RemoteBye } if *call == cb)),
        "{ev:?}"
    );
    assert!(foreign(&ev).is_empty());
    assert_eq!((n.a.calls(), n.b.calls()), (0, 0));
}

#[test]
fn forged_ack_does_not_confirm_the_call() {
    let mut n = Net::new(cfg(), cfg());
    // A's ACK is lost for now: B keeps retransmitting its 2xx.
    let cb = n.answered_acks_lost();
    let _ = n.events_b();
    let ids = dialog_ids(&n);
    assert!(to_b_from(&mut n, &in_dialog("ACK", &ids, FORGER, 1), FORGER).is_empty());
    let ev = n.events_b();
    assert_eq!(foreign(&ev), [(Method::Ack, FORGER.to_owned())]);
    assert!(!ev.iter().any(|e| matches!(e, UaEvent::Confirmed { .. })));
    // The real ACK, from A, confirms it.
    assert!(to_b_from(&mut n, &in_dialog("ACK", &ids, A, 1), A).is_empty());
    let ev = n.events_b();
    assert!(
        ev.iter()
            .any(|e| matches!(e, UaEvent::Confirmed { call, .. } if *call == cb))
    );
}

#[test]
fn forged_cancel_does_not_cancel_the_invite() {
    let mut n = Net::new(cfg(), cfg());
    n.call(&[]);
    let (cb, inv) = n.incoming();
    // The CANCEL names the INVITE's transaction (its top Via) but comes from elsewhere.
    let via = inv.headers.get(HeaderName::Via).unwrap().to_owned();
    let cancel = format!(
        "CANCEL {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
         Call-ID: {}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
        inv.uri,
        inv.headers.get(HeaderName::From).unwrap(),
        inv.headers.get(HeaderName::To).unwrap(),
        inv.headers.call_id().unwrap(),
    );
    let answers = to_b_from(&mut n, &cancel, FORGER);
    assert_eq!(answers.iter().map(|r| r.status).collect::<Vec<_>>(), [403]);
    assert_eq!(
        foreign(&n.events_b()),
        [(Method::Cancel, FORGER.to_owned())]
    );
    // The INVITE is still pending: B can answer it.
    n.b.answer(n.now, cb, 200, Some(Body::sdp("v=0 answer\r\n")))
        .unwrap();
    n.pump();
    assert!(
        n.events_a()
            .iter()
            .any(|e| matches!(e, UaEvent::Answered { .. }))
    );
}

/// A dialog set up by a raw INVITE from A whose Contact is 10.0.0.9 and whose
/// Record-Route names a proxy at 203.0.113.7: B's call key and the dialog ids.
fn routed_call(n: &mut Net) -> (sip::CallKey, (String, String, String)) {
    let (cb, ok) = n.raw_call_answered("Record-Route: <sip:203.0.113.7;lr>\n");
    let b_tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    (cb, ("raw-INVITE".into(), "x1".into(), b_tag))
}

#[test]
fn requests_through_the_route_set_or_from_the_remote_target_are_accepted() {
    let mut n = Net::new(cfg(), cfg());
    let (_, ids) = routed_call(&mut n);
    // From the proxy that Record-Routed the dialog.
    let ok = to_b_from(
        &mut n,
        &in_dialog("INFO", &ids, "203.0.113.7:5060", 2),
        "203.0.113.7:5060",
    );
    assert!(ok.is_empty(), "INFO goes to the application: {ok:?}");
    let ev = n.events_b();
    assert!(foreign(&ev).is_empty(), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, UaEvent::Request { .. })));
    // From the remote target's host (its Contact), e.g. a phone whose requests took
    // another path.
    let bye = to_b_from(
        &mut n,
        &in_dialog("BYE", &ids, "10.0.0.9:5060", 3),
        "10.0.0.9:5060",
    );
    assert_eq!(bye.iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    assert_eq!(n.b.calls(), 0);
}

#[test]
fn a_neighbour_of_the_peer_is_still_foreign() {
    let mut n = Net::new(cfg(), cfg());
    let (cb, ids) = routed_call(&mut n);
    // The same /24 as the peer, the proxy and the target: no prefix is trusted.
    for src in ["192.0.2.9:5060", "203.0.113.8:5060", "10.0.0.10:5060"] {
        let r = to_b_from(&mut n, &in_dialog("BYE", &ids, src, 9), src);
        assert_eq!(
            r.iter().map(|r| r.status).collect::<Vec<_>>(),
            [403],
            "{src}"
        );
    }
    assert_eq!(n.b.calls(), 1);
    let _ = cb;
}
