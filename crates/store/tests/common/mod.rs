//! The databases every store test suite runs on: SQLite (a temporary file), SQLite behind
//! the connector-configuration cache, and PostgreSQL when `VC_TEST_DATABASE_URL` names a
//! server (each test in a database of its own, dropped afterwards). `suite!` runs each case
//! on all three.
#![allow(dead_code, unused_macros)]

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use domain::voice_connector::VoiceConnector;
use sqlx::Connection as _;
use store::{CachedRepository, Repository, SqlRepository};

// ---------------------------------------------------------------------------------------
// Databases.

/// A fresh database and the repository on it. Dropping it removes the database.
pub struct Db {
    pub url: String,
    pub repo: Arc<dyn Repository>,
    _sqlite_dir: Option<tempfile::TempDir>,
    /// (admin URL, database name) of a PostgreSQL database to drop.
    pg: Option<(String, String)>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Db {
    pub async fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("vc.db").display());
        let repo = SqlRepository::connect(&url).await.expect("open SQLite");
        assert!(!repo.is_postgres());
        Db {
            url,
            repo: Arc::new(repo),
            _sqlite_dir: Some(dir),
            pg: None,
        }
    }

    /// SQLite behind the connector-configuration cache (a TTL far longer than any test,
    /// so every read after a write proves the write invalidated what it changed).
    pub async fn sqlite_cached() -> Db {
        let mut db = Db::sqlite().await;
        db.repo = Arc::new(CachedRepository::new(
            db.repo.clone(),
            std::time::Duration::from_secs(3600),
        ));
        db
    }

    /// `None` (after saying so on stderr) when no PostgreSQL server is configured.
    pub async fn postgres() -> Option<Db> {
        let Some(admin) = std::env::var("VC_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            // Once, straight to stderr: the test harness captures print!/eprint!, not this.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "skipped PostgreSQL: VC_TEST_DATABASE_URL is not set (scripts/test sets it); \
                     the postgres::* repository tests pass without running"
                );
            });
            return None;
        };
        let name = format!(
            "vc_repo_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to VC_TEST_DATABASE_URL");
        // `name` is ours: digits and underscores only.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let url = with_database(&admin, &name);
        let repo = SqlRepository::connect(&url).await.expect("open PostgreSQL");
        assert!(repo.is_postgres());
        Some(Db {
            url,
            repo: Arc::new(repo),
            _sqlite_dir: None,
            pg: Some((admin, name)),
        })
    }

    /// A second, independent connection to the same database (as after a restart).
    pub async fn reopen(&self) -> Arc<dyn Repository> {
        Arc::new(SqlRepository::connect(&self.url).await.expect("reopen"))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

/// `postgres://u@h:p/db?x` with the database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Runs every case on SQLite, on SQLite behind the cache, and on PostgreSQL.
#[macro_export]
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = super::common::Db::sqlite().await;
                    super::$case(&db).await;
                }
            )*
        }
        mod sqlite_cached {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = super::common::Db::sqlite_cached().await;
                    super::$case(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(db) = super::common::Db::postgres().await else { return };
                    super::$case(&db).await;
                }
            )*
        }
    };
}

/// A voice connector as the API would create it.
pub fn connector(id: &str, name: &str) -> VoiceConnector {
    VoiceConnector {
        voice_connector_id: id.to_string(),
        aws_region: Some("us-east-1".into()),
        name: name.to_string(),
        outbound_host_name: format!("{id}.voiceconnector.localhost"),
        require_encryption: true,
        created_timestamp: "2026-11-26T00:00:00Z".into(),
        updated_timestamp: "2026-11-26T00:00:00Z".into(),
        voice_connector_arn: format!("arn:aws:chime:us-east-1:000000000000:vc/{id}"),
        integration_type: None,
        network_type: None,
    }
}

/// A meeting as CreateMeeting would store it.
pub fn meeting(id: &str) -> domain::meeting::MeetingRecord {
    use domain::meeting::{MediaPlacement, Meeting, MeetingRecord};
    MeetingRecord {
        meeting: Meeting {
            meeting_id: id.to_string(),
            meeting_host_id: None,
            external_meeting_id: format!("ext-{id}"),
            media_region: "us-east-1".into(),
            media_placement: MediaPlacement::for_host("127.0.0.1:8080", id),
            meeting_features: None,
            primary_meeting_id: None,
            tenant_ids: None,
            meeting_arn: format!("arn:aws:chime:us-east-1:000000000000:meeting/{id}"),
        },
        client_request_token: format!("crt-{id}"),
        created_ms: 1_764_000_000_000,
        last_audio_ms: 1_764_000_000_000,
    }
}
