//! Session timers (RFC 4028) on the two legs of a bridge, on virtual time, between three
//! real `sip::UserAgent`s in memory: a PBX, a carrier, and ours (`edge`, a B2BUA holding
//! both legs), glued to the call table the way the server's SIP edge task is.
//!
//! Each leg negotiates its own session: the PBX's refreshes stay on the PBX leg and never
//! reach the carrier, the call outlives several intervals, and when one leg's session
//! expires both legs get a BYE saying so.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use calls::{Answer, CallTable, Command, HangupCause, LegId, Member, TableConfig};
use sip::{
    Body, CallKey, Message, Method, OutgoingCall, Peer, SessionTimerConfig, TransportKind,
    UaConfig, UaEvent, Uri, UserAgent,
};

const PBX: &str = "192.0.2.10:5060";
const EDGE: &str = "192.0.2.1:5060";
const CARRIER: &str = "192.0.2.20:5060";

const OFFER: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const ANSWER: &[u8] = b"v=0\r\no=- 2 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn peer(local: &str, remote: &str) -> Peer {
    Peer {
        transport: TransportKind::Udp,
        local: addr(local),
        remote: addr(remote),
    }
}

/// A request as it went over the wire: from, to, the message.
struct Sent {
    from: SocketAddr,
    to: SocketAddr,
    text: String,
}

impl Sent {
    fn method(&self) -> Option<Method> {
        match Message::parse(self.text.as_bytes()).ok()? {
            Message::Request(r) => Some(r.method),
            Message::Response(_) => None,
        }
    }
}

struct World {
    pbx: UserAgent,
    edge: UserAgent,
    carrier: UserAgent,
    table: CallTable,
    now: Instant,
    /// Every message, in order.
    wire: Vec<Sent>,
    /// What the PBX sends is lost (a PBX that went away without a BYE).
    pbx_lost: bool,
    /// The PBX leg (ours) and the carrier leg, once set up.
    a: Option<LegId>,
    b: Option<LegId>,
    /// The carrier's INVITE, to answer.
    carrier_call: Option<CallKey>,
    hangups: Vec<(LegId, HangupCause)>,
    releases: Vec<LegId>,
    pbx_ended: bool,
    carrier_ended: bool,
}

impl World {
    /// The PBX asks for `Session-Expires: 90` (the floor, RFC 4028 §4); the edge and the
    /// carrier run the defaults (1800 s, Min-SE 90).
    fn new() -> World {
        let pbx_cfg = UaConfig {
            session_timer: Some(SessionTimerConfig {
                session_expires: 90,
                min_se: 90,
            }),
            ..UaConfig::default()
        };
        World {
            pbx: UserAgent::new(pbx_cfg, 1),
            edge: UserAgent::new(UaConfig::default(), 2),
            carrier: UserAgent::new(UaConfig::default(), 3),
            table: CallTable::new(TableConfig::default()),
            now: Instant::now(),
            wire: Vec::new(),
            pbx_lost: false,
            a: None,
            b: None,
            carrier_call: None,
            hangups: Vec::new(),
            releases: Vec::new(),
            pbx_ended: false,
            carrier_ended: false,
        }
    }

    /// The PBX calls through the edge to the carrier, which answers: a bridge.
    fn bridged_call() -> World {
        let mut w = World::new();
        let call = OutgoingCall {
            target: Uri::parse("sip:+14155550100@vc.example.com").unwrap(),
            from: "<sip:+12065550100@pbx.example.com>".into(),
            to: "<sip:+14155550100@vc.example.com>".into(),
            body: Some(Body::sdp(OFFER)),
            headers: vec![],
            credentials: None,
        };
        w.pbx.invite(w.now, peer(PBX, EDGE), call).unwrap();
        w.settle();
        let k = w.carrier_call.expect("the carrier got our INVITE");
        w.carrier
            .answer(w.now, k, 200, Some(Body::sdp(ANSWER)))
            .unwrap();
        w.settle();
        let (a, b) = (w.a.unwrap(), w.b.unwrap());
        let bridged = w.table.leg(a).and_then(|l| l.attachment.clone());
        assert_eq!(bridged, Some(calls::Attachment::Bridge(b)));
        w
    }

    fn settle(&mut self) {
        for _ in 0..500 {
            let mut moved = false;
            while let Some(t) = self.pbx.poll_transmit() {
                moved = true;
                self.carry(addr(PBX), t.peer.remote, &t.payload);
            }
            while let Some(t) = self.carrier.poll_transmit() {
                moved = true;
                self.carry(addr(CARRIER), t.peer.remote, &t.payload);
            }
            while let Some(t) = self.edge.poll_transmit() {
                moved = true;
                self.carry(addr(EDGE), t.peer.remote, &t.payload);
            }
            while let Some(ev) = self.pbx.poll_event() {
                moved = true;
                if matches!(ev, UaEvent::Terminated { .. }) {
                    self.pbx_ended = true;
                }
            }
            while let Some(ev) = self.carrier.poll_event() {
                moved = true;
                match ev {
                    UaEvent::IncomingCall { call, .. } => self.carrier_call = Some(call),
                    UaEvent::Terminated { .. } => self.carrier_ended = true,
                    _ => {}
                }
            }
            while let Some(ev) = self.edge.poll_event() {
                moved = true;
                self.on_edge_event(ev);
            }
            while let Some(c) = self.table.poll_command() {
                moved = true;
                self.apply(c);
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn carry(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        self.wire.push(Sent {
            from,
            to,
            text: String::from_utf8_lossy(bytes).into_owned(),
        });
        if from == addr(PBX) && self.pbx_lost {
            return;
        }
        let now = self.now;
        let dest = if to == addr(PBX) {
            &mut self.pbx
        } else if to == addr(CARRIER) {
            &mut self.carrier
        } else {
            &mut self.edge
        };
        let local = to.to_string();
        let _ = dest.handle_datagram(now, bytes, peer(&local, &from.to_string()));
    }

    /// The edge driver's glue, as `server::edge` (with `edge::pstn` routing to one carrier).
    fn on_edge_event(&mut self, ev: UaEvent) {
        let now = self.now;
        match ev {
            UaEvent::IncomingCall { call, .. } => {
                let a = self.table.sip_incoming(now, call);
                self.table.sip_routing(now, a);
                let out = OutgoingCall {
                    target: Uri::parse("sip:+14155550100@192.0.2.20").unwrap(),
                    from: "<sip:+12065550100@vc.example.com>".into(),
                    to: "<sip:+14155550100@192.0.2.20>".into(),
                    body: Some(Body::sdp(ANSWER)),
                    headers: vec![],
                    credentials: None,
                };
                let k = self.edge.invite(now, peer(EDGE, CARRIER), out).unwrap();
                let call_a = self.table.leg(a).map(|l| l.call);
                self.b = Some(self.table.sip_dial(now, k, call_a));
                self.a = Some(a);
            }
            UaEvent::Answered { call, .. } => {
                self.table.sip_answered(now, call);
                let (a, b) = (self.a.unwrap(), self.b.unwrap());
                let member = Member {
                    meeting_id: "bridge-1".into(),
                    attendee_id: "pbx".into(),
                };
                self.table
                    .sip_join_ready(now, a, member, Body::sdp(ANSWER), false);
                self.table.bridge(now, a, b).unwrap();
            }
            UaEvent::Confirmed { call, ack } => self.table.sip_confirmed(now, call, &ack.body),
            UaEvent::Terminated { call, reason } => self.table.sip_ended(now, call, reason),
            UaEvent::Reinvite { call, .. } => {
                let _ = self.edge.answer(now, call, 200, Some(Body::sdp(ANSWER)));
            }
            _ => {}
        }
    }

    fn apply(&mut self, c: Command) {
        let now = self.now;
        match c {
            Command::Answer {
                sip,
                answer: Answer::Accept(body),
                ..
            } => {
                self.edge.answer(now, sip, 200, Some(body)).unwrap();
            }
            Command::HangUp {
                leg,
                endpoint,
                cause,
            } => {
                let (code, text) = cause.sip_reason();
                let reason = sip::Reason::sip(code, &text);
                if let Some(k) = endpoint.sip() {
                    let _ = self.edge.hangup_with(now, k, &reason);
                }
                self.hangups.push((leg, cause));
            }
            Command::Release { leg, .. } => self.releases.push(leg),
            _ => {}
        }
    }

    /// Runs virtual time forward to `until` (seconds after now), firing every due timer.
    fn run_for(&mut self, secs: u64) {
        let end = self.now + Duration::from_secs(secs);
        loop {
            let next = [
                self.pbx.poll_timeout(),
                self.edge.poll_timeout(),
                self.carrier.poll_timeout(),
                self.table.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.pbx.handle_timeout(now);
                    self.edge.handle_timeout(now);
                    self.carrier.handle_timeout(now);
                    self.table.handle_timeout(now);
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = end;
        self.settle();
    }

    /// The requests sent from `from` to `to` (retransmissions included), by method.
    fn requests(&self, from: &str, to: &str) -> Vec<(Method, &str)> {
        self.wire
            .iter()
            .filter(|s| s.from == addr(from) && s.to == addr(to))
            .filter_map(|s| Some((s.method()?, s.text.as_str())))
            .collect()
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn each_leg_negotiates_its_own_session() {
    let w = World::bridged_call();
    let pbx_invite = w.requests(PBX, EDGE);
    let se = header(pbx_invite[0].1, "Session-Expires");
    assert_eq!(se, Some("90"), "the PBX asks for 90 s");
    let ours = w.requests(EDGE, CARRIER);
    assert_eq!(ours[0].0, Method::Invite);
    assert_eq!(
        header(ours[0].1, "Session-Expires"),
        Some("1800"),
        "the carrier leg has our own interval, not the PBX's"
    );
    // The 200 to the PBX: 90 s, refreshed by the PBX (the UAC of the INVITE).
    let ok = w
        .wire
        .iter()
        .filter(|s| s.from == addr(EDGE) && s.to == addr(PBX))
        .find(|s| s.text.starts_with("SIP/2.0 200") && s.text.contains("INVITE"))
        .expect("our 200 to the PBX");
    assert_eq!(
        header(&ok.text, "Session-Expires"),
        Some("90;refresher=uac")
    );
}

#[test]
fn refreshes_stay_on_their_leg_and_the_call_outlives_the_interval() {
    let mut w = World::bridged_call();
    w.run_for(300);
    assert!(!w.pbx_ended && !w.carrier_ended, "the call ended");
    assert!(
        w.hangups.is_empty() && w.releases.is_empty(),
        "{:?}",
        w.hangups
    );
    let pbx_refreshes = w
        .requests(PBX, EDGE)
        .iter()
        .filter(|(m, _)| matches!(m, Method::Update | Method::Invite))
        .count();
    // One INVITE, then a refresh every 45 s: at 45, 90, ..., 270 (7 in all).
    assert!(
        pbx_refreshes >= 7,
        "{pbx_refreshes} INVITE/UPDATE from the PBX in 300 s"
    );
    let to_carrier: Vec<Method> = w
        .requests(EDGE, CARRIER)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(
        to_carrier,
        vec![Method::Invite, Method::Ack],
        "nothing of the PBX leg's refreshes reaches the carrier"
    );
    // Past the carrier leg's own half interval (900 s) the edge refreshes that leg, and
    // the PBX sees none of it.
    w.run_for(700);
    assert!(!w.pbx_ended && !w.carrier_ended, "the call ended");
    let to_carrier = w.requests(EDGE, CARRIER);
    assert!(
        to_carrier
            .iter()
            .skip(2)
            .any(|(m, _)| matches!(m, Method::Update | Method::Invite)),
        "the carrier leg was not refreshed by us"
    );
    let to_pbx: Vec<Method> = w.requests(EDGE, PBX).into_iter().map(|(m, _)| m).collect();
    assert!(
        to_pbx.is_empty(),
        "the edge sent the PBX requests of its own: {to_pbx:?}"
    );
}

#[test]
fn an_expired_leg_ends_both_with_a_reason() {
    let mut w = World::bridged_call();
    w.run_for(10);
    w.pbx_lost = true;
    // No refresh from the PBX: its session expires 90 - 30 = 60 s after the last one.
    w.run_for(70);
    let bye_to_pbx = w
        .requests(EDGE, PBX)
        .into_iter()
        .find(|(m, _)| *m == Method::Bye)
        .expect("BYE to the PBX");
    assert_eq!(
        header(bye_to_pbx.1, "Reason"),
        Some("SIP;cause=408;text=\"session timer expired\"")
    );
    let bye_to_carrier = w
        .requests(EDGE, CARRIER)
        .into_iter()
        .find(|(m, _)| *m == Method::Bye)
        .expect("BYE to the carrier");
    assert_eq!(
        header(bye_to_carrier.1, "Reason"),
        Some("SIP;cause=408;text=\"the other party's session timer expired\"")
    );
    assert!(w.carrier_ended, "the carrier's call is not over");
    let (a, b) = (w.a.unwrap(), w.b.unwrap());
    assert_eq!(w.hangups, vec![(b, HangupCause::PeerSessionExpired)]);
    assert!(w.releases.contains(&a) && w.releases.contains(&b));
}
