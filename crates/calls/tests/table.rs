//! The call table on virtual time, between two real `sip::UserAgent`s in memory: a PBX
//! (`pbx`) and ours (`edge`), glued to the table the way the server's SIP edge task is.

use std::time::{Duration, Instant};

use calls::{
    Answer, AppEndpoint, Attachment, CallTable, Command, EndStatus, Endpoint, HangupCause,
    JoinError, LegId, LegState, Member, Refusal, ReofferError, TableConfig,
};
use sip::{
    Body, CallKey, HeaderName, OutgoingCall, Peer, TerminationReason, TransportKind, UaConfig,
    UaEvent, Uri, UserAgent,
};

const PBX: &str = "192.0.2.10:5060";
const EDGE: &str = "192.0.2.1:5060";

fn peer(local: &str, remote: &str) -> Peer {
    Peer {
        transport: TransportKind::Udp,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
    }
}

const OFFER: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const ANSWER: &[u8] = b"v=0\r\no=- 2 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

fn member(attendee: &str) -> Member {
    Member {
        meeting_id: "m1".into(),
        attendee_id: attendee.into(),
    }
}

/// What the test saw our side do.
#[derive(Default)]
struct Seen {
    commands: Vec<Command>,
    incoming: Vec<(CallKey, LegId)>,
}

struct World {
    pbx: UserAgent,
    edge: UserAgent,
    table: CallTable,
    now: Instant,
    seen: Seen,
    /// The PBX's events, in order.
    pbx_events: Vec<UaEvent>,
    /// Whether the driver answers ApplyAnswer with success.
    answer_ok: bool,
}

impl World {
    fn new() -> World {
        let now = Instant::now();
        World {
            pbx: UserAgent::new(UaConfig::default(), 7),
            edge: UserAgent::new(UaConfig::default(), 8),
            table: CallTable::new(TableConfig::default()),
            now,
            seen: Seen::default(),
            pbx_events: Vec::new(),
            answer_ok: true,
        }
    }

    fn call(&mut self, body: Option<&[u8]>) -> CallKey {
        let call = OutgoingCall {
            target: Uri::parse("sip:+17035550122@vc.example.com").unwrap(),
            from: "<sip:+12065550100@pbx.example.com>".into(),
            to: "<sip:+17035550122@vc.example.com>".into(),
            body: body.map(Body::sdp),
            headers: vec![],
            credentials: None,
        };
        let k = self.pbx.invite(self.now, peer(PBX, EDGE), call).unwrap();
        self.settle();
        k
    }

    /// Moves messages, UA events and table commands until nothing moves.
    fn settle(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            while let Some(t) = self.pbx.poll_transmit() {
                moved = true;
                let _ = self
                    .edge
                    .handle_datagram(self.now, &t.payload, peer(EDGE, PBX));
            }
            while let Some(t) = self.edge.poll_transmit() {
                moved = true;
                let _ = self
                    .pbx
                    .handle_datagram(self.now, &t.payload, peer(PBX, EDGE));
            }
            while let Some(ev) = self.pbx.poll_event() {
                moved = true;
                self.pbx_events.push(ev);
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

    /// The edge driver's glue: UA events into the table.
    fn on_edge_event(&mut self, ev: UaEvent) {
        let now = self.now;
        match ev {
            UaEvent::IncomingCall { call, .. } => {
                let leg = self.table.sip_incoming(now, call);
                self.seen.incoming.push((call, leg));
            }
            UaEvent::Confirmed { call, ack } => self.table.sip_confirmed(now, call, &ack.body),
            UaEvent::Terminated { call, reason } => self.table.sip_ended(now, call, reason),
            UaEvent::Answered { call, .. } => self.table.sip_answered(now, call),
            UaEvent::Reinvite { call, request } => match self.table.sip_reoffer(call) {
                Ok(leg) => {
                    let held = String::from_utf8_lossy(&request.body).contains("a=sendonly");
                    self.table.media_direction(now, leg, !held);
                    let _ = self.edge.answer(now, call, 200, Some(Body::sdp(ANSWER)));
                }
                Err(e) => {
                    let r = e.refusal();
                    let _ = self.edge.answer(now, call, r.status, None);
                }
            },
            _ => {}
        }
    }

    /// The edge driver's glue: table commands to the UA.
    fn apply(&mut self, c: Command) {
        let now = self.now;
        match &c {
            Command::Answer { sip, answer, .. } => match answer {
                Answer::Accept(body) => {
                    self.edge
                        .answer(now, *sip, 200, Some(body.clone()))
                        .unwrap();
                }
                Answer::Refuse(r) => {
                    let mut resp = self.edge.make_response(*sip, r.status).unwrap();
                    resp.headers.push(HeaderName::Warning, &r.warning);
                    let _ = self.edge.respond(now, *sip, resp);
                }
                Answer::Challenge { warning, .. } => {
                    let mut resp = self.edge.make_response(*sip, 407).unwrap();
                    resp.headers.push(HeaderName::Warning, warning);
                    let _ = self.edge.respond(now, *sip, resp);
                }
                Answer::Silence => {
                    let _ = self.edge.discard(*sip);
                }
            },
            Command::HangUp {
                endpoint: Endpoint::SipUas(k) | Endpoint::SipUac(k),
                cause,
                ..
            } => {
                let (code, text) = cause.sip_reason();
                let _ = self
                    .edge
                    .hangup_with(now, *k, &sip::Reason::sip(code, text));
            }
            Command::ApplyAnswer { leg, .. } => {
                let result = if self.answer_ok {
                    Ok(())
                } else {
                    Err(Refusal::new(488, "no common codec"))
                };
                self.table.answer_applied(now, *leg, result);
            }
            _ => {}
        }
        self.seen.commands.push(c);
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [
                self.pbx.poll_timeout(),
                self.edge.poll_timeout(),
                self.table.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t <= end)
            .min();
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            self.pbx.handle_timeout(self.now);
            self.edge.handle_timeout(self.now);
            self.table.handle_timeout(self.now);
            self.settle();
        }
        self.now = end;
        self.settle();
    }

    fn releases(&self) -> Vec<(LegId, calls::CallEnd, Option<Member>)> {
        self.seen
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Release {
                    leg, end, member, ..
                } => Some((*leg, end.clone(), member.clone())),
                _ => None,
            })
            .collect()
    }

    fn hangups(&self) -> Vec<(LegId, HangupCause)> {
        self.seen
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::HangUp { leg, cause, .. } => Some((*leg, cause.clone())),
                _ => None,
            })
            .collect()
    }

    fn pbx_ended(&self, call: CallKey) -> Option<TerminationReason> {
        self.pbx_events.iter().find_map(|e| match e {
            UaEvent::Terminated { call: c, reason } if *c == call => Some(*reason),
            _ => None,
        })
    }

    fn last_incoming(&self) -> LegId {
        self.seen.incoming.last().unwrap().1
    }

    /// Answers an incoming join the way the server's join task does.
    fn join(&mut self, leg: LegId, attendee: &str) {
        self.table
            .sip_join_ready(self.now, leg, member(attendee), Body::sdp(ANSWER), false);
        self.settle();
    }

    /// Our INVITE to the PBX (a UAC leg), with an offer.
    fn dial_pbx(&mut self) -> CallKey {
        let out = OutgoingCall {
            target: Uri::parse("sip:+12065550100@pbx.example.com").unwrap(),
            from: "<sip:+17035550122@vc.example.com>".into(),
            to: "<sip:+12065550100@pbx.example.com>".into(),
            body: Some(Body::sdp(ANSWER)),
            headers: vec![],
            credentials: None,
        };
        self.edge.invite(self.now, peer(EDGE, PBX), out).unwrap()
    }

    /// The PBX's side of our INVITE.
    fn pbx_incoming(&self) -> CallKey {
        self.pbx_events
            .iter()
            .find_map(|e| match e {
                UaEvent::IncomingCall { call, .. } => Some(*call),
                _ => None,
            })
            .expect("the PBX saw our INVITE")
    }

    fn pbx_bye(&mut self, call: CallKey) {
        self.pbx.hangup(self.now, call).unwrap();
        self.settle();
    }
}

#[test]
fn cancel_before_the_answer_gets_487_and_the_join_is_undone() {
    let mut w = World::new();
    let call = w.call(Some(OFFER));
    let leg = w.last_incoming();
    assert_eq!(w.table.leg(leg).unwrap().state, LegState::Setup);

    // The PBX cancels while the join is still being prepared (database, ports).
    w.advance(Duration::from_millis(300));
    w.pbx.cancel(w.now, call).unwrap();
    w.settle();
    assert_eq!(w.pbx_ended(call), Some(TerminationReason::Failed(487)));
    assert_eq!(w.table.leg(leg).unwrap().state, LegState::EndedInSetup);
    assert!(
        w.releases().is_empty(),
        "nothing to release before the join is back"
    );

    // The join arrives late: it is undone, and its record says Cancelled.
    w.join(leg, "a1");
    let rel = w.releases();
    assert_eq!(rel.len(), 1);
    assert_eq!(rel[0].0, leg);
    assert_eq!(rel[0].1.status, EndStatus::Cancelled);
    assert_eq!(rel[0].1.code, 487);
    assert_eq!(
        rel[0].2,
        Some(member("a1")),
        "the release names what to undo"
    );
    assert!(
        !w.seen
            .commands
            .iter()
            .any(|c| matches!(c, Command::Answer { .. })),
        "no answer after the CANCEL"
    );
    assert!(w.table.is_empty());
}

#[test]
fn cancel_racing_the_200_ends_the_call_once() {
    let mut w = World::new();
    let call = w.call(Some(OFFER));
    let leg = w.last_incoming();
    // The 200 goes out; the CANCEL crossed it on the wire (the PBX sends it before the
    // 200 arrives): the 200 wins (RFC 3261 §9.2), the PBX ACKs and then hangs up.
    w.table
        .sip_join_ready(w.now, leg, member("a1"), Body::sdp(ANSWER), false);
    let _ = w.pbx.cancel(w.now, call);
    w.settle();
    assert!(
        w.seen.commands.iter().any(|c| matches!(
            c,
            Command::Answer {
                answer: Answer::Accept(_),
                ..
            }
        )),
        "the 200 went out"
    );
    // Whatever the PBX does next (BYE after a 200 it no longer wants), the leg ends
    // once, as a completed call.
    if w.pbx_ended(call).is_none() {
        w.pbx_bye(call);
    }
    w.advance(Duration::from_secs(40));
    let rel = w.releases();
    assert_eq!(rel.len(), 1, "{rel:?}");
    assert_eq!(rel[0].0, leg);
    assert!(w.table.is_empty());
}

#[test]
fn a_rejoin_ends_the_older_leg_with_a_reason() {
    let mut w = World::new();
    let first = w.call(Some(OFFER));
    let leg1 = w.last_incoming();
    w.join(leg1, "a1");
    let second = w.call(Some(OFFER));
    let leg2 = w.last_incoming();
    w.join(leg2, "a1");

    assert_eq!(
        w.hangups(),
        vec![(leg1, HangupCause::JoinedFromAnotherDevice)]
    );
    assert_eq!(
        HangupCause::JoinedFromAnotherDevice.sip_reason(),
        (200, "joined from another device".to_string())
    );
    // The PBX got our BYE for the first call; the second goes on.
    assert_eq!(w.pbx_ended(first), Some(TerminationReason::RemoteBye));
    assert_eq!(w.pbx_ended(second), None);
    assert_eq!(w.table.len(), 1);
    assert_eq!(w.table.leg(leg2).unwrap().state, LegState::Active);
    let rel = w.releases();
    assert_eq!(rel.len(), 1);
    assert_eq!((rel[0].0, rel[0].1.status), (leg1, EndStatus::Completed));

    // A browser joining as the same attendee ends the SIP leg too.
    let web = w.table.webrtc_open(w.now, 99, member("a1"));
    w.settle();
    assert!(
        w.hangups()
            .contains(&(leg2, HangupCause::JoinedFromAnotherDevice))
    );
    assert_eq!(w.pbx_ended(second), Some(TerminationReason::RemoteBye));
    assert_eq!(w.table.len(), 1);
    assert!(w.table.leg(web).is_some());
}

#[test]
fn delayed_offer_attaches_after_the_acks_answer() {
    let mut w = World::new();
    let call = w.call(None);
    let leg = w.last_incoming();
    // Our 200 carries the offer; the PBX's ACK must carry the answer. Its UA sends an
    // empty ACK, so feed the table the ACK body the PBX's application would have sent.
    w.table
        .sip_join_ready(w.now, leg, member("a1"), Body::sdp(ANSWER), true);
    assert_eq!(w.table.leg(leg).unwrap().state, LegState::AwaitingAnswer);
    assert_eq!(
        w.table.sip_reoffer(call_key_of(&w, leg)),
        Err(ReofferError::OfferPending)
    );
    w.table.sip_confirmed(w.now, call_key_of(&w, leg), OFFER);
    w.settle();
    let attached: Vec<_> = w
        .seen
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Attach { leg: l, to } => Some((*l, to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(attached, vec![(leg, Attachment::Meeting(member("a1")))]);
    assert!(
        w.seen
            .commands
            .iter()
            .any(|c| matches!(c, Command::ApplyAnswer { sdp, .. } if sdp == OFFER))
    );
    assert_eq!(w.table.leg(leg).unwrap().state, LegState::Active);
    assert_eq!(w.pbx_ended(call), None);
}

#[test]
fn delayed_offer_with_an_unusable_answer_is_hung_up_with_its_status() {
    let mut w = World::new();
    let call = w.call(None);
    let leg = w.last_incoming();
    w.answer_ok = false;
    w.table
        .sip_join_ready(w.now, leg, member("a1"), Body::sdp(ANSWER), true);
    w.settle();
    // The PBX's ACK came without a body: that is no answer at all (488).
    assert_eq!(
        w.hangups(),
        vec![(
            leg,
            HangupCause::UnusableAnswer {
                status: 488,
                text: "the ACK carried no answer to our offer".into()
            }
        )]
    );
    assert_eq!(w.pbx_ended(call), Some(TerminationReason::RemoteBye));
    assert!(w.table.is_empty());
}

fn call_key_of(w: &World, leg: LegId) -> CallKey {
    match w.table.leg(leg).unwrap().endpoint {
        Endpoint::SipUas(k) | Endpoint::SipUac(k) => k,
        Endpoint::WebRtc(_) => panic!("not a SIP leg"),
    }
}

#[test]
fn hold_and_resume_and_inactivity() {
    let mut w = World::new();
    let call = w.call(Some(OFFER));
    let leg = w.last_incoming();
    w.join(leg, "a1");

    // Hold: the PBX re-INVITEs with sendonly; no RTP while held does not end the call.
    let hold = [OFFER, b"a=sendonly\r\n"].concat();
    w.pbx
        .send_in_dialog(w.now, call, sip::Method::Invite, Some(Body::sdp(hold)))
        .unwrap();
    w.settle();
    assert_eq!(w.table.leg(leg).unwrap().state, LegState::Held);
    w.advance(Duration::from_secs(31));
    w.table.media_inactive(w.now, leg);
    w.settle();
    assert!(w.hangups().is_empty(), "a held call is not inactive");

    // Resume: now silence for the inactivity timeout ends it with 408.
    w.pbx
        .send_in_dialog(w.now, call, sip::Method::Invite, Some(Body::sdp(OFFER)))
        .unwrap();
    w.settle();
    assert_eq!(w.table.leg(leg).unwrap().state, LegState::Active);
    w.table.media_inactive(w.now, leg);
    w.settle();
    assert_eq!(w.hangups(), vec![(leg, HangupCause::NoMedia)]);
    assert_eq!(HangupCause::NoMedia.sip_reason().0, 408);
    assert_eq!(w.pbx_ended(call), Some(TerminationReason::RemoteBye));
    assert!(w.table.is_empty());
}

#[test]
fn delete_attendee_and_delete_meeting_end_their_legs() {
    let mut w = World::new();
    let c1 = w.call(Some(OFFER));
    let l1 = w.last_incoming();
    w.join(l1, "a1");
    let c2 = w.call(Some(OFFER));
    let l2 = w.last_incoming();
    w.join(l2, "a2");
    let web = w.table.webrtc_open(w.now, 5, member("a3"));
    w.settle();

    w.table.delete_attendee(w.now, "a1");
    w.settle();
    assert_eq!(w.hangups(), vec![(l1, HangupCause::AttendeeRemoved)]);
    assert_eq!(w.pbx_ended(c1), Some(TerminationReason::RemoteBye));
    assert_eq!(w.pbx_ended(c2), None);

    w.table.delete_meeting(w.now, "m1");
    w.settle();
    let h = w.hangups();
    assert!(h.contains(&(l2, HangupCause::MeetingEnded)), "{h:?}");
    assert!(h.contains(&(web, HangupCause::MeetingEnded)), "{h:?}");
    assert_eq!(w.pbx_ended(c2), Some(TerminationReason::RemoteBye));
    // The browser's session closes in its driver, which reports it.
    w.table.webrtc_closed(w.now, web, "meeting ended");
    w.settle();
    assert!(w.table.is_empty());
    assert_eq!(
        HangupCause::MeetingEnded.sip_reason(),
        (410, "meeting ended".to_string())
    );
}

#[test]
fn a_bridge_ends_when_either_side_hangs_up() {
    let mut w = World::new();
    // The PBX calls in (a UAS leg) ...
    let inbound = w.call(Some(OFFER));
    let a = w.last_incoming();
    w.table
        .sip_join_ready(w.now, a, member("a1"), Body::sdp(ANSWER), false);
    w.settle();
    // ... and we call the PBX back (a UAC leg in the same call), which answers.
    let k = w.dial_pbx();
    let call = w.table.leg(a).unwrap().call;
    let b = w.table.sip_dial(w.now, k, Some(call));
    assert_eq!(w.table.leg(b).unwrap().state, LegState::Ringing);
    w.settle();
    let pbx_side = w.pbx_incoming();
    w.pbx
        .answer(w.now, pbx_side, 200, Some(Body::sdp(OFFER)))
        .unwrap();
    w.settle();
    assert_eq!(w.table.leg(b).unwrap().state, LegState::Active);

    w.table.bridge(w.now, a, b).unwrap();
    w.settle();
    assert_eq!(
        w.table.leg(a).unwrap().attachment,
        Some(Attachment::Bridge(b))
    );
    assert!(w.seen.commands.contains(&Command::Detach {
        leg: a,
        from: Attachment::Meeting(member("a1"))
    }));

    // The PBX hangs up the inbound leg: the outbound one gets our BYE.
    w.pbx_bye(inbound);
    assert_eq!(w.hangups(), vec![(b, HangupCause::PeerHungUp)]);
    assert_eq!(w.pbx_ended(pbx_side), Some(TerminationReason::RemoteBye));
    let rel = w.releases();
    assert_eq!(rel.len(), 2, "{rel:?}");
    assert!(w.table.is_empty());
}

#[test]
fn an_unanswered_outgoing_leg_is_cancelled_at_the_ring_timeout() {
    let mut w = World::new();
    let k = w.dial_pbx();
    let leg = w.table.sip_dial(w.now, k, None);
    w.settle();
    // The PBX rings (180) and never answers.
    let pbx_side = w.pbx_incoming();
    w.pbx.answer(w.now, pbx_side, 180, None).unwrap();
    w.advance(Duration::from_secs(61));
    assert_eq!(w.hangups(), vec![(leg, HangupCause::NoAnswer)]);
    let rel = w.releases();
    assert_eq!(rel.len(), 1, "{rel:?}");
    assert_eq!(rel[0].1.status, EndStatus::Failed);
    assert!(w.table.is_empty());
}

#[test]
fn a_join_not_ready_in_time_gets_503_and_is_undone_when_it_comes() {
    let mut w = World::new();
    let call = w.call(Some(OFFER));
    let leg = w.last_incoming();
    w.advance(Duration::from_secs(21));
    assert_eq!(w.pbx_ended(call), Some(TerminationReason::Failed(503)));
    let refused = w.seen.commands.iter().any(|c| {
        matches!(c, Command::Answer { answer: Answer::Refuse(r), .. }
            if *r == JoinError::SetupTimeout.refusal() && r.retry_after == Some(1))
    });
    assert!(refused);
    w.join(leg, "a1");
    let rel = w.releases();
    assert_eq!(rel.len(), 1);
    assert_eq!(rel[0].1.code, 503);
    assert!(w.table.is_empty());
}

#[test]
fn refusals_and_silence_leave_nothing_behind() {
    let mut w = World::new();
    let call = w.call(Some(OFFER));
    let leg = w.last_incoming();
    w.table.sip_refused(
        w.now,
        leg,
        Answer::Refuse(Refusal::new(403, "source not in the allowlist")),
    );
    w.settle();
    assert_eq!(w.pbx_ended(call), Some(TerminationReason::Failed(403)));
    assert!(w.table.is_empty());

    let call = w.call(Some(OFFER));
    let leg = w.last_incoming();
    w.table.sip_refused(w.now, leg, Answer::Silence);
    w.settle();
    assert!(w.table.is_empty());
    assert_eq!(w.pbx_ended(call), None, "silence: nothing was sent");

    let call = w.call(Some(OFFER));
    let leg = w.last_incoming();
    w.table.sip_join_failed(w.now, leg, JoinError::NoMediaPorts);
    w.settle();
    assert_eq!(w.pbx_ended(call), Some(TerminationReason::Failed(503)));
    assert!(w.releases().is_empty());
}

#[test]
fn apps_and_meetings_listing() {
    let mut w = World::new();
    let _ = w.call(Some(OFFER));
    let leg = w.last_incoming();
    w.join(leg, "a1");
    assert_eq!(w.table.meetings(), vec!["m1".to_string()]);
    assert!(w.table.attach_app(w.now, leg, AppEndpoint::DigitCollector));
    w.settle();
    assert_eq!(
        w.table.leg(leg).unwrap().attachment,
        Some(Attachment::App(AppEndpoint::DigitCollector))
    );
    assert_eq!(
        w.table.bridge(w.now, leg, leg),
        Err(calls::BridgeError::SameLeg)
    );
}

#[test]
fn shutting_down_hangs_up_live_legs_and_refuses_one_in_set_up() {
    let mut w = World::new();
    let live = w.call(Some(OFFER));
    let l1 = w.last_incoming();
    w.join(l1, "a1");
    let web = w.table.webrtc_open(w.now, 9, member("a2"));
    let pending = w.call(Some(OFFER));
    let l3 = w.last_incoming();
    w.settle();

    w.table.shut_down(w.now);
    w.settle();
    let h = w.hangups();
    assert!(h.contains(&(l1, HangupCause::ServerShutdown)), "{h:?}");
    assert!(h.contains(&(web, HangupCause::ServerShutdown)), "{h:?}");
    assert_eq!(w.pbx_ended(live), Some(TerminationReason::RemoteBye));
    assert_eq!(
        HangupCause::ServerShutdown.sip_reason(),
        (503, "server shutting down".to_string())
    );
    // The INVITE still being set up is refused 503 with Retry-After ...
    assert_eq!(w.pbx_ended(pending), Some(TerminationReason::Failed(503)));
    let refused = w.seen.commands.iter().any(|c| {
        matches!(c, Command::Answer { answer: Answer::Refuse(r), .. }
            if *r == JoinError::ShuttingDown.refusal() && r.retry_after.is_some())
    });
    assert!(refused);
    // ... and its join, arriving late, is undone with a record of the refusal.
    w.join(l3, "a3");
    w.table.webrtc_closed(w.now, web, "server shutting down");
    w.settle();
    let rel = w.releases();
    assert_eq!(rel.len(), 3, "{rel:?}");
    assert!(rel.iter().any(|(l, end, _)| *l == l3 && end.code == 503));
    assert!(w.table.is_empty());
}

#[test]
fn an_application_moves_a_leg_into_a_meeting_and_hangs_it_up() {
    let mut w = World::new();
    let _ = w.call(Some(OFFER));
    let ivr = w.last_incoming();
    w.join(ivr, "leg-a");
    // Another device of attendee a2 is already in the meeting.
    let _ = w.call(Some(OFFER));
    let older = w.last_incoming();
    w.join(older, "a2");
    assert!(w.table.move_member(w.now, ivr, member("a2")));
    w.settle();
    assert_eq!(
        w.table.leg(ivr).unwrap().attachment,
        Some(Attachment::Meeting(member("a2")))
    );
    assert!(
        w.hangups()
            .contains(&(older, HangupCause::JoinedFromAnotherDevice)),
        "the attendee's older leg goes, as on any re-join"
    );
    let cause = HangupCause::Application {
        code: 200,
        text: "hung up by the SIP media application".into(),
    };
    assert_eq!(
        cause.sip_reason(),
        (200, "hung up by the SIP media application".to_string())
    );
    assert!(w.table.hang_up(w.now, ivr, cause.clone()));
    w.settle();
    assert!(w.hangups().contains(&(ivr, cause.clone())));
    assert!(w.releases().iter().any(|(l, _, _)| *l == ivr));
    // A leg still in set-up is refused, not hung up.
    let _ = w.call(Some(OFFER));
    let setup = w.last_incoming();
    assert!(!w.table.hang_up(w.now, setup, cause));
}

#[test]
fn a_moved_leg_is_its_new_attendee_for_deletions() {
    let mut w = World::new();
    let _ = w.call(Some(OFFER));
    let ivr = w.last_incoming();
    w.join(ivr, "leg-a");
    assert!(w.table.move_member(w.now, ivr, member("a2")));
    w.table.delete_attendee(w.now, "leg-a");
    w.table.delete_attendee(w.now, "a2");
    w.settle();
    assert_eq!(w.hangups(), vec![(ivr, HangupCause::AttendeeRemoved)]);
}
