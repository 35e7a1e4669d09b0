//! Reads: a small pool of read-only connections, used from blocking threads.
//!
//! Point reads (get, revision, changes, ping) and list streams take permits from separate
//! semaphores, so slow list consumers cannot starve the short reads. A list runs in one read
//! transaction (one WAL snapshot): its revision and its rows come from the same state. Rows
//! are sent one by one into a bounded channel, so a list of any size holds only a few bodies in
//! memory; a slow consumer blocks its reading thread, not the others.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::body::{self, Body};
use super::select::Predicate;
use super::{closed_error, db_error, schema};
use crate::rows::ChangeRow;
use crate::{Change, Error, ListItem, ListOptions, ListStream, ObjectKey, Result, StoredObject};

/// The read side of a SQLite store.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    point: Arc<Semaphore>,
    lists: Arc<Semaphore>,
    list_buffer: usize,
    closed: AtomicBool,
}

/// A pooled connection, returned to the pool on drop.
struct Lease {
    conn: Option<Connection>,
    readers: Arc<Readers>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Lease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.readers.closed.load(Ordering::Acquire) {
                let mut idle = self.readers.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < self.readers.max_idle {
                    idle.push(conn);
                }
            }
        }
    }
}

impl Readers {
    /// A pool of up to `point` concurrent point reads and `lists` concurrent list streams,
    /// each list buffering `list_buffer` items. Opens one connection now to fail early.
    pub(crate) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        point: usize,
        lists: usize,
        list_buffer: usize,
    ) -> Result<Arc<Readers>> {
        let first = schema::open_reader(&path, busy_timeout)?;
        Ok(Arc::new(Readers {
            path,
            busy_timeout,
            idle: Mutex::new(vec![first]),
            max_idle: point.max(1),
            point: Arc::new(Semaphore::new(point.max(1))),
            lists: Arc::new(Semaphore::new(lists.max(1))),
            list_buffer: list_buffer.max(1),
            closed: AtomicBool::new(false),
        }))
    }

    /// Refuses new reads and drops idle connections; running list streams finish on their own.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.point.close();
        self.lists.close();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Empties the page caches of the pooled connections (those in use keep theirs).
    pub(crate) fn release_memory(&self) {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        for conn in idle.iter() {
            super::release::shrink(conn);
        }
    }

    fn lease(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Result<Lease> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open_reader(&self.path, self.busy_timeout)?,
        };
        Ok(Lease {
            conn: Some(conn),
            readers: Arc::clone(self),
            _permit: permit,
        })
    }

    /// Runs a short read on a pooled connection in a blocking thread.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.point)
            .acquire_owned()
            .await
            .map_err(|_| closed_error())?;
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut lease = this.lease(permit)?;
            f(&mut lease)
        })
        .await
        .map_err(|e| Error::internal(format!("read task failed: {e}")))?
    }

    /// Starts a list: returns once the snapshot is taken, then streams its rows.
    pub(crate) async fn list(self: &Arc<Self>, opts: ListOptions) -> Result<ListStream> {
        let permit = Arc::clone(&self.lists)
            .acquire_owned()
            .await
            .map_err(|_| closed_error())?;
        let (revision_tx, revision_rx) = oneshot::channel();
        let (items_tx, items_rx) = mpsc::channel(self.list_buffer);
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut revision_tx = Some(revision_tx);
            let outcome = this
                .lease(permit)
                .and_then(|mut lease| stream_list(&mut lease, &opts, &mut revision_tx, &items_tx));
            if let Err(e) = outcome {
                match revision_tx.take() {
                    Some(tx) => drop(tx.send(Err(e))),
                    None => drop(items_tx.blocking_send(Err(e))),
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
}

/// Reads one list snapshot into `items`. The revision goes to `revision_tx` once the snapshot
/// is open; an error before that is the caller's to send there.
fn stream_list(
    conn: &mut Connection,
    opts: &ListOptions,
    revision_tx: &mut Option<oneshot::Sender<Result<i64>>>,
    items: &mpsc::Sender<Result<ListItem>>,
) -> Result<()> {
    let tx = conn.transaction().map_err(db_error)?;
    let revision: i64 = tx
        .query_row("SELECT revision FROM meta WHERE id = 1", [], |r| r.get(0))
        .map_err(db_error)?;

    let mut p = Predicate::default();
    p.push("resource = ?", [Value::Text(opts.resource.clone())]);
    match (&opts.namespace, &opts.after) {
        (None, None) => {}
        (None, Some((after_ns, after_name))) => p.push(
            "(namespace, name) > (?, ?)",
            [Value::Text(after_ns.clone()), Value::Text(after_name.clone())],
        ),
        (Some(ns), after) => {
            p.push("namespace = ?", [Value::Text(ns.clone())]);
            // Within one namespace the key range is a name range, which the index serves
            // without sorting (a row-value bound here would make SQLite sort).
            match after.as_ref().map(|(after_ns, name)| (after_ns.cmp(ns), name)) {
                None | Some((std::cmp::Ordering::Less, _)) => {}
                Some((std::cmp::Ordering::Equal, name)) => p.push("name > ?", [Value::Text(name.clone())]),
                Some((std::cmp::Ordering::Greater, _)) => p.push("0", []),
            }
        }
    }
    p.labels(&opts.labels);
    p.fields(&opts.fields);
    let mut sql = format!(
        "SELECT namespace, name, uid, revision, body FROM objects{} ORDER BY namespace, name",
        p.where_sql()
    );
    if let Some(limit) = opts.limit {
        // One more than asked, to know whether to announce more.
        sql.push_str(" LIMIT ?");
        p.params
            .push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1));
    }
    let mut stmt = tx.prepare(&sql).map_err(db_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(p.params.iter()))
        .map_err(db_error)?;

    if let Some(tx) = revision_tx.take() {
        if tx.send(Ok(revision)).is_err() {
            return Ok(()); // The caller is gone.
        }
    }
    let mut sent = 0usize;
    while let Some(row) = rows.next().map_err(db_error)? {
        let item = if opts.limit.is_some_and(|limit| sent >= limit) {
            ListItem::More
        } else {
            ListItem::Object(StoredObject {
                key: ObjectKey::new(
                    opts.resource.clone(),
                    row.get::<_, String>(0).map_err(db_error)?,
                    row.get::<_, String>(1).map_err(db_error)?,
                ),
                uid: row.get(2).map_err(db_error)?,
                revision: row.get(3).map_err(db_error)?,
                body: Bytes::from(row.get::<_, Body>(4).map_err(db_error)?.0),
            })
        };
        let more = item == ListItem::More;
        if items.blocking_send(Ok(item)).is_err() || more {
            break; // The consumer stopped reading, or the page is full.
        }
        sent += 1;
    }
    Ok(())
}

/// The object at `key`.
pub(crate) fn get(conn: &Connection, key: &ObjectKey) -> Result<Option<StoredObject>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT uid, revision, body FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
        )
        .map_err(db_error)?;
    stmt.query_row(params![key.resource, key.namespace, key.name], |r| {
        Ok(StoredObject {
            key: key.clone(),
            uid: r.get(0)?,
            revision: r.get(1)?,
            body: Bytes::from(r.get::<_, Body>(2)?.0),
        })
    })
    .optional()
    .map_err(db_error)
}

/// `(revision, compacted_revision)` from the meta row.
pub(crate) fn meta(conn: &Connection) -> Result<(i64, i64)> {
    conn.query_row(
        "SELECT revision, compacted_revision FROM meta WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(db_error)
}

/// Objects per resource.
pub(crate) fn object_counts(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn
        .prepare_cached("SELECT resource, count(*) FROM objects GROUP BY resource ORDER BY resource")
        .map_err(db_error)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_error)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error)
}

/// Up to `limit` changes after `after`, checked against the compaction point in one snapshot.
pub(crate) fn changes(conn: &mut Connection, after: i64, limit: usize) -> Result<Vec<Change>> {
    let tx = conn.transaction().map_err(db_error)?;
    let (_, oldest) = meta(&tx)?;
    if after < oldest {
        return Err(Error::Compacted {
            requested: after,
            oldest,
        });
    }
    let mut stmt = tx
        .prepare_cached(
            // The newest change of a key keeps no body and no labels: they are the object's
            // (schema versions 5 and 12).
            "SELECT c.revision, c.event, c.resource, c.namespace, c.name,
                    coalesce(c.body, o.body), coalesce(c.labels, o.labels), c.prev_labels
             FROM changes c
             LEFT JOIN objects o ON c.body IS NULL AND o.resource = c.resource
                  AND o.namespace = c.namespace AND o.name = c.name AND o.revision = c.revision
             WHERE c.revision > ?1 ORDER BY c.revision LIMIT ?2",
        )
        .map_err(db_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![after, limit]).map_err(db_error)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db_error)? {
        let revision: i64 = r.get(0).map_err(db_error)?;
        let event: String = r.get(1).map_err(db_error)?;
        let row = ChangeRow {
            revision,
            event: &event,
            key: ObjectKey::new(
                r.get::<_, String>(2).map_err(db_error)?,
                r.get::<_, String>(3).map_err(db_error)?,
                r.get::<_, String>(4).map_err(db_error)?,
            ),
            body: body::optional_string(r.get(5).map_err(db_error)?)
                .map_err(|e| Error::internal(format!("a stored change body: {e}")))?,
            labels: r.get::<_, String>(6).map_err(db_error)?,
            prev_labels: r.get(7).map_err(db_error)?,
        };
        out.push(row.parse()?);
    }
    Ok(out)
}
