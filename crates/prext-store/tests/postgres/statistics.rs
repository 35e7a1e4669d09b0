//! The planner statistics refresh (`postgres/statistics.rs`) follows the rows creates add, the
//! staged path's (large reports) included: no `ANALYZE` before 20,000 rows, one after.

use std::time::{Duration, Instant};

use prext_store::testsuite::{fixtures, TempPostgres};
use prext_store::Store;

/// When prext's own `ANALYZE` (not autovacuum's) last ran on `table`.
async fn analyzed(client: &tokio_postgres::Client, table: &str) -> bool {
    client
        .query_one(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1",
            &[&table],
        )
        .await
        .expect("pg_stat_user_tables")
        .get(0)
}

/// `count` (policy, result) pairs.
fn pairs(count: usize) -> Vec<(String, &'static str)> {
    (0..count).map(|i| (format!("p{}", i % 7), "pass")).collect()
}

/// Creates `count` reports of `results` results each, named `{prefix}-{i}`.
async fn create(store: &dyn Store, prefix: &str, count: usize, results: usize) {
    let pairs = pairs(results);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(p, r)| (p.as_str(), *r)).collect();
    for i in 0..count {
        fixtures::create(
            store,
            fixtures::with_results("ns", &format!("{prefix}-{i}"), &pairs),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_follows_the_rows_creates_add() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let admin = db.analyst_client().await;

    // 40 reports of 250 results through the writer's batches (10,040 rows), one of 2,500
    // staged beside them (2,501 rows): 12,541 rows, below the first refresh.
    create(&*store, "small", 40, 250).await;
    create(&*store, "large", 1, 2_500).await;
    assert!(
        !analyzed(&admin, "results").await,
        "no refresh before 20,000 rows"
    );

    // Updates that keep their results add no rows.
    let pairs = pairs(250);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(p, r)| (p.as_str(), *r)).collect();
    for i in 0..40 {
        let mut w = fixtures::with_results("ns", &format!("small-{i}"), &pairs);
        let current = store.get(&w.key).await.expect("get").expect("stored");
        w.uid = current.uid.clone();
        fixtures::set_labels(&mut w, &[("updated", "yes")]);
        store.update(w, current.revision).await.expect("update");
    }
    assert!(!analyzed(&admin, "results").await, "updates add no rows");

    // 30 more of 250: 20,071 rows with the staged report's, 17,570 without.
    create(&*store, "more", 30, 250).await;
    let started = Instant::now();
    while !(analyzed(&admin, "results").await && analyzed(&admin, "objects").await) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the statistics were not refreshed after 20,071 rows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await;
}
