//! The UAC core (RFC 3261 §8.1, §13.2): the outgoing INVITE, its provisionals (PRACKed
//! when reliable, RFC 3262 §4), the ACK for 2xx (§13.2.2.4, also for retransmissions), one
//! digest retry on 401/407 (§22.2) and CANCEL (§9.1). Responses to a re-INVITE we sent come
//! here too (same INVITE client rules, §14.1).

use std::time::Instant;

use super::{
    CallKey, DState, Dialog, OutgoingCall, Purpose, Role, TerminationReason, UaError, UaEvent,
    UserAgent, via_for,
};
use crate::headers::HeaderName;
use crate::message::{Method, Request, Response};
use crate::transaction::Peer;

/// The header answering a 401/407 to `req` (RFC 3261 §22.2): `Authorization` or
/// `Proxy-Authorization` with a digest over `req`'s method and Request-URI. Prefers a
/// SHA-256 challenge (RFC 8760 §2.4). `None` without a usable challenge.
pub(super) fn answer_challenge(
    resp: &Response,
    req: &Request,
    creds: &super::Credentials,
    cnonce: &str,
) -> Option<(HeaderName, String)> {
    let (challenge_name, answer_name) = if resp.status == 401 {
        (HeaderName::WwwAuthenticate, HeaderName::Authorization)
    } else {
        (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        )
    };
    let challenges: Vec<&str> = resp.headers.get_all(challenge_name).collect();
    let challenge = challenges
        .iter()
        .find(|c| {
            crate::auth::AuthParams::parse(c)
                .and_then(|p| p.get("algorithm"))
                .is_some_and(|a| a.eq_ignore_ascii_case("SHA-256"))
        })
        .or(challenges.first())?;
    let answer = crate::auth::respond_to_challenge(
        challenge,
        req.method.as_str(),
        &req.uri.to_string(),
        &creds.username,
        &creds.password,
        cnonce,
        1,
    )
    .ok()?;
    Some((answer_name, answer))
}

impl UserAgent {
    /// Starts a call (RFC 3261 §8.1.1, §13.2.1): INVITE to `target` sent to `peer`, From
    /// `from` and To `to` (name-addr values without tags), with an optional offer. Adds
    /// Via, Contact, Call-ID, CSeq, Max-Forwards, Allow, Supported and Session-Expires.
    pub fn invite(
        &mut self,
        now: Instant,
        peer: Peer,
        call: OutgoingCall,
    ) -> Result<CallKey, UaError> {
        let OutgoingCall {
            target,
            from,
            to,
            body,
            headers: extra,
            credentials,
        } = call;
        let (from, to) = (from.as_str(), to.as_str());
        let local_tag = self.txn.new_token();
        let call_id = format!("{}@{}", self.txn.new_token(), peer.local.ip());
        let branch = self.txn.new_branch();
        let mut r = Request::new(Method::Invite, target.clone());
        let h = &mut r.headers;
        h.push(HeaderName::Via, &via_for(&peer, &branch));
        h.push(HeaderName::MaxForwards, "70");
        let local_party = crate::util::with_tag(from, &local_tag);
        h.push(HeaderName::From, &local_party);
        h.push(HeaderName::To, to);
        h.push(HeaderName::CallId, &call_id);
        h.push(HeaderName::CSeq, "1 INVITE");
        h.push(HeaderName::Contact, &self.contact(&peer));
        self.add_capabilities(&mut r.headers);
        if let Some(st) = self.cfg.session_timer {
            r.headers
                .push(HeaderName::SessionExpires, &st.session_expires.to_string());
            r.headers.push(HeaderName::MinSe, &st.min_se.to_string());
        }
        r.headers.push(HeaderName::UserAgent, &self.cfg.user_agent);
        for (n, v) in &extra {
            match (n, v.split_once(':')) {
                (HeaderName::Other, Some((name, value))) => {
                    r.headers.push_raw(name.trim(), value.trim())
                }
                _ => r.headers.push(*n, v),
            }
        }
        if let Some(b) = &body {
            r.headers.set(HeaderName::ContentType, &b.content_type);
            r.body = b.bytes.clone();
        }
        let key = self.txn.send_request(now, r.clone(), peer)?;
        let call = self.next_key();
        let base = Dialog::new(
            Role::Uac,
            peer,
            call_id.clone(),
            local_tag.clone(),
            local_party,
            to.to_owned(),
            target,
        );
        let d = Dialog {
            local_seq: 1,
            our_invite: Some((key, r)),
            local_body: body,
            credentials,
            ..base
        };
        self.calls.insert(call, d);
        self.by_id.insert((call_id, local_tag), call);
        self.owners.insert(key, (call, Purpose::InitialInvite));
        Ok(call)
    }

    /// RFC 3261 §22.2: answers a 401/407 to our initial INVITE once, with the same Call-ID,
    /// From tag and the next CSeq. Prefers a SHA-256 challenge (RFC 8760 §2.4).
    pub(super) fn retry_with_credentials(
        &mut self,
        now: Instant,
        call: CallKey,
        resp: &Response,
    ) -> bool {
        let cnonce = self.txn.new_token();
        let branch = self.txn.new_branch();
        let Some(d) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some((_, old)) = d.our_invite.as_ref() else {
            return false;
        };
        let Some(creds) = d.credentials.take() else {
            return false;
        };
        let mut req = old.clone();
        let Some((answer_name, answer)) = answer_challenge(resp, &req, &creds, &cnonce) else {
            return false;
        };
        d.local_seq += 1;
        let seq = d.local_seq;
        req.headers
            .replace_first(HeaderName::Via, &via_for(&d.peer, &branch));
        req.headers.set(HeaderName::CSeq, &format!("{seq} INVITE"));
        req.headers.set(answer_name, &answer);
        let peer = d.peer;
        match self.txn.send_request(now, req.clone(), peer) {
            Ok(key) => {
                if let Some(d) = self.calls.get_mut(&call) {
                    d.our_invite = Some((key, req));
                }
                self.owners.insert(key, (call, Purpose::InitialInvite));
                true
            }
            Err(_) => false,
        }
    }

    /// Builds an in-dialog request (§12.2.1.1): Request-URI from the remote target (or the
    /// Cancels our unanswered INVITE (RFC 3261 §9.1).
    pub fn cancel(&mut self, now: Instant, call: CallKey) -> Result<(), UaError> {
        let d = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        let (key, _) = d.our_invite.as_ref().ok_or(UaError::InvalidState)?;
        if d.state == DState::Confirmed {
            return Err(UaError::InvalidState);
        }
        if let Some(ck) = self.txn.cancel(now, *key)? {
            self.owners.insert(ck, (call, Purpose::Cancel));
        }
        Ok(())
    }
    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        call: CallKey,
        resp: Response,
        initial: bool,
    ) {
        let status = resp.status;
        let Some(d) = self.calls.get_mut(&call) else {
            return;
        };
        let remote_tagged = resp.headers.to().is_some_and(|t| t.tag().is_some());
        let establish = initial
            && d.state != DState::Confirmed
            && remote_tagged
            && status > 100
            && status < 300;
        if establish {
            // §12.1.2: remote tag, target from Contact, route set = Record-Route reversed.
            if let Some(to) = resp.headers.get(HeaderName::To) {
                d.remote_party = to.to_owned();
            }
            if let Some(c) = resp.headers.contact() {
                d.remote_target = c.uri.to_owned();
            }
            let mut rr: Vec<String> = resp
                .headers
                .list(HeaderName::RecordRoute)
                .map(str::to_owned)
                .collect();
            rr.reverse();
            d.route_set = rr;
            d.peer_allows_update = resp.headers.allow().any(|m| m == Method::Update);
            if d.state == DState::Init {
                d.state = DState::Early;
            }
        } else if !initial
            && (200..300).contains(&status)
            && let Some(c) = resp.headers.contact()
        {
            d.remote_target = c.uri.to_owned(); // §12.2.1.2 target refresh
        }
        if status < 200 {
            if status == 100 || !initial {
                return;
            }
            // RFC 3262 §4: PRACK reliable provisionals, in RSeq order, once each.
            if resp.headers.has_option_tag(HeaderName::Require, "100rel")
                && let Some(rseq) = resp.headers.rseq()
            {
                let fresh = d.last_rseq_seen.is_none_or(|l| rseq == l.wrapping_add(1));
                if !fresh {
                    return;
                }
                d.last_rseq_seen = Some(rseq);
                let inv_seq = resp.headers.cseq().map(|c| c.seq).unwrap_or(1);
                let peer = d.peer;
                if let Ok(mut pr) = self.build_in_dialog(call, Method::Prack, None) {
                    pr.headers
                        .push(HeaderName::RAck, &format!("{rseq} {inv_seq} INVITE"));
                    if let Ok(k) = self.txn.send_request(now, pr, peer) {
                        self.owners.insert(k, (call, Purpose::Prack));
                    }
                }
            }
            self.events.push_back(UaEvent::Provisional {
                call,
                response: resp,
            });
            return;
        }
        if (200..300).contains(&status) {
            let cseq = resp.headers.cseq().map(|c| c.seq).unwrap_or(0);
            if d.last_ack.as_ref().is_some_and(|(s, _)| *s == cseq) {
                // §13.2.2.4: a retransmitted 2xx gets the same ACK again.
                let (peer, bytes) = (
                    d.peer,
                    d.last_ack
                        .as_ref()
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default(),
                );
                self.txn.send_bytes(peer, bytes);
                return;
            }
            d.state = DState::Confirmed;
            d.our_invite = None;
            let peer = d.peer;
            if let Ok(ack) = self.build_in_dialog(call, Method::Ack, Some(cseq)) {
                let bytes = ack.to_bytes();
                self.txn.send_bytes(peer, bytes.clone());
                if let Some(d) = self.calls.get_mut(&call) {
                    d.last_ack = Some((cseq, bytes));
                }
            }
            if let Some(s) = self.session_from_response(call, &resp) {
                self.arm_session(now, call, s);
            }
            self.events.push_back(if initial {
                UaEvent::Answered {
                    call,
                    response: resp,
                }
            } else {
                UaEvent::InDialogResponse {
                    call,
                    method: Method::Invite,
                    response: resp,
                }
            });
            return;
        }
        // Non-2xx final: the transaction sent the ACK (§17.1.1.3).
        if initial
            && (status == 401 || status == 407)
            && self.retry_with_credentials(now, call, &resp)
        {
            return;
        }
        let Some(d) = self.calls.get_mut(&call) else {
            return;
        };
        d.our_invite = None;
        if initial {
            self.end_call(call, TerminationReason::Failed(status));
        } else if status == 481 || status == 408 {
            self.end_call(call, TerminationReason::DialogGone(status));
        } else {
            self.events.push_back(UaEvent::InDialogResponse {
                call,
                method: Method::Invite,
                response: resp,
            });
        }
    }
}
