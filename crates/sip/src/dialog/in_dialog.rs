//! Requests and responses inside a dialog, both ways (RFC 3261 §12.2): re-INVITE (§14),
//! UPDATE (RFC 3311; an UPDATE without a body is a session refresh, RFC 4028 §10), PRACK
//! (RFC 3262 §3), BYE (§15), INFO and other allowed methods; building our in-dialog
//! requests from the route set and remote target (§12.2.1.1); hangup.

use std::time::Instant;

use super::timer::DialogTimer;
use super::{
    Body, CallKey, DState, Purpose, Role, TerminationReason, UaError, UaEvent, UserAgent, via_for,
};
use crate::headers::HeaderName;
use crate::message::{Method, Request, Response};
use crate::transaction::{Peer, TransactionKey};
use crate::uri::Uri;
use crate::write::{HeaderValue, Reason};

impl UserAgent {
    pub(super) fn on_in_dialog(
        &mut self,
        now: Instant,
        key: TransactionKey,
        req: Request,
        peer: Peer,
    ) {
        let Some(call) = self.find_dialog(&req) else {
            return self.reply(now, key, &req, 481, &[]);
        };
        if self.refuse_foreign(now, call, Some(key), &req, peer) {
            return;
        }
        let cseq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let Some(d) = self.calls.get_mut(&call) else {
            return;
        };
        // §12.2.2: CSeq must increase.
        if d.remote_seq.is_some_and(|r| cseq <= r) {
            let w = self.warning("CSeq out of order");
            return self.reply(now, key, &req, 500, &[(HeaderName::Warning, &w)]);
        }
        d.remote_seq = Some(cseq);
        match req.method {
            Method::Bye => {
                self.reply(now, key, &req, 200, &[]);
                // §15.1.2: a pending INVITE gets 487.
                if let Some(d) = self.calls.get(&call)
                    && let Some((k, inv)) = d.pending_invite.clone()
                {
                    self.reply(now, k, &inv, 487, &[]);
                }
                self.end_call(call, TerminationReason::RemoteBye);
            }
            Method::Invite => {
                if d.pending_invite.is_some() {
                    // §14.2: their INVITE still pending: 500 with Retry-After.
                    return self.reply(now, key, &req, 500, &[(HeaderName::RetryAfter, "2")]);
                }
                if d.our_invite.is_some() {
                    return self.reply(now, key, &req, 491, &[]);
                }
                if let Some(c) = req.headers.contact() {
                    d.remote_target = c.uri.to_owned();
                }
                let Ok(session) = self.negotiate_session_uas(now, key, &req) else {
                    return;
                };
                if let Some(d) = self.calls.get_mut(&call) {
                    d.session = session.or(d.session);
                    d.pending_invite = Some((key, req.clone()));
                }
                self.owners.insert(key, (call, Purpose::Reinvite));
                self.events
                    .push_back(UaEvent::Reinvite { call, request: req });
            }
            Method::Prack => {
                let rack = req.headers.rack().map(|r| (r.rseq, r.cseq));
                let pending = d.reliable.as_ref().map(|r| r.rseq);
                let inv_seq = d
                    .pending_invite
                    .as_ref()
                    .and_then(|(_, r)| r.headers.cseq().map(|c| c.seq));
                match (rack, pending) {
                    (Some((rs, cs)), Some(p)) if rs == p && Some(cs) == inv_seq => {
                        d.reliable = None;
                        d.timers.clear(DialogTimer::Reliable1xx);
                        self.reply(now, key, &req, 200, &[]);
                        self.events.push_back(UaEvent::Prack { call, request: req });
                    }
                    _ => self.reply(now, key, &req, 481, &[]),
                }
            }
            Method::Update if req.body.is_empty() => {
                // RFC 3311 / RFC 4028 §10: a session refresh without an offer.
                if let Some(c) = req.headers.contact() {
                    d.remote_target = c.uri.to_owned();
                }
                let Ok(session) = self.negotiate_session_uas(now, key, &req) else {
                    return;
                };
                let mut extra = Vec::new();
                let se;
                if let Some(s) = session {
                    // We are the UAS of this transaction (RFC 4028 §9).
                    se = s.header_value(false);
                    extra.push((HeaderName::SessionExpires, se.as_str()));
                    if let Some(d) = self.calls.get_mut(&call) {
                        d.session = Some(s);
                    }
                    self.arm_session(now, call, s);
                }
                let contact = self
                    .calls
                    .get(&call)
                    .map(|d| self.contact(&d.peer))
                    .unwrap_or_default();
                extra.push((HeaderName::Contact, contact.as_str()));
                let to = self
                    .calls
                    .get(&call)
                    .map(|d| d.local_party.clone())
                    .unwrap_or_default();
                let mut r = Response::for_request(&req, 200);
                r.headers.set(HeaderName::To, &to);
                for (n, v) in extra {
                    r.headers.push(n, v);
                }
                let _ = self.txn.send_response(now, key, r);
            }
            Method::Options => {
                let allow = self.allow_value();
                self.reply(now, key, &req, 200, &[(HeaderName::Allow, &allow)]);
            }
            ref m if self.cfg.allow.contains(m) => {
                if req.method == Method::Update
                    && let Some(c) = req.headers.contact()
                {
                    d.remote_target = c.uri.to_owned();
                }
                self.owners.insert(key, (call, Purpose::Other));
                self.events.push_back(UaEvent::Request {
                    call,
                    txn: key,
                    request: req,
                });
            }
            _ => {
                let allow = self.allow_value();
                self.reply(now, key, &req, 405, &[(HeaderName::Allow, &allow)]);
            }
        }
    }

    /// first route for strict routers), Route from the route set, From/To with tags,
    /// Call-ID, the next local CSeq (or `cseq` for ACK), a new Via branch, Contact for
    /// target-refresh requests.
    pub(super) fn build_in_dialog(
        &mut self,
        call: CallKey,
        method: Method,
        cseq: Option<u32>,
    ) -> Result<Request, UaError> {
        let branch = self.txn.new_branch();
        let contact_needed = matches!(method, Method::Invite | Method::Update);
        let d = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        let seq = match cseq {
            Some(s) => s,
            None => {
                d.local_seq += 1;
                d.local_seq
            }
        };
        let first_strict = d
            .route_set
            .first()
            .and_then(|r| crate::typed::NameAddr::parse(r).ok())
            .filter(|na| !na.uri.lr())
            .map(|na| na.uri.to_owned());
        let (ruri, routes): (Uri, Vec<String>) = match first_strict {
            Some(u) => {
                let mut rs: Vec<String> = d.route_set[1..].to_vec();
                rs.push(HeaderValue::name_addr(None, &d.remote_target).into_string());
                (u, rs)
            }
            None => (d.remote_target.clone(), d.route_set.clone()),
        };
        let mut r = Request::new(method.clone(), ruri);
        let h = &mut r.headers;
        h.push(HeaderName::Via, &via_for(&d.peer, &branch));
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, &d.local_party);
        h.push(HeaderName::To, &d.remote_party);
        h.push(HeaderName::CallId, &d.call_id);
        h.push(HeaderName::CSeq, &format!("{seq} {}", method.as_str()));
        for rt in &routes {
            h.push(HeaderName::Route, rt);
        }
        let peer = d.peer;
        let session = d.session;
        if contact_needed {
            let c = self.contact(&peer);
            r.headers.push(HeaderName::Contact, &c);
            self.add_capabilities(&mut r.headers);
            if let Some(s) = session {
                // We are the UAC of this transaction (RFC 4028 §7.1).
                r.headers
                    .push(HeaderName::SessionExpires, &s.header_value(true));
            }
        }
        Ok(r)
    }

    /// Sends a request inside a confirmed dialog: re-INVITE or UPDATE (with an optional
    /// offer), INFO... Responses come back as [`UaEvent::InDialogResponse`]; a 2xx to a
    /// re-INVITE is ACKed here.
    pub fn send_in_dialog(
        &mut self,
        now: Instant,
        call: CallKey,
        method: Method,
        body: Option<Body>,
    ) -> Result<(), UaError> {
        let d = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if d.state != DState::Confirmed {
            return Err(UaError::InvalidState);
        }
        if method == Method::Invite && (d.our_invite.is_some() || d.pending_invite.is_some()) {
            return Err(UaError::RequestPending);
        }
        let peer = d.peer;
        let mut r = self.build_in_dialog(call, method.clone(), None)?;
        if let Some(b) = &body {
            r.headers.set(HeaderName::ContentType, &b.content_type);
            r.body = b.bytes.clone();
        }
        let key = self.txn.send_request(now, r.clone(), peer)?;
        let purpose = match method {
            Method::Invite => Purpose::Reinvite,
            Method::Update => Purpose::Update,
            _ => Purpose::Other,
        };
        if method == Method::Invite
            && let Some(d) = self.calls.get_mut(&call)
        {
            d.our_invite = Some((key, r));
            if let Some(b) = body {
                d.local_body = Some(b);
            }
        }
        self.owners.insert(key, (call, purpose));
        Ok(())
    }

    /// [`UserAgent::hangup`] with a Reason header on the BYE (RFC 3326), e.g.
    /// `Reason::sip(410, "meeting ended")` writes `SIP;cause=410;text="meeting ended"`.
    pub fn hangup_with(
        &mut self,
        now: Instant,
        call: CallKey,
        reason: &Reason,
    ) -> Result<(), UaError> {
        self.hangup_carrying(now, call, reason.to_string())
    }

    /// [`UserAgent::hangup`] with a Reason header value as written by the caller, e.g.
    /// `SIP;cause=200;text="Call completed elsewhere"`; control characters are dropped.
    /// Prefer [`UserAgent::hangup_with`], which writes the value from a typed [`Reason`].
    pub fn hangup_with_reason(
        &mut self,
        now: Instant,
        call: CallKey,
        reason: &str,
    ) -> Result<(), UaError> {
        let value: String = reason.chars().filter(|c| !c.is_control()).collect();
        self.hangup_carrying(now, call, value)
    }

    fn hangup_carrying(
        &mut self,
        now: Instant,
        call: CallKey,
        reason: String,
    ) -> Result<(), UaError> {
        let d = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        d.bye_reason = Some(reason);
        self.hangup(now, call)
    }

    /// Ends a call: BYE in a confirmed dialog (§15.1.1; as UAS only once the ACK for our 2xx
    /// arrived, §15), CANCEL for our unanswered INVITE, 480 for an INVITE we have not
    /// answered. Reports [`TerminationReason::LocalBye`] except for the CANCEL case, which
    /// ends when the 487 arrives. No Reason header; see [`UserAgent::hangup_with`].
    pub fn hangup(&mut self, now: Instant, call: CallKey) -> Result<(), UaError> {
        let d = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        match (d.role, d.state) {
            (Role::Uas, DState::Confirmed) if d.pending_2xx.is_some() => {
                // §15: no BYE before the ACK for our 2xx (or its timeout) arrives.
                if let Some(d) = self.calls.get_mut(&call) {
                    d.bye_after_ack = true;
                }
                Ok(())
            }
            (_, DState::Confirmed) => {
                self.send_bye(now, call)?;
                self.end_call(call, TerminationReason::LocalBye);
                Ok(())
            }
            (Role::Uac, _) => self.cancel(now, call),
            (Role::Uas, _) => {
                let r = self.make_response(call, 480)?;
                self.respond(now, call, r)
            }
        }
    }

    pub(super) fn send_bye(&mut self, now: Instant, call: CallKey) -> Result<(), UaError> {
        let d = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        let (peer, reason) = (d.peer, d.bye_reason.clone());
        let mut r = self.build_in_dialog(call, Method::Bye, None)?;
        if let Some(reason) = reason {
            r.headers.push(HeaderName::Reason, &reason);
        }
        let key = self.txn.send_request(now, r, peer)?;
        self.owners.insert(key, (call, Purpose::Bye));
        Ok(())
    }

    /// A transaction we own timed out (408) or hit a transport error (503).
    pub(super) fn on_failure(&mut self, now: Instant, key: TransactionKey, status: u16) {
        let Some((call, purpose)) = self.owners.remove(&key) else {
            return;
        };
        match purpose {
            Purpose::InitialInvite => {
                let role = self.calls.get(&call).map(|d| d.role);
                if role == Some(Role::Uac) {
                    self.end_call(call, TerminationReason::Failed(status));
                }
            }
            Purpose::Reinvite | Purpose::Update | Purpose::Other | Purpose::Prack => {
                if let Some(d) = self.calls.get_mut(&call)
                    && purpose == Purpose::Reinvite
                {
                    d.our_invite = None;
                }
                // §12.2.1.2: 408 ends the dialog.
                if status == 408 {
                    let _ = self.send_bye(now, call);
                    self.end_call(call, TerminationReason::DialogGone(408));
                }
            }
            Purpose::Bye | Purpose::Cancel => {}
        }
    }

    /// The final response to a non-INVITE request we sent in the dialog (UPDATE, INFO, ...):
    /// a 2xx to UPDATE sets the session (RFC 4028 §7.2), 481/408 end the dialog
    /// (§12.2.1.2), the rest goes to the application.
    pub(super) fn on_non_invite_response(
        &mut self,
        now: Instant,
        call: CallKey,
        purpose: Purpose,
        resp: Response,
    ) {
        let status = resp.status;
        if status < 200 {
            return;
        }
        if purpose == Purpose::Update
            && (200..300).contains(&status)
            && let Some(s) = self.session_from_response(call, &resp)
        {
            self.arm_session(now, call, s);
        }
        let method = resp
            .headers
            .cseq()
            .map(|c| c.method())
            .unwrap_or(Method::Update);
        if status == 481 || status == 408 {
            self.end_call(call, TerminationReason::DialogGone(status));
            return;
        }
        self.events.push_back(UaEvent::InDialogResponse {
            call,
            method,
            response: resp,
        });
    }
}
