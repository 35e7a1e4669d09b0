//! The SQL of each write, run by the writer inside the batch's transaction.
//!
//! A write is decided in two steps. [`plan_create`], [`plan_update`] and [`plan_delete`] check
//! the request against the object's current row (read beforehand, one key at a time with
//! [`current`] or a whole batch at once with [`currents`]) and either refuse it
//! ([`OpError::Rejected`]: not found, conflict, ...) or return a [`Write`]: everything the
//! statements need, the body already stamped with its revision. Nothing is written until then,
//! so a refused request never leaves a trace. [`Write::execute`] then sends the object's
//! statements (object row, result rows, change-log row, counts and numbers: one statement for
//! a create, one plus the result rows and the counts for an update) without waiting between them: tokio-postgres pipelines the
//! queries polled together and the server runs them in order. The
//! writer's fast path sends the writes of a whole batch in one flight; its careful path wraps
//! each write in a savepoint ([`in_savepoint`]) so that a write the database itself refuses (bad
//! data) is refused alone. [`OpError::Storage`] means the database failed and the whole batch is
//! abandoned. A large create or update has its result rows written beforehand under a fresh
//! id, outside the counter lock (`staging.rs`): [`Write::staged`] leaves it the object row,
//! the change and the replaced report's removal to send. A small update of a report with
//! many result rows moves the report to a fresh id in the same way (its few new rows written
//! in the batch's flight), so that the old rows go to the purge rather than being deleted
//! under the counter lock. The statements themselves are in `statements.rs` and
//! `result_rows.rs`; the current rows and compaction's step are in `current.rs` and
//! `compact.rs`.

use std::borrow::Cow;

use bytes::Bytes;
use deadpool_postgres::Transaction;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::error::pg_error;
use super::prepared::Prepared;
use super::purge;
use crate::findings_index::ResultsFlag;
use crate::stamp::{StampError, Unstamped};
use crate::write;
use crate::{Error, EventType, ObjectKey, Preconditions, StoredObject};

/// Why one write did not happen (the shared [`write::OpError`]). A storage error keeps the
/// driver's error so the writer can tell a lost connection from a failed statement.
pub(crate) type OpError = write::OpError<tokio_postgres::Error>;

impl From<tokio_postgres::Error> for OpError {
    fn from(e: tokio_postgres::Error) -> Self {
        OpError::Storage(e)
    }
}

type OpResult<T> = std::result::Result<T, OpError>;

/// Compaction's step, run by the writer's careful path like the writes here.
pub(crate) use super::compact::compact_step;
/// The current rows writes are checked against.
pub(crate) use super::current::{current, currents, Current};
/// The statements of every write, and the SQL they are prepared from.
pub(crate) use super::statements::{Statements, NEXT_ID};

/// Whether a statement failed because the database refused the data (a bad value, a violated
/// constraint), rather than because the database failed.
pub(crate) fn is_refused(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        let class = c.code().get(..2).unwrap_or("");
        class == "22" || class == "23" || *c == SqlState::PROGRAM_LIMIT_EXCEEDED
    })
}

/// Sends `SAVEPOINT` and `writes` in one pipelined flight, then `RELEASE` once every statement
/// of `writes` has answered (a write's later statements, such as its findings, are sent only
/// after its first ones answer, and must be inside the savepoint too); on a failure, rolls back
/// to the savepoint and says whether the request (bad data) or the batch (anything else) failed.
pub(crate) async fn in_savepoint<F>(tx: &Transaction<'_>, writes: F) -> OpResult<()>
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let outcome = async {
        futures::try_join!(tx.batch_execute("SAVEPOINT prext_op"), writes)?;
        tx.batch_execute("RELEASE SAVEPOINT prext_op").await
    }
    .await;
    let Err(e) = outcome else { return Ok(()) };
    if !is_refused(&e) {
        return Err(OpError::Storage(e));
    }
    tx.batch_execute("ROLLBACK TO SAVEPOINT prext_op; RELEASE SAVEPOINT prext_op")
        .await?;
    // Creates check for the key under the counter lock first, so this is only reached when
    // someone wrote the table behind prext's back.
    let key_taken = e
        .as_db_error()
        .is_some_and(|db| *db.code() == SqlState::UNIQUE_VIOLATION && db.table() == Some("objects"));
    if key_taken {
        return Err(OpError::Rejected(Error::AlreadyExists { being_deleted: false }));
    }
    Err(OpError::Rejected(Error::internal(format!(
        "the database refused the object: {}",
        pg_error(e)
    ))))
}

/// What happens to the object's row.
enum Target<'a> {
    /// A new row, with its results.
    Insert(&'a Prepared),
    /// The row `id`, written at `superseded`, replaced, its results rewritten unless they are
    /// unchanged (`false`).
    Replace {
        id: i64,
        superseded: i64,
        p: &'a Prepared,
        rewrite: bool,
    },
    /// The row `id`, written at `superseded`, removed with its results.
    Remove { id: i64, superseded: i64 },
    /// A new row with the id `id` whose results, counts and numbers are written already
    /// (`staging.rs`), replacing the row `replaced` (its id, and the revision it was written
    /// at) whose results go to the purge as a deleted report's.
    Staged {
        id: i64,
        replaced: Option<(i64, i64)>,
        p: &'a Prepared,
    },
    /// The row `id`, written at `superseded`, with more result rows than a delete removes
    /// inline ([`purge::INLINE_ROWS`]), replaced by a new row under a fresh id with its
    /// results: the old rows go to the purge as a deleted report's.
    Move {
        id: i64,
        superseded: i64,
        p: &'a Prepared,
    },
}

/// An accepted write: the statements to send and the object they leave behind.
pub(crate) struct Write<'a> {
    target: Target<'a>,
    event: EventType,
    key: &'a ObjectKey,
    uid: String,
    revision: i64,
    /// The body as stored, stamped with `revision`.
    body: String,
    labels: Cow<'a, Value>,
    prev_labels: Option<Value>,
    /// The written object's results digest (empty for a delete).
    results_digest: &'a [u8],
}

/// Checks a create against the key's current row.
pub(crate) fn plan_create(p: &Prepared, cur: Option<Current>, revision: i64) -> OpResult<Write<'_>> {
    write::accept_create(cur.as_ref()).map_err(OpError::Rejected)?;
    Ok(Write {
        target: Target::Insert(p),
        event: EventType::Added,
        key: &p.head.key,
        uid: p.head.uid.clone(),
        revision,
        body: p.head.body.stamp(revision),
        labels: Cow::Borrowed(&p.labels),
        prev_labels: None,
        results_digest: &p.head.results_digest,
    })
}

/// Checks an update of the object written at `expected` against its current row.
pub(crate) fn plan_update(
    p: &Prepared,
    expected: i64,
    cur: Option<Current>,
    revision: i64,
) -> OpResult<Write<'_>> {
    let cur = write::accept_update(&p.head.uid, expected, cur).map_err(OpError::Rejected)?;
    let rewrite_results = cur.results_digest.as_deref() != Some(&p.head.results_digest[..]);
    let (id, superseded) = (cur.id, cur.revision);
    let target = match rewrite_results && cur.results > i64::from(purge::INLINE_ROWS) {
        true => Target::Move { id, superseded, p },
        false => Target::Replace {
            id,
            superseded,
            p,
            rewrite: rewrite_results,
        },
    };
    Ok(Write {
        target,
        event: EventType::Modified,
        key: &p.head.key,
        uid: p.head.uid.clone(),
        revision,
        body: p.head.body.stamp(revision),
        labels: Cow::Borrowed(&p.labels),
        prev_labels: Some(cur.labels),
        results_digest: &p.head.results_digest,
    })
}

/// Checks a delete against the object's current row (read with its body).
pub(crate) fn plan_delete<'a>(
    key: &'a ObjectKey,
    pre: &Preconditions,
    cur: Option<Current>,
    revision: i64,
) -> OpResult<Write<'a>> {
    let cur = write::accept_delete(pre, cur).map_err(OpError::Rejected)?;
    // Restamped without building the body: a report of 50,000 results took hundreds of
    // milliseconds to parse, in the writer (see `Unstamped::from_serialized`).
    let last = Unstamped::from_serialized(cur.body.as_deref().unwrap_or_default()).map_err(|e| {
        OpError::Rejected(Error::internal(match e {
            StampError::Parse(e) => format!("stored body of {key:?} is not JSON: {e}"),
            other => other.to_string(),
        }))
    })?;
    Ok(Write {
        target: Target::Remove {
            id: cur.id,
            superseded: cur.revision,
        },
        event: EventType::Deleted,
        key,
        uid: cur.uid,
        revision,
        body: last.stamp(revision),
        prev_labels: Some(cur.labels.clone()),
        labels: Cow::Owned(cur.labels),
        results_digest: &[],
    })
}

impl Write<'_> {
    /// Bytes of the stored body.
    pub(crate) fn size(&self) -> usize {
        self.body.len()
    }

    /// Sends the write's statements without waiting between them (no savepoint). They are
    /// prepared beforehand, so that nothing else can slip in between them.
    pub(crate) async fn execute(
        &self,
        tx: &Transaction<'_>,
        cluster: &str,
        st: &Statements,
    ) -> Result<(), tokio_postgres::Error> {
        // For the findings indexer: the write's time and what it did to the result rows.
        let written_at = crate::findings::now_ms();
        let flag: Option<i16> = match &self.target {
            Target::Insert(p) | Target::Staged { p, .. } | Target::Move { p, .. } => {
                Some(ResultsFlag::rewritten(p.results.has_findings()))
            }
            Target::Replace { p, rewrite, .. } => Some(match rewrite {
                true => ResultsFlag::rewritten(p.results.has_findings()),
                false => ResultsFlag::Kept,
            }),
            Target::Remove { .. } => None,
        }
        .map(|f| f.as_i64() as i16);

        match &self.target {
            Target::Insert(p) => {
                // The object, its result rows and its change in one statement.
                let rows = p.results.all();
                let mut params: Vec<&(dyn ToSql + Sync)> = self.object_params(&cluster, p).to_vec();
                params.extend(rows.params());
                params.extend([&written_at as &(dyn ToSql + Sync), &flag]);
                params.extend(p.stats.params());
                tx.execute(&st.insert, &params).await?;
            }
            Target::Replace {
                id,
                superseded,
                p,
                rewrite,
            } => {
                let results = async {
                    if !*rewrite || p.results.is_empty() {
                        return Ok(0);
                    }
                    let rows = p.results.all();
                    let mut params: Vec<&(dyn ToSql + Sync)> = vec![id, &cluster];
                    params.extend(rows.params());
                    tx.execute(&st.results, &params).await
                };
                let clear = async {
                    match rewrite {
                        true => {
                            let all = i32::MAX;
                            let (n, _) =
                                futures::try_join!(async { tx.execute(&st.clear, &[id]).await }, async {
                                    tx.execute(&st.clear_stats, &[id, &all]).await
                                })?;
                            Ok(n)
                        }
                        false => Ok(0),
                    }
                };
                let update = async {
                    let mut params: Vec<&(dyn ToSql + Sync)> = self.object_params(&cluster, p).to_vec();
                    params.extend([id as &(dyn ToSql + Sync), superseded, &written_at, &flag]);
                    tx.execute(&st.update, &params).await
                };
                // Sent in this order: the old rows (and counts) go before the new ones come.
                futures::try_join!(
                    update,
                    clear,
                    results,
                    self.write_stats(tx, cluster, st, p, *rewrite)
                )?;
            }
            Target::Remove { id, superseded } => {
                // A delete's change keeps the last body, stamped with the delete's revision.
                let (event, body): (_, &(dyn ToSql + Sync)) = (self.event.as_str(), &self.body);
                let change = self.change_params(&cluster, &event, body, &written_at, &flag);
                // The first result rows go now, the rest (if any) in chunks later (`purge.rs`).
                let inline = purge::INLINE_ROWS;
                futures::try_join!(
                    async { tx.execute(&st.superseded, &[&cluster, id, superseded]).await },
                    async { tx.execute(&st.clear_first, &[id, &inline]).await },
                    async { tx.execute(&st.clear_stats, &[id, &inline]).await },
                    async {
                        let detach: [&(dyn ToSql + Sync); 4] = [id, &cluster, &self.revision, &inline];
                        tx.execute(&st.detach, &detach).await
                    },
                    async { tx.execute(&st.remove, &[id]).await },
                    async { tx.execute(&st.change, &change).await }
                )?;
            }
            Target::Staged { id, replaced, p } => {
                let rows = async { Ok(()) };
                self.insert_replacing(tx, cluster, st, (*id, *replaced), p, rows, &written_at, &flag)
                    .await?;
            }
            Target::Move { id, superseded, p } => {
                let new: i64 = tx.query_one(NEXT_ID, &[]).await?.try_get(0)?;
                #[cfg(test)]
                super::staging::hold::committed(&format!("moved {}", self.key.name));
                // The new rows, then the counts (found by the key: after the new object row).
                let rows = async {
                    let all = p.results.all();
                    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&new, &cluster];
                    params.extend(all.params());
                    futures::try_join!(
                        async {
                            match p.results.is_empty() {
                                true => Ok(0),
                                false => tx.execute(&st.results, &params).await,
                            }
                        },
                        self.write_stats(tx, cluster, st, p, true)
                    )
                    .map(|_| ())
                };
                let replaced = Some((*id, *superseded));
                self.insert_replacing(tx, cluster, st, (new, replaced), p, rows, &written_at, &flag)
                    .await?;
            }
        }
        Ok(())
    }

    /// The same write with its result rows, counts and numbers written already under the
    /// object id `id` (`staging.rs`): a create inserts its row with that id by `insert`, an
    /// update replaces its row by that one. A delete is returned unchanged.
    pub(crate) fn staged(self, id: i64) -> Self {
        let (replaced, p) = match self.target {
            Target::Insert(p) => (None, p),
            Target::Replace {
                id: old,
                superseded,
                p,
                ..
            }
            | Target::Move {
                id: old,
                superseded,
                p,
            } => (Some((old, superseded)), p),
            _ => return self,
        };
        let target = Target::Staged { id, replaced, p };
        Write { target, ..self }
    }

    /// The rows the write adds to the store, for the statistics schedule (`statistics.rs`): a
    /// create's report row and result rows. An update adds none (its result rows replace the
    /// old ones), nor does a delete.
    pub(crate) fn grown(&self) -> u64 {
        match &self.target {
            Target::Insert(p)
            | Target::Staged {
                replaced: None, p, ..
            } => 1 + p.results.len() as u64,
            _ => 0,
        }
    }

    /// Whether the write leaves result rows to the purge: a deleted report's, or a replaced
    /// report's (moved or staged).
    pub(crate) fn leaves_rows_to_purge(&self) -> bool {
        matches!(
            self.target,
            Target::Remove { .. }
                | Target::Move { .. }
                | Target::Staged {
                    replaced: Some(_),
                    ..
                }
        )
    }

    /// Inserts the object row with the id `id` and its change, `rows` sent after them (the
    /// report's own rows, if not written already); a `replaced` row (its id and the revision
    /// it was written at) leaves first as a deleted report's, its results to the purge and
    /// its body copied into its change.
    #[allow(clippy::too_many_arguments)]
    async fn insert_replacing(
        &self,
        tx: &Transaction<'_>,
        cluster: &str,
        st: &Statements,
        (id, replaced): (i64, Option<(i64, i64)>),
        p: &Prepared,
        rows: impl std::future::Future<Output = Result<(), tokio_postgres::Error>>,
        written_at: &i64,
        flag: &Option<i16>,
    ) -> Result<(), tokio_postgres::Error> {
        // The newest change of a key keeps no body: it is the object's.
        let event = self.event.as_str();
        let change = self.change_params(&cluster, &event, &None::<&str>, written_at, flag);
        let mut params: Vec<&(dyn ToSql + Sync)> = self.object_params(&cluster, p).to_vec();
        params.push(&id);
        let insert = async { tx.execute(&st.insert_with_id, &params).await };
        let change = async { tx.execute(&st.change, &change).await };
        let Some((old, superseded)) = replaced else {
            futures::try_join!(insert, change, rows)?;
            return Ok(());
        };
        // Sent in this order: the replaced row leaves, then the new row takes the key.
        let inline = purge::INLINE_ROWS;
        futures::try_join!(
            async { tx.execute(&st.superseded, &[&cluster, &old, &superseded]).await },
            async { tx.execute(&st.clear_first, &[&old, &inline]).await },
            async { tx.execute(&st.clear_stats, &[&old, &inline]).await },
            async {
                let detach: [&(dyn ToSql + Sync); 4] = [&old, &cluster, &self.revision, &inline];
                tx.execute(&st.detach, &detach).await
            },
            async { tx.execute(&st.remove, &[&old]).await },
            insert,
            change,
            rows
        )?;
        Ok(())
    }

    /// Writes the report's counts and numbers (after its result rows) when `rewrite`.
    async fn write_stats(
        &self,
        tx: &Transaction<'_>,
        cluster: &str,
        st: &Statements,
        p: &Prepared,
        rewrite: bool,
    ) -> Result<u64, tokio_postgres::Error> {
        if !rewrite || p.stats.is_empty() {
            return Ok(0);
        }
        let k = self.key;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&cluster, &k.resource, &k.namespace, &k.name];
        params.extend(p.stats.params());
        tx.execute(&st.stats, &params).await
    }

    /// The parameters of the change statement: the write's key, revision and event, `body`
    /// (none for the newest change of a key: it is the object's), labels, time and results flag.
    fn change_params<'p>(
        &'p self,
        cluster: &'p &str,
        event: &'p &'static str,
        body: &'p (dyn ToSql + Sync),
        written_at: &'p i64,
        flag: &'p Option<i16>,
    ) -> [&'p (dyn ToSql + Sync); 11] {
        let k = self.key;
        [
            cluster,
            &self.revision,
            event,
            &k.resource,
            &k.namespace,
            &k.name,
            body,
            &*self.labels,
            &self.prev_labels,
            written_at,
            flag,
        ]
    }

    /// The object parameters of `result_rows::INSERT_OBJECT_WITH_RESULTS` and `statements::UPDATE_OBJECT`.
    fn object_params<'p>(&'p self, cluster: &'p &str, p: &'p Prepared) -> [&'p (dyn ToSql + Sync); 21] {
        let (k, s, sc) = (self.key, &p.head.summary, &p.head.scope);
        [
            cluster,
            &k.resource,
            &k.namespace,
            &k.name,
            &self.uid,
            &self.revision,
            &p.head.created,
            &*self.labels,
            &p.head.deleting,
            &s.pass,
            &s.fail,
            &s.warn,
            &s.error,
            &s.skip,
            &sc.api_version,
            &sc.kind,
            &sc.namespace,
            &sc.name,
            &sc.uid,
            &self.body,
            &self.results_digest,
        ]
    }

    /// The object as the store returns it, with the size of its body.
    pub(crate) fn into_written(self) -> (StoredObject, usize) {
        let size = self.body.len();
        (
            StoredObject {
                key: self.key.clone(),
                uid: self.uid,
                revision: self.revision,
                body: Bytes::from(self.body),
            },
            size,
        )
    }
}
