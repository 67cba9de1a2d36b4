//! The HTTP listener of the API and the browsers' signaling (issue 14, H4 and M5): our own
//! accept loop around hyper's HTTP/1.1 connection, so that no client can hold the server's
//! memory, connections or shutdown.
//!
//! - A connection cap (`--http-max-connections`, WebSockets counted until they close): past
//!   it a new connection gets a one-line 503 (plain HTTP) or is closed at once (TLS),
//!   counted in `vc_http_connections_refused_total`.
//! - A header deadline (`--http-header-timeout`): the TLS handshake and each request's head
//!   must arrive within it. hyper starts that timer when it starts reading a head, which on a
//!   kept-alive connection is right after the previous answer, so it is also the idle
//!   keep-alive timeout.
//! - A request deadline (`--http-request-timeout`): once its head is in, a request has this
//!   long to be answered (its body read included); else 408 (the API's own, in AWS's JSON;
//!   this listener's a second later for any route). A WebSocket is answered by its
//!   101, after which the session is no longer a request.
//! - Shutdown with a deadline (`--http-shutdown-timeout`): the listener closes, idle
//!   connections close, requests in flight may finish; what is still open at the deadline is
//!   dropped.
//! - TLS (`--http-tls`) with the certificate SIP over TLS uses (`--tls-cert`/`--tls-key`, or
//!   the development CA's), HTTP/1.1 by ALPN.
//!
//! [`LookupGate`] bounds the store lookups that unauthenticated requests cause (a browser's
//! join token on the WebSocket, `/client-events`), so a flood of them cannot take the pool
//! the API shares.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Largest request head (and read buffer) of a connection: SigV4 and WebSocket upgrade
/// heads are well under 8 KiB, and the cap times this bounds what heads can hold.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How much longer than `--http-request-timeout` any request may take before the listener
/// answers 408 for it.
const BACKSTOP: Duration = Duration::from_secs(1);

/// What a refused connection gets when it is plain HTTP.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 38\r\n\r\ntoo many HTTP connections, retry later";

/// Whether the listener speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS unless the listener is on a loopback address or `--public-url` names the
    /// proxy that terminates TLS in front of it.
    Auto,
    On,
    Off,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(TlsMode::Auto),
            "on" | "true" | "yes" => Ok(TlsMode::On),
            "off" | "false" | "no" => Ok(TlsMode::Off),
            _ => Err(format!("--http-tls must be auto, on or off, got {s:?}")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for TlsMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(TlsMode::On),
            Raw::Bool(false) => Ok(TlsMode::Off),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The HTTP listener's settings (flags `--http-*` and `--public-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    pub tls: TlsMode,
    /// `https://host[:port]` (or `http://`): where clients reach the API, as a TLS proxy in
    /// front of it publishes it; the meetings' MediaPlacement URLs use it.
    pub public_url: Option<String>,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            tls: TlsMode::Auto,
            public_url: None,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl HttpOptions {
    /// Whether a listener on `addr` speaks TLS.
    pub fn tls_on(&self, addr: SocketAddr) -> bool {
        match self.tls {
            TlsMode::On => true,
            TlsMode::Off => false,
            TlsMode::Auto => !addr.ip().is_loopback() && self.public_url.is_none(),
        }
    }
}

/// `url` as `scheme://authority` (lowercase scheme, no trailing slash) when it is an
/// `http` or `https` URL with a host and no path, query or user.
pub fn public_url(url: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("--public-url {url:?} must be https://HOST[:PORT]"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        bail!("--public-url {url:?}: the scheme must be https or http");
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty()
        || authority
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@') || b.is_ascii_whitespace())
    {
        bail!("--public-url {url:?} must be {scheme}://HOST[:PORT], without a path or user");
    }
    Ok(format!("{scheme}://{authority}"))
}

/// A TLS acceptor for the certificate chain and key in these PEM files, HTTP/1.1 by ALPN.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = sip_transport::certs::load_certified_key(cert, key, &provider)?;
    let resolver = sip_transport::certs::SniResolver::new(Arc::new(certified), Vec::new());
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The running listener.
pub struct HttpServer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Serves `app` on `listener` until [`HttpServer::stop`].
    pub fn spawn(
        listener: TcpListener,
        app: Router,
        tls: Option<TlsAcceptor>,
        opts: &HttpOptions,
        metrics: Arc<api::metrics::Metrics>,
    ) -> HttpServer {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            Shared {
                app,
                tls,
                opts: opts.clone(),
                metrics,
            },
            stopped,
        ));
        HttpServer { stop, task }
    }

    /// Stops accepting, lets requests in flight finish, and returns once every connection
    /// is closed or dropped at the shutdown deadline.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[derive(Clone)]
struct Shared {
    app: Router,
    tls: Option<TlsAcceptor>,
    opts: HttpOptions,
    metrics: Arc<api::metrics::Metrics>,
}

async fn accept_loop(listener: TcpListener, sh: Shared, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(sh.opts.max_connections.max(1)));
    let (closing, closing_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            Ok(_) = stop.changed() => if *stop.borrow() { break },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((sock, remote)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        sh.metrics.counter_add("vc_http_connections_refused_total", "", 1);
                        if sh.tls.is_none() {
                            let _ = sock.try_write(BUSY);
                        }
                        continue;
                    };
                    let _ = sock.set_nodelay(true);
                    let (sh, closing) = (sh.clone(), closing_rx.clone());
                    let sock = Counted { inner: sock, _slot: slot };
                    conns.spawn(async move { connection(sock, remote, &sh, closing).await });
                }
                // Out of file descriptors and the like: the connections holding them close
                // on their deadlines; try again shortly rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let open = conns.len();
    let all_closed = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(sh.opts.shutdown_timeout, all_closed)
        .await
        .is_err()
    {
        tracing::warn!(
            open = conns.len(),
            of = open,
            "HTTP connections still open at the shutdown deadline are dropped"
        );
        conns.shutdown().await;
    }
}

async fn connection(
    sock: Counted<TcpStream>,
    remote: SocketAddr,
    sh: &Shared,
    closing: watch::Receiver<bool>,
) {
    match &sh.tls {
        None => serve_connection(TokioIo::new(sock), remote, sh, closing).await,
        Some(acceptor) => {
            match tokio::time::timeout(sh.opts.header_timeout, acceptor.accept(sock)).await {
                Ok(Ok(tls)) => serve_connection(TokioIo::new(tls), remote, sh, closing).await,
                Ok(Err(e)) => tracing::debug!(peer = %remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %remote, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_connection<I>(
    io: I,
    remote: SocketAddr,
    sh: &Shared,
    mut closing: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // The API reads bodies with the request deadline itself and answers 408 in AWS's JSON;
    // this one, a little later, is the backstop for every other route.
    let (app, deadline) = (sh.app.clone(), sh.opts.request_timeout + BACKSTOP);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        let answer = app.clone().oneshot(req);
        async move {
            Ok::<_, Infallible>(match tokio::time::timeout(deadline, answer).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(never)) => match never {},
                Err(_) => request_timeout(deadline),
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(sh.opts.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let shutting_down = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutting_down => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %remote, error = %e, "HTTP connection ended");
    }
}

/// A connection's stream holding its slot under the cap: the slot is freed when the stream
/// is dropped, which for a WebSocket is when the session ends (hyper hands the stream over
/// at the upgrade).
struct Counted<S> {
    inner: S,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// 408 for a request not answered within its deadline (its body came too slowly).
fn request_timeout(deadline: Duration) -> Response {
    let mut r = (
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "request not completed within {} s\n",
            deadline.as_secs_f32()
        ),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Bounds the store lookups unauthenticated requests cause: at most `concurrent` at once,
/// the others wait up to `wait` and are then shed (503). The API's pool keeps the rest of
/// its connections whatever the flood.
pub struct LookupGate {
    slots: Semaphore,
    wait: Duration,
    metrics: Arc<api::metrics::Metrics>,
}

impl LookupGate {
    /// Lookups at once by default: the SQLite pool has 4 connections; this leaves the API 2.
    pub const CONCURRENT: usize = 2;
    /// How long a lookup waits for a slot before it is shed.
    pub const WAIT: Duration = Duration::from_secs(1);

    pub fn new(concurrent: usize, wait: Duration, metrics: Arc<api::metrics::Metrics>) -> Self {
        LookupGate {
            slots: Semaphore::new(concurrent.max(1)),
            wait,
            metrics,
        }
    }

    /// A slot for one lookup, or `Err(503 answer)` when none frees up in time.
    pub async fn enter(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Response> {
        match tokio::time::timeout(self.wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.metrics
                    .counter_add("vc_http_lookups_shed_total", "", 1);
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many unauthenticated lookups, retry later\n",
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                Err(r)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls() {
        assert_eq!(
            public_url("HTTPS://vc.example.com:8443/").unwrap(),
            "https://vc.example.com:8443"
        );
        assert_eq!(public_url("http://10.0.0.1").unwrap(), "http://10.0.0.1");
        for bad in [
            "vc.example.com",
            "ftp://vc.example.com",
            "https://",
            "https://vc.example.com/api",
            "https://user@vc.example.com",
            "https://vc.example.com?x=1",
        ] {
            assert!(public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_by_default_off_loopback_unless_a_proxy_fronts_it() {
        let auto = HttpOptions::default();
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(!auto.tls_on(lo));
        assert!(auto.tls_on(any));
        let proxied = HttpOptions {
            public_url: Some("https://vc.example.com".into()),
            ..HttpOptions::default()
        };
        assert!(!proxied.tls_on(any));
        let on = HttpOptions {
            tls: TlsMode::On,
            ..HttpOptions::default()
        };
        assert!(on.tls_on(lo));
        assert_eq!("OFF".parse::<TlsMode>(), Ok(TlsMode::Off));
        assert!("maybe".parse::<TlsMode>().is_err());
    }

    #[tokio::test]
    async fn lookups_past_the_bound_are_shed() {
        let metrics = Arc::new(api::metrics::Metrics::default());
        let gate = LookupGate::new(2, Duration::from_millis(20), metrics.clone());
        let a = gate.enter().await.expect("first");
        let _b = gate.enter().await.expect("second");
        let shed = gate.enter().await.expect_err("third waits, then is shed");
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(metrics.render().contains("vc_http_lookups_shed_total 1"));
        drop(a);
        assert!(gate.enter().await.is_ok(), "a freed slot is taken");
    }

    /// Over the cap, a plain-HTTP connection gets a 503 line and is closed; the ones within
    /// it are served.
    #[tokio::test]
    async fn connections_past_the_cap_are_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "hi" }));
        let opts = HttpOptions {
            max_connections: 1,
            ..HttpOptions::default()
        };
        let metrics = Arc::new(api::metrics::Metrics::default());
        let server = HttpServer::spawn(listener, app, None, &opts, metrics.clone());
        let mut first = TcpStream::connect(addr).await.unwrap();
        first
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = first.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        // The first connection is kept alive and holds the only slot.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        second.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
        assert!(
            metrics
                .render()
                .contains("vc_http_connections_refused_total 1")
        );
        drop(first);
        server.stop().await;
    }

    /// A WebSocket keeps its connection's slot after the upgrade, until it closes.
    #[tokio::test]
    async fn a_websocket_holds_its_slot_until_it_closes() {
        use axum::extract::ws::WebSocketUpgrade;
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/ws",
            axum::routing::get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move { while socket.recv().await.is_some() {} })
            }),
        );
        let opts = HttpOptions {
            max_connections: 1,
            ..HttpOptions::default()
        };
        let metrics = Arc::new(api::metrics::Metrics::default());
        let server = HttpServer::spawn(listener, app, None, &opts, metrics);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (ws, resp) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
            .await
            .expect("upgrade");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        second.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
        drop(ws);
        server.stop().await;
    }
}
