//! Checks across tasks and restarts: concurrent writers, refused writes among them, result
//! rows kept in step with their report, and state surviving a close and reopen.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::fixtures::{create, report, revision, set_labels, set_results, POLR};
use super::{IndexedResult, TestDatabase};
use crate::{Error, ListOptions, ObjectKey, Preconditions, Store, StoredObject};

/// Many tasks creating at once: every write is acknowledged with its own revision, and the
/// change log holds them all.
pub async fn concurrent_writers(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    const EACH: usize = 50;
    let start = revision(&*store).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let o = create(&*store, report(POLR, &format!("ns-{t:02}"), &format!("r-{i:02}"))).await;
                revisions.push(o.revision);
            }
            revisions
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let revisions = task.await.expect("writer task");
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "one task's writes are ordered: {revisions:?}"
        );
        all.extend(revisions);
    }
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        TASKS * EACH,
        "every acknowledged write has its own revision"
    );
    let newest = revision(&*store).await;
    assert_eq!(distinct.last().copied(), Some(newest));
    assert!(distinct.first().is_some_and(|first| *first > start));

    let log = store.changes(start, TASKS * EACH + 10).await.expect("changes");
    let logged: BTreeSet<i64> = log.iter().map(|c| c.revision).collect();
    assert_eq!(
        logged, distinct,
        "the change log has exactly the acknowledged writes"
    );
    assert!(log.windows(2).all(|w| w[0].revision < w[1].revision));

    let opts = ListOptions {
        resource: POLR.into(),
        ..ListOptions::default()
    };
    let (objects, _) = super::fixtures::collect(store.list(opts).await.expect("list")).await;
    assert_eq!(objects.len(), TASKS * EACH);
}

/// Refused writes sent together with successful ones (so that they share the backend's write
/// transactions, where it batches them) change nothing and take no revision, while every
/// write beside them commits.
pub async fn refused_writes_among_concurrent_ones(db: &dyn TestDatabase) {
    const ROUNDS: usize = 4;
    const EXISTING: usize = 4;
    let store = db.open().await;
    let mut existing: Vec<(StoredObject, Vec<IndexedResult>)> = Vec::new();
    for i in 0..EXISTING {
        let mut w = report(POLR, "ns", &format!("e{i}"));
        set_results(&mut w, &[("p0", "fail"), ("p1", "pass")]);
        let o = create(&*store, w).await;
        let rows = db.result_rows(&o.key).await;
        existing.push((o, rows));
    }
    let start = revision(&*store).await;
    let mut successes = BTreeSet::new();
    for round in 0..ROUNDS {
        let barrier = Arc::new(tokio::sync::Barrier::new(2 * EXISTING));
        let mut tasks = Vec::new();
        for (i, (old, _)) in existing.iter().enumerate() {
            // A successful create, started together with a refused write of each kind.
            let (store2, barrier2) = (Arc::clone(&store), Arc::clone(&barrier));
            let name = format!("n{round}-{i}");
            tasks.push(tokio::spawn(async move {
                barrier2.wait().await;
                let mut w = report(POLR, "ns", &name);
                set_results(&mut w, &[("q0", "warn"), ("q1", "fail"), ("q2", "pass")]);
                Some(create(&*store2, w).await.revision)
            }));
            let (store2, barrier2, old) = (Arc::clone(&store), Arc::clone(&barrier), old.clone());
            tasks.push(tokio::spawn(async move {
                let mut w = report(POLR, "ns", &old.key.name);
                set_results(&mut w, &[("x0", "error"), ("x1", "error"), ("x2", "error")]);
                barrier2.wait().await;
                let refused = match i % 4 {
                    0 => store2.create(w).await,
                    1 => store2.update(w, old.revision - 1).await,
                    2 => {
                        w.uid = "someone-else".into();
                        store2.update(w, old.revision).await
                    }
                    _ => {
                        let wrong = Preconditions {
                            uid: None,
                            resource_version: Some(old.revision + 1000),
                        };
                        store2.delete(&old.key, wrong).await
                    }
                };
                match refused {
                    Err(Error::AlreadyExists { .. } | Error::Conflict(_)) => None,
                    other => panic!("refused write {i} of {:?}: got {other:?}", old.key),
                }
            }));
        }
        for task in tasks {
            if let Some(rev) = task.await.expect("writer task") {
                successes.insert(rev);
            }
        }
    }
    assert_eq!(
        successes.len(),
        ROUNDS * EXISTING,
        "every create was acknowledged"
    );
    let newest = revision(&*store).await;
    assert_eq!(
        newest - start,
        i64::try_from(successes.len()).expect("small"),
        "refused writes took no revision"
    );
    let log = store.changes(start, 1000).await.expect("changes");
    let logged: BTreeSet<i64> = log.iter().map(|c| c.revision).collect();
    assert_eq!(
        logged, successes,
        "the change log has exactly the acknowledged writes"
    );
    for (old, rows) in &existing {
        assert_eq!(
            store.get(&old.key).await.expect("get").as_ref(),
            Some(old),
            "refused writes left {:?} as it was",
            old.key
        );
        assert_eq!(
            &db.result_rows(&old.key).await,
            rows,
            "result rows of {:?}",
            old.key
        );
    }
    for round in 0..ROUNDS {
        for i in 0..EXISTING {
            let key = ObjectKey::new(POLR, "ns", format!("n{round}-{i}"));
            expect_rows(
                &key,
                &db.result_rows(&key).await,
                &[("q0", "warn"), ("q1", "fail"), ("q2", "pass")],
            );
        }
    }
    store.close().await;
}

fn expect_rows(key: &ObjectKey, rows: &[IndexedResult], want: &[(&str, &str)]) {
    let want: Vec<IndexedResult> = want
        .iter()
        .zip(0i64..)
        .map(|((policy, result), index)| IndexedResult {
            index,
            policy: Some((*policy).to_owned()),
            result: Some((*result).to_owned()),
            subject_name: Some(format!("pod-{index}")),
        })
        .collect();
    assert_eq!(rows, want, "result rows of {key:?}");
}

/// Result rows are written with their report, replaced by an update (not by a refused one),
/// and removed with it.
pub async fn result_rows_follow_objects(db: &dyn TestDatabase) {
    let store = db.open().await;
    let mut w = report(POLR, "ns", "rows");
    let three = [("p0", "fail"), ("p1", "pass"), ("p2", "warn")];
    set_results(&mut w, &three);
    let v1 = create(&*store, w.clone()).await;
    expect_rows(&w.key, &db.result_rows(&w.key).await, &three);

    let mut other = report(POLR, "ns", "other");
    set_results(&mut other, &[("q", "pass")]);
    create(&*store, other.clone()).await;

    let one = [("p9", "error")];
    set_results(&mut w, &one);
    let v2 = store.update(w.clone(), v1.revision).await.expect("update");
    expect_rows(&w.key, &db.result_rows(&w.key).await, &one);

    // A refused update (stale revision) must not touch the rows.
    set_results(&mut w, &three);
    assert!(store.update(w.clone(), v1.revision).await.is_err());
    expect_rows(&w.key, &db.result_rows(&w.key).await, &one);
    // Nor a refused delete.
    let wrong = Preconditions {
        uid: Some("nope".into()),
        resource_version: None,
    };
    assert!(store.delete(&w.key, wrong).await.is_err());
    expect_rows(&w.key, &db.result_rows(&w.key).await, &one);

    set_results(&mut w, &[]);
    let v3 = store
        .update(w.clone(), v2.revision)
        .await
        .expect("update to no results");
    expect_rows(&w.key, &db.result_rows(&w.key).await, &[]);
    set_results(&mut w, &three);
    let v4 = store
        .update(w.clone(), v3.revision)
        .await
        .expect("update back to three");
    expect_rows(&w.key, &db.result_rows(&w.key).await, &three);

    // A rewrite that leaves the results as they were (a backend may skip their rows), then
    // one that changes a single result: the rows follow both.
    set_labels(&mut w, &[("relabelled", "yes")]);
    let v5 = store.update(w.clone(), v4.revision).await.expect("relabel");
    expect_rows(&w.key, &db.result_rows(&w.key).await, &three);
    let changed = [("p0", "fail"), ("p1", "fail"), ("p2", "warn")];
    set_results(&mut w, &changed);
    store
        .update(w.clone(), v5.revision)
        .await
        .expect("one result changed");
    expect_rows(&w.key, &db.result_rows(&w.key).await, &changed);

    store
        .delete(&w.key, Preconditions::default())
        .await
        .expect("delete");
    expect_rows(&w.key, &db.result_rows(&w.key).await, &[]);
    expect_rows(&other.key, &db.result_rows(&other.key).await, &[("q", "pass")]);
    store.close().await;
}

/// Closing and reopening keeps objects, revisions, the change log and the compaction point;
/// new revisions continue after the old newest one.
pub async fn restart_keeps_state(db: &dyn TestDatabase) {
    let store = db.open().await;
    let a = create(&*store, report(POLR, "ns", "a")).await;
    let b = create(&*store, report(POLR, "ns", "b")).await;
    let c = create(&*store, report(POLR, "ns", "c")).await;
    let a2 = store
        .update(report(POLR, "ns", "a"), a.revision)
        .await
        .expect("update");
    let gone = store
        .delete(&c.key, Preconditions::default())
        .await
        .expect("delete");
    let oldest = store.compact(2).await.expect("compact");
    let newest = revision(&*store).await;
    assert_eq!(newest, gone.revision, "the deletion is the newest write");
    let log = store.changes(oldest, 100).await.expect("changes");
    store.close().await;

    let store = db.open().await;
    assert_eq!(
        revision(&*store).await,
        newest,
        "the revision survives a restart, even after a delete"
    );
    assert_eq!(store.oldest_revision().await.expect("oldest"), oldest);
    assert_eq!(store.changes(oldest, 100).await.expect("changes"), log);
    assert_eq!(store.get(&a2.key).await.expect("get"), Some(a2));
    assert_eq!(store.get(&b.key).await.expect("get"), Some(b));
    assert_eq!(store.get(&c.key).await.expect("get"), None);
    assert_eq!(
        *store.subscribe().borrow(),
        newest,
        "subscribers start at the stored revision"
    );

    let d = create(&*store, report(POLR, "ns", "d")).await;
    assert!(
        d.revision > newest,
        "revision {} reused or older than {newest}",
        d.revision
    );
    let recreated = create(&*store, report(POLR, "ns", "c")).await;
    assert!(recreated.revision > d.revision);
    store.close().await;
}
