//! Large creates and updates written beside the writer's batches, so that no other write
//! waits for their result rows.
//!
//! A create or update of a report with more than [`STAGE_ROWS`] results is taken out of the
//! writer task's batch ([`Stager::take`]) and runs in a task of its own, on its own pooled
//! connection, in one READ COMMITTED transaction:
//! 1. the key's current row is read and the write checked (`ops::plan_create`/`plan_update`),
//!    so that a create of a taken key or an update from a stale revision is refused before
//!    anything is written;
//! 2. a fresh object id is taken (`nextval` of the `objects` id sequence) and the result rows
//!    are inserted under it, [`CHUNK_ROWS`] rows per statement, with the report's counts and
//!    numbers (`result_stats.rs`), the statements pipelined.
//!    Nothing is locked that other writes need: uncommitted rows are invisible to everyone
//!    (and queries reach result rows through their report's `objects` row, which does not
//!    exist yet); a rollback or a crash removes them;
//! 3. only then the counter row is locked exactly as the writer locks it (`Writer::lock`), the
//!    key's current row read again and the write checked again (another write may have come
//!    first: the refusal rolls the staged rows back), and the ordinary statements of the write
//!    are sent in one flight (`ops::Write::staged`): the object row inserted with the staged
//!    id (an update removes the old row and hands its result rows to the purge as a delete
//!    does, `purge.rs`), the change row, the counter update and `NOTIFY` (`Writer::bump`);
//!    then `COMMIT`, the revision published and the request answered.
//!
//! Revisions are still taken under the counter lock, so they stay gap-free and visible in
//! commit order; the counter lock is held for the small final part only. An update's old
//! result rows are then removed by the writer's purge, a chunk between batches as after a
//! delete ([`Stager::replaced`]). At most [`CONCURRENT`] staged writes run at once (each
//! holds a pooled connection) and [`IN_FLIGHT`] are taken (a flood of large writes makes the
//! writer task wait for one of them rather than hold them all in memory); the writer task
//! waits for those in flight before it stops.

use std::sync::Arc;

use deadpool_postgres::{Object, Transaction};
use futures::future::try_join_all;
use futures::FutureExt;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::error::timed_out;
use super::ops::{self, OpError};
use super::publish;
use super::purge;
use super::result_rows::INSERT_RESULTS;
use super::writer::{self, commit, Failure, Op, Reply, Request, Writer};
use crate::write::Prepare;
use crate::{Error, Result};

/// Reports with more results than this are staged (as many as a delete removes inline).
pub(crate) const STAGE_ROWS: usize = purge::INLINE_ROWS as usize;

/// Result rows per staging statement.
const CHUNK_ROWS: usize = 5_000;

/// Staged writes running at once.
const CONCURRENT: usize = 2;

/// Staged writes running or waiting to run: past this, the writer task waits for one to
/// finish before it takes another (each holds its prepared report in memory).
const IN_FLIGHT: usize = 8;

/// The report's counts and numbers (`result_stats::INSERT_STATS`' arrays, `$3` on) under the
/// staged id `$1` of cluster `$2`.
const INSERT_STATS: &str =
    "WITH c AS (INSERT INTO result_counts (object_id, cluster, result, severity, source, n)
         SELECT $1, $2, u.* FROM unnest($3::text[], $4::text[], $5::text[], $6::integer[]) AS u)
     INSERT INTO result_numbers (object_id, idx, key, value, result, severity)
     SELECT $1, u.* FROM unnest($7::integer[], $8::text[], $9::float8[], $10::text[], $11::text[]) AS u";

/// Whether `op` is staged: a create or update with more than [`STAGE_ROWS`] results.
fn wanted(op: &Op) -> bool {
    match op {
        Op::Create(p) | Op::Update(p, _) => p.results.len() > STAGE_ROWS,
        Op::Delete(..) | Op::Compact { .. } => false,
    }
}

/// The staged writes in flight.
pub(crate) struct Stager {
    tasks: JoinSet<()>,
    permits: Arc<Semaphore>,
    /// Notified when a staged update has committed: its old result rows await the purge.
    replaced: Arc<Notify>,
}

impl Stager {
    pub(crate) fn new() -> Stager {
        Stager {
            tasks: JoinSet::new(),
            permits: Arc::new(Semaphore::new(CONCURRENT)),
            replaced: Arc::new(Notify::new()),
        }
    }

    /// Takes the writes to stage out of `requests` and starts them.
    pub(crate) async fn take(&mut self, writer: &Arc<Writer>, requests: &mut Vec<Request>) {
        while self.tasks.try_join_next().is_some() {}
        if !requests.iter().any(|r| wanted(&r.op)) {
            return;
        }
        let (staged, rest): (Vec<Request>, Vec<Request>) = requests.drain(..).partition(|r| wanted(&r.op));
        *requests = rest;
        for req in staged {
            while self.tasks.len() >= IN_FLIGHT {
                self.tasks.join_next().await;
            }
            let (writer, permits) = (Arc::clone(writer), Arc::clone(&self.permits));
            let replaced = Arc::clone(&self.replaced);
            self.tasks.spawn(async move {
                // The semaphore is never closed.
                let _permit = permits.acquire_owned().await;
                if run(&writer, req).await {
                    replaced.notify_one();
                }
            });
        }
    }

    /// Completes when a staged update has replaced result rows since the last call (or
    /// [`Stager::take_replaced`]): the writer's purge has work.
    pub(crate) async fn replaced(&self) {
        self.replaced.notified().await;
    }

    /// Whether a staged update has replaced result rows since the last call.
    pub(crate) fn take_replaced(&self) -> bool {
        self.replaced.notified().now_or_never().is_some()
    }

    /// Waits for the staged writes in flight.
    pub(crate) async fn finish(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Writes one staged request and answers it; returns whether it handed result rows to the
/// purge.
async fn run(writer: &Writer, req: Request) -> bool {
    let mut attempt = 0;
    let outcome = loop {
        match try_once(writer, &req.op).await {
            Err(f) if f.retry && attempt < writer::RETRIES => {
                attempt += 1;
                tracing::debug!(error = %f.error, attempt, "retrying a staged write");
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            other => break other,
        }
    };
    let (answer, replaced) = match outcome {
        Ok(Ok((reply, replaced))) => (Ok(reply), replaced),
        Ok(Err(refused)) => (Err(refused), false),
        Err(f) => {
            tracing::warn!(error = %f.error, "staged write failed");
            (Err(f.error), false)
        }
    };
    // The caller may have gone away; the write stands regardless.
    let _ = req.reply.send(answer);
    replaced
}

/// The answer (and whether the write replaced a report's result rows), or why the write was
/// refused (`Ok(Err(..))`: nothing written), or how the transaction failed.
type Outcome = std::result::Result<Result<(Reply, bool)>, Failure>;

/// One try, on a pooled connection of its own, bounded like a writer's batch.
async fn try_once(writer: &Writer, op: &Op) -> Outcome {
    let mut client = writer.client().await?;
    let work = async {
        let tx = super::writer::begin(&mut client).await?;
        match write(writer, &tx, op).await? {
            Ok((reply, replaced, revision, grown)) => {
                commit(tx).await?;
                publish(&writer.published, revision);
                // Counted by the writer's statistics schedule at its next commit.
                writer.grown.fetch_add(grown, std::sync::atomic::Ordering::AcqRel);
                #[cfg(test)]
                hold::committed(&op_name(op));
                Ok(Ok((reply, replaced)))
            }
            // Dropping the transaction rolls it back, the staged rows with it.
            Err(refused) => Ok(Err(refused)),
        }
    };
    let outcome = tokio::time::timeout(writer.batch_timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(Failure {
                error: timed_out("a staged write"),
                retry: false,
                discard: true,
                careful: false,
            })
        });
    if outcome.as_ref().is_err_and(|f| f.discard) {
        // Gone or in an unknown state: close it rather than hand it out again.
        drop(Object::take(client));
    }
    outcome
}

/// Stages the rows, then writes the object under the counter lock (not committed). The
/// `Ok(Ok(..))` carries the answer, whether rows were handed to the purge, the revision and
/// the rows the write added (`ops::Write::grown`).
async fn write(
    writer: &Writer,
    tx: &Transaction<'_>,
    op: &Op,
) -> std::result::Result<Result<(Reply, bool, i64, u64)>, Failure> {
    let cluster = writer.cluster.as_str();
    let (Op::Create(p) | Op::Update(p, _)) = op else {
        return Ok(Err(Error::internal("only creates and updates are staged")));
    };
    let key = &p.head().key;
    // Checked first without the lock: a write that would be refused stages nothing.
    let cur = ops::current(tx, cluster, key, false)
        .await
        .map_err(Failure::before_commit)?;
    if let Err(e) = writer::plan(op, cur, 0) {
        return refused(e);
    }
    let id: i64 = tx
        .query_one(ops::NEXT_ID, &[])
        .await
        .map_err(Failure::before_commit)?
        .try_get(0)
        .map_err(Failure::before_commit)?;
    let rows = async {
        let (stmt, stats) =
            futures::try_join!(tx.prepare_cached(INSERT_RESULTS), tx.prepare_cached(INSERT_STATS))?;
        let n = p.results.len();
        let chunks = (0..n).step_by(CHUNK_ROWS).map(|start| {
            let slice = p.results.slice(start..(start + CHUNK_ROWS).min(n));
            let stmt = &stmt;
            async move {
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id, &cluster];
                params.extend(slice.params());
                tx.execute(stmt, &params).await
            }
        });
        let stats = async {
            if p.stats.is_empty() {
                return Ok(0);
            }
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id, &cluster];
            params.extend(p.stats.params());
            tx.execute(&stats, &params).await
        };
        futures::try_join!(try_join_all(chunks), stats).map(|_| ())
    };
    if let Err(e) = ops::in_savepoint(tx, rows).await {
        return refused(e);
    }
    #[cfg(test)]
    hold::staged(&key.name).await;

    let (start, _) = writer.lock(tx).await?;
    let revision = start + 1;
    let (cur, st) = futures::try_join!(
        ops::current(tx, cluster, key, false),
        ops::Statements::prepare(tx)
    )
    .map_err(Failure::before_commit)?;
    let write = match writer::plan(op, cur, revision) {
        Ok(w) => w.staged(id),
        Err(e) => return refused(e),
    };
    let replaced = write.leaves_rows_to_purge();
    let grown = write.grown();
    let flight =
        async { futures::try_join!(write.execute(tx, cluster, &st), writer.bump(tx, revision)).map(|_| ()) };
    if let Err(e) = ops::in_savepoint(tx, flight).await {
        return refused(e);
    }
    Ok(Ok((
        Reply::Object(write.into_written().0),
        replaced,
        revision,
        grown,
    )))
}

/// A refused write's answer, or the failure of the transaction.
fn refused<T>(e: OpError) -> std::result::Result<Result<T>, Failure> {
    match e {
        OpError::Rejected(e) => Ok(Err(e)),
        OpError::Storage(e) => Err(Failure::before_commit(e)),
    }
}

#[cfg(test)]
fn op_name(op: &Op) -> String {
    op.key().map(|(k, _)| k.name.clone()).unwrap_or_default()
}

/// Test hooks: hold a staged write of a given name between staging and locking, and count the
/// staged writes committed per name (and, as "moved NAME", the small updates that moved a
/// large report to a fresh id, `ops.rs`).
#[cfg(test)]
pub(crate) mod hold {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use tokio::sync::Semaphore;

    /// A held name: `reached` gets a permit when a write of it has staged its rows, which then
    /// waits for a permit of `release`.
    pub(crate) struct Gate {
        pub(crate) reached: Semaphore,
        pub(crate) release: Semaphore,
    }

    static GATES: Mutex<Vec<(String, Arc<Gate>)>> = Mutex::new(Vec::new());
    static COMMITTED: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

    /// Holds the staged writes of `name` from now on.
    pub(crate) fn gate(name: &str) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            reached: Semaphore::new(0),
            release: Semaphore::new(0),
        });
        let mut gates = GATES.lock().unwrap_or_else(|e| e.into_inner());
        gates.push((name.to_owned(), Arc::clone(&gate)));
        gate
    }

    pub(super) async fn staged(name: &str) {
        let gate = {
            let gates = GATES.lock().unwrap_or_else(|e| e.into_inner());
            gates.iter().find(|(n, _)| n == name).map(|(_, g)| Arc::clone(g))
        };
        if let Some(gate) = gate {
            gate.reached.add_permits(1);
            if let Ok(permit) = gate.release.acquire().await {
                permit.forget();
            }
        }
    }

    pub(in crate::postgres) fn committed(name: &str) {
        let mut counts = COMMITTED.lock().unwrap_or_else(|e| e.into_inner());
        *counts
            .get_or_insert_with(HashMap::new)
            .entry(name.to_owned())
            .or_default() += 1;
    }

    /// How many staged writes of `name` committed.
    pub(crate) fn count(name: &str) -> usize {
        let counts = COMMITTED.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .as_ref()
            .and_then(|c| c.get(name))
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(all(test, feature = "testsuite"))]
#[path = "staging_tests.rs"]
mod tests;
