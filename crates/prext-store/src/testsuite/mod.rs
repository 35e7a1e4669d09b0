//! The backend-independent conformance suite of the [`Store`] contract.
//!
//! Every backend runs the very same checks: implement [`TestDatabase`] for a throwaway database
//! and call [`run_all`] with a factory of fresh ones. Each check is also a `pub async fn`, so
//! a failing one can be run alone. Checks panic (with a message naming what broke) on failure.
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn conformance() {
//!     prext_store::testsuite::run_all(|| async { MyTestDatabase::new().await }).await;
//! }
//! ```
//!
//! Backend-specific facts the contract cannot observe (result rows) come through
//! [`TestDatabase::result_rows`], which a backend answers by querying its own tables.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::{ObjectKey, Store};

mod batches;
mod changes;
mod crud;
mod durability;
mod findings;
pub mod fixtures;
mod hostile;
mod large_deletes;
mod large_writes;
mod list;
mod postgres;
mod result_stats;
mod results;
mod sqlite;
mod subject_uids;
mod summary_pages;

pub use changes::{change_log, compaction, history_replays_every_version, subscribe_wakes};
pub use crud::{
    closed_store_is_unavailable, create_and_get, create_existing, delete_preconditions, object_counts,
    revisions_increase, update_checks_revision,
};
pub use durability::{
    concurrent_writers, refused_writes_among_concurrent_ones, restart_keeps_state, result_rows_follow_objects,
};
pub use findings::findings_follow_writes;
pub use hostile::{deletes_next_to_large_results, property_keys_are_data};
pub use large_deletes::large_deletes_are_incremental;
pub use large_writes::large_writes_are_whole;
pub use list::{field_selectors, label_selectors, list_order_and_scope, list_snapshot, pagination};
pub use postgres::{PostgresTestDatabase, ServerTls, TempPostgres};
pub use result_stats::result_stats_follow_writes;
pub use results::{result_filters, result_pages_and_orders, result_queries_follow_writes, result_summaries};
pub use sqlite::TempSqlite;
pub use summary_pages::{result_summary_pages, result_summary_pages_then};

/// One row of a backend's result table, as much of it as the suite checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedResult {
    /// Position in the report's `results`.
    pub index: i64,
    pub policy: Option<String>,
    pub result: Option<String>,
    /// Name of the result's subject (its first resource, else the report's scope).
    pub subject_name: Option<String>,
}

/// A throwaway database of the backend under test.
#[async_trait::async_trait]
pub trait TestDatabase: Send + Sync {
    /// Opens a store on this database; the first store sees it empty. The suite closes a store
    /// before opening the next one, and opening again must find everything committed before.
    async fn open(&self) -> Arc<dyn Store>;

    /// The result rows stored for the report at `key`, in index order (empty when none).
    async fn result_rows(&self, key: &ObjectKey) -> Vec<IndexedResult>;

    /// Every row the backend derived from results that the database still holds, whether or
    /// not its report exists (result rows, and per-property rows where the backend has them):
    /// what a deleted report leaves behind until it is purged.
    async fn stored_result_rows(&self) -> u64;
}

/// A check on a fresh store.
pub type StoreCheck = for<'a> fn(&'a dyn Store) -> BoxFuture<'a, ()>;
/// A check that shares the store with spawned tasks.
pub type SharedCheck = fn(Arc<dyn Store>) -> BoxFuture<'static, ()>;
/// A check that opens (and reopens) stores itself, or inspects the backend's tables.
pub type DatabaseCheck = for<'a> fn(&'a dyn TestDatabase) -> BoxFuture<'a, ()>;

/// A named check of the suite.
#[derive(Clone, Copy)]
pub enum Check {
    Store(&'static str, StoreCheck),
    Shared(&'static str, SharedCheck),
    Database(&'static str, DatabaseCheck),
}

impl Check {
    /// The check's name (its function's name).
    pub fn name(&self) -> &'static str {
        match self {
            Check::Store(name, _) | Check::Shared(name, _) | Check::Database(name, _) => name,
        }
    }

    /// Runs the check on `db`, opening and closing the store it needs.
    pub async fn run(&self, db: &dyn TestDatabase) {
        match self {
            Check::Store(_, check) => {
                let store = db.open().await;
                check(&*store).await;
                store.close().await;
            }
            Check::Shared(_, check) => {
                let store = db.open().await;
                check(Arc::clone(&store)).await;
                store.close().await;
            }
            Check::Database(_, check) => check(db).await,
        }
    }
}

/// Every check of the suite, in a sensible order (basics first).
pub const CHECKS: &[Check] = &[
    Check::Store("create_and_get", |s| Box::pin(create_and_get(s))),
    Check::Store("create_existing", |s| Box::pin(create_existing(s))),
    Check::Store("update_checks_revision", |s| Box::pin(update_checks_revision(s))),
    Check::Store("delete_preconditions", |s| Box::pin(delete_preconditions(s))),
    Check::Store("revisions_increase", |s| Box::pin(revisions_increase(s))),
    Check::Store("object_counts", |s| Box::pin(object_counts(s))),
    Check::Store("list_order_and_scope", |s| Box::pin(list_order_and_scope(s))),
    Check::Store("label_selectors", |s| Box::pin(label_selectors(s))),
    Check::Store("field_selectors", |s| Box::pin(field_selectors(s))),
    Check::Store("pagination", |s| Box::pin(pagination(s))),
    Check::Store("list_snapshot", |s| Box::pin(list_snapshot(s))),
    Check::Store("change_log", |s| Box::pin(change_log(s))),
    Check::Store("history_replays_every_version", |s| {
        Box::pin(history_replays_every_version(s))
    }),
    Check::Store("compaction", |s| Box::pin(compaction(s))),
    Check::Store("subscribe_wakes", |s| Box::pin(subscribe_wakes(s))),
    Check::Store("closed_store_is_unavailable", |s| {
        Box::pin(closed_store_is_unavailable(s))
    }),
    Check::Shared("concurrent_writers", |s| Box::pin(concurrent_writers(s))),
    Check::Shared("mixed_batches", |s| Box::pin(batches::mixed_batches(s))),
    Check::Database("result_rows_follow_objects", |d| {
        Box::pin(result_rows_follow_objects(d))
    }),
    Check::Database("refused_writes_among_concurrent_ones", |d| {
        Box::pin(refused_writes_among_concurrent_ones(d))
    }),
    Check::Database("restart_keeps_state", |d| Box::pin(restart_keeps_state(d))),
    Check::Database("large_deletes_are_incremental", |d| {
        Box::pin(large_deletes_are_incremental(d))
    }),
    Check::Database("large_writes_are_whole", |d| Box::pin(large_writes_are_whole(d))),
];

/// Runs every check, each on a fresh database from `new_database`. Needs a multi-threaded
/// tokio runtime (`#[tokio::test(flavor = "multi_thread")]`).
pub async fn run_all<F, Fut, D>(new_database: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = D>,
    D: TestDatabase,
{
    for check in CHECKS {
        let db = new_database().await;
        // Shown with the failure's output, to name the check that broke.
        eprintln!("store conformance check: {}", check.name());
        check.run(&db).await;
    }
}

/// The checks of result queries ([`Store::query_results`], [`Store::summarize_results`]). Kept
/// apart from [`CHECKS`] while backends gain them: run them with [`run_results`].
pub const RESULT_CHECKS: &[Check] = &[
    Check::Store("result_filters", |s| Box::pin(result_filters(s))),
    Check::Store("result_pages_and_orders", |s| {
        Box::pin(result_pages_and_orders(s))
    }),
    Check::Store("result_summaries", |s| Box::pin(result_summaries(s))),
    Check::Store("result_summary_pages", |s| Box::pin(result_summary_pages(s))),
    Check::Store("result_queries_follow_writes", |s| {
        Box::pin(result_queries_follow_writes(s))
    }),
    Check::Store("property_keys_are_data", |s| Box::pin(property_keys_are_data(s))),
    Check::Store("result_stats_follow_writes", |s| {
        Box::pin(result_stats_follow_writes(s))
    }),
    Check::Store("subject_uids_read_as_written", |s| {
        Box::pin(subject_uids::subject_uids_read_as_written(s))
    }),
];

/// Runs every result-query check, each on a fresh database from `new_database`.
pub async fn run_results<F, Fut, D>(new_database: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = D>,
    D: TestDatabase,
{
    for check in RESULT_CHECKS {
        let db = new_database().await;
        eprintln!("store conformance check: {}", check.name());
        check.run(&db).await;
    }
}

/// The findings checks (see `findings.rs`).
pub const FINDING_CHECKS: &[Check] = &[Check::Store("findings_follow_writes", |s| {
    Box::pin(findings_follow_writes(s))
})];

/// Runs [`FINDING_CHECKS`], each on a new database from `new_database`.
pub async fn run_findings<F, Fut, D>(new_database: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = D>,
    D: TestDatabase,
{
    for check in FINDING_CHECKS {
        let db = new_database().await;
        eprintln!("store conformance check: {}", check.name());
        check.run(&db).await;
    }
}
