//! Requests we send outside any dialog (OPTIONS keep-alives to a trunk): the final response
//! is reported once; silence is reported as 408 after Timer F (64*T1), on virtual time.

mod common;

use std::time::Duration;

use common::{A, B, Net, peer};
use sip::{HeaderName, Method, OutOfDialog, UaConfig, UaEvent, Uri};

fn options() -> OutOfDialog {
    OutOfDialog {
        method: Method::Options,
        target: Uri::parse("sip:carrier.example.net").unwrap(),
        from: "<sip:keepalive@vc.example.com>".into(),
        to: "<sip:carrier.example.net>".into(),
        headers: vec![(HeaderName::Other, "X-Probe: 1".into())],
        ..OutOfDialog::new(
            Method::Options,
            Uri::parse("sip:x").unwrap(),
            String::new(),
            String::new(),
        )
    }
}

fn outcomes(events: Vec<UaEvent>) -> Vec<(u16, bool)> {
    events
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::OutOfDialogResponse {
                status, response, ..
            } => Some((status, response.is_some())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_answered_options_is_reported_once_with_its_response() {
    let mut net = Net::new(UaConfig::default(), UaConfig::default());
    let key = net
        .a
        .send_out_of_dialog(net.now, peer(A, B), options())
        .unwrap();
    net.pump();
    let sent = String::from_utf8_lossy(&net.log[0].2).into_owned();
    assert!(
        sent.starts_with("OPTIONS sip:carrier.example.net SIP/2.0\r\n"),
        "{sent}"
    );
    assert!(
        sent.contains("\r\nX-Probe: 1\r\n") && sent.contains("\r\nCSeq: 1 OPTIONS\r\n"),
        "{sent}"
    );
    let events: Vec<UaEvent> = net.events_a();
    let got: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            UaEvent::OutOfDialogResponse { txn, status, .. } => Some((*txn, *status)),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![(key, 200)]);
    net.advance_to(Duration::from_secs(40));
    assert!(outcomes(net.events_a()).is_empty(), "reported once");
}

#[test]
fn an_unanswered_options_is_reported_as_408_after_timer_f() {
    let mut net = Net::new(UaConfig::default(), UaConfig::default());
    net.filter = Box::new(|from_a, _| !from_a);
    net.a
        .send_out_of_dialog(net.now, peer(A, B), options())
        .unwrap();
    net.advance_to(Duration::from_secs(31));
    assert!(outcomes(net.events_a()).is_empty(), "not before 64*T1");
    net.advance_to(Duration::from_secs(33));
    assert_eq!(outcomes(net.events_a()), vec![(408, false)]);
}

fn register(cseq: u32) -> OutOfDialog {
    OutOfDialog {
        call_id: Some("reg-1@192.0.2.1".into()),
        cseq: Some(cseq),
        credentials: Some(sip::Credentials {
            username: "trunk".into(),
            password: "s3cret".into(),
        }),
        headers: vec![(HeaderName::Expires, "3600".into())],
        ..OutOfDialog::new(
            Method::Register,
            Uri::parse("sip:carrier.example.net").unwrap(),
            "<sip:trunk@carrier.example.net>".into(),
            "<sip:trunk@carrier.example.net>".into(),
        )
    }
}

/// B's next out-of-dialog request, answered `status` with `extra` headers.
fn answer_b(net: &mut Net, status: u16, extra: &[(HeaderName, &str)]) -> sip::Request {
    let (txn, request) = net
        .events_b()
        .into_iter()
        .find_map(|e| match e {
            UaEvent::OutOfDialogRequest { txn, request, .. } => Some((txn, request)),
            _ => None,
        })
        .expect("B got a request");
    let mut resp = sip::Response::for_request(&request, status);
    for (n, v) in extra {
        resp.headers.push(*n, v);
    }
    net.b.respond_request(net.now, txn, resp).unwrap();
    net.pump();
    request
}

#[test]
fn a_challenged_register_is_answered_once_with_the_same_call_id_and_the_next_cseq() {
    let mut cfg_b = UaConfig::default();
    cfg_b.allow.push(Method::Register);
    let mut net = Net::new(UaConfig::default(), cfg_b);
    let key = net
        .a
        .send_out_of_dialog(net.now, peer(A, B), register(7))
        .unwrap();
    net.pump();
    let challenge = "Digest realm=\"carrier\", nonce=\"n0nce\", qop=\"auth\"";
    let first = answer_b(&mut net, 401, &[(HeaderName::WwwAuthenticate, challenge)]);
    assert!(first.headers.get(HeaderName::Authorization).is_none());
    assert!(
        outcomes(net.events_a()).is_empty(),
        "the 401 is not reported"
    );
    let second = answer_b(&mut net, 200, &[(HeaderName::Expires, "60")]);
    let h = &second.headers;
    assert_eq!(h.get(HeaderName::CallId), Some("reg-1@192.0.2.1"));
    assert_eq!(h.cseq().map(|c| c.seq), Some(8));
    assert_eq!(h.get(HeaderName::Expires), Some("3600"));
    // The digest is the one the password gives for this challenge and this cnonce.
    let auth = h.get(HeaderName::Authorization).expect("Authorization");
    let params = sip::auth::AuthParams::parse(auth).unwrap();
    let cnonce = params.get("cnonce").unwrap().into_owned();
    let expected = sip::auth::respond_to_challenge(
        challenge,
        "REGISTER",
        "sip:carrier.example.net",
        "trunk",
        "s3cret",
        &cnonce,
        1,
    )
    .unwrap();
    assert_eq!(auth, expected);
    let got: Vec<_> = net
        .events_a()
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::OutOfDialogResponse { txn, status, .. } => Some((txn, status)),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![(key, 200)], "reported under the first key");
}

#[test]
fn a_second_challenge_is_reported() {
    let mut cfg_b = UaConfig::default();
    cfg_b.allow.push(Method::Register);
    let mut net = Net::new(UaConfig::default(), cfg_b);
    net.a
        .send_out_of_dialog(net.now, peer(A, B), register(1))
        .unwrap();
    net.pump();
    let challenge = "Digest realm=\"carrier\", nonce=\"n0nce\"";
    answer_b(&mut net, 401, &[(HeaderName::WwwAuthenticate, challenge)]);
    answer_b(&mut net, 401, &[(HeaderName::WwwAuthenticate, challenge)]);
    assert_eq!(outcomes(net.events_a()), vec![(401, true)]);
}

#[test]
fn a_transport_error_ends_requests_to_that_peer_at_once_as_503() {
    let mut net = Net::new(UaConfig::default(), UaConfig::default());
    net.filter = Box::new(|from_a, _| !from_a);
    let mut tcp = peer(A, B);
    tcp.transport = sip::TransportKind::Tcp;
    net.a.send_out_of_dialog(net.now, tcp, options()).unwrap();
    let call = net
        .a
        .invite(
            net.now,
            tcp,
            sip::OutgoingCall {
                target: Uri::parse("sip:+12065550100@carrier.example.net").unwrap(),
                from: "<sip:+17035550100@vc.example.com>".into(),
                to: "<sip:+12065550100@carrier.example.net>".into(),
                body: None,
                headers: Vec::new(),
                credentials: None,
            },
        )
        .unwrap();
    // A request to another peer is not touched.
    net.a
        .send_out_of_dialog(net.now, peer(A, B), options())
        .unwrap();
    net.pump();
    net.a.handle_transport_error(net.now, tcp);
    let events = net.events_a();
    assert!(
        events.iter().any(|e| matches!(
            e,
            UaEvent::Terminated { call: c, reason: sip::TerminationReason::Failed(503) } if *c == call
        )),
        "{events:?}"
    );
    assert_eq!(outcomes(events), vec![(503, false)]);
    net.advance_to(Duration::from_secs(33));
    assert_eq!(
        outcomes(net.events_a()),
        vec![(408, false)],
        "the UDP one times out"
    );
}
