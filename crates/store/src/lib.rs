//! Persistence behind one repository trait, [`Repository`], with one implementation,
//! [`SqlRepository`], that runs on SQLite (the embedded default, WAL, `synchronous=FULL`) and
//! PostgreSQL (for several nodes). Both use the same SQL through sqlx's `Any` driver; each
//! backend has its own embedded migration set, applied at start.
//!
//! Rows keep the search keys in columns and the rest of a record as the JSON document the API
//! returns (the service model's shape), so a new optional field needs no migration.
//!
//! [`CachedRepository`] wraps a repository with a short-lived cache of the connector
//! configuration that every INVITE reads.

mod cache;
pub mod cluster;
mod migrate;
mod numbers;
mod pstn;
mod repo;
mod sma;
mod sql;
mod tags;

pub use cache::CachedRepository;
pub use cluster::{BusEvent, BusListener, ClusterRepository, Node, NodeInfo, NodeState, Placement};
pub use numbers::{NumberOrderRepository, PoolNumber, PoolSearch};
pub use pstn::{CarrierRepository, GroupRepository};
pub use repo::{AttendeeInsert, MeetingInsert, Repository, SettingKind, StoreError};
pub use sma::{SmaCallRequest, SmaRepository, SmaSettingKind};
pub use sql::SqlRepository;
pub use sql::streaming::{DEFAULT_TARGET, StreamTarget, StreamingRepository};
pub use tags::{MAX_TAGS_PER_RESOURCE, TagRepository};
