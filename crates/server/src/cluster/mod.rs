//! Scale-out (issue 16): this node in the registry of nodes sharing one PostgreSQL database.
//!
//! - A heartbeat every second writes the node's row with its load (legs, meetings, CPU) and
//!   whether it drains (`store::cluster`); a node silent for `--node-dead-after` is dead.
//! - The bus (`bus.rs`): cache invalidations and deletions travel to every node over
//!   PostgreSQL LISTEN/NOTIFY, so a connector change made through one node governs the next
//!   INVITE on another, and DeleteAttendee through one node ends the call held on another at
//!   once (the 5 s reconciler in `sweeps` stays as the safety net).
//! - Placement: a meeting's first join places it ([`Cluster::place`]).
//! - `GET /admin/nodes` (`admin.rs`): the registry, signed like every admin read.
//!
//! On SQLite (one node) the heartbeat and placement still run (the registry shows the one
//! node); the bus has nothing to carry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::bail;
use store::{ClusterRepository, NodeInfo, Placement, SqlRepository};

pub mod admin;
mod bus;
mod load;

/// How often the heartbeat is written.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Heartbeats between two deletions of nodes silent for [`FORGET_AFTER_MS`].
const FORGET_EVERY: u64 = 3600;
/// A node silent this long (a day) leaves the registry.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

/// `--node-id`, `--advertise-sip`, `--advertise-http`, `--node-dead-after` as given.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_id: String,
    pub advertise_sip: Option<String>,
    pub advertise_http: Option<String>,
    pub dead_after: Duration,
}

impl Default for ClusterConfig {
    /// The host name, nothing advertised, dead after 5 s (tests building a `Config`).
    fn default() -> Self {
        ClusterConfig {
            node_id: host_name(),
            advertise_sip: None,
            advertise_http: None,
            dead_after: Duration::from_secs(5),
        }
    }
}

impl ClusterConfig {
    /// Checks the settings; the node id defaults to the host name.
    pub fn resolve(
        node_id: Option<String>,
        advertise_sip: Option<String>,
        advertise_http: Option<String>,
        dead_after: Option<u32>,
    ) -> anyhow::Result<ClusterConfig> {
        let node_id = node_id.unwrap_or_else(host_name);
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if node_id.is_empty() || node_id.len() > 64 || !node_id.chars().all(ok) {
            bail!("--node-id {node_id:?}: 1 to 64 letters, digits, '.', '-' or '_'");
        }
        if let Some(a) = &advertise_sip {
            let port = a.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
            if !matches!(port, Some((h, Ok(p))) if !h.is_empty() && p != 0) {
                bail!("--advertise-sip {a:?} is not host:port");
            }
        }
        if let Some(u) = &advertise_http
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            bail!("--advertise-http {u:?} is not an http:// or https:// URL");
        }
        Ok(ClusterConfig {
            node_id,
            advertise_sip,
            advertise_http,
            dead_after: Duration::from_secs(u64::from(dead_after.unwrap_or(5))),
        })
    }
}

/// The host name (`/proc/sys/kernel/hostname`), else `node`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

/// This node's handle on the cluster.
pub struct Cluster {
    pub node_id: String,
    pub dead_after: Duration,
    sql: SqlRepository,
    cfg: ClusterConfig,
    /// Known once the listeners are bound ([`start`]).
    advertised: std::sync::OnceLock<Advertised>,
    started_ms: i64,
    draining: AtomicBool,
    load: load::Sampler,
    /// The legs and meetings of the last heartbeat.
    last: std::sync::Mutex<(i64, i64)>,
}

/// What [`start`] hands to `serve`.
pub struct Started {
    /// Deletions and capability changes made through other nodes, for
    /// `sweeps::forward_control_events`.
    pub remote_events: tokio::sync::broadcast::Receiver<api::ControlEvent>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Advertised {
    sip: Option<String>,
    http: Option<String>,
    media_ip: Option<String>,
}

/// Where this node is reached, as `serve` knows once its listeners are bound.
pub struct Addresses {
    pub sip: Option<SocketAddr>,
    pub http: SocketAddr,
    pub http_tls: bool,
    pub public_url: Option<String>,
    pub media_ip: Option<std::net::IpAddr>,
}

impl Cluster {
    /// This node, not registered yet ([`start`] does it).
    pub fn new(cfg: &ClusterConfig, sql: SqlRepository) -> Arc<Cluster> {
        Arc::new(Cluster {
            node_id: cfg.node_id.clone(),
            dead_after: cfg.dead_after,
            sql,
            cfg: cfg.clone(),
            advertised: Default::default(),
            started_ms: domain::timestamp::now_millis(),
            draining: AtomicBool::new(false),
            load: load::Sampler::default(),
            last: Default::default(),
        })
    }
}

/// Writes the first heartbeat, then starts the heartbeat and the bus.
pub async fn start(
    cluster: &Arc<Cluster>,
    at: Addresses,
    database_url: &str,
    cache: Arc<store::CachedRepository>,
    events: &tokio::sync::broadcast::Sender<api::ControlEvent>,
    load: LoadFn,
) -> Started {
    let scheme = if at.http_tls { "https" } else { "http" };
    let cfg = &cluster.cfg;
    let advertised = Advertised {
        sip: cfg.advertise_sip.clone().or_else(|| {
            at.sip
                .filter(|a| !a.ip().is_unspecified())
                .map(|a| a.to_string())
        }),
        http: cfg
            .advertise_http
            .clone()
            .or(at.public_url)
            .or_else(|| Some(format!("{scheme}://{}", at.http))),
        media_ip: at.media_ip.map(|ip| ip.to_string()),
    };
    tracing::info!(node = %cluster.node_id, sip = advertised.sip.as_deref().unwrap_or("-"),
        http = advertised.http.as_deref().unwrap_or("-"), "node registered");
    let _ = cluster.advertised.set(advertised);
    cluster.beat(0, 0).await;
    let (remote_tx, remote_events) = tokio::sync::broadcast::channel(1024);
    let mut tasks = bus::start(cluster, database_url, cache, events, remote_tx);
    tasks.push(tokio::spawn(heartbeat(cluster.clone(), load)));
    Started {
        remote_events,
        tasks,
    }
}

/// This node's (legs, meetings), asked of the edge by `serve` (the cluster imports no
/// driver: the edge's join imports it).
pub type LoadFn = Box<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = (usize, usize)> + Send>>
        + Send
        + Sync,
>;

/// Writes the heartbeat every [`HEARTBEAT`] with this node's load.
async fn heartbeat(cluster: Arc<Cluster>, load: LoadFn) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        tick.tick().await;
        let (legs, meetings) = load().await;
        cluster.beat(legs as i64, meetings as i64).await;
        if n % FORGET_EVERY == 0 {
            let before = domain::timestamp::now_millis() - FORGET_AFTER_MS;
            match cluster.sql.forget_nodes(before).await {
                Ok(0) => {}
                Ok(gone) => tracing::info!(gone, "nodes silent for a day left the registry"),
                Err(e) => tracing::warn!(error = %e, "the registry's old nodes were not deleted"),
            }
        }
    }
}

impl Cluster {
    async fn beat(&self, legs: i64, meetings: i64) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = (legs, meetings);
        let at = self.advertised.get();
        let info = NodeInfo {
            id: self.node_id.clone(),
            advertise_sip: at.and_then(|a| a.sip.clone()),
            advertise_http: at.and_then(|a| a.http.clone()),
            media_ip: at.and_then(|a| a.media_ip.clone()),
            legs,
            meetings,
            cpu_permille: self.load.cpu_permille(),
            draining: self.draining.load(Ordering::Acquire),
        };
        let now = domain::timestamp::now_millis();
        if let Err(e) = self.sql.heartbeat(&info, self.started_ms, now).await {
            tracing::warn!(node = %self.node_id, error = %e, "heartbeat not written");
        }
    }

    /// Marks this node draining in the registry at once: no new meeting is placed on it.
    pub async fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
        let (legs, meetings) = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        self.beat(legs, meetings).await;
        tracing::info!(node = %self.node_id, "node draining: no new meetings are placed here");
    }

    /// The node hosting `meeting_id`, placing it on its first join (or when its node died).
    /// `None` when the meeting is gone or the store fails (the join goes on here, logged).
    pub async fn place(&self, meeting_id: &str) -> Option<Placement> {
        let dead_after = self.dead_after.as_millis() as i64;
        let now = domain::timestamp::now_millis();
        match self
            .sql
            .place_meeting(meeting_id, &self.node_id, now, dead_after)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(meeting = %meeting_id, error = %e, "meeting placement failed");
                None
            }
        }
    }

    /// Placement for a SIP join taken by this node: the meeting is placed (or found placed);
    /// when another live node hosts it, the call is still served here (SIP forwarding to
    /// the host is not built yet), which the log says.
    pub async fn place_join(&self, meeting_id: &str) {
        // SQLite is one node: nothing to place, and no store round trips to spend per join.
        if !self.sql.is_postgres() {
            return;
        }
        if let Some(p) = self.place(meeting_id).await
            && p.node_id != self.node_id
        {
            tracing::info!(meeting = %meeting_id, host = %p.node_id,
                host_sip = p.node.as_ref().and_then(|n| n.info.advertise_sip.as_deref()).unwrap_or("-"),
                "the meeting is hosted on another node; this call is served here");
        }
    }
}
