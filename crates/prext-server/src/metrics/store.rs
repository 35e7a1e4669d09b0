//! Store metrics: a [`Store`] decorator timing every operation and counting its errors,
//! `prext_store_operation_duration_seconds{operation}` and
//! `prext_store_errors_total{operation,kind}`; and `prext_objects{resource}`, read at scrape time.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prext_store::{
    results, Change, ListOptions, ListStream, ObjectKey, ObjectWrite, Preconditions, Result, Store,
    StoredObject,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    operation: &'static str,
    kind: &'static str,
}

fn store_histogram() -> Histogram {
    // 100 µs .. ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The store metric families.
#[derive(Clone)]
pub struct StoreMetrics {
    durations: Family<OpLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    /// The `--store-quota-bytes` gauges (see [`crate::quota`]).
    pub quota: crate::quota::QuotaMetrics,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            durations: Family::new_with_constructor(store_histogram as fn() -> Histogram),
            errors: Family::default(),
            quota: Default::default(),
        }
    }
}

impl StoreMetrics {
    /// Registers the families into a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "prext_store_operation_duration_seconds",
            "Latency of storage operations",
            self.durations.clone(),
        );
        registry.register(
            "prext_store_errors",
            "Failed storage operations by error kind",
            self.errors.clone(),
        );
        self.quota.register(registry);
    }

    fn record<T>(&self, operation: &'static str, started: Instant, result: &Result<T>) {
        self.durations
            .get_or_create(&OpLabels { operation })
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            let kind = match e {
                prext_store::Error::NotFound => "not_found",
                prext_store::Error::AlreadyExists { .. } => "already_exists",
                prext_store::Error::Conflict(_) => "conflict",
                prext_store::Error::Compacted { .. } => "compacted",
                prext_store::Error::Unavailable(_) => "unavailable",
                prext_store::Error::Internal(_) => "internal",
                prext_store::Error::DiskFull(_) => "disk_full",
                prext_store::Error::QuotaExceeded { .. } => "quota_exceeded",
                prext_store::Error::IndexBehind { .. } => "index_behind",
            };
            self.errors.get_or_create(&ErrorLabels { operation, kind }).inc();
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

/// Registers `prext_objects{resource}`, the objects stored per resource, read at scrape time.
pub async fn register_object_counts(store: &dyn Store, registry: &mut Registry) -> Result<()> {
    let family = Family::<ResourceLabels, prometheus_client::metrics::gauge::Gauge>::default();
    for (resource, count) in store.object_counts().await? {
        family.get_or_create(&ResourceLabels { resource }).set(count);
    }
    registry.register(
        "prext_objects",
        "Objects stored per resource (plural.group)",
        family,
    );
    Ok(())
}

/// A store that records [`StoreMetrics`] around another store.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: StoreMetrics,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>, metrics: StoreMetrics) -> Self {
        Self { inner, metrics }
    }
}

/// Times `$call` as `$op`.
macro_rules! timed {
    ($self:ident, $op:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.metrics.record($op, started, &result);
        result
    }};
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>> {
        timed!(self, "get", self.inner.get(key))
    }
    async fn list(&self, opts: ListOptions) -> Result<ListStream> {
        timed!(self, "list", self.inner.list(opts))
    }
    async fn create(&self, obj: ObjectWrite) -> Result<StoredObject> {
        timed!(self, "create", self.inner.create(obj))
    }
    async fn update(&self, obj: ObjectWrite, expected_revision: i64) -> Result<StoredObject> {
        timed!(self, "update", self.inner.update(obj, expected_revision))
    }
    async fn delete(&self, key: &ObjectKey, pre: Preconditions) -> Result<StoredObject> {
        timed!(self, "delete", self.inner.delete(key, pre))
    }
    async fn revision(&self) -> Result<i64> {
        timed!(self, "revision", self.inner.revision())
    }
    async fn oldest_revision(&self) -> Result<i64> {
        timed!(self, "oldest_revision", self.inner.oldest_revision())
    }
    async fn changes(&self, after: i64, limit: usize) -> Result<Vec<Change>> {
        timed!(self, "changes", self.inner.changes(after, limit))
    }
    async fn object_counts(&self) -> Result<Vec<(String, i64)>> {
        timed!(self, "object_counts", self.inner.object_counts())
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.subscribe()
    }
    async fn compact(&self, keep: i64) -> Result<i64> {
        timed!(self, "compact", self.inner.compact(keep))
    }
    async fn ping(&self) -> Result<()> {
        timed!(self, "ping", self.inner.ping())
    }
    async fn size_bytes(&self) -> Result<Option<u64>> {
        timed!(self, "size_bytes", self.inner.size_bytes())
    }
    async fn release_memory(&self) {
        let started = Instant::now();
        self.inner.release_memory().await;
        self.metrics.record("release_memory", started, &Ok(()));
    }
    async fn close(&self) {
        self.inner.close().await
    }
    async fn query_results(&self, query: results::ResultQuery) -> Result<results::ResultPage> {
        timed!(self, "query_results", self.inner.query_results(query))
    }
    async fn summarize_results(&self, query: results::SummaryQuery) -> Result<results::Summary> {
        timed!(self, "summarize_results", self.inner.summarize_results(query))
    }
    async fn query_findings(
        &self,
        query: prext_store::findings::FindingQuery,
    ) -> Result<prext_store::findings::FindingPage> {
        timed!(self, "query_findings", self.inner.query_findings(query))
    }
    async fn finding_trends(
        &self,
        query: prext_store::findings::TrendQuery,
    ) -> Result<prext_store::findings::Trends> {
        timed!(self, "finding_trends", self.inner.finding_trends(query))
    }
    async fn prune_findings(&self, before: i64) -> Result<u64> {
        timed!(self, "prune_findings", self.inner.prune_findings(before))
    }
}
