//! Server transactions (RFC 3261 §17.2, RFC 6026 §7.1): matching, creation under the
//! budgets, responses, and the Via stamping of received requests.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::headers::HeaderName;
use crate::message::{Method, Request, Response};
use crate::typed::MAGIC_COOKIE;

use super::limits::{TXN_OVERHEAD, source_key};
use super::{
    Event, Peer, State, Timer, TransactionError, TransactionKey, TransactionKind, TransactionLayer,
    Transmit, Txn,
};

impl TransactionLayer {
    /// The §17.2.3 matching key; ACK maps to its INVITE. Falls back to the RFC 2543 rules
    /// (Request-URI, From tag, Call-ID, CSeq number, top Via) without the magic cookie.
    fn server_key(req: &Request, method: &Method) -> Option<String> {
        let h = &req.headers;
        let via = h.top_via()?;
        let m = if *method == Method::Ack {
            "INVITE"
        } else {
            method.as_str()
        };
        if let Some(b) = via.branch().filter(|b| b.starts_with(MAGIC_COOKIE)) {
            let port = via.port.unwrap_or(0);
            return Some(format!(
                "{b}\n{}:{port}\n{m}",
                via.host.to_ascii_lowercase()
            ));
        }
        let from_tag = h.from().and_then(|f| f.tag()).unwrap_or("");
        let cseq = h.cseq()?;
        let top = h.list(HeaderName::Via).next().unwrap_or("");
        Some(format!(
            "2543\n{}\n{from_tag}\n{}\n{}\n{top}\n{m}",
            req.uri,
            h.call_id().unwrap_or(""),
            cseq.seq
        ))
    }

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        mut req: Request,
        peer: Peer,
        wire_len: usize,
    ) {
        stamp_via(&mut req, peer.remote);
        let method = req.method.clone();
        let Some(mkey) = Self::server_key(&req, &method) else {
            return;
        };
        if method == Method::Ack {
            let found = self.server_index.get(&mkey).copied();
            if let Some(key) = found
                && let Some(t) = self.txns.get_mut(&key)
                && t.kind == TransactionKind::ServerInvite
            {
                match t.state {
                    State::Completed => {
                        // §17.2.1: ACK for the non-2xx: absorb, wait Timer I. Confirmed
                        // answers nothing, so the response is no longer kept.
                        t.state = State::Confirmed;
                        t.timers[Timer::G.slot()] = None;
                        t.timers[Timer::H.slot()] = None;
                        t.last_bytes = None;
                        let wait = if t.reliable() {
                            Duration::ZERO
                        } else {
                            self.cfg.t4
                        };
                        // The ACK carries the To tag only our response told: its source
                        // receives what we send.
                        let proof = t.local_tag.take().is_some_and(|tag| {
                            req.headers.to().and_then(|to| to.tag()) == Some(&*tag)
                        });
                        let ip = t.peer.remote.ip();
                        self.recharge(key);
                        self.set_timer(key, Timer::I, now + wait);
                        if proof {
                            self.verify_source(now, ip);
                        }
                        return;
                    }
                    State::Confirmed => return,
                    _ => {
                        self.events.push_back(Event::Ack {
                            request: req,
                            peer,
                            invite: Some(key),
                        });
                        return;
                    }
                }
            }
            self.events.push_back(Event::Ack {
                request: req,
                peer,
                invite: None,
            });
            return;
        }
        if let Some(&key) = self.server_index.get(&mkey) {
            // A retransmission: answered from the transaction (§17.2.1, §17.2.2).
            if let Some(t) = self.txns.get_mut(&key) {
                t.credit = t.credit.saturating_add(wire_len);
                // Both server kinds resend their last response in Proceeding/Completed.
                if matches!(t.state, State::Proceeding | State::Completed) {
                    let _ = self.emit_last(now, key, true);
                }
            }
            return;
        }
        // New server transaction; enforce the budgets first (source, then global).
        let ip = peer.remote.ip();
        let source = source_key(ip);
        let need = TXN_OVERHEAD + mkey.len() + wire_len;
        let refusal = self.over_budget(source, need);
        let cfg = &self.cfg;
        if let Some((retry_after, text)) = refusal {
            let mut resp = Response::for_request(&req, 503);
            resp.headers.push(HeaderName::RetryAfter, retry_after);
            let warning = crate::write::Warning::misc(cfg.warning_agent, text);
            resp.headers.push(HeaderName::Warning, &warning.to_string());
            self.send_stateless_answer(now, peer, resp.to_bytes(), wire_len);
            return;
        }
        let key = self.alloc_key();
        let invite = method == Method::Invite;
        let txn = Txn {
            kind: if invite {
                TransactionKind::ServerInvite
            } else {
                TransactionKind::ServerNonInvite
            },
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            peer,
            match_key: mkey.clone(),
            request: Some(req.clone()),
            request_len: wire_len,
            request_bytes: Vec::new(),
            last_bytes: None,
            interval: self.cfg.t1,
            timers: [None; 4],
            source: Some(source),
            cancel_pending: false,
            charged: 0,
            credit: wire_len,
            local_tag: None,
            provisional_sent: false,
        };
        let charged = txn.footprint();
        self.txns.insert(key, Txn { charged, ..txn });
        self.server_index.insert(mkey.clone(), key);
        let u = self.per_source.entry(source).or_default();
        u.count += 1;
        u.bytes += charged;
        self.total_bytes += charged;
        if invite {
            self.set_timer(key, Timer::Trying, now + self.cfg.trying_delay);
        }
        if method == Method::Cancel {
            // §9.2: the CANCEL matches the INVITE with the same top-Via branch and sent-by.
            let target = Self::server_key(&req, &Method::Invite)
                .and_then(|k| self.server_index.get(&k).copied());
            self.events.push_back(Event::Cancel {
                key,
                request: req,
                peer,
                invite: target,
            });
        } else {
            self.events.push_back(Event::Request {
                key,
                request: req,
                peer,
            });
        }
    }

    /// Sends a response through a server transaction (§17.2.1, §17.2.2; RFC 6026 §7.1).
    /// An INVITE's 2xx moves it to Accepted, where further 2xx (the TU's retransmissions,
    /// §13.3.1.4) are still allowed. A final response drops the request: the transaction
    /// keeps only what retransmission needs. Under the reflection guard a response to an
    /// unverified UDP source may be held (see the module documentation).
    pub fn send_response(
        &mut self,
        now: Instant,
        key: TransactionKey,
        resp: Response,
    ) -> Result<(), TransactionError> {
        let cfg = self.cfg;
        let t = self
            .txns
            .get_mut(&key)
            .ok_or(TransactionError::UnknownTransaction)?;
        let status = resp.status;
        let bytes = resp.to_bytes();
        let reliable = t.reliable();
        let peer = t.peer;
        let ip = peer.remote.ip();
        // Sent as is, never held: everything without the guard or over a reliable
        // transport, INVITE responses the TU gives only to an admitted request, and an
        // INVITE's final once a provisional went out (the caller no longer retransmits).
        let invite = t.kind == TransactionKind::ServerInvite;
        let after_provisional = invite && t.provisional_sent;
        let direct = !cfg.reflection_guard
            || reliable
            || (invite && (101..300).contains(&status))
            || after_provisional;
        match (t.kind, t.state) {
            (TransactionKind::ServerInvite, State::Proceeding) => {
                t.timers[Timer::Trying.slot()] = None;
                if status >= 300 {
                    t.state = State::Completed;
                    t.interval = cfg.t1;
                    t.request = None;
                    t.last_bytes = Some(bytes.clone());
                    t.local_tag = resp.headers.to().and_then(|to| to.tag()).map(Box::from);
                    // §17.2.1 Timer G; under the guard only toward a verified source (an
                    // unverified one gets the response again for each INVITE it resends).
                    let verified =
                        !cfg.reflection_guard || after_provisional || self.is_verified(now, ip);
                    if !reliable && verified {
                        self.set_timer(key, Timer::G, now + cfg.t1);
                    }
                    self.set_timer(key, Timer::H, now + cfg.t1 * 64);
                } else if status >= 200 {
                    // RFC 6026 §7.1: Accepted absorbs INVITE retransmissions; the TU
                    // retransmits the 2xx itself, so nothing is kept.
                    t.state = State::Accepted;
                    t.request = None;
                    t.last_bytes = None;
                    self.set_timer(key, Timer::L, now + cfg.t1 * 64);
                } else {
                    t.last_bytes = Some(bytes.clone());
                }
            }
            (TransactionKind::ServerInvite, State::Accepted) if (200..300).contains(&status) => {}
            (TransactionKind::ServerNonInvite, State::Trying | State::Proceeding) => {
                t.last_bytes = Some(bytes.clone());
                if status >= 200 {
                    t.state = State::Completed;
                    t.request = None;
                    let wait = if reliable {
                        Duration::ZERO
                    } else {
                        cfg.t1 * 64
                    };
                    self.set_timer(key, Timer::J, now + wait);
                } else {
                    t.state = State::Proceeding;
                }
            }
            _ => return Err(TransactionError::InvalidState),
        }
        self.recharge(key);
        let sent = if direct {
            self.transmits.push_back(Transmit {
                peer,
                payload: bytes,
            });
            true
        } else {
            self.emit_last(now, key, false)
        };
        if sent
            && status < 200
            && let Some(t) = self.txns.get_mut(&key)
        {
            t.provisional_sent = true;
        }
        Ok(())
    }
}

/// Stamps the top Via of a received request with `received` (RFC 3261 §18.2.1: when the
/// sent-by host is not the source address) and fills an empty `rport` with the source port
/// (RFC 3581 §4, which also requires `received` then). Returns whether it changed anything.
pub fn stamp_via(req: &mut Request, source: SocketAddr) -> bool {
    let Some(top) = req.headers.list(HeaderName::Via).next() else {
        return false;
    };
    let Ok(via) = crate::typed::Via::parse(top) else {
        return false;
    };
    let ip = source.ip();
    let host = via.host.trim_start_matches('[').trim_end_matches(']');
    let host_is_source = host.parse::<IpAddr>().is_ok_and(|h| h == ip);
    let rport_requested = matches!(via.rport(), Some(None));
    if (host_is_source && !rport_requested) || via.received().is_some() {
        return false;
    }
    // Rebuild the top Via value: the first element of the first Via line.
    let (before_params, params) = match top.find(';') {
        Some(i) => (&top[..i], &top[i + 1..]),
        None => (top, ""),
    };
    let mut out = crate::write::HeaderValue::new(before_params);
    let port = source.port().to_string();
    for (n, v) in crate::params::Params::new(params).iter() {
        if n.eq_ignore_ascii_case("rport") && v.is_none() {
            out = out.param("rport", Some(&port));
        } else {
            out = out.param(n, v);
        }
    }
    let received = match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let out = out.param("received", Some(&received));
    // Replace only the first element of the first Via line.
    let line = req.headers.get(HeaderName::Via).unwrap_or("").to_owned();
    let rest = match crate::text::find_unquoted(&line, b',', true) {
        Some(i) => line[i..].to_owned(),
        None => String::new(),
    };
    req.headers
        .replace_first(HeaderName::Via, &format!("{out}{rest}"))
}
