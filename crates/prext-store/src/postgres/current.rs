//! The current row of an object, which every write is checked against (`ops.rs`): read one
//! key at a time ([`current`]) or for a whole batch in one statement ([`currents`]).

use deadpool_postgres::Transaction;
use serde_json::Value;

use crate::write::CurrentRow;
use crate::ObjectKey;

/// The row of an existing object that writes check against.
pub(crate) struct Current {
    pub(super) id: i64,
    pub(super) uid: String,
    pub(super) revision: i64,
    pub(super) labels: Value,
    pub(super) deleting: bool,
    /// The digest of the object's result rows as written (NULL before schema version 3).
    pub(super) results_digest: Option<Vec<u8>>,
    /// Only read for deletes.
    pub(super) body: Option<String>,
    /// How many result rows the object has (`result_counts`): an update that replaces many
    /// hands them to the purge instead of deleting them in the writer's transaction.
    pub(super) results: i64,
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

impl Current {
    fn from_row(row: &tokio_postgres::Row, first: usize) -> Result<Current, tokio_postgres::Error> {
        Ok(Current {
            id: row.try_get(first)?,
            uid: row.try_get(first + 1)?,
            revision: row.try_get(first + 2)?,
            labels: row.try_get(first + 3)?,
            deleting: row.try_get(first + 4)?,
            results_digest: row.try_get(first + 5)?,
            body: row.try_get(first + 6)?,
            results: row.try_get(first + 7)?,
        })
    }
}

/// The object's result rows, counted from its `result_counts` (a few rows, by primary key).
macro_rules! result_rows {
    ($id:literal) => {
        concat!(
            "(SELECT coalesce(sum(n), 0) FROM result_counts WHERE object_id = ",
            $id,
            ")::bigint"
        )
    };
}

const CURRENT: &str = concat!(
    "SELECT id, uid, revision, labels, deleting, results_digest, CASE WHEN $5 THEN body END, ",
    result_rows!("objects.id"),
    "
     FROM objects
     WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND name = $4"
);

/// The current row of one object (`body` only when asked: deletes need it).
pub(crate) async fn current(
    tx: &Transaction<'_>,
    cluster: &str,
    key: &ObjectKey,
    body: bool,
) -> Result<Option<Current>, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(CURRENT).await?;
    let row = tx
        .query_opt(
            &stmt,
            &[&cluster, &key.resource, &key.namespace, &key.name, &body],
        )
        .await?;
    row.map(|r| Current::from_row(&r, 0)).transpose()
}

/// One index probe per key: a plain join lets the planner pick a hash join over the whole
/// table while it is small or its statistics stale, and costs more to plan on every run.
const CURRENTS: &str = concat!(
    "SELECT k.i, o.id, o.uid, o.revision, o.labels, o.deleting, o.results_digest,
            CASE WHEN k.body THEN o.body END, ",
    result_rows!("o.id"),
    "
     FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[])
              WITH ORDINALITY AS k(resource, namespace, name, body, i)
     CROSS JOIN LATERAL (
         SELECT * FROM objects
         WHERE cluster = $1 AND resource = k.resource AND namespace = k.namespace AND name = k.name
         LIMIT 1
     ) AS o"
);

/// The current rows of many objects in one statement, in the order of `keys` (`true` beside a
/// key asks for its body).
pub(crate) async fn currents(
    tx: &Transaction<'_>,
    cluster: &str,
    keys: &[(&ObjectKey, bool)],
) -> Result<Vec<Option<Current>>, tokio_postgres::Error> {
    let column = |f: fn(&ObjectKey) -> &str| keys.iter().map(|(k, _)| f(k)).collect::<Vec<_>>();
    let bodies: Vec<bool> = keys.iter().map(|(_, b)| *b).collect();
    let stmt = tx.prepare_cached(CURRENTS).await?;
    let rows = tx
        .query(
            &stmt,
            &[
                &cluster,
                &column(|k| &k.resource),
                &column(|k| &k.namespace),
                &column(|k| &k.name),
                &bodies,
            ],
        )
        .await?;
    let mut found: Vec<Option<Current>> = keys.iter().map(|_| None).collect();
    for row in rows {
        let i: i64 = row.try_get(0)?;
        if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| found.get_mut(i)) {
            *slot = Some(Current::from_row(&row, 1)?);
        }
    }
    Ok(found)
}
