//! Schema versions 11 and 12 (result indexes that cover top-N summaries and groupings by the
//! subject) on databases versions 10 and 11 left.

use prext_store::results::{GroupPage, GroupRank, ResultColumn, ResultFilter, SummaryQuery};
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
        let mut w = fixtures::report(fixtures::POLR, ns, name);
        fixtures::set_results(&mut w, &results);
        fixtures::reindex(&mut w);
        fixtures::create(&*store, w).await;
    }
    store.close().await;

    // Back to what version 10 left.
    let admin = db.analyst_client().await;
    super::schema::forget_versions_from(
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
        let mut w = fixtures::report(fixtures::POLR, ns, name);
        fixtures::set_results(&mut w, &results);
        w.body["results"][1]["resources"] = serde_json::json!([{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "d"}]);
        fixtures::reindex(&mut w);
        fixtures::create(&*store, w).await;
    }
    store.close().await;

    // Back to what version 11 left.
    let admin = db.analyst_client().await;
    super::schema::forget_versions_from(
        &admin,
        12,
        "DROP INDEX results_subject;
             CREATE INDEX results_subject ON results (subject_name, subject_namespace, subject_kind, cluster);",
    )
    .await;

    let store = db.open_postgres().await;
    let indexes = super::schema::index_names(&admin, "results").await;
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
