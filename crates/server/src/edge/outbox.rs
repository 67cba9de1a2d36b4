//! Outbound SIP over TCP and TLS, off the edge task: one bounded queue and one task per
//! destination. A message to a peer without an open connection waits for a TCP connect
//! and a TLS handshake; a peer that stalls them costs only its own messages (each has a
//! deadline), never the user agent's other calls. UDP is sent inline: it never waits on
//! a peer.
//!
//! A message that could not go (a refused connect, a failed TLS handshake, a closed
//! connection, its deadline passed, a full queue) is reported back to the edge task as
//! [`Input::TransportError`], which ends that peer's transactions at once (RFC 3261
//! §17.1.4): an INVITE to a carrier whose port refuses fails over in milliseconds, not
//! after Timer B.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use sip::Peer;
use sip_transport::{Outbound, Transport, Transports};
use tokio::sync::mpsc;

use super::Input;

/// Messages queued per destination; more are dropped (the peer is not reading).
const QUEUE: usize = 64;
/// How long one message may take, connect and handshake included.
const DEADLINE: Duration = Duration::from_secs(5);
/// A destination's task ends after this long without a message.
const IDLE: Duration = Duration::from_secs(30);
/// Most destinations with a queue at once.
const MAX_DESTINATIONS: usize = 10_000;

/// The per-destination queues.
pub struct Outbox {
    transports: Transports,
    queues: HashMap<(Transport, SocketAddr), mpsc::Sender<(Peer, Outbound)>>,
    /// Where failures go (the edge task's inputs).
    failed: mpsc::Sender<Input>,
}

impl Outbox {
    pub fn new(transports: Transports, failed: mpsc::Sender<Input>) -> Self {
        Outbox {
            transports,
            queues: HashMap::new(),
            failed,
        }
    }

    /// Queues a stream-transport message for its destination (`peer` as the user agent
    /// named it); never waits.
    pub fn send(&mut self, peer: Peer, out: Outbound) {
        let key = (out.transport, out.remote);
        let out = (peer, out);
        let out = match self.queues.get(&key) {
            Some(q) => match q.try_send(out) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full((peer, out))) => {
                    tracing::warn!(remote = %out.remote, "SIP peer is not taking messages; one dropped");
                    return self.dropped(peer);
                }
                // The destination's task ended (idle): start another.
                Err(mpsc::error::TrySendError::Closed(out)) => out,
            },
            None => out,
        };
        self.start(key, out);
    }

    fn start(&mut self, key: (Transport, SocketAddr), out: (Peer, Outbound)) {
        if self.queues.len() >= MAX_DESTINATIONS {
            self.queues.retain(|_, q| !q.is_closed());
            if self.queues.len() >= MAX_DESTINATIONS {
                tracing::warn!(remote = %key.1, "too many SIP destinations with queued messages; one dropped");
                return self.dropped(out.0);
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let _ = tx.try_send(out);
        tokio::spawn(run(self.transports.clone(), rx, self.failed.clone()));
        self.queues.insert(key, tx);
    }

    /// A message dropped here is a transport error too: its transaction ends rather than
    /// waiting for its timer (stream transports do not retransmit).
    fn dropped(&self, peer: Peer) {
        if self.failed.try_send(Input::TransportError(peer)).is_err() {
            tracing::warn!(remote = %peer.remote, "the SIP edge is not taking inputs; a transport error not reported");
        }
    }
}

/// Sends one message; a failure is reported to the edge task.
async fn send_one(
    transports: &Transports,
    (peer, out): (Peer, Outbound),
    failed: &mpsc::Sender<Input>,
) {
    let remote = out.remote;
    match tokio::time::timeout(DEADLINE, transports.send(out)).await {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => tracing::warn!(%remote, error = %e, "SIP send failed"),
        Err(_) => {
            tracing::warn!(%remote, deadline_secs = DEADLINE.as_secs(), "SIP send did not finish in time (connect or TLS handshake stalled); message dropped")
        }
    }
    let _ = failed.send(Input::TransportError(peer)).await;
}

/// One destination's task.
async fn run(
    transports: Transports,
    mut rx: mpsc::Receiver<(Peer, Outbound)>,
    failed: mpsc::Sender<Input>,
) {
    while let Ok(Some(out)) = tokio::time::timeout(IDLE, rx.recv()).await {
        send_one(&transports, out, &failed).await;
    }
    // Idle: what raced the end still goes.
    rx.close();
    while let Ok(out) = rx.try_recv() {
        send_one(&transports, out, &failed).await;
    }
}
