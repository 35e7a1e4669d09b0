//! Schema versions 11, 12 and 13 (result indexes that cover top-N summaries and groupings by
//! the subject; the result and severity beside each numeric property) on databases versions
//! 10, 11 and 12 left.

use prext_store::results::{
    Compare, Condition, GroupPage, GroupRank, PropertyTest, ResultColumn, ResultFilter, ResultOrder,
    ResultQuery, SummaryQuery,
};
use prext_store::testsuite::{fixtures, TempPostgres};
use prext_store::Store;

/// Migration 11 on a database version 10 left: the two result indexes end with the columns
/// summaries group by (same names, same leading columns, no index added), and a top-N page of
/// policies counts the results written before exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_10_databases_widen_the_result_indexes() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    for (ns, name, results) in [
        ("a", "r1", [("p", "fail"), ("q", "pass")]),
        ("a", "r2", [("p", "fail"), ("q", "fail")]),
        ("b", "r1", [("p", "pass"), ("r", "fail")]),
    ] {
        fixtures::create(&*store, fixtures::with_results(ns, name, &results)).await;
    }
    store.close().await;

    // Back to what version 10 left.
    let admin = db.analyst_client().await;
    super::upgrades::forget_versions_from(
        &admin,
        11,
        "DROP INDEX results_result_severity;
             CREATE INDEX results_result_severity ON results (result, severity, cluster);
             DROP INDEX results_policy_rule;
             CREATE INDEX results_policy_rule ON results (policy, rule, cluster);",
    )
    .await;

    let store = db.open_postgres().await;
    let indexes: Vec<(String, String)> = admin
        .query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'results' ORDER BY indexname",
            &[],
        )
        .await
        .expect("pg_indexes")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let names: Vec<&str> = indexes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "results_pkey",
            "results_policy_rule",
            "results_result_severity",
            "results_severity",
            "results_subject",
            "results_subject_uid"
        ]
    );
    let def = |name: &str| &indexes.iter().find(|(n, _)| n == name).expect("index").1;
    assert!(
        def("results_result_severity").ends_with("(result, severity, cluster, policy)"),
        "{}",
        def("results_result_severity")
    );
    assert!(
        def("results_policy_rule").ends_with("(policy, rule, cluster, result, severity)"),
        "{}",
        def("results_policy_rule")
    );

    let top = store
        .summarize_results(SummaryQuery {
            filter: ResultFilter::default(),
            group_by: vec![ResultColumn::Policy],
            page: Some(GroupPage {
                rank: GroupRank::Result("fail".into()),
                limit: 2,
                after: None,
            }),
        })
        .await
        .expect("top policies");
    let page = top.page.expect("a page");
    let ranked: Vec<(&str, u64)> = page.groups.iter().map(|g| (g.group.as_str(), g.value)).collect();
    assert_eq!(ranked, [("p", 2), ("q", 1)]);
    assert!(page.more, "r is on the next page");
    store.close().await;
}

/// Migration 12 on a database version 11 left: `results_subject` ends with the result and the
/// severity (same name, same leading columns, no index added), and a summary page grouped by
/// the subject's kind counts the results written before exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_11_databases_widen_the_subject_index() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    for (ns, name, results) in [
        ("a", "r1", [("p", "fail"), ("q", "pass")]),
        ("b", "r2", [("p", "fail"), ("q", "fail")]),
    ] {
        let mut w = fixtures::with_results(ns, name, &results);
        w.body["results"][1]["resources"] = serde_json::json!([{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "d"}]);
        fixtures::reindex(&mut w);
        fixtures::create(&*store, w).await;
    }
    store.close().await;

    // Back to what version 11 left.
    let admin = db.analyst_client().await;
    super::upgrades::forget_versions_from(
        &admin,
        12,
        "DROP INDEX results_subject;
             CREATE INDEX results_subject ON results (subject_name, subject_namespace, subject_kind, cluster);",
    )
    .await;

    let store = db.open_postgres().await;
    let indexes = super::upgrades::index_names(&admin, "results").await;
    assert_eq!(indexes.len(), 6, "no index added: {indexes:?}");
    let def: String = admin
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'results_subject'",
            &[],
        )
        .await
        .expect("results_subject")
        .get(0);
    assert!(
        def.ends_with("(subject_name, subject_namespace, subject_kind, cluster, result, severity)"),
        "{def}"
    );

    let kinds = store
        .summarize_results(SummaryQuery {
            filter: ResultFilter::default(),
            group_by: vec![
                ResultColumn::SubjectKind,
                ResultColumn::Result,
                ResultColumn::Severity,
            ],
            page: Some(GroupPage {
                rank: GroupRank::Result("fail".into()),
                limit: 10,
                after: None,
            }),
        })
        .await
        .expect("groups by subject kind");
    let page = kinds.page.expect("a page");
    let ranked: Vec<(&str, u64)> = page.groups.iter().map(|g| (g.group.as_str(), g.value)).collect();
    let mut rows: Vec<(Option<String>, Option<String>, u64)> = kinds
        .rows
        .iter()
        .map(|r| (r.keys[0].clone(), r.keys[1].clone(), r.count))
        .collect();
    rows.sort();
    let kind = |k: &str| Some(k.to_owned());
    assert_eq!(
        rows,
        [
            (kind("Deployment"), kind("fail"), 1),
            (kind("Deployment"), kind("pass"), 1),
            (kind("Pod"), kind("fail"), 2),
        ],
        "{ranked:?}"
    );
    assert_eq!(ranked, [("Pod", 2), ("Deployment", 1)]);
    store.close().await;
}

/// Migration 13 on a database version 12 left: each number row gets its result's result and
/// severity (NULL when missing, as on `results`), the range index holds them, and a numeric
/// range with a severity condition counts the results written before exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_12_databases_get_result_and_severity_beside_each_number() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let mut w = fixtures::with_results("a", "r1", &[("p", "fail"), ("q", "pass"), ("r", "fail")]);
    for (i, (score, severity)) in [(9.8, Some("high")), (8.5, None), (2.0, Some("low"))]
        .into_iter()
        .enumerate()
    {
        let r = &mut w.body["results"][i];
        r["properties"]["score"] = serde_json::json!(score);
        match severity {
            Some(s) => r["severity"] = serde_json::json!(s),
            None => {
                r.as_object_mut().expect("a result").remove("severity");
            }
        }
    }
    fixtures::reindex(&mut w);
    fixtures::create(&*store, w).await;
    store.close().await;

    // Back to what version 12 left.
    let admin = db.analyst_client().await;
    super::upgrades::forget_versions_from(
        &admin,
        13,
        "DROP INDEX result_numbers_key_value;
             ALTER TABLE result_numbers DROP COLUMN result, DROP COLUMN severity;
             CREATE INDEX result_numbers_key_value ON result_numbers (key, value);",
    )
    .await;

    let store = db.open_postgres().await;
    let numbers: Vec<(String, f64, Option<String>, Option<String>)> = admin
        .query(
            "SELECT key, value, result, severity FROM result_numbers WHERE key = 'score' ORDER BY idx",
            &[],
        )
        .await
        .expect("result_numbers")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let text = |s: &str| Some(s.to_owned());
    assert_eq!(
        numbers,
        [
            ("score".to_owned(), 9.8, text("fail"), text("high")),
            ("score".to_owned(), 8.5, text("pass"), None),
            ("score".to_owned(), 2.0, text("fail"), text("low")),
        ]
    );
    let def: String = admin
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'result_numbers_key_value'",
            &[],
        )
        .await
        .expect("result_numbers_key_value")
        .get(0);
    assert!(def.ends_with("(key, value, result, severity)"), "{def}");
    // The rebuilt table is analyzed by the migration: its numeric ranges are planned on real
    // statistics from the first query on.
    let analyzed: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'result_numbers' AND attname = 'value'",
            &[],
        )
        .await
        .expect("pg_stats")
        .get(0);
    assert_eq!(
        analyzed, 1,
        "result_numbers has planner statistics after migration 13"
    );

    let score = |bound: f64| Condition::Property {
        key: "score".into(),
        test: PropertyTest::Number(Compare::GreaterOrEqual, bound),
    };
    for (conditions, expected) in [
        (
            vec![
                score(8.0),
                Condition::In(ResultColumn::Severity, vec!["high".into()]),
            ],
            1,
        ),
        (
            vec![score(8.0), Condition::In(ResultColumn::Severity, vec!["".into()])],
            1,
        ),
        (
            vec![
                score(1.0),
                Condition::NotIn(ResultColumn::Result, vec!["pass".into()]),
            ],
            2,
        ),
        (
            vec![
                score(8.0),
                Condition::In(ResultColumn::Severity, vec!["low".into()]),
            ],
            0,
        ),
    ] {
        let page = store
            .query_results(ResultQuery {
                filter: ResultFilter {
                    namespace: None,
                    conditions: conditions.clone(),
                },
                order: ResultOrder::Report,
                limit: 10,
                after: None,
                count: true,
            })
            .await
            .expect("a page");
        assert_eq!(page.items.len(), expected, "{conditions:?}");
        assert_eq!(page.total, Some(expected as u64), "{conditions:?}");
    }
    store.close().await;
}
