//! `GET /admin/nodes`: the node registry with each node's state (live, draining, dead) and
//! load, SigV4-signed like every admin read.

use std::sync::Arc;

use api::{ApiError, AppState};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use store::ClusterRepository;

use super::Cluster;

#[derive(Clone)]
struct Nodes {
    api: Arc<AppState>,
    cluster: Arc<Cluster>,
}

/// The route.
pub fn routes<S: Clone + Send + Sync + 'static>(
    api: Arc<AppState>,
    cluster: Arc<Cluster>,
) -> Router<S> {
    Router::new()
        .route("/admin/nodes", get(nodes))
        .with_state(Nodes { api, cluster })
}

async fn nodes(State(n): State<Nodes>, req: Request<Body>) -> Response {
    let cluster = n.cluster.clone();
    api::signed_read(&n.api, req, |_| async move {
        let rows = cluster
            .sql
            .list_nodes()
            .await
            .map_err(|e| ApiError::Internal(format!("reading the node registry: {e}")))?;
        let now = domain::timestamp::now_millis();
        let dead_after = cluster.dead_after.as_millis() as i64;
        let nodes: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "NodeId": r.info.id,
                    "State": r.state(now, dead_after).as_str(),
                    "This": r.info.id == cluster.node_id,
                    "AdvertiseSip": r.info.advertise_sip,
                    "AdvertiseHttp": r.info.advertise_http,
                    "MediaIp": r.info.media_ip,
                    "Legs": r.info.legs,
                    "Meetings": r.info.meetings,
                    "CpuPercent": r.info.cpu_permille as f64 / 10.0,
                    "StartedAt": domain::timestamp::iso8601(r.started_ms),
                    "LastHeartbeatAt": domain::timestamp::iso8601(r.heartbeat_ms),
                    "MillisSinceHeartbeat": now.saturating_sub(r.heartbeat_ms),
                })
            })
            .collect();
        Ok(json!({ "Nodes": nodes, "DeadAfterSeconds": cluster.dead_after.as_secs() }))
    })
    .await
}
