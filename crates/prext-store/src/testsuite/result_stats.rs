//! The rows a backend derives from a report's results (per-report counts, numeric
//! properties) stay equal to the result rows through every kind of write: counts
//! (`count=true`), numeric property filters, summaries and top-N pages agree with the test's
//! own computation over the live results after creates, updates that change the results,
//! relabels that keep them, deletes, a large report rewritten (written in steps on SQLite and
//! beside the writer on PostgreSQL), and a delete large enough to be incremental (checked
//! whether or not its purge has run).
//!
//! This check is listed in [`super::RESULT_CHECKS`].

use std::collections::BTreeMap;

use serde_json::json;

use super::fixtures::{self, create, POLR};
use super::results::{filters, load, matches, value};
use crate::results::{
    Compare, Condition, GroupPage, GroupRank, PropertyTest, ResultColumn, ResultFilter, ResultQuery,
    ResultRecord, SummaryQuery,
};
use crate::{ObjectKey, ObjectWrite, Preconditions, Store};

/// Results of the large report: more than a backend removes in the delete's transaction.
const LARGE: usize = 2_600;

/// A report of `n` results: policy `q<i % 5>`, result fail/pass/warn, severity
/// high/critical/low/none, source a/b, a numeric `score` of `i / 10` (as text), every
/// seventh without one.
fn numbered(namespace: &str, name: &str, n: usize, shift: usize) -> ObjectWrite {
    let mut w = fixtures::report(POLR, namespace, name);
    w.body["results"] = (0..n)
        .map(|i| {
            let k = i + shift;
            let (result, source) = (["fail", "pass", "warn"][k % 3], ["a", "b"][k % 2]);
            let mut r = json!({
                "policy": format!("q{}", k % 5), "rule": "r",
                "result": result,
                "source": source,
                "properties": {},
                "resources": [{"kind": "Pod", "namespace": namespace, "name": format!("pod-{k}")}],
            });
            if let Some(s) = [Some("high"), Some("critical"), Some("low"), None][k % 4] {
                r["severity"] = json!(s);
            }
            if !k.is_multiple_of(7) {
                r["properties"]["score"] = json!(format!("{}", k as f64 / 10.0));
            }
            r
        })
        .collect();
    fixtures::reindex(&mut w);
    w
}

/// Every live result, read in pages (the oracle's input).
async fn live(store: &dyn Store) -> Vec<ResultRecord> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .query_results(ResultQuery {
                limit: 1_000,
                after: after.clone(),
                ..ResultQuery::default()
            })
            .await
            .expect("every result");
        after = page.items.last().map(|r| crate::results::ResultCursor {
            key: 0,
            namespace: r.namespace.clone(),
            report: r.report.clone(),
            resource: r.resource.clone(),
            index: r.index,
        });
        out.extend(page.items);
        if !page.more {
            return out;
        }
    }
}

/// The filters checked: the suite's, and combinations of counted columns with each other and
/// with numeric property tests.
fn checked_filters() -> Vec<ResultFilter> {
    use Condition::*;
    use ResultColumn as C;
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let score = |op, bound| Property {
        key: "score".into(),
        test: PropertyTest::Number(op, bound),
    };
    let mut out = filters();
    out.extend([
        ResultFilter {
            namespace: Some("n".into()),
            conditions: vec![In(C::Result, s(&["fail"])), NotIn(C::Source, s(&["b"]))],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![In(C::Severity, s(&["", "low"])), In(C::Source, s(&["a"]))],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![score(Compare::GreaterOrEqual, 100.0), In(C::Result, s(&["fail"]))],
        },
        ResultFilter {
            namespace: Some("n".into()),
            conditions: vec![score(Compare::Less, 3.0), score(Compare::Greater, 0.5)],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![score(Compare::LessOrEqual, 1.0), In(C::Policy, s(&["q1", "q2"]))],
        },
    ]);
    out
}

/// Counts, summaries and top-N pages of every checked filter agree with the live results.
async fn agree(store: &dyn Store, when: &str) {
    let all = live(store).await;
    for filter in checked_filters() {
        let kept: Vec<&ResultRecord> = all.iter().filter(|r| matches(&filter, r)).collect();
        let what = format!("{when}: {filter:?}");
        for limit in [1, 500] {
            let page = store
                .query_results(ResultQuery {
                    filter: filter.clone(),
                    limit,
                    count: true,
                    ..ResultQuery::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(page.total, Some(kept.len() as u64), "{what}: count");
            let want: Vec<(&str, i64)> = kept
                .iter()
                .take(limit)
                .map(|r| (r.report.as_str(), r.index))
                .collect();
            let got: Vec<(&str, i64)> = page.items.iter().map(|r| (r.report.as_str(), r.index)).collect();
            assert_eq!(got, want, "{what}: first page of {limit}");
        }
        for group_by in [
            vec![],
            vec![ResultColumn::Result, ResultColumn::Severity],
            vec![ResultColumn::Namespace, ResultColumn::Source],
            vec![ResultColumn::Policy],
        ] {
            let mut want: BTreeMap<Vec<String>, u64> = BTreeMap::new();
            for r in &kept {
                *want
                    .entry(group_by.iter().map(|c| value(r, *c)).collect())
                    .or_insert(0) += 1;
            }
            let got = store
                .summarize_results(SummaryQuery {
                    filter: filter.clone(),
                    group_by: group_by.clone(),
                    page: None,
                })
                .await
                .unwrap_or_else(|e| panic!("{what} by {group_by:?}: {e}"));
            let got: BTreeMap<Vec<String>, u64> = got
                .rows
                .into_iter()
                .filter(|r| r.count > 0)
                .map(|r| {
                    (
                        r.keys.into_iter().map(Option::unwrap_or_default).collect(),
                        r.count,
                    )
                })
                .collect();
            assert_eq!(got, want, "{what} by {group_by:?}");
        }
        for col in [
            ResultColumn::Namespace,
            ResultColumn::Severity,
            ResultColumn::Policy,
        ] {
            for rank in [GroupRank::Total, GroupRank::Cell("fail".into(), "high".into())] {
                let mut groups: BTreeMap<String, u64> = BTreeMap::new();
                for r in &kept {
                    let n = match &rank {
                        GroupRank::Cell(res, sev) => u64::from(
                            value(r, ResultColumn::Result) == *res
                                && value(r, ResultColumn::Severity) == *sev,
                        ),
                        _ => 1,
                    };
                    *groups.entry(value(r, col)).or_insert(0) += n;
                }
                let mut want: Vec<(String, u64)> = groups.into_iter().collect();
                want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                want.truncate(3);
                let got = store
                    .summarize_results(SummaryQuery {
                        filter: filter.clone(),
                        group_by: vec![col],
                        page: Some(GroupPage {
                            rank: rank.clone(),
                            limit: 3,
                            after: None,
                        }),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{what} top by {col:?} {rank:?}: {e}"));
                let got: Vec<(String, u64)> = got
                    .page
                    .map(|p| p.groups.into_iter().map(|g| (g.group, g.value)).collect())
                    .unwrap_or_default();
                assert_eq!(got, want, "{what}: top 3 by {col:?} ranked {rank:?}");
            }
        }
    }
}

/// Counts, numeric property filters, summaries and top-N pages follow every kind of write.
pub async fn result_stats_follow_writes(store: &dyn Store) {
    load(store).await;
    let one = create(store, numbered("n", "one", 40, 0)).await;
    let two = create(store, numbered("n", "two", 30, 3)).await;
    agree(store, "created").await;

    // Results rewritten: other results, severities, sources and scores.
    let updated = store
        .update(numbered("n", "one", 25, 1), one.revision)
        .await
        .expect("update one");
    agree(store, "results rewritten").await;

    // Relabeled: the results (and what is derived from them) are kept.
    let mut relabeled = numbered("n", "one", 25, 1);
    fixtures::set_labels(&mut relabeled, &[("team", "x")]);
    store
        .update(relabeled, updated.revision)
        .await
        .expect("relabel one");
    agree(store, "relabeled").await;

    store
        .delete(&two.key, Preconditions::default())
        .await
        .expect("delete two");
    agree(store, "deleted").await;

    // A delete large enough to be incremental, then writes while its purge may be pending.
    let large = create(store, numbered("m", "large", LARGE, 2)).await;
    agree(store, "large report created").await;
    // Every result rewritten (a backend may write a large report's rows in several steps).
    let large = store
        .update(numbered("m", "large", LARGE + 100, 5), large.revision)
        .await
        .expect("update large");
    agree(store, "large report rewritten").await;
    store
        .delete(&large.key, Preconditions::default())
        .await
        .expect("delete large");
    agree(store, "large report deleted").await;
    let again = create(store, numbered("m", "large", 12, 4)).await;
    agree(store, "recreated after a large delete").await;
    let key: &ObjectKey = &again.key;
    assert_eq!(key.name, "large");
}
