//! The transaction layer's vocabulary: transports, peers, timers, states, events, errors,
//! and its configuration.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::message::{Request, Response};
use crate::parse::ParseLimits;

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
    /// Most live server transactions per source ([`source_key`](super::source_key): an
    /// IPv4 address or an IPv6 /64); beyond that, new requests get 503 with
    /// [`SOURCE_LIMIT_WARNING`](super::SOURCE_LIMIT_WARNING) (RFC 3261 §21.5.4) and no
    /// transaction. Transactions live on after their final response (Timer
    /// J/L: 64*T1 = 32 s on UDP), so a trunk doing C calls/s holds about 64*C of them
    /// (INVITE + BYE, 32 s each): the default 16,384 fits 256 calls/s from one source (the
    /// signalling benchmark's 1,600 calls/s over 8 sources needs about 10,400 each), about a
    /// sixth of the global count. Call-rate policy (CPS) belongs above this layer.
    pub max_transactions_per_source: usize,
    /// Most bytes the live server transactions of one source keep
    /// ([`TransactionLayer::retained_bytes`](super::TransactionLayer::retained_bytes));
    /// default 16 MiB, 1 KiB for each transaction of the count budget (a completed BYE keeps about 0.9 KiB, an accepted INVITE 0.6 KiB).
    /// Bounds what large requests can pin while they wait for their answer.
    pub max_transaction_bytes_per_source: usize,
    /// Most live transactions overall (503 with
    /// [`GLOBAL_LIMIT_WARNING`](super::GLOBAL_LIMIT_WARNING) beyond); default 100,000.
    pub max_transactions: usize,
    /// Most bytes all live transactions keep; default 256 MiB.
    pub max_transaction_bytes: usize,
    /// Limits for [`TransactionLayer::handle_datagram`](super::TransactionLayer::handle_datagram).
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

/// Names a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionKey(pub(super) u64);

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
    pub(super) fn slot(self) -> usize {
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
