//! [`CallTable`]: legs by id, by SIP call and by attendee; the commands they produce.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use sip::{Body, CallKey, TerminationReason};

use crate::cause::{CallEnd, HangupCause, JoinError, Refusal, ReofferError};
use crate::leg::{
    Answer, AppEndpoint, Attachment, BridgeError, CallId, Command, Endpoint, Leg, LegId, LegState,
    Member,
};

/// The table's limits.
#[derive(Clone, Copy, Debug)]
pub struct TableConfig {
    /// How long routing and media set-up of an incoming INVITE may take before it is
    /// refused with 503 and Retry-After.
    pub setup_timeout: Duration,
    /// How long an outgoing INVITE may ring before it is cancelled.
    pub ring_timeout: Duration,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            setup_timeout: Duration::from_secs(20),
            ring_timeout: Duration::from_secs(60),
        }
    }
}

/// The call table.
#[derive(Debug, Default)]
pub struct CallTable {
    cfg: TableConfig,
    next_leg: u64,
    next_call: u64,
    legs: BTreeMap<LegId, Leg>,
    by_sip: HashMap<CallKey, LegId>,
    by_member: HashMap<Member, LegId>,
    /// Armed deadlines, earliest first. An entry whose leg is gone or re-armed is stale and
    /// skipped when due (so `poll_timeout` may be early, never late).
    timers: BTreeSet<(Instant, LegId)>,
    commands: VecDeque<Command>,
}

impl CallTable {
    /// An empty table.
    pub fn new(cfg: TableConfig) -> Self {
        CallTable {
            cfg,
            ..Default::default()
        }
    }

    /// The legs now.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    /// Whether there are no legs.
    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    /// A leg.
    pub fn leg(&self, id: LegId) -> Option<&Leg> {
        self.legs.get(&id)
    }

    /// The leg of a SIP call.
    pub fn leg_of_sip(&self, sip: CallKey) -> Option<LegId> {
        self.by_sip.get(&sip).copied()
    }

    /// Every leg.
    pub fn legs(&self) -> impl Iterator<Item = &Leg> {
        self.legs.values()
    }

    /// Meetings with at least one leg attached or joining here, each once, sorted.
    pub fn meetings(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .legs
            .values()
            .filter_map(|l| l.member.as_ref().map(|m| m.meeting_id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The next command.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`CallTable::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    fn arm(&mut self, id: LegId, at: Instant) {
        if let Some(l) = self.legs.get_mut(&id) {
            l.deadline = Some(at);
            self.timers.insert((at, id));
        }
    }

    /// Runs the timers due at `now`; calling early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(leg) = self.legs.get_mut(&id) else {
                continue;
            };
            if leg.deadline != Some(at) {
                continue;
            }
            leg.deadline = None;
            match leg.state {
                // The join may still arrive: it is undone then.
                LegState::Setup => self.refuse_in_setup(now, id, JoinError::SetupTimeout),
                // The join never came back: nothing of it is left to undo.
                LegState::EndedInSetup => self.forget(id),
                LegState::Ringing => {
                    let endpoint = leg.endpoint;
                    self.commands.push_back(Command::HangUp {
                        leg: id,
                        endpoint,
                        cause: HangupCause::NoAnswer,
                    });
                }
                _ => {}
            }
        }
    }

    /// An INVITE still in set-up is refused (503 with the error's words); its join, if it
    /// arrives later, is undone then.
    fn refuse_in_setup(&mut self, now: Instant, id: LegId, error: JoinError) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let sip = leg.endpoint.sip();
        leg.state = LegState::EndedInSetup;
        leg.ended = Some(CallEnd::from_sip(TerminationReason::Rejected(503)));
        self.arm(id, now + self.cfg.setup_timeout);
        if let Some(sip) = sip {
            self.commands.push_back(Command::Answer {
                leg: id,
                sip,
                answer: Answer::Refuse(error.refusal()),
            });
        }
    }

    fn new_leg(&mut self, now: Instant, endpoint: Endpoint, state: LegState) -> LegId {
        self.next_call += 1;
        let call = CallId(self.next_call);
        self.add_leg(now, call, endpoint, state)
    }

    fn add_leg(
        &mut self,
        now: Instant,
        call: CallId,
        endpoint: Endpoint,
        state: LegState,
    ) -> LegId {
        self.next_leg += 1;
        let id = LegId(self.next_leg);
        let deadline = match state {
            LegState::Setup => Some(now + self.cfg.setup_timeout),
            LegState::Ringing => Some(now + self.cfg.ring_timeout),
            _ => None,
        };
        if let Some(at) = deadline {
            self.timers.insert((at, id));
        }
        if let Some(k) = endpoint.sip() {
            self.by_sip.insert(k, id);
        }
        self.legs.insert(
            id,
            Leg {
                id,
                call,
                endpoint,
                state,
                attachment: None,
                member: None,
                ended: None,
                deadline,
            },
        );
        id
    }

    /// Removes a leg without a trace (nothing was allocated for it).
    fn forget(&mut self, id: LegId) {
        if let Some(leg) = self.legs.remove(&id) {
            self.unindex(&leg);
        }
    }

    fn unindex(&mut self, leg: &Leg) {
        if let Some(k) = leg.endpoint.sip()
            && self.by_sip.get(&k) == Some(&leg.id)
        {
            self.by_sip.remove(&k);
        }
        if let Some(m) = &leg.member
            && self.by_member.get(m) == Some(&leg.id)
        {
            self.by_member.remove(m);
        }
    }

    /// The leg is over: release it, and hang up the other side of its bridge.
    fn end(&mut self, id: LegId, end: CallEnd) {
        self.end_because(id, end, HangupCause::PeerHungUp);
    }

    /// [`Self::end`], the other side of its bridge hung up with `cause`.
    fn end_because(&mut self, id: LegId, end: CallEnd, cause: HangupCause) {
        let Some(leg) = self.legs.remove(&id) else {
            return;
        };
        self.unindex(&leg);
        if let Some(Attachment::Bridge(other)) = &leg.attachment
            && let Some(o) = self.legs.get_mut(other)
        {
            o.attachment = None;
            let endpoint = o.endpoint;
            self.commands.push_back(Command::HangUp {
                leg: *other,
                endpoint,
                cause,
            });
        }
        self.commands.push_back(Command::Release {
            leg: id,
            endpoint: leg.endpoint,
            member: leg.member,
            end,
        });
    }

    /// The attendee's leg becomes `id`; an older leg of the same attendee is hung up.
    fn claim_member(&mut self, id: LegId, member: Member) {
        if let Some(old) = self.by_member.insert(member.clone(), id)
            && old != id
            && let Some(o) = self.legs.get(&old)
        {
            self.commands.push_back(Command::HangUp {
                leg: old,
                endpoint: o.endpoint,
                cause: HangupCause::JoinedFromAnotherDevice,
            });
        }
        if let Some(leg) = self.legs.get_mut(&id) {
            leg.member = Some(member);
        }
    }

    // ----- SIP UAS -----

    /// A new INVITE goes to routing. The leg is in [`LegState::Setup`] until
    /// [`Self::sip_join_ready`], [`Self::sip_join_failed`] or [`Self::sip_refused`].
    pub fn sip_incoming(&mut self, now: Instant, sip: CallKey) -> LegId {
        self.new_leg(now, Endpoint::SipUas(sip), LegState::Setup)
    }

    /// Routing refused the INVITE (policy, token, digest challenge): answer and forget
    /// (the router stores the refusal's record).
    pub fn sip_refused(&mut self, _now: Instant, leg: LegId, answer: Answer) {
        let Some(l) = self.legs.get(&leg) else { return };
        if let (LegState::Setup, Some(sip)) = (l.state, l.endpoint.sip()) {
            self.commands
                .push_back(Command::Answer { leg, sip, answer });
        }
        self.forget(leg);
    }

    /// The join is ready: its ports are bound and, unless `delayed_offer`, its media is in
    /// the meeting's mixer. `sdp` is our answer (or our offer). A leg that ended meanwhile
    /// is undone instead ([`Command::Release`] with the end it had).
    pub fn sip_join_ready(
        &mut self,
        _now: Instant,
        leg: LegId,
        member: Member,
        sdp: Body,
        delayed_offer: bool,
    ) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        match l.state {
            LegState::Setup => {
                let sip = l.endpoint.sip();
                l.deadline = None;
                if delayed_offer {
                    l.state = LegState::AwaitingAnswer;
                } else {
                    l.state = LegState::Active;
                    l.attachment = Some(Attachment::Meeting(member.clone()));
                }
                self.claim_member(leg, member);
                if let Some(sip) = sip {
                    self.commands.push_back(Command::Answer {
                        leg,
                        sip,
                        answer: Answer::Accept(sdp),
                    });
                }
            }
            LegState::EndedInSetup => {
                l.member = Some(member.clone());
                if !delayed_offer {
                    l.attachment = Some(Attachment::Meeting(member));
                }
                let end = l
                    .ended
                    .clone()
                    .unwrap_or_else(|| CallEnd::from_sip(TerminationReason::Cancelled));
                self.end(leg, end);
            }
            _ => {}
        }
    }

    /// The join failed after routing admitted it: refuse the INVITE.
    pub fn sip_join_failed(&mut self, now: Instant, leg: LegId, error: JoinError) {
        self.sip_refused(now, leg, Answer::Refuse(error.refusal()));
    }

    /// The ACK arrived. For a delayed offer its SDP is our answer: it must be applied.
    pub fn sip_confirmed(&mut self, _now: Instant, sip: CallKey, ack_sdp: &[u8]) {
        let Some(&id) = self.by_sip.get(&sip) else {
            return;
        };
        let Some(l) = self.legs.get_mut(&id) else {
            return;
        };
        if l.state != LegState::AwaitingAnswer {
            return;
        }
        if ack_sdp.is_empty() {
            let endpoint = l.endpoint;
            self.commands.push_back(Command::HangUp {
                leg: id,
                endpoint,
                cause: HangupCause::UnusableAnswer {
                    status: 488,
                    text: "the ACK carried no answer to our offer".into(),
                },
            });
            return;
        }
        l.state = LegState::ApplyingAnswer;
        self.commands.push_back(Command::ApplyAnswer {
            leg: id,
            sdp: ack_sdp.to_vec(),
        });
    }

    /// The delayed offer's answer was applied (attach the leg) or was unusable (hang up).
    pub fn answer_applied(&mut self, _now: Instant, leg: LegId, result: Result<(), Refusal>) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.state != LegState::ApplyingAnswer {
            return;
        }
        match result {
            Ok(()) => {
                l.state = LegState::Active;
                if let Some(m) = l.member.clone() {
                    l.attachment = Some(Attachment::Meeting(m.clone()));
                    self.commands.push_back(Command::Attach {
                        leg,
                        to: Attachment::Meeting(m),
                    });
                }
            }
            Err(r) => {
                let endpoint = l.endpoint;
                self.commands.push_back(Command::HangUp {
                    leg,
                    endpoint,
                    cause: HangupCause::UnusableAnswer {
                        status: r.status,
                        text: r.warning,
                    },
                });
            }
        }
    }

    /// A re-INVITE or UPDATE with an offer: which leg answers it, or why none does.
    pub fn sip_reoffer(&self, sip: CallKey) -> Result<LegId, ReofferError> {
        let id = *self.by_sip.get(&sip).ok_or(ReofferError::UnknownCall)?;
        let l = self.legs.get(&id).ok_or(ReofferError::UnknownCall)?;
        match l.state {
            LegState::Active | LegState::Held => Ok(id),
            LegState::EndedInSetup => Err(ReofferError::UnknownCall),
            _ => Err(ReofferError::OfferPending),
        }
    }

    /// The SIP layer ended the call: BYE either way, CANCEL, a timeout or a rejection.
    pub fn sip_ended(&mut self, now: Instant, sip: CallKey, reason: TerminationReason) {
        let Some(&id) = self.by_sip.get(&sip) else {
            return;
        };
        let Some(l) = self.legs.get_mut(&id) else {
            return;
        };
        match l.state {
            LegState::Setup => {
                // The join is being prepared elsewhere: undo it when it arrives.
                l.state = LegState::EndedInSetup;
                l.ended = Some(CallEnd::from_sip(reason));
                self.arm(id, now + self.cfg.setup_timeout);
            }
            LegState::EndedInSetup => {}
            _ => {
                // A session timer's expiry ends the bridge's other leg saying so.
                let cause = match reason {
                    TerminationReason::SessionExpired => HangupCause::PeerSessionExpired,
                    _ => HangupCause::PeerHungUp,
                };
                self.end_because(id, CallEnd::from_sip(reason), cause);
            }
        }
    }

    /// The INVITE is being routed onward (to a carrier, a PBX): its set-up timer gives way
    /// to the ring timers of the outgoing legs. It is answered with
    /// [`Self::sip_join_ready`] once one of them answers, or refused with
    /// [`Self::sip_routing_failed`].
    pub fn sip_routing(&mut self, _now: Instant, leg: LegId) {
        if let Some(l) = self.legs.get_mut(&leg)
            && l.state == LegState::Setup
        {
            l.deadline = None;
        }
    }

    /// Routing onward failed (every route refused or timed out): the INVITE is refused
    /// with `refusal` and its leg released (its media was allocated).
    pub fn sip_routing_failed(&mut self, _now: Instant, leg: LegId, refusal: Refusal) {
        let Some(l) = self.legs.get(&leg) else { return };
        match (l.state, l.endpoint.sip()) {
            (LegState::Setup, Some(sip)) => {
                let end = CallEnd::from_sip(TerminationReason::Rejected(refusal.status));
                self.commands.push_back(Command::Answer {
                    leg,
                    sip,
                    answer: Answer::Refuse(refusal),
                });
                self.end(leg, end);
            }
            (LegState::EndedInSetup, _) => {
                let end = l
                    .ended
                    .clone()
                    .unwrap_or_else(|| CallEnd::from_sip(TerminationReason::Cancelled));
                self.end(leg, end);
            }
            _ => {}
        }
    }

    // ----- SIP UAC -----

    /// We sent an INVITE: a new leg, in a new call or in `call` (the other side of a
    /// bridge to be).
    pub fn sip_dial(&mut self, now: Instant, sip: CallKey, call: Option<CallId>) -> LegId {
        match call {
            Some(c) => self.add_leg(now, c, Endpoint::SipUac(sip), LegState::Ringing),
            None => self.new_leg(now, Endpoint::SipUac(sip), LegState::Ringing),
        }
    }

    /// Our INVITE was answered (2xx, ACK sent).
    pub fn sip_answered(&mut self, _now: Instant, sip: CallKey) {
        if let Some(l) = self
            .by_sip
            .get(&sip)
            .copied()
            .and_then(|id| self.legs.get_mut(&id))
            && l.state == LegState::Ringing
        {
            l.state = LegState::Active;
            l.deadline = None;
        }
    }

    // ----- media -----

    /// The leg's peer changed direction: `peer_sends` false is hold (sendonly from us,
    /// inactive), true is resume.
    pub fn media_direction(&mut self, _now: Instant, leg: LegId, peer_sends: bool) {
        if let Some(l) = self.legs.get_mut(&leg) {
            l.state = match (l.state, peer_sends) {
                (LegState::Active, false) => LegState::Held,
                (LegState::Held, true) => LegState::Active,
                (s, _) => s,
            };
        }
    }

    /// No media from the leg for the inactivity timeout. A held leg is left alone.
    pub fn media_inactive(&mut self, _now: Instant, leg: LegId) {
        if let Some(l) = self.legs.get(&leg)
            && l.state == LegState::Active
        {
            self.commands.push_back(Command::HangUp {
                leg,
                endpoint: l.endpoint,
                cause: HangupCause::NoMedia,
            });
        }
    }

    /// The leg's media could not be started (after the answer).
    pub fn media_failed(&mut self, _now: Instant, leg: LegId) {
        if let Some(l) = self.legs.get(&leg) {
            self.commands.push_back(Command::HangUp {
                leg,
                endpoint: l.endpoint,
                cause: HangupCause::MediaFailed,
            });
        }
    }

    /// Bridges two legs: each hears the other; what they were attached to is detached.
    pub fn bridge(&mut self, _now: Instant, a: LegId, b: LegId) -> Result<(), BridgeError> {
        if a == b {
            return Err(BridgeError::SameLeg);
        }
        if !self.legs.contains_key(&a) || !self.legs.contains_key(&b) {
            return Err(BridgeError::UnknownLeg);
        }
        self.attach(a, Attachment::Bridge(b));
        self.attach(b, Attachment::Bridge(a));
        Ok(())
    }

    /// Attaches a leg to an application endpoint (detaching what it was attached to).
    pub fn attach_app(&mut self, _now: Instant, leg: LegId, app: AppEndpoint) -> bool {
        if !self.legs.contains_key(&leg) {
            return false;
        }
        self.attach(leg, Attachment::App(app));
        true
    }

    fn attach(&mut self, id: LegId, to: Attachment) {
        let Some(l) = self.legs.get_mut(&id) else {
            return;
        };
        if let Some(from) = l.attachment.replace(to.clone()) {
            self.commands.push_back(Command::Detach { leg: id, from });
        }
        self.commands.push_back(Command::Attach { leg: id, to });
    }

    /// An application ends an answered leg with `cause` (an unanswered one is refused
    /// through [`Self::sip_refused`]). False when the leg is not up.
    pub fn hang_up(&mut self, _now: Instant, leg: LegId, cause: HangupCause) -> bool {
        let Some(l) = self.legs.get(&leg) else {
            return false;
        };
        if !matches!(l.state, LegState::Active | LegState::Held) {
            return false;
        }
        let endpoint = l.endpoint;
        self.commands.push_back(Command::HangUp {
            leg,
            endpoint,
            cause,
        });
        true
    }

    /// An answered leg's media moved to another meeting (an application joined it to a
    /// meeting): it is that attendee's leg now, and an older leg of the same attendee is
    /// hung up as on any re-join. No command: the caller moved the media.
    pub fn move_member(&mut self, _now: Instant, leg: LegId, member: Member) -> bool {
        let Some(l) = self.legs.get(&leg) else {
            return false;
        };
        if let Some(old) = l.member.clone()
            && self.by_member.get(&old) == Some(&leg)
        {
            self.by_member.remove(&old);
        }
        if let Some(l) = self.legs.get_mut(&leg) {
            l.attachment = Some(Attachment::Meeting(member.clone()));
        }
        self.claim_member(leg, member);
        true
    }

    // ----- WebRTC -----

    /// A browser attendee's session joined the meeting's audio; an older leg of the same
    /// attendee is hung up.
    pub fn webrtc_open(&mut self, now: Instant, session: u64, member: Member) -> LegId {
        let id = self.new_leg(now, Endpoint::WebRtc(session), LegState::Active);
        if let Some(l) = self.legs.get_mut(&id) {
            l.attachment = Some(Attachment::Meeting(member.clone()));
        }
        self.claim_member(id, member);
        id
    }

    /// The browser's session closed (LEAVE, socket closed, or a status sent).
    pub fn webrtc_closed(&mut self, _now: Instant, leg: LegId, reason: &str) {
        self.end(leg, CallEnd::closed(reason));
    }

    // ----- control -----

    /// DeleteAttendee: the attendee's legs are hung up.
    pub fn delete_attendee(&mut self, now: Instant, attendee_id: &str) {
        self.hang_up_where(now, HangupCause::AttendeeRemoved, |m| {
            m.attendee_id == attendee_id
        });
    }

    /// DeleteMeeting (or auto-end): the meeting's legs are hung up.
    pub fn delete_meeting(&mut self, now: Instant, meeting_id: &str) {
        self.hang_up_where(now, HangupCause::MeetingEnded, |m| {
            m.meeting_id == meeting_id
        });
    }

    /// The server is stopping: every leg is hung up with [`HangupCause::ServerShutdown`];
    /// an INVITE still being set up is refused 503 with Retry-After (its join is undone
    /// when it arrives).
    pub fn shut_down(&mut self, now: Instant) {
        let ids: Vec<LegId> = self.legs.keys().copied().collect();
        for id in ids {
            let Some(leg) = self.legs.get_mut(&id) else {
                continue;
            };
            match leg.state {
                LegState::EndedInSetup => {}
                LegState::Setup => self.refuse_in_setup(now, id, JoinError::ShuttingDown),
                _ => {
                    let endpoint = leg.endpoint;
                    self.commands.push_back(Command::HangUp {
                        leg: id,
                        endpoint,
                        cause: HangupCause::ServerShutdown,
                    });
                }
            }
        }
    }

    fn hang_up_where(&mut self, _now: Instant, cause: HangupCause, f: impl Fn(&Member) -> bool) {
        let hit: Vec<(LegId, Endpoint)> = self
            .legs
            .values()
            .filter(|l| l.state != LegState::EndedInSetup)
            .filter(|l| l.member.as_ref().is_some_and(&f))
            .map(|l| (l.id, l.endpoint))
            .collect();
        for (leg, endpoint) in hit {
            self.commands.push_back(Command::HangUp {
                leg,
                endpoint,
                cause: cause.clone(),
            });
        }
    }
}
