//! Embedded migrations, one set per backend, applied in order inside a transaction each.

use sqlx::AnyPool;

use crate::StoreError;

pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_meeting_request_token_unique.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/sqlite/0003_call_records.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/sqlite/0004_call_records_start.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/sqlite/0005_pstn.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/sqlite/0006_account_settings.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/sqlite/0007_sma.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/sqlite/0008_carrier_registration.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../migrations/sqlite/0009_tags.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../migrations/sqlite/0010_number_orders.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../migrations/sqlite/0011_streaming_targets.sql"),
    },
    Migration {
        version: 12,
        sql: include_str!("../migrations/sqlite/0012_nodes.sql"),
    },
];
pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/postgres/0002_meeting_request_token_unique.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/postgres/0003_call_records.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/postgres/0004_call_records_start.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/postgres/0005_pstn.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/postgres/0006_account_settings.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/postgres/0007_sma.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/postgres/0008_carrier_registration.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../migrations/postgres/0009_tags.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../migrations/postgres/0010_number_orders.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../migrations/postgres/0011_streaming_targets.sql"),
    },
    Migration {
        version: 12,
        sql: include_str!("../migrations/postgres/0012_nodes.sql"),
    },
];

pub(crate) async fn run(pool: &AnyPool, postgres: bool) -> Result<(), StoreError> {
    let set = if postgres { POSTGRES } else { SQLITE };
    let mut tx = pool.begin().await?;
    if postgres {
        // Several nodes may start at once: one migrates, the others wait.
        sqlx::query("SELECT pg_advisory_xact_lock(7246001)")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS vc_schema (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM vc_schema")
        .fetch_all(&mut *tx)
        .await?;
    for m in set {
        if applied.iter().any(|(v,)| *v == m.version) {
            continue;
        }
        tracing::info!(version = m.version, "applying database migration");
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO vc_schema (version, applied_ms) VALUES ($1, $2)")
            .bind(m.version)
            .bind(domain::timestamp::now_millis())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
