//! Findings over time, recorded in the transaction of each write (schema version 4; semantics
//! in [`crate::findings`]): after a report's result rows are written or removed, the database
//! function `prext_record_findings` recomputes the findings it carries; an update that keeps
//! its result rows only marks them seen.

use deadpool_postgres::Transaction;

use crate::ObjectKey;

/// The report whose findings to record.
pub(crate) enum Carrier<'a> {
    /// A row known by id (an update or a delete).
    Id(i64),
    /// A row just inserted, found by its key.
    Key(&'a ObjectKey),
}

const RECORD_BY_ID: &str = "SELECT prext_record_findings($1, $2, $3, $4)";

const RECORD_BY_KEY: &str = "SELECT prext_record_findings($1,
     (SELECT id FROM objects WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND name = $4),
     $5, $6)";

const SEEN: &str = "UPDATE findings SET last_seen = $2, last_seen_revision = $3
     WHERE id IN (SELECT finding_id FROM finding_carriers WHERE object_id = $1)";

/// Recomputes the findings `carrier` carries from its result rows, at the write's time.
pub(crate) async fn record(
    tx: &Transaction<'_>,
    cluster: &str,
    carrier: Carrier<'_>,
    revision: i64,
) -> Result<(), tokio_postgres::Error> {
    let at = crate::findings::now_ms();
    match carrier {
        Carrier::Id(id) => {
            let st = tx.prepare_cached(RECORD_BY_ID).await?;
            tx.execute(&st, &[&cluster, &id, &at, &revision]).await?;
        }
        Carrier::Key(k) => {
            let st = tx.prepare_cached(RECORD_BY_KEY).await?;
            tx.execute(
                &st,
                &[&cluster, &k.resource, &k.namespace, &k.name, &at, &revision],
            )
            .await?;
        }
    }
    Ok(())
}

/// Marks the findings the report `id` carries as seen by the write `revision`.
pub(crate) async fn seen(tx: &Transaction<'_>, id: i64, revision: i64) -> Result<(), tokio_postgres::Error> {
    let at = crate::findings::now_ms();
    let st = tx.prepare_cached(SEEN).await?;
    tx.execute(&st, &[&id, &at, &revision]).await?;
    Ok(())
}
