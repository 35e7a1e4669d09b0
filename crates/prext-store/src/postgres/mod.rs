//! The PostgreSQL backend: one database shared by any number of prext replicas, and by any
//! number of Kubernetes clusters (each keyed by [`PostgresOptions::cluster`]).
//!
//! Layout (operations are documented in `docs/postgres.md`):
//! - [`config`] and [`tls`]: the store URL, libpq-style `sslmode`, the password's sources;
//! - [`schema`]: versioned migrations under an advisory lock;
//! - [`writer`], [`ops`] and [`result_rows`]: the per-replica writer task with group commit,
//!   and the SQL of each write;
//! - [`reader`] and [`select`]: point reads, snapshot list streams, selectors lowered to SQL;
//! - [`results`]: result queries and summaries, each one statement (one snapshot);
//! - [`notify`]: `LISTEN`/`NOTIFY` plus polling, so a replica learns of other replicas'
//!   writes;
//! - [`indexer`] and [`findings`]: the findings indexer that follows the change log (one per
//!   cluster at a time), and its SQL; [`findings_read`]: findings reads, which wait for it;
//! - [`error`]: what is transient ([`Error::Unavailable`]) and what is not.
//!
//! Revisions come from one counter row per cluster, locked first by every write transaction,
//! so they are strictly increasing and visible in commit order across replicas; the `changes`
//! table is the source of truth of watches. While PostgreSQL is unreachable every operation
//! fails fast with [`Error::Unavailable`]; the pools and the `LISTEN` connection recover by
//! themselves when it is back.

mod compact;
mod config;
mod current;
mod error;
mod findings;
mod findings_read;
mod findings_rows;
mod indexer;
mod notify;
mod ops;
mod prepared;
mod purge;
mod reader;
mod result_rows;
mod result_stats;
mod results;
mod schema;
mod select;
mod staging;
mod statements;
mod statistics;
mod tls;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::config::{PostgresOptions, PostgresUrl, SslMode, PASSWORD_ENV};
use self::error::{pg_error, pool_error, timed_out};
use self::prepared::Prepared;
use self::writer::{Limits, Writer};
use crate::results::{ResultPage, ResultQuery, Summary, SummaryQuery};
pub(crate) use crate::write::closed_error;
use crate::write::WriteQueue;
use crate::{
    Change, Error, ListOptions, ListStream, ObjectKey, ObjectWrite, Preconditions, Result, Store,
    StoredObject,
};

/// A [`Store`] in a PostgreSQL database, for one replica of a horizontally scaled server.
pub struct PostgresStore {
    cluster: String,
    pool: Pool,
    list_pool: Pool,
    list_fetch: usize,
    /// Client-side limit of one point read.
    op_timeout: Duration,
    compact_batch: usize,
    /// The writer task's queue (closed by [`Store::close`]).
    writer: WriteQueue<Prepared>,
    writer_done: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// The listener and the poller.
    feed: Mutex<Vec<JoinHandle<()>>>,
    /// The findings indexer's cursor as this replica last saw it.
    indexed: watch::Receiver<i64>,
    published: Arc<watch::Sender<i64>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// Runs a point read on a pooled connection, once more on a fresh connection if the pooled
/// one turned out to be dead (e.g. PostgreSQL restarted since it was last used), and within
/// the store's client-side time limit.
macro_rules! read {
    ($self:ident, $what:expr, |mut $client:ident| $body:expr) => {
        read!(@ $self, $what, (mut) $client, $body)
    };
    ($self:ident, $what:expr, |$client:ident| $body:expr) => {
        read!(@ $self, $what, () $client, $body)
    };
    (@ $self:ident, $what:expr, ($($mutable:tt)?) $client:ident, $body:expr) => {{
        let mut retried = false;
        loop {
            let $($mutable)? $client = $self.client().await?;
            match tokio::time::timeout($self.op_timeout, $body).await {
                Ok(Err(Error::Unavailable(_))) if !retried && $client.is_closed() => retried = true,
                Ok(outcome) => break outcome,
                Err(_) => {
                    drop(Object::take($client));
                    break Err(timed_out($what));
                }
            }
        }
    }};
}

impl PostgresStore {
    /// Connects to the database at `url`
    /// (`postgres://USER@HOST:PORT/DB?sslmode=verify-full&sslrootcert=FILE`), brings its
    /// schema up to date (safe when several replicas start at once), and starts the writer and
    /// the change feed. Needs a tokio runtime.
    ///
    /// Fails with [`Error::Unavailable`] when the database cannot be reached, and with
    /// [`Error::Internal`] when the URL, the TLS files or the database itself are unusable.
    pub async fn connect(url: &str, opts: PostgresOptions) -> Result<PostgresStore> {
        Self::connect_url(PostgresUrl::parse(url)?, opts).await
    }

    /// Connects with a URL parsed already (see [`crate::open`]).
    pub async fn connect_url(url: PostgresUrl, opts: PostgresOptions) -> Result<PostgresStore> {
        let parsed = url.parsed;
        let tls = tls::connector(&parsed)?;
        let mut pg = parsed.pg;
        if let Some(password) = config::resolve_password(&opts, |name| std::env::var(name).ok())? {
            pg.password(password);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("prext");
        }
        pg.connect_timeout(opts.connect_timeout);
        pg.keepalives_idle(Duration::from_secs(30));
        pg.keepalives_interval(Duration::from_secs(10));
        pg.keepalives_retries(3);
        let statement_ms = opts.statement_timeout.as_millis().max(1);
        // No JIT compilation: the summaries over a million result rows are estimated above
        // `jit_above_cost`, and compiling them took 1.1-1.6 s of 2.7-4.3 s (EXPLAIN ANALYZE,
        // BENCHMARKS.md) for at most a few percent of their execution. Before the URL's own
        // options, which may turn it back on.
        let options = match pg.get_options() {
            Some(existing) => format!("-c jit=off {existing} -c statement_timeout={statement_ms}"),
            None => format!("-c jit=off -c statement_timeout={statement_ms}"),
        };
        pg.options(options);

        // Migrations on a connection of their own, before anything else touches the tables.
        let (mut client, connection) = pg.connect(tls.clone()).await.map_err(pg_error)?;
        let driver = tokio::spawn(connection);
        let migrated = schema::migrate(&mut client, &opts.cluster, opts.migration_timeout).await;
        drop(client);
        let _ = driver.await;
        let version = migrated?;

        let connect_limit = opts.connect_timeout.saturating_mul(2);
        let new_pool = |size: usize, wait: Duration| {
            let manager = Manager::from_config(
                pg.clone(),
                tls.clone(),
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size.max(1))
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(wait))
                .create_timeout(Some(connect_limit))
                .recycle_timeout(Some(connect_limit))
                .build()
                .map_err(|e| Error::internal(format!("postgres: building the pool: {e}")))
        };
        let pool = new_pool(opts.pool_size, opts.statement_timeout)?;
        let list_pool = new_pool(opts.max_lists, opts.statement_timeout)?;
        let client = pool.get().await.map_err(pool_error)?;
        let (revision, _) = reader::meta(&client, &opts.cluster).await?;
        let rows_at_open = statistics::table_rows(&client).await.map_err(pg_error)?;
        drop(client);

        let published = Arc::new(watch::Sender::new(revision));
        let (queue, rx) = WriteQueue::new(opts.queue, "PostgreSQL");
        let batch_timeout = opts.statement_timeout.saturating_add(opts.connect_timeout);
        let writer = Writer {
            pool: pool.clone(),
            cluster: opts.cluster.clone(),
            limits: Limits {
                ops: opts.batch_ops.max(1),
                bytes: opts.batch_bytes.max(1),
            },
            published: Arc::clone(&published),
            batch_timeout,
            rows_at_open,
            grown: AtomicU64::new(0),
        };
        let writer_done = tokio::spawn(writer::run(writer, rx));
        let feed = notify::spawn(notify::Feed {
            pg,
            tls,
            pool: pool.clone(),
            cluster: opts.cluster.clone(),
            published: Arc::clone(&published),
            poll_interval: opts.poll_interval,
            poll_timeout: batch_timeout,
        });
        let cursor = findings::cursor(&pool, &opts.cluster).await?;
        let (indexed_tx, indexed) = watch::channel(cursor);
        let mut feed: Vec<JoinHandle<()>> = feed.into();
        feed.push(indexer::spawn(
            pool.clone(),
            opts.cluster.clone(),
            &published,
            indexed_tx,
        ));
        tracing::info!(cluster = %opts.cluster, revision, schema = version, "connected PostgreSQL store");

        Ok(PostgresStore {
            cluster: opts.cluster,
            pool,
            list_pool,
            list_fetch: opts.list_fetch.max(1),
            op_timeout: batch_timeout,
            compact_batch: opts.compact_batch.max(1),
            writer: queue,
            writer_done: tokio::sync::Mutex::new(Some(writer_done)),
            feed: Mutex::new(feed),
            indexed,
            published,
            closed: AtomicBool::new(false),
        })
    }

    /// The cluster this store serves.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    async fn client(&self) -> Result<Object> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        self.pool.get().await.map_err(pool_error)
    }

    /// Waits until the findings indexer (of whichever replica) has applied every write
    /// committed before the call (read-your-writes of findings reads), at most
    /// [`INDEX_WAIT`](crate::findings_index::INDEX_WAIT).
    async fn wait_indexed(&self) -> Result<()> {
        let target = self.revision().await?;
        let mut indexed = self.indexed.clone();
        crate::findings_index::wait_indexed(
            &mut indexed,
            target,
            crate::findings_index::INDEX_WAIT,
            || async { findings::cursor(&self.pool, &self.cluster).await.map(Some) },
        )
        .await
    }

    fn stop_feed(&self) {
        for task in self.feed.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The feed's tasks hold pool handles; without a close they would outlive the store.
        self.stop_feed();
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>> {
        read!(self, "a read", |c| reader::get(&c, &self.cluster, key))
    }

    async fn list(&self, opts: ListOptions) -> Result<ListStream> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        reader::list(&self.list_pool, &self.cluster, opts, self.list_fetch).await
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
        let (revision, _) = read!(self, "a read", |c| reader::meta(&c, &self.cluster))?;
        publish(&self.published, revision);
        Ok(revision)
    }

    async fn oldest_revision(&self) -> Result<i64> {
        read!(self, "a read", |c| reader::meta(&c, &self.cluster)).map(|(_, oldest)| oldest)
    }

    async fn object_counts(&self) -> Result<Vec<(String, i64)>> {
        read!(self, "a read", |c| reader::object_counts(&c, &self.cluster))
    }

    async fn changes(&self, after: i64, limit: usize) -> Result<Vec<Change>> {
        read!(self, "a read", |c| reader::changes(
            &c,
            &self.cluster,
            after,
            limit
        ))
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.published.subscribe()
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
        read!(self, "a ping", |c| async {
            c.simple_query("SELECT 1").await.map(drop).map_err(pg_error)
        })
    }

    async fn size_bytes(&self) -> Result<Option<u64>> {
        read!(self, "the database size", |c| async {
            let row = c
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .map_err(pg_error)?;
            Ok(Some(row.get::<_, i64>(0).max(0) as u64))
        })
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.writer.close();
        // The writer answers what is queued, then stops.
        if let Some(done) = self.writer_done.lock().await.take() {
            let _ = done.await;
        }
        self.stop_feed();
        self.pool.close();
        self.list_pool.close();
        tracing::info!(cluster = %self.cluster, "closed PostgreSQL store");
    }

    async fn query_results(&self, query: ResultQuery) -> Result<ResultPage> {
        read!(self, "a result query", |c| results::query(
            &c,
            &self.cluster,
            &query
        ))
    }

    async fn query_findings(
        &self,
        query: crate::findings::FindingQuery,
    ) -> Result<crate::findings::FindingPage> {
        self.wait_indexed().await?;
        read!(self, "a findings query", |c| findings_read::query(
            &c,
            &self.cluster,
            &query
        ))
    }

    async fn finding_trends(&self, query: crate::findings::TrendQuery) -> Result<crate::findings::Trends> {
        self.wait_indexed().await?;
        read!(self, "a trend query", |c| findings_read::trends(
            &c,
            &self.cluster,
            &query
        ))
    }

    async fn prune_findings(&self, before: i64) -> Result<u64> {
        read!(self, "pruning findings", |c| findings_read::prune(
            &c,
            &self.cluster,
            before
        ))
    }

    async fn summarize_results(&self, query: SummaryQuery) -> Result<Summary> {
        read!(self, "a result summary", |mut c| results::summarize(
            &mut c,
            &self.cluster,
            &query
        ))
    }
}

/// Publishes `revision` to subscribers if it is newer than what they saw.
pub(crate) fn publish(published: &watch::Sender<i64>, revision: i64) {
    published.send_if_modified(|current| {
        let newer = revision > *current;
        if newer {
            *current = revision;
        }
        newer
    });
}
