//! Versioned schema migrations of the PostgreSQL backend, safe when several replicas start at
//! once.
//!
//! All pending migrations run in one transaction that first takes a transaction-scoped
//! advisory lock ([`MIGRATION_LOCK`]): a second replica starting at the same moment waits for
//! the first to commit, then finds nothing left to do. PostgreSQL's DDL is transactional, so a
//! failed migration leaves no half-built schema behind. A database written by a newer prext
//! (an unknown version) is refused rather than guessed at.

use std::time::Duration;

use tokio_postgres::Client;

use super::error::pg_error;
use crate::{Error, Result};

/// One schema step.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in version order. Append only: never edit a released step.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "result_queries",
        sql: include_str!("migrations/0002_result_queries.sql"),
    },
    Migration {
        version: 3,
        name: "write_path",
        sql: include_str!("migrations/0003_write_path.sql"),
    },
    Migration {
        version: 4,
        name: "findings",
        sql: include_str!("migrations/0004_findings.sql"),
    },
    Migration {
        version: 5,
        name: "change_bodies_once",
        sql: include_str!("migrations/0005_change_bodies_once.sql"),
    },
    Migration {
        version: 6,
        name: "findings_indexer",
        sql: include_str!("migrations/0006_findings_indexer.sql"),
    },
    Migration {
        version: 7,
        name: "incremental_deletes",
        sql: include_str!("migrations/0007_incremental_deletes.sql"),
    },
    Migration {
        version: 8,
        name: "result_filter_indexes",
        sql: include_str!("migrations/0008_result_filter_indexes.sql"),
    },
    Migration {
        version: 9,
        name: "result_stats",
        sql: include_str!("migrations/0009_result_stats.sql"),
    },
    Migration {
        version: 10,
        name: "write_cost",
        sql: include_str!("migrations/0010_write_cost.sql"),
    },
    Migration {
        version: 11,
        name: "covering_result_indexes",
        sql: include_str!("migrations/0011_covering_result_indexes.sql"),
    },
    Migration {
        version: 12,
        name: "covering_subject_index",
        sql: include_str!("migrations/0012_covering_subject_index.sql"),
    },
    Migration {
        version: 13,
        name: "numbers_result_severity",
        sql: include_str!("migrations/0013_numbers_result_severity.sql"),
    },
    Migration {
        version: 14,
        name: "lean_rows",
        sql: include_str!("migrations/0014_lean_rows.sql"),
    },
];

/// The advisory lock key serializing migrations (ASCII "prext" and the lock's purpose).
pub(crate) const MIGRATION_LOCK: i64 = 0x7072_6578_7400_0001;

/// The oldest PostgreSQL prext runs on (`server_version_num`): 12 brought `plan_cache_mode`,
/// which the writer sets, and generated/identity columns as used here.
const MIN_SERVER_VERSION: i32 = 120_000;

/// The schema version this build writes.
pub(crate) fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Checks the database can hold prext's data (UTF-8) and brings the schema up to date; then
/// makes sure `cluster` has its counter row. Returns the schema version.
pub(crate) async fn migrate(client: &mut Client, cluster: &str, timeout: Duration) -> Result<i32> {
    let encoding: String = client
        .query_one("SHOW server_encoding", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(pg_error)?;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::integer", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(pg_error)?;
    if version < MIN_SERVER_VERSION {
        return Err(Error::internal(format!(
            "PostgreSQL {} is too old: prext needs PostgreSQL 12 or later",
            version / 10_000
        )));
    }
    if !encoding.eq_ignore_ascii_case("UTF8") {
        return Err(Error::internal(format!(
            "the database encoding is {encoding}; prext needs a UTF8 database \
             (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)"
        )));
    }

    let tx = client.transaction().await.map_err(pg_error)?;
    // Whole milliseconds: an integer, never user text, so formatting it in is safe.
    let ms = timeout.as_millis().max(1);
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}"
    ))
    .await
    .map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );
         COMMENT ON TABLE schema_migrations IS 'prext: the applied schema versions';",
    )
    .await
    .map_err(pg_error)?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(pg_error)?;
    let latest = latest_version();
    if current > latest {
        return Err(Error::internal(format!(
            "the database schema is at version {current}, newer than this prext supports ({latest}); \
             upgrade prext"
        )));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql).await.map_err(|e| {
            Error::internal(format!(
                "schema migration {} ({}) failed: {}",
                m.version,
                m.name,
                pg_error(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(pg_error)?;
        tracing::info!(version = m.version, name = m.name, "applied schema migration");
    }
    tx.execute(
        "INSERT INTO meta (cluster) VALUES ($1) ON CONFLICT (cluster) DO NOTHING",
        &[&cluster],
    )
    .await
    .map_err(pg_error)?;
    // The findings indexer of a new cluster starts at its revision.
    tx.execute(
        "INSERT INTO findings_cursor (cluster, revision) SELECT cluster, revision FROM meta
         WHERE cluster = $1 ON CONFLICT (cluster) DO NOTHING",
        &[&cluster],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_start_at_one() {
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version + 1 == w[1].version));
        assert_eq!(latest_version(), 14);
    }

    #[test]
    fn every_key_column_compares_bytewise() {
        // Lists are ordered by (namespace, name) in byte order, whatever the database's
        // collation: every key column must say COLLATE "C".
        let sql = MIGRATIONS[0].sql;
        for column in ["cluster", "resource", "namespace", "name"] {
            let declarations: Vec<&str> = sql
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with(&format!("{column} ")) && l.contains(" text"))
                .collect();
            assert!(!declarations.is_empty(), "{column} is declared");
            for d in declarations {
                assert!(d.contains("COLLATE \"C\""), "{d}");
            }
        }
    }
}
