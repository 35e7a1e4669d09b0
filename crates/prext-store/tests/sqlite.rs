//! The SQLite backend: the whole conformance suite on a temporary database file, plus what only
//! SQLite has (the single-server lock, the analyst-facing schema, reader pool behaviour).

use std::sync::Arc;
use std::time::Duration;

use prext_store::sqlite::{SqliteOptions, SqliteStore};
use prext_store::testsuite::{self, fixtures, TempSqlite, TestDatabase};
use prext_store::{Error, ListItem, ListOptions, ObjectKey, Store};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    testsuite::run_all(|| async { TempSqlite::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_conformance() {
    testsuite::run_findings(|| async { TempSqlite::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_one_write_per_transaction() {
    // No batching at all must behave the same (only slower).
    let opts = SqliteOptions {
        batch_ops: 1,
        batch_bytes: 1,
        ..SqliteOptions::default()
    };
    let db = TempSqlite::with_options(opts);
    testsuite::concurrent_writers(db.open().await).await;
    let db = TempSqlite::with_options(SqliteOptions {
        batch_ops: 1,
        ..SqliteOptions::default()
    });
    testsuite::result_rows_follow_objects(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_of_the_same_file_is_refused() {
    let db = TempSqlite::new();
    let first = db.open_sqlite().await;
    let err = SqliteStore::open(&db.path(), SqliteOptions::default()).expect_err("second open");
    match &err {
        Error::Unavailable(m) => assert!(m.contains("in use by another prext server"), "{m}"),
        other => panic!("want Unavailable, got {other:?}"),
    }
    // The first store is unaffected, and the lock is released by close.
    fixtures::create(&*first, fixtures::report(fixtures::POLR, "ns", "a")).await;
    first.close().await;
    let second = db.open_sqlite().await;
    assert!(second
        .get(&ObjectKey::new(fixtures::POLR, "ns", "a"))
        .await
        .expect("get")
        .is_some());
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_across_reopens() {
    let db = TempSqlite::new();
    for _ in 0..3 {
        db.open_sqlite().await.close().await;
    }
    let conn = db.analyst_connection();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("schema_migrations");
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
        "every migration applied exactly once"
    );
    let (journal, fk): (String, i64) = (
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal_mode"),
        conn.query_row(
            "SELECT count(*) FROM pragma_foreign_key_list('result_counts')",
            [],
            |r| r.get(0),
        )
        .expect("fk list"),
    );
    assert_eq!(journal, "wal");
    // Result rows outlive a deleted report until the writer purges them (schema version 7);
    // the per-report counts still go with it.
    assert_eq!(fk, 1, "result counts reference objects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyst_tables_hold_the_index() {
    let db = TempSqlite::new();
    let store = db.open_sqlite().await;
    let mut w = fixtures::report(fixtures::POLR, "team-a", "pod-report");
    fixtures::set_labels(&mut w, &[("app.kubernetes.io/managed-by", "kyverno")]);
    fixtures::set_results(
        &mut w,
        &[("disallow-privileged", "fail"), ("require-labels", "pass")],
    );
    w.body["summary"] = json!({"pass": 8, "fail": 2});
    w.body["scope"] =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team-a", "name": "web"});
    fixtures::reindex(&mut w);
    let created = fixtures::create(&*store, w).await;

    let conn = db.analyst_connection();
    let row: (i64, String, i64, i64, String, String, i64) = conn
        .query_row(
            "SELECT revision, labels, summary_pass, summary_fail, scope_kind, scope_name, deleting
             FROM objects WHERE resource = ?1 AND namespace = 'team-a' AND name = 'pod-report'",
            [fixtures::POLR],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .expect("objects row");
    assert_eq!(row.0, created.revision);
    assert_eq!(row.1, r#"{"app.kubernetes.io/managed-by":"kyverno"}"#);
    assert_eq!((row.2, row.3), (8, 2), "the summary as written, not recounted");
    assert_eq!((row.4.as_str(), row.5.as_str(), row.6), ("Deployment", "web", 0));
    let body: rusqlite::types::Value = conn
        .query_row("SELECT body FROM objects WHERE name = 'pod-report'", [], |r| {
            r.get(0)
        })
        .expect("body");
    // Schema version 12 (docs/schema.md): a BLOB is one format byte (1: an LZ4 block preceded
    // by the body's length, little-endian u32), a TEXT the JSON itself.
    let body = match body {
        rusqlite::types::Value::Blob(blob) => {
            assert_eq!(blob[0], 1, "the format byte of an LZ4 block");
            lz4_flex::block::decompress_size_prepended(&blob[1..]).expect("an LZ4 block")
        }
        rusqlite::types::Value::Text(text) => text.into_bytes(),
        other => panic!("a body stored as {other:?}"),
    };
    assert_eq!(
        &body[..],
        &created.body[..],
        "the body column is the exact JSON served (decompressed as documented)"
    );

    // The kind of question the tables are for: failing results by policy, with their subject.
    let failing: Vec<(String, String, String, String)> = conn
        .prepare(
            "SELECT namespace, policy, subject_kind, subject_name FROM report_results
             WHERE result = 'fail' AND severity = 'medium' ORDER BY policy",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .expect("report_results");
    assert_eq!(
        failing,
        [(
            "team-a".into(),
            "disallow-privileged".into(),
            "Pod".into(),
            "pod-0".into()
        )]
    );
    let prop: String = conn
        .query_row(
            "SELECT json_extract(properties, '$.index') FROM results WHERE policy = 'require-labels'",
            [],
            |r| r.get(0),
        )
        .expect("properties");
    assert_eq!(prop, "1");
    let (event, prev): (String, Option<String>) = conn
        .query_row(
            "SELECT event, prev_labels FROM changes WHERE revision = ?1",
            [created.revision],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("change row");
    assert_eq!((event.as_str(), prev), ("ADDED", None));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_runs_in_batches() {
    let db = TempSqlite::with_options(SqliteOptions {
        compact_batch: 7,
        ..SqliteOptions::default()
    });
    let store = db.open_sqlite().await;
    for i in 0..100 {
        fixtures::create(
            &*store,
            fixtures::report(fixtures::POLR, "ns", &format!("r{i:03}")),
        )
        .await;
    }
    let newest = store.revision().await.expect("revision");
    assert_eq!(store.compact(10).await.expect("compact"), newest - 10);
    let left: i64 = db
        .analyst_connection()
        .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
        .expect("count");
    assert_eq!(left, 10);
    match store.changes(newest - 11, 1).await {
        Err(Error::Compacted { oldest, .. }) => assert_eq!(oldest, newest - 10),
        other => panic!("want Compacted, got {other:?}"),
    }
    store.close().await;
}

async fn fill(store: &dyn Store, n: usize) {
    for i in 0..n {
        fixtures::create(store, fixtures::report(fixtures::POLR, "ns", &format!("r{i:03}"))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_list_frees_its_connection() {
    let opts = SqliteOptions {
        max_lists: 1,
        list_buffer: 2,
        ..SqliteOptions::default()
    };
    let db = TempSqlite::with_options(opts);
    let store = db.open_sqlite().await;
    fill(&*store, 50).await;
    let opts = ListOptions {
        resource: fixtures::POLR.into(),
        ..ListOptions::default()
    };
    let mut stream = store.list(opts.clone()).await.expect("list");
    assert!(matches!(stream.items.recv().await, Some(Ok(ListItem::Object(_)))));

    // The only list slot is taken: short reads still go through.
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        store.get(&ObjectKey::new(fixtures::POLR, "ns", "r001")),
    )
    .await
    .expect("a get is not starved by a stalled list");
    assert!(got.expect("get").is_some());

    drop(stream);
    let next = tokio::time::timeout(Duration::from_secs(30), store.list(opts))
        .await
        .expect("the abandoned list released its slot")
        .expect("list");
    let (objects, _) = fixtures::collect(next).await;
    assert_eq!(objects.len(), 50);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_pings_while_an_analyst_reads() {
    let db = TempSqlite::new();
    let store: Arc<SqliteStore> = db.open_sqlite().await;
    fill(&*store, 10).await;
    // An analyst in a long read transaction does not block the server.
    let analyst = db.analyst_connection();
    analyst.execute_batch("BEGIN").expect("begin");
    let seen: i64 = analyst
        .query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
        .expect("count");
    assert_eq!(seen, 10);
    let o = tokio::time::timeout(
        Duration::from_secs(30),
        store.create(fixtures::report(fixtures::POLR, "ns", "late")),
    )
    .await
    .expect("write not blocked by a reader")
    .expect("create");
    store.ping().await.expect("ping");
    let still: i64 = analyst
        .query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
        .expect("count");
    assert_eq!(still, 10, "the analyst keeps its snapshot");
    analyst.execute_batch("COMMIT").expect("commit");
    assert_eq!(store.revision().await.expect("revision"), o.revision);
    store.close().await;
    assert!(matches!(store.ping().await, Err(Error::Unavailable(_))));
}

/// Creates `each` reports of 20 results from each of 8 tasks at once.
async fn write_load(store: &Arc<SqliteStore>, round: usize, each: usize) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let policies: Vec<String> = (0..20).map(|k| format!("policy-{k}")).collect();
            let pairs: Vec<(&str, &str)> = policies.iter().map(|p| (p.as_str(), "fail")).collect();
            for i in 0..each {
                let name = format!("r{round}-{i:03}");
                let w = fixtures::with_results(&format!("ns-{t}"), &name, &pairs);
                fixtures::create(&*store, w).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_copies_the_wal_while_writes_go_on() {
    let db = TempSqlite::new();
    let store = db.open_sqlite().await;
    let size =
        |suffix: &str| std::fs::metadata(format!("{}{suffix}", db.path().display())).map_or(0, |m| m.len());
    let initial = size("");
    // Far fewer WAL pages than the writer's own checkpoint threshold.
    write_load(&store, 0, 5).await;
    assert!(size("-wal") < 8 << 20, "{} bytes of WAL", size("-wal"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while size("") <= initial && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        size("") > initial,
        "the database file grew from {initial} bytes while the store is open: WAL checkpointed"
    );
    // Continuous writes: the WAL is reset and stays bounded. A reset needs a moment when no
    // reader holds an old snapshot (the findings indexer reads in one while it parses); on a
    // loaded machine the WAL can pass the limit for a while, so further small writes go on
    // until a reset has truncated it (it never would if nothing reset it). A reset truncates
    // a larger WAL file to `journal_size_limit` (64 MiB) exactly, not below: the bound.
    write_load(&store, 1, 100).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut extra = 0;
    while size("-wal") > 64 << 20 && std::time::Instant::now() < deadline {
        let w = fixtures::report(fixtures::POLR, "ns-extra", &format!("x-{extra}"));
        fixtures::create(&*store, w).await;
        extra += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        size("-wal") <= 64 << 20,
        "the WAL stays bounded: {} bytes after {extra} further writes",
        size("-wal")
    );
    store.close().await;
    assert_eq!(size("-wal"), 0, "closing truncates the WAL");
}

/// A crash while a large write's result rows were being staged (`staging.rs`) leaves them
/// under an id listed as staging in `purges`: no reader sees them, and the next start hands
/// them to the purge, which removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_staged_before_a_crash_are_purged_at_start() {
    let db = TempSqlite::new();
    let store = db.open().await;
    let mut keep = fixtures::report(fixtures::POLR, "a", "keep");
    keep.body["results"] = json!([{"policy": "p", "rule": "r", "result": "pass"}]);
    fixtures::reindex(&mut keep);
    fixtures::create(&*store, keep).await;
    store.close().await;
    {
        // What the writer leaves mid-staging: the id listed as staging, part of the rows.
        let conn = rusqlite::Connection::open(db.path()).expect("open the database");
        conn.execute("INSERT INTO purges (object_id, revision) VALUES (1000, -1)", [])
            .expect("list the staging id");
        for idx in 0..3_000 {
            conn.execute(
                "INSERT INTO results (object_id, idx, policy, rule, result) VALUES (1000, ?1, 'p', 'r', 'pass')",
                [idx],
            )
            .expect("a staged row");
        }
    }
    let store = db.open().await;
    let page = store
        .query_results(prext_store::results::ResultQuery {
            filter: prext_store::results::ResultFilter {
                namespace: None,
                conditions: vec![prext_store::results::Condition::In(
                    prext_store::results::ResultColumn::Result,
                    vec!["pass".into()],
                )],
            },
            limit: 10,
            count: true,
            ..Default::default()
        })
        .await
        .expect("result query");
    assert_eq!(page.total, Some(1), "only the live report's result is served");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let held = db.stored_result_rows().await;
        if held == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{held} result rows still stored, the staged ones not purged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed: i64 = db
        .analyst_connection()
        .query_row("SELECT count(*) FROM purges", [], |r| r.get(0))
        .expect("count purges");
    assert_eq!(listed, 0, "nothing left listed");
    store.close().await;
}

/// Releasing memory (the server does it when idle) empties the connections' page caches and
/// changes nothing the store answers; it may come between writes, and after close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_caches_leave_the_store_working() {
    let db = TempSqlite::new();
    let store: Arc<SqliteStore> = db.open_sqlite().await;
    fill(&*store, 20).await;
    // The writer and the indexer answer the ask between their work: it completes.
    tokio::time::timeout(Duration::from_secs(30), store.release_memory())
        .await
        .expect("the writer and the indexer emptied their caches");
    // Asks while writes go on.
    let writes = tokio::spawn({
        let store = Arc::clone(&store);
        async move { write_load(&store, 1, 5).await }
    });
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(30), store.release_memory())
            .await
            .expect("release during writes");
    }
    writes.await.expect("writes");
    let o = fixtures::create(&*store, fixtures::report(fixtures::POLR, "ns", "after")).await;
    store.release_memory().await;
    let got = store
        .get(&ObjectKey::new(fixtures::POLR, "ns", "after"))
        .await
        .expect("get")
        .expect("the report written before the release");
    assert_eq!(got.revision, o.revision);
    let list = store
        .list(ListOptions {
            resource: fixtures::POLR.into(),
            ..ListOptions::default()
        })
        .await
        .expect("list");
    let (objects, _) = fixtures::collect(list).await;
    assert_eq!(objects.len(), 20 + 8 * 5 + 1);
    store.close().await;
    tokio::time::timeout(Duration::from_secs(30), store.release_memory())
        .await
        .expect("a release after close returns");
}
