//! [`TempSqlite`]: the SQLite backend's [`TestDatabase`], a database file in a temporary
//! directory. Other crates' tests can use it for a real store that vanishes afterwards.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::{params, Connection, OpenFlags};

use super::{IndexedResult, TestDatabase};
use crate::sqlite::{SqliteOptions, SqliteStore};
use crate::{ObjectKey, Store};

/// A SQLite database in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempSqlite {
    dir: tempfile::TempDir,
    opts: SqliteOptions,
}

impl TempSqlite {
    /// A new, empty database opened with default options.
    pub fn new() -> TempSqlite {
        TempSqlite::with_options(SqliteOptions::default())
    }

    /// A new, empty database opened with `opts`.
    pub fn with_options(opts: SqliteOptions) -> TempSqlite {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        TempSqlite { dir, opts }
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("prext.db")
    }

    /// Opens the store (blocking work on a blocking thread).
    pub async fn open_sqlite(&self) -> Arc<SqliteStore> {
        let (path, opts) = (self.path(), self.opts.clone());
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, opts))
            .await
            .unwrap_or_else(|e| panic!("open task: {e}"))
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.path().display()));
        Arc::new(store)
    }

    /// A read-only connection of the kind an analyst would use.
    pub fn analyst_connection(&self) -> Connection {
        Connection::open_with_flags(self.path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("read-only connection: {e}"))
    }
}

impl Default for TempSqlite {
    fn default() -> Self {
        TempSqlite::new()
    }
}

#[async_trait::async_trait]
impl TestDatabase for TempSqlite {
    async fn open(&self) -> Arc<dyn Store> {
        self.open_sqlite().await
    }

    async fn result_rows(&self, key: &ObjectKey) -> Vec<IndexedResult> {
        // Through the documented view, as analysts read it.
        let conn = self.analyst_connection();
        let mut stmt = conn
            .prepare(
                "SELECT idx, policy, result, subject_name FROM report_results
                 WHERE resource = ?1 AND namespace = ?2 AND report = ?3 ORDER BY idx",
            )
            .unwrap_or_else(|e| panic!("prepare: {e}"));
        let rows = stmt
            .query_map(params![key.resource, key.namespace, key.name], |r| {
                Ok(IndexedResult {
                    index: r.get(0)?,
                    policy: r.get(1)?,
                    result: r.get(2)?,
                    subject_name: r.get(3)?,
                })
            })
            .unwrap_or_else(|e| panic!("query: {e}"));
        rows.collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("rows: {e}"))
    }

    async fn stored_result_rows(&self) -> u64 {
        let n: i64 = self
            .analyst_connection()
            .query_row(
                "SELECT (SELECT count(*) FROM results) + (SELECT count(*) FROM result_numbers)",
                [],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("count results: {e}"));
        u64::try_from(n).unwrap_or_default()
    }
}
