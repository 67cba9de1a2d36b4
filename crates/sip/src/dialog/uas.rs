//! The UAS core (RFC 3261 §8.2, §13.3): requests outside a dialog (OPTIONS §11.2, merged
//! requests §8.2.2.2, unknown methods §8.2.1), the incoming INVITE and its answers — 1xx
//! (reliable, RFC 3262 §3), 2xx retransmitted until the ACK (§13.3.1.4), rejections —
//! CANCEL (§9.2) and the ACK for our 2xx.

use std::time::Instant;

use super::timer::DialogTimer;
use super::{
    Body, CallKey, DState, Dialog, Pending2xx, Purpose, Reliable1xx, Role, TerminationReason,
    UaError, UaEvent, UserAgent,
};
use crate::headers::HeaderName;
use crate::message::{Method, Request, Response};
use crate::transaction::{Peer, TransactionKey};
use crate::uri::Scheme;

impl UserAgent {
    pub(super) fn on_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        req: Request,
        peer: Peer,
    ) {
        // Max-Forwards (RFC 3261 §16.3 item 2, RFC 4475 §3.2.11): OPTIONS is answered by us.
        if req.method != Method::Options && req.headers.max_forwards() == Some(0) {
            return self.reply(now, key, &req, 483, &[]);
        }
        let in_dialog = req.headers.to().is_some_and(|t| t.tag().is_some());
        if in_dialog {
            return self.on_in_dialog(now, key, req, peer);
        }
        // §8.2.2.2 merged requests: same From tag, Call-ID and CSeq as a live transaction
        // that this request did not match (it arrived by another path) -> 482.
        let h = &req.headers;
        let merge_key = format!(
            "{}\n{}\n{}",
            h.from().and_then(|f| f.tag()).unwrap_or(""),
            h.call_id().unwrap_or(""),
            h.get(HeaderName::CSeq).unwrap_or("")
        );
        if req.method != Method::Cancel {
            // Only a transaction still waiting for its final response counts as ongoing,
            // so a (non-compliant) resend with the same CSeq after a final is not refused.
            let ongoing = self.merged.get(&merge_key).copied().filter(|other| {
                *other != key
                    && matches!(
                        self.txn.state(*other),
                        Some(
                            crate::transaction::State::Trying
                                | crate::transaction::State::Proceeding
                        )
                    )
            });
            if ongoing.is_some() {
                return self.reply(now, key, &req, 482, &[]);
            }
            if let Some(old) = self.merged.insert(merge_key.clone(), key) {
                self.merged_by_txn.remove(&old);
            }
            self.merged_by_txn.insert(key, merge_key);
        }
        match req.method {
            Method::Invite => self.on_invite(now, key, req, peer),
            Method::Options if self.cfg.options_to_app => {
                self.events.push_back(UaEvent::OutOfDialogRequest {
                    txn: key,
                    request: req,
                    peer,
                });
            }
            Method::Options => {
                let allow = self.allow_value();
                let sup = self.cfg.supported.join(", ");
                let acc = self.cfg.accept.clone();
                self.reply(
                    now,
                    key,
                    &req,
                    200,
                    &[
                        (HeaderName::Allow, &allow),
                        (HeaderName::Accept, &acc),
                        (HeaderName::Supported, &sup),
                    ],
                );
            }
            Method::Bye | Method::Prack | Method::Update | Method::Info => {
                // Needs a dialog (RFC 3261 §12.2.2).
                self.reply(now, key, &req, 481, &[]);
            }
            ref m if self.cfg.allow.contains(m) => {
                self.events.push_back(UaEvent::OutOfDialogRequest {
                    txn: key,
                    request: req,
                    peer,
                });
            }
            _ => {
                let allow = self.allow_value();
                self.reply(now, key, &req, 405, &[(HeaderName::Allow, &allow)]);
            }
        }
    }

    /// Option tags in Require that we do not support (RFC 3261 §8.2.2.3).
    fn unsupported_required(&self, req: &Request) -> Vec<String> {
        req.headers
            .option_tags(HeaderName::Require)
            .filter(|t| !self.supports(t))
            .map(str::to_owned)
            .collect()
    }

    fn on_invite(&mut self, now: Instant, key: TransactionKey, req: Request, peer: Peer) {
        if self.calls.len() >= self.cfg.max_calls {
            return self.reply(now, key, &req, 503, &[(HeaderName::RetryAfter, "5")]);
        }
        if !matches!(req.uri.scheme(), Scheme::Sip | Scheme::Sips | Scheme::Tel) {
            return self.reply(now, key, &req, 416, &[]);
        }
        let unsupported = self.unsupported_required(&req);
        if !unsupported.is_empty() {
            let v = unsupported.join(", ");
            return self.reply(now, key, &req, 420, &[(HeaderName::Unsupported, &v)]);
        }
        let Some(contact) = req.headers.contact().map(|c| c.uri.to_owned()) else {
            let w = self.warning("missing Contact");
            return self.reply(now, key, &req, 400, &[(HeaderName::Warning, &w)]);
        };
        let Ok(session) = self.negotiate_session_uas(now, key, &req) else {
            return;
        };
        let h = &req.headers;
        let (Some(call_id), Some(cseq), Some(from), Some(to)) = (
            h.call_id(),
            h.cseq(),
            h.get(HeaderName::From),
            h.get(HeaderName::To),
        ) else {
            return self.reply(now, key, &req, 400, &[]);
        };
        let local_tag = self.txn.new_token();
        let call = self.next_key();
        let local_party = crate::util::with_tag(to, &local_tag);
        let base = Dialog::new(
            Role::Uas,
            peer,
            call_id.to_owned(),
            local_tag.clone(),
            local_party,
            from.to_owned(),
            contact,
        );
        let d = Dialog {
            remote_seq: Some(cseq.seq),
            // §12.1.1: the UAS keeps Record-Route in order.
            route_set: h.list(HeaderName::RecordRoute).map(str::to_owned).collect(),
            pending_invite: Some((key, req.clone())),
            session,
            peer_allows_update: h.allow().any(|m| m == Method::Update),
            ..base
        };
        self.by_id.insert((d.call_id.clone(), local_tag), call);
        self.calls.insert(call, d);
        self.owners.insert(key, (call, Purpose::InitialInvite));
        self.events.push_back(UaEvent::IncomingCall {
            call,
            request: req,
            peer,
        });
    }

    /// Builds the response to the INVITE (initial or re-INVITE) pending on `call`, with To
    /// tag, Contact, Record-Route (§12.1.1), Allow/Supported and, for 2xx, the negotiated
    /// Session-Expires (RFC 4028 §9). Add a body or headers, then pass it to
    /// [`UserAgent::respond`].
    pub fn make_response(&self, call: CallKey, status: u16) -> Result<Response, UaError> {
        let d = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        let (_, req) = d.pending_invite.as_ref().ok_or(UaError::InvalidState)?;
        let mut r = Response::for_request(req, status);
        if status > 100 {
            r.headers.set(HeaderName::To, &d.local_party);
        }
        if (101..300).contains(&status) {
            r.headers.push(HeaderName::Contact, &self.contact(&d.peer));
            r.headers.copy_from(&req.headers, HeaderName::RecordRoute);
        }
        if status > 100 {
            self.add_capabilities(&mut r.headers);
        }
        if (200..300).contains(&status)
            && let Some(s) = d.session
        {
            // We are the UAS of this transaction (RFC 4028 §9).
            r.headers
                .push(HeaderName::SessionExpires, &s.header_value(false));
            let uac_supports = req.headers.has_option_tag(HeaderName::Supported, "timer");
            if uac_supports {
                r.headers.push(HeaderName::Require, "timer");
            }
        }
        r.headers.push(HeaderName::Server, &self.cfg.user_agent);
        Ok(r)
    }

    /// Drops the unanswered INVITE of `call` without sending anything (not even 100 Trying)
    /// and forgets the call. Only for a call that has no response out yet.
    pub fn discard(&mut self, call: CallKey) -> Result<(), UaError> {
        let d = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if d.state != DState::Init {
            return Err(UaError::InvalidState);
        }
        let (key, _) = d.pending_invite.clone().ok_or(UaError::InvalidState)?;
        self.txn.abandon(key);
        self.end_call(call, TerminationReason::Discarded);
        Ok(())
    }

    /// Answers the pending INVITE of `call` with `status` and an optional body: a shortcut
    /// for [`UserAgent::make_response`] + [`UserAgent::respond`].
    pub fn answer(
        &mut self,
        now: Instant,
        call: CallKey,
        status: u16,
        body: Option<Body>,
    ) -> Result<(), UaError> {
        let mut r = self.make_response(call, status)?;
        if let Some(b) = body {
            r.headers.set(HeaderName::ContentType, &b.content_type);
            r.body = b.bytes;
        }
        self.respond(now, call, r)
    }

    /// Sends a response to the INVITE pending on `call`. 1xx (reliable with RSeq when the
    /// peer requires 100rel, RFC 3262 §3), 2xx (retransmitted until ACK, §13.3.1.4), or a
    /// rejection (which ends a call that has no confirmed dialog as
    /// [`TerminationReason::Rejected`]).
    pub fn respond(&mut self, now: Instant, call: CallKey, resp: Response) -> Result<(), UaError> {
        self.respond_ending(now, call, resp, None)
    }

    /// [`UserAgent::respond`], with the reason a rejection of the initial INVITE ends the
    /// call for when the UA answers by itself (`None`: `Rejected(status)`, the application
    /// answered). Deciding here keeps the one `Terminated` event right as it is queued.
    fn respond_ending(
        &mut self,
        now: Instant,
        call: CallKey,
        mut resp: Response,
        ending: Option<TerminationReason>,
    ) -> Result<(), UaError> {
        let t1 = self.cfg.transaction.t1;
        let d = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        let (key, req) = d.pending_invite.clone().ok_or(UaError::InvalidState)?;
        let status = resp.status;
        let initial = d.state != DState::Confirmed;
        if (101..200).contains(&status) {
            if req.headers.has_option_tag(HeaderName::Require, "100rel") {
                if d.reliable.is_some() {
                    // RFC 3262 §3: one unacknowledged reliable provisional at a time.
                    return Err(UaError::RequestPending);
                }
                let rseq = d.rseq_next;
                d.rseq_next += 1;
                resp.headers.set(HeaderName::Require, "100rel");
                resp.headers.set(HeaderName::RSeq, &rseq.to_string());
                d.reliable = Some(Reliable1xx {
                    txn: key,
                    response: resp.clone(),
                    rseq,
                    interval: t1,
                    give_up: now + t1 * 64,
                });
                self.txn.send_response(now, key, resp)?;
                self.set_timer(call, DialogTimer::Reliable1xx, now + t1);
            } else {
                self.txn.send_response(now, key, resp)?;
            }
            if let Some(d) = self.calls.get_mut(&call)
                && d.state == DState::Init
            {
                d.state = DState::Early;
            }
            return Ok(());
        }
        d.pending_invite = None;
        d.reliable = None;
        d.timers.clear(DialogTimer::Reliable1xx);
        if (200..300).contains(&status) {
            d.state = DState::Confirmed;
            if !resp.body.is_empty() {
                d.local_body = Some(Body {
                    content_type: resp
                        .headers
                        .get(HeaderName::ContentType)
                        .unwrap_or("application/sdp")
                        .to_owned(),
                    bytes: resp.body.clone(),
                });
            }
            let cseq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
            let bytes = resp.to_bytes();
            d.pending_2xx = Some(Pending2xx {
                bytes,
                cseq,
                interval: t1,
                give_up: now + t1 * 64,
            });
            let session = d.session;
            self.txn.send_response(now, key, resp)?;
            // §13.3.1.4: retransmit the 2xx (T1 doubling to T2) until the ACK, on any transport.
            self.set_timer(call, DialogTimer::Retransmit2xx, now + t1);
            if let Some(s) = session {
                self.arm_session(now, call, s);
            }
        } else {
            self.txn.send_response(now, key, resp)?;
            if initial {
                let reason = ending.unwrap_or(TerminationReason::Rejected(status));
                self.end_call(call, reason);
            }
        }
        Ok(())
    }

    /// The 200 answer to an OPTIONS request, with Allow, Accept and Supported (RFC 3261
    /// §11.2).
    pub fn options_response(&self, req: &Request) -> Response {
        let mut r = Response::for_request(req, 200);
        r.headers.push(HeaderName::Allow, &self.allow_value());
        r.headers.push(HeaderName::Accept, &self.cfg.accept);
        r.headers
            .push(HeaderName::Supported, &self.cfg.supported.join(", "));
        r.headers.push(HeaderName::Server, &self.cfg.user_agent);
        r
    }

    /// Answers a server transaction reported by [`UaEvent::Request`] or
    /// [`UaEvent::OutOfDialogRequest`].
    pub fn respond_request(
        &mut self,
        now: Instant,
        txn: TransactionKey,
        resp: Response,
    ) -> Result<(), UaError> {
        self.txn.send_response(now, txn, resp)?;
        Ok(())
    }

    pub(super) fn on_cancel(
        &mut self,
        now: Instant,
        key: TransactionKey,
        req: Request,
        peer: Peer,
        invite: Option<TransactionKey>,
    ) {
        let target = invite.and_then(|k| self.owners.get(&k).copied());
        if let Some((call, _)) = target
            && self.refuse_foreign(now, call, Some(key), &req, peer)
        {
            return;
        }
        match target {
            Some((call, Purpose::InitialInvite)) => {
                // §9.2: the 200 to the CANCEL should carry the To tag of the INVITE's
                // responses (the dialog's local tag).
                let mut ok = Response::for_request(&req, 200);
                if let Some(d) = self.calls.get(&call) {
                    ok.headers.set(HeaderName::To, &d.local_party);
                }
                ok.headers.push(HeaderName::Server, &self.cfg.user_agent);
                let _ = self.txn.send_response(now, key, ok);
                let pending = self
                    .calls
                    .get(&call)
                    .and_then(|d| d.pending_invite.as_ref().map(|(k, _)| *k));
                if pending.is_some()
                    && let Ok(r) = self.make_response(call, 487)
                {
                    // The 487 ends the call as cancelled, not as our rejection.
                    let _ = self.respond_ending(now, call, r, Some(TerminationReason::Cancelled));
                }
            }
            Some(_) => self.reply(now, key, &req, 200, &[]),
            None => self.reply(now, key, &req, 481, &[]),
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, ack: Request, peer: Peer) {
        let Some(call) = self.find_dialog(&ack) else {
            return;
        };
        if self.refuse_foreign(now, call, None, &ack, peer) {
            return;
        }
        let seq = ack.headers.cseq().map(|c| c.seq);
        let Some(d) = self.calls.get_mut(&call) else {
            return;
        };
        if d.pending_2xx.as_ref().is_some_and(|p| Some(p.cseq) == seq) {
            d.pending_2xx = None;
            d.timers.clear(DialogTimer::Retransmit2xx);
            let bye = d.bye_after_ack;
            // The ACK names our dialog by the To tag only our 2xx told, so the address the
            // 2xx went to receives what we send: the transaction layer's reflection guard
            // treats it as verified.
            let ip = d.peer.remote.ip();
            self.txn.verify_source(now, ip);
            self.events.push_back(UaEvent::Confirmed { call, ack });
            if bye {
                let _ = self.send_bye(now, call);
                self.end_call(call, TerminationReason::LocalBye);
            }
        }
    }

    /// [`DialogTimer::Retransmit2xx`]: resends our 2xx, T1 doubling up to T2; after 64*T1
    /// without an ACK, BYE and end the call (RFC 3261 §13.3.1.4).
    pub(super) fn retransmit_2xx(&mut self, now: Instant, call: CallKey) {
        let t2 = self.cfg.transaction.t2;
        let Some(d) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(p) = d.pending_2xx.as_mut() else {
            return;
        };
        if now >= p.give_up {
            d.pending_2xx = None;
            let _ = self.send_bye(now, call);
            self.end_call(call, TerminationReason::AckTimeout);
            return;
        }
        let peer = d.peer;
        let bytes = p.bytes.clone();
        p.interval = (p.interval * 2).min(t2);
        let next = (now + p.interval).min(p.give_up);
        self.txn.send_bytes(peer, bytes);
        self.set_timer(call, DialogTimer::Retransmit2xx, next);
    }

    /// [`DialogTimer::Reliable1xx`]: resends our reliable provisional, T1 doubling; after
    /// 64*T1 without a PRACK, answer the INVITE 500 (RFC 3262 §3), which ends a call not yet
    /// confirmed as [`TerminationReason::PrackTimeout`].
    pub(super) fn retransmit_reliable_1xx(&mut self, now: Instant, call: CallKey) {
        let Some(d) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(r) = d.reliable.as_mut() else { return };
        if now >= r.give_up {
            d.reliable = None;
            if let Ok(resp) = self.make_response(call, 500) {
                let ending = Some(TerminationReason::PrackTimeout);
                let _ = self.respond_ending(now, call, resp, ending);
            }
            return;
        }
        let (txn, resp) = (r.txn, r.response.clone());
        r.interval *= 2;
        let next = (now + r.interval).min(r.give_up);
        let _ = self.txn.send_response(now, txn, resp);
        self.set_timer(call, DialogTimer::Reliable1xx, next);
    }
}
