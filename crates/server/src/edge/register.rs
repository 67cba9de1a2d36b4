//! REGISTER with carrier trunks (`admin carriers add --register`, RFC 3261 §10).
//!
//! A task ([`register_carriers`]) reads the carriers every second and hands the edge task
//! the ones that want registering ([`Tick`]); the edge keeps one [`Registrations`] (sans-IO:
//! time in, requests out) and sends each REGISTER through the user agent's out-of-dialog
//! client transactions, the same path as the OPTIONS keep-alives (`probes.rs`). A 401/407
//! is answered there once with the carrier's credentials (the INVITE path's digest code).
//!
//! - To and From are `sip:<username>@<carrier host>`, the Contact is our SIP address, the
//!   Call-ID stays the same for a carrier and the CSeq counts up (§10.2.4).
//! - We ask for [`DEFAULT_EXPIRES`] seconds; the registrar's answer (the Expires header,
//!   else our Contact's `expires` parameter) is what counts. 423 Interval Too Brief is
//!   retried at once with its Min-Expires (§10.2.8).
//! - **Refresh rule:** a binding granted for `E` seconds is refreshed after `E/2` (at
//!   least one second), so a refresh that times out (Timer F, 32 s) and its retry still
//!   land before the binding runs out for any `E` over about 64 s.
//! - **Backoff** after a failure (timeout, transport error, 4xx, 5xx, 6xx) follows RFC 5626
//!   §4.5: `min(MAX, BASE · 2^(n-1))` for the n-th failure in a row, of which a random 50 to
//!   100 % is waited (so many nodes do not retry in step). A Retry-After (RFC 3261 §20.33,
//!   e.g. on 503) is honoured instead, up to [`MAX_RETRY_AFTER_SECS`].
//! - A carrier removed, disabled or with `--register` turned off is un-registered
//!   (`Expires: 0`) if it held a binding; so is every carrier when the server shuts down
//!   (the drain), best effort: the answer is not waited for.
//!
//! The outcome goes to the store (`admin carriers list`) and to `/metrics` as
//! `vc_carrier_registered{carrier=".."}` (1 registered, 0 not).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use domain::carrier::{CarrierRegistration, CarrierTransport, RegistrationState};
use sip::{Credentials, HeaderName, Method, OutOfDialog, TransactionKey, Uri};

use super::Edge;

/// The registration interval we ask for (seconds).
pub const DEFAULT_EXPIRES: u32 = 3600;
/// The first backoff step.
const BACKOFF_BASE: Duration = Duration::from_secs(4);
/// The longest backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(600);
/// The longest Retry-After we wait for.
pub const MAX_RETRY_AFTER_SECS: u32 = 3600;

/// A carrier to register with, its address resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RegTarget {
    pub carrier: String,
    pub transport: CarrierTransport,
    pub remote: SocketAddr,
    /// The carrier's host as configured (Request-URI, To and From host).
    pub host: String,
    /// The user part of To and From.
    pub username: String,
    pub credentials: Option<Credentials>,
}

/// One round of the registration task: the carriers that want registering now (`wanted`)
/// and those of them whose address resolved (`targets`; one that did not keeps its last
/// address), and the names of every carrier there is (one missing there was removed).
#[derive(Debug, Clone)]
pub struct Tick {
    pub targets: Vec<RegTarget>,
    pub wanted: Vec<String>,
    pub carriers: Vec<String>,
}

/// A REGISTER to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub target: RegTarget,
    pub call_id: String,
    pub cseq: u32,
    /// The Expires to ask for (0: un-register).
    pub expires: u32,
}

/// What a REGISTER's response said (the parts that matter here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answer {
    /// The final status (408 for a timeout, 503 for a transport error).
    pub status: u16,
    /// Whether a response arrived (else the status is our own).
    pub answered: bool,
    /// The granted interval (Expires header, or the Contact's `expires`).
    pub expires: Option<u32>,
    pub retry_after: Option<u32>,
    pub min_expires: Option<u32>,
}

/// A registration's new status: stored, shown, counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: CarrierRegistration,
    /// The carrier is gone: nothing to store.
    pub removed: bool,
    /// When the next REGISTER goes (logs).
    pub next_in: Option<Duration>,
}

#[derive(Debug)]
struct Reg<K> {
    target: RegTarget,
    call_id: String,
    cseq: u32,
    /// Registering (true) or un-registering.
    wanted: bool,
    /// The carrier was removed (un-registering; nothing to store).
    removed: bool,
    /// The request in flight and the Expires it asked for.
    in_flight: Option<(K, u32)>,
    next: Option<Instant>,
    /// Failures in a row.
    failures: u32,
    /// The registrar holds our binding (as far as we know).
    bound: bool,
    /// What to ask for (raised by a 423's Min-Expires).
    ask: u32,
}

/// Every carrier's registration (owned by the edge task), requests named by `K` (the
/// user agent's transaction key in the edge).
#[derive(Debug)]
pub struct Registrations<K> {
    regs: HashMap<String, Reg<K>>,
    txns: HashMap<K, String>,
    /// Shutting down: bindings are removed, none is made.
    stopped: bool,
}

impl<K> Default for Registrations<K> {
    fn default() -> Self {
        Registrations {
            regs: HashMap::new(),
            txns: HashMap::new(),
            stopped: false,
        }
    }
}

impl<K: Copy + Eq + Hash> Registrations<K> {
    /// Takes the carriers' current configuration: new ones register now, changed ones
    /// re-register now, ones no longer wanted un-register (when bound) or are dropped.
    /// Returns the statuses of carriers dropped without a request.
    pub fn sync(&mut self, now: Instant, now_ms: i64, tick: Tick) -> Vec<Outcome> {
        if self.stopped {
            return Vec::new();
        }
        let mut dropped = Vec::new();
        for t in &tick.targets {
            match self.regs.get_mut(&t.carrier) {
                Some(r) => {
                    if r.target != *t || !r.wanted {
                        r.target = t.clone();
                        r.wanted = true;
                        r.removed = false;
                        r.failures = 0;
                        r.next = Some(now);
                    }
                }
                None => {
                    self.regs.insert(
                        t.carrier.clone(),
                        Reg {
                            target: t.clone(),
                            call_id: format!(
                                "reg-{:016x}-{}",
                                rand::random::<u64>(),
                                t.remote.ip()
                            ),
                            cseq: 0,
                            wanted: true,
                            removed: false,
                            in_flight: None,
                            next: Some(now),
                            failures: 0,
                            bound: false,
                            ask: DEFAULT_EXPIRES,
                        },
                    );
                }
            }
        }
        let gone: Vec<String> = self
            .regs
            .keys()
            .filter(|c| !tick.wanted.contains(c))
            .cloned()
            .collect();
        for c in gone {
            let removed = !tick.carriers.contains(&c);
            let Some(r) = self.regs.get_mut(&c) else {
                continue;
            };
            r.removed = removed;
            if !r.wanted {
                continue;
            }
            r.wanted = false;
            if r.bound || r.in_flight.is_some() {
                // A request in flight may still bind: un-register after it.
                if r.in_flight.is_none() {
                    r.next = Some(now);
                }
            } else {
                self.regs.remove(&c);
                dropped.push(unregistered(c, removed, None, now_ms));
            }
        }
        dropped
    }

    /// Shutdown: every binding is to be removed (see [`Self::due`]) and no carrier is
    /// registered again. Returns the statuses of carriers dropped without a request.
    pub fn stop(&mut self, now: Instant, now_ms: i64) -> Vec<Outcome> {
        let carriers = self.regs.keys().cloned().collect();
        let idle = Tick {
            targets: Vec::new(),
            wanted: Vec::new(),
            carriers,
        };
        let dropped = self.sync(now, now_ms, idle);
        self.stopped = true;
        dropped
    }

    /// The REGISTERs due by `now`.
    pub fn due(&mut self, now: Instant) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for r in self.regs.values_mut() {
            if r.in_flight.is_some() || r.next.is_none_or(|t| t > now) {
                continue;
            }
            r.next = None;
            // Two steps: a digest retry takes the next number (§22.2).
            r.cseq += 2;
            out.push(Outgoing {
                target: r.target.clone(),
                call_id: r.call_id.clone(),
                cseq: r.cseq,
                expires: if r.wanted { r.ask } else { 0 },
            });
        }
        out
    }

    /// The REGISTER for `carrier` went out as transaction `txn`.
    pub fn sent(&mut self, carrier: &str, txn: K, expires: u32) {
        if let Some(r) = self.regs.get_mut(carrier) {
            r.in_flight = Some((txn, expires));
            self.txns.insert(txn, carrier.to_string());
        }
    }

    /// Whether `txn` is one of ours.
    pub fn owns(&self, txn: &K) -> bool {
        self.txns.contains_key(txn)
    }

    /// A REGISTER's outcome. `jitter` in [0, 1) picks the backoff within its window.
    pub fn on_answer(
        &mut self,
        now: Instant,
        now_ms: i64,
        txn: &K,
        a: Answer,
        jitter: f64,
    ) -> Option<Outcome> {
        let carrier = self.txns.remove(txn)?;
        let r = self.regs.get_mut(&carrier)?;
        let (_, asked) = r.in_flight.take()?;
        let last_status = a.answered.then_some(a.status);
        if asked == 0 {
            // Un-registered (or it failed: the binding runs out by itself).
            if r.wanted {
                // Wanted again meanwhile.
                r.bound = false;
                r.next = Some(now);
                return None;
            }
            let removed = r.removed;
            self.regs.remove(&carrier);
            return Some(unregistered(carrier, removed, last_status, now_ms));
        }
        if !r.wanted {
            // Turned off while this was in flight: take back what it may have bound.
            r.bound = (200..300).contains(&a.status);
            if r.bound {
                r.next = Some(now);
                return None;
            }
            let removed = r.removed;
            self.regs.remove(&carrier);
            return Some(unregistered(carrier, removed, last_status, now_ms));
        }
        if (200..300).contains(&a.status) && a.expires != Some(0) {
            let granted = a.expires.unwrap_or(asked).max(1);
            r.bound = true;
            r.failures = 0;
            let next_in = refresh_after(granted);
            r.next = Some(now + next_in);
            return Some(Outcome {
                status: CarrierRegistration {
                    carrier,
                    state: RegistrationState::Registered,
                    last_status,
                    expires_ms: Some(now_ms + i64::from(granted) * 1000),
                    updated_ms: now_ms,
                },
                removed: false,
                next_in: Some(next_in),
            });
        }
        r.failures += 1;
        let next_in = match (a.status, a.min_expires) {
            (423, Some(min)) if min > r.ask && r.failures <= 3 => {
                r.ask = min;
                Duration::ZERO
            }
            _ => match a.retry_after {
                Some(s) => Duration::from_secs(u64::from(s.min(MAX_RETRY_AFTER_SECS))),
                None => backoff(r.failures, jitter),
            },
        };
        r.next = Some(now + next_in);
        // A binding from an earlier success stays until it runs out (a refresh failed).
        Some(Outcome {
            status: CarrierRegistration {
                carrier,
                state: RegistrationState::Failing,
                last_status,
                expires_ms: None,
                updated_ms: now_ms,
            },
            removed: false,
            next_in: Some(next_in),
        })
    }
}

fn unregistered(carrier: String, removed: bool, last_status: Option<u16>, now_ms: i64) -> Outcome {
    Outcome {
        status: CarrierRegistration {
            carrier,
            state: RegistrationState::Unregistered,
            last_status,
            expires_ms: None,
            updated_ms: now_ms,
        },
        removed,
        next_in: None,
    }
}

/// When a binding granted for `expires` seconds is refreshed: half-way, at least 1 s.
pub fn refresh_after(expires: u32) -> Duration {
    Duration::from_millis((u64::from(expires) * 500).max(1000))
}

/// The wait after the `failures`-th failure in a row (RFC 5626 §4.5), `jitter` in [0, 1)
/// choosing between 50 and 100 % of the step.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let step = BACKOFF_BASE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;

/// Reads what matters here from a REGISTER's response.
fn answer_of(status: u16, resp: Option<&sip::Response>) -> Answer {
    let Some(resp) = resp else {
        return Answer {
            status,
            ..Answer::default()
        };
    };
    let h = &resp.headers;
    let number = |v: &str| {
        v.split([';', '(', ' '])
            .next()
            .and_then(|n| n.trim().parse::<u32>().ok())
    };
    let contact_expires = || {
        h.list(HeaderName::Contact).find_map(|c| {
            let lower = c.to_ascii_lowercase();
            let (_, rest) = lower.split_once(";expires=")?;
            number(rest)
        })
    };
    Answer {
        status,
        answered: true,
        expires: h
            .get(HeaderName::Expires)
            .and_then(number)
            .or_else(contact_expires),
        retry_after: h.get(HeaderName::RetryAfter).and_then(number),
        min_expires: h.get(HeaderName::MinExpires).and_then(number),
    }
}

impl Edge {
    /// The registration task's round: take the carriers, send what is due.
    pub(super) fn register_tick(&mut self, now: Instant, tick: Tick) {
        let now_ms = domain::timestamp::now_millis();
        for o in self.registrations.sync(now, now_ms, tick) {
            self.register_outcome(o);
        }
        for out in self.registrations.due(now) {
            self.register_send(now, out);
        }
    }

    /// Shutdown: every binding is removed (`Expires: 0`), nothing is registered again.
    pub(super) fn unregister_all(&mut self, now: Instant) {
        let now_ms = domain::timestamp::now_millis();
        for o in self.registrations.stop(now, now_ms) {
            self.register_outcome(o);
        }
        for out in self.registrations.due(now) {
            self.register_send(now, out);
        }
    }

    fn register_send(&mut self, now: Instant, out: Outgoing) {
        let t = &out.target;
        let (peer, scheme) = self.carrier_peer(t.transport, t.remote);
        let port = t.remote.port();
        let (Ok(target), Ok(aor)) = (
            Uri::parse(&format!("{scheme}:{}:{port}", t.host)),
            Uri::parse(&format!("{scheme}:{}@{}", t.username, t.host)),
        ) else {
            tracing::warn!(carrier = %t.carrier, host = %t.host, "REGISTER: the carrier's host does not make a SIP URI");
            return;
        };
        let mut req = OutOfDialog::new(
            Method::Register,
            target,
            format!("<{aor}>"),
            format!("<{aor}>"),
        );
        req.headers
            .push((HeaderName::Expires, out.expires.to_string()));
        req.call_id = Some(out.call_id.clone());
        req.cseq = Some(out.cseq);
        req.credentials = t.credentials.clone();
        let carrier = t.carrier.clone();
        match self.ua.send_out_of_dialog(now, peer, req) {
            Ok(txn) => self.registrations.sent(&carrier, txn, out.expires),
            Err(e) => {
                tracing::warn!(%carrier, error = %e, "REGISTER not sent");
            }
        }
    }

    /// A REGISTER's outcome; false when `txn` is not a REGISTER's.
    pub(super) fn register_result(
        &mut self,
        txn: TransactionKey,
        status: u16,
        resp: Option<&sip::Response>,
    ) -> bool {
        if !self.registrations.owns(&txn) {
            return false;
        }
        let a = answer_of(status, resp);
        let now_ms = domain::timestamp::now_millis();
        let jitter = rand::random::<f64>();
        if let Some(o) = self
            .registrations
            .on_answer(Instant::now(), now_ms, &txn, a, jitter)
        {
            self.register_outcome(o);
        }
        true
    }

    /// Logs, counts and stores a registration's new status.
    fn register_outcome(&mut self, o: Outcome) {
        let s = o.status;
        let carrier = s.carrier.clone();
        let registered = s.state == RegistrationState::Registered;
        let retry = o.next_in.map(|d| d.as_secs_f64());
        match s.state {
            RegistrationState::Registered => {
                tracing::info!(%carrier, status = ?s.last_status, refresh_in_secs = ?retry, "registered with the carrier")
            }
            RegistrationState::Failing => {
                tracing::warn!(%carrier, status = ?s.last_status, retry_in_secs = ?retry, "REGISTER to the carrier failed")
            }
            RegistrationState::Unregistered => {
                tracing::info!(%carrier, status = ?s.last_status, "un-registered from the carrier")
            }
        }
        self.ctx.metrics.gauge_set(
            "vc_carrier_registered",
            &format!("carrier=\"{carrier}\""),
            i64::from(registered),
        );
        if o.removed {
            return;
        }
        let repo = self.ctx.admission.repo().clone();
        tokio::spawn(async move {
            if let Err(e) = repo.put_carrier_registration(&s).await {
                tracing::warn!(carrier = %s.carrier, error = %e, "storing the carrier's registration failed");
            }
        });
    }
}

/// Every second: the carriers that want registering, resolved, to the edge task (which
/// sends what is due). Stops when the edge does.
pub async fn register_carriers(
    repo: std::sync::Arc<dyn store::Repository>,
    controller: super::Controller,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let wanted = |c: &domain::carrier::Carrier| c.enabled && c.register;
        let Some((carriers, resolved)) =
            super::probes::resolve_carriers(repo.as_ref(), "REGISTER", wanted).await
        else {
            continue;
        };
        let wanted_names = carriers
            .iter()
            .filter(|c| wanted(c))
            .map(|c| c.name.clone())
            .collect();
        let targets = resolved
            .into_iter()
            .map(|(c, remote)| RegTarget {
                carrier: c.name.clone(),
                transport: c.transport,
                remote,
                host: c
                    .addresses
                    .first()
                    .map(|a| a.host.clone())
                    .unwrap_or_default(),
                username: c
                    .username
                    .clone()
                    .unwrap_or_else(|| "voice-connector".to_string()),
                credentials: super::pstn::Target::carrier(&c).and_then(|t| t.credentials),
            })
            .collect();
        let tick = Tick {
            targets,
            wanted: wanted_names,
            carriers: carriers.into_iter().map(|c| c.name).collect(),
        };
        if !controller.register(tick).await {
            return;
        }
    }
}
