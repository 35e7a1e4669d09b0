//! Incremental removal of a deleted report's result rows (schema version 7).
//!
//! A delete removes the report's `objects` row, appends its change and removes its first
//! [`INLINE_ROWS`] result rows in the delete's transaction; a report with more is listed in
//! `purges` by the same transaction ([`DETACH`]). The writer task then removes the rest
//! [`CHUNK_ROWS`] at a time, each chunk its own short transaction between batches
//! ([`Purger`]). A chunk locks only its `purges` row (`SKIP LOCKED`, so replicas share the
//! work) and the rows it deletes, never the counter row: other writes do not wait for it.
//! Readers never see the rows left behind: every result query joins `objects`, and object ids
//! are never reused (an identity column).

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::IsolationLevel;

use super::error::pg_error;

/// Result rows removed in the delete's own transaction.
pub(crate) const INLINE_ROWS: i32 = 2_000;

/// Result rows removed per purge transaction.
const CHUNK_ROWS: i64 = 2_000;

/// `$1`: the deleted report's id. Its first [`INLINE_ROWS`] (`$2`) results, by position.
pub(crate) const CLEAR_FIRST: &str = "DELETE FROM results WHERE object_id = $1 AND idx < $2";

/// `$1`: the deleted report's id, `$2` its cluster, `$3` the delete's revision, `$4`
/// [`INLINE_ROWS`]: listed for the purge when rows remain (sent after [`CLEAR_FIRST`]).
pub(crate) const DETACH: &str = "INSERT INTO purges (object_id, cluster, revision)
     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM results WHERE object_id = $1 AND idx >= $4)";

/// The writer task's view of the purge: whether to run a chunk after the next batch or while
/// no request waits.
#[derive(Debug)]
pub(crate) struct Purger {
    pending: bool,
}

impl Purger {
    /// Starts by looking for what an earlier run (of any replica) left.
    pub(crate) fn new() -> Purger {
        Purger { pending: true }
    }

    /// Whether a chunk may be waiting.
    pub(crate) fn pending(&self) -> bool {
        self.pending
    }

    /// After a committed batch that deleted something.
    pub(crate) fn deleted(&mut self) {
        self.pending = true;
    }

    /// Removes one chunk. A failure is logged and the purge waits for the next delete (or
    /// restart) rather than spinning on it.
    pub(crate) async fn step(&mut self, pool: &Pool, cluster: &str, timeout: Duration) {
        let outcome = tokio::time::timeout(timeout, step(pool, cluster, CHUNK_ROWS)).await;
        match outcome {
            Ok(Ok(more)) => self.pending = more,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "removing a deleted report's result rows failed; retrying after the next delete");
                self.pending = false;
            }
            Err(_) => {
                tracing::warn!(
                    "removing a deleted report's result rows timed out; retrying after the next delete"
                );
                self.pending = false;
            }
        }
    }
}

/// Removes up to `chunk` result rows of one listed report of `cluster` that no other replica
/// is purging; the report leaves `purges` with its last rows. Returns whether anything is left.
async fn step(pool: &Pool, cluster: &str, chunk: i64) -> crate::Result<bool> {
    let mut client = pool.get().await.map_err(super::error::pool_error)?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(pg_error)?;
    let row = tx
        .query_opt(
            "SELECT object_id FROM purges WHERE cluster = $1 ORDER BY object_id LIMIT 1
             FOR UPDATE SKIP LOCKED",
            &[&cluster],
        )
        .await
        .map_err(pg_error)?;
    let Some(row) = row else {
        return Ok(false);
    };
    let id: i64 = row.get(0);
    let removed = tx
        .execute(
            "DELETE FROM results WHERE ctid = ANY (ARRAY(
                 SELECT ctid FROM results WHERE object_id = $1 ORDER BY idx LIMIT $2))",
            &[&id, &chunk],
        )
        .await
        .map_err(pg_error)?;
    tx.execute(super::result_stats::PURGE_NUMBERS, &[&id])
        .await
        .map_err(pg_error)?;
    if removed < u64::try_from(chunk).unwrap_or(u64::MAX) {
        tx.execute("DELETE FROM purges WHERE object_id = $1", &[&id])
            .await
            .map_err(pg_error)?;
    }
    let more: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM purges WHERE cluster = $1)",
            &[&cluster],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    tx.commit().await.map_err(pg_error)?;
    Ok(more)
}
