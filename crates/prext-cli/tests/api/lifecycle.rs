//! Dry runs, finalizers and deletionTimestamp, delete preconditions, and deletecollection.

use serde_json::{json, Value};

use crate::common::http::{delete, get, names, patch, post, put};
use crate::common::samples::{report, rv, POLR, REPS};
use crate::common::TestServer;
use crate::{create, fetch};

const MERGE: &str = "application/merge-patch+json";

#[tokio::test]
async fn dry_run_all_persists_nothing() {
    let server = TestServer::start();
    let client = server.client().await;
    let original = create(&client, POLR, "dry", "kept", &[]).await;
    let path = POLR.item(Some("dry"), "kept");
    let list_rv = |list: &Value| rv(list);
    let before = get(&client, &POLR.collection(Some("dry")))
        .await
        .expect(200)
        .json();

    let would = post(
        &client,
        &format!("{}?dryRun=All", POLR.collection(Some("dry"))),
        &report(POLR, "dry", "ghost", &[]),
    )
    .await
    .expect(201)
    .json();
    assert_eq!(
        would["metadata"]["name"], "ghost",
        "dry-run create returns the would-be object"
    );
    fetch(&client, POLR, "dry", "ghost").await.expect(404);

    let mut changed = original.clone();
    changed["summary"]["pass"] = json!(100);
    let would = put(&client, &format!("{path}?dryRun=All"), &changed)
        .await
        .expect(200)
        .json();
    assert_eq!(would["summary"]["pass"], 100);

    let would = patch(
        &client,
        &format!("{path}?dryRun=All"),
        MERGE,
        &json!({"summary": {"fail": 100}}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(would["summary"]["fail"], 100);

    delete(&client, &format!("{path}?dryRun=All"), None)
        .await
        .expect(200);
    delete(
        &client,
        &path,
        Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})),
    )
    .await
    .expect(200);
    delete(
        &client,
        &format!("{}?dryRun=All", POLR.collection(Some("dry"))),
        None,
    )
    .await
    .expect(200);

    let now = fetch(&client, POLR, "dry", "kept").await.expect(200).json();
    assert_eq!(now, original, "the object is untouched");
    let after = get(&client, &POLR.collection(Some("dry")))
        .await
        .expect(200)
        .json();
    assert_eq!(list_rv(&after), list_rv(&before), "no revision was written");

    post(
        &client,
        &format!("{}?dryRun=Maybe", POLR.collection(Some("dry"))),
        &report(POLR, "dry", "ghost", &[]),
    )
    .await
    .expect_status(422, "Invalid");
}

#[tokio::test]
async fn finalizers_defer_deletion_until_the_last_is_removed() {
    let server = TestServer::start();
    let client = server.client().await;
    let mut body = report(REPS, "fin", "held", &[]);
    body["metadata"]["finalizers"] = json!(["example.com/hold", "example.com/second"]);
    post(&client, &REPS.collection(Some("fin")), &body)
        .await
        .expect(201);
    let path = REPS.item(Some("fin"), "held");

    let res = delete(&client, &path, None).await;
    assert!(
        res.status == 200 || res.status == 202,
        "delete with finalizers: {}",
        res.text()
    );
    let marked = fetch(&client, REPS, "fin", "held").await.expect(200).json();
    assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["example.com/hold", "example.com/second"])
    );

    let status = post(
        &client,
        &REPS.collection(Some("fin")),
        &report(REPS, "fin", "held", &[]),
    )
    .await
    .expect_status(409, "AlreadyExists");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("object is being deleted: "),
        "{status}"
    );

    let add =
        json!({"metadata": {"finalizers": ["example.com/hold", "example.com/second", "example.com/new"]}});
    patch(&client, &path, MERGE, &add)
        .await
        .expect_status(422, "Invalid");

    let one_left = patch(
        &client,
        &path,
        MERGE,
        &json!({"metadata": {"finalizers": ["example.com/second"]}}),
    )
    .await
    .expect(200)
    .json();
    assert!(one_left["metadata"]["deletionTimestamp"].is_string());
    // A second delete keeps the object (and the original deletionTimestamp).
    delete(&client, &path, None).await;
    let still = fetch(&client, REPS, "fin", "held").await.expect(200).json();
    assert_eq!(
        still["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );

    patch(&client, &path, MERGE, &json!({"metadata": {"finalizers": null}}))
        .await
        .expect(200);
    fetch(&client, REPS, "fin", "held")
        .await
        .expect_status(404, "NotFound");
}

#[tokio::test]
async fn delete_preconditions_on_uid_and_resource_version() {
    let server = TestServer::start();
    let client = server.client().await;
    let obj = create(&client, POLR, "pre", "p", &[]).await;
    let path = POLR.item(Some("pre"), "p");
    let uid = obj["metadata"]["uid"].as_str().expect("uid").to_string();
    let rv = obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();

    let wrong_uid =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}});
    let status = delete(&client, &path, Some(&wrong_uid))
        .await
        .expect_status(409, "Conflict");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Precondition failed: UID in precondition: not-the-uid"),
        "{status}"
    );
    patch(&client, &path, MERGE, &json!({"summary": {"pass": 1}}))
        .await
        .expect(200);
    let stale_rv = json!({"preconditions": {"resourceVersion": rv}});
    delete(&client, &path, Some(&stale_rv))
        .await
        .expect_status(409, "Conflict");
    fetch(&client, POLR, "pre", "p").await.expect(200);

    let current = fetch(&client, POLR, "pre", "p").await.expect(200).json();
    let good = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "propagationPolicy": "Background",
        "preconditions": {"uid": uid, "resourceVersion": current["metadata"]["resourceVersion"]}});
    let res = delete(&client, &path, Some(&good)).await.expect(200).json();
    assert!(
        (res["kind"] == "Status" && res["status"] == "Success") || res["metadata"]["name"] == "p",
        "delete answers the object or a Success Status: {res}"
    );
    fetch(&client, POLR, "pre", "p")
        .await
        .expect_status(404, "NotFound");
    delete(&client, &path, None).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn deletecollection_with_label_selector_and_options_body() {
    let server = TestServer::start();
    let client = server.client().await;
    for (name, env) in [("a", "dev"), ("b", "dev"), ("c", "prod"), ("d", "dev")] {
        create(&client, POLR, "dc", name, &[("env", env)]).await;
    }
    create(&client, POLR, "dc-other", "e", &[("env", "dev")]).await;
    let coll = POLR.collection(Some("dc"));
    let options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"});
    let res = delete(
        &client,
        &format!("{coll}?labelSelector=env%3Ddev"),
        Some(&options),
    )
    .await
    .expect(200)
    .json();
    if res["kind"] != "Status" {
        let mut deleted = names(&res);
        deleted.sort();
        assert_eq!(deleted, ["a", "b", "d"], "{res}");
    } else {
        assert_eq!(res["status"], "Success", "{res}");
    }
    let left = get(&client, &coll).await.expect(200).json();
    assert_eq!(names(&left), ["c"]);
    let other = get(&client, &POLR.collection(Some("dc-other")))
        .await
        .expect(200)
        .json();
    assert_eq!(names(&other), ["e"], "other namespaces untouched");

    // The namespace controller's call: everything in the namespace, metadata client style.
    delete(&client, &coll, Some(&options)).await.expect(200);
    let left = get(&client, &coll).await.expect(200).json();
    assert_eq!(left["items"], json!([]));
}
