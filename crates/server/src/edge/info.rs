//! SIP INFO in a call's dialog (RFC 6086 §9, the legacy usage without Info Packages):
//! DTMF signalled out of band. `application/dtmf-relay` (`Signal=5`, `Duration=160`, in
//! milliseconds) and `application/dtmf` (the digit alone) are answered 200 and the digit
//! goes to the leg's meeting task (`MeetingMsg::Dtmf`), which in a B2BUA bridge sends it to
//! the other leg as RFC 4733 telephone-event. An empty INFO is answered 200 (keep-alive);
//! another body 415 with `Accept`, a malformed DTMF body 400 with a Warning, an INFO naming
//! an Info Package 469 (we advertise none, §4.2.2).

use std::time::{Duration, Instant};

use codec::telephone_event::char_event;
use sip::{CallKey, HeaderName, Request, Response, TransactionKey};

use super::{Edge, wire};
use crate::meeting::MeetingMsg;

/// The bodies we take, for `Accept` in a 415.
const ACCEPT: &str = "application/dtmf-relay, application/dtmf";

/// A digit's length when the body gives none.
const DEFAULT_LENGTH: Duration = Duration::from_millis(250);
/// Bounds of a digit's length: RFC 4733 receivers need a few packets, and a digit held
/// for seconds is a mistake or an attack on the other leg's audio.
const MIN_LENGTH: Duration = Duration::from_millis(40);
const MAX_LENGTH: Duration = Duration::from_secs(5);

/// One digit carried by an INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDigit {
    /// RFC 4733 event code (0-9, 10 `*`, 11 `#`, 12-15 A-D, 16 flash).
    pub event: u8,
    pub length: Duration,
}

/// What an INFO is answered with when it carries no digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoRefusal {
    /// 415: a body we do not read.
    Unsupported(String),
    /// 400: a DTMF body we cannot read, and why.
    Malformed(String),
    /// 469: an Info Package we did not advertise.
    BadPackage(String),
}

/// Reads an INFO: `Ok(None)` for an empty one, `Ok(Some(_))` for a digit.
pub fn parse(req: &Request) -> Result<Option<InfoDigit>, InfoRefusal> {
    if let Some(p) = req.headers.get_raw("Info-Package").next() {
        return Err(InfoRefusal::BadPackage(p.trim().to_string()));
    }
    let content_type = req.headers.get(HeaderName::ContentType);
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let media_type = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| InfoRefusal::Malformed("the DTMF body is not text".into()))?;
    match media_type.as_str() {
        "application/dtmf-relay" => dtmf_relay(text).map(Some),
        "application/dtmf" => Ok(Some(InfoDigit {
            event: signal(text.trim())?,
            length: DEFAULT_LENGTH,
        })),
        "" => Err(InfoRefusal::Unsupported("no Content-Type".into())),
        other => Err(InfoRefusal::Unsupported(other.to_string())),
    }
}

/// `Signal=<digit>` and an optional `Duration=<ms>`, one per line, in any case and order.
fn dtmf_relay(text: &str) -> Result<InfoDigit, InfoRefusal> {
    let mut event = None;
    let mut length = DEFAULT_LENGTH;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "signal" => event = Some(signal(value)?),
            "duration" => {
                let ms: u64 = value.parse().map_err(|_| {
                    InfoRefusal::Malformed(format!("Duration '{value}' is not milliseconds"))
                })?;
                length = Duration::from_millis(ms).clamp(MIN_LENGTH, MAX_LENGTH);
            }
            _ => {}
        }
    }
    let event = event.ok_or_else(|| InfoRefusal::Malformed("no Signal= line".into()))?;
    Ok(InfoDigit { event, length })
}

/// A digit (`0`-`9`, `*`, `#`, `A`-`D`) or an event code up to 16 (some PBXs send `10`
/// for `*`).
fn signal(value: &str) -> Result<u8, InfoRefusal> {
    let mut chars = value.chars();
    if let (Some(c), None) = (chars.next(), chars.next())
        && let Some(e) = char_event(c.to_ascii_uppercase())
    {
        return Ok(e);
    }
    match value.parse::<u8>() {
        Ok(e) if e <= 16 => Ok(e),
        _ => Err(InfoRefusal::Malformed(format!(
            "Signal '{}' is not a DTMF digit",
            value.chars().take(16).collect::<String>()
        ))),
    }
}

/// The answer to an INFO that carried no digit we take.
pub fn refusal_response(req: &Request, r: &InfoRefusal) -> Response {
    let (status, text) = match r {
        InfoRefusal::Unsupported(t) => (415, format!("INFO body {t} is not DTMF")),
        InfoRefusal::Malformed(t) => (400, t.clone()),
        InfoRefusal::BadPackage(p) => (469, format!("Info Package '{p}' is not supported")),
    };
    let mut resp = Response::for_request(req, status);
    match r {
        InfoRefusal::Unsupported(_) => resp.headers.push(HeaderName::Accept, ACCEPT),
        // RFC 6086 §4.2.2: a 469 lists what we take (nothing).
        InfoRefusal::BadPackage(_) => resp.headers.push_raw("Recv-Info", ""),
        InfoRefusal::Malformed(_) => {}
    }
    resp.headers
        .push(HeaderName::Warning, &wire::warning_value(&text));
    resp
}

impl Edge {
    /// An INFO in `call`'s dialog: answered at once; a digit goes to the leg's media.
    pub(super) fn on_info(
        &mut self,
        now: Instant,
        call: CallKey,
        txn: TransactionKey,
        req: &Request,
    ) {
        let resp = match parse(req) {
            Ok(None) => Response::for_request(req, 200),
            Ok(Some(digit)) => self.info_digit(call, digit, req),
            Err(r) => {
                tracing::info!(?r, "SIP INFO refused");
                refusal_response(req, &r)
            }
        };
        let _ = self.ua.respond_request(now, txn, resp);
    }

    fn info_digit(&mut self, call: CallKey, d: InfoDigit, req: &Request) -> Response {
        let leg = self.table.leg_of_sip(call);
        if let Some(l) = leg.filter(|l| self.sma.contains_key(l)) {
            self.sma_info_digit(l, d.event);
            return Response::for_request(req, 200);
        }
        let meeting = leg.and_then(|l| self.legs.get(&l)?.meeting.clone());
        let (Some(leg), Some(tx)) = (leg, meeting) else {
            // A call whose media is not up yet (or gone): the digit reaches no one.
            tracing::info!(?leg, "SIP INFO digit on a call without media is dropped");
            return Response::for_request(req, 200);
        };
        let msg = MeetingMsg::Dtmf {
            leg,
            event: d.event,
            length: d.length,
        };
        if tx.try_send(msg).is_err() {
            let mut resp = Response::for_request(req, 500);
            resp.headers.set(HeaderName::RetryAfter, "1");
            resp.headers.push(
                HeaderName::Warning,
                &wire::warning_value("media busy: the digit was not sent"),
            );
            return resp;
        }
        Response::for_request(req, 200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(content_type: Option<&str>, body: &str) -> Request {
        let mut text = String::from(
            "INFO sip:vc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: c1\r\n\
             CSeq: 2 INFO\r\nMax-Forwards: 70\r\n",
        );
        if let Some(ct) = content_type {
            text.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        match sip::parse_datagram(text.as_bytes(), &sip::ParseLimits::default()).expect("parses") {
            sip::Message::Request(r) => r,
            sip::Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn dtmf_relay_bodies_give_the_digit_and_its_length() {
        let d = parse(&info(
            Some("application/dtmf-relay"),
            "Signal=5\r\nDuration=160\r\n",
        ));
        assert_eq!(
            d,
            Ok(Some(InfoDigit {
                event: 5,
                length: Duration::from_millis(160)
            }))
        );
        let star = parse(&info(
            Some("Application/DTMF-Relay; charset=utf-8"),
            "duration= 100\nsignal= *",
        ));
        assert_eq!(star.map(|d| d.map(|d| d.event)), Ok(Some(10)));
        let hash = parse(&info(Some("application/dtmf-relay"), "Signal=11"));
        assert_eq!(
            hash,
            Ok(Some(InfoDigit {
                event: 11,
                length: DEFAULT_LENGTH
            }))
        );
        // Lengths are kept within bounds.
        let long = parse(&info(
            Some("application/dtmf-relay"),
            "Signal=d\r\nDuration=600000",
        ));
        assert_eq!(
            long,
            Ok(Some(InfoDigit {
                event: 15,
                length: MAX_LENGTH
            }))
        );
        let dtmf = parse(&info(Some("application/dtmf"), "#\r\n"));
        assert_eq!(dtmf.map(|d| d.map(|d| d.event)), Ok(Some(11)));
    }

    #[test]
    fn empty_info_is_a_keep_alive() {
        assert_eq!(parse(&info(None, "")), Ok(None));
        assert_eq!(parse(&info(Some("application/dtmf-relay"), "")), Ok(None));
    }

    #[test]
    fn other_bodies_get_415_with_accept() {
        let req = info(Some("application/media_control+xml"), "<x/>");
        let r = parse(&req).unwrap_err();
        assert_eq!(
            r,
            InfoRefusal::Unsupported("application/media_control+xml".into())
        );
        let resp = refusal_response(&req, &r);
        assert_eq!(resp.status, 415);
        assert_eq!(resp.headers.get(HeaderName::Accept), Some(ACCEPT));
        assert!(
            resp.headers
                .get(HeaderName::Warning)
                .is_some_and(|w| w.contains("media_control+xml"))
        );
        let bare = parse(&info(None, "5")).unwrap_err();
        assert_eq!(bare, InfoRefusal::Unsupported("no Content-Type".into()));
    }

    #[test]
    fn malformed_dtmf_gets_400_naming_the_field() {
        for (body, says) in [
            ("Signal=x", "Signal 'x'"),
            ("Signal=17", "Signal '17'"),
            ("Duration=160", "no Signal"),
            ("Signal=1\r\nDuration=soon", "Duration 'soon'"),
        ] {
            let req = info(Some("application/dtmf-relay"), body);
            let r = parse(&req).unwrap_err();
            let resp = refusal_response(&req, &r);
            assert_eq!(resp.status, 400, "{body}");
            let w = resp.headers.get(HeaderName::Warning).unwrap_or_default();
            assert!(w.contains(says), "{body}: {w}");
        }
    }

    #[test]
    fn an_info_package_gets_469() {
        let mut req = info(Some("application/dtmf-relay"), "Signal=1");
        req.headers.push_raw("Info-Package", "foo");
        let r = parse(&req).unwrap_err();
        let resp = refusal_response(&req, &r);
        assert_eq!(resp.status, 469);
        assert_eq!(resp.headers.get_raw("Recv-Info").next(), Some(""));
    }
}
