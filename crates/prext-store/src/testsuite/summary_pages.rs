//! Conformance of summary pages ([`SummaryQuery::page`]): groups ranked by a count
//! (descending, ties by value) or by value, `limit`ed, resumed after the last group, checked
//! against the test's own count of every result the filter keeps.

use std::collections::BTreeMap;

use serde_json::json;

use super::fixtures::{self, create, POLR};
use super::results::{everything, filters, load, matches, value};
use crate::results::{
    Condition, GroupCursor, GroupPage, GroupRank, ResultColumn, ResultFilter, ResultRecord, SummaryQuery,
};
use crate::Store;

/// Beside the shared reports: failures without a policy (the group `""`, from a missing policy
/// and from `""`), more of the severities the policy rankings read range by range, and
/// warnings of five policies, one without a severity (no range of `(result, severity, …)` of
/// its own).
async fn load_without_policies(store: &dyn Store) {
    let mut w = fixtures::report(POLR, "b", "nameless");
    let result = |policy: Option<&str>, result: &str, severity: &str| {
        let mut r = json!({"source": "kyverno", "rule": "r", "result": result});
        if let Some(p) = policy {
            r["policy"] = json!(p);
        }
        if !severity.is_empty() {
            r["severity"] = json!(severity);
        }
        r
    };
    w.body["results"] = json!([
        result(None, "fail", "high"),
        result(Some(""), "fail", "critical"),
        result(None, "pass", "critical"),
        result(Some("p3"), "fail", "critical"),
        result(Some("p3"), "fail", "medium"),
        result(Some("p4"), "fail", "high"),
        result(Some("p3"), "warn", "medium"),
        result(Some("p4"), "warn", "high"),
        result(Some("p5"), "warn", ""),
        result(Some("p6"), "warn", "low"),
        result(Some("p7"), "warn", "high"),
    ]);
    fixtures::reindex(&mut w);
    create(store, w).await;
}

/// Filters on the severities (each listed severity is an index range of a policy ranking on
/// PostgreSQL: postgres/results/summary/merged.rs), with other conditions beside.
fn severity_filters() -> Vec<ResultFilter> {
    use Condition::*;
    use ResultColumn as C;
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    vec![
        ResultFilter {
            namespace: None,
            conditions: vec![In(C::Severity, s(&["high", "critical"]))],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                In(C::Severity, s(&["critical", "high", "medium"])),
                NotIn(C::Severity, s(&["medium"])),
                In(C::Source, s(&["kyverno"])),
            ],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![
                In(C::Severity, s(&["critical", "low"])),
                In(C::Severity, s(&["critical"])),
            ],
        },
    ]
}

/// `(result, severity) → count` per group, a missing value as `""`.
type Groups = BTreeMap<String, BTreeMap<(String, String), u64>>;

fn groups<'a>(records: impl Iterator<Item = &'a ResultRecord>, col: ResultColumn) -> Groups {
    let mut out = Groups::new();
    for r in records {
        let cell = (value(r, ResultColumn::Result), value(r, ResultColumn::Severity));
        *out.entry(value(r, col)).or_default().entry(cell).or_insert(0) += 1;
    }
    out
}

fn rank_value(rank: &GroupRank, counts: &BTreeMap<(String, String), u64>) -> u64 {
    let sum = |keep: &dyn Fn(&(String, String)) -> bool| {
        counts.iter().filter(|(k, _)| keep(k)).map(|(_, n)| n).sum()
    };
    match rank {
        GroupRank::Key | GroupRank::Total => sum(&|_| true),
        GroupRank::Result(r) => sum(&|k| &k.0 == r),
        GroupRank::Cell(r, s) => sum(&|k| &k.0 == r && &k.1 == s),
    }
}

/// Walking the pages of every grouping, order and page size yields the test's own ranking,
/// each group once, with exactly its counts.
pub async fn result_summary_pages(store: &dyn Store) {
    result_summary_pages_then(store, async {}).await;
}

/// [`result_summary_pages`], with `between` run after the reports are written and before the
/// summaries are read: a backend's test refreshes its planner statistics there, so that the
/// plans chosen from them (e.g. a grouping of few values counted in one pass) are checked too.
pub async fn result_summary_pages_then(store: &dyn Store, between: impl std::future::Future<Output = ()>) {
    load(store).await;
    load_without_policies(store).await;
    between.await;
    let all = everything(store).await;
    let ranks = [
        GroupRank::Key,
        GroupRank::Total,
        GroupRank::Result("fail".into()),
        GroupRank::Cell("fail".into(), "high".into()),
        // A warning has no severity (every failure has one).
        GroupRank::Result("warn".into()),
    ];
    let columns = [
        ResultColumn::Namespace,
        ResultColumn::Policy,
        ResultColumn::Rule,
        ResultColumn::Severity,
        ResultColumn::Source,
        ResultColumn::SubjectKind,
        ResultColumn::Resource,
    ];
    for filter in filters().into_iter().take(6).chain(severity_filters()) {
        for col in columns {
            let want = groups(all.iter().filter(|r| matches(&filter, r)), col);
            for rank in &ranks {
                let mut order: Vec<(&String, u64)> =
                    want.iter().map(|(g, c)| (g, rank_value(rank, c))).collect();
                if *rank != GroupRank::Key {
                    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                }
                for limit in [1, 2, 1000] {
                    let what = format!("{filter:?} by {col:?} sorted {rank:?} limit {limit}");
                    let mut seen: Vec<(String, u64)> = Vec::new();
                    let mut after: Option<GroupCursor> = None;
                    let mut got_counts = Groups::new();
                    for _ in 0..=want.len() + 1 {
                        let q = SummaryQuery {
                            filter: filter.clone(),
                            group_by: vec![col, ResultColumn::Result, ResultColumn::Severity],
                            page: Some(GroupPage {
                                rank: rank.clone(),
                                limit,
                                after: after.clone(),
                            }),
                        };
                        let s = store
                            .summarize_results(q)
                            .await
                            .unwrap_or_else(|e| panic!("{what}: {e}"));
                        let page = s.page.unwrap_or_else(|| panic!("{what}: no page"));
                        assert!(page.groups.len() <= limit, "{what}: page too long");
                        for row in s.rows {
                            let key = |i: usize| row.keys.get(i).cloned().flatten().unwrap_or_default();
                            assert!(
                                page.groups.iter().any(|g| g.group == key(0)),
                                "{what}: a row of a group outside the page"
                            );
                            *got_counts
                                .entry(key(0))
                                .or_default()
                                .entry((key(1), key(2)))
                                .or_insert(0) += row.count;
                        }
                        seen.extend(page.groups.iter().map(|g| (g.group.clone(), g.value)));
                        after = page.groups.last().map(|g| GroupCursor {
                            value: g.value,
                            group: g.group.clone(),
                        });
                        if !page.more {
                            break;
                        }
                        assert!(!page.groups.is_empty(), "{what}: an empty page with more");
                    }
                    let seen_groups: Vec<&String> = seen.iter().map(|(g, _)| g).collect();
                    let want_groups: Vec<&String> = order.iter().map(|(g, _)| *g).collect();
                    assert_eq!(seen_groups, want_groups, "{what}: groups and their order");
                    if *rank != GroupRank::Key {
                        let values: Vec<u64> = seen.iter().map(|(_, v)| *v).collect();
                        let want_values: Vec<u64> = order.iter().map(|(_, v)| *v).collect();
                        assert_eq!(values, want_values, "{what}: ranking counts");
                    }
                    assert_eq!(got_counts, want, "{what}: the counts of the page's groups");
                }
            }
        }
    }
}
