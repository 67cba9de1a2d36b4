//! Configuration of [`crate::Transports`]: listen addresses, TLS identity and limits.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::LoggedMessage;
use crate::framing::FramingLimits;

/// Everything [`crate::Transports::bind`] needs.
#[derive(Clone)]
pub struct TransportConfig {
    /// UDP and TCP listen address (server config `sip`, default `0.0.0.0:5060`). With port 0
    /// both bind the same ephemeral port.
    pub sip: SocketAddr,
    /// SIP over TLS; `None` disables TLS (listener and outbound TLS connections).
    pub tls: Option<TlsConfig>,
    /// Named limits, enforced where bytes enter.
    pub limits: Limits,
    /// Called for every SIP message in and out (see [`MessageLog`]).
    pub message_log: Option<MessageLog>,
}

impl TransportConfig {
    /// UDP+TCP on `sip`, no TLS, default limits, no message log.
    pub fn new(sip: SocketAddr) -> Self {
        Self {
            sip,
            tls: None,
            limits: Limits::default(),
            message_log: None,
        }
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("sip", &self.sip)
            .field("tls", &self.tls)
            .field("limits", &self.limits)
            .field("message_log", &self.message_log.is_some())
            .finish()
    }
}

/// SIP over TLS (RFC 3261 §26.2, RFC 5630) settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// TLS listen address (server config `sip_tls`, default `0.0.0.0:5061`).
    pub listen: SocketAddr,
    /// Where the default server certificate comes from.
    pub identity: TlsIdentity,
    /// More certificates, chosen by SNI over the default (each answers for the DNS names
    /// in its subject alternative names).
    pub sni_certificates: Vec<CertFiles>,
    /// PEM files of CA certificates trusted for outbound TLS connections (for example
    /// `/etc/ssl/certs/ca-certificates.crt` to reach public carriers). The development CA,
    /// when used, is always trusted.
    pub client_trust: Vec<PathBuf>,
}

impl TlsConfig {
    /// TLS on `listen` with a development CA under `data_dir` naming `sip_domain`.
    pub fn development(
        listen: SocketAddr,
        data_dir: impl Into<PathBuf>,
        sip_domain: impl Into<String>,
    ) -> Self {
        Self {
            listen,
            identity: TlsIdentity::Development {
                data_dir: data_dir.into(),
                sip_domain: sip_domain.into(),
                extra_names: Vec::new(),
            },
            sni_certificates: Vec::new(),
            client_trust: Vec::new(),
        }
    }

    /// TLS on `listen` with an operator's certificate chain and key (server config
    /// `tls_cert` / `tls_key`).
    pub fn from_files(
        listen: SocketAddr,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        Self {
            listen,
            identity: TlsIdentity::Files(CertFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            sni_certificates: Vec::new(),
            client_trust: Vec::new(),
        }
    }
}

/// The source of the default TLS server certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsIdentity {
    /// A development CA in `<data_dir>/tls/` issues a certificate for `*.<sip_domain>`,
    /// `<sip_domain>`, `localhost`, 127.0.0.1, ::1, the listen addresses and
    /// `extra_names` (see [`crate::certs::ensure_dev_certificates`]).
    Development {
        /// The server's data directory.
        data_dir: PathBuf,
        /// The SIP domain (server config `sip_domain`).
        sip_domain: String,
        /// More names for the certificate: DNS names, or IP addresses (an advertised public
        /// address, say) written as text.
        extra_names: Vec<String>,
    },
    /// An operator-supplied certificate chain and key.
    Files(CertFiles),
}

/// A PEM certificate chain (end-entity first) and its PEM private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// Certificate chain file.
    pub cert: PathBuf,
    /// Private key file (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Named limits. Over a limit the connection is closed (or the datagram dropped) with a
/// `tracing` warning; nothing panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest SIP message, header section plus body, on any transport (UDP datagrams are at
    /// most 65,535 bytes anyway). Default 65,535.
    pub max_message_size: usize,
    /// Largest header section on a stream. Default 16 KiB.
    pub max_header_size: usize,
    /// Longest header line on a stream. Default 8 KiB.
    pub max_line_length: usize,
    /// Open TCP+TLS connections from one source IP address. Default 32.
    pub max_connections_per_ip: usize,
    /// Open TCP+TLS connections in total, inbound and outbound. Default 4096.
    pub max_connections: usize,
    /// A connection with no traffic either way for this long is closed. Default 5 min.
    pub idle_timeout: Duration,
    /// Time allowed to receive one whole message on a stream, from its first byte; a peer
    /// that dribbles a message (slowloris) is closed then, however often bytes arrive (the
    /// idle timer alone would restart on each). Keep-alive CRLFs start no message.
    /// Default 10 s.
    pub message_timeout: Duration,
    /// Time allowed for a TLS handshake, inbound or outbound. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// Time allowed to open an outbound TCP connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Time allowed to write one message to a stream; a peer that does not read is dropped.
    /// Default 10 s.
    pub write_timeout: Duration,
    /// Messages waiting to be written on one connection; beyond it
    /// [`crate::Transports::send`] fails with [`crate::SendError::Congested`]. Default 64.
    pub connection_queue: usize,
    /// Capacity of the inbound channel returned by bind. When full, reading stops
    /// (backpressure). Default 1024.
    pub inbound_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 65_535,
            max_header_size: 16 * 1024,
            max_line_length: 8 * 1024,
            max_connections_per_ip: 32,
            max_connections: 4096,
            idle_timeout: Duration::from_secs(300),
            message_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            connection_queue: 64,
            inbound_queue: 1024,
        }
    }
}

impl Limits {
    /// The subset the stream framer enforces.
    pub fn framing(&self) -> FramingLimits {
        FramingLimits {
            max_message_size: self.max_message_size,
            max_header_size: self.max_header_size,
            max_line_length: self.max_line_length,
        }
    }
}

/// A message-log hook: called synchronously for every SIP message received (after framing)
/// and sent (when handed to the socket or the connection's queue). It runs on the transport
/// tasks, so it must be quick and must not block: format and hand off, or filter and return.
/// The server enables it per voice connector (`EnableSIPLogs`) by filtering inside the
/// callback. Keep-alive CRLFs are not logged.
///
/// The bytes are the message as it is on the wire and can carry secrets: the
/// `X-chime-join-token` URI parameter of a meeting join, `Authorization` digest responses.
/// Redact them before writing the log anywhere; this crate itself never logs message bytes.
#[derive(Clone)]
pub struct MessageLog(pub Arc<dyn Fn(&LoggedMessage<'_>) + Send + Sync>);

impl MessageLog {
    /// Wraps a callback.
    pub fn new(f: impl Fn(&LoggedMessage<'_>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub(crate) fn emit(&self, message: &LoggedMessage<'_>) {
        (self.0)(message);
    }
}

impl fmt::Debug for MessageLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageLog(..)")
    }
}
