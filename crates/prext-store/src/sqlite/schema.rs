//! Connection settings and the versioned schema migrations of the SQLite backend.
//!
//! Every migration runs once, in order, inside one `BEGIN IMMEDIATE` transaction together with
//! its row in `schema_migrations`; opening an up-to-date database changes nothing. A database
//! written by a newer prext (an unknown version) is refused rather than guessed at.

use std::path::Path;
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::db_error;
use crate::{Error, Result};

/// One schema step.
struct Migration {
    version: i64,
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
        name: "cheaper_result_rows",
        sql: include_str!("migrations/0003_cheaper_result_rows.sql"),
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
        name: "results_rowid",
        sql: include_str!("migrations/0006_results_rowid.sql"),
    },
    Migration {
        version: 7,
        name: "findings_indexer",
        sql: include_str!("migrations/0007_findings_indexer.sql"),
    },
    Migration {
        version: 8,
        name: "incremental_deletes",
        sql: include_str!("migrations/0008_incremental_deletes.sql"),
    },
    Migration {
        version: 9,
        name: "subject_name_first",
        sql: include_str!("migrations/0009_subject_name_first.sql"),
    },
    Migration {
        version: 10,
        name: "subject_result_severity",
        sql: include_str!("migrations/0010_subject_result_severity.sql"),
    },
    Migration {
        version: 11,
        name: "numbers_result_severity",
        sql: include_str!("migrations/0011_numbers_result_severity.sql"),
    },
    Migration {
        version: 12,
        name: "compressed_bodies",
        sql: include_str!("migrations/0012_compressed_bodies.sql"),
    },
    Migration {
        version: 13,
        name: "subject_uid_once",
        sql: include_str!("migrations/0013_subject_uid_once.sql"),
    },
];

/// The schema version this build writes.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Bounds the WAL file after checkpoints (bytes).
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// WAL pages at which the writer checkpoints at commit. The checkpointer thread
/// (`checkpointer.rs`) copies pages back meanwhile, so this checkpoint finds little left to do;
/// it is what resets the WAL under continuous writes, keeping it at about this size.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 8192;

/// Opens the read-write connection of the writer thread (and of the findings indexer): WAL,
/// `synchronous=NORMAL` (a commit does not wait for the disk; the writer's syncer thread
/// fsyncs the WAL before any write is acknowledged, so an acknowledged write survives power
/// loss, see `syncer.rs`; the indexer's work is redone from the change log if a power cut
/// takes it back), foreign keys on, and temporary storage in memory
/// (statements that may abort midway, such as a multi-row `DELETE`, keep a statement journal,
/// which would otherwise be a temp file written page by page).
pub(crate) fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(db_error)?;
    conn.busy_timeout(busy_timeout).map_err(db_error)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(db_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::internal(format!(
            "cannot switch {} to WAL mode (journal_mode is {mode})",
            path.display()
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
         PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}; \
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
    ))
    .map_err(db_error)?;
    Ok(conn)
}

/// Opens the connection of the checkpointer thread (it writes only the database file).
pub(crate) fn open_checkpointer(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(db_error)?;
    conn.busy_timeout(busy_timeout).map_err(db_error)?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")
        .map_err(db_error)?;
    Ok(conn)
}

/// Opens a read-only connection for lists and point reads.
pub(crate) fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(db_error)?;
    conn.busy_timeout(busy_timeout).map_err(db_error)?;
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA foreign_keys = ON;")
        .map_err(db_error)?;
    register_functions(&conn)?;
    Ok(conn)
}

/// SQL functions the selector lowering (see `select.rs`) and the one-pass summaries
/// (`results/onepass.rs`) rely on.
pub(crate) fn register_functions(conn: &Connection) -> Result<()> {
    super::results::register_tally(conn).map_err(db_error)?;
    // `prext_label_int(v)`: the label value as an integer the way apimachinery parses it for
    // `>`/`<` (strconv.ParseInt base 10), NULL when it is not one.
    conn.create_scalar_function(
        "prext_label_int",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let v = ctx.get_raw(0);
            Ok(v.as_str().ok().and_then(|s| s.parse::<i64>().ok()))
        },
    )
    .map_err(db_error)
}

/// Brings the schema up to date. Returns the version the database is at.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64> {
    migrate_to(conn, latest_version())
}

/// Applies the migrations up to version `target` (tests upgrade from older versions).
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<i64> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             -- Applied schema versions; the highest is the database's version.
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             -- When it was applied (UTC, RFC 3339).
             applied_at TEXT NOT NULL
         );",
    )
    .map_err(db_error)?;
    let current: i64 = tx
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()
        .map_err(db_error)?
        .flatten()
        .unwrap_or(0);
    let latest = latest_version();
    if current > latest {
        return Err(Error::internal(format!(
            "the database schema is at version {current}, newer than this prext supports ({latest}); \
             upgrade prext"
        )));
    }
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target)
    {
        tx.execute_batch(m.sql).map_err(|e| {
            Error::internal(format!("schema migration {} ({}) failed: {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            rusqlite::params![m.version, m.name],
        )
        .map_err(db_error)?;
        tracing::info!(version = m.version, name = m.name, "applied schema migration");
    }
    tx.commit().map_err(db_error)?;
    Ok(target.max(current))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_idempotent() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        let mut conn = Connection::open_in_memory().expect("memory db");
        assert_eq!(migrate(&mut conn).expect("first"), latest_version());
        assert_eq!(migrate(&mut conn).expect("second"), latest_version());
        let applied: i64 = conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .expect("count");
        assert_eq!(applied, i64::try_from(MIGRATIONS.len()).expect("small"));
        let meta: (i64, i64) = conn
            .query_row("SELECT revision, compacted_revision FROM meta", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("meta row");
        assert_eq!(meta, (0, 0));
    }

    /// The rows of a query, each as text, to compare a database before and after a migration.
    pub(crate) fn rows(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).expect(sql);
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map(|v| v.join("|"))
            })
            .expect("query");
        rows.collect::<rusqlite::Result<_>>().expect("rows")
    }

    #[test]
    fn version_3_databases_upgrade_to_a_rowid_results_table() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prext.db");
        let mut conn = open_writer(&path, Duration::from_secs(5)).expect("open");
        assert_eq!(migrate_to(&mut conn, 3).expect("version 3"), 3);
        conn.execute_batch(
            r#"INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body)
               VALUES (1, 'policyreports.wgpolicyk8s.io', 'a', 'r1', 'u1', 1, '2024-01-01T00:00:00Z', '{}'),
                      (2, 'policyreports.wgpolicyk8s.io', 'b', 'r2', 'u2', 2, '2024-01-01T00:00:00Z', '{}');
               INSERT INTO results (object_id, idx, policy, rule, result, severity, source, message,
                                    properties, resources, subject_kind, subject_name, timestamp)
               VALUES (1, 0, 'p1', 'r', 'fail', 'high', 'trivy', printf('%.*c', 100000, 'm'), '{"score":"9.8"}', '[]', 'Pod', 'a', 5),
                      (1, 1, 'p2', 'r', 'pass', NULL, 'trivy', 'ok', '{}', '[]', 'Pod', 'b', NULL),
                      (2, 0, 'p1', 'r', 'fail', 'high', NULL, NULL, '{}', '[{"kind":"Pod"}]', 'Pod', 'c', 6);
               INSERT INTO result_numbers (object_id, idx, key, value) VALUES (1, 0, 'score', 9.8);
               UPDATE meta SET revision = 2;"#,
        )
        .expect("version 3 rows");
        let queries = [
            "SELECT * FROM results ORDER BY object_id, idx",
            "SELECT * FROM report_results ORDER BY namespace, report, idx",
            "SELECT * FROM reports_v1 ORDER BY namespace, name",
            "SELECT * FROM results_v1 ORDER BY namespace, report, idx",
        ];
        let before: Vec<Vec<String>> = queries.iter().map(|q| rows(&conn, q)).collect();
        assert_eq!(migrate_to(&mut conn, 6).expect("upgrade to 6"), 6);
        let after: Vec<Vec<String>> = queries.iter().map(|q| rows(&conn, q)).collect();
        assert_eq!(
            before, after,
            "every row and view reads the same after the upgrade"
        );
        let sql: String = conn
            .query_row("SELECT sql FROM sqlite_master WHERE name = 'results'", [], |r| {
                r.get(0)
            })
            .expect("results table");
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'results'",
                [],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(indexes, 5, "the primary key and the four secondary indexes");
        // (object_id, idx) is still unique, and at version 6 rows still go with their report
        // (version 8 leaves them to the purge: `version_8_result_rows_lose_only_their_cascade`).
        assert!(conn
            .execute(
                "INSERT INTO results (object_id, idx, properties, resources) VALUES (2, 0, '{}', '[]')",
                []
            )
            .is_err());
        conn.execute("DELETE FROM objects WHERE id = 1", [])
            .expect("delete");
        let left: i64 = conn
            .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 1);
    }

    #[test]
    fn version_2_databases_upgrade_in_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prext.db");
        let mut conn = open_writer(&path, Duration::from_secs(5)).expect("open");
        assert_eq!(migrate_to(&mut conn, 2).expect("version 2"), 2);
        // Written the way version 2 wrote: result rows, with triggers deriving the rest.
        conn.execute_batch(
            r#"INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body)
               VALUES (1, 'policyreports.wgpolicyk8s.io', 'a', 'r1', 'u1', 1, '2024-01-01T00:00:00Z', '{}'),
                      (2, 'policyreports.wgpolicyk8s.io', 'b', 'r2', 'u2', 2, '2024-01-01T00:00:00Z', '{}');
               INSERT INTO results (object_id, idx, policy, rule, result, severity, source, properties,
                                    resources, subject_kind, subject_name, timestamp)
               VALUES (1, 0, 'p1', 'r', 'fail', 'high', 'trivy', '{"score":"9.8","pkg":"x"}', '[]', 'Pod', 'a', 5),
                      (1, 1, 'p2', 'r', 'pass', NULL, 'trivy', '{}', '[]', 'Pod', 'b', NULL),
                      (2, 0, 'p1', 'r', 'fail', 'high', NULL, '{"score":" 7 ","n":"08"}', '[{"kind":"Pod"}]', 'Pod', 'c', 6);
               UPDATE meta SET revision = 2;"#,
        )
        .expect("version 2 rows");
        let queries = [
            "SELECT * FROM results ORDER BY object_id, idx",
            "SELECT * FROM result_numbers ORDER BY object_id, idx, key",
            "SELECT * FROM result_counts ORDER BY object_id, result, severity, source",
            "SELECT * FROM report_results ORDER BY namespace, report, idx",
            "SELECT * FROM reports_v1 ORDER BY namespace, name",
            "SELECT * FROM results_v1 ORDER BY namespace, report, idx",
        ];
        let before: Vec<Vec<String>> = queries.iter().map(|q| rows(&conn, q)).collect();
        assert_eq!(before[1].len(), 2, "9.8 and 7");
        assert_eq!(migrate_to(&mut conn, 6).expect("upgrade to 6"), 6);
        let after: Vec<Vec<String>> = queries.iter().map(|q| rows(&conn, q)).collect();
        assert_eq!(
            before, after,
            "every row and view reads the same after the upgrade"
        );
        let digests: i64 = conn
            .query_row("SELECT count(results_digest) FROM objects", [], |r| r.get(0))
            .expect("digests");
        assert_eq!(digests, 0, "unknown until the next write");
        // At version 6 the derived rows still go with their report (see version 8 below).
        conn.execute("DELETE FROM objects WHERE id = 1", [])
            .expect("delete");
        let left: (i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM results), (SELECT count(*) FROM result_numbers),
                        (SELECT count(*) FROM result_counts)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("counts");
        assert_eq!(left, (1, 1, 1));
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(check, "ok");
        let fk: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))
            .expect("fk check");
        assert_eq!(fk, 0);
    }

    #[test]
    fn version_3_change_logs_upgrade_in_place() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        assert_eq!(migrate_to(&mut conn, 3).expect("version 3"), 3);
        // Written the way version 3 wrote: every change with its body. `a` was created and
        // updated, `b` created and deleted.
        conn.execute_batch(
            r#"INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body)
               VALUES (1, 'policyreports.wgpolicyk8s.io', 'ns', 'a', 'u1', 2, '2024-01-01T00:00:00Z', '{"v":2}');
               INSERT INTO changes (revision, event, resource, namespace, name, body, labels, prev_labels)
               VALUES (1, 'ADDED', 'policyreports.wgpolicyk8s.io', 'ns', 'a', '{"v":1}', '{}', NULL),
                      (2, 'MODIFIED', 'policyreports.wgpolicyk8s.io', 'ns', 'a', '{"v":2}', '{}', '{}'),
                      (3, 'ADDED', 'policyreports.wgpolicyk8s.io', 'ns', 'b', '{"b":3}', '{}', NULL),
                      (4, 'DELETED', 'policyreports.wgpolicyk8s.io', 'ns', 'b', '{"b":4}', '{}', '{}');
               UPDATE meta SET revision = 4;"#,
        )
        .expect("version 3 rows");
        let replay = |conn: &mut Connection| -> Vec<(i64, String)> {
            super::super::reader::changes(conn, 0, 100)
                .expect("changes")
                .into_iter()
                .map(|c| (c.revision, String::from_utf8(c.body.to_vec()).expect("utf-8")))
                .collect()
        };
        let before = replay(&mut conn);
        assert_eq!(migrate(&mut conn).expect("upgrade"), latest_version());
        assert_eq!(
            replay(&mut conn),
            before,
            "the history replays the same after the upgrade"
        );
        assert_eq!(
            rows(
                &conn,
                "SELECT revision, body IS NULL FROM changes ORDER BY revision"
            ),
            [
                "Integer(1)|Integer(0)",
                "Integer(2)|Integer(1)",
                "Integer(3)|Integer(0)",
                "Integer(4)|Integer(0)"
            ],
            "only the current object's body loses its copy"
        );
    }

    /// The tables a table's foreign keys point at.
    fn foreign_keys(conn: &Connection, table: &str) -> Vec<String> {
        rows(
            conn,
            &format!("SELECT \"table\" FROM pragma_foreign_key_list('{table}')"),
        )
    }

    #[test]
    fn version_8_result_rows_lose_only_their_cascade() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prext.db");
        let mut conn = open_writer(&path, Duration::from_secs(5)).expect("open");
        assert_eq!(migrate_to(&mut conn, 7).expect("version 7"), 7);
        conn.execute_batch(
            r#"INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body)
               VALUES (1, 'policyreports.wgpolicyk8s.io', 'a', 'r1', 'u1', 1, '2024-01-01T00:00:00Z', '{}'),
                      (2, 'policyreports.wgpolicyk8s.io', 'b', 'r2', 'u2', 2, '2024-01-01T00:00:00Z', '{}');
               INSERT INTO results (object_id, idx, policy, rule, result, severity, source, properties, resources)
               VALUES (1, 0, 'p1', 'r', 'fail', 'high', 'trivy', '{"score":"9.8"}', '[]'),
                      (2, 0, 'p1', 'r', 'pass', NULL, NULL, '{}', '[]');
               INSERT INTO result_numbers (object_id, idx, key, value) VALUES (1, 0, 'score', 9.8);
               INSERT INTO result_counts (object_id, result, severity, source, n) VALUES (1, 'fail', 'high', 'trivy', 1);
               UPDATE meta SET revision = 2;"#,
        )
        .expect("version 6 rows");
        assert_eq!(foreign_keys(&conn, "results"), ["Text(\"objects\")"]);
        let queries = [
            "SELECT * FROM results ORDER BY object_id, idx",
            "SELECT * FROM result_numbers ORDER BY object_id, idx, key",
            "SELECT * FROM results_v1 ORDER BY namespace, report, idx",
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name",
        ];
        let before: Vec<Vec<String>> = queries.iter().map(|q| rows(&conn, q)).collect();
        assert_eq!(migrate_to(&mut conn, 8).expect("upgrade"), 8);
        let after: Vec<Vec<String>> = queries.iter().map(|q| rows(&conn, q)).collect();
        assert_eq!(before, after, "rows, views and indexes are untouched");
        assert!(foreign_keys(&conn, "results").is_empty());
        assert!(foreign_keys(&conn, "result_numbers").is_empty());
        assert_eq!(
            foreign_keys(&conn, "result_counts"),
            ["Text(\"objects\")"],
            "the per-report counts still go with their report"
        );
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(check, "ok");
        // The rows outlive their report until the writer purges them; reads join `objects`.
        conn.execute("DELETE FROM objects WHERE id = 1", [])
            .expect("delete");
        let left: (i64, i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM results), (SELECT count(*) FROM result_numbers),
                        (SELECT count(*) FROM result_counts), (SELECT count(*) FROM results_v1)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("counts");
        assert_eq!(left, (2, 1, 0, 1));
        // A fresh connection reads the edited schema too.
        drop(conn);
        let conn = open_reader(&path, Duration::from_secs(5)).expect("reopen");
        assert!(foreign_keys(&conn, "results").is_empty());
        let purges: i64 = conn
            .query_row("SELECT count(*) FROM purges", [], |r| r.get(0))
            .expect("purges table");
        assert_eq!(purges, 0);
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        migrate(&mut conn).expect("migrate");
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?1, 'future', '2100-01-01T00:00:00Z')",
            [latest_version() + 1],
        )
        .expect("insert");
        let err = migrate(&mut conn).expect_err("newer schema");
        assert!(err.to_string().contains("newer than this prext"), "{err}");
    }

    #[test]
    fn label_int_follows_parse_int() {
        let conn = Connection::open_in_memory().expect("memory db");
        register_functions(&conn).expect("register");
        let eval = |v: &str| -> Option<i64> {
            conn.query_row("SELECT prext_label_int(?1)", [v], |r| r.get(0))
                .expect("query")
        };
        assert_eq!(eval("42"), Some(42));
        assert_eq!(eval("007"), Some(7));
        assert_eq!(eval("-3"), Some(-3));
        assert_eq!(eval("abc"), None);
        assert_eq!(eval(""), None);
        assert_eq!(eval("99999999999999999999"), None);
        let null: Option<i64> = conn
            .query_row("SELECT prext_label_int(NULL)", [], |r| r.get(0))
            .expect("query");
        assert_eq!(null, None);
    }
}
