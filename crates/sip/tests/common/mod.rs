//! The harness the dialog tests share: two in-memory user agents, A (the caller) and B,
//! on virtual time, and raw requests to B.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use sip::{
    Body, CallKey, HeaderName, Message, OutgoingCall, Peer, Response, Transmit, TransportKind,
    UaConfig, UaEvent, Uri, UserAgent,
};

pub const A: &str = "192.0.2.1:5060";
pub const B: &str = "192.0.2.2:5060";

pub fn peer(local: &str, remote: &str) -> Peer {
    Peer {
        transport: TransportKind::Udp,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
    }
}

/// Returns false to drop a packet; the flag is `true` for packets sent by A.
pub type Filter = Box<dyn FnMut(bool, &Transmit) -> bool>;

pub struct Net {
    pub a: UserAgent,
    pub b: UserAgent,
    pub start: Instant,
    pub now: Instant,
    /// Returns false to drop a packet; `true` argument = sent by A.
    pub filter: Filter,
    pub log: Vec<(Duration, bool, Vec<u8>)>,
}

impl Net {
    pub fn new(cfg_a: UaConfig, cfg_b: UaConfig) -> Net {
        let now = Instant::now();
        Net {
            a: UserAgent::new(cfg_a, 1),
            b: UserAgent::new(cfg_b, 2),
            start: now,
            now,
            filter: Box::new(|_, _| true),
            log: Vec::new(),
        }
    }

    pub fn pump(&mut self) {
        for _ in 0..100 {
            let from_a: Vec<_> = std::iter::from_fn(|| self.a.poll_transmit()).collect();
            let from_b: Vec<_> = std::iter::from_fn(|| self.b.poll_transmit()).collect();
            if from_a.is_empty() && from_b.is_empty() {
                return;
            }
            for t in from_a {
                self.log
                    .push((self.now - self.start, true, t.payload.clone()));
                if (self.filter)(true, &t) {
                    let _ = self.b.handle_datagram(self.now, &t.payload, peer(B, A));
                }
            }
            for t in from_b {
                self.log
                    .push((self.now - self.start, false, t.payload.clone()));
                if (self.filter)(false, &t) {
                    let _ = self.a.handle_datagram(self.now, &t.payload, peer(A, B));
                }
            }
        }
        panic!("message loop");
    }

    /// Advances virtual time to `start + t`, firing timers in order.
    pub fn advance_to(&mut self, t: Duration) {
        let end = self.start + t;
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(n) if n <= end => {
                    self.now = self.now.max(n);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
        self.a.handle_timeout(end);
        self.b.handle_timeout(end);
        self.pump();
    }

    pub fn events_a(&mut self) -> Vec<UaEvent> {
        std::iter::from_fn(|| self.a.poll_event()).collect()
    }

    pub fn events_b(&mut self) -> Vec<UaEvent> {
        std::iter::from_fn(|| self.b.poll_event()).collect()
    }

    pub fn call(&mut self, extra: &[(HeaderName, &str)]) -> CallKey {
        let c = self
            .a
            .invite(
                self.now,
                peer(A, B),
                OutgoingCall {
                    target: Uri::parse("sip:+17035550122@192.0.2.2;transport=udp").unwrap(),
                    from: "<sip:+12065550100@192.0.2.1>".into(),
                    to: "<sip:+17035550122@192.0.2.2>".into(),
                    body: Some(Body::sdp("v=0 offer\r\n")),
                    headers: extra.iter().map(|(n, v)| (*n, v.to_string())).collect(),
                    credentials: None,
                },
            )
            .unwrap();
        self.pump();
        c
    }

    pub fn incoming(&mut self) -> (CallKey, sip::Request) {
        for e in self.events_b() {
            if let UaEvent::IncomingCall { call, request, .. } = e {
                return (call, request);
            }
        }
        panic!("no incoming call")
    }

    /// A calls and B answers 200, but every ACK from A is lost (B keeps retransmitting
    /// its 2xx); returns B's key.
    pub fn answered_acks_lost(&mut self) -> CallKey {
        self.filter = Box::new(|by_a, t| !(by_a && t.payload.starts_with(b"ACK ")));
        self.call(&[]);
        let (cb, _) = self.incoming();
        self.b
            .answer(self.now, cb, 200, Some(Body::sdp("v=0\r\n")))
            .unwrap();
        self.pump();
        cb
    }

    /// A raw INVITE (`request_text`, from A, Call-ID `raw-INVITE`, From tag `x1`, with
    /// `extra` headers) that B answers 200; returns B's key and the 200 it sent.
    pub fn raw_call_answered(&mut self, extra: &str) -> (CallKey, Response) {
        let text = request_text("INVITE", extra).replace('\n', "\r\n");
        let _ = self
            .b
            .handle_datagram(self.now, text.as_bytes(), peer(B, A));
        let (cb, _) = self.incoming();
        self.b
            .answer(self.now, cb, 200, Some(Body::sdp("v=0\r\n")))
            .unwrap();
        let tx: Vec<_> = std::iter::from_fn(|| self.b.poll_transmit()).collect();
        let Message::Response(ok) = Message::parse(&tx[0].payload).unwrap() else {
            panic!()
        };
        (cb, ok)
    }

    /// Sets up a confirmed call; returns (A's key, B's key).
    pub fn established(&mut self) -> (CallKey, CallKey) {
        let ca = self.call(&[]);
        let (cb, _) = self.incoming();
        self.b
            .answer(self.now, cb, 200, Some(Body::sdp("v=0 answer\r\n")))
            .unwrap();
        self.pump();
        assert!(
            self.events_a()
                .iter()
                .any(|e| matches!(e, UaEvent::Answered { call, .. } if *call == ca))
        );
        assert!(
            self.events_b()
                .iter()
                .any(|e| matches!(e, UaEvent::Confirmed { call, .. } if *call == cb))
        );
        (ca, cb)
    }

    pub fn sent(&self, by_a: bool, start_line: &str) -> Vec<Message> {
        self.log
            .iter()
            .filter(|(_, a, p)| *a == by_a && p.starts_with(start_line.as_bytes()))
            .map(|(_, _, p)| Message::parse(p).unwrap())
            .collect()
    }
}

pub fn cfg() -> UaConfig {
    UaConfig::default()
}

pub fn raw(n: &mut Net, text: &str) -> Response {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let i = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data = text
        .replace('\n', "\r\n")
        .replace("branch=z9hG4bK", &format!("branch=z9hG4bK{i}x"));
    let before = n.log.len();
    let _ = n.b.handle_datagram(n.now, data.as_bytes(), peer(B, A));
    let from_b: Vec<_> = std::iter::from_fn(|| n.b.poll_transmit()).collect();
    assert!(before == n.log.len());
    let Message::Response(r) = Message::parse(&from_b[0].payload).unwrap() else {
        panic!()
    };
    r
}

pub fn request_text(method: &str, extra: &str) -> String {
    format!(
        "{method} sip:vc@192.0.2.2 SIP/2.0\n\
         Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK{method}{};rport\n\
         Max-Forwards: 70\n\
         From: <sip:a@10.0.0.9>;tag=x1\n\
         To: <sip:vc@192.0.2.2>\n\
         Call-ID: raw-{method}\n\
         CSeq: 1 {method}\n\
         Contact: <sip:a@10.0.0.9>\n\
         {extra}Content-Length: 0\n\n",
        extra.len()
    )
}
