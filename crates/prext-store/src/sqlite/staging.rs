//! Large creates and updates written in chunks, so that the single writer is never held by one
//! of them for long.
//!
//! A report with more than [`STAGE_ROWS`] results (whose result rows must be written: a create,
//! or an update whose results changed), or an update replacing more than `purge::INLINE_ROWS`
//! results, is not written in its batch. The writer thread takes it
//! aside ([`Stager`]) and, between batches of other writes, each step its own short
//! transaction:
//! 1. reserves a fresh id, listed in `purges` as [`purge::STAGING`]: one above every report's
//!    and every listed id, and since it is listed, no create takes it or anything below;
//! 2. writes the result rows (and their numbers) under that id, [`CHUNK_ROWS`] at a time;
//! 3. switches: one transaction of the ordinary kind (checks, revision, change) that creates
//!    the report with that id, or moves the report to it (`UPDATE objects SET id`; its old
//!    rows are then purged as a deleted report's, `purge::detach`), writes the per-report
//!    counts and takes the id off `purges`. Only then is the write answered.
//!
//! Why readers never see staged rows: they have no `objects` row until the switch, and queries
//! that read `results` alone join `objects` while anything is listed in `purges` (`purge.rs`),
//! so a result query sees the old rows or the new ones, whole. Why this keying: result rows
//! are keyed by the report's `objects.id`, and nothing else refers to that id (findings carry
//! the report's key, result pages resume after a key), so switching is one row's update, not a
//! rewrite of 50,000 rows and their indexes under a new key.
//!
//! A write refused at the switch (the key taken, a conflict: another write came first) or
//! failing changes nothing visible: its id is handed to the purge. So are ids a crash left
//! staging (`Purger::open`): the write was never acknowledged. Creates of a taken key and
//! updates from a stale revision are refused before anything is staged.

use std::collections::VecDeque;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::db_error;
use super::ops::{self, OpError};
use super::purge;
use super::result_rows;
use super::writer::{Op, Reply, Request};
use crate::write::Prepare;
use crate::{Error, Result};

/// Reports with more results than this are written in chunks.
pub(crate) const STAGE_ROWS: usize = 2_000;

/// Result rows written per staging transaction.
pub(crate) const CHUNK_ROWS: usize = 2_000;

/// Whether `op` is to be staged: a create of a free key with more than [`STAGE_ROWS`]
/// results, or an update from the current revision whose results changed, with more than
/// [`STAGE_ROWS`] results or replacing more than `purge::INLINE_ROWS` (its old rows then go
/// to the purge instead of being removed in its transaction). Anything else (a write to be
/// refused included) is written in its batch.
pub(crate) fn wanted(conn: &Connection, op: &Op) -> rusqlite::Result<bool> {
    let (obj, expected) = match op {
        Op::Create(obj) => (obj, None),
        Op::Update(obj, expected) => (obj, Some(*expected)),
        Op::Delete(..) | Op::Compact { .. } => return Ok(false),
    };
    let many = obj.results.len() > STAGE_ROWS;
    let Some(expected) = expected else {
        if !many {
            return Ok(false);
        }
        let key = &obj.head().key;
        let taken = conn
            .prepare_cached("SELECT 1 FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3")?
            .exists(params![key.resource, key.namespace, key.name])?;
        return Ok(!taken);
    };
    let key = &obj.head().key;
    let current: Option<(i64, String, Option<Vec<u8>>, i64)> = conn
        .prepare_cached(
            "SELECT o.revision, o.uid, o.results_digest,
                    (SELECT coalesce(sum(c.n), 0) FROM result_counts AS c WHERE c.object_id = o.id)
             FROM objects AS o WHERE o.resource = ?1 AND o.namespace = ?2 AND o.name = ?3",
        )?
        .query_row(params![key.resource, key.namespace, key.name], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    Ok(current.is_some_and(|(revision, uid, digest, old_rows)| {
        revision == expected
            && uid == obj.head.uid
            && digest.as_deref() != Some(&obj.head.results_digest[..])
            && (many || old_rows > purge::INLINE_ROWS)
    }))
}

/// A staged write: the request, its id once reserved and how many rows are written.
struct Job {
    request: Request,
    id: Option<i64>,
    written: usize,
}

/// A staged write's end: its answer and, when it committed, the revision it took.
pub(crate) struct Done {
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Reply>>,
    pub(crate) answer: Result<Reply>,
    pub(crate) revision: Option<i64>,
}

/// The writer thread's staged writes, one at a time in arrival order.
#[derive(Default)]
pub(crate) struct Stager {
    jobs: VecDeque<Job>,
}

impl Stager {
    /// Takes a write aside (see [`wanted`]).
    pub(crate) fn push(&mut self, request: Request) {
        self.jobs.push_back(Job {
            request,
            id: None,
            written: 0,
        });
    }

    /// Whether a staged write waits for its next step.
    pub(crate) fn busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// Runs the next step of the first staged write, one transaction; returns its end when
    /// this step was its switch, or its failure.
    pub(crate) fn step(&mut self, conn: &mut Connection) -> Option<Done> {
        let job = self.jobs.front_mut()?;
        let rows = match &job.request.op {
            Op::Create(obj) | Op::Update(obj, _) => obj.results.len(),
            Op::Delete(..) | Op::Compact { .. } => 0,
        };
        let progress = match job.id {
            None => reserve(conn).map(|id| job.id = Some(id)),
            Some(id) if job.written < rows => {
                write_chunk(conn, id, &job.request.op, job.written).map(|n| job.written += n)
            }
            Some(id) => {
                let job = self.jobs.pop_front()?;
                return Some(switch(conn, id, job.request));
            }
        };
        match progress {
            Ok(()) => None,
            Err(e) => {
                let job = self.jobs.pop_front()?;
                if let Some(id) = job.id {
                    abandon(conn, id);
                }
                tracing::warn!(error = %e, "staging a large write's result rows failed");
                Some(Done {
                    reply: job.request.reply,
                    answer: Err(db_error(e)),
                    revision: None,
                })
            }
        }
    }
}

/// Reserves an id for staged rows (see the module documentation).
fn reserve(conn: &mut Connection) -> rusqlite::Result<i64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(
        "INSERT INTO purges (object_id, revision)
         VALUES ((SELECT max(coalesce((SELECT max(id) FROM objects), 0),
                             coalesce((SELECT max(object_id) FROM purges), 0)) + 1), ?1)",
    )?
    .execute([purge::STAGING])?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(id)
}

/// Writes the next chunk of the op's result rows under `id`; returns how many.
fn write_chunk(conn: &mut Connection, id: i64, op: &Op, from: usize) -> rusqlite::Result<usize> {
    let (Op::Create(obj) | Op::Update(obj, _)) = op else {
        return Ok(0);
    };
    let chunk = &obj.results[from..(from + CHUNK_ROWS).min(obj.results.len())];
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    result_rows::insert_rows(&tx, id, obj.head.scope.uid.as_deref(), chunk)?;
    tx.commit()?;
    Ok(chunk.len())
}

/// The switch: the write itself, in one transaction with its revision (see `writer.rs`).
fn switch(conn: &mut Connection, id: i64, request: Request) -> Done {
    let Request { op, reply } = request;
    let outcome = (|| -> std::result::Result<(Reply, i64), OpError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let start: i64 = tx.query_row("SELECT revision FROM meta WHERE id = 1", [], |r| r.get(0))?;
        let revision = start + 1;
        let written = match op {
            Op::Create(obj) => ops::create(&tx, obj, revision, Some(id)),
            Op::Update(obj, expected) => ops::update(&tx, obj, expected, revision, Some(id)),
            Op::Delete(..) | Op::Compact { .. } => Err(OpError::Rejected(Error::internal(
                "only creates and updates are staged",
            ))),
        };
        let (object, _) = written?;
        tx.execute("UPDATE meta SET revision = ?1 WHERE id = 1", [revision])?;
        tx.commit()?;
        Ok((Reply::Object(object), revision))
    })();
    match outcome {
        Ok((reply_value, revision)) => Done {
            reply,
            answer: Ok(reply_value),
            revision: Some(revision),
        },
        Err(e) => {
            // Rolled back (the transaction was dropped): the staged rows go to the purge.
            abandon(conn, id);
            let answer = match e {
                OpError::Rejected(e) | OpError::Storage(e) => Err(e),
            };
            Done {
                reply,
                answer,
                revision: None,
            }
        }
    }
}

/// Hands the rows staged under `id` to the purge. A failure leaves them listed as staging,
/// which the next start hands over (`Purger::open`).
fn abandon(conn: &Connection, id: i64) {
    if let Err(e) = conn
        .prepare_cached("UPDATE purges SET revision = 0 WHERE object_id = ?1")
        .and_then(|mut s| s.execute([id]))
    {
        tracing::warn!(error = %e, id, "cannot hand staged result rows to the purge");
    }
}

/// Takes the id off `purges` at the switch, in its transaction: the rows are the report's.
pub(crate) fn switched(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM purges WHERE object_id = ?1")?
        .execute([id])?;
    Ok(())
}
