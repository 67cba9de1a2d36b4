//! The client side of https for SIP media application functions (`sma::invoke`), the
//! S3-compatible store (`sma::objects`) and call streams (`streaming`: wss:// sockets, https
//! notify URLs): where an `http://` or `https://` URL's requests
//! go ([`Origin`]), and one TLS connector for both ([`TlsClient`]).
//!
//! Trusted roots are the system's CA bundle, the first of `$SSL_CERT_FILE` and
//! [`SYSTEM_BUNDLES`] that exists (Debian and Ubuntu's `/etc/ssl/certs/ca-certificates.crt`
//! first), plus the certificates of the operator's `--sma-ca-file` (PEM), for a private CA.
//! rustls with the *ring* provider, TLS 1.3 and 1.2 only; the server name of the URL is
//! sent (SNI, for a host name) and the certificate must be valid for it (a host name or an
//! IP address). Verification cannot be turned off.
//!
//! A failed handshake is a [`TlsFailure`] that says what went wrong in words an operator
//! can act on: a certificate not trusted, a name mismatch, a certificate otherwise invalid
//! (expired, not yet valid, revoked), or the handshake itself.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The system CA bundles looked for, in order (Debian/Ubuntu, Fedora/RHEL, openSUSE,
/// Alpine and others). `$SSL_CERT_FILE`, when set, comes first.
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Where the requests of an `http://` or `https://` URL go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `host:port` to connect to (port 80 or 443 when the URL gives none).
    pub connect: String,
    /// The `Host` header: the URL's authority as given.
    pub authority: String,
    /// For `https://`: the name the certificate must be valid for (the host, brackets
    /// taken off an IPv6 address). `None` for plain HTTP.
    pub tls_name: Option<String>,
}

impl Origin {
    /// Splits `url` into its origin and the rest (path, query; empty when there is none).
    /// Refuses other schemes, an empty host, a user part, a bad port.
    pub fn parse(url: &str) -> Result<(Origin, &str), &'static str> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("must start with http:// or https://");
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err("must not carry a user part");
        }
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], Some(&authority[i + 1..]))
            }
            _ => (authority, None),
        };
        if let Some(p) = port
            && p.parse::<u16>().map_or(true, |p| p == 0)
        {
            return Err("bad port");
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() || bare.contains(char::is_whitespace) {
            return Err("no host");
        }
        let connect = match port {
            Some(_) => authority.to_string(),
            None => format!("{authority}:{}", if https { 443 } else { 80 }),
        };
        let origin = Origin {
            connect,
            authority: authority.to_string(),
            tls_name: https.then(|| bare.to_ascii_lowercase()),
        };
        Ok((origin, tail))
    }
}

/// Why a TLS handshake failed. Display is one line naming the host and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// The chain does not lead to a trusted root.
    #[error(
        "TLS: certificate not trusted: the certificate of {host} is not signed by a CA in the \
         system bundle or --sma-ca-file ({detail})"
    )]
    Untrusted { host: String, detail: String },
    /// The certificate is not valid for the URL's host.
    #[error("TLS: certificate name mismatch: the certificate of {host} names {presented}")]
    NameMismatch { host: String, presented: String },
    /// Trusted but unusable: expired, not yet valid, revoked, for another purpose.
    #[error("TLS: certificate of {host} invalid: {detail}")]
    BadCertificate { host: String, detail: String },
    /// The handshake failed before or besides the certificate check.
    #[error("TLS handshake with {host} failed: {detail}")]
    Handshake { host: String, detail: String },
}

impl TlsFailure {
    /// Whether the server's certificate was refused (retrying will not help), rather than
    /// the handshake failing on the way.
    pub fn is_certificate(&self) -> bool {
        !matches!(self, TlsFailure::Handshake { .. })
    }

    /// What a failed handshake's error says, for `host`.
    pub fn of(host: &str, e: &io::Error) -> TlsFailure {
        let host = host.to_string();
        let handshake = |detail: String| TlsFailure::Handshake {
            host: host.clone(),
            detail,
        };
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
            return match e.kind() {
                io::ErrorKind::UnexpectedEof => {
                    handshake("the server closed the connection".into())
                }
                _ => handshake(e.to_string()),
            };
        };
        let cert = match tls {
            rustls::Error::InvalidCertificate(c) => c,
            rustls::Error::AlertReceived(a) => {
                return handshake(format!("the server sent the alert {a:?}"));
            }
            rustls::Error::PeerIncompatible(p) => {
                return handshake(format!("no TLS 1.2 or 1.3 parameters in common ({p:?})"));
            }
            rustls::Error::InvalidMessage(_) => {
                return handshake("the server did not answer in TLS (an http:// endpoint?)".into());
            }
            other => return handshake(other.to_string()),
        };
        let invalid = |detail: &str| TlsFailure::BadCertificate {
            host: host.clone(),
            detail: detail.to_string(),
        };
        match cert {
            CertificateError::UnknownIssuer => TlsFailure::Untrusted {
                host,
                detail: "unknown issuer".into(),
            },
            CertificateError::BadSignature => TlsFailure::Untrusted {
                host,
                detail: "bad signature".into(),
            },
            CertificateError::NotValidForName => TlsFailure::NameMismatch {
                host,
                presented: "other names".into(),
            },
            CertificateError::NotValidForNameContext { presented, .. } => {
                TlsFailure::NameMismatch {
                    host,
                    presented: if presented.is_empty() {
                        "no names".into()
                    } else {
                        let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
                        names.join(", ")
                    },
                }
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                invalid("expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                invalid("not valid yet")
            }
            CertificateError::Revoked => invalid("revoked"),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                invalid("not a TLS server certificate")
            }
            other => invalid(&format!("{other:?}")),
        }
    }
}

/// A name as rustls presents it (`DnsName("a.example")`, `IpAddress(192.0.2.1)`), bare.
fn plain_name(n: &str) -> &str {
    n.strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .or_else(|| {
            n.strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
        })
        .unwrap_or(n)
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect {0}: {1}")]
    Tcp(String, #[source] io::Error),
    #[error("{0}")]
    Tls(TlsFailure),
}

/// A connection: plain TCP, or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS client configuration: trusted roots, TLS 1.2+, HTTP/1.1 offered by ALPN.
/// Cheap to clone.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    /// How many roots, from where (for the start-up log line).
    pub trust: String,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("trust", &self.trust)
            .finish()
    }
}

/// The system bundle: `$SSL_CERT_FILE` when set, else the first of [`SYSTEM_BUNDLES`] that
/// exists.
pub fn system_bundle() -> Option<PathBuf> {
    if let Some(f) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(f));
    }
    SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

impl TlsClient {
    /// Trusts the system bundle (see [`system_bundle`]; certificates in it rustls cannot use
    /// are skipped) and every certificate of `ca_file` (each must parse, or this fails
    /// naming the file).
    pub fn new(ca_file: Option<&Path>) -> anyhow::Result<TlsClient> {
        let mut roots = RootCertStore::empty();
        let mut trust = Vec::new();
        if let Some(bundle) = system_bundle() {
            match sip_transport::certs::read_chain(&bundle) {
                Ok(certs) => {
                    let (added, _skipped) = roots.add_parsable_certificates(certs);
                    trust.push(format!("{added} from {}", bundle.display()));
                }
                Err(e) => {
                    tracing::warn!(bundle = %bundle.display(), error = %e, "the system CA bundle could not be read")
                }
            }
        }
        if let Some(path) = ca_file {
            let certs = sip_transport::certs::read_chain(path)
                .map_err(|e| anyhow::anyhow!("--sma-ca-file: {e}"))?;
            let n = certs.len();
            for c in certs {
                roots.add(c).map_err(|e| {
                    anyhow::anyhow!(
                        "--sma-ca-file {}: not a usable CA certificate: {e}",
                        path.display()
                    )
                })?;
            }
            trust.push(format!("{n} from {}", path.display()));
        }
        if trust.is_empty() {
            trust.push("none (no system bundle found, no --sma-ca-file)".into());
        }
        Ok(TlsClient::with_roots(roots, trust.join(", ")))
    }

    /// A client trusting exactly `roots`.
    pub fn with_roots(roots: RootCertStore, trust: String) -> TlsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            trust,
        }
    }

    /// Opens a connection to `origin`: TCP, then the TLS handshake when it is https.
    pub async fn open(&self, origin: &Origin) -> Result<Stream, ConnectError> {
        let tcp = TcpStream::connect(&origin.connect)
            .await
            .map_err(|e| ConnectError::Tcp(origin.connect.clone(), e))?;
        match &origin.tls_name {
            Some(name) => self.wrap(tcp, name).await,
            None => Ok(Stream::Plain(tcp)),
        }
    }

    /// The TLS handshake over a connection already made (a call stream's socket, whose
    /// buffers its owner sized), the certificate checked for `name`.
    pub async fn wrap(&self, tcp: TcpStream, name: &str) -> Result<Stream, ConnectError> {
        let name = name.to_string();
        let server_name = ServerName::try_from(name.clone()).map_err(|_| {
            ConnectError::Tls(TlsFailure::Handshake {
                host: name.clone(),
                detail: "not a valid TLS server name".into(),
            })
        })?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| ConnectError::Tls(TlsFailure::of(&name, &e)))?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// The process's client, set by [`install`] at start-up.
static SHARED: RwLock<Option<TlsClient>> = RwLock::new(None);

/// Builds the process's client from the system bundle and `ca_file` (`--sma-ca-file`) and
/// logs what it trusts.
pub fn install(ca_file: Option<&Path>) -> anyhow::Result<()> {
    let client = TlsClient::new(ca_file)?;
    tracing::info!(roots = %client.trust, "https client for functions and S3: trusted roots");
    *SHARED.write().unwrap_or_else(|p| p.into_inner()) = Some(client);
    Ok(())
}

/// The process's client ([`install`]), or one trusting the system bundle alone when none
/// was installed.
pub fn shared() -> TlsClient {
    if let Some(c) = &*SHARED.read().unwrap_or_else(|p| p.into_inner()) {
        return c.clone();
    }
    let client = TlsClient::new(None)
        .unwrap_or_else(|_| TlsClient::with_roots(RootCertStore::empty(), "none".into()));
    SHARED
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert(client)
        .clone()
}

#[cfg(test)]
pub(crate) mod tests;
