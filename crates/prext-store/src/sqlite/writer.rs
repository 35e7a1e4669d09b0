//! The writer thread: the only connection that writes, with group commit.
//!
//! Requests arrive on a bounded channel. The thread takes the first one, opens a
//! `BEGIN IMMEDIATE` transaction, and keeps taking whatever is already queued (up to
//! [`Limits::ops`] requests or [`Limits::bytes`] of bodies). A successful request takes the
//! next revision; a refused one (conflict, not found, ...) consumes none, so revisions stay
//! gap-free. The transaction then commits once, and the batch goes to the syncer thread
//! (`syncer.rs`), which makes it durable with one fsync (shared with any batch committed
//! meanwhile), publishes the new revision and only then answers every request: an
//! acknowledged write is durable. The writer does not wait for that fsync: it goes on with
//! the next batch.
//!
//! Requests run without savepoints of their own. That is sound because of the invariant
//! [`ops`] is built around: a request is refused only *before* its first write (its checks
//! run first, and a create's one refusal, the taken key, is the failure of a single `INSERT`,
//! which SQLite's statement atomicity undoes). Once a request has written anything, the only
//! way it can fail is a storage error ([`OpError::Storage`]), which abandons the whole batch.
//! So a refused request leaves nothing behind and its neighbours commit untouched, without
//! the cost of a savepoint (and its sub-journal) per request.

use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc;

use super::checkpointer::Checkpointer;
use super::db_error;
use super::hints::Hints;
use super::ops::{self, OpError};
use super::prepared::Prepared;
use super::purge::Purger;
use super::release::Asked;
use super::staging::{self, Stager};
use super::statistics::Statistics;
use super::syncer::{Answers, Syncer};
pub(crate) use crate::write::{Limits, Reply};
use crate::{Error, Result};

/// A write to perform (the shared [`crate::write::Op`] of SQLite's prepared object).
pub(crate) type Op = crate::write::Op<Prepared>;
/// A queued write and where to send its answer.
pub(crate) type Request = crate::write::Request<Prepared>;

/// The threads the writer works with.
pub(crate) struct Helpers {
    /// Makes batches durable, publishes their revisions and answers them.
    pub(crate) syncer: Syncer,
    pub(crate) checkpointer: Checkpointer,
    /// Asks for the page cache to be emptied (`release.rs`).
    pub(crate) release: Asked,
}

/// Runs the writer until every sender is dropped and the queue is drained, then lets the syncer answer what it holds, stops the checkpointer,
/// checkpoints the WAL and closes the connection.
pub(crate) fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Request>,
    limits: Limits,
    helpers: Helpers,
    hints: &Hints,
) {
    let Helpers {
        syncer,
        checkpointer,
        mut release,
    } = helpers;
    let mut statistics = Statistics::open(&conn);
    let mut purger = Purger::open(&conn);
    let mut stager = Stager::default();
    loop {
        // A large write's rows are written and a deleted report's removed a chunk at a time:
        // while no request waits, and after every batch (see `staging.rs`, `purge.rs`).
        let first = if purger.pending() || stager.busy() {
            match rx.try_recv() {
                Ok(first) => first,
                Err(mpsc::error::TryRecvError::Empty) => {
                    chunk(&mut conn, &mut stager, &mut purger, &syncer, &mut statistics);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    // Staged writes are finished: their callers wait (a purge may wait for
                    // the next start).
                    while stager.busy() {
                        chunk(&mut conn, &mut stager, &mut purger, &syncer, &mut statistics);
                    }
                    break;
                }
            }
        } else {
            // Waiting: the moment to empty the page cache when asked (`release.rs`).
            match release.wait(&conn, rx.recv()) {
                Some(first) => first,
                None => break,
            }
        };
        let started = Instant::now();
        let (answers, revision) = batch(&mut conn, first, &mut rx, limits, &mut stager, hints);
        if revision.is_some() {
            checkpointer.hold(false);
        } else if answers.iter().any(|(_, a)| matches!(a, Err(Error::DiskFull(_)))) {
            // The space the disk reserve frees is for the deletes' WAL frames first.
            checkpointer.hold(true);
        }
        let n = answers.len();
        syncer.answer(revision, answers);
        if let Some(revision) = revision {
            statistics.committed(&conn, revision);
            purger.committed(&conn);
        }
        chunk(&mut conn, &mut stager, &mut purger, &syncer, &mut statistics);
        tracing::trace!(ops = n, elapsed = ?started.elapsed(), ?revision, "write batch");
    }
    syncer.stop();
    checkpointer.stop();
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "WAL checkpoint on close failed");
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the writer connection failed");
    }
}

/// One step of the work done in chunks between batches: of the first staged write (answered
/// when it is its switch), else of the purge.
fn chunk(
    conn: &mut Connection,
    stager: &mut Stager,
    purger: &mut Purger,
    syncer: &Syncer,
    statistics: &mut Statistics,
) {
    if stager.busy() {
        if let Some(done) = stager.step(conn) {
            syncer.answer(done.revision, vec![(done.reply, done.answer)]);
            if let Some(revision) = done.revision {
                statistics.committed(conn, revision);
            }
            purger.committed(conn);
        }
    } else if purger.pending() {
        purger.step(conn);
    }
}

/// Runs one transaction starting with `first`. Returns the answers and, if the transaction
/// committed new revisions, the newest one; once it committed, the findings of its writes are
/// left in `hints` for the indexer (see `hints.rs`).
fn batch(
    conn: &mut Connection,
    first: Request,
    rx: &mut mpsc::Receiver<Request>,
    limits: Limits,
    stager: &mut Stager,
    hints: &Hints,
) -> (Answers, Option<i64>) {
    let mut answers: Answers = Vec::new();
    let mut carried = Vec::new();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            answers.push((first.reply, Err(db_error(e))));
            return (answers, None);
        }
    };
    let start = match tx
        .prepare_cached("SELECT revision FROM meta WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
    {
        Ok(rev) => rev,
        Err(e) => {
            answers.push((first.reply, Err(db_error(e))));
            return (answers, None);
        }
    };
    let mut revision = start;
    let mut bytes = 0usize;
    let mut next = Some(first);
    let mut failure: Option<Error> = None;
    while let Some(req) = next.take() {
        // A large write is taken aside, to be written in chunks (an error deciding it leaves
        // it here).
        if staging::wanted(&tx, &req.op).unwrap_or(false) {
            stager.push(req);
            if answers.len() < limits.ops && bytes < limits.bytes {
                next = rx.try_recv().ok();
            }
            continue;
        }
        let mut op = req.op;
        let hint = match &mut op {
            Op::Create(obj) | Op::Update(obj, _) if !obj.carried.is_empty() => {
                Some((obj.head.key.clone(), std::mem::take(&mut obj.carried)))
            }
            _ => None,
        };
        match apply(&tx, op, revision + 1) {
            Ok((reply, size, consumed)) => {
                if consumed {
                    revision += 1;
                    if let Some((key, found)) = hint {
                        carried.push((revision, key, found));
                    }
                }
                bytes = bytes.saturating_add(size);
                answers.push((req.reply, Ok(reply)));
            }
            Err(OpError::Rejected(e)) => answers.push((req.reply, Err(e))),
            Err(OpError::Storage(e)) => {
                answers.push((req.reply, Err(duplicate(&e))));
                failure = Some(e);
                break;
            }
        }
        if answers.len() < limits.ops && bytes < limits.bytes {
            next = rx.try_recv().ok();
        }
    }
    let committed = match failure {
        Some(e) => Err(e),
        None if revision == start => tx.commit().map_err(db_error),
        None => tx
            .prepare_cached("UPDATE meta SET revision = ?1 WHERE id = 1")
            .and_then(|mut s| s.execute([revision]))
            .and_then(|_| tx.commit())
            .map_err(db_error),
    };
    match committed {
        Ok(()) => {
            for (revision, key, found) in carried {
                hints.put(revision, key, found);
            }
            (answers, (revision > start).then_some(revision))
        }
        Err(e) => {
            // Dropping the transaction (if still open) rolled it back: nothing of this batch
            // happened, so every request, even one that had succeeded, fails.
            tracing::warn!(error = %e, ops = answers.len(), "write batch rolled back");
            let answers = answers
                .into_iter()
                .map(|(reply, answer)| {
                    let answer = match answer {
                        Ok(_) => Err(duplicate(&e)),
                        Err(refused) => Err(refused),
                    };
                    (reply, answer)
                })
                .collect();
            (answers, None)
        }
    }
}

/// Runs one op in the batch's transaction. Returns its reply, the bytes it wrote and whether
/// it consumed the offered revision. No savepoint: a refused op has written nothing (see the
/// module documentation), and a storage error abandons the whole transaction.
fn apply(tx: &rusqlite::Transaction<'_>, op: Op, revision: i64) -> Result<(Reply, usize, bool), OpError> {
    match op {
        Op::Create(obj) => ops::create(tx, obj, revision, None).map(|(o, n)| (Reply::Object(o), n, true)),
        Op::Update(obj, expected) => {
            ops::update(tx, obj, expected, revision, None).map(|(o, n)| (Reply::Object(o), n, true))
        }
        Op::Delete(key, pre) => {
            ops::delete(tx, key, &pre, revision).map(|(o, n)| (Reply::Object(o), n, true))
        }
        Op::Compact { keep, batch } => {
            ops::compact_step(tx, keep, batch).map(|(point, done)| (Reply::Compacted(point, done), 0, false))
        }
    }
}

/// A copy of a storage error, to answer every request of a failed batch.
fn duplicate(e: &Error) -> Error {
    match e {
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        Error::Internal(m) => Error::Internal(m.clone()),
        Error::DiskFull(m) => Error::DiskFull(m.clone()),
        other => Error::internal(other.to_string()),
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
