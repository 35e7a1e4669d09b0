//! Checks of the change log (the watch history), its compaction, and commit notifications.

use std::collections::BTreeMap;
use std::time::Duration;

use super::fixtures::POLR;
use super::fixtures::{body_rv, create, report, revision, set_labels};
use crate::{Change, Error, EventType, ListOptions, Preconditions, Store, StoredObject};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn changes(store: &dyn Store, after: i64, limit: usize) -> Vec<Change> {
    store
        .changes(after, limit)
        .await
        .unwrap_or_else(|e| panic!("changes({after}, {limit}): {e}"))
}

fn assert_change(
    c: &Change,
    event: EventType,
    obj: &StoredObject,
    l: &BTreeMap<String, String>,
    prev: Option<&BTreeMap<String, String>>,
) {
    assert_eq!(
        (c.revision, c.event, &c.key),
        (obj.revision, event, &obj.key),
        "change {c:?}"
    );
    assert_eq!(
        c.body, obj.body,
        "the change carries the body of its write (revision {})",
        c.revision
    );
    assert_eq!(&c.labels, l, "labels of change {}", c.revision);
    assert_eq!(
        c.prev_labels.as_ref(),
        prev,
        "prev_labels of change {}",
        c.revision
    );
}

/// Every write appears once in the change log, in revision order, with its event type,
/// body and labels before and after; refused writes leave no trace.
pub async fn change_log(store: &dyn Store) {
    let start = revision(store).await;
    let (la, la2, lb) = (
        labels(&[("x", "1")]),
        labels(&[("x", "2"), ("y", "")]),
        labels(&[("team", "b")]),
    );

    let mut a = report(POLR, "ns", "a");
    set_labels(&mut a, &[("x", "1")]);
    let a1 = create(store, a.clone()).await;
    let mut b = report(POLR, "ns", "b");
    set_labels(&mut b, &[("team", "b")]);
    let b1 = create(store, b).await;
    set_labels(&mut a, &[("x", "2"), ("y", "")]);
    let a2 = store.update(a.clone(), a1.revision).await.expect("update a");
    assert!(
        store.update(a.clone(), a1.revision).await.is_err(),
        "stale update is refused"
    );
    let b2 = store
        .delete(&b1.key, Preconditions::default())
        .await
        .expect("delete b");
    assert_eq!(body_rv(&b2), b2.revision.to_string());

    let log = changes(store, start, 100).await;
    assert_eq!(log.len(), 4, "one change per successful write: {log:?}");
    assert_change(&log[0], EventType::Added, &a1, &la, None);
    assert_change(&log[1], EventType::Added, &b1, &lb, None);
    assert_change(&log[2], EventType::Modified, &a2, &la2, Some(&la));
    assert_change(&log[3], EventType::Deleted, &b2, &lb, Some(&lb));

    // Limits and resumption.
    let head = changes(store, start, 2).await;
    assert_eq!(head, log[..2].to_vec());
    assert_eq!(changes(store, head[1].revision, 100).await, log[2..].to_vec());
    assert_eq!(
        changes(store, log[3].revision, 100).await,
        Vec::new(),
        "nothing after the newest"
    );
    assert_eq!(
        changes(store, log[3].revision + 1000, 100).await,
        Vec::new(),
        "nothing after the future"
    );
}

/// Compaction keeps the newest revisions, moves the oldest revision, and older starts fail
/// with `Compacted`; objects are untouched.
pub async fn compaction(store: &dyn Store) {
    assert!(store.oldest_revision().await.expect("oldest") <= revision(store).await);
    let mut written = Vec::new();
    for i in 0..10 {
        written.push(create(store, report(POLR, "ns", &format!("r{i}"))).await);
    }
    let newest = revision(store).await;
    let oldest = store.compact(3).await.expect("compact");
    assert_eq!(oldest, newest - 3, "keeps exactly the 3 newest revisions");
    assert_eq!(store.oldest_revision().await.expect("oldest"), oldest);
    let kept = changes(store, oldest, 100).await;
    let kept_revisions: Vec<i64> = kept.iter().map(|c| c.revision).collect();
    let want: Vec<i64> = written[7..].iter().map(|o| o.revision).collect();
    assert_eq!(
        kept_revisions, want,
        "the changes after the compaction point are all there"
    );
    match store.changes(oldest - 1, 100).await {
        Err(Error::Compacted { requested, oldest: o }) => assert_eq!((requested, o), (oldest - 1, oldest)),
        other => panic!("changes before the compaction point: want Compacted, got {other:?}"),
    }

    assert_eq!(
        store.compact(5).await.expect("compact keeping more"),
        oldest,
        "compaction never goes back"
    );
    assert_eq!(store.compact(0).await.expect("compact all"), newest);
    assert_eq!(changes(store, newest, 100).await, Vec::new());
    assert!(matches!(
        store.changes(newest - 1, 1).await,
        Err(Error::Compacted { .. })
    ));

    // Writes after compaction are logged as usual.
    let next = create(store, report(POLR, "ns", "after")).await;
    assert_eq!(
        changes(store, newest, 100)
            .await
            .iter()
            .map(|c| c.revision)
            .collect::<Vec<_>>(),
        [next.revision]
    );
    let opts = ListOptions {
        resource: POLR.into(),
        ..ListOptions::default()
    };
    let (objects, _) = super::fixtures::collect(store.list(opts).await.expect("list")).await;
    assert_eq!(objects.len(), 11, "compaction drops history, not objects");
}

/// Subscribers are woken with the newest revision after a commit.
pub async fn subscribe_wakes(store: &dyn Store) {
    let mut rx = store.subscribe();
    let before = *rx.borrow_and_update();
    assert_eq!(
        before,
        revision(store).await,
        "a new subscriber sees the current revision"
    );
    let o = create(store, report(POLR, "ns", "w")).await;
    let seen = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|rev| *rev >= o.revision))
        .await
        .expect("woken within 5s")
        .map(|rev| *rev)
        .expect("the store keeps the channel open");
    assert_eq!(seen, o.revision);
    // A refused write does not move the revision.
    let _ = store.create(report(POLR, "ns", "w")).await;
    assert_eq!(*rx.borrow(), o.revision);
}

/// The history replays the body of every version of a key, also after the key was written
/// again, deleted, created anew, and with the writes of one key spread over batches while
/// other keys are written in the same ones: each change carries exactly the body its write
/// returned. (Stores may keep the newest body of a key only once, in the object itself.)
pub async fn history_replays_every_version(store: &dyn Store) {
    let start = revision(store).await;
    let mut written: Vec<StoredObject> = Vec::new();
    let mut a = report(POLR, "ns", "versions");
    written.push(create(store, a.clone()).await);
    for i in 0..3 {
        set_labels(&mut a, &[("v", &i.to_string())]);
        let prev = written.last().map_or(0, |o| o.revision);
        written.push(store.update(a.clone(), prev).await.expect("update"));
    }
    let deleted = store
        .delete(&written[0].key, Preconditions::default())
        .await
        .expect("delete");
    written.push(deleted);
    written.push(create(store, report(POLR, "ns", "versions")).await);

    // Eight keys written four times each, concurrently: the writes share batches.
    let keys: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
    let firsts = futures::future::join_all(keys.iter().map(|k| create(store, report(POLR, "ns", k)))).await;
    let mut latest = firsts.clone();
    written.extend(firsts);
    for round in 0..3 {
        let updates = futures::future::join_all(latest.iter().map(|o| {
            let mut w = report(POLR, "ns", &o.key.name);
            set_labels(&mut w, &[("round", &round.to_string())]);
            store.update(w, o.revision)
        }))
        .await;
        latest = updates
            .into_iter()
            .map(|u| u.expect("concurrent update"))
            .collect();
        written.extend(latest.iter().cloned());
    }

    let log = changes(store, start, 1000).await;
    written.sort_by_key(|o| o.revision);
    assert_eq!(
        log.iter().map(|c| c.revision).collect::<Vec<_>>(),
        written.iter().map(|o| o.revision).collect::<Vec<_>>(),
        "one change per write"
    );
    for (c, o) in log.iter().zip(&written) {
        assert_eq!(
            (&c.key, &c.body),
            (&o.key, &o.body),
            "change {} replays its write",
            c.revision
        );
    }

    // Compaction past a key's newest change, then a write of that key: the history after
    // the compaction point is still exact.
    latest.sort_by_key(|o| o.revision);
    let keep = i64::try_from(latest.len()).expect("small") - 1;
    let oldest = store.compact(keep).await.expect("compact");
    let mut w = report(POLR, "ns", &latest[0].key.name);
    set_labels(&mut w, &[("after", "compaction")]);
    let after = store
        .update(w, latest[0].revision)
        .await
        .expect("update after compaction");
    let tail = changes(store, oldest, 1000).await;
    let want: Vec<&StoredObject> = latest[1..].iter().chain([&after]).collect();
    assert_eq!(tail.len(), want.len(), "{tail:?}");
    for (c, o) in tail.iter().zip(want) {
        assert_eq!((c.revision, &c.body), (o.revision, &o.body));
    }
}
