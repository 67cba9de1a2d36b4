//! SIP over UDP, TCP and TLS on tokio; development CA and certificates.
//!
//! This is the IO edge below the sans-IO `sip` crate: it owns the sockets and hands the
//! transaction layer one complete SIP message at a time. It frames at byte level (it does
//! not parse SIP beyond `Content-Length`), so it does not depend on the `sip` crate.
//!
//! # Use
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use sip_transport::{Outbound, TlsConfig, Transport, TransportConfig, Transports};
//!
//! let mut config = TransportConfig::new("0.0.0.0:5060".parse()?);
//! config.tls = Some(TlsConfig::development(
//!     "0.0.0.0:5061".parse()?,
//!     "./data",
//!     "voiceconnector.localhost",
//! ));
//! let (transports, mut inbound) = Transports::bind(config).await?;
//! while let Some(msg) = inbound.recv().await {
//!     // msg.bytes is exactly one SIP message; parse it, run the transaction layer, then
//!     // answer on the same flow (RFC 3261 §18.2.2):
//!     transports
//!         .send(Outbound::reply_to(&msg, bytes::Bytes::from_static(b"SIP/2.0 200 OK\r\n...")))
//!         .await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Transports
//!
//! * **UDP** (RFC 3261 §18): one datagram is one message, up to 65,535 bytes (and at most
//!   [`Limits::max_message_size`]). Datagrams of only CR/LF/SP/HTAB/NUL are keep-alives and
//!   are dropped silently. [`Inbound::local`] for UDP is the bound address (with
//!   `0.0.0.0` it does not tell which interface received the datagram).
//! * **TCP** on the same address and port as UDP, and **TLS** on its own address. Streams
//!   are framed by [`framing::StreamFramer`]: CRLFs before a start-line are skipped
//!   (RFC 3261 §7.5), a double CRLF is an RFC 5626 §3.5.1 ping answered with a single CRLF
//!   pong, and a message ends `Content-Length` bytes after the blank line (header
//!   `Content-Length` or compact `l`, any case).
//!
//! **Missing `Content-Length` on a stream** (mandatory there, RFC 3261 §18.3, §20.14):
//! the message is *not* passed up and the connection is closed with a warning. Without the
//! length the end of the message — and so the start of the next — cannot be known, and
//! guessing (assuming 0) would let a body be read as a request. UDP messages are passed up
//! as they are; their `Content-Length` handling (§18.3) is the parser's.
//!
//! Limits ([`Limits`]): `max_message_size`, `max_header_size`, `max_line_length`,
//! `max_connections_per_ip` (inbound TCP+TLS per source address), `max_connections`
//! (total), `idle_timeout` (no traffic either way closes the connection, default 5 min),
//! handshake/connect/write timeouts and queue sizes. Over a limit the connection is closed
//! (or refused right after `accept`, or the datagram dropped) with a `tracing` warning.
//!
//! Connection reuse (RFC 3261 §18.2.2, RFC 5923): [`Transports::send`] writes a TCP/TLS
//! message on the connection named by [`Outbound::conn`] if it is still open, else on an
//! open connection to [`Outbound::remote`] (inbound or outbound), else it opens one. Every
//! channel is bounded: a full inbound channel stops reading, a full connection queue makes
//! `send` fail with [`SendError::Congested`] rather than wait on a slow peer.
//!
//! # TLS
//!
//! rustls 0.23 with the *ring* provider (builds without cmake or network downloads), TLS 1.3
//! and TLS 1.2 only. TLS 1.2 offers only ECDHE with AEAD suites
//! (`TLS_ECDHE_{ECDSA,RSA}_WITH_AES_{128,256}_GCM_*`, `…_CHACHA20_POLY1305_SHA256`) over
//! X25519, P-256 and P-384, which covers pjsua2/OpenSSL clients.
//!
//! **Old PBXs:** rustls refuses TLS 1.0 and 1.1 and every CBC and static-RSA suite; it has
//! no switch to allow them. A PBX that speaks only those cannot connect (its handshake
//! fails with `protocol_version` or `handshake_failure`). The operator's options: upgrade
//! the PBX firmware or enable TLS 1.2 with an ECDHE-GCM suite on it; put a TLS-terminating
//! SBC or proxy (for example stunnel or Kamailio with OpenSSL) in front that accepts the old
//! protocol and speaks TLS 1.2+ or TCP to this server; or use SIP over TCP/UDP on a trusted
//! network. The development certificate has an ECDSA P-256 key: a TLS 1.2 client must
//! list P-256 among its supported groups (RFC 8422 §5.1.1; OpenSSL-based clients such as
//! pjsua2 do by default), and a client that only does RSA suites needs an RSA certificate
//! from the operator (`tls_cert` / `tls_key`, [`TlsConfig::from_files`]).
//!
//! Sending large requests over TCP instead of UDP (RFC 3261 §18.1.1, the 1300-byte rule)
//! is the caller's choice, since it changes the `Via` header.
//!
//! Certificates ([`certs`]): with [`TlsIdentity::Development`] a CA is created on first
//! start in `<data-dir>/tls/ca.pem` (key `ca.key`, mode 0600) and issues a server
//! certificate for `*.<sip-domain>`, `<sip-domain>`, `localhost`, `127.0.0.1`, `::1` and
//! the listen addresses; both are reused on later starts, the server certificate is
//! re-issued when the names change or it expires within 30 days.
//! [`Transports::dev_ca_path`] tells clients what to trust. [`TlsIdentity::Files`] uses an
//! operator's PEM chain and key instead. [`TlsConfig::sni_certificates`] adds certificates
//! chosen by SNI ([`certs::SniResolver`]); the default answers clients without SNI.
//!
//! # Message log
//!
//! [`TransportConfig::message_log`] takes a [`MessageLog`] callback called with a
//! [`LoggedMessage`] (direction, transport, local and remote address, connection, bytes)
//! for every SIP message received and sent. The server filters it per voice connector
//! (`EnableSIPLogs`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod certs;
mod config;
pub mod framing;
mod runtime;

use std::fmt;
use std::io;
use std::net::SocketAddr;

pub use bytes::Bytes;
pub use certs::{CertError, DevCertSpec, DevCertificates};
pub use config::{CertFiles, Limits, MessageLog, TlsConfig, TlsIdentity, TransportConfig};
pub use runtime::Transports;

/// A SIP transport (RFC 3261 §18), as written in a `Via` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS over TCP (RFC 3261 §26.2.1; `Via: SIP/2.0/TLS`).
    Tls,
}

impl Transport {
    /// The `Via` transport token: `UDP`, `TCP` or `TLS` (RFC 3261 §20.42).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Whether the transport is reliable (RFC 3261 §17.1.1.2: no retransmissions).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one TCP or TLS connection while it is open. Ids are never reused during a
/// process's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The numeric id (for logs and metrics).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// One complete SIP message received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The transport it came over.
    pub transport: Transport,
    /// Our address it arrived on (for TCP/TLS the connection's local address; for UDP the
    /// bound address).
    pub local: SocketAddr,
    /// The peer's address (the `received`/`rport` of RFC 3261 §18.2.1 and RFC 3581).
    pub remote: SocketAddr,
    /// The connection, for TCP/TLS: pass it back in [`Outbound::conn`] to answer on it.
    pub conn: Option<ConnId>,
    /// The message: start-line, headers, blank line and body (for streams exactly
    /// `Content-Length` bytes of body; for UDP the whole datagram).
    pub bytes: Bytes,
}

/// A SIP message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// The transport to use.
    pub transport: Transport,
    /// Destination (used for UDP; for TCP/TLS when `conn` is not open any more, to find
    /// another open connection to this address or to open one).
    pub remote: SocketAddr,
    /// Preferred connection (TCP/TLS), e.g. [`Inbound::conn`] of the request answered.
    pub conn: Option<ConnId>,
    /// The whole message.
    pub bytes: Bytes,
    /// For new outbound TLS connections: the host name to send as SNI and to verify the
    /// server certificate against; `None` verifies against the IP address of `remote`.
    pub server_name: Option<String>,
}

impl Outbound {
    /// A message back to where `inbound` came from, on the same connection for TCP/TLS
    /// (RFC 3261 §18.2.2).
    pub fn reply_to(inbound: &Inbound, bytes: Bytes) -> Self {
        Self {
            transport: inbound.transport,
            remote: inbound.remote,
            conn: inbound.conn,
            bytes,
            server_name: None,
        }
    }

    /// A message to `remote` over `transport`, reusing any open connection to it.
    pub fn to(transport: Transport, remote: SocketAddr, bytes: Bytes) -> Self {
        Self {
            transport,
            remote,
            conn: None,
            bytes,
            server_name: None,
        }
    }
}

/// Where a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The transport used.
    pub transport: Transport,
    /// The local address it left from (for a new connection, its ephemeral address: what a
    /// `Via` sent-by should name if no listening address is advertised).
    pub local: SocketAddr,
    /// The peer address.
    pub remote: SocketAddr,
    /// The connection used or opened (TCP/TLS).
    pub conn: Option<ConnId>,
}

/// Direction of a logged message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from the peer.
    Inbound,
    /// Sent to the peer.
    Outbound,
}

/// What the [`MessageLog`] callback sees for every SIP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedMessage<'a> {
    /// In or out.
    pub direction: Direction,
    /// The transport.
    pub transport: Transport,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The connection (TCP/TLS).
    pub conn: Option<ConnId>,
    /// The whole message.
    pub bytes: &'a [u8],
}

/// Why [`Transports::bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The UDP socket could not be bound.
    #[error("cannot bind SIP UDP on {addr}: {source}")]
    Udp {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The TCP listener could not be bound.
    #[error("cannot bind SIP TCP on {addr}: {source}")]
    Tcp {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The TLS listener could not be bound.
    #[error("cannot bind SIP TLS on {addr}: {source}")]
    Tls {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Certificates could not be created or loaded.
    #[error(transparent)]
    Certificates(#[from] CertError),
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    TlsConfig(#[source] rustls::Error),
}

/// Why [`Transports::send`] failed. Transport errors are what RFC 3261 §17.1.1.2 / §17.1.2.2
/// tell the transaction layer about (treated like a 503 for a client transaction).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The transport is not configured (TLS without [`TransportConfig::tls`]).
    #[error("SIP transport {0} is not enabled")]
    TransportDisabled(Transport),
    /// The message exceeds [`Limits::max_message_size`].
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Message size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Sending the UDP datagram failed.
    #[error("UDP send to {remote} failed: {source}")]
    Udp {
        /// Destination.
        remote: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Opening a TCP connection failed.
    #[error("connecting to {remote} failed: {source}")]
    Connect {
        /// Destination.
        remote: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Opening a TCP connection took longer than [`Limits::connect_timeout`].
    #[error("connecting to {remote} timed out")]
    ConnectTimeout {
        /// Destination.
        remote: SocketAddr,
    },
    /// The outbound TLS handshake failed or timed out (certificate not trusted, no common
    /// protocol version or suite, …).
    #[error("TLS handshake with {remote} failed: {source}")]
    TlsHandshake {
        /// Destination.
        remote: SocketAddr,
        /// The error (rustls errors are wrapped in `io::Error`).
        #[source]
        source: io::Error,
    },
    /// [`Outbound::server_name`] is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// [`Limits::max_connections`] connections are open already.
    #[error("connection limit reached")]
    ConnectionLimit,
    /// The connection's write queue is full ([`Limits::connection_queue`]); the peer is not
    /// reading. The message was not queued.
    #[error("write queue of {conn} is full")]
    Congested {
        /// The congested connection.
        conn: ConnId,
    },
    /// The connection closed while the message was handed over.
    #[error("connection closed")]
    ConnectionClosed,
    /// [`Transports::shutdown`] was called.
    #[error("SIP transports are shut down")]
    Shutdown,
}
