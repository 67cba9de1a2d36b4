//! SIP parsing: `sip::parse_datagram` and `sip::parse_stream` (framing a stream buffer
//! message by message) under default and tight `ParseLimits`, then every typed view the
//! stack reads from a parsed message, printing, re-parsing, the 400 built from a parse
//! error, Via stamping and the redacted message log.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::log::LoggedMessage;
use sip::{
    HeaderName, Message, ParseLimits, Peer, StreamParse, TransportKind, Uri, UriRef,
    bad_request_response, parse_datagram, parse_stream, stamp_via,
};

const TIGHT: ParseLimits = ParseLimits {
    max_message_size: 1024,
    max_headers: 8,
    max_line_length: 128,
};

fn peer() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        local: ([192, 0, 2, 2], 5060).into(),
        remote: ([192, 0, 2, 1], 5060).into(),
    }
}

/// Reads what the transaction layer, the dialogs and the edge read from a message.
fn inspect(msg: &Message) {
    let h = msg.headers();
    let _ = h.vias().map(|v| (v.branch(), v.received(), v.rport(), v.sent_by())).count();
    if let Some(v) = h.top_via() {
        let _ = (v.is_rfc3261(), v.maddr());
    }
    for na in [h.from(), h.to(), h.contact()].into_iter().flatten() {
        let _ = (na.tag(), na.display_name(), na.uri.as_str());
        let _ = na.uri.user_decoded();
    }
    let _ = (h.call_id(), h.max_forwards(), h.content_length(), h.expires());
    if let Some(c) = h.cseq() {
        let _ = c.method();
    }
    let _ = h.contacts().map(|c| c.addr().map(|a| a.tag())).count();
    let _ = h.routes().count() + h.record_routes().count();
    let _ = (h.session_expires(), h.min_se(), h.rseq(), h.rack());
    let _ = h.allow().count();
    let _ = h.option_tags(HeaderName::Require).count();
    let _ = h.content_type_is("application", "sdp");
    if let Some(ct) = h.content_type() {
        let _ = ct.is("multipart", "mixed");
    }
    for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
        if let Some(p) = h.credentials(name, Some("vc.example.com")) {
            let _ = (p.get("username"), p.get("nonce"), format!("{p:?}"));
        }
        let _ = h.credentials(name, None);
    }
    for name in [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate] {
        for p in h.challenges(name) {
            let _ = (p.get("realm"), p.iter().count());
        }
    }
    if let Message::Request(r) = msg {
        let u: &Uri = &r.uri;
        let _ = (u.scheme(), u.user(), u.host(), u.port(), u.param("transport"));
        let _ = u.params().iter().count();
        if let Ok(other) = UriRef::parse(u.as_str()) {
            let _ = u.as_ref().equivalent(&other);
        }
    }
}

fn roundtrip(msg: &Message, limits: &ParseLimits) {
    let printed = msg.to_bytes();
    if let Ok(again) = parse_datagram(&printed, limits) {
        inspect(&again);
        let _ = again.to_bytes();
    }
}

fuzz_target!(|data: &[u8]| {
    for limits in [ParseLimits::default(), TIGHT] {
        match parse_datagram(data, &limits) {
            Ok(mut msg) => {
                inspect(&msg);
                roundtrip(&msg, &limits);
                if let Message::Request(r) = &mut msg {
                    stamp_via(r, ([198, 51, 100, 9], 40000).into());
                    let _ = r.to_bytes();
                }
            }
            Err(e) => {
                let _ = (e.status_and_reason(), e.to_string());
                let _ = bad_request_response(data, &e, "voice-connector");
            }
        }

        // A stream buffer holding any number of messages, framed one after another.
        let mut rest = data;
        for _ in 0..64 {
            match parse_stream(rest, &limits) {
                Ok(StreamParse::Message { message, consumed }) => {
                    inspect(&message);
                    assert!(consumed > 0 && consumed <= rest.len());
                    rest = &rest[consumed..];
                }
                Ok(StreamParse::KeepAlive { consumed }) => {
                    assert!(consumed > 0 && consumed <= rest.len());
                    rest = &rest[consumed..];
                }
                Ok(StreamParse::Incomplete) | Err(_) => break,
            }
        }
    }

    let log = LoggedMessage::inbound(peer(), data);
    let _ = log.to_string();
    let _ = sip::log::redact_message(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = sip::log::redact_join_tokens(s);
        let _ = sip::auth::redact_credentials(s);
        let _ = (Uri::parse(s), sip::unquote(s), sip::percent_decode(s));
    }
});
