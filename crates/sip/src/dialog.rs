//! Dialogs and the UA cores, sans-IO: RFC 3261 §12 (dialogs), §13 (INVITE, 2xx
//! retransmission and ACK), §14 (re-INVITE), §15 (BYE), §9 (CANCEL), §11 (OPTIONS);
//! RFC 3262 (100rel/PRACK), RFC 3311 (UPDATE), RFC 4028 (session timers), RFC 6026.
//!
//! [`UserAgent`] wraps a [`TransactionLayer`] and adds calls ([`CallKey`]): it answers what
//! a UA answers by itself (OPTIONS, unknown methods, BYE, PRACK, CANCEL, session-refresh
//! UPDATEs, 481/483/420/422/491) and reports the rest as [`UaEvent`]s. Same pull interface:
//! `handle_*`, then drain `poll_transmit` / `poll_event`, sleep until `poll_timeout`.
//!
//! In-dialog requests are sent to the [`Peer`] the dialog was set up over (symmetric
//! signalling, as an edge behind NAT needs); their Request-URI and Route headers follow the
//! route set and remote target (§12.2.1.1). Forked 2xx responses (several remote tags for
//! one INVITE) are not supported: the first one forms the dialog.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::headers::HeaderName;
use crate::message::{Message, Method, Request, Response};
use crate::transaction::{
    Event, Peer, Timer, TransactionConfig, TransactionKey, TransactionLayer, Transmit,
    TransportKind,
};
use crate::typed::Refresher;
use crate::uri::{Scheme, Uri};

/// A body with its Content-Type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    /// Content-Type value, e.g. `application/sdp`.
    pub content_type: String,
    /// Bytes.
    pub bytes: Vec<u8>,
}

impl Body {
    /// An SDP body.
    pub fn sdp(bytes: impl Into<Vec<u8>>) -> Body {
        Body {
            content_type: "application/sdp".into(),
            bytes: bytes.into(),
        }
    }
}

/// What [`UserAgent::invite`] sends.
#[derive(Clone, Debug)]
pub struct OutgoingCall {
    /// Request-URI.
    pub target: Uri,
    /// From value without tag (a tag is added), e.g. `<sip:+12065550100@vc.example.com>`.
    pub from: String,
    /// To value without tag.
    pub to: String,
    /// The offer, if any.
    pub body: Option<Body>,
    /// Extra headers (e.g. `Require: 100rel`, P-Asserted-Identity).
    pub headers: Vec<(HeaderName, String)>,
    /// Digest credentials to answer one 401/407 challenge with (RFC 3261 §22.2), e.g.
    /// for a carrier trunk.
    pub credentials: Option<Credentials>,
}

/// A user name and password for UAC digest authentication. Debug hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Session timer preferences (RFC 4028).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// Session-Expires we ask for / accept at most (seconds; RFC 4028 recommends 1800).
    pub session_expires: u32,
    /// Smallest interval we accept (Min-SE; at least 90, RFC 4028 §4).
    pub min_se: u32,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        SessionTimerConfig {
            session_expires: 1800,
            min_se: 90,
        }
    }
}

/// Configuration of a [`UserAgent`].
#[derive(Clone, Debug)]
pub struct UaConfig {
    /// Transaction timers and limits.
    pub transaction: TransactionConfig,
    /// User part of our Contact URI.
    pub contact_user: String,
    /// Methods we accept (sent in Allow; others get 405, RFC 3261 §8.2.1).
    pub allow: Vec<Method>,
    /// Option tags we support (Supported; a Require outside this list gets 420).
    pub supported: Vec<String>,
    /// Accept header for OPTIONS answers.
    pub accept: String,
    /// Session timers, if wanted.
    pub session_timer: Option<SessionTimerConfig>,
    /// Value of User-Agent / Server headers.
    pub user_agent: String,
    /// Hand out-of-dialog OPTIONS to the application as [`UaEvent::OutOfDialogRequest`]
    /// instead of answering 200 here (RFC 3261 §11.2: the answer should be what an INVITE
    /// to the same Request-URI would get, which only the application knows). Build the 200
    /// with [`UserAgent::options_response`].
    pub options_to_app: bool,
    /// Most concurrent calls; further INVITEs get 503 (RFC 3261 §21.5.4).
    pub max_calls: usize,
}

impl Default for UaConfig {
    fn default() -> Self {
        UaConfig {
            transaction: TransactionConfig::default(),
            contact_user: "vc".into(),
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Prack,
                Method::Update,
                Method::Info,
            ],
            supported: vec!["100rel".into(), "timer".into()],
            accept: "application/sdp".into(),
            session_timer: Some(SessionTimerConfig::default()),
            user_agent: "voice-connector".into(),
            options_to_app: false,
            max_calls: 10_000,
        }
    }
}

/// Names a call (a dialog, early or confirmed, or an INVITE not yet answered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(u64);

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerminationReason {
    /// The peer sent BYE (RFC 3261 §15.1.2).
    RemoteBye,
    /// We sent BYE.
    LocalBye,
    /// The peer cancelled before the answer (RFC 3261 §9.2).
    Cancelled,
    /// We dropped the INVITE without any answer ([`UserAgent::discard`]).
    Discarded,
    /// We rejected the INVITE with this final status.
    Rejected(u16),
    /// Our INVITE failed with this status (408 on timeout).
    Failed(u16),
    /// No ACK for our 2xx within 64*T1; BYE sent (RFC 3261 §13.3.1.4).
    AckTimeout,
    /// No PRACK for a reliable provisional within 64*T1; 500 sent (RFC 3262 §3).
    PrackTimeout,
    /// The session timer ran out; BYE sent (RFC 4028 §10).
    SessionExpired,
    /// An in-dialog request got 481 or 408 (RFC 3261 §12.2.1.2).
    DialogGone(u16),
}

/// What the UA reports to the application.
#[derive(Debug)]
pub enum UaEvent {
    /// A new INVITE. Answer with [`UserAgent::respond`] (1xx..6xx).
    IncomingCall {
        /// The call.
        call: CallKey,
        /// The INVITE.
        request: Request,
        /// Where it came from.
        peer: Peer,
    },
    /// The ACK for our 2xx (initial INVITE or re-INVITE) arrived; it may carry an answer.
    Confirmed {
        /// The call.
        call: CallKey,
        /// The ACK.
        ack: Request,
    },
    /// A re-INVITE (RFC 3261 §14.2); answer with [`UserAgent::respond`].
    Reinvite {
        /// The call.
        call: CallKey,
        /// The request.
        request: Request,
    },
    /// A PRACK for one of our reliable provisionals (already answered 200, RFC 3262 §3).
    Prack {
        /// The call.
        call: CallKey,
        /// The PRACK (may carry an SDP answer).
        request: Request,
    },
    /// Another in-dialog request (UPDATE with a body, INFO, ...); answer with
    /// [`UserAgent::respond_request`].
    Request {
        /// The call.
        call: CallKey,
        /// The server transaction to answer.
        txn: TransactionKey,
        /// The request.
        request: Request,
    },
    /// A request outside any dialog whose method is allowed but not handled by the UA
    /// (e.g. MESSAGE, REGISTER); answer with [`UserAgent::respond_request`].
    OutOfDialogRequest {
        /// The server transaction.
        txn: TransactionKey,
        /// The request.
        request: Request,
        /// Where it came from.
        peer: Peer,
    },
    /// A provisional response to our INVITE (PRACKed already when reliable).
    Provisional {
        /// The call.
        call: CallKey,
        /// The response.
        response: Response,
    },
    /// A 2xx to our INVITE; the ACK has been sent.
    Answered {
        /// The call.
        call: CallKey,
        /// The response.
        response: Response,
    },
    /// A final response to a request we sent inside the dialog (re-INVITE, UPDATE, INFO).
    InDialogResponse {
        /// The call.
        call: CallKey,
        /// The request method.
        method: Method,
        /// The response.
        response: Response,
    },
    /// The call is over; the key is no longer valid.
    Terminated {
        /// The call.
        call: CallKey,
        /// Why.
        reason: TerminationReason,
    },
}

/// Misuse by the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UaError {
    /// No such call.
    #[error("unknown call")]
    UnknownCall,
    /// Nothing to answer, or the answer does not fit the state.
    #[error("invalid state for this action")]
    InvalidState,
    /// An INVITE transaction is already in progress in this dialog (RFC 3261 §14.1).
    #[error("request pending")]
    RequestPending,
    /// From the transaction layer.
    #[error(transparent)]
    Transaction(#[from] crate::transaction::TransactionError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Uac,
    Uas,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DState {
    /// No dialog yet (INVITE sent or received, no tagged response).
    Init,
    /// Early dialog (§12.1).
    Early,
    /// Confirmed (§12.1).
    Confirmed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    InitialInvite,
    Reinvite,
    Update,
    Prack,
    Bye,
    Cancel,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UaTimer {
    /// 2xx retransmission (§13.3.1.4).
    Retransmit2xx = 0,
    /// Reliable provisional retransmission (RFC 3262 §3).
    Reliable1xx = 1,
    /// Session refresh at half the interval (RFC 4028 §10).
    Refresh = 2,
    /// Session expiry (RFC 4028 §10).
    Expire = 3,
}

struct Pending2xx {
    bytes: Vec<u8>,
    cseq: u32,
    interval: Duration,
    give_up: Instant,
}

struct Reliable1xx {
    txn: TransactionKey,
    response: Response,
    rseq: u32,
    interval: Duration,
    give_up: Instant,
}

#[derive(Clone, Copy)]
struct Session {
    interval: u32,
    we_refresh: bool,
}

struct Dialog {
    role: Role,
    state: DState,
    peer: Peer,
    call_id: String,
    local_tag: String,
    /// Our From (UAC) / To (UAS) value, with tag.
    local_party: String,
    /// Their From (UAS) / To (UAC) value, with tag once known.
    remote_party: String,
    local_seq: u32,
    remote_seq: Option<u32>,
    remote_target: Uri,
    route_set: Vec<String>,
    /// UAS: the INVITE (initial or re-INVITE) being answered, with its transaction.
    pending_invite: Option<(TransactionKey, Request)>,
    /// UAC: our INVITE (initial or re-INVITE) client transaction.
    our_invite: Option<(TransactionKey, Request)>,
    pending_2xx: Option<Pending2xx>,
    last_ack: Option<(u32, Vec<u8>)>,
    rseq_next: u32,
    reliable: Option<Reliable1xx>,
    last_rseq_seen: Option<u32>,
    session: Option<Session>,
    peer_allows_update: bool,
    local_body: Option<Body>,
    /// Reason header value for our BYE (RFC 3326), set by [`UserAgent::hangup_with_reason`].
    bye_reason: Option<String>,
    /// UAC: credentials for one challenge, taken when used.
    credentials: Option<Credentials>,
    /// UAS: the application hung up before the ACK for our 2xx arrived (§15).
    bye_after_ack: bool,
    timers: [Option<Instant>; 4],
}

/// A SIP user agent (UAC and UAS cores with dialogs). See the module documentation.
pub struct UserAgent {
    cfg: UaConfig,
    txn: TransactionLayer,
    calls: HashMap<CallKey, Dialog>,
    by_id: HashMap<(String, String), CallKey>,
    owners: HashMap<TransactionKey, (CallKey, Purpose)>,
    /// Out-of-dialog server transactions by From tag, Call-ID and CSeq (§8.2.2.2).
    merged: HashMap<String, TransactionKey>,
    merged_by_txn: HashMap<TransactionKey, String>,
    heap: BinaryHeap<Reverse<(Instant, CallKey, u8)>>,
    events: VecDeque<UaEvent>,
    next_call: u64,
}

impl fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAgent")
            .field("calls", &self.calls.len())
            .field("transactions", &self.txn)
            .finish()
    }
}

fn via_for(peer: &Peer, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {};branch={branch};rport",
        peer.transport.via_token(),
        peer.local
    )
}

impl UserAgent {
    /// A UA; `seed` must be random (branches, tags and Call-IDs derive from it).
    pub fn new(cfg: UaConfig, seed: u64) -> Self {
        UserAgent {
            txn: TransactionLayer::new(cfg.transaction, seed),
            cfg,
            calls: HashMap::new(),
            by_id: HashMap::new(),
            owners: HashMap::new(),
            merged: HashMap::new(),
            merged_by_txn: HashMap::new(),
            heap: BinaryHeap::new(),
            events: VecDeque::new(),
            next_call: 1,
        }
    }

    /// The transaction layer (for inspection).
    pub fn transactions(&self) -> &TransactionLayer {
        &self.txn
    }

    /// Number of live calls.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.txn.poll_transmit()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    /// Earliest timer (transaction or dialog). May be early, never late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.heap.peek().map(|Reverse((t, _, _))| *t);
        match (own, self.txn.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A datagram from the network (malformed requests are answered 400 by the layer).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        data: &[u8],
        peer: Peer,
    ) -> Result<(), crate::ParseError> {
        let r = self.txn.handle_datagram(now, data, peer);
        self.process(now);
        r
    }

    /// A parsed message from the network.
    pub fn handle_message(&mut self, now: Instant, msg: Message, peer: Peer) {
        self.txn.handle_message(now, msg, peer);
        self.process(now);
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txn.handle_timeout(now);
        self.process(now);
        while let Some(Reverse((at, call, kind))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let valid = self
                .calls
                .get(&call)
                .is_some_and(|d| d.timers.get(kind as usize).copied().flatten() == Some(at));
            if valid {
                if let Some(d) = self.calls.get_mut(&call) {
                    d.timers[kind as usize] = None;
                }
                self.fire(now, call, kind);
                self.process(now);
            }
        }
    }

    fn set_timer(&mut self, call: CallKey, t: UaTimer, at: Instant) {
        if let Some(d) = self.calls.get_mut(&call) {
            d.timers[t as usize] = Some(at);
            self.heap.push(Reverse((at, call, t as u8)));
        }
    }

    fn clear_timer(&mut self, call: CallKey, t: UaTimer) {
        if let Some(d) = self.calls.get_mut(&call) {
            d.timers[t as usize] = None;
        }
    }

    fn contact(&self, peer: &Peer) -> String {
        let tp = match peer.transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
            TransportKind::Tls => ";transport=tls",
            TransportKind::Sctp => ";transport=sctp",
            TransportKind::Ws | TransportKind::Wss => ";transport=ws",
        };
        format!("<sip:{}@{}{tp}>", self.cfg.contact_user, peer.local)
    }

    fn allow_value(&self) -> String {
        self.cfg
            .allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn add_capabilities(&self, h: &mut crate::Headers) {
        h.set(HeaderName::Allow, &self.allow_value());
        if !self.cfg.supported.is_empty() {
            h.set(HeaderName::Supported, &self.cfg.supported.join(", "));
        }
    }

    fn supports(&self, tag: &str) -> bool {
        self.cfg
            .supported
            .iter()
            .any(|s| s.eq_ignore_ascii_case(tag))
    }

    fn end_call(&mut self, call: CallKey, reason: TerminationReason) {
        if let Some(d) = self.calls.remove(&call) {
            self.by_id.remove(&(d.call_id, d.local_tag));
            self.owners.retain(|_, (c, _)| *c != call);
            self.events.push_back(UaEvent::Terminated { call, reason });
        }
    }

    fn reply(
        &mut self,
        now: Instant,
        txn: TransactionKey,
        req: &Request,
        status: u16,
        extra: &[(HeaderName, &str)],
    ) {
        let mut r = Response::for_request(req, status);
        if status > 100 && r.headers.to().is_some_and(|t| t.tag().is_none()) {
            let to = r.headers.get(HeaderName::To).unwrap_or("").to_owned();
            let tag = self.txn.new_token();
            r.headers
                .set(HeaderName::To, &crate::util::with_tag(&to, &tag));
        }
        for (n, v) in extra {
            r.headers.push(*n, v);
        }
        r.headers.push(HeaderName::Server, &self.cfg.user_agent);
        let _ = self.txn.send_response(now, txn, r);
    }

    // ---------------------------------------------------------------- event pump

    fn process(&mut self, now: Instant) {
        while let Some(ev) = self.txn.poll_event() {
            match ev {
                Event::Request { key, request, peer } => self.on_request(now, key, request, peer),
                Event::Cancel {
                    key,
                    request,
                    invite,
                    ..
                } => self.on_cancel(now, key, request, invite),
                Event::Ack { request, .. } => self.on_ack(now, request),
                Event::Response { key, response } => self.on_response(now, key, response),
                Event::Timeout { key, timer } => {
                    if timer != Timer::H {
                        self.on_failure(now, key, 408);
                    }
                }
                Event::TransportError { key } => self.on_failure(now, key, 503),
                Event::Terminated { key } => {
                    self.owners.remove(&key);
                    if let Some(m) = self.merged_by_txn.remove(&key) {
                        self.merged.remove(&m);
                    }
                }
            }
        }
    }

    fn find_dialog(&self, req: &Request) -> Option<CallKey> {
        let h = &req.headers;
        let local = h.to()?.tag()?.to_owned();
        let cid = h.call_id()?.to_owned();
        self.by_id.get(&(cid, local)).copied()
    }

    // ---------------------------------------------------------------- UAS side

    fn on_request(&mut self, now: Instant, key: TransactionKey, req: Request, peer: Peer) {
        // Max-Forwards (RFC 3261 §16.3 item 2, RFC 4475 §3.2.11): OPTIONS is answered by us.
        if req.method != Method::Options && req.headers.max_forwards() == Some(0) {
            return self.reply(now, key, &req, 483, &[]);
        }
        let in_dialog = req.headers.to().is_some_and(|t| t.tag().is_some());
        if in_dialog {
            return self.on_in_dialog(now, key, req);
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

    /// RFC 4028 §8: checks Session-Expires against our Min-SE; returns the negotiated
    /// session, or `Err(())` after answering 422.
    fn negotiate_session_uas(
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
            return self.reply(
                now,
                key,
                &req,
                400,
                &[(HeaderName::Warning, "399 - \"missing Contact\"")],
            );
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
        let call = CallKey(self.next_call);
        self.next_call += 1;
        let d = Dialog {
            role: Role::Uas,
            state: DState::Init,
            peer,
            call_id: call_id.to_owned(),
            local_tag: local_tag.clone(),
            local_party: crate::util::with_tag(to, &local_tag),
            remote_party: from.to_owned(),
            local_seq: 0,
            remote_seq: Some(cseq.seq),
            remote_target: contact,
            // §12.1.1: the UAS keeps Record-Route in order.
            route_set: h.list(HeaderName::RecordRoute).map(str::to_owned).collect(),
            pending_invite: Some((key, req.clone())),
            our_invite: None,
            pending_2xx: None,
            last_ack: None,
            rseq_next: 1,
            reliable: None,
            last_rseq_seen: None,
            session,
            peer_allows_update: h.allow().any(|m| m == Method::Update),
            local_body: None,
            bye_reason: None,
            credentials: None,
            bye_after_ack: false,
            timers: [None; 4],
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
            let who = if s.we_refresh { "uas" } else { "uac" };
            r.headers.push(
                HeaderName::SessionExpires,
                &format!("{};refresher={who}", s.interval),
            );
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
    /// rejection (which ends a call that has no confirmed dialog).
    pub fn respond(
        &mut self,
        now: Instant,
        call: CallKey,
        mut resp: Response,
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
                self.set_timer(call, UaTimer::Reliable1xx, now + t1);
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
        d.timers[UaTimer::Reliable1xx as usize] = None;
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
            self.set_timer(call, UaTimer::Retransmit2xx, now + t1);
            if let Some(s) = session {
                self.arm_session(now, call, s);
            }
        } else {
            self.txn.send_response(now, key, resp)?;
            if initial {
                self.end_call(call, TerminationReason::Rejected(status));
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

    fn on_cancel(
        &mut self,
        now: Instant,
        key: TransactionKey,
        req: Request,
        invite: Option<TransactionKey>,
    ) {
        let target = invite.and_then(|k| self.owners.get(&k).copied());
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
                    && self.respond(now, call, r).is_ok()
                {
                    // respond() ended the call as Rejected(487); report it as cancelled.
                    if let Some(UaEvent::Terminated { reason, .. }) = self.events.back_mut() {
                        *reason = TerminationReason::Cancelled;
                    }
                }
            }
            Some(_) => self.reply(now, key, &req, 200, &[]),
            None => self.reply(now, key, &req, 481, &[]),
        }
    }

    fn on_ack(&mut self, now: Instant, ack: Request) {
        let Some(call) = self.find_dialog(&ack) else {
            return;
        };
        let seq = ack.headers.cseq().map(|c| c.seq);
        let Some(d) = self.calls.get_mut(&call) else {
            return;
        };
        if d.pending_2xx.as_ref().is_some_and(|p| Some(p.cseq) == seq) {
            d.pending_2xx = None;
            d.timers[UaTimer::Retransmit2xx as usize] = None;
            let bye = d.bye_after_ack;
            self.events.push_back(UaEvent::Confirmed { call, ack });
            if bye {
                let _ = self.send_bye(now, call);
                self.end_call(call, TerminationReason::LocalBye);
            }
        }
    }

    fn on_in_dialog(&mut self, now: Instant, key: TransactionKey, req: Request) {
        let Some(call) = self.find_dialog(&req) else {
            return self.reply(now, key, &req, 481, &[]);
        };
        let cseq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let Some(d) = self.calls.get_mut(&call) else {
            return;
        };
        // §12.2.2: CSeq must increase.
        if d.remote_seq.is_some_and(|r| cseq <= r) {
            return self.reply(
                now,
                key,
                &req,
                500,
                &[(HeaderName::Warning, "399 - \"CSeq out of order\"")],
            );
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
                        d.timers[UaTimer::Reliable1xx as usize] = None;
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
                    se = format!(
                        "{};refresher={}",
                        s.interval,
                        if s.we_refresh { "uas" } else { "uac" }
                    );
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

    // ---------------------------------------------------------------- session timers

    /// RFC 4028 §10: the refresher refreshes at half the interval; the other side ends the
    /// session if no refresh arrives before `interval - min(32, interval/3)` seconds.
    fn arm_session(&mut self, now: Instant, call: CallKey, s: Session) {
        let secs = u64::from(s.interval);
        if s.we_refresh {
            self.set_timer(call, UaTimer::Refresh, now + Duration::from_secs(secs / 2));
        } else {
            self.clear_timer(call, UaTimer::Refresh);
        }
        let guard = (secs / 3).min(32);
        self.set_timer(
            call,
            UaTimer::Expire,
            now + Duration::from_secs(secs - guard),
        );
    }

    fn fire(&mut self, now: Instant, call: CallKey, kind: u8) {
        let t2 = self.cfg.transaction.t2;
        match kind {
            k if k == UaTimer::Retransmit2xx as u8 => {
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
                self.set_timer(call, UaTimer::Retransmit2xx, next);
            }
            k if k == UaTimer::Reliable1xx as u8 => {
                let Some(d) = self.calls.get_mut(&call) else {
                    return;
                };
                let Some(r) = d.reliable.as_mut() else { return };
                if now >= r.give_up {
                    d.reliable = None;
                    if let Ok(resp) = self.make_response(call, 500) {
                        let _ = self.respond(now, call, resp);
                    }
                    if let Some(UaEvent::Terminated { reason, .. }) = self.events.back_mut() {
                        *reason = TerminationReason::PrackTimeout;
                    }
                    return;
                }
                let (txn, resp) = (r.txn, r.response.clone());
                r.interval *= 2;
                let next = (now + r.interval).min(r.give_up);
                let _ = self.txn.send_response(now, txn, resp);
                self.set_timer(call, UaTimer::Reliable1xx, next);
            }
            k if k == UaTimer::Refresh as u8 => {
                let _ = self.refresh_session(now, call);
            }
            k if k == UaTimer::Expire as u8 => {
                let _ = self.send_bye(now, call);
                self.end_call(call, TerminationReason::SessionExpired);
            }
            _ => {}
        }
    }

    fn refresh_session(&mut self, now: Instant, call: CallKey) -> Result<(), UaError> {
        let d = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if d.peer_allows_update {
            self.send_in_dialog(now, call, Method::Update, None)
        } else {
            let body = d.local_body.clone();
            self.send_in_dialog(now, call, Method::Invite, body)
        }
    }

    // ---------------------------------------------------------------- UAC side

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
        let local_party = format!("{from};tag={local_tag}");
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
            r.headers.push(*n, v);
        }
        if let Some(b) = &body {
            r.headers.set(HeaderName::ContentType, &b.content_type);
            r.body = b.bytes.clone();
        }
        let key = self.txn.send_request(now, r.clone(), peer)?;
        let call = CallKey(self.next_call);
        self.next_call += 1;
        self.calls.insert(
            call,
            Dialog {
                role: Role::Uac,
                state: DState::Init,
                peer,
                call_id: call_id.clone(),
                local_tag: local_tag.clone(),
                local_party,
                remote_party: to.to_owned(),
                local_seq: 1,
                remote_seq: None,
                remote_target: target,
                route_set: Vec::new(),
                pending_invite: None,
                our_invite: Some((key, r)),
                pending_2xx: None,
                last_ack: None,
                rseq_next: 1,
                reliable: None,
                last_rseq_seen: None,
                session: None,
                peer_allows_update: false,
                local_body: body,
                bye_reason: None,
                credentials,
                bye_after_ack: false,
                timers: [None; 4],
            },
        );
        self.by_id.insert((call_id, local_tag), call);
        self.owners.insert(key, (call, Purpose::InitialInvite));
        Ok(call)
    }

    /// RFC 3261 §22.2: answers a 401/407 to our initial INVITE once, with the same Call-ID,
    /// From tag and the next CSeq. Prefers a SHA-256 challenge (RFC 8760 §2.4).
    fn retry_with_credentials(&mut self, now: Instant, call: CallKey, resp: &Response) -> bool {
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
            .or(challenges.first())
            .map(|c| c.to_string());
        let cnonce = self.txn.new_token();
        let branch = self.txn.new_branch();
        let Some(d) = self.calls.get_mut(&call) else {
            return false;
        };
        let (Some(challenge), Some((_, old))) = (challenge, d.our_invite.as_ref()) else {
            return false;
        };
        let Some(creds) = d.credentials.take() else {
            return false;
        };
        let mut req = old.clone();
        let uri = req.uri.to_string();
        let Ok(answer) = crate::auth::respond_to_challenge(
            &challenge,
            "INVITE",
            &uri,
            &creds.username,
            &creds.password,
            &cnonce,
            1,
        ) else {
            return false;
        };
        d.local_seq += 1;
        let seq = d.local_seq;
        req.headers
            .replace_first(HeaderName::Via, &via_for(&d.peer, &branch));
        req.headers.set(HeaderName::CSeq, &format!("{seq} INVITE"));
        req.headers.remove(answer_name);
        req.headers.push(answer_name, &answer);
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
    /// first route for strict routers), Route from the route set, From/To with tags,
    /// Call-ID, the next local CSeq (or `cseq` for ACK), a new Via branch, Contact for
    /// target-refresh requests.
    fn build_in_dialog(
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
                rs.push(format!("<{}>", d.remote_target));
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
                let who = if s.we_refresh { "uac" } else { "uas" };
                r.headers.push(
                    HeaderName::SessionExpires,
                    &format!("{};refresher={who}", s.interval),
                );
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

    /// Ends a call: BYE in a confirmed dialog (§15.1.1; as UAS only once the ACK for our 2xx
    /// arrived, §15), CANCEL for our unanswered INVITE, 480 for an INVITE we have not
    /// answered. Reports [`TerminationReason::LocalBye`]
    /// except for the CANCEL case, which ends when the 487 arrives.
    /// [`UserAgent::hangup`] with a Reason header on the BYE (RFC 3326), e.g.
    /// `SIP;cause=200;text="Call completed elsewhere"`.
    pub fn hangup_with_reason(
        &mut self,
        now: Instant,
        call: CallKey,
        reason: &str,
    ) -> Result<(), UaError> {
        let d = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        d.bye_reason = Some(reason.to_string());
        self.hangup(now, call)
    }

    /// Ends a call without a Reason header; see [`UserAgent::hangup_with_reason`].
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

    fn send_bye(&mut self, now: Instant, call: CallKey) -> Result<(), UaError> {
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

    fn on_failure(&mut self, now: Instant, key: TransactionKey, status: u16) {
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

    fn on_response(&mut self, now: Instant, key: TransactionKey, resp: Response) {
        let Some(&(call, purpose)) = self.owners.get(&key) else {
            return;
        };
        let status = resp.status;
        match purpose {
            Purpose::InitialInvite => self.on_invite_response(now, call, resp, true),
            Purpose::Reinvite => self.on_invite_response(now, call, resp, false),
            Purpose::Bye | Purpose::Prack | Purpose::Cancel => {}
            Purpose::Update | Purpose::Other => {
                if status >= 200 {
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
        }
    }

    /// RFC 4028 §7.2: the session the 2xx sets (for requests we sent).
    fn session_from_response(&mut self, call: CallKey, resp: &Response) -> Option<Session> {
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

    fn on_invite_response(&mut self, now: Instant, call: CallKey, resp: Response, initial: bool) {
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
