//! The PostgreSQL backend against throwaway clusters ([`TempPostgres`]): the whole conformance
//! suite, then what only PostgreSQL has. Replicas, clusters sharing a database, outages and
//! TLS are in the modules below.
//!
//! Needs the PostgreSQL server binaries (`initdb`, `pg_ctl`); see docs/postgres.md.

#[path = "postgres/covering_indexes.rs"]
mod covering_indexes;
#[path = "postgres/findings.rs"]
mod findings;
#[path = "postgres/findings_rows.rs"]
mod findings_rows;
#[path = "postgres/indexer.rs"]
mod indexer;
#[path = "postgres/lean_rows.rs"]
mod lean_rows;
#[path = "postgres/outage.rs"]
mod outage;
#[path = "postgres/replicas.rs"]
mod replicas;
#[path = "postgres/schema.rs"]
mod schema;
#[path = "postgres/statistics.rs"]
mod statistics;
#[path = "postgres/tls.rs"]
mod tls;
#[path = "postgres/upgrades.rs"]
mod upgrades;
#[path = "postgres/write_cost.rs"]
mod write_cost;

use std::time::Duration;

use prext_store::postgres::PostgresOptions;
use prext_store::testsuite::{self, fixtures, PostgresTestDatabase, TempPostgres, TestDatabase};
use prext_store::{Error, ListItem, ListOptions, ObjectKey, Store, StoredObject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let pg = TempPostgres::new().await;
    testsuite::run_all(|| pg.database()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_query_conformance() {
    let pg = TempPostgres::new().await;
    testsuite::run_results(|| pg.database()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_conformance() {
    // Twice in one database, as two clusters: neither may see the other's findings.
    let pg = TempPostgres::new().await;
    let shared = pg.database().await;
    for cluster in ["findings-a", "findings-b"] {
        let db = shared.with_cluster(cluster);
        testsuite::run_findings(|| {
            let db = db.clone();
            async move { db }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_queries_with_clusters_sharing_one_database() {
    // Every result check in the same database, each as its own cluster: a query that saw
    // another cluster's results would fail.
    let pg = TempPostgres::new().await;
    let shared = pg.database().await;
    let n = std::sync::atomic::AtomicUsize::new(0);
    testsuite::run_results(|| {
        let cluster = format!("results-{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let db = shared.with_cluster(&cluster);
        async move { db }
    })
    .await;
}

/// Summary pages after the planner statistics are refreshed: a grouping whose column has few
/// values by the statistics (the rule, the policy here) is counted in one pass over the result
/// rows (postgres/results/summary.rs), and its pages are checked against the test's own counts
/// as every other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_pages_planned_from_statistics() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let admin = db.analyst_client().await;
    testsuite::result_summary_pages_then(store.as_ref(), async {
        admin.batch_execute("ANALYZE results").await.expect("analyze");
        let rule = admin
            .query_one(
                "SELECT n_distinct FROM pg_stats WHERE tablename = 'results' AND attname = 'rule'",
                &[],
            )
            .await
            .expect("the rule's statistics");
        assert!(rule.get::<_, f32>(0) != 0.0, "the rule has distinct values");
    })
    .await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyst_views_describe_reports_and_results() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let mut w = fixtures::report(fixtures::POLR, "ns", "views");
    w.body["results"] = serde_json::json!([
        {"policy": "p", "result": "fail", "severity": "HIGH",
         "timestamp": {"seconds": 1_714_557_600, "nanos": 0}},
        {"policy": "q", "result": "pass"},
    ]);
    fixtures::reindex(&mut w);
    fixtures::create(store.as_ref(), w).await;
    let cluster = db.options().cluster.clone();
    let analyst = db.analyst_client().await;
    let report = analyst
        .query_one(
            "SELECT api_version, kind, result_count FROM reports_v1 WHERE cluster = $1 AND name = 'views'",
            &[&cluster],
        )
        .await
        .expect("reports_v1");
    let report: (String, String, i64) = (report.get(0), report.get(1), report.get(2));
    assert_eq!(
        report,
        ("wgpolicyk8s.io/v1alpha2".into(), "PolicyReport".into(), 2)
    );
    let results: Vec<(String, i32, Option<String>)> = analyst
        .query(
            "SELECT report_kind, severity_rank, timestamp_utc FROM results_v1
             WHERE cluster = $1 AND report = 'views' ORDER BY idx",
            &[&cluster],
        )
        .await
        .expect("results_v1")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        results,
        [
            ("PolicyReport".into(), 4, Some("2024-05-01T10:00:00Z".into())),
            ("PolicyReport".into(), 0, None),
        ]
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_property_tests_skip_what_is_not_a_number() {
    use prext_store::results::{Compare, Condition, PropertyTest, ResultFilter, ResultQuery};
    let pg = TempPostgres::new().await;
    let store = pg.database().await.open_postgres().await;
    let scores = ["9", " 10 ", "1e3", "n/a", "NaN", "--1", "1e", "8.5.1", "", "7"];
    let mut w = fixtures::report(fixtures::POLR, "ns", "scores");
    w.body["results"] = scores
        .iter()
        .map(|s| serde_json::json!({"policy": "p", "result": "fail", "properties": {"score": s}}))
        .collect();
    fixtures::reindex(&mut w);
    fixtures::create(store.as_ref(), w).await;
    let page = store
        .query_results(ResultQuery {
            filter: ResultFilter {
                namespace: None,
                conditions: vec![Condition::Property {
                    key: "score".into(),
                    test: PropertyTest::Number(Compare::GreaterOrEqual, 8.0),
                }],
            },
            limit: 100,
            count: true,
            ..ResultQuery::default()
        })
        .await
        .expect("a query over text that is not a number");
    let indexes: Vec<i64> = page.items.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [0, 1, 2]);
    assert_eq!(page.total, Some(3));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_clusters_sharing_one_database() {
    // Every check in the same database, each as its own cluster: a check that saw another
    // cluster's objects, revisions or changes would fail.
    let pg = TempPostgres::new().await;
    let shared = pg.database().await;
    let n = std::sync::atomic::AtomicUsize::new(0);
    testsuite::run_all(|| {
        let cluster = format!("cluster-{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let db = shared.with_cluster(&cluster);
        async move { db }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_one_write_per_transaction() {
    // No batching at all must behave the same (only slower).
    let pg = TempPostgres::new().await;
    let unbatched = PostgresOptions {
        batch_ops: 1,
        ..pg.options()
    };
    let db = pg.database().await.with_options(unbatched.clone());
    testsuite::concurrent_writers(db.open().await).await;
    let db = pg.database().await.with_options(unbatched);
    testsuite::result_rows_follow_objects(&db).await;
}

pub(crate) async fn fill(store: &dyn Store, ns: &str, n: usize) -> Vec<StoredObject> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(fixtures::create(store, fixtures::report(fixtures::POLR, ns, &format!("r{i:03}"))).await);
    }
    out
}

pub(crate) fn all(resource: &str) -> ListOptions {
    ListOptions {
        resource: resource.into(),
        ..ListOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_sort_bytewise_under_any_collation() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let client = db.analyst_client().await;
    let row = client
        .query_one("SELECT 'a' < 'B', 'a' < 'B' COLLATE \"C\"", &[])
        .await
        .expect("collation probe");
    let (default_order, byte_order): (bool, bool) = (row.get(0), row.get(1));
    assert!(!byte_order);
    if !default_order {
        eprintln!("note: the server has no ICU; the database collation is already byte order");
    }

    let store = db.open_postgres().await;
    let names = ["b", "B", "a", "_x", "Z-1", "z.0", "A", "é", "e"];
    for ns in ["ns", "NS", "Ns"] {
        for name in names {
            fixtures::create(&*store, fixtures::report(fixtures::POLR, ns, name)).await;
        }
    }
    let mut want: Vec<(String, String)> = ["ns", "NS", "Ns"]
        .iter()
        .flat_map(|ns| names.iter().map(move |n| ((*ns).to_owned(), (*n).to_owned())))
        .collect();
    want.sort();
    assert_eq!(fixtures::list_keys(&*store, all(fixtures::POLR)).await, want);
    // Keyset pagination in the same order, one object per page.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let opts = ListOptions {
            limit: Some(1),
            after: after.clone(),
            ..all(fixtures::POLR)
        };
        let (objects, more) = fixtures::collect(store.list(opts).await.expect("page")).await;
        paged.extend(objects.into_iter().map(|o| (o.key.namespace, o.key.name)));
        after = paged.last().cloned();
        if !more {
            break;
        }
    }
    assert_eq!(paged, want);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_runs_in_batches() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await.with_options(PostgresOptions {
        compact_batch: 7,
        ..pg.options()
    });
    let store = db.open_postgres().await;
    fill(&*store, "ns", 100).await;
    let newest = store.revision().await.expect("revision");
    assert_eq!(store.compact(10).await.expect("compact"), newest - 10);
    let left: i64 = db
        .analyst_client()
        .await
        .query_one("SELECT count(*) FROM changes", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 10);
    match store.changes(newest - 11, 1).await {
        Err(Error::Compacted { oldest, .. }) => assert_eq!(oldest, newest - 10),
        other => panic!("want Compacted, got {other:?}"),
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_list_frees_its_connection() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await.with_options(PostgresOptions {
        max_lists: 1,
        list_fetch: 2,
        ..pg.options()
    });
    let store = db.open_postgres().await;
    fill(&*store, "ns", 50).await;
    let mut stream = store.list(all(fixtures::POLR)).await.expect("list");
    assert!(matches!(stream.items.recv().await, Some(Ok(ListItem::Object(_)))));

    // The only list connection is taken: point reads and writes still go through.
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        store.get(&ObjectKey::new(fixtures::POLR, "ns", "r001")),
    )
    .await
    .expect("a get is not starved by a stalled list");
    assert!(got.expect("get").is_some());
    tokio::time::timeout(
        Duration::from_secs(30),
        store.create(fixtures::report(fixtures::POLR, "ns", "during")),
    )
    .await
    .expect("a write is not blocked by a stalled list")
    .expect("create");

    drop(stream);
    let next = tokio::time::timeout(Duration::from_secs(30), store.list(all(fixtures::POLR)))
        .await
        .expect("the abandoned list released its connection")
        .expect("list");
    let (objects, _) = fixtures::collect(next).await;
    assert_eq!(objects.len(), 51);
    store.close().await;
}

#[test]
fn selectors_agree_with_in_memory_matching() {
    use prext_api::labels::{LabelSelector, Operator, Requirement};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};

    const KEYS: &[&str] = &["app", "app.kubernetes.io/name", "tier", "example.com/a_b-c"];
    const VALUES: &[&str] = &[
        "",
        "web",
        "db",
        "1",
        "007",
        "10",
        "-3",
        "+4",
        "x",
        "99999999999999999999",
    ];
    const OPERATORS: &[Operator] = &[
        Operator::Equals,
        Operator::NotEquals,
        Operator::In,
        Operator::NotIn,
        Operator::Exists,
        Operator::DoesNotExist,
        Operator::GreaterThan,
        Operator::LessThan,
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pg = rt.block_on(TempPostgres::new());
    let store = rt.block_on(async { pg.database().await.open_postgres().await });

    // A population covering the key/value combinations the requirements can meet.
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    let label_set = prop::collection::btree_map(
        prop::sample::select(KEYS).prop_map(str::to_owned),
        prop::sample::select(VALUES).prop_map(str::to_owned),
        0..=KEYS.len(),
    );
    let mut population = Vec::new();
    for i in 0..120 {
        let labels = label_set.new_tree(&mut runner).expect("labels").current();
        let mut w = fixtures::report(fixtures::POLR, "ns", &format!("o{i:03}"));
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        fixtures::set_labels(&mut w, &pairs);
        rt.block_on(fixtures::create(&*store, w));
        population.push((format!("o{i:03}"), labels));
    }

    let requirement = (
        prop::sample::select(KEYS),
        prop::sample::select(OPERATORS),
        prop::collection::vec(prop::sample::select(VALUES).prop_map(str::to_owned), 1..4),
    )
        .prop_map(|(key, operator, mut values)| {
            match operator {
                Operator::Exists | Operator::DoesNotExist => values.clear(),
                Operator::In | Operator::NotIn => {}
                _ => values.truncate(1),
            }
            Requirement {
                key: key.to_owned(),
                operator,
                values,
            }
        });
    let outcome = runner.run(&prop::collection::vec(requirement, 0..4), |requirements| {
        let selector = LabelSelector { requirements };
        let want: Vec<(String, String)> = population
            .iter()
            .filter(|(_, l)| selector.matches(l))
            .map(|(name, _)| ("ns".to_owned(), name.clone()))
            .collect();
        let opts = ListOptions {
            labels: selector.clone(),
            ..all(fixtures::POLR)
        };
        let got = rt.block_on(fixtures::list_keys(&*store, opts));
        prop_assert_eq!(got, want, "selector {}", selector);
        Ok(())
    });
    rt.block_on(store.close());
    if let Err(e) = outcome {
        panic!("the SQL lowering disagrees with the in-memory matcher: {e}");
    }
}

/// Group commit against one transaction per write, 16 concurrent writers: run with
/// `cargo test -p prext-store --features testsuite --test postgres -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn group_commit_throughput() {
    let pg = TempPostgres::new().await;
    for (label, batch_ops) in [("one write per transaction", 1), ("group commit", 256)] {
        let db: PostgresTestDatabase = pg.database().await.with_options(PostgresOptions {
            batch_ops,
            ..pg.options()
        });
        let store = db.open_postgres().await;
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for t in 0..16 {
            let store = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    fixtures::create(
                        &*store,
                        fixtures::report(fixtures::POLR, &format!("ns-{t}"), &format!("r{i}")),
                    )
                    .await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
        let elapsed = started.elapsed();
        eprintln!(
            "{label}: 1600 creates in {elapsed:?} = {:.0} writes/s",
            1600.0 / elapsed.as_secs_f64()
        );
        store.close().await;
    }
}
