//! The SQLite backend: the default, embedded store of a single prext replica.
//!
//! Layout (the tables are documented for analysts in `docs/schema.md`):
//! - [`checkpointer`]: the thread that checkpoints the WAL off the writer thread;
//! - [`schema`]: connection settings (WAL, `synchronous=NORMAL` with the syncer's fsync before
//!   each answer, foreign keys) and versioned migrations;
//! - [`lock`]: the file lock that keeps a second server off the same database;
//! - [`backup`]: online backup and offline restore (with a revision jump) of a database;
//! - [`writer`] and [`ops`]: the single writer thread with group commit, and the SQL of each
//!   write; [`syncer`]: the thread that fsyncs committed batches and answers them while the
//!   writer goes on; [`prepared`]: what of a write is done before it reaches the writer (JSON, derived
//!   rows); [`result_rows`]: the writes of a report's result rows; [`purge`] and [`staging`]:
//!   a large delete's rows removed, and a large create's or update's rows written, in chunks
//!   between other writes;
//! - [`reader`] and [`select`]: the read-only connection pool, snapshot list streams, and
//!   selectors lowered to SQL;
//! - [`results`]: result queries and summaries (the `results.prext.io` API); [`statistics`]:
//!   the planner statistics the writer keeps in step with the data;
//! - [`indexer`] and [`findings`]: the findings indexer thread that follows the change log, and
//!   its SQL; [`findings_read`]: findings reads, which wait for the indexer;
//! - [`release`]: the connections' page caches emptied while the server is idle.
//!
//! No call blocks the async runtime: writes are queued to the writer thread and awaited on a
//! oneshot; reads run on blocking threads.

mod backup;
mod body;
#[cfg(test)]
mod body_tests;
mod checkpointer;
mod findings;
mod findings_read;
#[cfg(test)]
mod findings_tests;
mod hints;
mod indexer;
#[cfg(test)]
mod indexer_tests;
mod lock;
mod ops;
mod prepared;
pub(crate) use prepared::number;
mod purge;
mod reader;
mod release;
mod result_rows;
mod results;
mod schema;
mod select;
mod size;
mod staging;
mod statistics;
#[cfg(test)]
mod subject_uid_tests;
mod syncer;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::ErrorCode;
use tokio::sync::{oneshot, watch};

pub use self::backup::{backup, restore, BackupInfo, RestoreInfo, DEFAULT_REVISION_BUMP};
use self::checkpointer::Checkpointer;
use self::hints::Hints;
use self::indexer::{Indexer, Waiting};
use self::lock::DbLock;
use self::prepared::Prepared;
use self::reader::Readers;
use self::syncer::Syncer;
use self::writer::Limits;
pub(crate) use crate::write::closed_error;
use crate::write::WriteQueue;
use crate::{
    Cause, Change, Error, ListOptions, ListStream, ObjectKey, ObjectWrite, Preconditions, Result, Store,
    StoredObject,
};

/// Tuning of a [`SqliteStore`]. The defaults suit a single server.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Concurrent point reads (get, changes, revision), each on its own read-only connection.
    pub readers: usize,
    /// Concurrent list streams; each holds a read-only connection (and a WAL snapshot) until
    /// its consumer has read it all.
    pub max_lists: usize,
    /// Objects buffered per list stream ahead of its consumer.
    pub list_buffer: usize,
    /// How long a statement waits on a database lock before failing as unavailable.
    pub busy_timeout: Duration,
    /// Writes waiting for the writer thread; further writers wait for room.
    pub queue: usize,
    /// Most writes committed in one transaction.
    pub batch_ops: usize,
    /// Most body bytes written in one transaction (the batch closes once it is reached).
    pub batch_bytes: usize,
    /// Change rows dropped per compaction transaction.
    pub compact_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: 4,
            max_lists: 32,
            list_buffer: 64,
            busy_timeout: Duration::from_secs(5),
            queue: 1024,
            batch_ops: 256,
            batch_bytes: 16 * 1024 * 1024,
            compact_batch: 1000,
        }
    }
}

/// A [`Store`] in one SQLite database file, for a single server replica.
pub struct SqliteStore {
    path: PathBuf,
    /// The writer thread's queue (closed by [`Store::close`]).
    writer: WriteQueue<Prepared>,
    /// Fires when the writer thread has drained its queue and checkpointed.
    writer_done: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    readers: Arc<Readers>,
    published: watch::Receiver<i64>,
    /// The findings indexer's cursor, and its thread (`None` once closed).
    indexed: watch::Receiver<i64>,
    /// The findings reads waiting for the indexer (it gathers changes while there are none).
    waiting: Waiting,
    indexer: Mutex<Option<Indexer>>,
    /// Asks the writer and the indexer to empty their page caches.
    release: [release::Asker; 2],
    lock: Mutex<Option<DbLock>>,
    compact_batch: usize,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, brings its schema up to date and
    /// starts the writer thread.
    ///
    /// Fails with [`Error::Unavailable`] if another store (in this or another process) holds
    /// the database. This does blocking file I/O: call it before serving, or from
    /// `spawn_blocking`.
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<SqliteStore> {
        let lock = DbLock::acquire(path)?;
        let context = |e: Error| match e {
            Error::Unavailable(c) => Error::Unavailable(c.context(format!("opening {}", path.display()))),
            Error::Internal(c) => Error::Internal(c.context(format!("opening {}", path.display()))),
            other => other,
        };
        let mut conn = schema::open_writer(path, opts.busy_timeout).map_err(context)?;
        schema::migrate(&mut conn).map_err(context)?;
        let (revision, _) = reader::meta(&conn).map_err(context)?;
        let readers = Readers::new(
            path.to_owned(),
            opts.busy_timeout,
            opts.readers,
            opts.max_lists,
            opts.list_buffer,
        )
        .map_err(context)?;

        let (published_tx, published) = watch::channel(revision);
        let checkpointer = schema::open_checkpointer(path, opts.busy_timeout)
            .and_then(|c| {
                Checkpointer::start(c, published.clone())
                    .map_err(|e| Error::internal(format!("cannot start the checkpointer thread: {e}")))
            })
            .map_err(context)?;
        let indexer_conn = schema::open_writer(path, opts.busy_timeout).map_err(context)?;
        let cursor = indexer_conn
            .query_row("SELECT revision FROM findings_cursor WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(db_error)
            .map_err(context)?;
        let (indexed_tx, indexed) = watch::channel(cursor);
        let (release_indexer, indexer_release) = release::channel();
        let hints = Hints::default();
        let waiting = Waiting::default();
        let indexer = Indexer::start(
            indexer_conn,
            published.clone(),
            indexed_tx,
            indexer_release,
            hints.clone(),
            waiting.clone(),
        )
        .map_err(|e| Error::internal(format!("cannot start the findings indexer thread: {e}")))?;
        let (writer, rx) = WriteQueue::new(opts.queue, "SQLite");
        let (done_tx, done_rx) = oneshot::channel();
        let (release_writer, writer_release) = release::channel();
        let limits = Limits {
            ops: opts.batch_ops.max(1),
            bytes: opts.batch_bytes.max(1),
        };
        let syncer = Syncer::start(path, published_tx)
            .map_err(|e| Error::internal(format!("cannot start the syncer thread: {e}")))?;
        let helpers = writer::Helpers {
            syncer,
            checkpointer,
            release: writer_release,
        };
        std::thread::Builder::new()
            .name("prext-sqlite-writer".into())
            .spawn(move || {
                writer::run(conn, rx, limits, helpers, &hints);
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::internal(format!("cannot start the writer thread: {e}")))?;
        tracing::info!(path = %path.display(), revision, "opened SQLite store");

        Ok(SqliteStore {
            path: path.to_owned(),
            writer,
            writer_done: tokio::sync::Mutex::new(Some(done_rx)),
            readers,
            published,
            indexed,
            waiting,
            indexer: Mutex::new(Some(indexer)),
            release: [release_writer, release_indexer],
            lock: Mutex::new(Some(lock)),
            compact_batch: opts.compact_batch.max(1),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until the findings indexer has applied every write acknowledged before the call
    /// (read-your-writes of findings reads), at most [`INDEX_WAIT`].
    ///
    /// [`INDEX_WAIT`]: crate::findings_index::INDEX_WAIT
    async fn wait_indexed(&self) -> Result<()> {
        let target = *self.published.borrow();
        // The indexer stops gathering changes while a read waits.
        let _waiting = self.waiting.enter();
        let mut indexed = self.indexed.clone();
        // One process indexes this database: the local cursor is the persisted one.
        crate::findings_index::wait_indexed(
            &mut indexed,
            target,
            crate::findings_index::INDEX_WAIT,
            || async { Ok(None) },
        )
        .await
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>> {
        let key = key.clone();
        self.readers.read(move |conn| reader::get(conn, &key)).await
    }

    async fn list(&self, opts: ListOptions) -> Result<ListStream> {
        self.readers.list(opts).await
    }

    async fn create(&self, obj: ObjectWrite) -> Result<StoredObject> {
        self.writer.create(obj).await
    }

    async fn update(&self, obj: ObjectWrite, expected_revision: i64) -> Result<StoredObject> {
        self.writer.update(obj, expected_revision).await
    }

    async fn delete(&self, key: &ObjectKey, pre: Preconditions) -> Result<StoredObject> {
        self.writer.delete(key, pre).await
    }

    async fn revision(&self) -> Result<i64> {
        self.readers
            .read(|conn| reader::meta(conn).map(|(rev, _)| rev))
            .await
    }

    async fn oldest_revision(&self) -> Result<i64> {
        self.readers
            .read(|conn| reader::meta(conn).map(|(_, oldest)| oldest))
            .await
    }

    async fn object_counts(&self) -> Result<Vec<(String, i64)>> {
        self.readers.read(|conn| reader::object_counts(conn)).await
    }

    async fn changes(&self, after: i64, limit: usize) -> Result<Vec<Change>> {
        self.readers
            .read(move |conn| reader::changes(conn, after, limit))
            .await
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.published.clone()
    }

    async fn compact(&self, keep: i64) -> Result<i64> {
        // Compaction never drops a change the findings indexer has not applied (it stops at
        // the cursor): give the indexer its bounded wait to catch up first.
        match self.wait_indexed().await {
            Ok(()) | Err(Error::IndexBehind { .. }) => {}
            Err(e) => return Err(e),
        }
        self.writer.compact(keep, self.compact_batch).await
    }

    async fn ping(&self) -> Result<()> {
        self.writer.alive()?;
        self.readers.read(|conn| reader::meta(conn).map(drop)).await
    }

    async fn size_bytes(&self) -> Result<Option<u64>> {
        self.readers
            .read(|conn| crate::sqlite::size::used_bytes(conn).map(Some))
            .await
    }

    async fn query_results(&self, query: crate::results::ResultQuery) -> Result<crate::results::ResultPage> {
        self.readers.read(move |conn| results::query(conn, &query)).await
    }

    async fn query_findings(
        &self,
        query: crate::findings::FindingQuery,
    ) -> Result<crate::findings::FindingPage> {
        self.wait_indexed().await?;
        self.readers
            .read(move |conn| findings_read::query(conn, &query))
            .await
    }

    async fn finding_trends(&self, query: crate::findings::TrendQuery) -> Result<crate::findings::Trends> {
        self.wait_indexed().await?;
        self.readers
            .read(move |conn| findings_read::trends(conn, &query))
            .await
    }

    async fn prune_findings(&self, before: i64) -> Result<u64> {
        if self.writer.is_closed() {
            return Err(closed_error());
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || findings::prune(&path, before))
            .await
            .map_err(|e| Error::internal(format!("pruning findings: {e}")))?
    }

    async fn summarize_results(
        &self,
        query: crate::results::SummaryQuery,
    ) -> Result<crate::results::Summary> {
        self.readers
            .read(move |conn| results::summarize(conn, &query))
            .await
    }

    async fn release_memory(&self) {
        let readers = Arc::clone(&self.readers);
        let pooled = tokio::task::spawn_blocking(move || readers.release_memory());
        for thread in &self.release {
            thread.ask().await;
        }
        let _ = pooled.await;
    }

    async fn close(&self) {
        self.writer.close();
        // The writer drains what is queued, checkpoints the WAL and stops.
        if let Some(done) = self.writer_done.lock().await.take() {
            let _ = done.await;
        }
        // With the writer stopped, the indexer applies the last changes and stops.
        let indexer = self.indexer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(indexer) = indexer {
            let _ = tokio::task::spawn_blocking(move || indexer.join()).await;
        }
        self.readers.close();
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
        tracing::info!(path = %self.path.display(), "closed SQLite store");
    }
}

/// Maps a SQLite error (kept as the cause's source): a full disk is [`Error::DiskFull`];
/// transient conditions (busy, locked, I/O, ...) are [`Error::Unavailable`]; anything else is
/// a bug or corruption, [`Error::Internal`].
pub(crate) fn db_error(e: rusqlite::Error) -> Error {
    if is_disk_full(&e) {
        return Error::DiskFull(Cause::with_source(format!("sqlite: {e}"), e));
    }
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::OutOfMemory
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OperationInterrupted,
        ) => Error::Unavailable(Cause::with_source(format!("sqlite: {e}"), e)),
        _ => Error::Internal(Cause::with_source(format!("sqlite: {e}"), e)),
    }
}

/// SQLITE_FULL, or an I/O error whose cause is ENOSPC (SQLite reports a failed append to the
/// WAL as SQLITE_IOERR_WRITE with errno ENOSPC).
fn is_disk_full(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            f.code == ErrorCode::DiskFull
                || (f.code == ErrorCode::SystemIoFailure
                    && msg
                        .as_deref()
                        .is_some_and(|m| m.contains("No space left on device")))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::ffi;

    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn transient_errors_are_unavailable() {
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_CANTOPEN,
        ] {
            assert!(matches!(db_error(failure(code)), Error::Unavailable(_)), "{code}");
        }
        // A full disk is not transient: its own error, answered 507 by the server.
        match db_error(failure(ffi::SQLITE_FULL)) {
            // The driver's error stays the cause's source, as for the other kinds.
            Error::DiskFull(cause) => assert!(std::error::Error::source(&cause).is_some(), "{cause}"),
            other => panic!("SQLITE_FULL: want DiskFull, got {other:?}"),
        }
        for code in [ffi::SQLITE_CORRUPT, ffi::SQLITE_CONSTRAINT, ffi::SQLITE_MISMATCH] {
            assert!(matches!(db_error(failure(code)), Error::Internal(_)), "{code}");
        }
        assert!(matches!(
            db_error(rusqlite::Error::QueryReturnedNoRows),
            Error::Internal(_)
        ));
    }

    /// The driver's error stays reachable as the source, also once context is added.
    #[test]
    fn errors_keep_the_driver_error_as_their_source() {
        use std::error::Error as _;
        let Error::Unavailable(cause) = db_error(failure(ffi::SQLITE_BUSY)) else {
            panic!("busy is unavailable");
        };
        let cause = cause.context("opening x.db");
        assert!(cause.message().starts_with("opening x.db: sqlite: "), "{cause}");
        let source = cause.source().expect("a source");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some(), "{source:?}");
        let err = Error::Unavailable(cause);
        let chain = err
            .source()
            .and_then(|c| c.source())
            .expect("error → cause → driver");
        assert!(chain.downcast_ref::<rusqlite::Error>().is_some());
        assert!(Error::internal("plain")
            .source()
            .is_some_and(|c| c.source().is_none()));
    }
}
