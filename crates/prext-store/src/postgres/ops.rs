//! The SQL of each write, run by the writer inside the batch's transaction.
//!
//! Each write costs two round trips: one to read the object's current row and check the
//! request against it, then one pipelined flight `SAVEPOINT; <object>; <results>; <change>;
//! RELEASE` (tokio-postgres pipelines queries polled together; the server runs them in order).
//! A refused request ([`OpError::Rejected`]: not found, conflict, ...) is decided before
//! anything is written; a write the database itself refuses (bad data) is rolled back to its
//! savepoint and refused alone. [`OpError::Storage`] means the database failed and the whole
//! batch is abandoned.

use std::collections::BTreeMap;

use bytes::Bytes;
use deadpool_postgres::Transaction;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::error::pg_error;
use super::result_rows::{ResultColumns, INSERT_RESULTS};
use crate::{Error, EventType, ObjectKey, ObjectWrite, Preconditions, StoredObject};

/// Why one write did not happen.
#[derive(Debug)]
pub(crate) enum OpError {
    /// The request is refused; the rest of the batch carries on.
    Rejected(Error),
    /// The database failed; the batch is rolled back. Keeps the driver's error so the writer
    /// can tell a lost connection from a failed statement.
    Storage(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for OpError {
    fn from(e: tokio_postgres::Error) -> Self {
        OpError::Storage(e)
    }
}

type OpResult<T> = std::result::Result<T, OpError>;

/// The row of an existing object that writes check against.
struct Current {
    id: i64,
    uid: String,
    revision: i64,
    labels: Value,
    deleting: bool,
    /// Only read for deletes.
    body: Option<String>,
}

const CURRENT: &str = "SELECT id, uid, revision, labels, deleting FROM objects
     WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND name = $4";
const CURRENT_WITH_BODY: &str = "SELECT id, uid, revision, labels, deleting, body FROM objects
     WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND name = $4";

async fn current(
    tx: &Transaction<'_>,
    cluster: &str,
    key: &ObjectKey,
    body: bool,
) -> OpResult<Option<Current>> {
    let stmt = tx
        .prepare_cached(if body { CURRENT_WITH_BODY } else { CURRENT })
        .await?;
    let row = tx
        .query_opt(&stmt, &[&cluster, &key.resource, &key.namespace, &key.name])
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Current {
        id: row.try_get(0)?,
        uid: row.try_get(1)?,
        revision: row.try_get(2)?,
        labels: row.try_get(3)?,
        deleting: row.try_get(4)?,
        body: if body { Some(row.try_get(5)?) } else { None },
    }))
}

/// Sets `metadata.resourceVersion` and serializes the body.
fn stamp(body: &Value, revision: i64) -> OpResult<String> {
    let mut body = body.clone();
    let metadata = body
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| serde_json::json!({})))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| OpError::Rejected(Error::Internal("object body has no metadata object".into())))?;
    metadata.insert("resourceVersion".into(), revision.to_string().into());
    serde_json::to_string(&body)
        .map_err(|e| OpError::Rejected(Error::Internal(format!("serializing body: {e}"))))
}

fn labels_json(labels: &BTreeMap<String, String>) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Sends `SAVEPOINT`, `writes` and `RELEASE` in one pipelined flight; on a failure, rolls back
/// to the savepoint and says whether the request (bad data) or the batch (anything else) failed.
async fn in_savepoint<F>(tx: &Transaction<'_>, writes: F) -> OpResult<()>
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let outcome = futures::try_join!(tx.batch_execute("SAVEPOINT prext_op"), writes, async {
        tx.batch_execute("RELEASE SAVEPOINT prext_op").await
    });
    let Err(e) = outcome else { return Ok(()) };
    let refused = e.code().is_some_and(|c| {
        let class = c.code().get(..2).unwrap_or("");
        class == "22" || class == "23" || *c == SqlState::PROGRAM_LIMIT_EXCEEDED
    });
    if !refused {
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
    Err(OpError::Rejected(Error::Internal(format!(
        "the database refused the object: {}",
        pg_error(e)
    ))))
}

const INSERT_OBJECT: &str = "INSERT INTO objects (cluster, resource, namespace, name, uid, revision, created,
         labels, deleting, summary_pass, summary_fail, summary_warn, summary_error, summary_skip,
         scope_api_version, scope_kind, scope_namespace, scope_name, scope_uid, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)";

const UPDATE_OBJECT: &str = "UPDATE objects SET revision = $2, created = $3, labels = $4, deleting = $5,
         summary_pass = $6, summary_fail = $7, summary_warn = $8, summary_error = $9, summary_skip = $10,
         scope_api_version = $11, scope_kind = $12, scope_namespace = $13, scope_name = $14,
         scope_uid = $15, body = $16
     WHERE id = $1";

/// Stores a new object; returns it and the size of its body.
pub(crate) async fn create(
    tx: &Transaction<'_>,
    cluster: &str,
    obj: &ObjectWrite,
    revision: i64,
) -> OpResult<(StoredObject, usize)> {
    if let Some(cur) = current(tx, cluster, &obj.key, false).await? {
        return Err(OpError::Rejected(Error::AlreadyExists {
            being_deleted: cur.deleting,
        }));
    }
    let labels = labels_json(&obj.labels);
    let body = stamp(&obj.body, revision)?;
    let (s, sc) = (&obj.index.summary, &obj.index.scope);
    let k = &obj.key;
    let insert = tx.prepare_cached(INSERT_OBJECT).await?;
    let results = ResultColumns::new(&obj.index)?;
    let results_stmt = tx.prepare_cached(INSERT_RESULTS).await?;
    let change = tx.prepare_cached(INSERT_CHANGE).await?;
    let object_params: [&(dyn ToSql + Sync); 20] = [
        &cluster,
        &k.resource,
        &k.namespace,
        &k.name,
        &obj.uid,
        &revision,
        &obj.created,
        &labels,
        &obj.deleting,
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
        &body,
    ];
    let row = ChangeRow {
        cluster,
        revision,
        event: EventType::Added,
        key: k,
        body: &body,
        labels: &labels,
        prev_labels: None,
    };
    in_savepoint(tx, async {
        futures::try_join!(
            tx.execute(&insert, &object_params),
            results.insert(tx, &results_stmt, cluster, k),
            insert_change(tx, &change, row),
        )
        .map(drop)
    })
    .await?;
    Ok(written(obj.key.clone(), obj.uid.clone(), revision, body))
}

/// Replaces an object written at `expected`; returns it and the size of its body.
pub(crate) async fn update(
    tx: &Transaction<'_>,
    cluster: &str,
    obj: &ObjectWrite,
    expected: i64,
    revision: i64,
) -> OpResult<(StoredObject, usize)> {
    let cur = current(tx, cluster, &obj.key, false)
        .await?
        .ok_or(OpError::Rejected(Error::NotFound))?;
    if cur.uid != obj.uid {
        return Err(OpError::Rejected(Error::Conflict(format!(
            "Precondition failed: UID in precondition: {}, UID in object meta: {}",
            obj.uid, cur.uid
        ))));
    }
    if cur.revision != expected {
        return Err(OpError::Rejected(Error::Conflict(
            "the object has been modified; please apply your changes to the latest version and try again"
                .into(),
        )));
    }
    let labels = labels_json(&obj.labels);
    let body = stamp(&obj.body, revision)?;
    let (s, sc) = (&obj.index.summary, &obj.index.scope);
    let k = &obj.key;
    let update = tx.prepare_cached(UPDATE_OBJECT).await?;
    let clear = tx
        .prepare_cached("DELETE FROM results WHERE object_id = $1")
        .await?;
    let results = ResultColumns::new(&obj.index)?;
    let results_stmt = tx.prepare_cached(INSERT_RESULTS).await?;
    let change = tx.prepare_cached(INSERT_CHANGE).await?;
    let object_params: [&(dyn ToSql + Sync); 16] = [
        &cur.id,
        &revision,
        &obj.created,
        &labels,
        &obj.deleting,
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
        &body,
    ];
    let row = ChangeRow {
        cluster,
        revision,
        event: EventType::Modified,
        key: k,
        body: &body,
        labels: &labels,
        prev_labels: Some(&cur.labels),
    };
    in_savepoint(tx, async {
        futures::try_join!(
            tx.execute(&update, &object_params),
            async { tx.execute(&clear, &[&cur.id]).await },
            results.insert(tx, &results_stmt, cluster, k),
            insert_change(tx, &change, row),
        )
        .map(drop)
    })
    .await?;
    Ok(written(obj.key.clone(), obj.uid.clone(), revision, body))
}

/// Removes an object; returns its last state stamped with the deletion revision.
pub(crate) async fn delete(
    tx: &Transaction<'_>,
    cluster: &str,
    key: &ObjectKey,
    pre: &Preconditions,
    revision: i64,
) -> OpResult<(StoredObject, usize)> {
    let cur = current(tx, cluster, key, true)
        .await?
        .ok_or(OpError::Rejected(Error::NotFound))?;
    if let Some(uid) = pre.uid.as_deref().filter(|uid| *uid != cur.uid) {
        return Err(OpError::Rejected(Error::Conflict(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            cur.uid
        ))));
    }
    if let Some(rv) = pre.resource_version.filter(|rv| *rv != cur.revision) {
        return Err(OpError::Rejected(Error::Conflict(format!(
            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
            cur.revision
        ))));
    }
    let last: Value = serde_json::from_str(cur.body.as_deref().unwrap_or_default()).map_err(|e| {
        OpError::Rejected(Error::Internal(format!(
            "stored body of {key:?} is not JSON: {e}"
        )))
    })?;
    let body = stamp(&last, revision)?;
    // Result rows go with the object (ON DELETE CASCADE).
    let remove = tx.prepare_cached("DELETE FROM objects WHERE id = $1").await?;
    let change = tx.prepare_cached(INSERT_CHANGE).await?;
    let row = ChangeRow {
        cluster,
        revision,
        event: EventType::Deleted,
        key,
        body: &body,
        labels: &cur.labels,
        prev_labels: Some(&cur.labels),
    };
    in_savepoint(tx, async {
        futures::try_join!(
            async { tx.execute(&remove, &[&cur.id]).await },
            insert_change(tx, &change, row),
        )
        .map(drop)
    })
    .await?;
    Ok(written(key.clone(), cur.uid, revision, body))
}

/// One change-log row.
struct ChangeRow<'a> {
    cluster: &'a str,
    revision: i64,
    event: EventType,
    key: &'a ObjectKey,
    body: &'a str,
    labels: &'a Value,
    prev_labels: Option<&'a Value>,
}

/// Appends a row to the change log (the watch history), with a prepared [`INSERT_CHANGE`].
async fn insert_change(
    tx: &Transaction<'_>,
    stmt: &tokio_postgres::Statement,
    row: ChangeRow<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let event = row.event.as_str();
    tx.execute(
        stmt,
        &[
            &row.cluster,
            &row.revision,
            &event,
            &row.key.resource,
            &row.key.namespace,
            &row.key.name,
            &row.body,
            row.labels,
            &row.prev_labels,
        ],
    )
    .await
}

/// The written object as the store returns it, with the size of its body.
fn written(key: ObjectKey, uid: String, revision: i64, body: String) -> (StoredObject, usize) {
    let size = body.len();
    (
        StoredObject {
            key,
            uid,
            revision,
            body: Bytes::from(body),
        },
        size,
    )
}

const INSERT_CHANGE: &str =
    "INSERT INTO changes (cluster, revision, event, resource, namespace, name, body, labels, prev_labels)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// One step of compaction: drops up to `batch` change rows at or below `newest - keep`.
/// `compacted` is the current compaction point. Returns the point reached and whether it is
/// the target.
pub(crate) async fn compact_step(
    tx: &Transaction<'_>,
    cluster: &str,
    newest: i64,
    compacted: i64,
    keep: i64,
    batch: usize,
) -> OpResult<(i64, bool)> {
    let target = newest.saturating_sub(keep.max(0));
    if target <= compacted {
        return Ok((compacted, true));
    }
    let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
    // The first row beyond this batch, if the batch does not reach the target.
    let beyond: Option<i64> = tx
        .query_opt(
            "SELECT revision FROM changes WHERE cluster = $1 AND revision <= $2
             ORDER BY revision LIMIT 1 OFFSET $3",
            &[&cluster, &target, &batch],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let point = beyond.map_or(target, |r| r - 1);
    tx.execute(
        "DELETE FROM changes WHERE cluster = $1 AND revision > $2 AND revision <= $3",
        &[&cluster, &compacted, &point],
    )
    .await?;
    tx.execute(
        "UPDATE meta SET compacted_revision = $2 WHERE cluster = $1",
        &[&cluster, &point],
    )
    .await?;
    Ok((point, point == target))
}
