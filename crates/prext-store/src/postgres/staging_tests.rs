//! Staged writes on a throwaway PostgreSQL: the conformance check of large writes takes the
//! staged path, a staged write holds no other write, and one refused at the lock leaves nothing.

use std::future::Future;
use std::time::Duration;

use serde_json::json;

use super::hold;
use super::STAGE_ROWS;
use crate::testsuite::fixtures::{self, POLR};
use crate::testsuite::{large_writes_are_whole, TempPostgres, TestDatabase};
use crate::{Error, ObjectKey, ObjectWrite};

/// A report in namespace `a` with `n` results.
fn report(name: &str, n: usize) -> ObjectWrite {
    let mut w = fixtures::report(POLR, "a", name);
    w.body["results"] = (0..n)
        .map(|i| json!({"policy": format!("p{}", i % 7), "rule": "r", "result": "fail"}))
        .collect();
    fixtures::reindex(&mut w);
    w
}

/// The rows of `table`.
async fn rows_in(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
        .get(0)
}

/// Waits for `f`, failing the test (rather than hanging it) after a generous deadline.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after 120 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_writes_are_whole_through_staging() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    large_writes_are_whole(&db).await;
    // The check's report "large" is created and updated with more than STAGE_ROWS results.
    assert!(
        hold::count("large") >= 2,
        "the large create and update were not staged ({} staged)",
        hold::count("large")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_write_holds_no_other_write() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open().await;
    let gate = hold::gate("held-create");
    let large = tokio::spawn({
        let store = std::sync::Arc::clone(&store);
        async move { store.create(report("held-create", STAGE_ROWS + 1_000)).await }
    });
    // The large create has written its rows and not yet locked the counter row: it stays so.
    within("the staged rows", gate.reached.acquire())
        .await
        .expect("gate open")
        .forget();
    let small = within("a small create", store.create(report("other", 1)))
        .await
        .expect("small create while a large one is staging");
    let deleted = within("a delete", store.delete(&small.key, Default::default()))
        .await
        .expect("delete while a large create is staging");
    assert!(
        !large.is_finished(),
        "the held create was answered before it was released"
    );
    gate.release.add_permits(1);
    let large = within("the large create", large)
        .await
        .expect("task")
        .expect("large create");
    assert!(
        large.revision > deleted.revision,
        "revisions follow commit order: {} after {}",
        large.revision,
        deleted.revision
    );
    let stored = store.get(&large.key).await.expect("get").expect("large exists");
    let n = fixtures::body_json(&stored)["results"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(n, STAGE_ROWS + 1_000);
    assert_eq!(db.stored_result_rows().await, (STAGE_ROWS + 1_000) as u64);
    assert_eq!(hold::count("held-create"), 1, "the create was staged");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_create_refused_at_the_lock_leaves_no_rows() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open().await;
    let gate = hold::gate("taken");
    let large = tokio::spawn({
        let store = std::sync::Arc::clone(&store);
        async move { store.create(report("taken", STAGE_ROWS + 1_000)).await }
    });
    within("the staged rows", gate.reached.acquire())
        .await
        .expect("gate open")
        .forget();
    // The name is taken meanwhile: the staged create is refused when it locks.
    let small = within("a small create", store.create(report("taken", 1)))
        .await
        .expect("small create of the same name");
    gate.release.add_permits(1);
    let refused = within("the large create", large).await.expect("task");
    assert!(matches!(refused, Err(Error::AlreadyExists { .. })), "{refused:?}");
    // Only the small report remains, and nothing is left for the purge.
    let key = ObjectKey::new(POLR, "a", "taken");
    let stored = store.get(&key).await.expect("get").expect("exists");
    assert_eq!(stored.revision, small.revision);
    assert_eq!(db.stored_result_rows().await, 1);
    let client = db.analyst_client().await;
    let listed: i64 = rows_in(&client, "purges").await;
    assert_eq!(listed, 0, "nothing to purge");
    let rows: i64 = rows_in(&client, "results").await;
    assert_eq!(rows, 1, "the staged rows were rolled back");
    assert_eq!(hold::count("taken"), 0, "nothing staged committed");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_update_refused_at_the_lock_keeps_the_report() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open().await;
    let first = fixtures::create(&*store, report("raced", 3)).await;
    let gate = hold::gate("raced");
    let large = tokio::spawn({
        let store = std::sync::Arc::clone(&store);
        async move {
            store
                .update(report("raced", STAGE_ROWS + 1_000), first.revision)
                .await
        }
    });
    within("the staged rows", gate.reached.acquire())
        .await
        .expect("gate open")
        .forget();
    // Another update from the same revision commits first: the staged one is a conflict.
    let small = within("a small update", store.update(report("raced", 2), first.revision))
        .await
        .expect("small update while a large one is staging");
    gate.release.add_permits(1);
    let refused = within("the large update", large).await.expect("task");
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let stored = store.get(&small.key).await.expect("get").expect("exists");
    assert_eq!(stored.revision, small.revision);
    let n = fixtures::body_json(&stored)["results"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(n, 2);
    // The staged rows were rolled back; the first version's rows were replaced inline.
    assert_eq!(db.stored_result_rows().await, 2);
    assert_eq!(hold::count("raced"), 0, "nothing staged committed");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_large_writes_than_run_at_once_all_commit() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open().await;
    // More than IN_FLIGHT at once: the writer waits for some before it takes the others.
    let n = super::IN_FLIGHT + 3;
    let writes = (0..n).map(|i| store.create(report(&format!("many-{i}"), STAGE_ROWS + 1)));
    let smalls = (0..n).map(|i| store.create(report(&format!("small-{i}"), 1)));
    let (large, small) = within("the writes", async {
        futures::join!(
            futures::future::join_all(writes),
            futures::future::join_all(smalls)
        )
    })
    .await;
    for w in large.into_iter().chain(small) {
        w.expect("write");
    }
    let want = n * (STAGE_ROWS + 1) + n;
    assert_eq!(db.stored_result_rows().await, want as u64);
    let staged: usize = (0..n).map(|i| hold::count(&format!("many-{i}"))).sum();
    assert_eq!(staged, n, "every large create was staged");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_update_of_a_large_report_leaves_its_rows_to_the_purge() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open().await;
    let large = fixtures::create(&*store, report("shrunk", STAGE_ROWS + 1_000)).await;
    // A refused small update (stale revision) changes nothing, and moves nothing.
    let stale = store.update(report("shrunk", 3), large.revision - 1).await;
    assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
    assert_eq!(
        hold::count("moved shrunk"),
        0,
        "the refused update moved the report"
    );
    assert_eq!(db.stored_result_rows().await, (STAGE_ROWS + 1_000) as u64);
    // The small update is written in the writer's batch; the report moves to a fresh id and
    // its old rows are the purge's, not deleted under the counter lock.
    let small = within(
        "the small update",
        store.update(report("shrunk", 3), large.revision),
    )
    .await
    .expect("small update of a large report");
    assert!(
        hold::count("moved shrunk") >= 1,
        "the update did not move the report"
    );
    assert_eq!(hold::count("shrunk"), 1, "only the large create was staged");
    let stored = store.get(&small.key).await.expect("get").expect("exists");
    assert_eq!(stored.revision, small.revision);
    assert_eq!(stored.uid, large.uid, "the same object");
    let n = fixtures::body_json(&stored)["results"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(n, 3);
    // The purge removes the old rows in chunks; then only the new rows are left.
    let client = db.analyst_client().await;
    within("the purge", async {
        loop {
            let rows: i64 = rows_in(&client, "results").await;
            let listed: i64 = rows_in(&client, "purges").await;
            if rows == 3 && listed == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (counted, numbers): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT (SELECT coalesce(sum(n), 0) FROM result_counts)::bigint,
                        (SELECT count(*) FROM result_numbers)",
                &[],
            )
            .await
            .expect("count stats");
        (row.get(0), row.get(1))
    };
    assert_eq!(counted, 3, "the counts are the new report's");
    assert_eq!(numbers, 0, "the reports have no numeric properties");
    // A report of a few rows is updated in place again.
    let update = store
        .update(report("shrunk", 2), small.revision)
        .await
        .expect("update again");
    assert_eq!(update.uid, large.uid);
    assert_eq!(
        hold::count("moved shrunk"),
        1,
        "a report of 3 results is not moved"
    );
    store.close().await;
}
