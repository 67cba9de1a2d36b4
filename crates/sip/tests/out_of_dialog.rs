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
