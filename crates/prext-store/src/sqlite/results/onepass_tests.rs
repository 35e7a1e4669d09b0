//! The one-pass summaries: their answer, their fallback, their plan.

use rusqlite::Connection;

use super::*;
use crate::results::{Condition, GroupCursor, ResultFilter};
use crate::sqlite::results::tests::{db, plan, Row};
use crate::sqlite::results::top::tests::SMALL;
use crate::sqlite::schema::register_functions;

fn small() -> Connection {
    // The top-N tests' five results and a cluster-scoped report's error.
    let mut rows: Vec<Row<'_>> = SMALL.to_vec();
    rows.push(("", "c1", 0, "p4", "error", Some("medium"), None, None));
    let conn = db(&rows);
    register_functions(&conn).expect("functions");
    conn
}

/// Grouped by severity, filtered by policy (the per-report counts cannot answer it).
fn by_severity(rank: GroupRank, limit: usize, after: Option<GroupCursor>) -> (SummaryQuery, GroupPage) {
    let q = SummaryQuery {
        filter: ResultFilter {
            namespace: None,
            conditions: vec![Condition::In(
                ResultColumn::Policy,
                vec!["p1".into(), "p2".into(), "p3".into()],
            )],
        },
        group_by: vec![ResultColumn::Severity, ResultColumn::Result],
        page: None,
    };
    (q, GroupPage { rank, limit, after })
}

fn group(g: &str, value: u64) -> RankedGroup {
    RankedGroup {
        group: g.into(),
        value,
    }
}

#[test]
fn a_page_is_ranked_and_broken_down_from_one_pass() {
    let conn = small();
    let (q, page) = by_severity(GroupRank::Result("fail".into()), 1, None);
    let (rows, groups) = summarize(&conn, &q, Some(&page))
        .expect("summary")
        .expect("one pass");
    let groups = groups.expect("a page");
    assert_eq!(groups.groups, [group("high", 2)]);
    assert!(groups.more);
    let rows: Vec<(Vec<Option<String>>, u64)> = rows.into_iter().map(|r| (r.keys, r.count)).collect();
    assert_eq!(rows, [(vec![Some("high".into()), Some("fail".into())], 2)]);

    // The next page: the missing severity ("") ranks before `low` (both 0 fails).
    let (q, page) = by_severity(
        GroupRank::Result("fail".into()),
        2,
        Some(GroupCursor {
            value: 1,
            group: "critical".into(),
        }),
    );
    let (rows, groups) = summarize(&conn, &q, Some(&page))
        .expect("summary")
        .expect("one pass");
    let groups = groups.expect("a page");
    assert_eq!(groups.groups, [group("", 0), group("low", 0)]);
    assert!(!groups.more);
    let rows: Vec<(Vec<Option<String>>, u64)> = rows.into_iter().map(|r| (r.keys, r.count)).collect();
    assert_eq!(
        rows,
        [
            (vec![None, Some("pass".into())], 1),
            (vec![Some("low".into()), Some("warn".into())], 1)
        ]
    );
}

#[test]
fn too_many_groups_fall_back_to_ranking_in_sql() {
    let conn = small();
    let (q, page) = by_severity(GroupRank::Total, 10, None);
    assert!(summarize_within(&conn, &q, Some(&page), 1)
        .expect("summary")
        .is_none());
    assert!(summarize_within(&conn, &q, Some(&page), 4)
        .expect("summary")
        .is_some());
}

/// Grouped by the rule, the pass reads the covering `(policy, rule, result, severity)` index
/// once and groups nothing in SQL: no sort of every row (`USE TEMP B-TREE FOR GROUP BY`:
/// 0.6-0.9 s of CPU at 1,000,000 results).
#[test]
fn the_pass_reads_a_covering_index_and_sorts_nothing() {
    let conn = small();
    let q = SummaryQuery {
        filter: ResultFilter::default(),
        group_by: vec![ResultColumn::Rule, ResultColumn::Result, ResultColumn::Severity],
        page: None,
    };
    let (sql, params) = tally_sql(
        &conn,
        &q,
        ResultColumn::Rule,
        &[ResultColumn::Result, ResultColumn::Severity],
        MAX_ENTRIES,
    )
    .expect("sql");
    let p = plan(&conn, &sql, &params);
    assert!(
        p.contains("COVERING INDEX results_policy_rule_result_severity"),
        "{p}"
    );
    assert!(!p.contains("TEMP B-TREE"), "{p}");
}

/// The breakdown of a page of policies searches each policy's entries of the covering index
/// and sorts nothing; its rows are the `GROUP BY`'s.
#[test]
fn a_pages_breakdown_is_tallied_from_its_groups_index_entries() {
    let conn = small();
    let q = SummaryQuery {
        filter: ResultFilter {
            namespace: None,
            conditions: vec![Condition::In(
                ResultColumn::Policy,
                vec!["p1".into(), "p3".into()],
            )],
        },
        group_by: vec![ResultColumn::Policy, ResultColumn::Result, ResultColumn::Severity],
        page: None,
    };
    let (sql, params) = tally_sql(
        &conn,
        &q,
        ResultColumn::Policy,
        &[ResultColumn::Result, ResultColumn::Severity],
        MAX_ENTRIES,
    )
    .expect("sql");
    let p = plan(&conn, &sql, &params);
    assert!(
        p.contains("COVERING INDEX results_policy_rule_result_severity (policy=?)"),
        "{p}"
    );
    assert!(!p.contains("TEMP B-TREE"), "{p}");
    let rows: Vec<(Vec<Option<String>>, u64)> = page_rows(&conn, &q)
        .expect("rows")
        .expect("tallied")
        .into_iter()
        .map(|r| (r.keys, r.count))
        .collect();
    let text = |s: &str| Some(s.to_owned());
    assert_eq!(
        rows,
        [
            (vec![text("p1"), text("fail"), text("critical")], 1),
            (vec![text("p1"), text("fail"), text("high")], 2),
            (vec![text("p3"), text("warn"), text("low")], 1),
        ]
    );
}

/// Grouped by the subject's kind, the pass reads `results_subject`, which holds the kind, the
/// result and the severity since schema 10, instead of the whole table.
#[test]
fn a_pass_by_subject_kind_reads_the_subject_index() {
    let conn = small();
    crate::sqlite::results::top::tests::with_benchmark_statistics(&conn);
    let q = SummaryQuery {
        filter: ResultFilter::default(),
        group_by: vec![
            ResultColumn::SubjectKind,
            ResultColumn::Result,
            ResultColumn::Severity,
        ],
        page: None,
    };
    let (sql, params) = tally_sql(
        &conn,
        &q,
        ResultColumn::SubjectKind,
        &[ResultColumn::Result, ResultColumn::Severity],
        MAX_ENTRIES,
    )
    .expect("sql");
    let p = plan(&conn, &sql, &params);
    assert!(p.contains("SCAN r USING COVERING INDEX results_subject"), "{p}");
}
