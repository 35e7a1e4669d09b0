//! Update, patch and apply: resourceVersion rules, immutable metadata, the guaranteed-update loop, field ownership.

use super::*;

#[tokio::test]
async fn update_needs_the_current_resource_version() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let mut missing = obj.clone();
    missing["metadata"]
        .as_object_mut()
        .map(|m| m.remove("resourceVersion"));
    assert_eq!(
        rejected_code(
            &f.registry
                .update(&target("r1"), missing, &opts())
                .await
                .expect_err("no rv")
        ),
        422
    );
    let mut stale = obj.clone();
    stale["metadata"]["resourceVersion"] = json!("999");
    let err = f
        .registry
        .update(&target("r1"), stale, &opts())
        .await
        .expect_err("stale");
    assert!(matches!(err, Error::Modified { .. }), "{err:?}");
    let err = f
        .registry
        .update(&target("r9"), obj, &opts())
        .await
        .expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_the_resource_version() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let before = f.store.revision().await.expect("revision");
    let w = f
        .registry
        .update(&target("r1"), obj.clone(), &opts())
        .await
        .expect("no-op");
    assert_eq!(
        body(&w)["metadata"]["resourceVersion"],
        obj["metadata"]["resourceVersion"]
    );
    assert_eq!(f.store.revision().await.expect("revision"), before);
}

#[tokio::test]
async fn update_keeps_immutable_metadata() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let mut new = obj.clone();
    new["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    let err = f
        .registry
        .update(&target("r1"), new, &opts())
        .await
        .expect_err("uid");
    // A failed uid precondition, worded once by the server's error mapping (409).
    assert!(
        matches!(
            &err,
            Error::Precondition {
                failed: prext_store::Conflict::Uid { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let status = crate::error::ApiError::from(err).0;
    assert_eq!(status.code, 409);
    assert!(
        status
            .message
            .contains("Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000, UID in object meta: "),
        "{}",
        status.message
    );
    let mut renamed = obj;
    renamed["metadata"]["name"] = json!("other");
    let err = f
        .registry
        .update(&target("r1"), renamed, &opts())
        .await
        .expect_err("name");
    assert_eq!(rejected_code(&err), 400);
}

#[tokio::test]
async fn patch_applies_to_the_live_object_and_a_pinned_stale_version_is_modified() {
    let f = fixture();
    create(&f, "r1").await;
    let patch = Patch::Merge(json!({"metadata": {"labels": {"tier": "gold"}}}));
    let w = f
        .registry
        .patch(&target("r1"), &patch, &opts())
        .await
        .expect("patched");
    assert_eq!(
        body(&w)["metadata"]["labels"],
        json!({"app": "web", "tier": "gold"})
    );
    let pinned = Patch::Merge(json!({"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}}));
    let err = f
        .registry
        .patch(&target("r1"), &pinned, &opts())
        .await
        .expect_err("stale");
    assert!(matches!(err, Error::Modified { .. }), "{err:?}");
    let forced = WriteOptions {
        force: Some(true),
        ..opts()
    };
    assert_eq!(
        rejected_code(
            &f.registry
                .patch(&target("r1"), &patch, &forced)
                .await
                .expect_err("force")
        ),
        422
    );
}

/// The loop reads again and decides again after losing a race, unless told not to
/// (`GuaranteedUpdate`'s retry on `ErrCodeResourceVersionConflicts`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guaranteed_update_retries_a_lost_race_and_reports_a_pinned_one() {
    let f = fixture();
    create(&f, "r1").await;
    for (on_conflict, retried) in [(OnConflict::Retry, true), (OnConflict::Modified, false)] {
        let mut calls = 0;
        let how = Loop {
            create_missing: false,
            on_conflict,
            dry_run: false,
        };
        let store = f.store.clone();
        let result = f
            .registry
            .guaranteed_update(&target("r1"), how, |current| {
                calls += 1;
                let current = current.expect("exists");
                let mut obj: Value = serde_json::from_slice(&current.body).expect("json");
                obj["metadata"]["labels"]["n"] = json!(calls.to_string());
                if calls == 1 {
                    // Another writer commits between this read and this write.
                    let w = object_write(def(), &current.key, obj.clone());
                    let store = store.clone();
                    let revision = current.revision;
                    std::thread::spawn(move || {
                        futures::executor::block_on(store.update(w, revision)).expect("racing write")
                    })
                    .join()
                    .expect("racer");
                }
                Ok(Action::Update(object_write(def(), &current.key, obj)))
            })
            .await;
        if retried {
            assert!(matches!(result, Ok(Outcome::Updated(_))));
            assert_eq!(calls, 2);
        } else {
            assert!(matches!(result, Err(Error::Modified { .. })));
            assert_eq!(calls, 1);
        }
    }
}

#[tokio::test]
async fn apply_creates_then_merges_by_field_ownership() {
    let f = fixture();
    let no_manager = f.registry.apply(&target("r1"), report("r1"), &opts()).await;
    assert_eq!(rejected_code(&no_manager.expect_err("manager required")), 422);
    let alice = WriteOptions {
        field_manager: Some("alice".into()),
        ..opts()
    };
    let w = f
        .registry
        .apply(&target("r1"), report("r1"), &alice)
        .await
        .expect("created");
    assert!(w.created);
    let w = f
        .registry
        .apply(&target("r1"), report("r1"), &alice)
        .await
        .expect("same again");
    assert!(!w.created);
    let bob = WriteOptions {
        field_manager: Some("bob".into()),
        ..opts()
    };
    let mut theirs = report("r1");
    theirs["metadata"]["labels"]["app"] = json!("api");
    let err = f
        .registry
        .apply(&target("r1"), theirs.clone(), &bob)
        .await
        .expect_err("conflict");
    assert_eq!(rejected_code(&err), 409);
    let forced = WriteOptions {
        force: Some(true),
        ..bob
    };
    let w = f
        .registry
        .apply(&target("r1"), theirs, &forced)
        .await
        .expect("forced");
    assert_eq!(body(&w)["metadata"]["labels"]["app"], "api");
}
