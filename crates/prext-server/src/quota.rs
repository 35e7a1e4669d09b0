//! `--store-quota-bytes`: etcd's `--quota-backend-bytes` for the report store.
//!
//! A [`Store`] decorator. Writes that grow the store (create, and update, which carries
//! update, patch and apply; not the updates of an object marked for deletion, which lead to
//! its removal) are refused with [`Error::QuotaExceeded`] while the store's size
//! ([`Store::size_bytes`]) is at or over the quota; delete, delete-collection (a delete per
//! object), compaction and every read pass through, so space can be freed through the API and
//! writes work again as soon as the size is back under the quota, without a restart.
//!
//! The size is re-read before a write when the last reading is older than `refresh` (SQLite:
//! every write, it costs three pragmas on a reader; PostgreSQL: every few seconds,
//! `pg_database_size` stats every file of the database) and always after a delete or a
//! compaction. Like etcd's, the check is made before the write, so one write may take the
//! store past the quota; the next one is refused.
//!
//! It also keeps the SQLite store's disk reserve ([`crate::disk_reserve`]): the first write
//! failing with [`Error::DiskFull`] releases it so deletes can commit; each later write that
//! grows the store first tries to write it again (and is itself tried either way: the pages
//! the deletes freed inside the database file can hold it even while the disk stays full).
//!
//! It publishes `prext_store_size_bytes` and `prext_store_quota_used_ratio`, and logs one
//! warning when the size crosses 80 % of the quota (and one line when it falls back under).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prext_store::{
    findings, results, Change, Error, ListOptions, ListStream, ObjectKey, ObjectWrite, Preconditions, Result,
    Store, StoredObject,
};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::disk_reserve::Reserve;

/// The fraction of the quota past which the server warns.
pub const WARN_RATIO: f64 = 0.8;

/// The quota gauges (registered into every scrape).
#[derive(Clone, Default)]
pub struct QuotaMetrics {
    size_bytes: Gauge<i64>,
    used_ratio: Gauge<f64, AtomicU64>,
}

impl QuotaMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "prext_store_size_bytes",
            "Bytes the stored data occupies, as counted against --store-quota-bytes",
            self.size_bytes.clone(),
        );
        registry.register(
            "prext_store_quota_used_ratio",
            "Store size divided by --store-quota-bytes (0 when no quota is set)",
            self.used_ratio.clone(),
        );
    }
}

#[derive(Clone, Copy)]
struct Reading {
    size: u64,
    at: Instant,
}

/// How old a PostgreSQL size reading may be before a write.
const POSTGRES_REFRESH: Duration = Duration::from_secs(3);

/// Wraps `store` in a [`QuotaStore`] when `--store-quota-bytes` is set.
pub fn wrap(store: Arc<dyn Store>, config: &crate::config::Config, metrics: QuotaMetrics) -> Arc<dyn Store> {
    let url = prext_store::StoreUrl::parse(&config.store_url()).ok();
    let sqlite = url.as_ref().and_then(|u| u.sqlite_path());
    let reserve = match sqlite {
        Some(path) if config.store_disk_reserve_bytes > 0 => {
            Some(Reserve::for_database(path, config.store_disk_reserve_bytes))
        }
        _ => None,
    };
    if config.store_quota_bytes == 0 && reserve.is_none() {
        return store;
    }
    let refresh = if sqlite.is_some() {
        Duration::ZERO
    } else {
        POSTGRES_REFRESH
    };
    if config.store_quota_bytes > 0 {
        tracing::info!(quota_bytes = config.store_quota_bytes, "store quota set");
    }
    let guarded = QuotaStore::new(store, config.store_quota_bytes, refresh, metrics);
    if let Some(reserve) = &reserve {
        if let Err(e) = reserve.fill() {
            tracing::warn!(error = %e, "cannot write the disk reserve: the disk is full");
            guarded.disk_full.store(true, Ordering::Relaxed);
        }
    }
    Arc::new(QuotaStore { reserve, ..guarded })
}

/// A store refusing growing writes past a quota.
pub struct QuotaStore {
    inner: Arc<dyn Store>,
    quota: u64,
    refresh: Duration,
    last: Mutex<Option<Reading>>,
    warned: AtomicBool,
    metrics: QuotaMetrics,
    reserve: Option<Reserve>,
    /// Set by a write failing with `DiskFull`, cleared once the reserve is written again.
    disk_full: AtomicBool,
}

impl QuotaStore {
    /// `quota` in bytes (0: none); `refresh`: how old a size reading may be before a write.
    pub fn new(inner: Arc<dyn Store>, quota: u64, refresh: Duration, metrics: QuotaMetrics) -> Self {
        Self {
            inner,
            quota,
            refresh,
            last: Mutex::new(None),
            warned: AtomicBool::new(false),
            metrics,
            reserve: None,
            disk_full: AtomicBool::new(false),
        }
    }

    fn forget(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The current size, re-read when the last reading is stale.
    async fn size(&self) -> Result<Option<u64>> {
        let cached = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = cached.filter(|r| r.at.elapsed() < self.refresh) {
            return Ok(Some(r.size));
        }
        let Some(size) = self.inner.size_bytes().await? else {
            return Ok(None);
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Reading {
            size,
            at: Instant::now(),
        });
        self.observe(size);
        Ok(Some(size))
    }

    fn observe(&self, size: u64) {
        let ratio = size as f64 / self.quota as f64;
        self.metrics
            .size_bytes
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        self.metrics.used_ratio.set(ratio);
        let over = ratio >= WARN_RATIO;
        if self.warned.swap(over, Ordering::Relaxed) != over {
            if over {
                tracing::warn!(
                    size_bytes = size,
                    quota_bytes = self.quota,
                    "the report store is past {:.0}% of --store-quota-bytes; writes are refused at 100%",
                    WARN_RATIO * 100.0
                );
            } else {
                tracing::info!(
                    size_bytes = size,
                    quota_bytes = self.quota,
                    "the report store is back under {:.0}% of its quota",
                    WARN_RATIO * 100.0
                );
            }
        }
    }

    /// Refuses a growing write while the disk is full or the store at or over the quota.
    async fn admit(&self) -> Result<()> {
        if self.disk_full.load(Ordering::Relaxed) {
            self.refill().await?;
        }
        if self.quota == 0 {
            return Ok(());
        }
        match self.size().await? {
            Some(size) if size >= self.quota => Err(Error::QuotaExceeded {
                size,
                quota: self.quota,
            }),
            _ => Ok(()),
        }
    }

    /// Writes the reserve again after a full disk (when it cannot yet, the write is still tried).
    async fn refill(&self) -> Result<()> {
        let Some(reserve) = &self.reserve else {
            return Ok(());
        };
        let reserve = reserve.clone();
        match tokio::task::spawn_blocking(move || reserve.fill()).await {
            Ok(Ok(())) => {
                self.disk_full.store(false, Ordering::Relaxed);
                tracing::info!("the disk reserve is written again: writes are accepted");
                Ok(())
            }
            // The disk is still full, but the pages the deletes freed inside the database
            // file can hold new data: the write is tried (refused as DiskFull if it fits not).
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the disk reserve cannot be written again yet");
                Ok(())
            }
            Err(e) => Err(Error::internal(format!("the disk reserve task failed: {e}"))),
        }
    }

    /// Follows a write's outcome: a full disk releases the reserve; the size is re-read.
    fn outcome<T>(&self, result: Result<T>) -> Result<T> {
        match &result {
            Err(Error::DiskFull(_)) => {
                if let Some(reserve) = &self.reserve {
                    self.disk_full.store(true, Ordering::Relaxed);
                    reserve.release();
                }
            }
            Ok(_) if self.refresh.is_zero() => self.forget(),
            _ => {}
        }
        result
    }
}

#[async_trait]
impl Store for QuotaStore {
    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>> {
        self.inner.get(key).await
    }
    async fn list(&self, opts: ListOptions) -> Result<ListStream> {
        self.inner.list(opts).await
    }
    async fn create(&self, obj: ObjectWrite) -> Result<StoredObject> {
        self.admit().await?;
        let r = self.inner.create(obj).await;
        self.outcome(r)
    }
    async fn update(&self, obj: ObjectWrite, expected_revision: i64) -> Result<StoredObject> {
        // An object carrying a deletionTimestamp is on its way out: marking it (a delete with
        // finalizers) and removing its finalizers lead to freeing its space, so they pass.
        if !obj.deleting {
            self.admit().await?;
        }
        let r = self.inner.update(obj, expected_revision).await;
        self.outcome(r)
    }
    async fn delete(&self, key: &ObjectKey, pre: Preconditions) -> Result<StoredObject> {
        let r = self.inner.delete(key, pre).await;
        self.forget();
        self.outcome(r)
    }
    async fn revision(&self) -> Result<i64> {
        self.inner.revision().await
    }
    async fn oldest_revision(&self) -> Result<i64> {
        self.inner.oldest_revision().await
    }
    async fn changes(&self, after: i64, limit: usize) -> Result<Vec<Change>> {
        self.inner.changes(after, limit).await
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.subscribe()
    }
    async fn compact(&self, keep: i64) -> Result<i64> {
        let r = self.inner.compact(keep).await;
        self.forget();
        self.outcome(r)
    }
    async fn object_counts(&self) -> Result<Vec<(String, i64)>> {
        self.inner.object_counts().await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn size_bytes(&self) -> Result<Option<u64>> {
        self.inner.size_bytes().await
    }
    async fn release_memory(&self) {
        self.inner.release_memory().await
    }
    async fn close(&self) {
        self.inner.close().await
    }
    async fn query_results(&self, query: results::ResultQuery) -> Result<results::ResultPage> {
        self.inner.query_results(query).await
    }
    async fn summarize_results(&self, query: results::SummaryQuery) -> Result<results::Summary> {
        self.inner.summarize_results(query).await
    }
    async fn query_findings(&self, query: findings::FindingQuery) -> Result<findings::FindingPage> {
        self.inner.query_findings(query).await
    }
    async fn finding_trends(&self, query: findings::TrendQuery) -> Result<findings::Trends> {
        self.inner.finding_trends(query).await
    }
    async fn prune_findings(&self, before: i64) -> Result<u64> {
        let r = self.inner.prune_findings(before).await;
        self.forget();
        r
    }
}

#[cfg(test)]
mod tests {
    use crate::error::{ApiError, INSUFFICIENT_STORAGE};
    use prext_store::Error;

    #[test]
    fn quota_and_full_disk_are_507_not_a_transient_503() {
        let ApiError(status) = ApiError::storage(Error::QuotaExceeded {
            size: 2_000_000,
            quota: 1_000_000,
        });
        assert_eq!((status.code, status.reason.as_str()), (507, INSUFFICIENT_STORAGE));
        assert!(
            status.message.contains("--store-quota-bytes is 1000000"),
            "{}",
            status.message
        );
        let ApiError(status) = ApiError::storage(Error::disk_full("sqlite: database or disk is full"));
        assert_eq!((status.code, status.reason.as_str()), (507, INSUFFICIENT_STORAGE));
        assert!(status.message.contains("disk"), "{}", status.message);
        assert!(status.details.is_none_or(|d| d.retry_after_seconds.is_none()));
    }
}
