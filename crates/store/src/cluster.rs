//! Scale-out (issue 16): several nodes on one PostgreSQL database.
//!
//! - The node registry: each node's row, written at start and by its heartbeat every second
//!   with its load (legs, meetings, CPU); a node whose heartbeat is older than the configured
//!   dead-after time is dead, one that drains says so ([`NodeState`]).
//! - Meeting placement: the node that hosts a meeting's media is chosen at its first join
//!   ([`choose_node`]) and stored with a compare-and-set on the meeting's row, so two nodes
//!   racing to place one meeting agree on the winner; a meeting whose node died or drains is
//!   placed again at its next join ([`ClusterRepository::place_meeting`]).
//! - The bus: PostgreSQL LISTEN/NOTIFY carries cache invalidations and deletions to every
//!   node ([`BusListener`], `SqlRepository::notify`). SQLite is one node: nothing to carry.
//!
//! PostgreSQL is the only coordination engine: no consensus of our own.

use async_trait::async_trait;

use crate::StoreError;

/// The channel of cache invalidations (payload: the writing node's id).
pub const CACHE_CHANNEL: &str = "vc_cache";
/// The channel of deletions and capability changes (payload: JSON, see the server).
pub const CONTROL_CHANNEL: &str = "vc_control";

/// How many more legs than the least-loaded node the node that took a call may carry and
/// still host the call's meeting itself (no hop for the call, media stays where it landed).
pub const PREFER_SLACK_LEGS: i64 = 20;

/// What a node says about itself in each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// host:port other nodes forward or redirect SIP to.
    pub advertise_sip: Option<String>,
    /// The base URL of this node's API and signaling.
    pub advertise_http: Option<String>,
    pub media_ip: Option<String>,
    pub legs: i64,
    pub meetings: i64,
    /// CPU time of the process over the last interval, in tenths of a percent of one core.
    pub cpu_permille: i64,
    pub draining: bool,
}

/// A node's row in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub info: NodeInfo,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
}

/// A node as the cluster sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Live,
    /// Heartbeating, but takes no new meeting; its calls go on until its drain time.
    Draining,
    /// Silent for longer than the dead-after time.
    Dead,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Live => "live",
            NodeState::Draining => "draining",
            NodeState::Dead => "dead",
        }
    }
}

impl Node {
    pub fn state(&self, now_ms: i64, dead_after_ms: i64) -> NodeState {
        if now_ms.saturating_sub(self.heartbeat_ms) > dead_after_ms {
            NodeState::Dead
        } else if self.info.draining {
            NodeState::Draining
        } else {
            NodeState::Live
        }
    }
}

/// The node a new meeting goes to: `me` (the node that took the join) if it is live and
/// carries at most [`PREFER_SLACK_LEGS`] more legs than the least-loaded live node, else the
/// least-loaded live node (legs, then meetings, then CPU, then id). `None` when no node is
/// live (not even `me`: it has not written its first heartbeat yet).
pub fn choose_node<'a>(
    me: &str,
    nodes: &'a [Node],
    now_ms: i64,
    dead_after_ms: i64,
) -> Option<&'a str> {
    let live: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.state(now_ms, dead_after_ms) == NodeState::Live)
        .collect();
    let least = live.iter().min_by_key(|n| {
        (
            n.info.legs,
            n.info.meetings,
            n.info.cpu_permille,
            n.info.id.clone(),
        )
    })?;
    match live.iter().find(|n| n.info.id == me) {
        Some(mine) if mine.info.legs <= least.info.legs.saturating_add(PREFER_SLACK_LEGS) => {
            Some(&mine.info.id)
        }
        _ => Some(&least.info.id),
    }
}

/// Where a meeting's media is, after [`ClusterRepository::place_meeting`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The hosting node's id.
    pub node_id: String,
    /// Its registry row (`None` when it has none: `me` before its first heartbeat).
    pub node: Option<Node>,
}

/// The registry and placement, on the SQL repository.
#[async_trait]
pub trait ClusterRepository: Send + Sync {
    /// Writes this node's row: created at its first heartbeat, then its load and state.
    async fn heartbeat(&self, n: &NodeInfo, started_ms: i64, now_ms: i64)
    -> Result<(), StoreError>;
    /// Every node's row, by id.
    async fn list_nodes(&self) -> Result<Vec<Node>, StoreError>;
    /// Deletes the rows of nodes silent since before `before_ms` (node ids that will not come
    /// back: containers named at random); how many.
    async fn forget_nodes(&self, before_ms: i64) -> Result<u64, StoreError>;
    /// `None`: no such meeting; `Some(None)`: not placed yet.
    async fn meeting_node(&self, meeting_id: &str) -> Result<Option<Option<String>>, StoreError>;
    /// Sets the meeting's node to `node` if it is still `prev`; true when this write won.
    async fn claim_meeting(
        &self,
        meeting_id: &str,
        prev: Option<&str>,
        node: &str,
    ) -> Result<bool, StoreError>;

    /// The node hosting `meeting_id`, placing it first if it has none or its node is dead
    /// or draining:
    /// [`choose_node`] for `me`, written with [`Self::claim_meeting`]; when another node's
    /// claim lands first, its choice stands. `None`: no such meeting.
    async fn place_meeting(
        &self,
        meeting_id: &str,
        me: &str,
        now_ms: i64,
        dead_after_ms: i64,
    ) -> Result<Option<Placement>, StoreError> {
        let nodes = self.list_nodes().await?;
        let find = |id: &str| nodes.iter().find(|n| n.info.id == id).cloned();
        // Two rounds: a lost race is followed by the winner's (live) choice; a second loss
        // would take a third node's claim on a just-dead node within the same instant.
        for _ in 0..3 {
            let Some(current) = self.meeting_node(meeting_id).await? else {
                return Ok(None);
            };
            if let Some(id) = &current {
                let node = find(id);
                // A draining node keeps its calls, not its meeting: the next join moves it.
                let live = node
                    .as_ref()
                    .is_some_and(|n| n.state(now_ms, dead_after_ms) == NodeState::Live);
                // `me` is live while it runs this, even before its first heartbeat.
                if live || id == me {
                    return Ok(Some(Placement {
                        node_id: id.clone(),
                        node,
                    }));
                }
            }
            let choice = choose_node(me, &nodes, now_ms, dead_after_ms)
                .unwrap_or(me)
                .to_owned();
            if self
                .claim_meeting(meeting_id, current.as_deref(), &choice)
                .await?
            {
                return Ok(Some(Placement {
                    node: find(&choice),
                    node_id: choice,
                }));
            }
        }
        Err(StoreError::Contention {
            what: "a meeting's placement",
        })
    }
}

/// What [`BusListener::recv`] hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    Message {
        channel: String,
        payload: String,
    },
    /// The connection was lost and is back: notifications in between are lost, so whatever
    /// they would have invalidated must be dropped.
    Reconnected,
}

/// LISTEN on PostgreSQL's channels, reconnecting when the connection is lost.
pub struct BusListener {
    url: String,
    channels: Vec<String>,
    inner: Option<sqlx::postgres::PgListener>,
}

/// Between two failed connection attempts.
const RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

impl BusListener {
    /// Connects and listens; fails when the first connection does.
    pub async fn connect(url: &str, channels: &[&str]) -> Result<Self, StoreError> {
        let mut me = BusListener {
            url: url.to_owned(),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            inner: None,
        };
        me.inner = Some(me.open().await?);
        Ok(me)
    }

    async fn open(&self) -> Result<sqlx::postgres::PgListener, StoreError> {
        let mut l = sqlx::postgres::PgListener::connect(&self.url).await?;
        l.listen_all(self.channels.iter().map(String::as_str))
            .await?;
        Ok(l)
    }

    /// The next notification, or [`BusEvent::Reconnected`] after a lost connection came
    /// back (tried again every second until it does).
    pub async fn recv(&mut self) -> BusEvent {
        if let Some(l) = self.inner.as_mut() {
            match l.try_recv().await {
                Ok(Some(n)) => {
                    return BusEvent::Message {
                        channel: n.channel().to_owned(),
                        payload: n.payload().to_owned(),
                    };
                }
                // sqlx reconnected already (eager): a notification may have been missed.
                Ok(None) => return BusEvent::Reconnected,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster bus: the LISTEN connection failed");
                    self.inner = None;
                }
            }
        }
        loop {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            match self.open().await {
                Ok(l) => {
                    tracing::info!("cluster bus: LISTEN connection back");
                    self.inner = Some(l);
                    return BusEvent::Reconnected;
                }
                Err(e) => tracing::warn!(error = %e, "cluster bus: reconnecting"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, legs: i64, heartbeat_ms: i64, draining: bool) -> Node {
        Node {
            info: NodeInfo {
                id: id.into(),
                legs,
                draining,
                ..Default::default()
            },
            started_ms: 0,
            heartbeat_ms,
        }
    }

    #[test]
    fn states() {
        assert_eq!(node("a", 0, 1000, false).state(5000, 5000), NodeState::Live);
        assert_eq!(
            node("a", 0, 1000, true).state(5000, 5000),
            NodeState::Draining
        );
        assert_eq!(node("a", 0, 1000, true).state(6001, 5000), NodeState::Dead);
    }

    #[test]
    fn the_node_that_took_the_call_is_preferred_within_the_slack() {
        let nodes = [node("a", 10, 0, false), node("b", 0, 0, false)];
        assert_eq!(choose_node("a", &nodes, 0, 5000), Some("a"));
        let nodes = [
            node("a", 10 + PREFER_SLACK_LEGS + 1, 0, false),
            node("b", 10, 0, false),
        ];
        assert_eq!(choose_node("a", &nodes, 0, 5000), Some("b"));
    }

    #[test]
    fn draining_and_dead_nodes_get_no_meeting() {
        let nodes = [
            node("a", 0, 0, true),
            node("b", 0, -10_000, false),
            node("c", 50, 0, false),
        ];
        assert_eq!(choose_node("a", &nodes, 0, 5000), Some("c"));
        assert_eq!(choose_node("b", &nodes, 0, 5000), Some("c"));
        assert_eq!(choose_node("a", &nodes[..2], 0, 5000), None);
    }
}
