//! The findings indexer thread (see [`crate::findings_index`]): follows the change log and
//! records findings off the write path.
//!
//! It runs on a connection of its own. Each step reads up to [`INDEX_BATCH`] changes above
//! the cursor in a read snapshot and derives their findings from the bodies (JSON parsing,
//! the expensive part, holds no lock), then applies them in one `IMMEDIATE` transaction that
//! also moves the cursor, so the single writer is held only for the SQL. It wakes on every
//! revision the writer publishes, publishes the cursor it reached on `indexed` (which findings
//! reads wait on), and stops once the writer has stopped and every change is applied.

use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::watch;

use super::{db_error, findings};
use crate::findings_index::{action, Action, INDEX_BATCH};
use crate::{ObjectKey, Result};

/// A running indexer thread.
#[derive(Debug)]
pub(crate) struct Indexer {
    thread: JoinHandle<()>,
}

impl Indexer {
    /// Starts the thread on `conn` (a read-write connection), following the writer's
    /// `published` revisions. It ends when the writer's sender is dropped.
    pub(crate) fn start(
        conn: Connection,
        published: watch::Receiver<i64>,
        indexed: watch::Sender<i64>,
    ) -> std::io::Result<Indexer> {
        let thread = std::thread::Builder::new()
            .name("prext-sqlite-indexer".into())
            .spawn(move || run(conn, published, &indexed))?;
        Ok(Indexer { thread })
    }

    /// Waits for the thread to apply the last changes and stop (after the writer stopped).
    pub(crate) fn join(self) {
        let _ = self.thread.join();
    }
}

fn run(mut conn: Connection, mut published: watch::Receiver<i64>, indexed: &watch::Sender<i64>) {
    let mut stopping = false;
    loop {
        // Seen before the step: a revision published during it wakes the next wait.
        published.borrow_and_update();
        match step(&mut conn, INDEX_BATCH) {
            Ok((cursor, done)) => {
                indexed.send_replace(cursor);
                if !done {
                    continue;
                }
                if stopping {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the findings indexer failed; retrying");
                if stopping {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        }
        if futures::executor::block_on(published.changed()).is_err() {
            // The writer has stopped: apply what it committed last, then stop.
            stopping = true;
        }
    }
}

/// One change above the cursor and what it means for findings.
struct Pending {
    revision: i64,
    key: ObjectKey,
    at: i64,
    action: Action,
}

/// Reads up to `limit` changes in `(cursor, target]` and derives their actions.
fn pending(conn: &Connection, cursor: i64, target: i64, limit: usize) -> Result<Vec<Pending>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT c.revision, c.event, c.resource, c.namespace, c.name, c.written_at,
                    c.results_flag,
                    CASE WHEN c.results_flag = 2 AND c.event <> 'DELETED'
                         THEN coalesce(c.body, o.body) END
             FROM changes c
             LEFT JOIN objects o ON c.body IS NULL AND o.resource = c.resource
                  AND o.namespace = c.namespace AND o.name = c.name AND o.revision = c.revision
             WHERE c.revision > ?1 AND c.revision <= ?2
             ORDER BY c.revision LIMIT ?3",
        )
        .map_err(db_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![cursor, target, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                ObjectKey::new(
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ),
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    rows.into_iter()
        .map(|(revision, event, key, at, flag, body)| {
            Ok(Pending {
                revision,
                action: action(&key.resource, &event, flag, body.as_deref())?,
                at: at.unwrap_or_else(crate::findings::now_ms),
                key,
            })
        })
        .collect()
}

/// Applies the changes in order.
fn apply(conn: &Connection, changes: &[Pending]) -> rusqlite::Result<()> {
    for p in changes {
        match &p.action {
            Action::Seen => findings::seen(conn, &p.key, p.at, p.revision)?,
            Action::Carry(now) => findings::record(conn, &p.key, now, p.at, p.revision)?,
        }
    }
    Ok(())
}

fn cursor(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT revision FROM findings_cursor WHERE id = 1", [], |r| {
        r.get(0)
    })
}

fn set_cursor(conn: &Connection, revision: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE findings_cursor SET revision = ?1 WHERE id = 1",
        [revision],
    )
    .map(drop)
}

/// One step: applies up to `limit` changes above the cursor. Returns the cursor reached and
/// whether it is the newest committed revision.
pub(crate) fn step(conn: &mut Connection, limit: usize) -> Result<(i64, bool)> {
    let (from, target, changes) = {
        let tx = conn.transaction().map_err(db_error)?;
        let from = cursor(&tx).map_err(db_error)?;
        let target: i64 = tx
            .query_row("SELECT revision FROM meta WHERE id = 1", [], |r| r.get(0))
            .map_err(db_error)?;
        if target <= from {
            return Ok((from, true));
        }
        let changes = pending(&tx, from, target, limit)?;
        (from, target, changes)
    };
    let done = changes.len() < limit;
    let reached = match (done, changes.last()) {
        (false, Some(last)) => last.revision,
        _ => target,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let now = cursor(&tx).map_err(db_error)?;
    if now != from {
        // Moved under us (a restore): read again.
        return Ok((now, false));
    }
    apply(&tx, &changes).map_err(db_error)?;
    set_cursor(&tx, reached).map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok((reached, done))
}

/// Applies every change up to `target` in the caller's transaction and moves the cursor to
/// `to` (a restore, before it drops the change history and jumps the revision).
pub(crate) fn finish(conn: &Connection, target: i64, to: i64) -> Result<()> {
    let mut from = cursor(conn).map_err(db_error)?;
    while from < target {
        let changes = pending(conn, from, target, INDEX_BATCH)?;
        apply(conn, &changes).map_err(db_error)?;
        from = match changes.last() {
            Some(last) if changes.len() == INDEX_BATCH => last.revision,
            _ => target,
        };
    }
    set_cursor(conn, to).map_err(db_error)
}
