//! The transport tasks: the UDP receive loop, the TCP/TLS accept loop, and one task per
//! stream connection (framing, pings, queued writes, idle and message deadlines).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use super::{ConnGuard, Shared};
use crate::framing::{Frame, StreamFramer, is_datagram_keepalive};
use crate::{Direction, Inbound, Transport};

/// Largest UDP payload (IPv6 without jumbograms allows 65,527; IPv4 65,507).
const UDP_BUFFER: usize = 65_536;
/// Read buffer for one stream connection.
const STREAM_READ_BUFFER: usize = 16 * 1024;
/// The RFC 5626 §3.5.1 pong.
const PONG: &[u8] = b"\r\n";

pub(super) async fn udp_loop(shared: Arc<Shared>) {
    let socket = Arc::clone(&shared.udp);
    let local = shared.udp_addr;
    let mut shutdown = shared.shutdown.subscribe();
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let (len, remote) = tokio::select! {
            _ = shutdown.changed() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive error");
                    continue;
                }
            },
        };
        let Some(datagram) = buf.get(..len) else {
            continue;
        };
        if is_datagram_keepalive(datagram) {
            tracing::trace!(%remote, "UDP keep-alive ignored");
            continue;
        }
        if len > shared.limits.max_message_size {
            tracing::warn!(%remote, len, limit = shared.limits.max_message_size, "UDP datagram over max_message_size dropped");
            continue;
        }
        let bytes = Bytes::copy_from_slice(datagram);
        shared.log(
            Direction::Inbound,
            Transport::Udp,
            local,
            remote,
            None,
            &bytes,
        );
        let inbound = Inbound {
            transport: Transport::Udp,
            local,
            remote,
            conn: None,
            bytes,
        };
        if shared.inbound.send(inbound).await.is_err() {
            return;
        }
    }
}

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, transport: Transport) {
    let listen_addr = listener.local_addr().ok();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.changed() => return,
            _ = shared.inbound.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(%transport, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(local) = stream.local_addr().ok().or(listen_addr) else {
            continue;
        };
        let (tx, rx) = mpsc::channel(shared.limits.connection_queue);
        let guard = match shared.register(transport, local, remote, tx, true) {
            Ok(guard) => guard,
            Err(limit) => {
                tracing::warn!(%transport, %remote, %limit, "connection refused: limit reached");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tracing::debug!(%transport, %remote, conn = %guard.id, "accepted connection");
        match transport {
            Transport::Tls => {
                let Some(acceptor) = shared.tls.as_ref().map(|t| t.acceptor.clone()) else {
                    continue;
                };
                let handshake = shared.limits.tls_handshake_timeout;
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    match timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let (_, session) = tls.get_ref();
                            tracing::debug!(
                                %remote,
                                version = ?session.protocol_version(),
                                suite = ?session.negotiated_cipher_suite().map(|s| s.suite()),
                                sni = ?session.server_name(),
                                "TLS handshake done"
                            );
                            run_connection(shared, guard, tls, rx).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%remote, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::warn!(%remote, "TLS handshake timed out");
                        }
                    }
                });
            }
            _ => {
                tokio::spawn(run_connection(Arc::clone(&shared), guard, stream, rx));
            }
        }
    }
}

/// Drives one stream connection: frames what it reads (RFC 3261 §18.3), answers RFC 5626
/// pings, writes queued messages, and closes on idle, error, limit or shutdown.
pub(super) async fn run_connection<S>(
    shared: Arc<Shared>,
    guard: ConnGuard,
    mut stream: S,
    mut outbound: mpsc::Receiver<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = shared.limits;
    let (id, transport, local, remote) = (guard.id, guard.transport, guard.local, guard.remote);
    let mut framer = StreamFramer::new(limits.framing());
    let mut buf = vec![0u8; STREAM_READ_BUFFER];
    let mut shutdown = shared.shutdown.subscribe();
    let mut deadline = Instant::now() + limits.idle_timeout;
    // While a message is partly read: when the whole of it must have arrived (slowloris).
    let mut message_deadline: Option<Instant> = None;
    let reason: &str = 'conn: loop {
        if *shutdown.borrow_and_update() {
            break 'conn "shutdown";
        }
        tokio::select! {
            _ = shutdown.changed() => break 'conn "shutdown",
            _ = tokio::time::sleep_until(deadline) => break 'conn "idle timeout",
            _ = tokio::time::sleep_until(message_deadline.unwrap_or(deadline)),
                if message_deadline.is_some() =>
            {
                tracing::warn!(conn = %id, %transport, %remote, buffered = framer.buffered(),
                    "closing connection: message not complete within message_timeout");
                break 'conn "message timeout";
            }
            queued = outbound.recv() => {
                let Some(bytes) = queued else { break 'conn "closed locally" };
                if let Err(reason) = write(&mut stream, &bytes, limits.write_timeout).await {
                    break 'conn reason;
                }
                deadline = Instant::now() + limits.idle_timeout;
            }
            read = stream.read(&mut buf) => {
                let len = match read {
                    Ok(0) => break 'conn "closed by peer",
                    Ok(len) => len,
                    Err(e) => {
                        tracing::debug!(conn = %id, %remote, error = %e, "read failed");
                        break 'conn "read error";
                    }
                };
                let now = Instant::now();
                deadline = now + limits.idle_timeout;
                framer.push(buf.get(..len).unwrap_or_default());
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        Ok(Some(Frame::Ping)) => {
                            if let Err(reason) = write(&mut stream, PONG, limits.write_timeout).await {
                                break 'conn reason;
                            }
                        }
                        Ok(Some(Frame::Message(bytes))) => {
                            // The next message's clock starts with its first byte.
                            message_deadline = None;
                            shared.log(Direction::Inbound, transport, local, remote, Some(id), &bytes);
                            let inbound = Inbound { transport, local, remote, conn: Some(id), bytes };
                            if shared.inbound.send(inbound).await.is_err() {
                                break 'conn "receiver dropped";
                            }
                        }
                        Err(e) => {
                            tracing::warn!(conn = %id, %transport, %remote, error = %e, "closing connection: framing error");
                            break 'conn "framing error";
                        }
                    }
                }
                message_deadline = if framer.in_message() {
                    Some(message_deadline.unwrap_or(now + limits.message_timeout))
                } else {
                    None
                };
            }
        }
    };
    tracing::debug!(conn = %id, %transport, %remote, reason, "connection closed");
    // Unregister first so no new message is queued on a closing connection.
    drop(guard);
    let _ = timeout(limits.write_timeout, stream.shutdown()).await;
}

async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), &'static str> {
    match timeout(limit, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("write error"),
        Err(_) => Err("write timeout"),
    }
}
