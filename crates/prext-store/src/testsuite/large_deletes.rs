//! Large deletes are incremental: the report disappears at once, its result rows are removed
//! afterwards (a backend may do it in chunks between other writes, and after a restart), and
//! no query ever serves the rows still waiting.
//!
//! This check is listed in [`super::CHECKS`].

use std::time::{Duration, Instant};

use serde_json::json;

use super::fixtures::{self, create, POLR};
use super::TestDatabase;
use crate::results::{
    Compare, Condition, GroupPage, GroupRank, PropertyTest, ResultColumn, ResultFilter, ResultQuery,
    SummaryQuery,
};
use crate::{ObjectKey, ObjectWrite, Preconditions, Store};

/// Results of the large report: more than any backend removes in the delete's transaction.
const LARGE: usize = 6_000;

/// A report whose results all pass policy `p<i % 7>` with a numeric `score` of `i` (passing:
/// findings bookkeeping is not what this check is about).
fn report(name: &str, n: usize) -> ObjectWrite {
    let mut w = fixtures::report(POLR, "a", name);
    w.body["results"] = (0..n)
        .map(|i| {
            json!({"policy": format!("p{}", i % 7), "rule": "r", "result": "pass", "source": "s",
                   "properties": {"score": i.to_string()},
                   "resources": [{"kind": "Pod", "namespace": "a", "name": format!("pod-{i}")}]})
        })
        .collect();
    fixtures::reindex(&mut w);
    w
}

/// Every way a query reads results, each checked against the live reports only: `n` results
/// of `reports` (by name).
async fn only_live_results(store: &dyn Store, reports: &[&str], n: usize) {
    let filters = [
        ResultFilter::default(),
        // Result rows alone, no report column: the rows of a deleted report must still not show.
        ResultFilter {
            namespace: None,
            conditions: vec![Condition::In(ResultColumn::Result, vec!["pass".into()])],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![Condition::In(
                ResultColumn::Policy,
                vec!["p0".into(), "p1".into()],
            )],
        },
        ResultFilter {
            namespace: None,
            conditions: vec![Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::GreaterOrEqual, 0.0),
            }],
        },
        ResultFilter {
            namespace: Some("a".into()),
            conditions: Vec::new(),
        },
    ];
    for filter in filters {
        let page = store
            .query_results(ResultQuery {
                filter: filter.clone(),
                limit: 500,
                count: true,
                ..ResultQuery::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{filter:?}: {e}"));
        let total = page.total.unwrap_or_default();
        assert!(
            total <= n as u64,
            "{filter:?} counts {total} results, only {n} are live"
        );
        assert!(
            page.items.iter().all(|r| reports.contains(&r.report.as_str())),
            "{filter:?} served a result of a deleted report"
        );
        for group_by in [vec![], vec![ResultColumn::Policy], vec![ResultColumn::Result]] {
            let summary = store
                .summarize_results(SummaryQuery {
                    filter: filter.clone(),
                    group_by: group_by.clone(),
                    page: None,
                })
                .await
                .unwrap_or_else(|e| panic!("summary {filter:?} by {group_by:?}: {e}"));
            let sum: u64 = summary.rows.iter().map(|r| r.count).sum();
            assert_eq!(sum, total, "summary of {filter:?} by {group_by:?}");
        }
        let top = store
            .summarize_results(SummaryQuery {
                filter: filter.clone(),
                group_by: vec![ResultColumn::Policy],
                page: Some(GroupPage {
                    rank: GroupRank::Total,
                    limit: 10,
                    after: None,
                }),
            })
            .await
            .unwrap_or_else(|e| panic!("ranked summary {filter:?}: {e}"));
        let ranked: u64 = top
            .page
            .as_ref()
            .map_or(0, |p| p.groups.iter().map(|g| g.value).sum());
        assert_eq!(ranked, total, "ranked groups of {filter:?}");
    }
    let all = store
        .query_results(ResultQuery {
            limit: 500,
            count: true,
            ..ResultQuery::default()
        })
        .await
        .expect("every result");
    assert_eq!(
        all.total,
        Some(n as u64),
        "every live result, none of a deleted report"
    );
}

/// Waits (generously) until the database holds exactly `want` result rows (a purge or a
/// staging runs between other writes, so rows leave the database after the write's answer).
pub(super) async fn rows_settle(db: &dyn TestDatabase, want: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let held = db.stored_result_rows().await;
        if held == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the database still holds {held} result rows, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A report with many results is gone at once for every reader; its rows leave the database
/// afterwards, also when the store is closed before they did; a report created meanwhile keeps
/// exactly its own rows.
pub async fn large_deletes_are_incremental(db: &dyn TestDatabase) {
    let store = db.open().await;
    create(&*store, report("keep", 5)).await;
    let one_report = db.stored_result_rows().await;
    assert!(
        one_report >= 5,
        "five result rows stored, the database reports {one_report}"
    );
    create(&*store, report("large", LARGE)).await;
    let large = ObjectKey::new(POLR, "a", "large");
    let deleted = store
        .delete(&large, Preconditions::default())
        .await
        .expect("delete the large report");
    assert!(store.get(&large).await.expect("get").is_none());
    // Right after the delete, whatever is left of its rows.
    only_live_results(&*store, &["keep"], 5).await;
    // A report created while the rows may still wait: only its own rows are served.
    let fresh = create(&*store, report("fresh", 5)).await;
    assert!(fresh.revision > deleted.revision);
    only_live_results(&*store, &["keep", "fresh"], 10).await;
    let changes = store.changes(deleted.revision - 1, 10).await.expect("changes");
    assert_eq!(
        changes.iter().map(|c| c.key.name.as_str()).collect::<Vec<_>>(),
        ["large", "fresh"],
        "the delete is one change"
    );
    rows_settle(db, 2 * one_report, "after the purge").await;
    only_live_results(&*store, &["keep", "fresh"], 10).await;

    // Closed right after the delete: the rows still go, by the next store at the latest.
    create(&*store, report("large", LARGE)).await;
    store
        .delete(&large, Preconditions::default())
        .await
        .expect("delete the large report again");
    store.close().await;
    let store = db.open().await;
    only_live_results(&*store, &["keep", "fresh"], 10).await;
    rows_settle(db, 2 * one_report, "after a restart").await;
    store.close().await;
}
