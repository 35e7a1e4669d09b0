//! Writes that the backends batch into one transaction: accepted and refused requests for the
//! same and for different keys, all in flight at once. Whatever the batching, each request is
//! decided as if the writes ran one at a time, refused requests take no revision and leave no
//! trace, and the change log holds exactly the acknowledged writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fixtures::{create, report, revision, POLR};
use crate::{Error, EventType, ObjectKey, Preconditions, Store, StoredObject};

/// One request of the mix and what it must come to.
enum Want {
    Ok,
    AlreadyExists,
    Conflict,
    NotFound,
    /// Exactly one of the requests sharing this tag succeeds; the others are AlreadyExists.
    OneOf(usize),
}

type Outcome = crate::Result<StoredObject>;

/// Many kinds of write at once, refused ones among accepted ones.
pub async fn mixed_batches(store: Arc<dyn Store>) {
    const KEYS: usize = 12;
    let mut existing = Vec::new();
    for i in 0..KEYS {
        existing.push(create(&*store, report(POLR, "mix", &format!("old-{i:02}"))).await);
    }
    let start = revision(&*store).await;
    let mut tasks: Vec<(Want, tokio::task::JoinHandle<Outcome>)> = Vec::new();
    let spawn = |f: std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>| tokio::spawn(f);
    for (i, old) in existing.iter().enumerate() {
        let mut fresh = report(POLR, "mix", &format!("old-{i:02}"));
        fresh.uid.clone_from(&old.uid);
        fresh.labels.insert("round".into(), "2".into());
        let s = Arc::clone(&store);
        let (good, expected) = (fresh.clone(), old.revision);
        tasks.push((
            Want::Ok,
            spawn(Box::pin(async move { s.update(good, expected).await })),
        ));
        let s = Arc::clone(&store);
        let stale = fresh.clone();
        tasks.push((
            Want::Conflict,
            spawn(Box::pin(async move { s.update(stale, start + 1_000).await })),
        ));
        let s = Arc::clone(&store);
        let again = report(POLR, "mix", &format!("old-{i:02}"));
        tasks.push((
            Want::AlreadyExists,
            spawn(Box::pin(async move { s.create(again).await })),
        ));
        let s = Arc::clone(&store);
        let key = old.key.clone();
        tasks.push((
            Want::Conflict,
            spawn(Box::pin(async move {
                let pre = Preconditions {
                    uid: Some("someone-else".into()),
                    ..Preconditions::default()
                };
                s.delete(&key, pre).await
            })),
        ));
        for _ in 0..2 {
            let s = Arc::clone(&store);
            let new = report(POLR, "mix", &format!("new-{i:02}"));
            tasks.push((
                Want::OneOf(i),
                spawn(Box::pin(async move { s.create(new).await })),
            ));
        }
        let s = Arc::clone(&store);
        let missing = ObjectKey::new(POLR, "mix", format!("missing-{i:02}"));
        tasks.push((
            Want::NotFound,
            spawn(Box::pin(async move {
                s.delete(&missing, Preconditions::default()).await
            })),
        ));
    }

    let mut acknowledged: BTreeMap<i64, StoredObject> = BTreeMap::new();
    let mut one_of: BTreeMap<usize, usize> = BTreeMap::new();
    for (want, task) in tasks {
        let outcome = task.await.expect("write task");
        match (want, outcome) {
            (Want::Ok, Ok(o)) => {
                acknowledged.insert(o.revision, o);
            }
            (Want::OneOf(tag), Ok(o)) => {
                *one_of.entry(tag).or_default() += 1;
                acknowledged.insert(o.revision, o);
            }
            (Want::OneOf(_), Err(Error::AlreadyExists { .. }))
            | (Want::AlreadyExists, Err(Error::AlreadyExists { .. }))
            | (Want::Conflict, Err(Error::Conflict(_)))
            | (Want::NotFound, Err(Error::NotFound)) => {}
            (_, other) => panic!("unexpected outcome in a mixed batch: {other:?}"),
        }
    }
    assert!(
        (0..KEYS).all(|tag| one_of.get(&tag) == Some(&1)),
        "exactly one of two creates of a key succeeds: {one_of:?}"
    );
    let newest = revision(&*store).await;
    assert_eq!(
        acknowledged.keys().copied().collect::<Vec<_>>(),
        (start + 1..=newest).collect::<Vec<_>>(),
        "acknowledged writes hold every new revision, without gaps: refused ones took none"
    );
    let log = store.changes(start, 1_000).await.expect("changes");
    assert_eq!(
        log.len(),
        acknowledged.len(),
        "the change log holds exactly the acknowledged writes"
    );
    for change in &log {
        let ack = &acknowledged[&change.revision];
        assert_eq!(change.key, ack.key);
        assert_eq!(change.body, ack.body);
        let want = if ack.key.name.starts_with("new-") {
            EventType::Added
        } else {
            EventType::Modified
        };
        assert_eq!(change.event, want, "{:?}", change.key);
    }
    for old in &existing {
        let now = store.get(&old.key).await.expect("get").expect("still there");
        assert!(now.revision > start, "the good update of {:?} landed", old.key);
        assert!(acknowledged.contains_key(&now.revision));
    }
}
