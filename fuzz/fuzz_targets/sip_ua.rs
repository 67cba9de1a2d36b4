//! A `sip::UserAgent` on virtual time, driven by a script: datagrams from the network
//! (`handle_datagram`), the clock (`handle_timeout` at `poll_timeout`) and the application's
//! calls, with every transmit and event drained after each step. Checked beyond "no
//! panic": every message the UA sends parses.
//!
//! Input: pieces separated by NUL bytes; a plain SIP message (the seed corpus) is a script
//! of one step. A piece starting with a byte from 0x01 to 0x0b is a step (`c` picks one of
//! the calls, `s` a status, `m` a method, from small tables):
//!
//! | byte | step |
//! | --- | --- |
//! | 01 hi lo | time passes by (hi·256 + lo)·4 ms, timers fire in order |
//! | 02 c b s | `answer` (with SDP when b is odd) |
//! | 03 c text | `hangup`, or `hangup_with_reason(text)` |
//! | 04 c m b | `send_in_dialog` (re-INVITE, UPDATE, INFO) |
//! | 05 flags | `invite` (100rel, offer, credentials by bit) |
//! | 06 c | `cancel` |
//! | 07 t bytes | a datagram over UDP, TCP or TLS |
//! | 08 c | `discard` |
//! | 09 s headers | the peer answers the UA's last request (`headers` added raw) |
//! | 0a m headers | the peer sends a request in the dialog of the UA's last response |
//! | 0b x s | `respond_request` to an in-dialog or out-of-dialog request |
//!
//! Any other piece is a UDP datagram. Steps 09 and 0a let the fuzzer reach confirmed
//! dialogs without guessing tags and branches.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sip::{
    Body, CallKey, HeaderName, Message, Method, OutgoingCall, Peer, Request, Response,
    TransactionKey, TransportKind, UaConfig, UaEvent, Uri, UserAgent,
};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n\
                   m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// Statuses the application answers with.
const STATUSES: [u16; 12] = [100, 180, 183, 200, 202, 302, 401, 404, 486, 488, 500, 603];
/// Methods of requests sent inside a dialog, by us or by the peer.
const METHODS: [Method; 8] = [
    Method::Ack,
    Method::Bye,
    Method::Invite,
    Method::Update,
    Method::Prack,
    Method::Info,
    Method::Options,
    Method::Cancel,
];
/// Peer statuses answering the UA's requests.
const PEER_STATUSES: [u16; 14] = [
    100, 180, 183, 200, 202, 401, 407, 408, 422, 481, 486, 487, 491, 500,
];

fn peer(transport: TransportKind) -> Peer {
    Peer {
        transport,
        local: ([192, 0, 2, 2], 5060).into(),
        remote: ([192, 0, 2, 1], 5060).into(),
    }
}

struct Harness {
    ua: UserAgent,
    now: Instant,
    calls: Vec<CallKey>,
    /// Server transactions the application answers, with their requests.
    txns: Vec<(TransactionKey, Request)>,
    last_request: Option<Request>,
    last_response: Option<Response>,
    branch: u32,
}

fn pick<T: Clone>(items: &[T], i: u8) -> T {
    items[usize::from(i) % items.len()].clone()
}

impl Harness {
    fn call(&self, i: u8) -> Option<CallKey> {
        (!self.calls.is_empty()).then(|| pick(&self.calls, i))
    }

    /// Drains transmits and events; keeps what the script's later steps refer to.
    fn drain(&mut self) {
        for _ in 0..10_000 {
            let Some(t) = self.ua.poll_transmit() else {
                break;
            };
            match Message::parse(&t.payload) {
                Ok(Message::Request(r)) => self.last_request = Some(r),
                Ok(Message::Response(r)) => self.last_response = Some(r),
                // What the UA prints from what it parsed must parse again (short of the
                // size limit, which echoed headers can push a message over). The answers
                // to unparseable requests (400, 505, 513) echo their bytes as they came.
                Err(e)
                    if t.payload.len() < 60_000
                        && ![&b"SIP/2.0 400 "[..], b"SIP/2.0 505 ", b"SIP/2.0 513 "]
                            .iter()
                            .any(|p| t.payload.starts_with(p)) =>
                {
                    panic!("the UA sent a message it cannot parse: {e}")
                }
                Err(_) => {}
            }
        }
        while let Some(ev) = self.ua.poll_event() {
            match ev {
                UaEvent::IncomingCall { call, .. } => self.calls.push(call),
                UaEvent::Request { txn, request, .. }
                | UaEvent::OutOfDialogRequest { txn, request, .. } => {
                    self.txns.push((txn, request))
                }
                UaEvent::Terminated { call, .. } => self.calls.retain(|c| *c != call),
                _ => {}
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        for _ in 0..512 {
            match self.ua.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.ua.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
        self.ua.handle_timeout(self.now);
        self.drain();
    }

    fn datagram(&mut self, bytes: &[u8], transport: TransportKind) {
        let _ = self.ua.handle_datagram(self.now, bytes, peer(transport));
        self.drain();
    }

    /// The peer answers the UA's last request; `extra` goes in as header lines.
    fn peer_answers(&mut self, status: u16, extra: &[u8]) {
        let Some(req) = &self.last_request else {
            return;
        };
        let mut r = Response::for_request(req, status);
        if status > 100 {
            let to = req.headers.get(HeaderName::To).unwrap_or("<sip:x@192.0.2.1>");
            if !to.contains("tag=") {
                r.headers.set(HeaderName::To, &format!("{to};tag=peer"));
            }
        }
        if (101..300).contains(&status) {
            r.headers.push(HeaderName::Contact, "<sip:peer@192.0.2.1:5060>");
        }
        if (200..300).contains(&status) && req.method == Method::Invite {
            r.headers.set(HeaderName::ContentType, "application/sdp");
            r.body = SDP.as_bytes().to_vec();
        }
        let bytes = with_extra_headers(r.to_bytes(), extra);
        self.datagram(&bytes, TransportKind::Udp);
    }

    /// The peer sends a request in the dialog of the UA's last response.
    fn peer_requests(&mut self, method: &Method, extra: &[u8]) {
        let Some(resp) = &self.last_response else {
            return;
        };
        let h = &resp.headers;
        let (Some(from), Some(to), Some(call_id), Some(cseq)) = (
            h.get(HeaderName::From),
            h.get(HeaderName::To),
            h.get(HeaderName::CallId),
            h.cseq(),
        ) else {
            return;
        };
        let seq = match method {
            Method::Ack | Method::Cancel => cseq.seq,
            _ => cseq.seq.saturating_add(1),
        };
        self.branch += 1;
        let branch = match method {
            // CANCEL and a non-2xx ACK belong to the INVITE transaction.
            Method::Cancel => h
                .top_via()
                .and_then(|v| v.branch())
                .unwrap_or("z9hG4bKx")
                .to_owned(),
            _ => format!("z9hG4bKfz{}", self.branch),
        };
        let text = format!(
            "{m} sip:vc@192.0.2.2:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {m}\r\n\
             Contact: <sip:peer@192.0.2.1:5060>\r\nContent-Length: 0\r\n\r\n",
            m = method.as_str(),
        );
        let bytes = with_extra_headers(text.into_bytes(), extra);
        self.datagram(&bytes, TransportKind::Udp);
    }

    fn step(&mut self, op: u8, args: &[u8]) {
        let arg = |i: usize| args.get(i).copied().unwrap_or(0);
        let rest = |i: usize| args.get(i..).unwrap_or(&[]);
        match op {
            0x01 => {
                let ms = u64::from(u16::from_be_bytes([arg(0), arg(1)])) * 4;
                self.advance(Duration::from_millis(ms));
            }
            0x02 => {
                if let Some(call) = self.call(arg(0)) {
                    let body = (arg(1) & 1 == 1).then(|| Body::sdp(SDP));
                    let _ = self.ua.answer(self.now, call, pick(&STATUSES, arg(2)), body);
                    self.drain();
                }
            }
            0x03 => {
                if let Some(call) = self.call(arg(0)) {
                    let _ = match std::str::from_utf8(rest(1)) {
                        Ok(reason) if !reason.is_empty() => {
                            self.ua.hangup_with_reason(self.now, call, reason)
                        }
                        _ => self.ua.hangup(self.now, call),
                    };
                    self.drain();
                }
            }
            0x04 => {
                if let Some(call) = self.call(arg(0)) {
                    let method = pick(&[Method::Invite, Method::Update, Method::Info], arg(1));
                    let body = (arg(2) & 1 == 1).then(|| Body::sdp(SDP));
                    let _ = self.ua.send_in_dialog(self.now, call, method, body);
                    self.drain();
                }
            }
            0x05 => {
                let mut headers = Vec::new();
                if arg(0) & 1 == 1 {
                    headers.push((HeaderName::Require, "100rel".to_owned()));
                }
                let call = OutgoingCall {
                    target: Uri::parse("sip:+12065550100@192.0.2.1:5060").expect("uri"),
                    from: "<sip:+17035550122@vc.example.com>".into(),
                    to: "<sip:+12065550100@192.0.2.1>".into(),
                    body: (arg(0) & 2 == 2).then(|| Body::sdp(SDP)),
                    headers,
                    credentials: (arg(0) & 4 == 4).then(|| sip::Credentials {
                        username: "trunk".into(),
                        password: "secret".into(),
                    }),
                };
                if let Ok(c) = self.ua.invite(self.now, peer(TransportKind::Udp), call) {
                    self.calls.push(c);
                }
                self.drain();
            }
            0x06 => {
                if let Some(call) = self.call(arg(0)) {
                    let _ = self.ua.cancel(self.now, call);
                    self.drain();
                }
            }
            0x07 => {
                let transport = pick(
                    &[TransportKind::Udp, TransportKind::Tcp, TransportKind::Tls],
                    arg(0),
                );
                self.datagram(rest(1), transport);
            }
            0x08 => {
                if let Some(call) = self.call(arg(0)) {
                    let _ = self.ua.discard(call);
                    self.drain();
                }
            }
            0x09 => {
                let status = pick(&PEER_STATUSES, arg(0));
                self.peer_answers(status, rest(1));
            }
            0x0a => {
                let method = pick(&METHODS, arg(0));
                self.peer_requests(&method, rest(1));
            }
            0x0b => {
                if !self.txns.is_empty() {
                    let (txn, req) = pick(&self.txns, arg(0));
                    let mut resp = Response::for_request(&req, pick(&STATUSES, arg(1)).max(200));
                    if let Some(to) = req.headers.get(HeaderName::To)
                        && !to.contains("tag=")
                    {
                        resp.headers.set(HeaderName::To, &format!("{to};tag=app"));
                    }
                    let _ = self.ua.respond_request(self.now, txn, resp);
                    self.drain();
                }
            }
            _ => unreachable!(),
        }
    }
}

/// Inserts `extra` (header lines) before the empty line ending the header section.
fn with_extra_headers(mut msg: Vec<u8>, extra: &[u8]) -> Vec<u8> {
    if extra.is_empty() {
        return msg;
    }
    let Some(end) = msg.windows(4).position(|w| w == b"\r\n\r\n") else {
        return msg;
    };
    let mut insert = extra.to_vec();
    insert.extend_from_slice(b"\r\n");
    msg.splice(end + 2..end + 2, insert);
    msg
}

fuzz_target!(|data: &[u8]| {
    let mut h = Harness {
        ua: UserAgent::new(UaConfig::default(), 7),
        now: Instant::now(),
        calls: Vec::new(),
        txns: Vec::new(),
        last_request: None,
        last_response: None,
        branch: 0,
    };
    for piece in data.split(|&b| b == 0).take(64) {
        match piece.split_first() {
            Some((&op, args)) if (0x01..=0x0b).contains(&op) => h.step(op, args),
            Some(_) => h.datagram(piece, TransportKind::Udp),
            None => {}
        }
    }
    // Let every timer run out: retransmissions, timeouts, session timers.
    for _ in 0..8 {
        h.advance(Duration::from_secs(40));
    }
});
