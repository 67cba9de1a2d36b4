//! Client transactions (RFC 3261 §17.1, RFC 6026 §7.2): sending, CANCEL, responses.

use std::time::{Duration, Instant};

use crate::headers::HeaderName;
use crate::message::{Method, Request, Response};
use crate::typed::MAGIC_COOKIE;

use super::{
    Event, Peer, State, Timer, TransactionError, TransactionKey, TransactionKind, TransactionLayer,
    Transmit, Txn,
};

impl TransactionLayer {
    fn client_key(branch: &str, method: &str) -> String {
        format!("{branch}\n{method}")
    }

    /// Starts a client transaction for `req` (which must carry a top Via with a
    /// `z9hG4bK` branch, see [`TransactionLayer::new_branch`]) and sends it to `peer`.
    pub fn send_request(
        &mut self,
        now: Instant,
        req: Request,
        peer: Peer,
    ) -> Result<TransactionKey, TransactionError> {
        if req.method == Method::Ack {
            return Err(TransactionError::AckNotAllowed);
        }
        let branch = req
            .headers
            .top_via()
            .and_then(|v| v.branch())
            .filter(|b| b.starts_with(MAGIC_COOKIE))
            .ok_or(TransactionError::MissingBranch)?
            .to_owned();
        if req.headers.cseq().is_none() {
            return Err(TransactionError::MissingBranch);
        }
        if self.txns.len() >= self.cfg.max_transactions {
            return Err(TransactionError::TooManyTransactions);
        }
        let mkey = Self::client_key(&branch, req.method.as_str());
        if self.client_index.contains_key(&mkey) {
            return Err(TransactionError::DuplicateBranch);
        }
        let key = self.alloc_key();
        let invite = req.method == Method::Invite;
        let bytes = req.to_bytes();
        let reliable = peer.transport.is_reliable();
        self.txns.insert(
            key,
            Txn {
                kind: if invite {
                    TransactionKind::ClientInvite
                } else {
                    TransactionKind::ClientNonInvite
                },
                state: if invite {
                    State::Calling
                } else {
                    State::Trying
                },
                peer,
                match_key: mkey.clone(),
                request: Some(req),
                request_len: 0,
                request_bytes: bytes.clone(),
                last_bytes: None,
                interval: self.cfg.t1,
                timers: [None; 4],
                source: None,
                cancel_pending: false,
                charged: 0,
                credit: 0,
                local_tag: None,
                provisional_sent: false,
            },
        );
        self.client_index.insert(mkey, key);
        self.recharge(key);
        self.transmits.push_back(Transmit {
            peer,
            payload: bytes,
        });
        let t1 = self.cfg.t1;
        if invite {
            if !reliable {
                self.set_timer(key, Timer::A, now + t1);
            }
            self.set_timer(key, Timer::B, now + t1 * 64);
        } else {
            if !reliable {
                self.set_timer(key, Timer::E, now + t1);
            }
            self.set_timer(key, Timer::F, now + t1 * 64);
        }
        Ok(key)
    }

    /// Builds and sends a CANCEL for an INVITE client transaction (RFC 3261 §9.1): same
    /// Request-URI, Call-ID, From, To, CSeq number and top Via, Route headers copied.
    /// Returns the CANCEL's own client transaction, or `None` when no provisional response
    /// has arrived yet: the CANCEL is then sent when one does (§9.1 forbids sending it
    /// earlier). If no final response follows within 64*T1, the INVITE transaction ends
    /// with [`Event::Timeout`] (§9.1).
    pub fn cancel(
        &mut self,
        now: Instant,
        invite: TransactionKey,
    ) -> Result<Option<TransactionKey>, TransactionError> {
        let t = self
            .txns
            .get_mut(&invite)
            .ok_or(TransactionError::UnknownTransaction)?;
        if t.kind != TransactionKind::ClientInvite
            || !matches!(t.state, State::Calling | State::Proceeding)
            || t.cancel_pending
        {
            return Err(TransactionError::NotCancellable);
        }
        if t.state == State::Calling {
            t.cancel_pending = true;
            return Ok(None);
        }
        self.send_cancel(now, invite).map(Some)
    }

    fn send_cancel(
        &mut self,
        now: Instant,
        invite: TransactionKey,
    ) -> Result<TransactionKey, TransactionError> {
        let req = self
            .txns
            .get(&invite)
            .and_then(|t| t.request.as_ref().map(|r| (r, t.peer)));
        let (req, peer) = req.ok_or(TransactionError::UnknownTransaction)?;
        let cancel = build_cancel_or_ack(req, Method::Cancel, None);
        let key = self.send_request(now, cancel, peer)?;
        let at = now + self.cfg.t1 * 64;
        self.set_timer(invite, Timer::B, at);
        Ok(key)
    }

    pub(super) fn on_response(&mut self, now: Instant, resp: Response) {
        let h = &resp.headers;
        let (Some(branch), Some(cseq)) = (h.top_via().and_then(|v| v.branch()), h.cseq()) else {
            return;
        };
        let mkey = Self::client_key(branch, cseq.method);
        let Some(&key) = self.client_index.get(&mkey) else {
            // §18.1.2 stray response; with RFC 6026 nothing needs it: drop.
            return;
        };
        // Only whoever received our request knows its branch: the address we sent it to
        // receives what we send (reflection guard).
        if let Some(ip) = self.txns.get(&key).map(|t| t.peer.remote.ip()) {
            self.verify_source(now, ip);
        }
        let cfg = self.cfg;
        let Some(t) = self.txns.get_mut(&key) else {
            return;
        };
        let status = resp.status;
        let reliable = t.reliable();
        match t.kind {
            TransactionKind::ClientInvite => match t.state {
                State::Calling | State::Proceeding => {
                    t.timers[Timer::A.slot()] = None;
                    if status < 200 {
                        t.state = State::Proceeding;
                        t.timers[Timer::B.slot()] = None;
                        if std::mem::take(&mut t.cancel_pending) {
                            let _ = self.send_cancel(now, key);
                        }
                    } else if status < 300 {
                        t.state = State::Accepted;
                        t.timers[Timer::B.slot()] = None;
                        self.set_timer(key, Timer::M, now + cfg.t1 * 64);
                    } else {
                        // §17.1.1.3: the transaction ACKs non-2xx finals itself.
                        t.state = State::Completed;
                        t.timers[Timer::B.slot()] = None;
                        let Some(invite) = &t.request else {
                            return;
                        };
                        let ack = build_cancel_or_ack(invite, Method::Ack, Some(&resp));
                        let bytes = ack.to_bytes();
                        self.transmits.push_back(Transmit {
                            peer: t.peer,
                            payload: bytes.clone(),
                        });
                        t.last_bytes = Some(bytes);
                        let wait = if reliable {
                            Duration::ZERO
                        } else {
                            Duration::from_secs(32)
                        };
                        self.set_timer(key, Timer::D, now + wait);
                        self.recharge(key);
                    }
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                }
                State::Accepted if (200..300).contains(&status) => {
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                }
                State::Completed if status >= 300 => {
                    if let Some(b) = &t.last_bytes {
                        self.transmits.push_back(Transmit {
                            peer: t.peer,
                            payload: b.clone(),
                        });
                    }
                }
                _ => {}
            },
            TransactionKind::ClientNonInvite => match t.state {
                State::Trying | State::Proceeding => {
                    if status < 200 {
                        t.state = State::Proceeding;
                    } else {
                        t.state = State::Completed;
                        t.timers[Timer::E.slot()] = None;
                        t.timers[Timer::F.slot()] = None;
                        let wait = if reliable { Duration::ZERO } else { cfg.t4 };
                        self.set_timer(key, Timer::K, now + wait);
                    }
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// Builds a CANCEL (RFC 3261 §9.1) or the ACK for a non-2xx final response (§17.1.1.3)
/// from the INVITE: Request-URI, Call-ID, From, CSeq number, the top Via only, and Route
/// headers; To comes from the response for the ACK.
fn build_cancel_or_ack(invite: &Request, method: Method, resp: Option<&Response>) -> Request {
    let mut r = Request::new(method.clone(), invite.uri.clone());
    let h = &invite.headers;
    if let Some(v) = h.list(HeaderName::Via).next() {
        r.headers.push(HeaderName::Via, v);
    }
    if let Some(mf) = h.get(HeaderName::MaxForwards) {
        r.headers.push(HeaderName::MaxForwards, mf);
    }
    r.headers.copy_from(h, HeaderName::From);
    match resp.and_then(|x| x.headers.get(HeaderName::To)) {
        Some(to) => r.headers.push(HeaderName::To, to),
        None => r.headers.copy_from(h, HeaderName::To),
    }
    r.headers.copy_from(h, HeaderName::CallId);
    if let Some(c) = h.cseq() {
        r.headers
            .push(HeaderName::CSeq, &format!("{} {}", c.seq, method.as_str()));
    }
    r.headers.copy_from(h, HeaderName::Route);
    r
}
