//! The SQL of each write, run by the writer thread in the batch's transaction.
//!
//! Each function receives the revision it would take and either succeeds (the caller then
//! consumes that revision) or fails; [`OpError::Rejected`] means the request itself is refused
//! (not found, conflict, ...), while [`OpError::Storage`] means the database failed and the
//! whole batch is abandoned.
//!
//! **Invariant: a request is refused only before its first write.** Requests run without a
//! savepoint of their own (see `writer.rs`), so every function here is split in two phases:
//! the checks, which read and may refuse, then the writes, written as functions returning
//! `rusqlite::Result` so that they can only fail as storage errors. A create's single refusal
//! (the key is taken) is the failure of its first statement, the `objects` `INSERT`, which
//! SQLite's statement atomicity leaves without effect.

use bytes::Bytes;
use rusqlite::{ffi, params, Connection, OptionalExtension};

use super::body::{self, Body, Encoded};
use super::db_error;
use super::prepared::Prepared;
use super::purge;
use super::result_rows;
use super::staging;
use crate::findings_index::ResultsFlag;
use crate::stamp::{StampError, Unstamped};
use crate::write::{self, CurrentRow};
use crate::{Error, EventType, ObjectKey, Preconditions, StoredObject};

/// Why one write did not happen (the shared [`write::OpError`]; a storage error is already
/// mapped).
pub(crate) type OpError = write::OpError<Error>;

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        OpError::Storage(db_error(e))
    }
}

type OpResult<T> = std::result::Result<T, OpError>;

/// The row of an existing object that writes check against.
struct Current {
    id: i64,
    uid: String,
    revision: i64,
    labels: String,
    deleting: bool,
    /// `results_digest`: what the result rows were written from (`None`: unknown).
    results_digest: Option<Vec<u8>>,
    /// The scope's uid, which the result rows leave out when it is their subject's.
    scope_uid: Option<String>,
}

impl CurrentRow for Current {
    fn uid(&self) -> &str {
        &self.uid
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn deleting(&self) -> bool {
        self.deleting
    }
}

fn current(conn: &Connection, key: &ObjectKey) -> OpResult<Option<Current>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, uid, revision, labels, results_digest, deleting, scope_uid FROM objects
         WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
    )?;
    let row = stmt
        .query_row(params![key.resource, key.namespace, key.name], |r| {
            Ok(Current {
                id: r.get(0)?,
                uid: r.get(1)?,
                revision: r.get(2)?,
                labels: r.get(3)?,
                results_digest: r.get(4)?,
                deleting: r.get(5)?,
                scope_uid: r.get(6)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// Stamps the last state of a deleted object (its stored body) with the deletion revision,
/// without building the body (see [`Unstamped::from_serialized`]).
fn restamp(stored: &str, key: &ObjectKey, revision: i64) -> OpResult<String> {
    match Unstamped::from_serialized(stored) {
        Ok(unstamped) => Ok(unstamped.stamp(revision)),
        Err(StampError::Parse(e)) => Err(OpError::Storage(Error::internal(format!(
            "stored body of {key:?} is not JSON: {e}"
        )))),
        Err(e) => Err(OpError::Rejected(Error::internal(e.to_string()))),
    }
}

/// Whether `e` is the violation of a UNIQUE constraint (the object key is taken).
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// The parameters of an object row, in the order of `create`'s INSERT and `update`'s UPDATE;
/// `body` as stored (see `body.rs`).
fn object_params<'a>(
    obj: &'a Prepared,
    revision: &'a i64,
    body: &'a Encoded<'a>,
) -> [&'a dyn rusqlite::ToSql; 20] {
    let (s, sc) = (&obj.head.summary, &obj.head.scope);
    [
        &obj.head.key.resource,
        &obj.head.key.namespace,
        &obj.head.key.name,
        &obj.head.uid,
        revision,
        &obj.head.created,
        &obj.labels,
        &obj.head.deleting,
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
        body,
        &obj.head.results_digest,
    ]
}

/// Stores a new object; returns it and the size of its body. `staged`: the id under which its
/// result rows were already written (see `staging.rs`), else they are written here.
pub(crate) fn create(
    conn: &Connection,
    obj: Prepared,
    revision: i64,
    staged: Option<i64>,
) -> OpResult<(StoredObject, usize)> {
    let body = obj.head.body.stamp(revision);
    let stored = body::encode(&body);
    let mut values = object_params(&obj, &revision, &stored).to_vec();
    values.push(&staged);
    // The check and the first write in one statement: it fails on the taken key having
    // written nothing.
    let inserted = conn
        .prepare_cached(
            // The id: the staged rows', else SQLite's own choice (one above the largest), but
            // above every report whose result rows await their purge or their switch too (see
            // `purge.rs`, `staging.rs`).
            "INSERT INTO objects (id, resource, namespace, name, uid, revision, created, labels,
                 deleting, summary_pass, summary_fail, summary_warn, summary_error, summary_skip,
                 scope_api_version, scope_kind, scope_namespace, scope_name, scope_uid, body,
                 results_digest)
             VALUES (coalesce(?21, (SELECT max(coalesce((SELECT max(id) FROM objects), 0),
                                 coalesce((SELECT max(object_id) FROM purges), 0)) + 1)), ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                 ?20)",
        )?
        .execute(&values[..]);
    let id = match inserted {
        Ok(_) => conn.last_insert_rowid(),
        Err(e) if is_unique_violation(&e) => {
            let cur = current(conn, &obj.head.key)?;
            write::accept_create(cur.as_ref()).map_err(OpError::Rejected)?;
            // The key was taken when the INSERT ran, and is in the same transaction.
            return Err(OpError::Storage(Error::internal(format!(
                "unique violation on {:?} without a row",
                obj.head.key
            ))));
        }
        Err(e) => return Err(e.into()),
    };
    // Written: from here on only storage errors.
    match staged {
        Some(_) => {
            result_rows::insert_counts(conn, id, &obj)?;
            staging::switched(conn, id)?;
        }
        None => result_rows::insert(conn, id, &obj)?,
    }
    // The newest change of a key keeps no body and no labels: they are the object's (see
    // `keep_superseded`).
    append_change(
        conn,
        revision,
        EventType::Added,
        &obj.head.key,
        None,
        None,
        Some(ResultsFlag::rewritten(obj.has_findings())),
    )?;
    let size = body.len();
    Ok((
        StoredObject {
            key: obj.head.key,
            uid: obj.head.uid,
            revision,
            body: Bytes::from(body),
        },
        size,
    ))
}

/// Replaces an object written at `expected`; returns it and the size of its body. `staged`:
/// the id under which its new result rows were already written (see `staging.rs`).
pub(crate) fn update(
    conn: &Connection,
    obj: Prepared,
    expected: i64,
    revision: i64,
    staged: Option<i64>,
) -> OpResult<(StoredObject, usize)> {
    let cur = write::accept_update(&obj.head.uid, expected, current(conn, &obj.head.key)?)
        .map_err(OpError::Rejected)?;
    // Checked: from here on only storage errors.
    let body = obj.head.body.stamp(revision);
    let stored = body::encode(&body);
    keep_superseded(conn, cur.id, cur.revision)?;
    if let Some(id) = staged {
        // The report moves to the staged rows' id, in the statement that rewrites its row;
        // its old rows are purged like a deleted report's (their counts go first: they
        // reference the old id).
        purge::detach(conn, cur.id, revision)?;
        conn.prepare_cached("DELETE FROM result_counts WHERE object_id = ?1")?
            .execute([cur.id])?;
        let mut values = object_params(&obj, &revision, &stored).to_vec();
        values.push(&id);
        conn.prepare_cached(
            "UPDATE objects SET id = ?21, revision = ?5, created = ?6, labels = ?7, deleting = ?8,
                 summary_pass = ?9, summary_fail = ?10, summary_warn = ?11, summary_error = ?12,
                 summary_skip = ?13, scope_api_version = ?14, scope_kind = ?15,
                 scope_namespace = ?16, scope_name = ?17, scope_uid = ?18, body = ?19,
                 results_digest = ?20
             WHERE resource = ?1 AND namespace = ?2 AND name = ?3 AND uid = ?4",
        )?
        .execute(&values[..])?;
    } else {
        // The parameters of the INSERT of `create`; the row is found by its key (and uid).
        conn.prepare_cached(
            "UPDATE objects SET revision = ?5, created = ?6, labels = ?7, deleting = ?8,
                 summary_pass = ?9, summary_fail = ?10, summary_warn = ?11, summary_error = ?12,
                 summary_skip = ?13, scope_api_version = ?14, scope_kind = ?15,
                 scope_namespace = ?16, scope_name = ?17, scope_uid = ?18, body = ?19,
                 results_digest = ?20
             WHERE resource = ?1 AND namespace = ?2 AND name = ?3 AND uid = ?4",
        )?
        .execute(object_params(&obj, &revision, &stored))?;
    }
    // Rows derived from the same results as last time are left as they are (and the findings
    // indexer then only marks the report's findings seen), unless the scope's uid changed: the
    // rows store their subject's uid relative to it (`result_rows::stored_uid`).
    let flag = if let Some(id) = staged {
        result_rows::insert_counts(conn, id, &obj)?;
        staging::switched(conn, id)?;
        ResultsFlag::rewritten(obj.has_findings())
    } else if cur.results_digest.as_deref() != Some(&obj.head.results_digest[..])
        || cur.scope_uid != obj.head.scope.uid
    {
        result_rows::remove(conn, cur.id)?;
        result_rows::insert(conn, cur.id, &obj)?;
        ResultsFlag::rewritten(obj.has_findings())
    } else {
        ResultsFlag::Kept
    };
    append_change(
        conn,
        revision,
        EventType::Modified,
        &obj.head.key,
        None,
        Some(&cur.labels),
        Some(flag),
    )?;
    let size = body.len();
    Ok((
        StoredObject {
            key: obj.head.key,
            uid: obj.head.uid,
            revision,
            body: Bytes::from(body),
        },
        size,
    ))
}

/// Removes an object; returns its last state stamped with the deletion revision.
pub(crate) fn delete(
    conn: &Connection,
    key: ObjectKey,
    pre: &Preconditions,
    revision: i64,
) -> OpResult<(StoredObject, usize)> {
    let cur = write::accept_delete(pre, current(conn, &key)?).map_err(OpError::Rejected)?;
    let last: Body = conn
        .prepare_cached("SELECT body FROM objects WHERE id = ?1")?
        .query_row([cur.id], |r| r.get(0))?;
    let last = last
        .into_string()
        .map_err(|e| OpError::Storage(Error::internal(format!("stored body of {key:?}: {e}"))))?;
    let body = restamp(&last, &key, revision)?;
    let stored = body::encode(&body);
    // Checked: from here on only storage errors. The per-report counts go with the object (ON
    // DELETE CASCADE); many result rows are left for the writer to purge in chunks.
    keep_superseded(conn, cur.id, cur.revision)?;
    purge::detach(conn, cur.id, revision)?;
    conn.prepare_cached("DELETE FROM objects WHERE id = ?1")?
        .execute([cur.id])?;
    append_change(
        conn,
        revision,
        EventType::Deleted,
        &key,
        Some((&stored, &cur.labels)),
        Some(&cur.labels),
        None,
    )?;
    let size = body.len();
    Ok((
        StoredObject {
            key,
            uid: cur.uid,
            revision,
            body: Bytes::from(body),
        },
        size,
    ))
}

/// Copies the body and labels of the object `id` into its newest change (written at
/// `revision`), which kept none while it was the newest: run before the object is replaced or
/// removed. A change already compacted away is simply not there.
///
/// Invariant (schema versions 5 and 12): `changes.body` and `changes.labels` are NULL exactly
/// when the change is the newest write of a key that still exists, whose `objects` row then
/// has the same revision, body and labels.
fn keep_superseded(conn: &Connection, id: i64, revision: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE changes SET (body, labels) = (SELECT body, labels FROM objects WHERE id = ?1)
         WHERE revision = ?2 AND body IS NULL",
    )?
    .execute(params![id, revision])?;
    Ok(())
}

/// Appends a change; its body (as stored) and labels are `None` for the newest write of a key
/// (the object holds them), given for a delete. With the write's time and `flag` (what it did
/// to the result rows), for the findings indexer.
fn append_change(
    conn: &Connection,
    revision: i64,
    event: EventType,
    key: &ObjectKey,
    last: Option<(&Encoded<'_>, &str)>,
    prev_labels: Option<&str>,
    flag: Option<ResultsFlag>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO changes (revision, event, resource, namespace, name, body, labels, prev_labels,
             written_at, results_flag)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        revision,
        event.as_str(),
        key.resource,
        key.namespace,
        key.name,
        last.map(|(body, _)| body),
        last.map(|(_, labels)| labels),
        prev_labels,
        crate::findings::now_ms(),
        flag.map(ResultsFlag::as_i64)
    ])?;
    Ok(())
}

/// One step of compaction: drops up to `batch` change rows at or below `newest - keep`, and
/// never one the findings indexer has not applied yet (above its cursor). Returns the
/// compaction point reached and whether it is the target.
pub(crate) fn compact_step(conn: &Connection, keep: i64, batch: usize) -> OpResult<(i64, bool)> {
    let (newest, compacted, indexed): (i64, i64, i64) = conn.query_row(
        "SELECT m.revision, m.compacted_revision, f.revision FROM meta m, findings_cursor f
         WHERE m.id = 1 AND f.id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let target = newest.saturating_sub(keep.max(0)).min(indexed);
    if target <= compacted {
        return Ok((compacted, true));
    }
    let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
    // The first row beyond this batch, if the batch does not reach the target.
    let beyond: Option<i64> = conn
        .query_row(
            "SELECT revision FROM changes WHERE revision <= ?1 ORDER BY revision LIMIT 1 OFFSET ?2",
            params![target, batch],
            |r| r.get(0),
        )
        .optional()?;
    let point = beyond.map_or(target, |r| r - 1);
    conn.execute("DELETE FROM changes WHERE revision <= ?1", [point])?;
    conn.execute("UPDATE meta SET compacted_revision = ?1 WHERE id = 1", [point])?;
    Ok((point, point == target))
}
