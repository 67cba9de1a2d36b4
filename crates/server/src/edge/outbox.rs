//! Outbound SIP over TCP and TLS, off the edge task: one bounded queue and one task per
//! destination. A message to a peer without an open connection waits for a TCP connect
//! and a TLS handshake; a peer that stalls them costs only its own messages (each has a
//! deadline), never the user agent's other calls. UDP is sent inline: it never waits on
//! a peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use sip_transport::{Outbound, Transport, Transports};
use tokio::sync::mpsc;

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
    queues: HashMap<(Transport, SocketAddr), mpsc::Sender<Outbound>>,
}

impl Outbox {
    pub fn new(transports: Transports) -> Self {
        Outbox {
            transports,
            queues: HashMap::new(),
        }
    }

    /// Queues a stream-transport message for its destination; never waits.
    pub fn send(&mut self, out: Outbound) {
        let key = (out.transport, out.remote);
        let out = match self.queues.get(&key) {
            Some(q) => match q.try_send(out) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(out)) => {
                    tracing::warn!(remote = %out.remote, "SIP peer is not taking messages; one dropped");
                    return;
                }
                // The destination's task ended (idle): start another.
                Err(mpsc::error::TrySendError::Closed(out)) => out,
            },
            None => out,
        };
        self.start(key, out);
    }

    fn start(&mut self, key: (Transport, SocketAddr), out: Outbound) {
        if self.queues.len() >= MAX_DESTINATIONS {
            self.queues.retain(|_, q| !q.is_closed());
            if self.queues.len() >= MAX_DESTINATIONS {
                tracing::warn!(remote = %out.remote, "too many SIP destinations with queued messages; one dropped");
                return;
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let _ = tx.try_send(out);
        tokio::spawn(run(self.transports.clone(), rx));
        self.queues.insert(key, tx);
    }
}

async fn send_one(transports: &Transports, out: Outbound) {
    let remote = out.remote;
    match tokio::time::timeout(DEADLINE, transports.send(out)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(%remote, error = %e, "SIP send failed"),
        Err(_) => {
            tracing::warn!(%remote, deadline_secs = DEADLINE.as_secs(), "SIP send did not finish in time (connect or TLS handshake stalled); message dropped")
        }
    }
}

/// One destination's task.
async fn run(transports: Transports, mut rx: mpsc::Receiver<Outbound>) {
    while let Ok(Some(out)) = tokio::time::timeout(IDLE, rx.recv()).await {
        send_one(&transports, out).await;
    }
    // Idle: what raced the end still goes.
    rx.close();
    while let Ok(out) = rx.try_recv() {
        send_one(&transports, out).await;
    }
}
