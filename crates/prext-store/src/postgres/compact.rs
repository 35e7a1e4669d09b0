//! One step of compaction of the change log, run by the writer inside a batch's transaction
//! (its careful path), under the counter lock like every write.

use deadpool_postgres::Transaction;

use super::ops::OpError;

type OpResult<T> = std::result::Result<T, OpError>;

/// One step of compaction: drops up to `batch` change rows at or below `newest - keep`, and
/// never one the findings indexer has not applied yet (above its cursor). `compacted` is the
/// current compaction point. Returns the point reached and whether it is the target.
pub(crate) async fn compact_step(
    tx: &Transaction<'_>,
    cluster: &str,
    newest: i64,
    compacted: i64,
    keep: i64,
    batch: usize,
) -> OpResult<(i64, bool)> {
    let indexed: i64 = tx
        .query_opt(
            "SELECT revision FROM findings_cursor WHERE cluster = $1",
            &[&cluster],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(compacted);
    let target = newest.saturating_sub(keep.max(0)).min(indexed);
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
