//! Plans of summary pages ranked by a count, under the planner statistics of the benchmark's
//! 1,000,000 results.

use rusqlite::Connection;

use super::*;
use crate::results::{Condition, ResultColumn, ResultFilter};
use crate::sqlite::results::tests::{db, plan, Row};

/// `sqlite_stat1` of `results` as `ANALYZE` left it on the benchmark's 1,000,000 results
/// (50,000 reports × 20; `results_subject` with the two columns schema 10 appends), loaded
/// over a small database's tables.
pub(in crate::sqlite::results) fn with_benchmark_statistics(conn: &Connection) {
    conn.execute_batch(
        "ANALYZE;
         DELETE FROM sqlite_stat1 WHERE tbl = 'results';
         INSERT INTO sqlite_stat1 VALUES
             ('results', 'results_result_severity', '1000000 333334 83334'),
             ('results', 'results_subject', '1000000 20 20 20 10 5'),
             ('results', 'results_policy_rule_result_severity', '1000000 5 5 4 4'),
             ('results', 'results_subject_uid', '1000000 1000000'),
             ('results', 'sqlite_autoindex_results_1', '1000000 20 1');
         ANALYZE sqlite_schema;",
    )
    .expect("statistics");
}

/// Five results of three reports in two namespaces: failures of two severities, a pass
/// without one, a warning (also the start of the one-pass summaries' tests).
pub(in crate::sqlite::results) const SMALL: [Row<'static>; 5] = [
    ("a", "r1", 0, "p1", "fail", Some("high"), None, None),
    ("a", "r1", 1, "p2", "pass", None, None, None),
    ("a", "r2", 0, "p1", "fail", Some("critical"), None, None),
    ("b", "r1", 0, "p3", "warn", Some("low"), None, None),
    ("b", "r1", 1, "p1", "fail", Some("high"), None, None),
];

fn small() -> Connection {
    let conn = db(&SMALL);
    with_benchmark_statistics(&conn);
    conn
}

fn leaders_plan(conn: &Connection, conditions: Vec<Condition>, rank: GroupRank) -> String {
    let q = SummaryQuery {
        filter: ResultFilter {
            namespace: None,
            conditions,
        },
        group_by: vec![ResultColumn::Policy, ResultColumn::Result, ResultColumn::Severity],
        page: None,
    };
    let page = GroupPage {
        rank,
        limit: 10,
        after: None,
    };
    let s = source(conn, &q).expect("source").expect("a grouping");
    let (sql, params) = leaders_sql(&s, &page, 10).expect("ranked by a result");
    plan(conn, &sql, &params)
}

/// "The 10 policies with the most critical failures" (or high/critical ones) walks the covering
/// policy index in policy order, testing the result and severity on each entry, so that only
/// the policies with such results are counted and ranked; neither a search of
/// `results_result_severity` (a table lookup per row: it does not hold the policy) nor a sort of
/// every row.
#[test]
fn a_page_ranked_by_a_cell_counts_only_the_groups_with_some() {
    let conn = small();
    let critical = leaders_plan(&conn, vec![], GroupRank::Cell("fail".into(), "critical".into()));
    let high_critical = leaders_plan(
        &conn,
        vec![Condition::In(
            ResultColumn::Severity,
            vec!["high".into(), "critical".into()],
        )],
        GroupRank::Result("fail".into()),
    );
    for plan in [critical, high_critical] {
        assert!(
            plan.contains("USING COVERING INDEX results_policy_rule_result_severity"),
            "{plan}"
        );
        assert!(!plan.contains("results_result_severity"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE FOR GROUP BY"), "{plan}");
    }
}

/// Version 10 appends the result and severity to `results_subject` of an existing database,
/// which keeps its rows.
#[test]
fn version_9_databases_get_result_and_severity_in_the_subject_index() {
    use crate::sqlite::schema::{migrate, migrate_to, open_writer};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn =
        open_writer(&dir.path().join("prext.db"), std::time::Duration::from_secs(5)).expect("open");
    assert_eq!(migrate_to(&mut conn, 9).expect("version 9"), 9);
    conn.execute_batch(
        "INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body)
         VALUES (1, 'policyreports.wgpolicyk8s.io', 'a', 'r1', 'u1', 1, '2024-01-01T00:00:00Z', '{}');
         INSERT INTO results (object_id, idx, policy, result, severity, subject_kind, subject_namespace, subject_name)
         VALUES (1, 0, 'p', 'fail', 'high', 'Pod', 'a', 'web'), (1, 1, 'p', 'pass', 'low', 'Pod', 'a', 'db');",
    )
    .expect("version 9 rows");
    assert!(migrate(&mut conn).expect("upgrade") >= 10);
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_info('results_subject') ORDER BY seqno")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("index_info");
    assert_eq!(
        columns,
        [
            "subject_name",
            "subject_namespace",
            "subject_kind",
            "result",
            "severity"
        ]
    );
    let web: i64 = conn
        .query_row(
            "SELECT count(*) FROM results INDEXED BY results_subject
             WHERE subject_name = 'web' AND subject_namespace = 'a' AND subject_kind = 'Pod'
               AND result = 'fail' AND severity = 'high'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(web, 1);
}
