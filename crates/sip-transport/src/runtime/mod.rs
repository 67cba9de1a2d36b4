//! The tokio side: sockets, listeners, one task per stream connection, and the connection
//! table used to reuse connections (RFC 3261 §18.2.2, RFC 5923).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::certs::{
    DevCertSpec, DevCertificates, SniResolver, ensure_dev_certificates, load_certified_key,
    read_chain,
};
mod loops;

use loops::{accept_loop, run_connection, udp_loop};

use crate::config::{CertFiles, Limits, MessageLog, TlsConfig, TlsIdentity, TransportConfig};
use crate::{
    BindError, ConnId, Direction, Inbound, LoggedMessage, Outbound, SendError, Sent, Transport,
};

/// Handle to the running SIP transports. Cheap to clone; all clones drive the same sockets.
/// Call [`Transports::shutdown`] to stop them (dropping the inbound receiver stops the
/// listeners too).
#[derive(Clone, Debug)]
pub struct Transports {
    shared: Arc<Shared>,
}

struct Shared {
    limits: Limits,
    inbound: mpsc::Sender<Inbound>,
    registry: Mutex<Registry>,
    udp: Arc<UdpSocket>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tls: Option<TlsRuntime>,
    log: Option<MessageLog>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transports")
            .field("udp", &self.udp_addr)
            .field("tcp", &self.tcp_addr)
            .field("tls", &self.tls.as_ref().map(|t| t.addr))
            .finish_non_exhaustive()
    }
}

struct TlsRuntime {
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    dev: Option<DevCertificates>,
}

/// Which limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LimitHit {
    Total(usize),
    PerIp(usize),
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitHit::Total(n) => write!(f, "max_connections ({n})"),
            LimitHit::PerIp(n) => write!(f, "max_connections_per_ip ({n})"),
        }
    }
}

#[derive(Default)]
struct Registry {
    conns: HashMap<ConnId, Entry>,
    by_remote: HashMap<(Transport, SocketAddr), ConnId>,
    per_ip: HashMap<IpAddr, usize>,
    next: u64,
}

struct Entry {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    counted_ip: Option<IpAddr>,
}

impl Registry {
    fn insert(
        &mut self,
        limits: &Limits,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        tx: mpsc::Sender<Bytes>,
        inbound: bool,
    ) -> Result<ConnId, LimitHit> {
        if self.conns.len() >= limits.max_connections {
            return Err(LimitHit::Total(limits.max_connections));
        }
        let counted_ip = if inbound {
            let ip = remote.ip();
            let count = self.per_ip.entry(ip).or_insert(0);
            if *count >= limits.max_connections_per_ip {
                return Err(LimitHit::PerIp(limits.max_connections_per_ip));
            }
            *count += 1;
            Some(ip)
        } else {
            None
        };
        self.next += 1;
        let id = ConnId(self.next);
        self.conns.insert(
            id,
            Entry {
                transport,
                local,
                remote,
                tx,
                counted_ip,
            },
        );
        self.by_remote.insert((transport, remote), id);
        Ok(id)
    }

    fn remove(&mut self, id: ConnId) -> bool {
        let Some(entry) = self.conns.remove(&id) else {
            return false;
        };
        if let Some(ip) = entry.counted_ip
            && let Some(count) = self.per_ip.get_mut(&ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
        let key = (entry.transport, entry.remote);
        if self.by_remote.get(&key) == Some(&id) {
            self.by_remote.remove(&key);
        }
        true
    }
}

/// Removes a connection from the table when its task ends, however it ends.
struct ConnGuard {
    shared: Arc<Shared>,
    id: ConnId,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.registry().remove(self.id);
    }
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere while holding the lock leaves a consistent table (every
        // mutation is a single insert/remove), so poisoning is ignored.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(
        self: &Arc<Self>,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        tx: mpsc::Sender<Bytes>,
        inbound: bool,
    ) -> Result<ConnGuard, LimitHit> {
        let id = self
            .registry()
            .insert(&self.limits, transport, local, remote, tx, inbound)?;
        Ok(ConnGuard {
            shared: Arc::clone(self),
            id,
            transport,
            local,
            remote,
        })
    }

    fn log(
        &self,
        direction: Direction,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        conn: Option<ConnId>,
        bytes: &[u8],
    ) {
        if let Some(log) = &self.log {
            log.emit(&LoggedMessage {
                direction,
                transport,
                local,
                remote,
                conn,
                bytes,
            });
        }
    }

    fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

impl Transports {
    /// Binds UDP and TCP on `config.sip` (the same port for both, also when it is 0) and, if
    /// configured, TLS on `config.tls.listen`; creates or loads the TLS certificates; starts
    /// the receive tasks. Must run inside a tokio runtime.
    ///
    /// Returns the handle and the receiver of inbound messages, one complete SIP message per
    /// [`Inbound`]. The channel is bounded ([`Limits::inbound_queue`]): while it is full the
    /// transports stop reading.
    pub async fn bind(
        config: TransportConfig,
    ) -> Result<(Transports, mpsc::Receiver<Inbound>), BindError> {
        let limits = sanitize(config.limits);
        let (udp, tcp) = bind_udp_tcp(config.sip).await?;
        let udp_addr = udp.local_addr().map_err(|source| BindError::Udp {
            addr: config.sip,
            source,
        })?;
        let tcp_addr = tcp.local_addr().map_err(|source| BindError::Tcp {
            addr: config.sip,
            source,
        })?;
        let (tls, tls_listener) = match &config.tls {
            Some(tls_config) => {
                let listener = TcpListener::bind(tls_config.listen)
                    .await
                    .map_err(|source| BindError::Tls {
                        addr: tls_config.listen,
                        source,
                    })?;
                let addr = listener.local_addr().map_err(|source| BindError::Tls {
                    addr: tls_config.listen,
                    source,
                })?;
                let runtime = tls_runtime(tls_config, addr, udp_addr)?;
                (Some(runtime), Some(listener))
            }
            None => (None, None),
        };

        let (inbound_tx, inbound_rx) = mpsc::channel(limits.inbound_queue);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            limits,
            inbound: inbound_tx,
            registry: Mutex::new(Registry::default()),
            udp: Arc::new(udp),
            udp_addr,
            tcp_addr,
            tls,
            log: config.message_log,
            shutdown,
            tasks: Mutex::new(Vec::new()),
        });
        let mut tasks = vec![
            tokio::spawn(udp_loop(Arc::clone(&shared))),
            tokio::spawn(accept_loop(Arc::clone(&shared), tcp, Transport::Tcp)),
        ];
        if let Some(listener) = tls_listener {
            tasks.push(tokio::spawn(accept_loop(
                Arc::clone(&shared),
                listener,
                Transport::Tls,
            )));
        }
        *shared.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
        tracing::info!(udp = %udp_addr, tcp = %tcp_addr, tls = ?shared.tls.as_ref().map(|t| t.addr), "SIP transports bound");
        Ok((Transports { shared }, inbound_rx))
    }

    /// The bound address of a transport (`None` for TLS when it is not configured).
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => Some(self.shared.udp_addr),
            Transport::Tcp => Some(self.shared.tcp_addr),
            Transport::Tls => self.shared.tls.as_ref().map(|t| t.addr),
        }
    }

    /// Path of the development CA certificate (`<data-dir>/tls/ca.pem`) that clients must
    /// trust, when TLS uses [`TlsIdentity::Development`].
    pub fn dev_ca_path(&self) -> Option<&Path> {
        self.dev_certificates().map(|d| d.ca_cert.as_path())
    }

    /// All paths of the development CA and server certificate, when in use.
    pub fn dev_certificates(&self) -> Option<&DevCertificates> {
        self.shared.tls.as_ref().and_then(|t| t.dev.as_ref())
    }

    /// Number of open TCP and TLS connections (inbound and outbound).
    pub fn connection_count(&self) -> usize {
        self.shared.registry().conns.len()
    }

    /// Open connections from or to `ip`, counting those of all stream transports.
    pub fn connections_with(&self, ip: IpAddr) -> usize {
        self.shared
            .registry()
            .conns
            .values()
            .filter(|e| e.remote.ip() == ip)
            .count()
    }

    /// Closes a stream connection (after messages already queued on it are written, when
    /// its task gets to them). Returns false if it was not open.
    pub fn close(&self, conn: ConnId) -> bool {
        self.shared.registry().remove(conn)
    }

    /// Sends one SIP message.
    ///
    /// * UDP: one datagram from the UDP socket to `remote`.
    /// * TCP/TLS (RFC 3261 §18.2.2 for responses, §18.1.1 for requests): on connection
    ///   `out.conn` if it is still open and of the same transport; otherwise on an open
    ///   connection to `remote` over that transport; otherwise a new connection to `remote`
    ///   is opened (awaiting TCP connect and the TLS handshake, bounded by
    ///   [`Limits::connect_timeout`] and [`Limits::tls_handshake_timeout`]); the returned
    ///   [`Sent::conn`] names it for later requests.
    ///
    /// On an existing connection the message is queued, never awaited: when the
    /// connection's queue is full the result is [`SendError::Congested`] instead of waiting
    /// on a slow peer. Messages queued on one connection are written in order.
    pub async fn send(&self, out: Outbound) -> Result<Sent, SendError> {
        let shared = &self.shared;
        if shared.is_shut_down() {
            return Err(SendError::Shutdown);
        }
        if out.bytes.len() > shared.limits.max_message_size {
            return Err(SendError::TooLarge {
                size: out.bytes.len(),
                limit: shared.limits.max_message_size,
            });
        }
        match out.transport {
            Transport::Udp => {
                shared
                    .udp
                    .send_to(&out.bytes, out.remote)
                    .await
                    .map_err(|source| SendError::Udp {
                        remote: out.remote,
                        source,
                    })?;
                shared.log(
                    Direction::Outbound,
                    Transport::Udp,
                    shared.udp_addr,
                    out.remote,
                    None,
                    &out.bytes,
                );
                Ok(Sent {
                    transport: Transport::Udp,
                    local: shared.udp_addr,
                    remote: out.remote,
                    conn: None,
                })
            }
            Transport::Tcp | Transport::Tls => {
                if out.transport == Transport::Tls && shared.tls.is_none() {
                    return Err(SendError::TransportDisabled(Transport::Tls));
                }
                if let Some(sent) = self.send_on_open(&out)? {
                    return Ok(sent);
                }
                self.connect_and_send(out).await
            }
        }
    }

    /// Queues `out` on an open connection, `Ok(None)` when there is none.
    fn send_on_open(&self, out: &Outbound) -> Result<Option<Sent>, SendError> {
        let shared = &self.shared;
        let sent = {
            let registry = shared.registry();
            let by_id = out.conn.filter(|id| {
                registry
                    .conns
                    .get(id)
                    .is_some_and(|e| e.transport == out.transport)
            });
            let by_remote = registry
                .by_remote
                .get(&(out.transport, out.remote))
                .copied();
            let mut sent = None;
            for id in by_id.into_iter().chain(by_remote) {
                let Some(entry) = registry.conns.get(&id) else {
                    continue;
                };
                match entry.tx.try_send(out.bytes.clone()) {
                    Ok(()) => {
                        sent = Some(Sent {
                            transport: entry.transport,
                            local: entry.local,
                            remote: entry.remote,
                            conn: Some(id),
                        });
                        break;
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        return Err(SendError::Congested { conn: id });
                    }
                    // The task is ending; try the next candidate or a new connection.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            sent
        };
        if let Some(sent) = &sent {
            shared.log(
                Direction::Outbound,
                sent.transport,
                sent.local,
                sent.remote,
                sent.conn,
                &out.bytes,
            );
        }
        Ok(sent)
    }

    async fn connect_and_send(&self, out: Outbound) -> Result<Sent, SendError> {
        let shared = &self.shared;
        let remote = out.remote;
        if shared.registry().conns.len() >= shared.limits.max_connections {
            return Err(SendError::ConnectionLimit);
        }
        let tcp = timeout(shared.limits.connect_timeout, TcpStream::connect(remote))
            .await
            .map_err(|_| SendError::ConnectTimeout { remote })?
            .map_err(|source| SendError::Connect { remote, source })?;
        let _ = tcp.set_nodelay(true);
        let local = tcp
            .local_addr()
            .map_err(|source| SendError::Connect { remote, source })?;
        let (tx, rx) = mpsc::channel(shared.limits.connection_queue);
        if tx.try_send(out.bytes.clone()).is_err() {
            // Unreachable with a fresh channel of capacity >= 1; reported, not panicked.
            return Err(SendError::ConnectionClosed);
        }
        let guard = match out.transport {
            Transport::Tls => {
                let tls = shared
                    .tls
                    .as_ref()
                    .ok_or(SendError::TransportDisabled(Transport::Tls))?;
                let name = match &out.server_name {
                    Some(name) => ServerName::try_from(name.clone())
                        .map_err(|_| SendError::InvalidServerName(name.clone()))?,
                    None => ServerName::IpAddress(remote.ip().into()),
                };
                let stream = timeout(
                    shared.limits.tls_handshake_timeout,
                    tls.connector.connect(name, tcp),
                )
                .await
                .map_err(|_| SendError::TlsHandshake {
                    remote,
                    source: io::ErrorKind::TimedOut.into(),
                })?
                .map_err(|source| SendError::TlsHandshake { remote, source })?;
                let guard = shared
                    .register(Transport::Tls, local, remote, tx, false)
                    .map_err(|_| SendError::ConnectionLimit)?;
                let id = guard.id;
                tokio::spawn(run_connection(Arc::clone(shared), guard, stream, rx));
                id
            }
            _ => {
                let guard = shared
                    .register(Transport::Tcp, local, remote, tx, false)
                    .map_err(|_| SendError::ConnectionLimit)?;
                let id = guard.id;
                tokio::spawn(run_connection(Arc::clone(shared), guard, tcp, rx));
                id
            }
        };
        tracing::debug!(transport = %out.transport, %local, %remote, conn = %guard, "opened outbound connection");
        shared.log(
            Direction::Outbound,
            out.transport,
            local,
            remote,
            Some(guard),
            &out.bytes,
        );
        Ok(Sent {
            transport: out.transport,
            local,
            remote,
            conn: Some(guard),
        })
    }

    /// Stops the listeners and closes every connection. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        let tasks = std::mem::take(
            &mut *self
                .shared
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for task in tasks {
            task.abort();
        }
    }
}

/// Zero limits would make channels panic or refuse everything; raise them to 1.
fn sanitize(mut limits: Limits) -> Limits {
    limits.connection_queue = limits.connection_queue.max(1);
    limits.inbound_queue = limits.inbound_queue.max(1);
    limits
}

async fn bind_udp_tcp(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), BindError> {
    let udp_err = |source| BindError::Udp { addr, source };
    let tcp_err = |source| BindError::Tcp { addr, source };
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await.map_err(udp_err)?;
        let tcp = TcpListener::bind(addr).await.map_err(tcp_err)?;
        return Ok((udp, tcp));
    }
    // Port 0: let UDP pick, then take the same port for TCP, retrying if it is taken.
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr).await.map_err(udp_err)?;
        let picked = udp.local_addr().map_err(udp_err)?;
        match TcpListener::bind(picked).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(tcp_err(e)),
        }
    }
    Err(tcp_err(last))
}

fn tls_runtime(
    config: &TlsConfig,
    tls_addr: SocketAddr,
    sip_addr: SocketAddr,
) -> Result<TlsRuntime, BindError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (default_files, dev) = match &config.identity {
        TlsIdentity::Development {
            data_dir,
            sip_domain,
            extra_names,
        } => {
            let mut ip_addresses = vec![sip_addr.ip(), tls_addr.ip()];
            let mut dns_names = Vec::new();
            for name in extra_names {
                match name.parse::<IpAddr>() {
                    Ok(ip) => ip_addresses.push(ip),
                    Err(_) => dns_names.push(name.clone()),
                }
            }
            let spec = DevCertSpec {
                data_dir: data_dir.clone(),
                sip_domain: sip_domain.clone(),
                ip_addresses,
                dns_names,
            };
            let dev = ensure_dev_certificates(&spec, time::OffsetDateTime::now_utc())?;
            let files = CertFiles {
                cert: dev.server_cert.clone(),
                key: dev.server_key.clone(),
            };
            (files, Some(dev))
        }
        TlsIdentity::Files(files) => (files.clone(), None),
    };
    let default = Arc::new(load_certified_key(
        &default_files.cert,
        &default_files.key,
        &provider,
    )?);
    let others = config
        .sni_certificates
        .iter()
        .map(|f| load_certified_key(&f.cert, &f.key, &provider).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let resolver = Arc::new(SniResolver::new(default, others));

    // TLS 1.3 and 1.2 only (rustls has no 1.0/1.1); ring's suites are all AEAD with
    // (EC)DHE: TLS 1.2 ECDHE-ECDSA/RSA with AES-GCM and ChaCha20-Poly1305; groups X25519,
    // P-256, P-384.
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(BindError::TlsConfig)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    server.ignore_client_order = true;

    let mut roots = RootCertStore::empty();
    let mut trust_files: Vec<&Path> = config.client_trust.iter().map(|p| p.as_path()).collect();
    if let Some(dev) = &dev {
        trust_files.push(&dev.ca_cert);
    }
    for path in trust_files {
        let (_, ignored) = roots.add_parsable_certificates(read_chain(path)?);
        if ignored > 0 {
            tracing::warn!(path = %path.display(), ignored, "skipped unusable CA certificates");
        }
    }
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(BindError::TlsConfig)?
        .with_root_certificates(roots)
        .with_no_client_auth();

    Ok(TlsRuntime {
        addr: tls_addr,
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
        dev,
    })
}
