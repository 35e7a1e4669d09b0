//! The findings indexer thread (see [`crate::findings_index`]): follows the change log and
//! records findings off the write path.
//!
//! It runs on a connection of its own. Each step reads up to [`INDEX_BATCH`] changes above
//! the cursor (fewer once their bodies pass [`INDEX_BATCH_BYTES`]) in a read snapshot and
//! derives their findings from the bodies row by row (JSON parsing, the expensive part,
//! holds no lock; a change whose findings the writer left in memory is not read at all, see
//! `hints.rs`), then applies them in one `IMMEDIATE` transaction that
//! also moves the cursor, so the single writer is held only for the SQL. It wakes on the
//! revisions the writer publishes, publishes the cursor it reached on `indexed` (which findings
//! reads wait on), and stops once the writer has stopped and every change is applied.
//!
//! Woken by a write, it first lets changes gather for up to [`GATHER`] (less if a findings read
//! is waiting, see [`Waiting`], or [`GATHER_CHANGES`] are pending). Each of its commits takes
//! the write lock the writer needs and makes the writer's connection drop its whole page cache
//! (SQLite resets a connection's cache when another connection has committed), so under a
//! stream of writes one commit per batch cost the writer a tenth of its time re-reading pages;
//! one per [`GATHER`] does not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::watch;

use super::body::{self, Body};
use super::hints::Hints;
use super::release::Asked;
use super::{db_error, findings};
use crate::findings_index::{action, Action, ResultsFlag, INDEX_BATCH, INDEX_BATCH_BYTES};
use crate::{ObjectKey, Result};

/// How long the indexer lets changes gather once a write woke it.
const GATHER: Duration = Duration::from_millis(50);
/// Pending changes that end the gathering at once.
const GATHER_CHANGES: i64 = 1_000;

/// The findings reads waiting for the indexer: while there is one, it does not gather.
#[derive(Debug, Clone, Default)]
pub(crate) struct Waiting(Arc<WaitingInner>);

#[derive(Debug, Default)]
struct WaitingInner {
    reads: AtomicUsize,
    indexer: OnceLock<Thread>,
}

impl Waiting {
    /// Counts a read as waiting until the guard is dropped, and wakes a gathering indexer.
    pub(crate) fn enter(&self) -> WaitGuard {
        self.0.reads.fetch_add(1, Ordering::AcqRel);
        if let Some(thread) = self.0.indexer.get() {
            thread.unpark();
        }
        WaitGuard(self.clone())
    }

    fn any(&self) -> bool {
        self.0.reads.load(Ordering::Acquire) > 0
    }
}

/// A waiting read, counted until dropped.
#[derive(Debug)]
pub(crate) struct WaitGuard(Waiting);

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0 .0.reads.fetch_sub(1, Ordering::AcqRel);
    }
}

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
        release: Asked,
        hints: Hints,
        waiting: Waiting,
    ) -> std::io::Result<Indexer> {
        let waits = waiting.clone();
        let thread = std::thread::Builder::new()
            .name("prext-sqlite-indexer".into())
            .spawn(move || run(conn, published, &indexed, release, &hints, &waits))?;
        let _ = waiting.0.indexer.set(thread.thread().clone());
        Ok(Indexer { thread })
    }

    /// Waits for the thread to apply the last changes and stop (after the writer stopped).
    pub(crate) fn join(self) {
        let _ = self.thread.join();
    }
}

fn run(
    mut conn: Connection,
    mut published: watch::Receiver<i64>,
    indexed: &watch::Sender<i64>,
    mut release: Asked,
    hints: &Hints,
    waiting: &Waiting,
) {
    let mut stopping = false;
    loop {
        // Seen before the step: a revision published during it wakes the next wait.
        published.borrow_and_update();
        match step(&mut conn, INDEX_BATCH, INDEX_BATCH_BYTES, hints) {
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
        if release.wait(&conn, published.changed()).is_err() {
            // The writer has stopped: apply what it committed last, then stop.
            stopping = true;
        } else {
            gather(&published, *indexed.borrow(), waiting);
        }
    }
}

/// Waits for up to [`GATHER`], until a findings read waits or [`GATHER_CHANGES`] changes
/// above `cursor` are published.
fn gather(published: &watch::Receiver<i64>, cursor: i64, waiting: &Waiting) {
    let until = Instant::now() + GATHER;
    loop {
        if waiting.any() || published.has_changed().is_err() {
            return;
        }
        if *published.borrow() - cursor >= GATHER_CHANGES {
            return;
        }
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::park_timeout(until - now);
    }
}

/// One change above the cursor and what it means for findings.
struct Pending {
    revision: i64,
    key: ObjectKey,
    at: i64,
    action: Action,
}

/// The body a change wrote, when the indexer needs it (a write whose rows make findings).
fn written_body(conn: &Connection, revision: i64) -> rusqlite::Result<Option<Body>> {
    conn.prepare_cached(
        "SELECT coalesce(c.body, o.body)
         FROM changes c
         LEFT JOIN objects o ON c.body IS NULL AND o.resource = c.resource
              AND o.namespace = c.namespace AND o.name = c.name AND o.revision = c.revision
         WHERE c.revision = ?1",
    )?
    .query_row([revision], |r| r.get(0))
}

/// Reads up to `limit` changes in `(cursor, target]`, fewer once the bodies read pass
/// `bytes` ([`INDEX_BATCH_BYTES`]), and derives their actions row by row: the findings a
/// write left in `hints` are taken as they are; else a body is read and parsed when the
/// action needs it, and dropped at once, so a step holds one body and the findings of the
/// batch, not every body of it. Returns them and whether the batch was cut short (more may
/// follow).
fn pending(
    conn: &Connection,
    cursor: i64,
    target: i64,
    limit: usize,
    bytes: usize,
    hints: Option<&Hints>,
) -> Result<(Vec<Pending>, bool)> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT revision, event, resource, namespace, name, written_at, results_flag
             FROM changes
             WHERE revision > ?1 AND revision <= ?2
             ORDER BY revision LIMIT ?3",
        )
        .map_err(db_error)?;
    let mut rows = stmt
        .query(params![cursor, target, i64::try_from(limit).unwrap_or(i64::MAX)])
        .map_err(db_error)?;
    let (mut out, mut read) = (Vec::new(), 0usize);
    while let Some(r) = rows.next().map_err(db_error)? {
        let key = ObjectKey::new(
            r.get::<_, String>(2).map_err(db_error)?,
            r.get::<_, String>(3).map_err(db_error)?,
            r.get::<_, String>(4).map_err(db_error)?,
        );
        let revision: i64 = r.get(0).map_err(db_error)?;
        let event =
            r.get_ref(1).map_err(db_error)?.as_str().map_err(|e| {
                crate::Error::internal(format!("a change of {} has no event: {e}", key.resource))
            })?;
        let flag = r.get::<_, Option<i64>>(6).map_err(db_error)?;
        let needs_body = flag == Some(ResultsFlag::Failing.as_i64()) && event != "DELETED";
        let hinted = match hints {
            Some(hints) if needs_body => hints.take(revision, &key),
            _ => None,
        };
        let action = match hinted {
            Some(carried) => Action::Carry(carried),
            None => {
                let body = if needs_body {
                    body::optional_string(written_body(conn, revision).map_err(db_error)?).map_err(|e| {
                        crate::Error::internal(format!("a stored body of {}: {e}", key.resource))
                    })?
                } else {
                    None
                };
                read += body.as_ref().map_or(0, String::len);
                action(&key.resource, event, flag, body.as_deref())?
            }
        };
        out.push(Pending {
            revision,
            action,
            at: r
                .get::<_, Option<i64>>(5)
                .map_err(db_error)?
                .unwrap_or_else(crate::findings::now_ms),
            key,
        });
        if out.len() >= limit || read >= bytes {
            return Ok((out, true));
        }
    }
    Ok((out, false))
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

/// One step: applies up to `limit` changes above the cursor, fewer once their bodies pass
/// `bytes`, with the findings the writer left in `hints`. Returns the cursor reached and
/// whether it is the newest committed revision.
pub(crate) fn step(conn: &mut Connection, limit: usize, bytes: usize, hints: &Hints) -> Result<(i64, bool)> {
    let (from, target, changes, more) = {
        let tx = conn.transaction().map_err(db_error)?;
        let from = cursor(&tx).map_err(db_error)?;
        let target: i64 = tx
            .query_row("SELECT revision FROM meta WHERE id = 1", [], |r| r.get(0))
            .map_err(db_error)?;
        if target <= from {
            return Ok((from, true));
        }
        let (changes, more) = pending(&tx, from, target, limit, bytes, Some(hints))?;
        (from, target, changes, more)
    };
    let done = !more;
    let reached = match (more, changes.last()) {
        (true, Some(last)) => last.revision,
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
    // Those of writes that kept their rows were never asked for.
    hints.forget_through(reached);
    Ok((reached, done))
}

/// Applies every change up to `target` in the caller's transaction and moves the cursor to
/// `to` (a restore, before it drops the change history and jumps the revision).
pub(crate) fn finish(conn: &Connection, target: i64, to: i64) -> Result<()> {
    let mut from = cursor(conn).map_err(db_error)?;
    while from < target {
        let (changes, more) = pending(conn, from, target, INDEX_BATCH, INDEX_BATCH_BYTES, None)?;
        apply(conn, &changes).map_err(db_error)?;
        from = match changes.last() {
            Some(last) if more => last.revision,
            _ => target,
        };
    }
    set_cursor(conn, to).map_err(db_error)
}
