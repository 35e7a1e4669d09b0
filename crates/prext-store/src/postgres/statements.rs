//! The SQL of a write's object row and change-log row, and the statements of every write
//! prepared once per connection ([`Statements`]); `ops.rs` decides which of them a write sends.
//! The create's statement, which writes its result rows too, is in `result_rows.rs`.

use deadpool_postgres::Transaction;

use super::purge;
use super::result_rows::{INSERT_OBJECT_WITH_RESULTS, INSERT_RESULTS};
use super::result_stats;

/// An update in one statement: the superseded body and labels (of the object `$22`, written at
/// `$23`) copied into its change (see [`KEEP_SUPERSEDED`]), the object row replaced (the
/// parameters of [`INSERT_OBJECT_WITH_RESULTS`], `$1` to `$21`; found by its key, the uid
/// checked again) and its change-log row (`MODIFIED`, no body, no labels: the new row's)
/// appended with the write's time `$24` and results flag `$25`. Its previous labels are the
/// old row's: every part of the statement sees the rows as they were before it, so they are
/// not parsed again.
pub(crate) const UPDATE_OBJECT: &str = "WITH old AS (SELECT body, labels FROM objects WHERE id = $22),
     kept AS (
         UPDATE changes c SET body = old.body, labels = coalesce(c.labels, old.labels) FROM old
         WHERE c.cluster = $1 AND c.revision = $23 AND c.body IS NULL),
     o AS (
         UPDATE objects SET revision = $6, created = $7, labels = $8, deleting = $9,
             summary_pass = $10, summary_fail = $11, summary_warn = $12, summary_error = $13,
             summary_skip = $14, scope_api_version = $15, scope_kind = $16, scope_namespace = $17,
             scope_name = $18, scope_uid = $19, body = $20, results_digest = $21
         WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND name = $4 AND uid = $5
         RETURNING cluster, resource, namespace, name, revision, labels)
     INSERT INTO changes (cluster, revision, event, resource, namespace, name, body, labels,
         prev_labels, written_at, results_flag)
     SELECT o.cluster, o.revision, 'MODIFIED', o.resource, o.namespace, o.name, NULL, NULL,
            old.labels, $24::bigint, $25::smallint
     FROM o, old";

pub(crate) const CLEAR_RESULTS: &str = "DELETE FROM results WHERE object_id = $1";

/// A fresh object id, for rows written before their object row.
pub(crate) const NEXT_ID: &str = "SELECT nextval(pg_get_serial_sequence('objects', 'id'))";

/// An object row with a given id (`$22`) whose result rows are written in the same
/// transaction: the parameters of [`INSERT_OBJECT_WITH_RESULTS`]' object (`$1` to `$21`).
pub(crate) const INSERT_OBJECT_WITH_ID: &str =
    "INSERT INTO objects (id, cluster, resource, namespace, name, uid, revision, created, labels,
         deleting, summary_pass, summary_fail, summary_warn, summary_error, summary_skip,
         scope_api_version, scope_kind, scope_namespace, scope_name, scope_uid, body, results_digest)
     OVERRIDING SYSTEM VALUE
     VALUES ($22, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
             $19, $20, $21)";

pub(crate) const REMOVE_OBJECT: &str = "DELETE FROM objects WHERE id = $1";

/// Copies the body and labels of the object `$2` into its newest change (written at `$3`),
/// which kept none while it was the newest: sent before the object is replaced or removed. A
/// change already compacted away is simply not there.
///
/// Invariant (schema version 5): `changes.body` is NULL exactly when the change is the newest
/// write of a key that still exists, whose `objects` row then has the same revision and body.
/// From version 14 `changes.labels` is NULL only then (rows written before keep theirs).
pub(crate) const KEEP_SUPERSEDED: &str =
    "UPDATE changes c SET body = o.body, labels = coalesce(c.labels, o.labels)
     FROM objects o
     WHERE o.id = $2 AND c.cluster = $1 AND c.revision = $3 AND c.body IS NULL";

pub(crate) const INSERT_CHANGE: &str =
    "INSERT INTO changes (cluster, revision, event, resource, namespace, name, body, labels, prev_labels,
         written_at, results_flag)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The statements of every write, prepared once per connection (then cached).
pub(crate) struct Statements {
    pub(crate) insert: tokio_postgres::Statement,
    pub(crate) insert_with_id: tokio_postgres::Statement,
    pub(crate) update: tokio_postgres::Statement,
    pub(crate) clear: tokio_postgres::Statement,
    pub(crate) remove: tokio_postgres::Statement,
    pub(crate) results: tokio_postgres::Statement,
    pub(crate) change: tokio_postgres::Statement,
    pub(crate) superseded: tokio_postgres::Statement,
    pub(crate) clear_first: tokio_postgres::Statement,
    pub(crate) detach: tokio_postgres::Statement,
    pub(crate) stats: tokio_postgres::Statement,
    pub(crate) clear_stats: tokio_postgres::Statement,
}

impl Statements {
    pub(crate) async fn prepare(tx: &Transaction<'_>) -> Result<Statements, tokio_postgres::Error> {
        let (stats, clear_stats, insert_with_id) = futures::try_join!(
            tx.prepare_cached(result_stats::INSERT_STATS),
            tx.prepare_cached(result_stats::CLEAR_STATS),
            tx.prepare_cached(INSERT_OBJECT_WITH_ID),
        )?;
        let (insert, update, clear, remove, results, change, superseded, clear_first, detach) = futures::try_join!(
            tx.prepare_cached(INSERT_OBJECT_WITH_RESULTS),
            tx.prepare_cached(UPDATE_OBJECT),
            tx.prepare_cached(CLEAR_RESULTS),
            tx.prepare_cached(REMOVE_OBJECT),
            tx.prepare_cached(INSERT_RESULTS),
            tx.prepare_cached(INSERT_CHANGE),
            tx.prepare_cached(KEEP_SUPERSEDED),
            tx.prepare_cached(purge::CLEAR_FIRST),
            tx.prepare_cached(purge::DETACH),
        )?;
        Ok(Statements {
            insert,
            insert_with_id,
            update,
            clear,
            remove,
            results,
            change,
            superseded,
            clear_first,
            detach,
            stats,
            clear_stats,
        })
    }
}
