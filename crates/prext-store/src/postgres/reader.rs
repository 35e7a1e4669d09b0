//! Reads: point reads on the short-operation pool, and list streams on their own pool.
//!
//! A list runs in a `REPEATABLE READ READ ONLY` transaction: the counter row read first fixes
//! the snapshot, so the list's revision and its rows come from the same state. Rows come
//! through a portal, [`PostgresOptions::list_fetch`](super::PostgresOptions::list_fetch) at a
//! time, into a bounded channel: a list of any size holds only a few bodies in memory, and a
//! slow consumer holds back its own stream (and connection) only.

use bytes::Bytes;
use deadpool_postgres::{GenericClient, Object, Pool};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::IsolationLevel;

use super::error::{pg_error, pool_error};
use super::select::{Param, Predicate};
use crate::rows::ChangeRow;
use crate::{Change, Error, ListItem, ListOptions, ListStream, ObjectKey, Result, StoredObject};

/// The object at `key`.
pub(crate) async fn get(client: &Object, cluster: &str, key: &ObjectKey) -> Result<Option<StoredObject>> {
    let stmt = client
        .prepare_cached(
            "SELECT uid, revision, body FROM objects
             WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND name = $4",
        )
        .await
        .map_err(pg_error)?;
    let row = client
        .query_opt(&stmt, &[&cluster, &key.resource, &key.namespace, &key.name])
        .await
        .map_err(pg_error)?;
    row.map(|r| {
        Ok(StoredObject {
            key: key.clone(),
            uid: r.try_get(0)?,
            revision: r.try_get(1)?,
            body: Bytes::from(r.try_get::<_, String>(2)?),
        })
    })
    .transpose()
    .map_err(pg_error)
}

/// `(revision, compacted_revision)` of `cluster`.
pub(crate) async fn meta(client: &impl GenericClient, cluster: &str) -> Result<(i64, i64)> {
    let stmt = client
        .prepare_cached("SELECT revision, compacted_revision FROM meta WHERE cluster = $1")
        .await
        .map_err(pg_error)?;
    let row = client.query_opt(&stmt, &[&cluster]).await.map_err(pg_error)?;
    let row =
        row.ok_or_else(|| Error::internal(format!("the counter row of cluster {cluster:?} is missing")))?;
    Ok((
        row.try_get(0).map_err(pg_error)?,
        row.try_get(1).map_err(pg_error)?,
    ))
}

/// Objects per resource of one cluster.
pub(crate) async fn object_counts(client: &impl GenericClient, cluster: &str) -> Result<Vec<(String, i64)>> {
    let stmt = client
        .prepare_cached(
            "SELECT resource, count(*) FROM objects WHERE cluster = $1 GROUP BY resource ORDER BY resource",
        )
        .await
        .map_err(pg_error)?;
    let rows = client.query(&stmt, &[&cluster]).await.map_err(pg_error)?;
    rows.iter()
        .map(|r| Ok((r.try_get(0).map_err(pg_error)?, r.try_get(1).map_err(pg_error)?)))
        .collect()
}

/// Up to `limit` changes after `after`, checked against the compaction point. One statement,
/// so one snapshot: the compaction point and the rows agree.
pub(crate) async fn changes(client: &Object, cluster: &str, after: i64, limit: usize) -> Result<Vec<Change>> {
    let stmt = client
        .prepare_cached(
            // The newest change of a key keeps no body (schema version 5) and no labels
            // (version 14): they are the object's.
            "SELECT m.compacted_revision, c.revision, c.event, c.resource, c.namespace, c.name,
                    coalesce(c.body, o.body), coalesce(c.labels, o.labels), c.prev_labels
             FROM meta m
             LEFT JOIN LATERAL (
                 SELECT * FROM changes
                 WHERE cluster = m.cluster AND revision > $2
                 ORDER BY revision LIMIT $3
             ) c ON true
             LEFT JOIN LATERAL (
                 SELECT o.body, o.labels FROM objects o
                 WHERE (c.body IS NULL OR c.labels IS NULL) AND o.cluster = c.cluster
                   AND o.resource = c.resource AND o.namespace = c.namespace AND o.name = c.name
                   AND o.revision = c.revision
             ) o ON true
             WHERE m.cluster = $1
             ORDER BY c.revision",
        )
        .await
        .map_err(pg_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(&stmt, &[&cluster, &after, &limit])
        .await
        .map_err(pg_error)?;
    let Some(first) = rows.first() else {
        return Err(Error::internal(format!(
            "the counter row of cluster {cluster:?} is missing"
        )));
    };
    let oldest: i64 = first.try_get(0).map_err(pg_error)?;
    if after < oldest {
        return Err(Error::Compacted {
            requested: after,
            oldest,
        });
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(revision) = r.try_get::<_, Option<i64>>(1).map_err(pg_error)? else {
            continue; // The meta row alone: no change after `after`.
        };
        let row = ChangeRow {
            revision,
            event: r.try_get::<_, &str>(2).map_err(pg_error)?,
            key: ObjectKey::new(
                r.try_get::<_, String>(3).map_err(pg_error)?,
                r.try_get::<_, String>(4).map_err(pg_error)?,
                r.try_get::<_, String>(5).map_err(pg_error)?,
            ),
            body: r.try_get(6).map_err(pg_error)?,
            labels: r.try_get::<_, Value>(7).map_err(pg_error)?,
            prev_labels: r.try_get(8).map_err(pg_error)?,
        };
        out.push(row.parse()?);
    }
    Ok(out)
}

/// The query of a list, and its parameters.
pub(crate) fn list_query(cluster: &str, opts: &ListOptions) -> Predicate {
    let mut p = Predicate::default();
    let c = p.bind(Param::Text(cluster.to_owned()), "text");
    p.push(format!("cluster = {c}"));
    let r = p.bind(Param::Text(opts.resource.clone()), "text");
    p.push(format!("resource = {r}"));
    match (&opts.namespace, &opts.after) {
        (None, None) => {}
        (None, Some((after_ns, after_name))) => {
            let ns = p.bind(Param::Text(after_ns.clone()), "text");
            let name = p.bind(Param::Text(after_name.clone()), "text");
            p.push(format!("(namespace, name) > ({ns}, {name})"));
        }
        (Some(ns), after) => {
            let bound = p.bind(Param::Text(ns.clone()), "text");
            p.push(format!("namespace = {bound}"));
            // Within one namespace the key range is a name range.
            match after
                .as_ref()
                .map(|(after_ns, name)| (after_ns.as_str().cmp(ns.as_str()), name))
            {
                None | Some((std::cmp::Ordering::Less, _)) => {}
                Some((std::cmp::Ordering::Equal, name)) => {
                    let name = p.bind(Param::Text(name.clone()), "text");
                    p.push(format!("name > {name}"));
                }
                Some((std::cmp::Ordering::Greater, _)) => p.push("false"),
            }
        }
    }
    p.labels(&opts.labels);
    p.fields(&opts.fields);
    p
}

/// Starts a list: returns once the snapshot is taken, then streams its rows from a task.
pub(crate) async fn list(pool: &Pool, cluster: &str, opts: ListOptions, fetch: usize) -> Result<ListStream> {
    let client = pool.get().await.map_err(pool_error)?;
    let (revision_tx, revision_rx) = oneshot::channel();
    let (items_tx, items_rx) = mpsc::channel(fetch.max(1));
    let cluster = cluster.to_owned();
    tokio::spawn(async move {
        let mut client = client;
        let mut revision_tx = Some(revision_tx);
        let outcome = stream_list(
            &mut client,
            &cluster,
            &opts,
            fetch.max(1),
            &mut revision_tx,
            &items_tx,
        )
        .await;
        if let Err(e) = outcome {
            match revision_tx.take() {
                Some(tx) => drop(tx.send(Err(e))),
                None => drop(items_tx.send(Err(e)).await),
            }
        }
    });
    let revision = revision_rx
        .await
        .map_err(|_| Error::Internal("list task ended before reading".into()))??;
    Ok(ListStream {
        revision,
        items: items_rx,
    })
}

async fn stream_list(
    client: &mut Object,
    cluster: &str,
    opts: &ListOptions,
    fetch: usize,
    revision_tx: &mut Option<oneshot::Sender<Result<i64>>>,
    items: &mpsc::Sender<Result<ListItem>>,
) -> Result<()> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg_error)?;
    // The first statement takes the snapshot.
    let (revision, _) = meta(&tx, cluster).await?;

    let p = list_query(cluster, opts);
    let mut sql = format!(
        "SELECT namespace, name, uid, revision, body FROM objects{} ORDER BY namespace, name",
        p.where_sql()
    );
    if let Some(limit) = opts.limit {
        // One more than asked, to know whether to announce more.
        sql.push_str(&format!(
            " LIMIT {}",
            i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
        ));
    }
    let portal = tx.bind(sql.as_str(), &p.param_refs()).await.map_err(pg_error)?;
    if let Some(tx) = revision_tx.take() {
        if tx.send(Ok(revision)).is_err() {
            return Ok(()); // The caller is gone.
        }
    }
    let chunk = i32::try_from(fetch).unwrap_or(i32::MAX);
    let mut sent = 0usize;
    loop {
        let rows = tx.query_portal(&portal, chunk).await.map_err(pg_error)?;
        let last_chunk = rows.len() < fetch;
        for row in rows {
            let item = if opts.limit.is_some_and(|limit| sent >= limit) {
                ListItem::More
            } else {
                ListItem::Object(StoredObject {
                    key: ObjectKey::new(
                        opts.resource.clone(),
                        row.try_get::<_, String>(0).map_err(pg_error)?,
                        row.try_get::<_, String>(1).map_err(pg_error)?,
                    ),
                    uid: row.try_get(2).map_err(pg_error)?,
                    revision: row.try_get(3).map_err(pg_error)?,
                    body: Bytes::from(row.try_get::<_, String>(4).map_err(pg_error)?),
                })
            };
            let more = item == ListItem::More;
            if items.send(Ok(item)).await.is_err() || more {
                return Ok(()); // The consumer stopped reading, or the page is full.
            }
            sent += 1;
        }
        if last_chunk {
            break;
        }
    }
    // Read-only: ending it either way is the same; commit says "done" to the server.
    tx.commit().await.map_err(pg_error)
}
