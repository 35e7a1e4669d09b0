//! The writer task: one per replica, the only code that writes, with group commit.
//!
//! Requests arrive on a bounded channel. The task takes the first one, begins a READ COMMITTED
//! transaction and locks its cluster's counter row (`SELECT … FOR UPDATE`): from then on no
//! other replica can write this cluster until the commit, so revisions are handed out and
//! become visible in commit order everywhere. It keeps taking whatever is already queued (up
//! to [`Limits::ops`] requests or [`Limits::bytes`] of bodies), each checked and written in its
//! own savepoint: a refused request takes no revision, so revisions stay gap-free. At the end
//! it stores the newest revision in the counter row, sends `NOTIFY prext_changes,
//! '<cluster>:<revision>'` (delivered at commit), commits once, publishes the revision and only
//! then answers every request: an acknowledged write is durable.
//!
//! A batch whose transaction failed before `COMMIT` was sent (a stale connection, a
//! serialization failure or deadlock) is retried as a whole; once `COMMIT` is sent, a lost
//! connection leaves the outcome unknown and every request of the batch gets
//! [`Error::Unavailable`] (the caller's retry then sees the write or not, as with etcd).

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool, Transaction};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::IsolationLevel;

use super::error::{duplicate, is_connection_error, is_retryable_state, pg_error, pool_error, timed_out};
use super::ops::{self, OpError};
use super::publish;
use crate::{Error, ObjectKey, ObjectWrite, Preconditions, Result, StoredObject};

/// The channel every replica listens on; the payload is `<cluster>:<revision>`.
pub(crate) const CHANNEL: &str = "prext_changes";

/// A write to perform.
#[derive(Debug)]
pub(crate) enum Op {
    Create(ObjectWrite),
    Update(ObjectWrite, i64),
    Delete(ObjectKey, Preconditions),
    /// One compaction step (see [`ops::compact_step`]).
    Compact {
        keep: i64,
        batch: usize,
    },
}

/// The answer to an [`Op`].
#[derive(Debug)]
pub(crate) enum Reply {
    Object(StoredObject),
    /// The compaction point reached, and whether compaction is complete.
    Compacted(i64, bool),
}

/// A queued write and where to send its answer.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Reply>>,
}

/// How much one transaction may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) ops: usize,
    pub(crate) bytes: usize,
}

/// What the writer task needs.
pub(crate) struct Writer {
    pub(crate) pool: Pool,
    pub(crate) cluster: String,
    pub(crate) limits: Limits,
    pub(crate) published: Arc<watch::Sender<i64>>,
    /// The longest a batch may take on the server before the client gives up on it.
    pub(crate) batch_timeout: Duration,
}

/// Retries of a batch that failed before its commit.
const RETRIES: usize = 3;

/// How a batch failed.
struct Failure {
    error: Error,
    /// Nothing was committed and running the batch again may work.
    retry: bool,
    /// The connection is unusable (lost, or abandoned mid-statement): do not pool it again.
    discard: bool,
}

impl Failure {
    /// A failure before `COMMIT` was sent.
    fn before_commit(e: tokio_postgres::Error) -> Failure {
        let lost = is_connection_error(&e);
        let retry = lost || e.code().is_some_and(is_retryable_state);
        Failure {
            error: pg_error(e),
            retry,
            discard: lost,
        }
    }
}

/// A committed batch: one answer per request, and the newest revision if it moved.
struct Done {
    answers: Vec<Result<Reply>>,
    revision: Option<i64>,
}

/// Runs until every sender is dropped and the queue is drained.
pub(crate) async fn run(writer: Writer, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let started = Instant::now();
        let mut requests = vec![first];
        let mut attempt = 0;
        let outcome = loop {
            // Only the first attempt takes more requests from the queue.
            let more = (attempt == 0).then_some(&mut rx);
            match writer.attempt(&mut requests, more).await {
                Ok(done) => break Ok(done),
                Err(f) if f.retry && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(error = %f.error, attempt, "retrying write batch");
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                Err(f) => break Err(f.error),
            }
        };
        let n = requests.len();
        match outcome {
            Ok(done) => {
                if let Some(revision) = done.revision {
                    publish(&writer.published, revision);
                }
                for (req, answer) in requests.into_iter().zip(done.answers) {
                    // The caller may have gone away; the write stands regardless.
                    let _ = req.reply.send(answer);
                }
                tracing::trace!(ops = n, elapsed = ?started.elapsed(), revision = ?done.revision, "write batch");
            }
            Err(e) => {
                tracing::warn!(error = %e, ops = n, "write batch failed");
                for req in requests {
                    let _ = req.reply.send(Err(duplicate(&e)));
                }
            }
        }
    }
}

impl Writer {
    /// One try at committing `requests` (and, with `more`, whatever else is queued).
    async fn attempt(
        &self,
        requests: &mut Vec<Request>,
        more: Option<&mut mpsc::Receiver<Request>>,
    ) -> Result<Done, Failure> {
        // A failure to connect is not retried: the pool already waited its timeouts.
        let mut client = self.pool.get().await.map_err(|e| Failure {
            error: pool_error(e),
            retry: false,
            discard: false,
        })?;
        let outcome = tokio::time::timeout(self.batch_timeout, self.batch(&mut client, requests, more)).await;
        let outcome = outcome.unwrap_or_else(|_| {
            Err(Failure {
                error: timed_out("a write transaction"),
                retry: false,
                discard: true,
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

    async fn batch(
        &self,
        client: &mut Object,
        requests: &mut Vec<Request>,
        mut more: Option<&mut mpsc::Receiver<Request>>,
    ) -> Result<Done, Failure> {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(Failure::before_commit)?;
        let cluster = self.cluster.as_str();
        let lock = tx
            .prepare_cached("SELECT revision, compacted_revision FROM meta WHERE cluster = $1 FOR UPDATE")
            .await
            .map_err(Failure::before_commit)?;
        let row = tx
            .query_opt(&lock, &[&cluster])
            .await
            .map_err(Failure::before_commit)?;
        let Some(row) = row else {
            return Err(Failure {
                error: Error::Internal(format!("the counter row of cluster {cluster:?} is missing")),
                retry: false,
                discard: false,
            });
        };
        let start: i64 = row.try_get(0).map_err(Failure::before_commit)?;
        let mut compacted: i64 = row.try_get(1).map_err(Failure::before_commit)?;
        let mut revision = start;
        let mut bytes = 0usize;
        let mut answers = Vec::with_capacity(requests.len());
        let mut i = 0;
        while i < requests.len() {
            match apply(&tx, cluster, &requests[i].op, revision + 1, &mut compacted).await {
                Ok((reply, size, consumed)) => {
                    if consumed {
                        revision += 1;
                    }
                    bytes = bytes.saturating_add(size);
                    answers.push(Ok(reply));
                }
                Err(OpError::Rejected(e)) => answers.push(Err(e)),
                Err(OpError::Storage(e)) => return Err(Failure::before_commit(e)),
            }
            i += 1;
            if i == requests.len() && requests.len() < self.limits.ops && bytes < self.limits.bytes {
                if let Some(req) = more.as_mut().and_then(|rx| rx.try_recv().ok()) {
                    requests.push(req);
                }
            }
        }
        if revision > start {
            let payload = format!("{cluster}:{revision}");
            let bump = tx
                .prepare_cached("UPDATE meta SET revision = $2 WHERE cluster = $1")
                .await
                .map_err(Failure::before_commit)?;
            let notify = tx
                .prepare_cached("SELECT pg_notify($1, $2)")
                .await
                .map_err(Failure::before_commit)?;
            futures::try_join!(async { tx.execute(&bump, &[&cluster, &revision]).await }, async {
                tx.execute(&notify, &[&CHANNEL, &payload]).await
            },)
            .map_err(Failure::before_commit)?;
        }
        tx.commit().await.map_err(|e| {
            // A refusal from the server means it rolled back; a lost connection means the
            // outcome is unknown, and the batch must not be run twice.
            let lost = is_connection_error(&e);
            let retry = !lost && e.code().is_some_and(is_retryable_state);
            let error = if lost {
                Error::Unavailable(format!(
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
            }
        })?;
        Ok(Done {
            answers,
            revision: (revision > start).then_some(revision),
        })
    }
}

/// Runs one op. Returns its reply, the bytes it wrote and whether it consumed `revision`.
async fn apply(
    tx: &Transaction<'_>,
    cluster: &str,
    op: &Op,
    revision: i64,
    compacted: &mut i64,
) -> Result<(Reply, usize, bool), OpError> {
    let object = |(o, n): (StoredObject, usize)| (Reply::Object(o), n, true);
    match op {
        Op::Create(obj) => ops::create(tx, cluster, obj, revision).await.map(object),
        Op::Update(obj, expected) => ops::update(tx, cluster, obj, *expected, revision)
            .await
            .map(object),
        Op::Delete(key, pre) => ops::delete(tx, cluster, key, pre, revision).await.map(object),
        Op::Compact { keep, batch } => {
            let (point, done) =
                ops::compact_step(tx, cluster, revision - 1, *compacted, *keep, *batch).await?;
            *compacted = point;
            Ok((Reply::Compacted(point, done), 0, false))
        }
    }
}
