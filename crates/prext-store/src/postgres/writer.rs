//! The writer task: one per replica, the only code that writes, with group commit.
//!
//! Requests arrive on a bounded channel. The task takes what is queued (up to
//! [`Limits::ops`] requests, stopping before a second write of a key already in the batch),
//! begins a READ COMMITTED transaction and locks its cluster's counter row (`SELECT … FOR
//! UPDATE`): from then on no other replica can write this cluster until the commit, so revisions
//! are handed out and become visible in commit order everywhere.
//!
//! The fast path costs four round trips whatever the batch size: `BEGIN`; the counter lock
//! with the current rows of every key of the batch (one statement); every accepted write (see
//! [`ops::Write`]), the counter update and `NOTIFY prext_changes, '<cluster>:<revision>'` in one
//! pipelined flight; `COMMIT`. A refused request (conflict, not found, ...) is decided from the
//! current rows before anything is sent and takes no revision, so revisions stay gap-free.
//! Writes stop at [`Limits::bytes`] of bodies; the rest waits for the next batch. If the
//! database refuses the data of one write (a bad value), the flight fails as a whole: the
//! transaction is rolled back and the batch run again on the careful path, one write at a time,
//! each in its own savepoint, so that only the bad request is refused. Compaction steps always
//! take the careful path. Only after the commit is the revision published and every request
//! answered: an acknowledged write is durable.
//!
//! A batch whose transaction failed before `COMMIT` was sent (a stale connection, a
//! serialization failure or deadlock) is retried as a whole; once `COMMIT` is sent, a lost
//! connection leaves the outcome unknown and every request of the batch gets
//! [`Error::Unavailable`] (the caller's retry then sees the write or not, as with etcd).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool, Transaction};
use tokio::sync::{mpsc, watch};
use tokio_postgres::IsolationLevel;

use super::error::{duplicate, is_connection_error, is_retryable_state, pg_error, pool_error, timed_out};
use super::ops::{self, Current, OpError};
use super::prepared::Prepared;
use super::publish;
use super::purge::Purger;
use super::staging::Stager;
use super::statistics::Statistics;
pub(crate) use crate::write::{Limits, Reply};
use crate::{Error, ObjectKey, Result};

/// The channel every replica listens on; the payload is `<cluster>:<revision>`.
pub(crate) const CHANNEL: &str = "prext_changes";

/// A write to perform (the shared [`crate::write::Op`] of PostgreSQL's prepared object).
pub(crate) type Op = crate::write::Op<Prepared>;
/// A queued write and where to send its answer.
pub(crate) type Request = crate::write::Request<Prepared>;

/// Checks an op against its object's current row (not for compaction).
pub(super) fn plan(op: &Op, cur: Option<Current>, revision: i64) -> Result<ops::Write<'_>, OpError> {
    match op {
        Op::Create(obj) => ops::plan_create(obj, cur, revision),
        Op::Update(obj, expected) => ops::plan_update(obj, *expected, cur, revision),
        Op::Delete(key, pre) => ops::plan_delete(key, pre, cur, revision),
        Op::Compact { .. } => Err(OpError::Rejected(Error::Internal(
            "a compaction step has no object to write".into(),
        ))),
    }
}

/// What the writer task needs.
pub(crate) struct Writer {
    pub(crate) pool: Pool,
    pub(crate) cluster: String,
    pub(crate) limits: Limits,
    pub(crate) published: Arc<watch::Sender<i64>>,
    /// The longest a batch may take on the server before the client gives up on it.
    pub(crate) batch_timeout: Duration,
    /// The rows of `objects` and `results` when the store was opened (`statistics.rs`).
    pub(crate) rows_at_open: u64,
    /// Rows added by committed writes (batches and staged writes) that the statistics
    /// schedule has not counted yet.
    pub(crate) grown: AtomicU64,
}

/// Retries of a batch that failed before its commit.
pub(super) const RETRIES: usize = 3;

/// How a batch failed.
pub(super) struct Failure {
    pub(super) error: Error,
    /// Nothing was committed and running the batch again may work.
    pub(super) retry: bool,
    /// The connection is unusable (lost, or abandoned mid-statement): do not pool it again.
    pub(super) discard: bool,
    /// The database refused one write's data: run the batch again on the careful path.
    pub(super) careful: bool,
}

impl Failure {
    /// A failure before `COMMIT` was sent.
    pub(super) fn before_commit(e: tokio_postgres::Error) -> Failure {
        let lost = is_connection_error(&e);
        let retry = lost || e.code().is_some_and(is_retryable_state);
        Failure {
            error: pg_error(e),
            retry,
            discard: lost,
            careful: false,
        }
    }

    /// A failure of the fast path's flight of writes.
    ///
    /// The flight's futures are polled in request order, so the first error seen may be an
    /// earlier request's later statement answering "current transaction is aborted" (25P02)
    /// rather than the bad data that aborted it: that too sends the batch down the careful
    /// path, which finds the request at fault.
    fn in_flight(e: tokio_postgres::Error) -> Failure {
        let aborted = e
            .code()
            .is_some_and(|c| *c == tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION);
        if ops::is_refused(&e) || aborted {
            return Failure {
                error: pg_error(e),
                retry: true,
                discard: false,
                careful: true,
            };
        }
        Failure::before_commit(e)
    }
}

/// A committed batch: one answer per request it took, and the newest revision if it moved.
struct Done {
    answers: Vec<Result<Reply>>,
    revision: Option<i64>,
    /// Whether a write left result rows to the purge (a delete, a replaced report).
    purge: bool,
    /// The rows the batch added (`ops::Write::grown`).
    grown: u64,
}

/// Takes the next batch: `pending` first, then whatever is queued, up to `limit` requests and
/// stopping before a key already in the batch (the fast path reads every key once, up front)
/// and around compaction steps. What it does not take stays at the front of `pending`.
fn take_batch(
    pending: &mut VecDeque<Request>,
    rx: &mut mpsc::Receiver<Request>,
    limit: usize,
) -> Vec<Request> {
    let mut batch: Vec<Request> = Vec::new();
    let mut keys: HashSet<ObjectKey> = HashSet::new();
    while batch.len() < limit {
        let Some(next) = pending.pop_front().or_else(|| rx.try_recv().ok()) else {
            break;
        };
        let fits = match next.op.key() {
            None => batch.is_empty(),
            Some(_) if batch.first().is_some_and(|b| b.op.key().is_none()) => false,
            Some((key, _)) => !keys.contains(key),
        };
        if !fits {
            pending.push_front(next);
            break;
        }
        if let Some((key, _)) = next.op.key() {
            keys.insert(key.clone());
        }
        batch.push(next);
    }
    batch
}

/// Runs until every sender is dropped and the queue is drained.
pub(crate) async fn run(writer: Writer, mut rx: mpsc::Receiver<Request>) {
    let writer = Arc::new(writer);
    let mut stager = Stager::new();
    let mut pending: VecDeque<Request> = VecDeque::new();
    let mut statistics = Statistics::new(writer.rows_at_open);
    let mut purger = Purger::new();
    loop {
        if pending.is_empty() {
            // A deleted report's rows are removed a chunk at a time: while no request waits,
            // and after every batch (see `purge.rs`).
            let next = match purger.pending() {
                true => match rx.try_recv() {
                    Ok(first) => Some(first),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        purger
                            .step(&writer.pool, &writer.cluster, writer.batch_timeout)
                            .await;
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                },
                false => tokio::select! {
                    next = rx.recv() => next,
                    () = stager.replaced() => {
                        purger.deleted();
                        continue;
                    }
                },
            };
            match next {
                Some(first) => pending.push_back(first),
                None => break,
            }
        }
        let started = Instant::now();
        let mut requests = take_batch(&mut pending, &mut rx, writer.limits.ops);
        // Large creates and updates run beside the batches (see `staging.rs`).
        stager.take(&writer, &mut requests).await;
        if requests.is_empty() {
            continue;
        }
        let mut careful = requests.iter().any(|r| r.op.key().is_none());
        let mut attempt = 0;
        let outcome = loop {
            match writer.attempt(&requests, careful).await {
                Ok(done) => break Ok(done),
                Err(f) if f.retry && attempt < RETRIES => {
                    attempt += 1;
                    careful |= f.careful;
                    tracing::debug!(error = %f.error, attempt, careful, "retrying write batch");
                    if !f.careful {
                        tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                    }
                }
                Err(f) => break Err(f.error),
            }
        };
        match outcome {
            Ok(done) => {
                if let Some(revision) = done.revision {
                    publish(&writer.published, revision);
                    writer.grown.fetch_add(done.grown, Ordering::AcqRel);
                    statistics.committed(&writer.pool, &writer.grown);
                    if done.purge {
                        purger.deleted();
                    }
                }
                let n = done.answers.len();
                // Requests beyond the byte limit wait for the next batch, ahead of the queue.
                for req in requests.drain(n..).rev() {
                    pending.push_front(req);
                }
                for (req, answer) in requests.into_iter().zip(done.answers) {
                    // The caller may have gone away; the write stands regardless.
                    let _ = req.reply.send(answer);
                }
                tracing::trace!(ops = n, careful, elapsed = ?started.elapsed(), revision = ?done.revision, "write batch");
            }
            Err(e) => {
                tracing::warn!(error = %e, ops = requests.len(), "write batch failed");
                for req in requests {
                    let _ = req.reply.send(Err(duplicate(&e)));
                }
            }
        }
        if stager.take_replaced() {
            purger.deleted();
        }
        if purger.pending() {
            purger
                .step(&writer.pool, &writer.cluster, writer.batch_timeout)
                .await;
        }
    }
    stager.finish().await;
}

/// Begins a write's READ COMMITTED transaction on `client`.
pub(super) async fn begin(client: &mut Object) -> Result<Transaction<'_>, Failure> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(Failure::before_commit)
}

impl Writer {
    /// A pooled connection for a write. A failure to connect is not retried: the pool already
    /// waited its timeouts.
    pub(super) async fn client(&self) -> Result<Object, Failure> {
        self.pool.get().await.map_err(|e| Failure {
            error: pool_error(e),
            retry: false,
            discard: false,
            careful: false,
        })
    }

    /// One try at committing `requests` (or, on the fast path, as many as the byte limit lets).
    async fn attempt(&self, requests: &[Request], careful: bool) -> Result<Done, Failure> {
        let mut client = self.client().await?;
        let work = async {
            let tx = begin(&mut client).await?;
            let done = if careful {
                self.careful(&tx, requests).await?
            } else {
                self.fast(&tx, requests).await?
            };
            commit(tx).await?;
            Ok(done)
        };
        let outcome = tokio::time::timeout(self.batch_timeout, work).await;
        let outcome = outcome.unwrap_or_else(|_| {
            Err(Failure {
                error: timed_out("a write transaction"),
                retry: false,
                discard: true,
                careful: false,
            })
        });
        if let Err(f) = &outcome {
            if f.discard {
                // Gone or in an unknown state: close it rather than hand it out again.
                drop(Object::take(client));
            }
        }
        outcome
    }

    /// Locks the counter row; returns the newest revision and the compaction point.
    pub(super) async fn lock(&self, tx: &Transaction<'_>) -> Result<(i64, i64), Failure> {
        let cluster = self.cluster.as_str();
        let stmt = tx
            .prepare_cached("SELECT revision, compacted_revision FROM meta WHERE cluster = $1 FOR UPDATE")
            .await
            .map_err(Failure::before_commit)?;
        let row = tx
            .query_opt(&stmt, &[&cluster])
            .await
            .map_err(Failure::before_commit)?;
        let Some(row) = row else {
            return Err(Failure {
                error: Error::internal(format!("the counter row of cluster {cluster:?} is missing")),
                retry: false,
                discard: false,
                careful: false,
            });
        };
        let start: i64 = row.try_get(0).map_err(Failure::before_commit)?;
        let compacted: i64 = row.try_get(1).map_err(Failure::before_commit)?;
        Ok((start, compacted))
    }

    /// Stores the newest revision and queues the notification (delivered at commit).
    pub(super) async fn bump(
        &self,
        tx: &Transaction<'_>,
        revision: i64,
    ) -> Result<(), tokio_postgres::Error> {
        let cluster = self.cluster.as_str();
        let payload = format!("{cluster}:{revision}");
        let (bump, notify) = futures::try_join!(
            tx.prepare_cached("UPDATE meta SET revision = $2 WHERE cluster = $1"),
            tx.prepare_cached("SELECT pg_notify($1, $2)")
        )?;
        futures::try_join!(async { tx.execute(&bump, &[&cluster, &revision]).await }, async {
            tx.execute(&notify, &[&CHANNEL, &payload]).await
        })?;
        Ok(())
    }

    /// The fast path: every current row in one statement, every write in one flight.
    async fn fast(&self, tx: &Transaction<'_>, requests: &[Request]) -> Result<Done, Failure> {
        let cluster = self.cluster.as_str();
        let keys: Vec<(&ObjectKey, bool)> = requests.iter().filter_map(|r| r.op.key()).collect();
        let ((), (start, _), currents, st) = futures::try_join!(
            async {
                // Every statement here probes keys: a generic plan is always right, and
                // re-planning the batch's lookup on every run cost more than running it.
                tx.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")
                    .await
                    .map_err(Failure::before_commit)
            },
            self.lock(tx),
            async {
                ops::currents(tx, cluster, &keys)
                    .await
                    .map_err(Failure::before_commit)
            },
            async { ops::Statements::prepare(tx).await.map_err(Failure::before_commit) }
        )?;
        let mut revision = start;
        let mut bytes = 0usize;
        let mut planned: Vec<Result<ops::Write<'_>, Error>> = Vec::with_capacity(requests.len());
        for (req, cur) in requests.iter().zip(currents) {
            if bytes >= self.limits.bytes {
                break;
            }
            match plan(&req.op, cur, revision + 1) {
                Ok(write) => {
                    revision += 1;
                    bytes = bytes.saturating_add(write.size());
                    planned.push(Ok(write));
                }
                Err(OpError::Rejected(e)) => planned.push(Err(e)),
                Err(OpError::Storage(e)) => return Err(Failure::before_commit(e)),
            }
        }
        let purge = planned
            .iter()
            .any(|p| p.as_ref().is_ok_and(|w| w.leaves_rows_to_purge()));
        let grown = planned
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .map(|w| w.grown())
            .sum();
        if revision > start {
            let writes = futures::future::try_join_all(
                planned
                    .iter()
                    .filter_map(|p| p.as_ref().ok())
                    .map(|w| w.execute(tx, cluster, &st)),
            );
            futures::try_join!(writes, self.bump(tx, revision)).map_err(Failure::in_flight)?;
        }
        let answers = planned
            .into_iter()
            .map(|p| p.map(|w| Reply::Object(w.into_written().0)))
            .collect();
        Ok(Done {
            answers,
            revision: (revision > start).then_some(revision),
            purge,
            grown,
        })
    }

    /// The careful path: one request at a time, each write in its own savepoint.
    async fn careful(&self, tx: &Transaction<'_>, requests: &[Request]) -> Result<Done, Failure> {
        let cluster = self.cluster.as_str();
        let ((start, mut compacted), st) = futures::try_join!(self.lock(tx), async {
            ops::Statements::prepare(tx).await.map_err(Failure::before_commit)
        })?;
        let mut revision = start;
        let mut purge = false;
        let mut grown = 0;
        let mut answers = Vec::with_capacity(requests.len());
        for req in requests {
            let outcome = match (&req.op, req.op.key()) {
                (Op::Compact { keep, batch }, _) => {
                    ops::compact_step(tx, cluster, revision, compacted, *keep, *batch)
                        .await
                        .map(|(point, done)| {
                            compacted = point;
                            Reply::Compacted(point, done)
                        })
                }
                (op, Some((key, body))) => match ops::current(tx, cluster, key, body).await {
                    Ok(cur) => match plan(op, cur, revision + 1) {
                        Ok(write) => ops::in_savepoint(tx, write.execute(tx, cluster, &st))
                            .await
                            .map(|()| {
                                revision += 1;
                                purge |= write.leaves_rows_to_purge();
                                grown += write.grown();
                                Reply::Object(write.into_written().0)
                            }),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(OpError::Storage(e)),
                },
                (_, None) => unreachable!("only compaction steps have no key"),
            };
            match outcome {
                Ok(reply) => answers.push(Ok(reply)),
                Err(OpError::Rejected(e)) => answers.push(Err(e)),
                Err(OpError::Storage(e)) => return Err(Failure::before_commit(e)),
            }
        }
        if revision > start {
            self.bump(tx, revision).await.map_err(Failure::before_commit)?;
        }
        Ok(Done {
            answers,
            revision: (revision > start).then_some(revision),
            purge,
            grown,
        })
    }
}

/// Commits; a lost connection at this point leaves the outcome unknown.
pub(super) async fn commit(tx: Transaction<'_>) -> Result<(), Failure> {
    tx.commit().await.map_err(|e| {
        // A refusal from the server means it rolled back; a lost connection means the
        // outcome is unknown, and the batch must not be run twice.
        let lost = is_connection_error(&e);
        let retry = !lost && e.code().is_some_and(is_retryable_state);
        let error = if lost {
            Error::unavailable(format!(
                "postgres: the connection was lost while committing; the write may or may not have \
                 happened ({})",
                pg_error(e)
            ))
        } else {
            pg_error(e)
        };
        Failure {
            error,
            retry,
            discard: lost,
            careful: false,
        }
    })
}
