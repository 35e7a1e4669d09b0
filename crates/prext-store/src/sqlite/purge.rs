//! Incremental removal of a deleted report's result rows.
//!
//! A delete removes the report's `objects` row, its per-report counts and appends its change in
//! the delete's transaction, so every reader sees the delete at once. A report with more than
//! [`INLINE_ROWS`] results leaves its `results` and `result_numbers` rows behind, listed in
//! `purges` in that same transaction; the writer thread then removes them [`CHUNK_ROWS`] at a
//! time, each chunk its own short transaction between batches of other writes ([`Purger`]).
//! `purges` is durable, so a restart finishes what a crash interrupted.
//!
//! Why readers never see the rows left behind: result queries either join `objects` (whose
//! row is gone) or, when no report column is needed, read `results` alone; those check
//! [`pending`] in their read transaction and join `objects` while anything awaits a purge.
//! Why a new report never meets them: while an id is listed in `purges`, `create` takes an id
//! above it (`ops::create`), so no new row shares the leftover rows' `object_id`.
//!
//! `purges` also lists, with a negative revision ([`STAGING`]), the id under which a large
//! write's result rows are being staged (`staging.rs`): readers treat those rows as they treat
//! a purge's, the purge leaves them alone, and a restart hands them to the purge
//! ([`Purger::open`]): the write they belonged to was never acknowledged.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// Reports with at most this many results lose them in the delete's own transaction.
pub(crate) const INLINE_ROWS: i64 = 2_000;

/// Result rows (with their numeric properties) removed per purge transaction.
pub(crate) const CHUNK_ROWS: i64 = 2_000;

/// The `purges.revision` of an id whose rows are being staged, not purged.
pub(crate) const STAGING: i64 = -1;

/// Removes the result rows of the report `id`, deleted at `revision` (run in the delete's
/// transaction, before its `objects` row goes): at once when they are few, else by listing the
/// report in `purges` for the writer to remove later.
pub(crate) fn detach(conn: &Connection, id: i64, revision: i64) -> rusqlite::Result<()> {
    let rows: i64 = conn
        .prepare_cached("SELECT coalesce(sum(n), 0) FROM result_counts WHERE object_id = ?1")?
        .query_row([id], |r| r.get(0))?;
    if rows <= INLINE_ROWS {
        for sql in [
            "DELETE FROM results WHERE object_id = ?1",
            "DELETE FROM result_numbers WHERE object_id = ?1",
        ] {
            conn.prepare_cached(sql)?.execute([id])?;
        }
        return Ok(());
    }
    conn.prepare_cached("INSERT INTO purges (object_id, revision) VALUES (?1, ?2)")?
        .execute(params![id, revision])?;
    Ok(())
}

/// Whether some deleted report's rows await their purge (read in the caller's transaction).
pub(crate) fn pending(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM purges)")?
        .query_row([], |r| r.get(0))
}

/// Whether some rows await the purge itself (not a staging id).
fn purgeable(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM purges WHERE revision >= 0)")?
        .query_row([], |r| r.get(0))
}

/// Removes up to `chunk` result rows (and their numeric properties) of the first report in
/// `purges`, in its own transaction; the report leaves `purges` with its last rows. Returns
/// whether anything is left to purge.
pub(crate) fn step(conn: &mut Connection, chunk: i64) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(id) = tx
        .prepare_cached("SELECT object_id FROM purges WHERE revision >= 0 ORDER BY object_id LIMIT 1")?
        .query_row([], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(false);
    };
    // The first position beyond this chunk; none when the chunk takes the rest.
    let beyond: Option<i64> = tx
        .prepare_cached("SELECT idx FROM results WHERE object_id = ?1 ORDER BY idx LIMIT 1 OFFSET ?2")?
        .query_row(params![id, chunk.max(1)], |r| r.get(0))
        .optional()?;
    match beyond {
        Some(bound) => {
            for sql in [
                "DELETE FROM results WHERE object_id = ?1 AND idx < ?2",
                "DELETE FROM result_numbers WHERE object_id = ?1 AND idx < ?2",
            ] {
                tx.prepare_cached(sql)?.execute(params![id, bound])?;
            }
        }
        None => {
            for sql in [
                "DELETE FROM results WHERE object_id = ?1",
                "DELETE FROM result_numbers WHERE object_id = ?1",
                "DELETE FROM purges WHERE object_id = ?1",
            ] {
                tx.prepare_cached(sql)?.execute([id])?;
            }
        }
    }
    let more = purgeable(&tx)?;
    tx.commit()?;
    Ok(more)
}

/// The writer thread's view of the purge: whether to run a chunk after the next batch or
/// while no request waits.
#[derive(Debug)]
pub(crate) struct Purger {
    pending: bool,
}

impl Purger {
    /// Starts with what an earlier run left in `purges`, rows staged for a write that never
    /// switched to them included.
    pub(crate) fn open(conn: &Connection) -> Purger {
        if let Err(e) = conn
            .prepare_cached("UPDATE purges SET revision = 0 WHERE revision < 0")
            .and_then(|mut s| s.execute([]))
        {
            tracing::warn!(error = %e, "cannot hand staged result rows to the purge");
        }
        let pending = purgeable(conn).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the pending purges");
            false
        });
        Purger { pending }
    }

    /// Whether a chunk is waiting to be removed.
    pub(crate) fn pending(&self) -> bool {
        self.pending
    }

    /// After a committed batch: a delete in it may have listed a report.
    pub(crate) fn committed(&mut self, conn: &Connection) {
        if !self.pending {
            self.pending = purgeable(conn).unwrap_or(false);
        }
    }

    /// Removes one chunk. A failure (a full disk, say) is logged and the purge waits for the
    /// next committed batch to try again, rather than spinning.
    pub(crate) fn step(&mut self, conn: &mut Connection) {
        match step(conn, CHUNK_ROWS) {
            Ok(more) => self.pending = more,
            Err(e) => {
                tracing::warn!(error = %e, "removing a deleted report's result rows failed; retrying after the next write");
                self.pending = false;
            }
        }
    }
}
