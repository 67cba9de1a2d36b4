//! Session timers (RFC 4028): negotiation of Session-Expires as UAS (§8, §9) and from the
//! 2xx to our request (§7.2), refresh by the refresher at half the interval and expiry on
//! the other side (§10).

use std::time::{Duration, Instant};

use super::timer::DialogTimer;
use super::{CallKey, TerminationReason, UaError, UserAgent};
use crate::headers::HeaderName;
use crate::message::{Method, Request, Response};
use crate::transaction::TransactionKey;
use crate::typed::Refresher;
use crate::write::HeaderValue;

/// The Reason of the BYE that ends a session whose refresh did not come (RFC 3326).
pub(super) const SESSION_EXPIRED_REASON: &str = "SIP;cause=408;text=\"session timer expired\"";

/// A negotiated session (RFC 4028 §2): its interval and whether we refresh it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Session {
    /// Session-Expires, in seconds.
    pub(super) interval: u32,
    /// Whether we are the refresher.
    pub(super) we_refresh: bool,
}

impl Session {
    /// The Session-Expires value `<interval>;refresher=uac|uas` (RFC 4028 §4), where `uac`
    /// and `uas` name the sides of the transaction that carries it: `we_are_uac` says
    /// which one we are (RFC 4028 §7.1 for our requests, §9 for our responses).
    pub(super) fn header_value(self, we_are_uac: bool) -> String {
        let who = if self.we_refresh == we_are_uac {
            "uac"
        } else {
            "uas"
        };
        HeaderValue::new(self.interval)
            .param("refresher", Some(who))
            .into_string()
    }
}

impl UserAgent {
    /// RFC 4028 §8: checks Session-Expires against our Min-SE; returns the negotiated
    /// session, or `Err(())` after answering 422.
    pub(super) fn negotiate_session_uas(
        &mut self,
        now: Instant,
        key: TransactionKey,
        req: &Request,
    ) -> Result<Option<Session>, ()> {
        let Some(cfg) = self.cfg.session_timer else {
            return Ok(None);
        };
        let uac_supports = req.headers.has_option_tag(HeaderName::Supported, "timer")
            || req.headers.has_option_tag(HeaderName::Require, "timer");
        match req.headers.session_expires() {
            Some(se) if se.delta < cfg.min_se => {
                let v = cfg.min_se.to_string();
                self.reply(now, key, req, 422, &[(HeaderName::MinSe, &v)]);
                Err(())
            }
            Some(se) => {
                let interval = se.delta.min(cfg.session_expires.max(cfg.min_se));
                let we_refresh = match se.refresher {
                    Some(Refresher::Uas) => true,
                    Some(Refresher::Uac) => false,
                    None => !uac_supports,
                };
                Ok(Some(Session {
                    interval,
                    we_refresh,
                }))
            }
            None => Ok(Some(Session {
                interval: cfg.session_expires,
                we_refresh: true,
            })),
        }
    }

    /// RFC 4028 §7.2: the session the 2xx sets (for requests we sent).
    pub(super) fn session_from_response(
        &mut self,
        call: CallKey,
        resp: &Response,
    ) -> Option<Session> {
        let se = resp.headers.session_expires()?;
        let d = self.calls.get_mut(&call)?;
        // We sent the request, so `uac` means us (RFC 4028 §7.2).
        let we_refresh = se.refresher != Some(Refresher::Uas);
        let s = Session {
            interval: se.delta,
            we_refresh,
        };
        d.session = Some(s);
        Some(s)
    }

    /// RFC 4028 §10: the refresher refreshes at half the interval; the other side ends the
    /// session if no refresh arrives before `interval - min(32, interval/3)` seconds.
    pub(super) fn arm_session(&mut self, now: Instant, call: CallKey, s: Session) {
        let secs = u64::from(s.interval);
        if s.we_refresh {
            let at = now + Duration::from_secs(secs / 2);
            self.set_timer(call, DialogTimer::SessionRefresh, at);
        } else {
            self.clear_timer(call, DialogTimer::SessionRefresh);
        }
        let guard = (secs / 3).min(32);
        let at = now + Duration::from_secs(secs - guard);
        self.set_timer(call, DialogTimer::SessionExpiry, at);
    }

    /// [`DialogTimer::SessionRefresh`]: an UPDATE without an offer when the peer allows
    /// UPDATE, else a re-INVITE with our last offer or answer (RFC 4028 §10).
    pub(super) fn refresh_session(&mut self, now: Instant, call: CallKey) -> Result<(), UaError> {
        let d = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if d.peer_allows_update {
            self.send_in_dialog(now, call, Method::Update, None)
        } else {
            let body = d.local_body.clone();
            self.send_in_dialog(now, call, Method::Invite, body)
        }
    }

    /// [`DialogTimer::SessionExpiry`]: no refresh arrived; BYE and end the call (RFC 4028
    /// §10). The BYE says why (RFC 3326 Reason, cause 408) unless the application gave a
    /// Reason already.
    pub(super) fn expire_session(&mut self, now: Instant, call: CallKey) {
        if let Some(d) = self.calls.get_mut(&call) {
            d.bye_reason
                .get_or_insert_with(|| SESSION_EXPIRED_REASON.to_owned());
        }
        let _ = self.send_bye(now, call);
        self.end_call(call, TerminationReason::SessionExpired);
    }
}
