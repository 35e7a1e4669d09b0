//! Checks of single-object writes: create, get, update, delete and their preconditions.

use serde_json::json;

use super::fixtures::{body_json, body_rv, create, report, revision, set_labels, stamped, CPOLR, POLR, REPS};
use crate::{Error, ListOptions, ObjectKey, Preconditions, Store};

/// A created object comes back, and from `get`, with the revision stamped into its body.
pub async fn create_and_get(store: &dyn Store) {
    let before = revision(store).await;
    let mut w = report(POLR, "ns1", "r1");
    set_labels(&mut w, &[("app.kubernetes.io/name", "web")]);
    let created = create(store, w.clone()).await;
    assert!(
        created.revision > before,
        "revision {} not after {before}",
        created.revision
    );
    assert_eq!(created.key, w.key);
    assert_eq!(created.uid, w.uid);
    assert_eq!(
        body_json(&created),
        stamped(&w.body, created.revision),
        "body is the write's, stamped"
    );
    assert_eq!(body_rv(&created), created.revision.to_string());
    assert_eq!(revision(store).await, created.revision);

    let got = store
        .get(&w.key)
        .await
        .expect("get")
        .expect("created object is found");
    assert_eq!(got, created, "get returns exactly what create returned");

    // The same name in another namespace, resource or scope is another object.
    for other in [
        report(POLR, "ns2", "r1"),
        report(REPS, "ns1", "r1"),
        report(CPOLR, "", "r1"),
    ] {
        let o = create(store, other).await;
        assert!(o.revision > created.revision);
    }
    assert_eq!(store.get(&w.key).await.expect("get"), Some(created));
    let missing = ObjectKey::new(POLR, "ns1", "r2");
    assert_eq!(store.get(&missing).await.expect("get missing"), None);
    assert_eq!(
        store.get(&ObjectKey::new(POLR, "", "r1")).await.expect("get"),
        None
    );
}

/// Creating a taken name fails with `AlreadyExists` and consumes no revision.
pub async fn create_existing(store: &dyn Store) {
    let first = create(store, report(POLR, "ns", "dup")).await;
    let mut again = report(POLR, "ns", "dup");
    again.body["summary"] = json!({"fail": 9});
    match store.create(again).await {
        Err(Error::AlreadyExists { being_deleted: false }) => {}
        other => panic!("second create: want AlreadyExists{{being_deleted: false}}, got {other:?}"),
    }
    assert_eq!(
        revision(store).await,
        first.revision,
        "a refused create takes no revision"
    );
    assert_eq!(
        store.get(&first.key).await.expect("get"),
        Some(first.clone()),
        "the first object is intact"
    );

    let mut deleting = report(POLR, "ns", "going");
    deleting.deleting = true;
    deleting.body["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:00:00Z");
    create(store, deleting).await;
    match store.create(report(POLR, "ns", "going")).await {
        Err(Error::AlreadyExists { being_deleted: true }) => {}
        other => {
            panic!("create over a deleting object: want AlreadyExists{{being_deleted: true}}, got {other:?}")
        }
    }
}

/// Updates succeed only from the stored revision and the same uid.
pub async fn update_checks_revision(store: &dyn Store) {
    let w = report(POLR, "ns", "u");
    let v1 = create(store, w.clone()).await;

    let mut w2 = w.clone();
    set_labels(&mut w2, &[("team", "a")]);
    w2.body["summary"] = json!({"pass": 2});
    let v2 = store
        .update(w2.clone(), v1.revision)
        .await
        .expect("update from the current revision");
    assert!(v2.revision > v1.revision);
    assert_eq!(body_json(&v2), stamped(&w2.body, v2.revision));
    assert_eq!(store.get(&w.key).await.expect("get"), Some(v2.clone()));

    let mut stale = w.clone();
    stale.body["summary"] = json!({"fail": 1});
    match store.update(stale, v1.revision).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("update from a stale revision: want Conflict, got {other:?}"),
    }
    let mut other_uid = w2.clone();
    other_uid.uid = "someone-else".into();
    match store.update(other_uid, v2.revision).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("update with another uid: want Conflict, got {other:?}"),
    }
    match store.update(report(POLR, "ns", "absent"), 1).await {
        Err(Error::NotFound) => {}
        other => panic!("update of a missing object: want NotFound, got {other:?}"),
    }
    assert_eq!(
        store.get(&w.key).await.expect("get"),
        Some(v2.clone()),
        "refused updates change nothing"
    );
    assert_eq!(
        revision(store).await,
        v2.revision,
        "refused updates take no revision"
    );
}

/// Deletes honour uid and resourceVersion preconditions and return the last state, stamped.
pub async fn delete_preconditions(store: &dyn Store) {
    let w = report(POLR, "ns", "d");
    let v1 = create(store, w.clone()).await;
    let wrong_uid = Preconditions {
        uid: Some("nope".into()),
        resource_version: None,
    };
    let wrong_rv = Preconditions {
        uid: None,
        resource_version: Some(v1.revision - 1),
    };
    for pre in [wrong_uid, wrong_rv] {
        match store.delete(&w.key, pre.clone()).await {
            Err(Error::Conflict(_)) => {}
            other => panic!("delete with {pre:?}: want Conflict, got {other:?}"),
        }
    }
    assert_eq!(store.get(&w.key).await.expect("get"), Some(v1.clone()));

    let right = Preconditions {
        uid: Some(w.uid.clone()),
        resource_version: Some(v1.revision),
    };
    let gone = store
        .delete(&w.key, right)
        .await
        .expect("delete with matching preconditions");
    assert!(gone.revision > v1.revision, "the deletion takes a new revision");
    assert_eq!(gone.uid, w.uid);
    assert_eq!(
        body_json(&gone),
        stamped(&w.body, gone.revision),
        "last state, stamped with the deletion revision"
    );
    assert_eq!(revision(store).await, gone.revision);
    assert_eq!(store.get(&w.key).await.expect("get"), None);

    match store.delete(&w.key, Preconditions::default()).await {
        Err(Error::NotFound) => {}
        other => panic!("second delete: want NotFound, got {other:?}"),
    }
    // The name is free again, for a new object.
    let again = create(store, w.clone()).await;
    assert!(again.revision > gone.revision);
    let gone = store
        .delete(&w.key, Preconditions::default())
        .await
        .expect("delete without preconditions");
    assert!(gone.revision > again.revision);
}

/// Every successful write takes a revision greater than all before it; refused writes take none.
pub async fn revisions_increase(store: &dyn Store) {
    let mut last = revision(store).await;
    let mut seen = Vec::new();
    for i in 0..10 {
        let name = format!("r{i}");
        let o = create(store, report(POLR, "ns", &name)).await;
        seen.push(o.revision);
        let refused = store.create(report(POLR, "ns", &name)).await;
        assert!(matches!(refused, Err(Error::AlreadyExists { .. })), "{refused:?}");
        let o = store
            .update(report(POLR, "ns", &name), o.revision)
            .await
            .expect("update");
        seen.push(o.revision);
        if i % 2 == 0 {
            let o = store
                .delete(&o.key, Preconditions::default())
                .await
                .expect("delete");
            seen.push(o.revision);
        }
    }
    for rev in &seen {
        assert!(
            *rev > last,
            "revision {rev} after {last}: revisions must strictly increase ({seen:?})"
        );
        last = *rev;
    }
    assert_eq!(revision(store).await, last, "revision() is the newest write");
}

/// After `close`, every call fails with `Unavailable`; closing twice is harmless.
pub async fn closed_store_is_unavailable(store: &dyn Store) {
    let o = create(store, report(POLR, "ns", "c")).await;
    store.close().await;
    store.close().await;
    let unavailable = |what: &str, r: Result<(), Error>| match r {
        Err(Error::Unavailable(_)) => {}
        other => panic!("{what} after close: want Unavailable, got {other:?}"),
    };
    unavailable("get", store.get(&o.key).await.map(drop));
    unavailable("create", store.create(report(POLR, "ns", "c2")).await.map(drop));
    unavailable(
        "update",
        store.update(report(POLR, "ns", "c"), o.revision).await.map(drop),
    );
    unavailable(
        "delete",
        store.delete(&o.key, Preconditions::default()).await.map(drop),
    );
    let opts = ListOptions {
        resource: POLR.into(),
        ..ListOptions::default()
    };
    unavailable("list", store.list(opts).await.map(drop));
    unavailable("revision", store.revision().await.map(drop));
    unavailable("changes", store.changes(0, 10).await.map(drop));
    unavailable("compact", store.compact(1).await.map(drop));
    unavailable("ping", store.ping().await);
}

/// `object_counts` counts the objects of each resource, and forgets deleted ones.
pub async fn object_counts(store: &dyn Store) {
    assert_eq!(
        store.object_counts().await.expect("counts"),
        vec![],
        "an empty store counts nothing"
    );
    create(store, report(POLR, "a", "one")).await;
    create(store, report(POLR, "b", "two")).await;
    let gone = create(store, report(CPOLR, "", "three")).await;
    let mut counts = store.object_counts().await.expect("counts");
    counts.sort();
    let mut want = vec![(POLR.to_string(), 2), (CPOLR.to_string(), 1)];
    want.sort();
    assert_eq!(counts, want);
    store
        .delete(&gone.key, Preconditions::default())
        .await
        .expect("delete");
    assert_eq!(
        store.object_counts().await.expect("counts"),
        vec![(POLR.to_string(), 2)]
    );
}
