//! Requests outside any dialog that we send (RFC 3261 §8.1): OPTIONS keep-alives to a
//! trunk, REGISTER (§10.2). Each is one non-INVITE client transaction; its final response
//! (or the timeout, as 408, or a transport error, as 503) comes back as
//! [`UaEvent::OutOfDialogResponse`]. With credentials, one 401/407 is answered by a new
//! request with the same Call-ID, the next CSeq and the digest (§22.2); the outcome is
//! still reported under the first request's key.

use std::time::Instant;

use super::{Credentials, Peer, UaError, UaEvent, UserAgent, via_for};
use crate::headers::HeaderName;
use crate::message::{Method, Request, Response};
use crate::transaction::TransactionKey;
use crate::uri::Uri;

/// A request outside any dialog.
#[derive(Debug, Clone)]
pub struct OutOfDialog {
    /// OPTIONS, REGISTER, ...
    pub method: Method,
    /// Request-URI.
    pub target: Uri,
    /// From value without tag (a tag is added).
    pub from: String,
    /// To value.
    pub to: String,
    /// Extra headers; an extension header as `(HeaderName::Other, "X-Name: value")`.
    pub headers: Vec<(HeaderName, String)>,
    /// The Call-ID to use (a REGISTER's refreshes keep one, §10.2); `None`: a new one.
    pub call_id: Option<String>,
    /// The CSeq number (a REGISTER's refreshes count up, §10.2); `None`: 1.
    pub cseq: Option<u32>,
    /// Digest credentials to answer one 401/407 with.
    pub credentials: Option<Credentials>,
}

impl OutOfDialog {
    /// A request with a new Call-ID, CSeq 1, no extra headers and no credentials.
    pub fn new(method: Method, target: Uri, from: String, to: String) -> OutOfDialog {
        OutOfDialog {
            method,
            target,
            from,
            to,
            headers: Vec::new(),
            call_id: None,
            cseq: None,
            credentials: None,
        }
    }
}

/// One of our out-of-dialog requests in flight.
pub(super) struct Standalone {
    /// The key its outcome is reported under (the first request's, after a digest retry).
    report_as: TransactionKey,
    peer: Peer,
    /// The request and the credentials for one challenge, while a retry is possible.
    retry: Option<(Request, Credentials)>,
}

impl UserAgent {
    /// Sends a request outside any dialog; its outcome arrives as
    /// [`UaEvent::OutOfDialogResponse`] with the returned key.
    pub fn send_out_of_dialog(
        &mut self,
        now: Instant,
        peer: Peer,
        req: OutOfDialog,
    ) -> Result<TransactionKey, UaError> {
        let tag = self.txn.new_token();
        let call_id = match req.call_id {
            Some(id) => id,
            None => format!("{}@{}", self.txn.new_token(), peer.local.ip()),
        };
        let branch = self.txn.new_branch();
        let cseq = format!("{} {}", req.cseq.unwrap_or(1), req.method.as_str());
        let mut r = Request::new(req.method, req.target);
        let h = &mut r.headers;
        h.push(HeaderName::Via, &via_for(&peer, &branch));
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, &crate::util::with_tag(&req.from, &tag));
        h.push(HeaderName::To, &req.to);
        h.push(HeaderName::CallId, &call_id);
        h.push(HeaderName::CSeq, &cseq);
        h.push(HeaderName::Contact, &self.contact(&peer));
        h.push(HeaderName::UserAgent, &self.cfg.user_agent);
        for (n, v) in &req.headers {
            match (n, v.split_once(':')) {
                (HeaderName::Other, Some((name, value))) => {
                    r.headers.push_raw(name.trim(), value.trim())
                }
                _ => r.headers.push(*n, v),
            }
        }
        r.headers.push(HeaderName::ContentLength, "0");
        let retry = req.credentials.map(|c| (r.clone(), c));
        let key = self.txn.send_request(now, r, peer)?;
        self.standalone.insert(
            key,
            Standalone {
                report_as: key,
                peer,
                retry,
            },
        );
        Ok(key)
    }

    /// A response to one of our out-of-dialog requests: a challenge is answered once when
    /// we have credentials, any other final one is reported.
    pub(super) fn on_standalone_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        resp: Response,
    ) -> bool {
        if !self.standalone.contains_key(key) {
            return false;
        }
        if resp.status < 200 {
            return true;
        }
        let Some(s) = self.standalone.remove(key) else {
            return true;
        };
        if matches!(resp.status, 401 | 407)
            && let Some((req, creds)) = s.retry.as_ref()
            && self.retry_standalone(now, &s, req, creds, &resp)
        {
            return true;
        }
        self.events.push_back(UaEvent::OutOfDialogResponse {
            txn: s.report_as,
            status: resp.status,
            response: Some(resp),
        });
        true
    }

    /// The digest retry (§22.2): same Call-ID and From, the next CSeq, a new branch.
    fn retry_standalone(
        &mut self,
        now: Instant,
        s: &Standalone,
        req: &Request,
        creds: &Credentials,
        resp: &Response,
    ) -> bool {
        let cnonce = self.txn.new_token();
        let Some((name, answer)) = super::uac::answer_challenge(resp, req, creds, &cnonce) else {
            return false;
        };
        let mut r = req.clone();
        let seq = r.headers.cseq().map_or(1, |c| c.seq).saturating_add(1);
        let branch = self.txn.new_branch();
        r.headers
            .replace_first(HeaderName::Via, &via_for(&s.peer, &branch));
        r.headers
            .set(HeaderName::CSeq, &format!("{seq} {}", r.method.as_str()));
        r.headers.set(name, &answer);
        let Ok(key) = self.txn.send_request(now, r, s.peer) else {
            return false;
        };
        self.standalone.insert(
            key,
            Standalone {
                report_as: s.report_as,
                peer: s.peer,
                retry: None,
            },
        );
        true
    }

    /// One of our out-of-dialog requests timed out (408) or could not be sent (503).
    pub(super) fn on_standalone_failure(&mut self, key: &TransactionKey, status: u16) -> bool {
        let Some(s) = self.standalone.remove(key) else {
            return false;
        };
        self.events.push_back(UaEvent::OutOfDialogResponse {
            txn: s.report_as,
            status,
            response: None,
        });
        true
    }

    /// The transport could not carry a message to `peer` (a refused TCP connect, a failed
    /// TLS handshake, a closed connection): every transaction with that peer ends at once
    /// as a transport failure (RFC 3261 §17.1.4, §17.2.4), so an INVITE ends with 503
    /// instead of waiting for Timer B, and an out-of-dialog request is reported as 503.
    pub fn handle_transport_error(&mut self, now: Instant, peer: Peer) {
        self.txn.handle_transport_error(peer);
        self.process(now);
    }
}
