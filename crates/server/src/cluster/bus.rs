//! The cluster bus on PostgreSQL LISTEN/NOTIFY.
//!
//! Out: every invalidation of this node's connector cache NOTIFYs `vc_cache` (payload: this
//! node's id; several writes in a row are coalesced into one), and every control event of
//! this node's API (deletions, capability changes) NOTIFYs `vc_control` as JSON.
//! In: a `vc_cache` notification from another node drops this node's whole cache; a
//! `vc_control` one becomes a [`api::ControlEvent`] on the remote channel, which `serve`
//! forwards to the edge like a local one. A lost LISTEN connection is reconnected, then the
//! whole cache is dropped (a notification may have been missed; deletions missed meanwhile
//! are caught by the reconciler).
//!
//! On SQLite (one node) nothing starts.

use std::sync::Arc;

use api::ControlEvent;
use serde::{Deserialize, Serialize};
use store::cluster::{CACHE_CHANNEL, CONTROL_CHANNEL};
use store::{BusEvent, BusListener};
use tokio::sync::{broadcast, mpsc};

use super::Cluster;

/// One control event on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Wire {
    node: String,
    #[serde(flatten)]
    event: WireEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum WireEvent {
    MeetingDeleted {
        meeting_id: String,
    },
    AttendeeDeleted {
        meeting_id: String,
        attendee_id: String,
    },
    AttendeeCapabilities {
        meeting_id: String,
        attendee_id: String,
        capabilities: domain::meeting::AttendeeCapabilities,
    },
}

impl From<ControlEvent> for WireEvent {
    fn from(e: ControlEvent) -> Self {
        match e {
            ControlEvent::MeetingDeleted { meeting_id } => WireEvent::MeetingDeleted { meeting_id },
            ControlEvent::AttendeeDeleted {
                meeting_id,
                attendee_id,
            } => WireEvent::AttendeeDeleted {
                meeting_id,
                attendee_id,
            },
            ControlEvent::AttendeeCapabilities {
                meeting_id,
                attendee_id,
                capabilities,
            } => WireEvent::AttendeeCapabilities {
                meeting_id,
                attendee_id,
                capabilities,
            },
        }
    }
}

impl From<WireEvent> for ControlEvent {
    fn from(e: WireEvent) -> Self {
        match e {
            WireEvent::MeetingDeleted { meeting_id } => ControlEvent::MeetingDeleted { meeting_id },
            WireEvent::AttendeeDeleted {
                meeting_id,
                attendee_id,
            } => ControlEvent::AttendeeDeleted {
                meeting_id,
                attendee_id,
            },
            WireEvent::AttendeeCapabilities {
                meeting_id,
                attendee_id,
                capabilities,
            } => ControlEvent::AttendeeCapabilities {
                meeting_id,
                attendee_id,
                capabilities,
            },
        }
    }
}

/// Starts the bus's tasks (none on SQLite).
pub(super) fn start(
    cluster: &Arc<Cluster>,
    database_url: &str,
    cache: Arc<store::CachedRepository>,
    events: &broadcast::Sender<ControlEvent>,
    remote: broadcast::Sender<ControlEvent>,
) -> Vec<tokio::task::JoinHandle<()>> {
    if !cluster.sql.is_postgres() {
        return Vec::new();
    }
    // One pending cache notification is enough: it tells the others to drop everything.
    let (dirty_tx, dirty_rx) = mpsc::channel::<()>(1);
    cache.on_invalidate(Box::new(move || {
        let _ = dirty_tx.try_send(());
    }));
    vec![
        tokio::spawn(publish_cache(cluster.clone(), dirty_rx)),
        tokio::spawn(publish_control(cluster.clone(), events.subscribe())),
        tokio::spawn(listen(
            cluster.clone(),
            database_url.to_owned(),
            cache,
            remote,
        )),
    ]
}

async fn publish_cache(cluster: Arc<Cluster>, mut dirty: mpsc::Receiver<()>) {
    while dirty.recv().await.is_some() {
        if let Err(e) = cluster.sql.notify(CACHE_CHANNEL, &cluster.node_id).await {
            tracing::warn!(error = %e, "cluster bus: cache invalidation not sent (other nodes see the change within the cache's second)");
        }
    }
}

async fn publish_control(cluster: Arc<Cluster>, mut events: broadcast::Receiver<ControlEvent>) {
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            // Missed ones are caught by every node's reconciler.
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "cluster bus: control events lagged");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let wire = Wire {
            node: cluster.node_id.clone(),
            event: event.into(),
        };
        let payload = serde_json::to_string(&wire).unwrap_or_default();
        if let Err(e) = cluster.sql.notify(CONTROL_CHANNEL, &payload).await {
            tracing::warn!(error = %e, "cluster bus: control event not sent (the reconciler catches it)");
        }
    }
}

async fn listen(
    cluster: Arc<Cluster>,
    url: String,
    cache: Arc<store::CachedRepository>,
    remote: broadcast::Sender<ControlEvent>,
) {
    let mut listener = loop {
        match BusListener::connect(&url, &[CACHE_CHANNEL, CONTROL_CHANNEL]).await {
            Ok(l) => break l,
            Err(e) => {
                tracing::warn!(error = %e, "cluster bus: LISTEN failed, trying again in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        match listener.recv().await {
            BusEvent::Message { channel, payload } if channel == CACHE_CHANNEL => {
                if payload != cluster.node_id {
                    cache.invalidate_all();
                }
            }
            BusEvent::Message { payload, .. } => match serde_json::from_str::<Wire>(&payload) {
                Ok(w) if w.node == cluster.node_id => {}
                Ok(w) => {
                    let _ = remote.send(w.event.into());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster bus: a control notification did not parse")
                }
            },
            BusEvent::Reconnected => {
                tracing::info!("cluster bus: reconnected; the connector cache is dropped");
                cache.invalidate_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_events_round_trip() {
        for e in [
            ControlEvent::MeetingDeleted {
                meeting_id: "m".into(),
            },
            ControlEvent::AttendeeDeleted {
                meeting_id: "m".into(),
                attendee_id: "a".into(),
            },
            ControlEvent::AttendeeCapabilities {
                meeting_id: "m".into(),
                attendee_id: "a".into(),
                capabilities: Default::default(),
            },
        ] {
            let w = Wire {
                node: "n1".into(),
                event: e.clone().into(),
            };
            let back: Wire = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
            assert_eq!(back.node, "n1");
            assert_eq!(ControlEvent::from(back.event), e);
        }
    }
}
