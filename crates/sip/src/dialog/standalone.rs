//! Requests outside any dialog that we send (RFC 3261 §8.1): OPTIONS keep-alives to a
//! trunk, REGISTER. Each is one non-INVITE client transaction; its final response (or the
//! timeout, as 408, or a transport error, as 503) comes back as
//! [`UaEvent::OutOfDialogResponse`].

use std::time::Instant;

use super::{Peer, UaError, UaEvent, UserAgent, via_for};
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
        let call_id = format!("{}@{}", self.txn.new_token(), peer.local.ip());
        let branch = self.txn.new_branch();
        let cseq = format!("1 {}", req.method.as_str());
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
        let key = self.txn.send_request(now, r, peer)?;
        self.standalone.insert(key);
        Ok(key)
    }

    /// A response to one of our out-of-dialog requests: the final one is reported.
    pub(super) fn on_standalone_response(&mut self, key: &TransactionKey, resp: Response) -> bool {
        if !self.standalone.contains(key) {
            return false;
        }
        if resp.status >= 200 {
            self.standalone.remove(key);
            self.events.push_back(UaEvent::OutOfDialogResponse {
                txn: *key,
                status: resp.status,
                response: Some(resp),
            });
        }
        true
    }

    /// One of our out-of-dialog requests timed out (408) or could not be sent (503).
    pub(super) fn on_standalone_failure(&mut self, key: &TransactionKey, status: u16) -> bool {
        if !self.standalone.remove(key) {
            return false;
        }
        self.events.push_back(UaEvent::OutOfDialogResponse {
            txn: *key,
            status,
            response: None,
        });
        true
    }
}
