//! Large creates and updates are whole: a backend may write their result rows in several
//! transactions (SQLite stages them in chunks between other writes), but no query ever sees
//! part of them, a result query issued after the write is answered sees exactly its rows, and
//! a refused write leaves nothing behind once its staged rows are purged.
//!
//! This check is listed in [`super::CHECKS`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::fixtures::{self, create, POLR};
use super::large_deletes::rows_settle;
use super::TestDatabase;
use crate::results::{Condition, ResultColumn, ResultFilter, ResultQuery, SummaryQuery};
use crate::{Error, ObjectKey, ObjectWrite, Store};

/// Results of the large report: more than any backend writes in one transaction.
const LARGE: usize = 5_000;

/// A report of `n` results, each `result` (no numeric property: one stored row per result).
fn report(name: &str, n: usize, result: &str) -> ObjectWrite {
    let mut w = fixtures::report(POLR, "a", name);
    w.body["results"] = (0..n)
        .map(|i| json!({"policy": format!("p{}", i % 7), "rule": "r", "result": result}))
        .collect();
    fixtures::reindex(&mut w);
    w
}

/// How many results of namespace `a` pass and fail, from one query (one snapshot).
async fn pass_fail(store: &dyn Store) -> (u64, u64) {
    let summary = store
        .summarize_results(SummaryQuery {
            filter: ResultFilter {
                namespace: Some("a".into()),
                conditions: Vec::new(),
            },
            group_by: vec![ResultColumn::Result],
            page: None,
        })
        .await
        .expect("summary by result");
    let of = |value: &str| {
        summary
            .rows
            .iter()
            .filter(|r| r.keys.first().and_then(|v| v.as_deref()) == Some(value))
            .map(|r| r.count)
            .sum()
    };
    (of("pass"), of("fail"))
}

/// How many results pass or fail, counted from `results` alone (no report column: a backend
/// reads the rows without their report).
async fn rows_alone(store: &dyn Store) -> u64 {
    let page = store
        .query_results(ResultQuery {
            filter: ResultFilter {
                namespace: None,
                conditions: vec![Condition::In(
                    ResultColumn::Result,
                    vec!["pass".into(), "fail".into()],
                )],
            },
            limit: 1,
            count: true,
            ..ResultQuery::default()
        })
        .await
        .expect("result query");
    page.total.unwrap_or_default()
}

/// A large report is created, refused, updated (every result changed) and raced for while a
/// reader checks that every snapshot holds whole reports only.
pub async fn large_writes_are_whole(db: &dyn TestDatabase) {
    let store = db.open().await;
    create(&*store, report("keep", 5, "pass")).await;
    // Every state a reader may see: (pass, fail) of `keep` and the large report's versions.
    let seen_whole = [
        (5, 0),
        (5 + LARGE as u64, 0),
        (5, LARGE as u64 - 500),
        (5, LARGE as u64),
        (5, 1),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        async move {
            while !stop.load(Ordering::Relaxed) {
                let got = pass_fail(&*store).await;
                assert!(
                    seen_whole.contains(&got),
                    "a reader saw part of a report: {got:?}"
                );
                let alone = rows_alone(&*store).await;
                assert!(
                    seen_whole.iter().any(|(p, f)| p + f == alone),
                    "a reader of result rows alone saw part of a report: {alone}"
                );
                tokio::task::yield_now().await;
            }
        }
    });

    let created = create(&*store, report("large", LARGE, "pass")).await;
    assert_eq!(
        pass_fail(&*store).await,
        (5 + LARGE as u64, 0),
        "read after the create"
    );
    // Refused: the key is taken, or the revision is stale. Nothing changes.
    let taken = store.create(report("large", LARGE, "fail")).await;
    assert!(matches!(taken, Err(Error::AlreadyExists { .. })), "{taken:?}");
    let stale = store
        .update(report("large", LARGE, "fail"), created.revision - 1)
        .await;
    assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
    assert_eq!(
        pass_fail(&*store).await,
        (5 + LARGE as u64, 0),
        "after refused writes"
    );

    let updated = store
        .update(report("large", LARGE - 500, "fail"), created.revision)
        .await
        .expect("large update");
    assert_eq!(
        pass_fail(&*store).await,
        (5, LARGE as u64 - 500),
        "read after the update"
    );

    // Two updates from the same revision at once, one large: whichever is written first
    // wins, the other is refused, and what is stored is the winner's whole.
    let key = ObjectKey::new(POLR, "a", "large");
    let (large, small) = tokio::join!(
        store.update(report("large", LARGE, "fail"), updated.revision),
        store.update(report("large", 1, "fail"), updated.revision),
    );
    let want = match (&large, &small) {
        (Ok(_), Err(Error::Conflict(_))) => LARGE as u64,
        (Err(Error::Conflict(_)), Ok(_)) => 1,
        other => panic!("racing updates: want one written and one conflict, got {other:?}"),
    };
    assert_eq!(pass_fail(&*store).await, (5, want), "after the race");
    let stored = store.get(&key).await.expect("get").expect("large exists");
    let results = fixtures::body_json(&stored)["results"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(results as u64, want, "the body is the winner's");

    stop.store(true, Ordering::Relaxed);
    reader.await.expect("reader");
    // The refused and replaced rows leave the database: only the live reports' remain.
    rows_settle(db, 5 + want, "after the purge").await;
    store.close().await;
}
