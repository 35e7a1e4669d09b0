//! Findings over time on PostgreSQL, applied by the findings indexer ([`super::indexer`]; the
//! semantics in [`crate::findings`], the change log's part in [`crate::findings_index`]).
//!
//! One step runs in one transaction: it locks the cluster's cursor row (`FOR UPDATE SKIP
//! LOCKED`: whichever replica holds it is the cluster's only indexer while it runs; the others
//! skip the step), reads up to [`INDEX_BATCH`] changes above the cursor with the findings of
//! the rewrites that fail (derived from their result rows while the change is its report's
//! newest write, `findings_rows.rs`; from the body the change kept otherwise), sends one
//! `prext_index_change` call per change in one pipelined flight (the server runs them in
//! order), and moves the cursor.

use deadpool_postgres::Pool;
use futures::future::try_join_all;
use tokio_postgres::types::ToSql;

use super::error::{pg_error, pool_error};
use super::findings_rows::current_findings;
use crate::findings_index::{action, Action, INDEX_BATCH};
use crate::{Error, ObjectKey, Result};

const LOCK_CURSOR: &str = "SELECT revision FROM findings_cursor WHERE cluster = $1 FOR UPDATE SKIP LOCKED";

/// The changes above the cursor. A rewrite that fails and is still its report's newest write
/// (its change keeps no body: `objects` holds it, with its result rows under the same id) has
/// its findings derived here, in the statement's one snapshot, from its result rows (column 8,
/// [`CURRENT_FINDINGS`]); an older rewrite that fails gets its body back (column 7), which the
/// server parses. Reading the body back, parsing it and indexing the report again cost more
/// than the result rows' few failing entries.
const PENDING: &str = concat!(
    "SELECT c.revision, c.event, c.resource, c.namespace, c.name, c.written_at,
            c.results_flag::bigint,
            CASE WHEN c.results_flag = 2 AND c.event <> 'DELETED' THEN c.body END,
            CASE WHEN c.results_flag = 2 AND c.event <> 'DELETED' AND c.body IS NULL
                 AND o.id IS NOT NULL THEN (",
    current_findings!(),
    ") END
     FROM changes c
     LEFT JOIN objects o ON c.body IS NULL AND o.cluster = c.cluster AND o.resource = c.resource
          AND o.namespace = c.namespace AND o.name = c.name AND o.revision = c.revision
     WHERE c.cluster = $1 AND c.revision > $2 AND c.revision <= $3
     ORDER BY c.revision LIMIT $4"
);

const COUNTER: &str = "SELECT revision FROM meta WHERE cluster = $1";

const ADVANCE: &str = "UPDATE findings_cursor SET revision = $2 WHERE cluster = $1";

const APPLY: &str = "SELECT prext_index_change($1, $2, $3, $4, $5, $6, $7, $8)";

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Applied changes up to this cursor; `true` when it is the newest committed revision.
    Indexed(i64, bool),
    /// Another replica holds the cursor: it is indexing.
    Busy,
}

/// One change above the cursor, with the arguments of its `prext_index_change` call.
struct Pending {
    revision: i64,
    key: ObjectKey,
    at: i64,
    /// Only mark the report's findings seen.
    seen: bool,
    /// Otherwise the findings the report now carries (JSON array).
    rows: serde_json::Value,
}

/// Applies up to [`INDEX_BATCH`] changes above the cluster's cursor.
pub(crate) async fn step(pool: &Pool, cluster: &str) -> Result<Step> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(pg_error)?;
    // Prepared once per connection: a step runs after almost every write batch, and parsing
    // and planning its statements each time cost more than running them.
    let (lock, counter, pending, advance) = futures::try_join!(
        tx.prepare_cached(LOCK_CURSOR),
        tx.prepare_cached(COUNTER),
        tx.prepare_cached(PENDING),
        tx.prepare_cached(ADVANCE)
    )
    .map_err(pg_error)?;
    let Some(row) = tx.query_opt(&lock, &[&cluster]).await.map_err(pg_error)? else {
        return Ok(Step::Busy);
    };
    let from: i64 = row.try_get(0).map_err(pg_error)?;
    // Revisions become visible in commit order (the counter row is locked by every write), so
    // every change up to the counter read here is visible to the next statement.
    let target: i64 = tx
        .query_one(&counter, &[&cluster])
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    if target <= from {
        return Ok(Step::Indexed(from, true));
    }
    let limit = i64::try_from(INDEX_BATCH).unwrap_or(i64::MAX);
    let rows = tx
        .query(&pending, &[&cluster, &from, &target, &limit])
        .await
        .map_err(pg_error)?;
    let mut pending = Vec::with_capacity(rows.len());
    for r in rows {
        let key = ObjectKey::new(
            r.try_get::<_, String>(2).map_err(pg_error)?,
            r.try_get::<_, String>(3).map_err(pg_error)?,
            r.try_get::<_, String>(4).map_err(pg_error)?,
        );
        let event: String = r.try_get(1).map_err(pg_error)?;
        let flag: Option<i64> = r.try_get(6).map_err(pg_error)?;
        let body: Option<String> = r.try_get(7).map_err(pg_error)?;
        let rows: Option<serde_json::Value> = r.try_get(8).map_err(pg_error)?;
        let (seen, rows) = match rows {
            Some(rows) => (false, rows),
            None => match action(&key.resource, &event, flag, body.as_deref())? {
                Action::Seen => (true, serde_json::Value::Array(Vec::new())),
                Action::Carry(now) => (
                    false,
                    serde_json::to_value(now)
                        .map_err(|e| Error::internal(format!("serializing findings: {e}")))?,
                ),
            },
        };
        pending.push(Pending {
            revision: r.try_get(0).map_err(pg_error)?,
            at: r
                .try_get::<_, Option<i64>>(5)
                .map_err(pg_error)?
                .unwrap_or_else(crate::findings::now_ms),
            key,
            seen,
            rows,
        });
    }
    let done = pending.len() < INDEX_BATCH;
    let reached = match (done, pending.last()) {
        (false, Some(last)) => last.revision,
        _ => target,
    };
    let apply = tx.prepare_cached(APPLY).await.map_err(pg_error)?;
    try_join_all(pending.iter().map(|p| {
        let params: [&(dyn ToSql + Sync); 8] = [
            &cluster,
            &p.key.resource,
            &p.key.namespace,
            &p.key.name,
            &p.at,
            &p.revision,
            &p.seen,
            &p.rows,
        ];
        let (tx, apply) = (&tx, &apply);
        async move { tx.execute(apply, &params).await }
    }))
    .await
    .map_err(pg_error)?;
    tx.execute(&advance, &[&cluster, &reached])
        .await
        .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    Ok(Step::Indexed(reached, done))
}

/// The cluster's persisted cursor (for replicas that are not indexing).
pub(crate) async fn cursor(pool: &Pool, cluster: &str) -> Result<i64> {
    let client = pool.get().await.map_err(pool_error)?;
    client
        .query_one(
            "SELECT revision FROM findings_cursor WHERE cluster = $1",
            &[&cluster],
        )
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)
}
