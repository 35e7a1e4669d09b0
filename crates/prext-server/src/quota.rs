//! `--store-quota-bytes`: etcd's `--quota-backend-bytes` for the report store.
//!
//! A [`Store`] decorator. Writes that grow the store (create, and update, which carries
//! update, patch and apply) are refused with [`Error::QuotaExceeded`] while the store's size
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
    if config.store_quota_bytes == 0 {
        return store;
    }
    let refresh = if config.store_url().starts_with("sqlite:") {
        Duration::ZERO
    } else {
        POSTGRES_REFRESH
    };
    tracing::info!(quota_bytes = config.store_quota_bytes, "store quota set");
    Arc::new(QuotaStore::new(store, config.store_quota_bytes, refresh, metrics))
}

/// A store refusing growing writes past a quota.
pub struct QuotaStore {
    inner: Arc<dyn Store>,
    quota: u64,
    refresh: Duration,
    last: Mutex<Option<Reading>>,
    warned: AtomicBool,
    metrics: QuotaMetrics,
}

impl QuotaStore {
    /// `quota` in bytes (> 0); `refresh`: how old a size reading may be before a write.
    pub fn new(inner: Arc<dyn Store>, quota: u64, refresh: Duration, metrics: QuotaMetrics) -> Self {
        Self {
            inner,
            quota,
            refresh,
            last: Mutex::new(None),
            warned: AtomicBool::new(false),
            metrics,
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

    /// Refuses a growing write when the store is at or over the quota.
    async fn admit(&self) -> Result<()> {
        match self.size().await? {
            Some(size) if size >= self.quota => Err(Error::QuotaExceeded {
                size,
                quota: self.quota,
            }),
            _ => Ok(()),
        }
    }

    /// Re-reads the size after a write so the metric and the warning follow it.
    async fn written<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_ok() && self.refresh.is_zero() {
            self.forget();
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
        self.written(r).await
    }
    async fn update(&self, obj: ObjectWrite, expected_revision: i64) -> Result<StoredObject> {
        self.admit().await?;
        let r = self.inner.update(obj, expected_revision).await;
        self.written(r).await
    }
    async fn delete(&self, key: &ObjectKey, pre: Preconditions) -> Result<StoredObject> {
        let r = self.inner.delete(key, pre).await;
        self.forget();
        r
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
        r
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
