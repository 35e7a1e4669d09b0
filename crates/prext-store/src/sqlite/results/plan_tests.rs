//! Plans of combined filters once the writer has analyzed the tables: each query starts from
//! its most selective condition, whatever the order the filters were written in, and a small
//! page does not turn a sorted read into a walk of every report.

use rusqlite::Connection;

use super::tests::{db, plan, Row};
use super::*;
use crate::sqlite::statistics;

/// 40 reports of 50 results: most fail, one in fifty scores 8 or more, policies are many
/// (like CVE ids), each on a few results.
fn skewed() -> Connection {
    let names: Vec<String> = (0..40).map(|i| format!("r{i:02}")).collect();
    let policies: Vec<String> = (0..400).map(|i| format!("CVE-{i:04}")).collect();
    let mut rows: Vec<Row<'_>> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for j in 0..50 {
            let n = i * 50 + j;
            let result = if n % 5 == 0 { "pass" } else { "fail" };
            let score = if n % 50 == 7 { Some("9.1") } else { Some("3") };
            let policy = policies[(n * 7) % policies.len()].as_str();
            rows.push((
                "ns",
                name.as_str(),
                j as i64,
                policy,
                result,
                Some("high"),
                score,
                None,
            ));
        }
    }
    let conn = db(&rows);
    statistics::analyze(&conn).expect("analyze");
    conn
}

fn page_plan(conn: &Connection, conditions: Vec<Condition>) -> String {
    page_plan_in(conn, None, conditions)
}

/// The plan of a sorted first page of 50, as `query` writes it.
fn page_plan_in(conn: &Connection, namespace: Option<&str>, conditions: Vec<Condition>) -> String {
    let filter = ResultFilter {
        namespace: namespace.map(str::to_owned),
        conditions,
    };
    let lowered = lower(&filter, Indexes::Use);
    let p = lowered.predicate(lowered.number_form());
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM results AS r JOIN objects AS o ON o.id = r.object_id{} ORDER BY {} LIMIT 51",
        p.where_sql(),
        sorted_order_by(ResultOrder::Report)
    );
    plan(conn, &sql, &p.params)
}

#[test]
fn combined_filters_start_from_the_most_selective_index() {
    let conn = skewed();
    let fail = || Condition::In(ResultColumn::Result, vec!["fail".into()]);
    // property=score>=8 and result=fail: the few high scores, not every failure.
    let numeric = page_plan(
        &conn,
        vec![
            fail(),
            Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, 8.0),
            },
        ],
    );
    assert!(numeric.contains("result_numbers_key_value"), "{numeric}");
    assert!(!numeric.contains("results_result_severity"), "{numeric}");
    assert!(!numeric.contains("SCAN r"), "{numeric}");
    // policy=CVE-0003 and result=fail: that policy's few rows.
    let policy = page_plan(
        &conn,
        vec![
            fail(),
            Condition::In(ResultColumn::Policy, vec!["CVE-0003".into()]),
        ],
    );
    assert!(policy.contains("results_policy_rule_result_severity"), "{policy}");
    assert!(!policy.contains("SCAN r"), "{policy}");
}

#[test]
fn a_subject_name_alone_searches_the_subject_index() {
    let conn = skewed();
    let by_name = page_plan(
        &conn,
        vec![Condition::In(ResultColumn::SubjectName, vec!["pod-7".into()])],
    );
    assert!(by_name.contains("results_subject (subject_name=?)"), "{by_name}");
    assert!(!by_name.contains("SCAN r"), "{by_name}");
}

/// Schema 9 reorders the subject index of an existing database, which keeps its rows.
#[test]
fn version_8_databases_get_the_subject_index_by_name() {
    use crate::sqlite::schema::{migrate_to, open_writer};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn =
        open_writer(&dir.path().join("prext.db"), std::time::Duration::from_secs(5)).expect("open");
    assert_eq!(migrate_to(&mut conn, 8).expect("version 8"), 8);
    conn.execute_batch(
        "INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body)
         VALUES (1, 'policyreports.wgpolicyk8s.io', 'a', 'r1', 'u1', 1, '2024-01-01T00:00:00Z', '{}');
         INSERT INTO results (object_id, idx, policy, result, subject_kind, subject_namespace, subject_name)
         VALUES (1, 0, 'p', 'fail', 'Pod', 'a', 'web'), (1, 1, 'p', 'pass', 'Pod', 'a', 'db');",
    )
    .expect("version 8 rows");
    // Version 9's index (version 10 appends the result and severity: `top_tests.rs`).
    assert_eq!(migrate_to(&mut conn, 9).expect("upgrade"), 9);
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_info('results_subject') ORDER BY seqno")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("index_info");
    assert_eq!(columns, ["subject_name", "subject_namespace", "subject_kind"]);
    let web: i64 = conn
        .query_row(
            "SELECT count(*) FROM results INDEXED BY results_subject WHERE subject_name = 'web'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(web, 1);
}

/// Planner statistics of a large database (`sqlite_stat1` as `ANALYZE` leaves it, scaled to
/// 1,000,000 results of 50,000 reports with 420,000 numeric properties), loaded over a small
/// one's tables.
fn with_large_statistics(conn: &Connection) {
    let indexes: Vec<(String, String, i64)> = conn
        .prepare(
            "SELECT s.name, s.tbl_name, (SELECT count(*) FROM pragma_index_info(s.name))
             FROM sqlite_schema AS s
             WHERE s.type = 'index' AND s.tbl_name IN ('objects', 'results', 'result_numbers')",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .expect("indexes");
    conn.execute_batch("DELETE FROM sqlite_stat1").expect("clear");
    let rows = |table: &str| match table {
        "objects" => (50_000, 25),
        "results" => (1_000_000, 5),
        _ => (420_000, 100_000),
    };
    for (index, table, columns) in indexes {
        let (n, first) = rows(&table);
        let stat = if index == "result_numbers_key_value" {
            "420000 100000 4000".to_owned()
        } else {
            format!(
                "{n} {first}{}",
                " 1".repeat(usize::try_from(columns - 1).unwrap_or(0))
            )
        };
        conn.execute(
            "INSERT INTO sqlite_stat1 VALUES (?1, ?2, ?3)",
            [&table, &index, &stat],
        )
        .expect("stat");
    }
    for table in ["objects", "results", "result_numbers"] {
        conn.execute(
            "INSERT INTO sqlite_stat1 VALUES (?1, NULL, ?2)",
            [table, &rows(table).0.to_string()],
        )
        .expect("table stat");
    }
    conn.execute_batch("ANALYZE sqlite_schema")
        .expect("reload statistics");
}

/// `property=score>=9.9` at 1,000,000 results took 0.6-1 s whatever the page size: with a
/// row-value `(object_id, idx) IN (list)`, SQLite looped over the list's reports and, for each,
/// over the whole list again. A list of result rowids drives the page, read once.
#[test]
fn a_numeric_property_filter_reads_its_matches_once() {
    let conn = skewed();
    with_large_statistics(&conn);
    let page = page_plan(
        &conn,
        vec![Condition::Property {
            key: "score".into(),
            test: PropertyTest::Number(Compare::GreaterOrEqual, 9.9),
        }],
    );
    let first = page.lines().next().unwrap_or_default();
    assert_eq!(first, "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)", "{page}");
    assert_eq!(page.matches("LIST SUBQUERY").count(), 1, "{page}");
    assert!(!page.contains("SCAN"), "{page}");
}

/// A report's name, a subject's name or a namespace drives a combined filter. With the
/// statistics of a large database SQLite started from a policy's index (`sqlite_stat1` gives
/// a policy 5 rows: most are CVE ids; a Kyverno policy holds 8,000 of 200,000 results) or
/// from a wide numeric range (`score>=8`: 16,855 rows), and read all of it for a handful of
/// matches (BENCHMARKS.md, session 6).
#[test]
fn a_named_report_subject_or_namespace_drives_the_page() {
    let conn = skewed();
    with_large_statistics(&conn);
    let policy = || Condition::In(ResultColumn::Policy, vec!["CVE-0003".into()]);
    let score = || Condition::Property {
        key: "score".into(),
        test: PropertyTest::Number(Compare::GreaterOrEqual, 8.0),
    };
    for anchor in [ResultColumn::Report, ResultColumn::SubjectName] {
        let plan = page_plan(&conn, vec![policy(), Condition::In(anchor, vec!["r07".into()])]);
        assert!(!plan.contains("results_policy"), "{anchor:?}: {plan}");
        assert!(!plan.contains("SCAN r"), "{anchor:?}: {plan}");
        let plan = page_plan(&conn, vec![score(), Condition::In(anchor, vec!["r07".into()])]);
        assert!(!plan.contains("result_numbers_key_value"), "{anchor:?}: {plan}");
        assert!(!plan.contains("SCAN r"), "{anchor:?}: {plan}");
    }
    let by_subject = page_plan(
        &conn,
        vec![
            policy(),
            Condition::In(ResultColumn::SubjectName, vec!["pod-7".into()]),
        ],
    );
    assert!(
        by_subject.contains("results_subject (subject_name=?)"),
        "{by_subject}"
    );
    for conditions in [vec![policy()], vec![score()]] {
        let plan = page_plan_in(&conn, Some("ns"), conditions);
        assert!(plan.starts_with("SEARCH o USING"), "{plan}");
        assert!(!plan.contains("results_policy"), "{plan}");
        assert!(!plan.contains("result_numbers_key_value"), "{plan}");
    }
    // Not anchored: an empty subject name (missing) keeps the policy's index.
    let missing = page_plan(
        &conn,
        vec![
            policy(),
            Condition::In(ResultColumn::SubjectName, vec![String::new()]),
        ],
    );
    assert!(missing.contains("results_policy"), "{missing}");
}

/// A source narrows a driving numeric range to the reports holding results of that source
/// (their per-report counts, read once as a list) before any result row is read: no result
/// index has the source, and `score>=8` with `source=kube-bench` read the 83,498 rows of the
/// range and their result rows for none (1,000,000 results, BENCHMARKS.md, session 7).
#[test]
fn a_source_narrows_a_numeric_range_to_its_reports() {
    let conn = skewed();
    with_large_statistics(&conn);
    let plan = page_plan(
        &conn,
        vec![
            Condition::In(ResultColumn::Source, vec!["kube-bench".into()]),
            Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, 8.0),
            },
        ],
    );
    assert!(plan.contains("result_numbers_key_value"), "{plan}");
    // The reports' list is built once from the counts (a subquery of its own, not a probe
    // per row of the range).
    assert_eq!(plan.matches("LIST SUBQUERY").count(), 2, "{plan}");
    assert!(
        plan.lines()
            .any(|l| l == "SCAN c" || l.starts_with("SEARCH c USING")),
        "{plan}"
    );
    assert!(!plan.contains("SCAN r"), "{plan}");
}

/// Of two numeric tests only the narrower range drives, whatever the order they were written
/// in; the other is probed per row of it. Both used to drive: `score>=9.9` with `score>=8`
/// read the 83,498 rows of the wider range for the 7,938 of the narrower (0.77 s at
/// 1,000,000 results, BENCHMARKS.md, session 7).
#[test]
fn the_narrowest_of_two_numeric_ranges_drives() {
    let conn = skewed();
    with_large_statistics(&conn);
    let score = |bound: f64| Condition::Property {
        key: "score".into(),
        test: PropertyTest::Number(Compare::GreaterOrEqual, bound),
    };
    for conditions in [vec![score(1.0), score(9.0)], vec![score(9.0), score(1.0)]] {
        let filter = ResultFilter {
            namespace: None,
            conditions,
        };
        let lowered = lower_live(&conn, &filter, Indexes::Use).expect("lower");
        let bounds: Vec<f64> = lowered.numbers.iter().map(|n| n.bound).collect();
        assert_eq!(bounds, [9.0, 1.0], "{filter:?}");
        let p = lowered.predicate(lowered.number_form());
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM results AS r JOIN objects AS o ON o.id = r.object_id{} ORDER BY {} LIMIT 51",
            p.where_sql(),
            sorted_order_by(ResultOrder::Report)
        );
        let plan = plan(&conn, &sql, &p.params);
        assert_eq!(plan.matches("LIST SUBQUERY").count(), 1, "{plan}");
        assert_eq!(plan.matches("result_numbers_key_value").count(), 1, "{plan}");
    }
}

/// A message test has no index; with a source, only the results of the reports holding that
/// source are read (their per-report counts, a list read once), not every result row:
/// `message~openssl` with `source=kube-bench` read all 1,000,000 messages (BENCHMARKS.md,
/// session 7).
#[test]
fn a_source_narrows_a_message_scan_to_its_reports() {
    let conn = skewed();
    with_large_statistics(&conn);
    let plan = page_plan(
        &conn,
        vec![
            Condition::MessageContains("openssl".into()),
            Condition::In(ResultColumn::Source, vec!["kube-bench".into()]),
        ],
    );
    assert!(plan.contains("LIST SUBQUERY"), "{plan}");
    assert!(!plan.contains("SCAN r"), "{plan}");
}

/// A numeric range tests the filter's result and severity inside its index (`result_numbers`
/// holds both beside each number, schema version 11), and its count reads no result row:
/// `score>=8` with `severity in (medium,low)` looked up the result rows of the range's 83,498
/// numbers for none (1,000,000 results, BENCHMARKS.md, sessions 7 and 8).
#[test]
fn a_result_or_severity_condition_is_tested_inside_the_numeric_range() {
    let conn = skewed();
    with_large_statistics(&conn);
    let filter = ResultFilter {
        namespace: None,
        conditions: vec![
            Condition::In(ResultColumn::Severity, vec!["medium".into(), "low".into()]),
            Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, 8.0),
            },
            Condition::NotIn(ResultColumn::Result, vec!["pass".into()]),
        ],
    };
    let lowered = lower_live(&conn, &filter, Indexes::Use).expect("lower");
    let p = lowered.predicate(lowered.number_form());
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM results AS r JOIN objects AS o ON o.id = r.object_id{} ORDER BY {} LIMIT 51",
        p.where_sql(),
        sorted_order_by(ResultOrder::Report)
    );
    let page = plan(&conn, &sql, &p.params);
    assert!(
        page.contains("SEARCH n USING COVERING INDEX result_numbers_key_value (key=? AND value>?)"),
        "{page}"
    );
    assert!(!page.contains("SCAN"), "{page}");
    for cap in [Some(10_001), None] {
        let (sql, params) = count_sql(&lowered, cap);
        let count = plan(&conn, &sql, &params);
        assert!(
            count.contains("SEARCH d USING COVERING INDEX result_numbers_key_value (key=? AND value>?)"),
            "{count}"
        );
        // The range's index alone: no table is read (the count's subquery aside).
        assert_eq!(
            count
                .lines()
                .filter(|l| (l.starts_with("SEARCH") || l.starts_with("SCAN"))
                    && !l.starts_with("SCAN (subquery"))
                .count(),
            1,
            "{count}"
        );
    }
}

/// Version 11 copies each number's result and severity from its result row in an existing
/// database, and puts them in the range index.
#[test]
fn version_10_databases_get_result_and_severity_beside_each_number() {
    use crate::sqlite::schema::{migrate, migrate_to, open_writer};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn =
        open_writer(&dir.path().join("prext.db"), std::time::Duration::from_secs(5)).expect("open");
    assert_eq!(migrate_to(&mut conn, 10).expect("version 10"), 10);
    conn.execute_batch(
        "INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body)
         VALUES (1, 'policyreports.wgpolicyk8s.io', 'a', 'r1', 'u1', 1, '2024-01-01T00:00:00Z', '{}');
         INSERT INTO results (object_id, idx, policy, result, severity)
         VALUES (1, 0, 'p', 'fail', 'high'), (1, 1, 'p', 'pass', NULL), (1, 2, 'p', 'fail', 'low');
         INSERT INTO result_numbers (object_id, idx, key, value)
         VALUES (1, 0, 'score', 9.8), (1, 0, 'epss', 0.5), (1, 1, 'score', 2.0);",
    )
    .expect("version 10 rows");
    assert!(migrate(&mut conn).expect("upgrade") >= 11);
    type Number = (i64, String, f64, Option<String>, Option<String>);
    let numbers: Vec<Number> = conn
        .prepare("SELECT idx, key, value, result, severity FROM result_numbers ORDER BY idx, key")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })
        .expect("numbers");
    let text = |s: &str| Some(s.to_owned());
    assert_eq!(
        numbers,
        [
            (0, "epss".to_owned(), 0.5, text("fail"), text("high")),
            (0, "score".to_owned(), 9.8, text("fail"), text("high")),
            (1, "score".to_owned(), 2.0, text("pass"), None),
        ]
    );
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_info('result_numbers_key_value') ORDER BY seqno")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("index_info");
    assert_eq!(columns, ["key", "value", "result", "severity"]);
}

/// A numeric range narrower than the filter's policy drives, though SQLite's statistics make
/// every policy look like a few rows: a Kyverno policy's 40,000 rows were each read for their
/// report and position to probe `score>=9.9` (7,938 numbers, no match; BENCHMARKS.md,
/// session 9). A policy narrower than the range keeps its index.
#[test]
fn a_numeric_range_narrower_than_the_policy_drives() {
    let names: Vec<String> = (0..40).map(|i| format!("r{i:02}")).collect();
    let mut rows: Vec<Row<'_>> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for j in 0..50 {
            let n = i * 50 + j;
            // Half the results are one policy's; the high scores are on the other half.
            let policy = if n % 2 == 0 { "pss" } else { "CVE-1" };
            let score = if n % 50 == 7 { Some("9.1") } else { Some("3") };
            rows.push(("ns", name.as_str(), j as i64, policy, "fail", None, score, None));
        }
    }
    let mut conn = db(&rows);
    statistics::analyze(&conn).expect("analyze");
    with_large_statistics(&conn);
    let filter = |policy: &str, bound: f64| ResultFilter {
        namespace: None,
        conditions: vec![
            Condition::In(ResultColumn::Policy, vec![policy.into()]),
            Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, bound),
            },
        ],
    };
    let wide = lower_live(&conn, &filter("pss", 9.0), Indexes::Use).expect("lower");
    assert!(wide.range_first);
    let (sql, params) = count_sql(&wide, Some(SORT_THRESHOLD + 1));
    let counted = plan(&conn, &sql, &params);
    let first = counted
        .lines()
        .find(|l| l.starts_with("SEARCH"))
        .unwrap_or_default();
    assert!(
        first.starts_with("SEARCH d USING COVERING INDEX result_numbers_key_value"),
        "{counted}"
    );
    assert!(!counted.contains("results_policy"), "{counted}");
    let p = wide.predicate(wide.number_form());
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM results AS r JOIN objects AS o ON o.id = r.object_id{} ORDER BY {} LIMIT 51",
        p.where_sql(),
        sorted_order_by(ResultOrder::Report)
    );
    let page = plan(&conn, &sql, &p.params);
    assert!(!page.contains("results_policy"), "{page}");
    assert!(page.contains("result_numbers_key_value"), "{page}");
    // Every result scores 3 or more: the policy's 1,000 rows are fewer than the range.
    let narrow = lower_live(&conn, &filter("pss", 1.0), Indexes::Use).expect("lower");
    assert!(!narrow.range_first);
    // Both read the same (no match; the other policy's high scores).
    for (policy, want) in [("pss", 0), ("CVE-1", 40)] {
        let q = ResultQuery {
            filter: filter(policy, 9.0),
            limit: 10,
            count: true,
            ..ResultQuery::default()
        };
        let page = query(&mut conn, &q).expect("query");
        assert_eq!(page.total, Some(want), "{policy}");
        assert_eq!(page.items.len(), want.min(10) as usize, "{policy}");
    }
}
