//! The transaction layer, sans-IO: RFC 3261 §17 with the RFC 6026 corrections.
//!
//! Feed it parsed messages with [`TransactionLayer::handle_message`] (or raw datagrams with
//! [`TransactionLayer::handle_datagram`]), requests and responses from the transaction user
//! (TU) with [`TransactionLayer::send_request`] / [`TransactionLayer::send_response`], and
//! the clock with [`TransactionLayer::handle_timeout`]. After each call drain
//! [`TransactionLayer::poll_transmit`] and [`TransactionLayer::poll_event`], then sleep until
//! [`TransactionLayer::poll_timeout`].
//!
//! Timers (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2, Table 4; RFC 6026 §8.4, §8.11):
//! see [`Timer`]. Reliable transports (TCP, TLS, SCTP, WS) skip the retransmission timers
//! and the wait timers are zero (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
//!
//! The code: `types.rs` (transports, peers, timers, states, events, errors, the
//! configuration), `limits.rs` (budgets, the reflection guard, the token bucket),
//! `server.rs` and `client.rs` (the two sides' state machines); this file holds the table,
//! the timers and the pull interface.
//!
//! # Budgets
//!
//! Server transactions are what a peer can create without any authentication, so each
//! source has a budget counted in transactions and in bytes
//! ([`TransactionConfig::max_transactions_per_source`],
//! [`TransactionConfig::max_transaction_bytes_per_source`]), well below the global caps
//! ([`TransactionConfig::max_transactions`], [`TransactionConfig::max_transaction_bytes`]).
//! A source is an IPv4 address or an IPv6 /64 ([`source_key`]): one host holds a whole /64.
//! Bytes are an estimate of what a transaction keeps ([`TransactionLayer::retained_bytes`]):
//! [`TXN_OVERHEAD`] for the entry, its indexes and timers, the matching key, the request
//! while it is unanswered, and the last response while retransmission may need it. After
//! the final response a server transaction keeps only that: the request (body included) is
//! dropped, and an INVITE in Accepted or Confirmed keeps no response either (the TU
//! retransmits its 2xx, §13.3.1.4; Confirmed only absorbs ACKs). A request over its
//! source's budget gets 503 with `Retry-After: 5` and [`SOURCE_LIMIT_WARNING`]; one over the
//! global caps gets 503 with `Retry-After: 10` and [`GLOBAL_LIMIT_WARNING`]. Neither keeps a
//! transaction.
//!
//! # Reflection guard
//!
//! UDP sources can be spoofed, so every answer to one can be aimed at a victim. With
//! [`TransactionConfig::reflection_guard`] (off by default; the server turns it on) the
//! layer sends to an *unverified* UDP source no more bytes than it received for the same
//! exchange, so the reflection ratio toward anyone is at most 1:
//!
//! * A source is verified once it shows it receives what we send: an ACK for our non-2xx
//!   final response carrying that response's To tag, a response to one of our client
//!   transactions (our branch), or the ACK for our 2xx, which the UA reports with
//!   [`TransactionLayer::verify_source`]. Reliable transports need no proof (the connection
//!   handshake is one). Verification lasts [`VERIFIED_TTL`] after the last proof.
//! * Toward an unverified UDP source a server transaction holds a credit: the bytes of the
//!   request and its retransmissions, less what was sent. A response that does not fit the
//!   credit is held and sent when a retransmission of the request brings enough; a non-2xx
//!   final response to an INVITE is not retransmitted by Timer G. RFC 3261 §17.2.1 asks
//!   for Timer G over unreliable transports, but the INVITE client's own Timer A
//!   retransmissions (§17.1.1.2) reach this transaction, which answers each with its
//!   final response, so a real caller still gets it; what a spoofed source cannot do is
//!   make us send 11 copies of a response nobody asked for (Timer H still bounds the
//!   transaction). Verified sources get the RFC behaviour.
//! * No automatic 100 Trying goes to an unverified UDP source: it would stop the caller's
//!   INVITE retransmissions (§17.1.1.2: Proceeding), which carry the response to it.
//! * INVITE responses from 101 to 299 are not held: the TU sends them only for a request it
//!   has admitted (a 2xx also needs its SDP on time). Once a provisional has gone out the
//!   caller no longer retransmits, so the final response is sent at once and Timer G runs.
//! * Stateless answers (400 to a malformed datagram, the 503s above) go to an unverified
//!   source only when no larger than the datagram they answer.
//! * A token bucket per source ([`TransactionConfig::response_rate_per_source`],
//!   [`TransactionConfig::response_burst_per_source`], bytes) limits every answer to an
//!   unverified source and, for every source, what the layer sends on its own: Timer G
//!   retransmissions, answers to retransmitted requests and stateless answers. What is
//!   over the rate is not sent (the peer's retransmission asks again).

mod client;
mod limits;
mod server;
mod types;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::error::{ParseError, bad_request_response};
use crate::ids::IdGenerator;
use crate::message::{Message, Request, Response};
use crate::parse::parse_datagram;

use limits::{Bucket, Usage, request_size};
pub use limits::{
    GLOBAL_LIMIT_WARNING, SOURCE_LIMIT_WARNING, TXN_OVERHEAD, VERIFIED_TTL, source_key,
};
pub use server::stamp_via;
pub use types::{
    Event, Peer, State, Timer, TransactionConfig, TransactionError, TransactionKey,
    TransactionKind, Transmit, TransportKind,
};

struct Txn {
    kind: TransactionKind,
    state: State,
    peer: Peer,
    match_key: String,
    /// The request; a server transaction drops it with its final response.
    request: Option<Request>,
    /// Printed size of the request (what it is charged while kept).
    request_len: usize,
    /// Client: the printed request (retransmissions).
    request_bytes: Vec<u8>,
    /// Server: the last response sent (kept while retransmission may need it). Client
    /// INVITE: the ACK for a non-2xx.
    last_bytes: Option<Vec<u8>>,
    interval: Duration,
    timers: [Option<(Timer, Instant)>; 4],
    /// Server: the source's budget key ([`source_key`]).
    source: Option<IpAddr>,
    /// Client INVITE: CANCEL requested before any provisional response (§9.1).
    cancel_pending: bool,
    /// Bytes charged to the budgets.
    charged: usize,
    /// Reflection guard, server over UDP: bytes received for this transaction less bytes
    /// sent to an unverified source.
    credit: usize,
    /// The To tag of our non-2xx final response (an ACK that carries it verifies the source).
    local_tag: Option<Box<str>>,
    /// Server INVITE: a provisional response went out (the caller stopped retransmitting).
    provisional_sent: bool,
}

impl Txn {
    fn reliable(&self) -> bool {
        self.peer.transport.is_reliable()
    }
}

/// The transaction layer. See the module documentation.
pub struct TransactionLayer {
    cfg: TransactionConfig,
    txns: HashMap<TransactionKey, Txn>,
    server_index: HashMap<String, TransactionKey>,
    client_index: HashMap<String, TransactionKey>,
    per_source: HashMap<IpAddr, Usage>,
    /// Bytes charged by every live transaction.
    total_bytes: usize,
    /// Reflection guard: sources that showed they receive what we send, by address, with
    /// the time of the last proof.
    verified: HashMap<IpAddr, Instant>,
    /// Reflection guard: response token buckets by [`source_key`].
    buckets: HashMap<IpAddr, Bucket>,
    /// Prune full buckets when the map reaches this size.
    buckets_prune_at: usize,
    heap: BinaryHeap<Reverse<(Instant, TransactionKey, usize)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_key: u64,
    ids: IdGenerator,
}

impl fmt::Debug for TransactionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionLayer")
            .field("transactions", &self.txns.len())
            .field("retained_bytes", &self.total_bytes)
            .field("pending_transmits", &self.transmits.len())
            .field("pending_events", &self.events.len())
            .finish()
    }
}

impl TransactionLayer {
    /// A layer whose branches come from [`IdGenerator::seeded`]`(seed)`: reproducible,
    /// for tests. A server uses [`TransactionLayer::with_ids`] with
    /// [`IdGenerator::from_os`].
    pub fn new(cfg: TransactionConfig, seed: u64) -> Self {
        Self::with_ids(cfg, IdGenerator::seeded(seed))
    }

    /// A layer drawing branches, tags and Call-IDs from `ids`.
    pub fn with_ids(cfg: TransactionConfig, ids: IdGenerator) -> Self {
        TransactionLayer {
            cfg,
            txns: HashMap::new(),
            server_index: HashMap::new(),
            client_index: HashMap::new(),
            per_source: HashMap::new(),
            total_bytes: 0,
            verified: HashMap::new(),
            buckets: HashMap::new(),
            buckets_prune_at: 1024,
            heap: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_key: 1,
            ids,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TransactionConfig {
        &self.cfg
    }

    /// A fresh `z9hG4bK...` branch (RFC 3261 §8.1.1.7).
    pub fn new_branch(&mut self) -> String {
        self.ids.branch()
    }

    /// A fresh tag, Call-ID local part or cnonce (128 random bits, [`IdGenerator`]).
    pub fn new_token(&mut self) -> String {
        self.ids.token()
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// Whether there are no live transactions.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// State of a transaction.
    pub fn state(&self, key: TransactionKey) -> Option<State> {
        self.txns.get(&key).map(|t| t.state)
    }

    /// Kind of a transaction.
    pub fn kind(&self, key: TransactionKey) -> Option<TransactionKind> {
        self.txns.get(&key).map(|t| t.kind)
    }

    /// The request that created a transaction; `None` for a server transaction after its
    /// final response (it keeps only what retransmission needs).
    pub fn request(&self, key: TransactionKey) -> Option<&Request> {
        self.txns.get(&key).and_then(|t| t.request.as_ref())
    }

    /// The peer of a transaction.
    pub fn peer(&self, key: TransactionKey) -> Option<Peer> {
        self.txns.get(&key).map(|t| t.peer)
    }

    /// Next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next be called. May be early (stale timers); never late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Sends a message outside any transaction: the ACK for a 2xx (RFC 3261 §13.2.2.4), 2xx
    /// retransmissions by a UAS core are sent with `send_response` instead.
    pub fn send_stateless(&mut self, peer: Peer, msg: &Message) {
        self.transmits.push_back(Transmit {
            peer,
            payload: msg.to_bytes(),
        });
    }

    /// Queues already printed bytes (a UAS core's 2xx retransmission, §13.3.1.4).
    pub fn send_bytes(&mut self, peer: Peer, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { peer, payload });
    }

    /// Parses a datagram and handles it. A malformed request is answered here (400/505/513
    /// with a Warning, built by [`bad_request_response`]); the error is returned for logs.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        data: &[u8],
        peer: Peer,
    ) -> Result<(), ParseError> {
        match parse_datagram(data, &self.cfg.parse_limits) {
            Ok(Message::Request(r)) => {
                self.on_request(now, r, peer, data.len());
                Ok(())
            }
            Ok(Message::Response(r)) => {
                self.on_response(now, r);
                Ok(())
            }
            Err(e) => {
                if let Some(payload) = bad_request_response(data, &e, self.cfg.warning_agent) {
                    self.send_stateless_answer(now, peer, payload, data.len());
                }
                Err(e)
            }
        }
    }

    /// Handles a parsed message from the transport (a request's size, for the budgets and
    /// the reflection guard, is estimated from its parsed form).
    pub fn handle_message(&mut self, now: Instant, msg: Message, peer: Peer) {
        match msg {
            Message::Request(r) => {
                let len = request_size(&r);
                self.on_request(now, r, peer, len)
            }
            Message::Response(r) => self.on_response(now, r),
        }
    }

    fn alloc_key(&mut self) -> TransactionKey {
        let k = TransactionKey(self.next_key);
        self.next_key += 1;
        k
    }

    fn set_timer(&mut self, key: TransactionKey, timer: Timer, at: Instant) {
        if let Some(t) = self.txns.get_mut(&key) {
            t.timers[timer.slot()] = Some((timer, at));
            self.heap.push(Reverse((at, key, timer.slot())));
        }
    }

    /// Forgets a server transaction without sending anything: no 100 Trying, no final
    /// response. For an operator who wants requests from unwanted sources to meet silence
    /// rather than a rejection (a retransmission then starts a new transaction).
    /// Returns false for an unknown key or a client transaction.
    pub fn abandon(&mut self, key: TransactionKey) -> bool {
        let server = self.txns.get(&key).is_some_and(|t| {
            matches!(
                t.kind,
                TransactionKind::ServerInvite | TransactionKind::ServerNonInvite
            )
        });
        if server {
            self.terminate(key);
        }
        server
    }

    fn terminate(&mut self, key: TransactionKey) {
        if let Some(t) = self.txns.remove(&key) {
            match t.kind {
                TransactionKind::ServerInvite | TransactionKind::ServerNonInvite => {
                    self.server_index.remove(&t.match_key);
                }
                _ => {
                    self.client_index.remove(&t.match_key);
                }
            }
            self.total_bytes -= t.charged;
            if let Some(ip) = t.source
                && let Some(u) = self.per_source.get_mut(&ip)
            {
                u.count -= 1;
                u.bytes -= t.charged;
                if u.count == 0 {
                    self.per_source.remove(&ip);
                }
            }
            self.events.push_back(Event::Terminated { key });
        }
    }

    /// Marks a transport failure for every transaction using `peer` (e.g. a closed TCP
    /// connection): they end with [`Event::TransportError`] (RFC 3261 §17.1.4, §17.2.4).
    pub fn handle_transport_error(&mut self, peer: Peer) {
        let keys: Vec<_> = self
            .txns
            .iter()
            .filter(|(_, t)| t.peer == peer)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.events.push_back(Event::TransportError { key });
            self.terminate(key);
        }
    }

    /// Fires every timer due at `now`. Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, key, slot))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(t) = self.txns.get_mut(&key) else {
                continue;
            };
            match t.timers[slot] {
                Some((timer, when)) if when == at => {
                    t.timers[slot] = None;
                    self.fire(now, key, timer);
                }
                _ => {}
            }
        }
    }

    fn fire(&mut self, now: Instant, key: TransactionKey, timer: Timer) {
        let cfg = self.cfg;
        let Some(t) = self.txns.get_mut(&key) else {
            return;
        };
        match timer {
            Timer::A if t.state == State::Calling => {
                self.transmits.push_back(Transmit {
                    peer: t.peer,
                    payload: t.request_bytes.clone(),
                });
                t.interval *= 2;
                let next = now + t.interval;
                self.set_timer(key, Timer::A, next);
            }
            Timer::E if matches!(t.state, State::Trying | State::Proceeding) => {
                self.transmits.push_back(Transmit {
                    peer: t.peer,
                    payload: t.request_bytes.clone(),
                });
                t.interval = if t.state == State::Trying {
                    (t.interval * 2).min(cfg.t2)
                } else {
                    cfg.t2
                };
                let next = now + t.interval;
                self.set_timer(key, Timer::E, next);
            }
            Timer::G if t.state == State::Completed => {
                t.interval = (t.interval * 2).min(cfg.t2);
                let next = now + t.interval;
                let _ = self.emit_last(now, key, true);
                self.set_timer(key, Timer::G, next);
            }
            Timer::B | Timer::F | Timer::H => {
                self.events.push_back(Event::Timeout { key, timer });
                self.terminate(key);
            }
            Timer::D | Timer::I | Timer::J | Timer::K | Timer::L | Timer::M => self.terminate(key),
            Timer::Trying if t.state == State::Proceeding && t.last_bytes.is_none() => {
                let Some(req) = &t.request else {
                    return;
                };
                let bytes = Response::for_request(req, 100).to_bytes();
                let peer = t.peer;
                // Reflection guard: none toward an unverified UDP source, whose INVITE
                // retransmissions (Timer A) then keep asking for the final response.
                if cfg.reflection_guard
                    && !peer.transport.is_reliable()
                    && !self.is_verified(now, peer.remote.ip())
                {
                    return;
                }
                if let Some(t) = self.txns.get_mut(&key) {
                    t.last_bytes = Some(bytes.clone());
                    t.provisional_sent = true;
                }
                self.recharge(key);
                self.transmits.push_back(Transmit {
                    peer,
                    payload: bytes,
                });
            }
            _ => {}
        }
    }
}
