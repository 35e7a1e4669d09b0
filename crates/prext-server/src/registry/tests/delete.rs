//! Delete: preconditions, finalizers, delete-collection.

use super::*;

#[tokio::test]
async fn delete_honours_uid_and_resource_version_preconditions() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let wrong_uid = DeleteOptions {
        preconditions: Preconditions {
            uid: Some("other".into()),
            resource_version: None,
        },
        ..Default::default()
    };
    let err = f
        .registry
        .delete(&target("r1"), &wrong_uid)
        .await
        .expect_err("uid");
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
    let wrong_rv = DeleteOptions {
        preconditions: Preconditions {
            uid: None,
            resource_version: Some(999),
        },
        ..Default::default()
    };
    let err = f.registry.delete(&target("r1"), &wrong_rv).await.expect_err("rv");
    assert!(
        matches!(
            &err,
            Error::Precondition {
                failed: prext_store::Conflict::ResourceVersion { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(stored(&f, "r1").await.is_some());
    let right = DeleteOptions {
        preconditions: Preconditions {
            uid: obj["metadata"]["uid"].as_str().map(str::to_string),
            resource_version: None,
        },
        ..Default::default()
    };
    let deleted = f.registry.delete(&target("r1"), &right).await.expect("deleted");
    assert!(matches!(deleted, Deleted::Gone(_)));
    assert!(stored(&f, "r1").await.is_none());
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_the_last_is_removed() {
    let f = fixture();
    let mut obj = report("r1");
    obj["metadata"]["finalizers"] = json!(["example.com/keep"]);
    f.registry
        .create(def(), Some("team-a"), obj, &opts())
        .await
        .expect("created");
    let marked = f
        .registry
        .delete(&target("r1"), &DeleteOptions::default())
        .await
        .expect("marked");
    let Deleted::Marked(marked) = marked else {
        panic!("expected the object to be marked");
    };
    let marked: Value = serde_json::from_slice(&marked).expect("json");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let mut more = marked.clone();
    more["metadata"]["finalizers"] = json!(["example.com/keep", "example.com/new"]);
    let err = f
        .registry
        .update(&target("r1"), more, &opts())
        .await
        .expect_err("no new finalizer");
    assert_eq!(rejected_code(&err), 422);
    let mut released = marked;
    released["metadata"]["finalizers"] = json!([]);
    f.registry
        .update(&target("r1"), released, &opts())
        .await
        .expect("released");
    assert!(
        stored(&f, "r1").await.is_none(),
        "deleted with its last finalizer"
    );
}

#[tokio::test]
async fn delete_collection_deletes_what_the_selector_selects() {
    let f = fixture();
    create(&f, "r1").await;
    let mut other = report("r2");
    other["metadata"]["labels"]["app"] = json!("db");
    f.registry
        .create(def(), Some("team-a"), other, &opts())
        .await
        .expect("created");
    let request = CollectionRequest {
        namespace: Some("team-a".into()),
        labels: prext_api::labels::LabelSelector::parse("app=web").expect("selector"),
        ..Default::default()
    };
    f.registry
        .delete_collection(def(), request, &DeleteOptions::default())
        .await
        .expect("deleted");
    assert!(stored(&f, "r1").await.is_none());
    assert!(stored(&f, "r2").await.is_some());
}
