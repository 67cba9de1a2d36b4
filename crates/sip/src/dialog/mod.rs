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
//!
//! The code is split by role, each file an `impl UserAgent` block:
//!
//! * `config.rs`: what the application gives: [`UaConfig`], [`OutgoingCall`], [`Body`];
//! * this file: the public types, the dialog state and the event pump (`handle_*`,
//!   `poll_*`, dispatch of transaction events);
//! * `uas.rs`: requests outside a dialog, incoming INVITE, answering (1xx reliable, 2xx
//!   retransmitted until the ACK), CANCEL, ACK (RFC 3261 §13.3, §9.2; RFC 3262 §3);
//! * `uac.rs`: outgoing INVITE, provisionals and PRACK, the ACK for 2xx, one digest retry,
//!   CANCEL (RFC 3261 §13.2, §22.2, §9.1; RFC 3262 §4);
//! * `in_dialog.rs`: requests inside a dialog both ways: re-INVITE, UPDATE, BYE, INFO,
//!   and their responses (RFC 3261 §12.2, §14, §15; RFC 3311);
//! * `session_timer.rs`: RFC 4028 negotiation, refresh and expiry;
//! * `source.rs`: which addresses a dialog accepts requests from;
//! * `timer.rs`: the dialog timers (`DialogTimer`) and `handle_timeout`.

mod config;
mod in_dialog;
mod session_timer;
mod source;
mod standalone;
mod timer;
mod uac;
mod uas;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::headers::HeaderName;
use crate::ids::IdGenerator;
use crate::message::{Message, Method, Request, Response};
use crate::transaction::{
    Event, Peer, Timer, TransactionKey, TransactionLayer, Transmit, TransportKind,
};
use crate::uri::Uri;
use crate::write::HeaderValue;

pub use config::{Body, Credentials, OutgoingCall, SessionTimerConfig, UaConfig};
use session_timer::Session;
pub use source::FOREIGN_SOURCE_WARNING;
pub use standalone::OutOfDialog;
use timer::{DialogTimer, DialogTimers};

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
    /// A request for `call` (in-dialog, a CANCEL, or an ACK) came from an address that is
    /// not the dialog's peer, its remote target or a hop of its route set: answered 403 with
    /// a Warning (an ACK is dropped) and otherwise ignored. For logs and counters.
    ForeignSource {
        /// The call.
        call: CallKey,
        /// The request's method.
        method: Method,
        /// Where it came from.
        source: std::net::SocketAddr,
    },
    /// The outcome of a request we sent outside any dialog
    /// ([`UserAgent::send_out_of_dialog`]): its final status, with the response unless
    /// the status is our own (408 timeout, 503 transport error).
    OutOfDialogResponse {
        /// The client transaction.
        txn: TransactionKey,
        /// The final status.
        status: u16,
        /// The response, when one arrived.
        response: Option<Response>,
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

/// Which side of the initial INVITE we are (RFC 3261 §12.1.1, §12.1.2).
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

/// What a transaction we own is for.
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

/// UAS: our 2xx to an INVITE, retransmitted until the ACK (§13.3.1.4).
struct Pending2xx {
    bytes: Vec<u8>,
    cseq: u32,
    interval: Duration,
    give_up: Instant,
}

/// UAS: our reliable provisional, retransmitted until the PRACK (RFC 3262 §3).
struct Reliable1xx {
    txn: TransactionKey,
    response: Response,
    rseq: u32,
    interval: Duration,
    give_up: Instant,
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
    /// Reason header value for our BYE (RFC 3326), set by [`UserAgent::hangup_with`].
    bye_reason: Option<String>,
    /// UAC: credentials for one challenge, taken when used.
    credentials: Option<Credentials>,
    /// UAS: the application hung up before the ACK for our 2xx arrived (§15).
    bye_after_ack: bool,
    timers: DialogTimers,
}

impl Dialog {
    /// A dialog in state `Init` with the identifiers every call has; the UAS and UAC cores
    /// fill in the rest.
    fn new(
        role: Role,
        peer: Peer,
        call_id: String,
        local_tag: String,
        local_party: String,
        remote_party: String,
        remote_target: Uri,
    ) -> Dialog {
        Dialog {
            role,
            state: DState::Init,
            peer,
            call_id,
            local_tag,
            local_party,
            remote_party,
            local_seq: 0,
            remote_seq: None,
            remote_target,
            route_set: Vec::new(),
            pending_invite: None,
            our_invite: None,
            pending_2xx: None,
            last_ack: None,
            rseq_next: 1,
            reliable: None,
            last_rseq_seen: None,
            session: None,
            peer_allows_update: false,
            local_body: None,
            bye_reason: None,
            credentials: None,
            bye_after_ack: false,
            timers: DialogTimers::default(),
        }
    }
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
    /// Our requests outside any dialog awaiting their final response.
    standalone: HashMap<TransactionKey, standalone::Standalone>,
    /// Every armed dialog timer; an entry whose call no longer holds that instant in its
    /// [`DialogTimers`] is stale and skipped.
    heap: BinaryHeap<Reverse<(Instant, CallKey, DialogTimer)>>,
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

/// A Via value for a request we send (RFC 3261 §8.1.1.7), asking for rport (RFC 3581).
fn via_for(peer: &Peer, branch: &str) -> String {
    let sent = format_args!("SIP/2.0/{} {}", peer.transport.via_token(), peer.local);
    HeaderValue::new(sent)
        .param("branch", Some(branch))
        .param("rport", None)
        .into_string()
}

impl UserAgent {
    /// A UA whose branches, tags and Call-IDs follow from `seed` ([`IdGenerator::seeded`]):
    /// reproducible, for tests. A server uses [`UserAgent::with_ids`] with
    /// [`IdGenerator::from_os`].
    pub fn new(cfg: UaConfig, seed: u64) -> Self {
        Self::with_ids(cfg, IdGenerator::seeded(seed))
    }

    /// A UA drawing branches, tags and Call-IDs from `ids`.
    pub fn with_ids(cfg: UaConfig, ids: IdGenerator) -> Self {
        UserAgent {
            txn: TransactionLayer::with_ids(cfg.transaction, ids),
            cfg,
            calls: HashMap::new(),
            by_id: HashMap::new(),
            owners: HashMap::new(),
            merged: HashMap::new(),
            merged_by_txn: HashMap::new(),
            standalone: HashMap::new(),
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

    /// A new call key.
    fn next_key(&mut self) -> CallKey {
        let call = CallKey(self.next_call);
        self.next_call += 1;
        call
    }

    /// Our Contact (RFC 3261 §8.1.1.8): `<sip:user@local;transport=...>` for the transport
    /// the dialog runs over.
    fn contact(&self, peer: &Peer) -> String {
        let tp = match peer.transport {
            TransportKind::Udp => None,
            TransportKind::Tcp => Some("tcp"),
            TransportKind::Tls => Some("tls"),
            TransportKind::Sctp => Some("sctp"),
            TransportKind::Ws | TransportKind::Wss => Some("ws"),
        };
        let mut uri = HeaderValue::sip_uri(Some(&self.cfg.contact_user), peer.local);
        if let Some(tp) = tp {
            uri = uri.param("transport", Some(tp));
        }
        HeaderValue::name_addr(None, uri).into_string()
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

    /// Forgets the call and reports [`UaEvent::Terminated`] once, with the reason decided
    /// by the caller.
    fn end_call(&mut self, call: CallKey, reason: TerminationReason) {
        if let Some(d) = self.calls.remove(&call) {
            self.by_id.remove(&(d.call_id, d.local_tag));
            self.owners.retain(|_, (c, _)| *c != call);
            self.events.push_back(UaEvent::Terminated { call, reason });
        }
    }

    /// A Warning header value (`399 <agent> "<text>"`, RFC 3261 §20.43) with our agent.
    fn warning(&self, text: &str) -> String {
        crate::write::Warning::misc(self.cfg.transaction.warning_agent, text).to_string()
    }

    /// Answers a request the UA handles by itself, adding a To tag (§8.2.6.2) and Server.
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
                    peer,
                } => self.on_cancel(now, key, request, peer, invite),
                Event::Ack { request, peer, .. } => self.on_ack(now, request, peer),
                Event::Response { key, response } => {
                    if self.standalone.contains_key(&key) {
                        self.on_standalone_response(now, &key, response);
                    } else {
                        self.on_response(now, key, response)
                    }
                }
                Event::Timeout { key, timer } => {
                    if timer != Timer::H && !self.on_standalone_failure(&key, 408) {
                        self.on_failure(now, key, 408);
                    }
                }
                Event::TransportError { key } => {
                    if !self.on_standalone_failure(&key, 503) {
                        self.on_failure(now, key, 503)
                    }
                }
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

    /// A response to a transaction we own: the INVITE ones go to the UAC core (`uac.rs`),
    /// the rest to the in-dialog code (`in_dialog.rs`).
    fn on_response(&mut self, now: Instant, key: TransactionKey, resp: Response) {
        let Some(&(call, purpose)) = self.owners.get(&key) else {
            return;
        };
        match purpose {
            Purpose::InitialInvite => self.on_invite_response(now, call, resp, true),
            Purpose::Reinvite => self.on_invite_response(now, call, resp, false),
            Purpose::Bye | Purpose::Prack | Purpose::Cancel => {}
            Purpose::Update | Purpose::Other => {
                self.on_non_invite_response(now, call, purpose, resp)
            }
        }
    }
}
