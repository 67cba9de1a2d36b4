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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::error::{ParseError, bad_request_response};
use crate::headers::HeaderName;
use crate::message::{Message, Method, Request, Response};
use crate::parse::{ParseLimits, parse_datagram};
use crate::typed::MAGIC_COOKIE;

/// A transport protocol (RFC 3261 §18; RFC 7118 for WebSocket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP: unreliable, retransmission timers run.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket.
    Wss,
}

impl TransportKind {
    /// Whether the transport delivers reliably (no retransmissions, RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// The Via transport token (RFC 3261 §20.42).
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
            TransportKind::Sctp => "SCTP",
            TransportKind::Ws => "WS",
            TransportKind::Wss => "WSS",
        }
    }
}

/// Where a message came from or goes to: the transport and both addresses. For connection
/// transports the pair of addresses names the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport.
    pub transport: TransportKind,
    /// Our address.
    pub local: SocketAddr,
    /// The other side.
    pub remote: SocketAddr,
}

/// Bytes to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send them.
    pub peer: Peer,
    /// The printed message.
    pub payload: Vec<u8>,
}

impl fmt::Debug for Transmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.payload.split(|&b| b == b'\r').next().unwrap_or(&[]);
        f.debug_struct("Transmit")
            .field("peer", &self.peer)
            .field("start_line", &String::from_utf8_lossy(first))
            .field("len", &self.payload.len())
            .finish()
    }
}

/// Timer values and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionConfig {
    /// T1, the RTT estimate (RFC 3261 §17.1.1.1; default 500 ms).
    pub t1: Duration,
    /// T2, the cap on non-INVITE and response retransmit intervals (default 4 s).
    pub t2: Duration,
    /// T4, how long the network may hold a message (default 5 s).
    pub t4: Duration,
    /// Delay before an INVITE server transaction sends 100 Trying itself (RFC 3261
    /// §17.2.1: 200 ms).
    pub trying_delay: Duration,
    /// Most live server transactions per source ([`source_key`]: an IPv4 address or an IPv6
    /// /64); beyond that, new requests get 503 with [`SOURCE_LIMIT_WARNING`] (RFC 3261
    /// §21.5.4) and no transaction. Transactions live on after their final response (Timer
    /// J/L: 64*T1 = 32 s on UDP), so a trunk doing C calls/s holds about 64*C of them
    /// (INVITE + BYE, 32 s each): the default 16,384 fits 256 calls/s from one source (the
    /// signalling benchmark's 1,600 calls/s over 8 sources needs about 10,400 each), about a
    /// sixth of the global count. Call-rate policy (CPS) belongs above this layer.
    pub max_transactions_per_source: usize,
    /// Most bytes the live server transactions of one source keep
    /// ([`TransactionLayer::retained_bytes`]); default 16 MiB, 1 KiB for each transaction of
    /// the count budget (a completed BYE keeps about 0.9 KiB, an accepted INVITE 0.6 KiB).
    /// Bounds what large requests can pin while they wait for their answer.
    pub max_transaction_bytes_per_source: usize,
    /// Most live transactions overall (503 with [`GLOBAL_LIMIT_WARNING`] beyond); default
    /// 100,000.
    pub max_transactions: usize,
    /// Most bytes all live transactions keep; default 256 MiB.
    pub max_transaction_bytes: usize,
    /// Limits for [`TransactionLayer::handle_datagram`].
    pub parse_limits: ParseLimits,
    /// Host written in Warning headers of automatic error answers.
    pub warning_agent: &'static str,
    /// Answers to unverified UDP sources never exceed what they sent (see the module
    /// documentation, "Reflection guard"). Off by default (plain RFC 3261 behaviour).
    pub reflection_guard: bool,
    /// With the reflection guard: bytes per second the per-source token bucket refills
    /// (default 16 KiB/s, about 30 refusals a second).
    pub response_rate_per_source: u32,
    /// With the reflection guard: the bucket's size in bytes (default 64 KiB).
    pub response_burst_per_source: u32,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            trying_delay: Duration::from_millis(200),
            max_transactions_per_source: 16_384,
            max_transaction_bytes_per_source: 16 << 20,
            max_transactions: 100_000,
            max_transaction_bytes: 256 << 20,
            parse_limits: ParseLimits::default(),
            warning_agent: "voice-connector",
            reflection_guard: false,
            response_rate_per_source: 16 << 10,
            response_burst_per_source: 64 << 10,
        }
    }
}

/// Warning text of the 503 for a source over its budget.
pub const SOURCE_LIMIT_WARNING: &str = "too many transactions from this source";

/// Warning text of the 503 when the whole table is at its caps.
pub const GLOBAL_LIMIT_WARNING: &str =
    "server is at its transaction limit (all sources); retry later";

/// What a transaction is charged besides its messages: the entry, its two index entries,
/// its timers in the heap and the TU's bookkeeping (an estimate).
pub const TXN_OVERHEAD: usize = 512;

/// How long a verified source stays verified after its last proof.
pub const VERIFIED_TTL: Duration = Duration::from_secs(3600);

/// Most verified sources remembered (the oldest is forgotten first).
const MAX_VERIFIED: usize = 65_536;

/// The key a source's budget and rate limit are kept under: the address for IPv4 (an
/// IPv4-mapped IPv6 address counts as its IPv4 address), the /64 prefix for IPv6 (RFC 4291
/// §2.5.4: one interface, or one customer, holds a whole /64).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What a request of this shape occupies: its printed size, estimated from the parsed form.
fn request_size(req: &Request) -> usize {
    req.method.as_str().len()
        + req.uri.as_str().len()
        + 12
        + req
            .headers
            .iter()
            .map(|(n, _, v)| n.len() + v.len() + 4)
            .sum::<usize>()
        + req.body.len()
        + 20
}

/// Names a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionKey(u64);

/// The timers of RFC 3261 §17 and RFC 6026.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE client retransmit, starts at T1 and doubles (§17.1.1.2).
    A,
    /// INVITE client timeout, 64*T1 (§17.1.1.2).
    B,
    /// INVITE client wait for response retransmits in Completed: 32 s, 0 reliable (§17.1.1.2).
    D,
    /// Non-INVITE client retransmit: T1 doubling up to T2 (§17.1.2.2).
    E,
    /// Non-INVITE client timeout, 64*T1 (§17.1.2.2).
    F,
    /// INVITE server final-response retransmit: T1 doubling up to T2 (§17.2.1).
    G,
    /// INVITE server wait for ACK, 64*T1 (§17.2.1).
    H,
    /// INVITE server wait for ACK retransmits in Confirmed: T4, 0 reliable (§17.2.1).
    I,
    /// Non-INVITE server wait for request retransmits: 64*T1, 0 reliable (§17.2.2).
    J,
    /// Non-INVITE client wait for response retransmits: T4, 0 reliable (§17.1.2.2).
    K,
    /// INVITE server in Accepted: absorb INVITE retransmits, 64*T1 (RFC 6026 §8.7).
    L,
    /// INVITE client in Accepted: pass 2xx retransmits to the TU, 64*T1 (RFC 6026 §8.4).
    M,
    /// INVITE server sends 100 Trying if the TU has not answered (§17.2.1, 200 ms).
    Trying,
}

impl Timer {
    fn slot(self) -> usize {
        match self {
            Timer::A | Timer::E | Timer::G => 0,
            Timer::B | Timer::F | Timer::H => 1,
            Timer::D | Timer::I | Timer::J | Timer::K | Timer::L | Timer::M => 2,
            Timer::Trying => 3,
        }
    }
}

/// Transaction states (RFC 3261 Figures 5-8, RFC 6026 Figures 3-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// INVITE client sent the request (§17.1.1.2).
    Calling,
    /// Non-INVITE client/server before any response (§17.1.2.2, §17.2.2).
    Trying,
    /// A provisional response was received or sent.
    Proceeding,
    /// A non-2xx final response (INVITE) or any final (non-INVITE) was received or sent.
    Completed,
    /// INVITE server got the ACK for its non-2xx final (§17.2.1).
    Confirmed,
    /// INVITE transaction after a 2xx (RFC 6026 §7.1, §7.2).
    Accepted,
    /// Gone.
    Terminated,
}

/// Which of the four state machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionKind {
    /// INVITE client (§17.1.1).
    ClientInvite,
    /// Non-INVITE client (§17.1.2).
    ClientNonInvite,
    /// INVITE server (§17.2.1).
    ServerInvite,
    /// Non-INVITE server (§17.2.2).
    ServerNonInvite,
}

/// What the layer tells the transaction user.
#[derive(Debug)]
pub enum Event {
    /// A new request with its server transaction (answer with `send_response`).
    Request {
        /// The server transaction.
        key: TransactionKey,
        /// The request.
        request: Request,
        /// Where it came from.
        peer: Peer,
    },
    /// A CANCEL (RFC 3261 §9.2) with its own server transaction, and the INVITE server
    /// transaction it matches, if any. The TU answers the CANCEL (200, or 481 without a
    /// match) and, if the INVITE has no final response yet, the INVITE with 487.
    Cancel {
        /// The CANCEL's server transaction.
        key: TransactionKey,
        /// The CANCEL.
        request: Request,
        /// Where it came from.
        peer: Peer,
        /// The INVITE transaction it cancels.
        invite: Option<TransactionKey>,
    },
    /// An ACK that is not for a non-2xx final response: the ACK for a 2xx (RFC 3261
    /// §13.3.1.4, RFC 6026 §8.7), for the dialog layer.
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        peer: Peer,
        /// The INVITE server transaction in Accepted state it matched, if any.
        invite: Option<TransactionKey>,
    },
    /// A response for a client transaction (retransmitted 2xx of an INVITE included, RFC
    /// 6026 §8.4; other retransmissions are absorbed).
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: Response,
    },
    /// Timer B or F fired (no final response; the TU acts as if 408 arrived, §8.1.3.1),
    /// or Timer H fired (no ACK for a non-2xx final response, §17.2.1).
    Timeout {
        /// The transaction.
        key: TransactionKey,
        /// Which timer.
        timer: Timer,
    },
    /// The transport failed for this transaction (§17.1.4, §17.2.4).
    TransportError {
        /// The transaction.
        key: TransactionKey,
    },
    /// The transaction is gone; its key will not be used again.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
}

/// Misuse of the layer by the TU (the peer cannot cause these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// No such transaction (terminated or never existed).
    #[error("unknown transaction")]
    UnknownTransaction,
    /// The request lacks a top Via with an RFC 3261 branch, or a CSeq.
    #[error("request needs a top Via with a z9hG4bK branch and a CSeq")]
    MissingBranch,
    /// A transaction with this branch and method already exists.
    #[error("duplicate branch")]
    DuplicateBranch,
    /// ACK is not sent through a transaction; use `send_stateless`.
    #[error("ACK is sent without a transaction")]
    AckNotAllowed,
    /// The response does not fit the transaction's state (e.g. a second final response).
    #[error("response not allowed in the transaction's state")]
    InvalidState,
    /// Only INVITE client transactions can be cancelled, before a final response.
    #[error("transaction cannot be cancelled")]
    NotCancellable,
    /// The transaction table is full.
    #[error("too many transactions")]
    TooManyTransactions,
}

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

    /// What the transaction keeps, estimated ([`TXN_OVERHEAD`] plus its messages).
    fn footprint(&self) -> usize {
        TXN_OVERHEAD
            + self.match_key.len()
            + if self.request.is_some() {
                self.request_len
            } else {
                0
            }
            + self.request_bytes.len()
            + self.last_bytes.as_ref().map_or(0, Vec::len)
    }
}

/// Count and bytes of the live server transactions of one source.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    count: usize,
    bytes: usize,
}

/// A per-source token bucket in bytes.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
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
    branch_seed: u64,
    branch_counter: u64,
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

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl TransactionLayer {
    /// A layer with `branch_seed` (pass a random number: branches must be unique across
    /// restarts, RFC 3261 §8.1.1.7).
    pub fn new(cfg: TransactionConfig, branch_seed: u64) -> Self {
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
            branch_seed,
            branch_counter: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TransactionConfig {
        &self.cfg
    }

    /// A fresh `z9hG4bK...` branch (RFC 3261 §8.1.1.7).
    pub fn new_branch(&mut self) -> String {
        self.branch_counter += 1;
        let a = splitmix(self.branch_seed ^ self.branch_counter);
        let b = splitmix(a ^ self.branch_counter.rotate_left(17));
        format!("{MAGIC_COOKIE}{a:016x}{:08x}", b as u32)
    }

    /// A fresh tag or Call-ID fragment derived from the same generator.
    pub fn new_token(&mut self) -> String {
        self.branch_counter += 1;
        format!(
            "{:016x}",
            splitmix(self.branch_seed.rotate_left(7) ^ self.branch_counter)
        )
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

    /// Bytes all live transactions keep, estimated as the budgets count them (see the
    /// module documentation, "Budgets").
    pub fn retained_bytes(&self) -> usize {
        self.total_bytes
    }

    /// (live server transactions, their bytes) charged to the source of `ip`
    /// ([`source_key`]: its IPv6 /64).
    pub fn source_usage(&self, ip: IpAddr) -> (usize, usize) {
        self.per_source
            .get(&source_key(ip))
            .map_or((0, 0), |u| (u.count, u.bytes))
    }

    /// Marks `ip` as a source that receives what we send (reflection guard): e.g. the UA
    /// got the ACK for its 2xx, which carries the To tag only that 2xx told. Lasts
    /// [`VERIFIED_TTL`] from `now`.
    pub fn verify_source(&mut self, now: Instant, ip: IpAddr) {
        if !self.cfg.reflection_guard {
            return;
        }
        if self.verified.len() >= MAX_VERIFIED && !self.verified.contains_key(&ip) {
            self.verified
                .retain(|_, at| now.saturating_duration_since(*at) < VERIFIED_TTL);
            if self.verified.len() >= MAX_VERIFIED
                && let Some(oldest) = self
                    .verified
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| *k)
            {
                self.verified.remove(&oldest);
            }
        }
        self.verified.insert(ip, now);
    }

    /// Whether `ip` is verified at `now` (always false without the reflection guard).
    pub fn is_verified(&self, now: Instant, ip: IpAddr) -> bool {
        self.verified
            .get(&ip)
            .is_some_and(|at| now.saturating_duration_since(*at) < VERIFIED_TTL)
    }

    /// Takes `n` bytes from the response bucket of `source` (a [`source_key`]).
    fn take_tokens(&mut self, now: Instant, source: IpAddr, n: usize) -> bool {
        let rate = f64::from(self.cfg.response_rate_per_source);
        let burst = f64::from(self.cfg.response_burst_per_source);
        if self.buckets.len() >= self.buckets_prune_at {
            // A full bucket is the same as none.
            self.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            self.buckets_prune_at = (self.buckets.len() * 2).max(1024);
        }
        let b = self.buckets.entry(source).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= n as f64 {
            b.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// A response sent outside any transaction (400 to a malformed datagram, 503 over a
    /// budget), answering `received` bytes: under the reflection guard only when no larger
    /// than them (unverified UDP source) and within the source's bucket.
    fn send_stateless_answer(
        &mut self,
        now: Instant,
        peer: Peer,
        payload: Vec<u8>,
        received: usize,
    ) {
        if self.cfg.reflection_guard && !peer.transport.is_reliable() {
            let ip = peer.remote.ip();
            if !self.is_verified(now, ip) && payload.len() > received {
                return;
            }
            if !self.take_tokens(now, source_key(ip), payload.len()) {
                return;
            }
        }
        self.transmits.push_back(Transmit { peer, payload });
    }

    /// Sends the last response of server transaction `key`, a first answer or (`repeat`)
    /// a retransmission, as the reflection guard allows; without the guard, or over a
    /// reliable transport, always.
    /// Returns whether it was sent.
    fn emit_last(&mut self, now: Instant, key: TransactionKey, repeat: bool) -> bool {
        let guard = self.cfg.reflection_guard;
        let Some(t) = self.txns.get(&key) else {
            return false;
        };
        let Some(len) = t.last_bytes.as_ref().map(Vec::len) else {
            return false;
        };
        let (ip, reliable, credit) = (t.peer.remote.ip(), t.reliable(), t.credit);
        let source = t.source.unwrap_or_else(|| source_key(ip));
        // After a provisional the caller no longer retransmits: no credit to wait for.
        let no_credit = t.kind == TransactionKind::ServerInvite && t.provisional_sent;
        let mut unverified = false;
        if guard && !reliable {
            unverified = !self.is_verified(now, ip);
            if unverified && !no_credit && len > credit {
                return false; // held until a retransmission of the request brings credit
            }
            if (unverified || repeat) && !self.take_tokens(now, source, len) {
                return false;
            }
        }
        let Some(t) = self.txns.get_mut(&key) else {
            return false;
        };
        if unverified {
            t.credit = t.credit.saturating_sub(len);
        }
        let Some(b) = &t.last_bytes else {
            return false;
        };
        self.transmits.push_back(Transmit {
            peer: t.peer,
            payload: b.clone(),
        });
        true
    }

    /// Charges transaction `key` again after what it keeps changed.
    fn recharge(&mut self, key: TransactionKey) {
        let Some(t) = self.txns.get_mut(&key) else {
            return;
        };
        let new = t.footprint();
        let old = std::mem::replace(&mut t.charged, new);
        self.total_bytes = self.total_bytes + new - old;
        if let Some(src) = t.source
            && let Some(u) = self.per_source.get_mut(&src)
        {
            u.bytes = u.bytes + new - old;
        }
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

    // ----- server side -----

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

    fn on_request(&mut self, now: Instant, mut req: Request, peer: Peer, wire_len: usize) {
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
        let used = self.per_source.get(&source).copied().unwrap_or_default();
        let cfg = &self.cfg;
        let refusal = if used.count >= cfg.max_transactions_per_source
            || used.bytes + need > cfg.max_transaction_bytes_per_source
        {
            Some(("5", SOURCE_LIMIT_WARNING))
        } else if self.txns.len() >= cfg.max_transactions
            || self.total_bytes + need > cfg.max_transaction_bytes
        {
            Some(("10", GLOBAL_LIMIT_WARNING))
        } else {
            None
        };
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

    // ----- client side -----

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

    fn on_response(&mut self, now: Instant, resp: Response) {
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

/// Builds a CANCEL (RFC 3261 §9.1) or the ACK for a non-2xx final response (§17.1.1.3)
/// from the INVITE: Request-URI, Call-ID, From, CSeq number, the top Via only, and Route
/// headers; To comes from the response for the ACK.
pub(crate) fn build_cancel_or_ack(
    invite: &Request,
    method: Method,
    resp: Option<&Response>,
) -> Request {
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
