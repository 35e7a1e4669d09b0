//! Unit tests of the SQLite result queries: semantics on hand-made rows, pagination in every
//! order, and the query plans the module documents.

use rusqlite::Connection;

use prext_api::report::{ReportIndex, ResultRow, Subject};

use super::*;
use crate::results::{severity_rank, SummaryQuery};
use crate::sqlite::ops;
use crate::sqlite::prepared::Prepared;
use crate::sqlite::schema;

/// One result row to insert: `(namespace, report, idx, policy, result, severity, score, ts)`.
pub(super) type Row<'a> = (
    &'a str,
    &'a str,
    i64,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
);

/// The report `ns/report` holding `rows` (the rows' own namespace and report are ignored),
/// prepared as the store prepares a write.
fn prepared(ns: &str, report: &str, rows: &[Row<'_>]) -> Prepared {
    let resource = if ns.is_empty() {
        "clusterpolicyreports.wgpolicyk8s.io"
    } else {
        "policyreports.wgpolicyk8s.io"
    };
    let results = rows
        .iter()
        .map(|(_, _, idx, policy, result, severity, score, ts)| ResultRow {
            index: *idx,
            policy: Some((*policy).to_owned()),
            result: Some((*result).to_owned()),
            severity: severity.map(str::to_owned),
            timestamp: *ts,
            message: Some(format!("{policy} said {result} 100% of_the time")),
            properties: match score {
                Some(s) => serde_json::json!({ "score": s, "pkg": "openssl" }),
                None => serde_json::json!({}),
            },
            resources: serde_json::json!([]),
            subject: Subject {
                kind: Some("Pod".into()),
                name: Some(format!("pod-{idx}")),
                ..Subject::default()
            },
            ..ResultRow::default()
        })
        .collect();
    Prepared::new(crate::ObjectWrite {
        key: crate::ObjectKey::new(resource, ns, report),
        uid: format!("{ns}/{report}"),
        labels: Default::default(),
        created: "2024-01-01T00:00:00Z".into(),
        deleting: false,
        body: serde_json::json!({"metadata": {"name": report}}),
        index: ReportIndex {
            results,
            ..ReportIndex::default()
        },
    })
    .expect("prepared")
}

/// The reports of `rows` (grouped by namespace and report, in order of appearance), created
/// through the writer's own statements.
pub(super) fn db(rows: &[Row<'_>]) -> Connection {
    let mut conn = Connection::open_in_memory().expect("memory db");
    schema::migrate(&mut conn).expect("migrate");
    conn.execute_batch("PRAGMA foreign_keys = ON").expect("fk");
    let mut reports: Vec<(&str, &str, Vec<Row<'_>>)> = Vec::new();
    for row in rows {
        match reports.iter_mut().find(|(ns, r, _)| *ns == row.0 && *r == row.1) {
            Some((_, _, rows)) => rows.push(*row),
            None => reports.push((row.0, row.1, vec![*row])),
        }
    }
    for (revision, (ns, report, rows)) in (1..).zip(reports) {
        ops::create(&conn, prepared(ns, report, &rows), revision, None).expect("create");
    }
    conn
}

fn sample() -> Connection {
    db(&[
        ("a", "r1", 0, "p1", "fail", Some("high"), Some("9.8"), Some(30)),
        ("a", "r1", 1, "p2", "pass", None, None, Some(10)),
        ("a", "r2", 0, "p1", "fail", Some("critical"), Some("7"), None),
        ("b", "r1", 0, "p3", "warn", Some("low"), Some("n/a"), Some(20)),
        ("b", "r1", 1, "p1", "fail", Some("high"), Some("8"), Some(40)),
        ("", "c1", 0, "p4", "error", Some("medium"), None, Some(5)),
    ])
}

fn keys(page: &ResultPage) -> Vec<String> {
    page.items
        .iter()
        .map(|r| format!("{}/{}/{}", r.namespace, r.report, r.index))
        .collect()
}

fn run(conn: &mut Connection, conditions: Vec<Condition>) -> Vec<String> {
    let q = ResultQuery {
        filter: ResultFilter {
            namespace: None,
            conditions,
        },
        limit: 100,
        count: true,
        ..ResultQuery::default()
    };
    let page = query(conn, &q).expect("query");
    assert_eq!(page.total, Some(page.items.len() as u64));
    keys(&page)
}

fn vals(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

#[test]
fn filters_follow_the_documented_semantics() {
    use Condition::*;
    use ResultColumn as C;
    let mut conn = sample();
    let cases: Vec<(Vec<Condition>, &[&str])> = vec![
        (
            vec![],
            &["/c1/0", "a/r1/0", "a/r1/1", "a/r2/0", "b/r1/0", "b/r1/1"],
        ),
        (
            vec![
                In(C::Result, vals(&["fail"])),
                In(C::Severity, vals(&["high", "critical"])),
            ],
            &["a/r1/0", "a/r2/0", "b/r1/1"],
        ),
        // A missing severity counts as "".
        (vec![In(C::Severity, vals(&[""]))], &["a/r1/1"]),
        (
            vec![NotIn(C::Severity, vals(&["high", "critical"]))],
            &["/c1/0", "a/r1/1", "b/r1/0"],
        ),
        (
            vec![NotIn(C::Severity, vals(&["", "high"]))],
            &["/c1/0", "a/r2/0", "b/r1/0"],
        ),
        (vec![In(C::Namespace, vals(&[""]))], &["/c1/0"]),
        (vec![NotIn(C::Report, vals(&["r1"]))], &["/c1/0", "a/r2/0"]),
        (vec![In(C::Policy, vec![])], &[]),
        (
            vec![NotIn(C::Policy, vec![])],
            &["/c1/0", "a/r1/0", "a/r1/1", "a/r2/0", "b/r1/0", "b/r1/1"],
        ),
        // Numeric comparisons ignore values that are not numbers ("n/a").
        (
            vec![Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, 8.0),
            }],
            &["a/r1/0", "b/r1/1"],
        ),
        (
            vec![Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::Less, 8.0),
            }],
            &["a/r2/0"],
        ),
        (
            vec![Property {
                key: "score".into(),
                test: PropertyTest::In(vec!["n/a".into()]),
            }],
            &["b/r1/0"],
        ),
        (
            vec![Property {
                key: "score".into(),
                test: PropertyTest::NotIn(vec!["n/a".into(), "7".into()]),
            }],
            &["/c1/0", "a/r1/0", "a/r1/1", "b/r1/1"],
        ),
        (
            vec![Property {
                key: "score".into(),
                test: PropertyTest::Missing,
            }],
            &["/c1/0", "a/r1/1"],
        ),
        (
            vec![Property {
                key: "pk\"g".into(),
                test: PropertyTest::Exists,
            }],
            &[],
        ),
        // LIKE wildcards in the text are literal; case is ignored.
        (vec![MessageContains("P3 SAID".into())], &["b/r1/0"]),
        (
            vec![MessageContains("100%".into())],
            &["/c1/0", "a/r1/0", "a/r1/1", "a/r2/0", "b/r1/0", "b/r1/1"],
        ),
        (vec![MessageContains("0%_".into())], &[]),
        (
            vec![MessageContains("of_the".into())],
            &["/c1/0", "a/r1/0", "a/r1/1", "a/r2/0", "b/r1/0", "b/r1/1"],
        ),
        (vec![Index(1)], &["a/r1/1", "b/r1/1"]),
    ];
    for (conditions, want) in cases {
        assert_eq!(run(&mut conn, conditions.clone()), want, "{conditions:?}");
    }
    // A namespace scope.
    let q = ResultQuery {
        filter: ResultFilter {
            namespace: Some("b".into()),
            conditions: vec![],
        },
        limit: 10,
        ..ResultQuery::default()
    };
    assert_eq!(keys(&query(&mut conn, &q).expect("query")), ["b/r1/0", "b/r1/1"]);
}

/// Reads every page of `order` with page size `limit`.
fn all_pages(conn: &mut Connection, order: ResultOrder, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let q = ResultQuery {
            order,
            limit,
            after: after.clone(),
            ..ResultQuery::default()
        };
        let page = query(conn, &q).expect("page");
        out.extend(keys(&page));
        match (page.more, page.items.last()) {
            (true, Some(last)) => after = Some(last.cursor(order)),
            _ => return out,
        }
    }
}

#[test]
fn orders_and_pages() {
    let mut conn = sample();
    let severity = ResultOrder::Severity { ascending: false };
    let want_severity = ["a/r2/0", "a/r1/0", "b/r1/1", "/c1/0", "b/r1/0", "a/r1/1"];
    let time = ResultOrder::Timestamp { ascending: false };
    let want_time = ["b/r1/1", "a/r1/0", "b/r1/0", "a/r1/1", "/c1/0", "a/r2/0"];
    for limit in [1, 2, 4, 100] {
        assert_eq!(
            all_pages(&mut conn, ResultOrder::Report, limit),
            ["/c1/0", "a/r1/0", "a/r1/1", "a/r2/0", "b/r1/0", "b/r1/1"]
        );
        assert_eq!(
            all_pages(&mut conn, severity, limit),
            want_severity,
            "limit {limit}"
        );
        let mut reversed = want_severity;
        reversed.reverse();
        // Ascending reverses the rank only: ties keep report order.
        assert_eq!(
            all_pages(&mut conn, ResultOrder::Severity { ascending: true }, limit),
            ["a/r1/1", "b/r1/0", "/c1/0", "a/r1/0", "b/r1/1", "a/r2/0"]
        );
        assert_eq!(all_pages(&mut conn, time, limit), want_time, "limit {limit}");
        assert_ne!(reversed, want_severity);
    }
    assert_eq!(severity_rank(Some("critical")), 5);
}

#[test]
fn summaries_group_and_count() {
    let mut conn = sample();
    let sum = |conn: &mut Connection, group_by: Vec<ResultColumn>, conditions: Vec<Condition>| {
        let q = SummaryQuery {
            filter: ResultFilter {
                namespace: None,
                conditions,
            },
            group_by,
            page: None,
        };
        summarize(conn, &q)
            .expect("summary")
            .rows
            .into_iter()
            .map(|r| (r.keys, r.count))
            .collect::<Vec<_>>()
    };
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(sum(&mut conn, vec![], vec![]), [(vec![], 6)]);
    assert_eq!(
        sum(
            &mut conn,
            vec![ResultColumn::Namespace, ResultColumn::Result],
            vec![]
        ),
        [
            (vec![s(""), s("error")], 1),
            (vec![s("a"), s("fail")], 2),
            (vec![s("a"), s("pass")], 1),
            (vec![s("b"), s("fail")], 1),
            (vec![s("b"), s("warn")], 1),
        ]
    );
    assert_eq!(
        sum(
            &mut conn,
            vec![ResultColumn::Severity, ResultColumn::Namespace],
            vec![Condition::In(
                ResultColumn::Result,
                vec!["fail".into(), "pass".into()]
            )]
        ),
        [
            (vec![None, s("a")], 1),
            (vec![s("critical"), s("a")], 1),
            (vec![s("high"), s("a")], 1),
            (vec![s("high"), s("b")], 1),
        ]
    );
    assert_eq!(
        sum(
            &mut conn,
            vec![ResultColumn::Policy],
            vec![Condition::In(ResultColumn::Namespace, vec!["b".into()])]
        ),
        [(vec![s("p1")], 1), (vec![s("p3")], 1)]
    );
}

#[test]
fn numbers_follow_their_results() {
    let conn = sample();
    let numbers = |conn: &Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM result_numbers", [], |r| r.get(0))
            .expect("count")
    };
    // 9.8, 7 and 8: "n/a" and "openssl" are not numbers.
    assert_eq!(numbers(&conn), 3);
    // The per-report counts always add up to the result rows, per (result, severity).
    let counts_agree = |conn: &Connection| {
        let diff: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM (
                   SELECT object_id, coalesce(result, ''), coalesce(severity, ''), coalesce(source, ''), count(*)
                   FROM results GROUP BY 1, 2, 3, 4
                   EXCEPT SELECT object_id, result, severity, source, n FROM result_counts))
                 + (SELECT count(*) FROM result_counts WHERE n <= 0)",
                [],
                |r| r.get(0),
            )
            .expect("compare");
        let total: i64 = conn
            .query_row(
                "SELECT (SELECT coalesce(sum(n), 0) FROM result_counts) - (SELECT count(*) FROM results)",
                [],
                |r| r.get(0),
            )
            .expect("totals");
        assert_eq!((diff, total), (0, 0));
    };
    counts_agree(&conn);
    // Results that lose their `p1`/`high` rows: their numbers and counts follow.
    let rows_a: &[Row<'_>] = &[("a", "r1", 1, "p2", "pass", None, None, Some(10))];
    let rows_b: &[Row<'_>] = &[("b", "r1", 0, "p3", "warn", Some("low"), Some("n/a"), Some(20))];
    // Created at revisions 1 (a/r1) and 3 (b/r1).
    for (revision, (ns, rows, expected)) in (100..).zip([("a", rows_a, 1), ("b", rows_b, 3)]) {
        ops::update(&conn, prepared(ns, "r1", rows), expected, revision, None).expect("update");
    }
    assert_eq!(numbers(&conn), 1);
    counts_agree(&conn);
    // The same results again: nothing to rewrite, and nothing changes.
    let before: i64 = conn
        .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
        .expect("count");
    ops::update(&conn, prepared("a", "r1", rows_a), 100, 102, None).expect("update");
    let after: i64 = conn
        .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
        .expect("count");
    assert_eq!((before, numbers(&conn)), (after, 1));
    counts_agree(&conn);
    for (revision, (ns, report)) in (200..).zip([("a", "r1"), ("a", "r2"), ("b", "r1"), ("", "c1")]) {
        let key = crate::ObjectKey::new(
            if ns.is_empty() {
                "clusterpolicyreports.wgpolicyk8s.io"
            } else {
                "policyreports.wgpolicyk8s.io"
            },
            ns,
            report,
        );
        ops::delete(&conn, key, &crate::Preconditions::default(), revision).expect("delete");
    }
    assert_eq!(numbers(&conn), 0);
    counts_agree(&conn);
}

pub(super) fn plan(conn: &Connection, sql: &str, params: &[Value]) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("explain");
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            r.get::<_, String>(3)
        })
        .expect("plan rows");
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .expect("plan")
        .join("\n")
}

#[test]
fn plans_use_the_indexes() {
    let conn = sample();
    let filter = ResultFilter {
        namespace: None,
        conditions: vec![
            Condition::In(ResultColumn::Result, vec!["fail".into()]),
            Condition::In(ResultColumn::Severity, vec!["high".into(), "critical".into()]),
        ],
    };
    let lowered = lower(&filter, Indexes::Use);
    let p = &lowered.predicate;
    // The walk reads each report's results by primary key, never an index on a result column
    // (which it would scan once per report).
    let avoid = lower(&filter, Indexes::Avoid).predicate;
    // The report-order walk reads objects in index order and sorts nothing.
    let walk = format!(
        "SELECT {RECORD_COLUMNS} FROM objects AS o CROSS JOIN results AS r ON r.object_id = o.id{} \
         ORDER BY {} LIMIT 10",
        avoid.where_sql(),
        order_by(ResultOrder::Report)
    );
    let walk_plan = plan(&conn, &walk, &avoid.params);
    assert!(walk_plan.contains("objects_order"), "{walk_plan}");
    // The primary key (object_id, idx): the table's own key before schema 6, its unique
    // index since `results` is a rowid table again.
    assert!(
        walk_plan.contains("SEARCH r USING PRIMARY KEY (object_id=?)")
            || walk_plan.contains("SEARCH r USING INDEX sqlite_autoindex_results_1 (object_id=?)"),
        "{walk_plan}"
    );
    assert!(!walk_plan.contains("results_result_severity"), "{walk_plan}");
    assert!(!walk_plan.contains("TEMP B-TREE FOR ORDER BY"), "{walk_plan}");
    // Counting uses the (result, severity) index without touching the reports.
    let count = format!("SELECT count(*) FROM results AS r{}", p.where_sql());
    let count_plan = plan(&conn, &count, &p.params);
    assert!(count_plan.contains("results_result_severity"), "{count_plan}");
    // A numeric property test is a range of the numbers index.
    let numeric = lower(
        &ResultFilter {
            namespace: None,
            conditions: vec![Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, 8.0),
            }],
        },
        Indexes::Use,
    );
    let drive = numeric.predicate(NumberForm::Drive);
    let q = format!("SELECT count(*) FROM results AS r{}", drive.where_sql());
    let numeric_plan = plan(&conn, &q, &drive.params);
    assert!(
        numeric_plan.contains("result_numbers_key_value"),
        "{numeric_plan}"
    );
    // The walk probes the numbers by primary key instead of being driven by their range.
    let probe = numeric.predicate(NumberForm::Probe);
    let walk = format!(
        "SELECT {RECORD_COLUMNS} FROM objects AS o CROSS JOIN results AS r ON r.object_id = o.id{} \
         ORDER BY {} LIMIT 10",
        probe.where_sql(),
        order_by(ResultOrder::Report)
    );
    let walk_plan = plan(&conn, &walk, &probe.params);
    assert!(
        walk_plan.contains("SCAN o USING") && walk_plan.contains("objects_order"),
        "{walk_plan}"
    );
    assert!(!walk_plan.contains("TEMP B-TREE FOR ORDER BY"), "{walk_plan}");
}

/// The backend-neutral conformance checks of result queries, on this backend.
#[cfg(feature = "testsuite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_conformance() {
    crate::testsuite::run_results(|| async { crate::testsuite::TempSqlite::new() }).await;
}

/// Every `SELECT` example of `docs/sql.md` runs on this schema (and finds the CVSS rows).
#[test]
fn documented_queries_run() {
    let conn = sample();
    let doc = include_str!("../../../../docs/sql.md");
    let mut ran = 0;
    for block in doc.split("```sql\n").skip(1) {
        let sql = block.split("```").next().unwrap_or_default();
        if !sql.trim_start().starts_with("SELECT") {
            continue;
        }
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{e}:\n{sql}"));
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..columns)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .unwrap_or_else(|e| panic!("{e}:\n{sql}"));
        if sql.contains("n.value >= 8.0") || sql.contains("AS score") {
            assert_eq!(rows.len(), 2, "9.8 and 8: {sql}");
        }
        ran += 1;
    }
    assert!(ran >= 8, "{ran} examples");
}
