//! Write semantics of kube-apiserver's custom-resource store that prext follows.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};

use crate::common::http::{get, post, put, Req};
use crate::common::samples::{manifest, report, Kind, POLR};
use crate::common::TestServer;
use crate::{events, typed_names};

fn api(client: &kube::Client, kind: Kind, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: kind.group.into(),
        version: kind.version.into(),
        api_version: kind.api_version(),
        kind: kind.kind.into(),
        plural: kind.plural.into(),
    };
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// deletecollection answers the list of what it deleted (`DeleteCollection` of
/// k8s.io/apiserver/pkg/registry/generic/registry/store.go returns the listed objects).
#[tokio::test]
async fn deletecollection_answers_the_deleted_list() {
    let server = TestServer::start();
    let client = server.client().await;
    for (name, env) in [("a", "dev"), ("b", "prod"), ("c", "dev")] {
        post(
            &client,
            &POLR.collection(Some("dc")),
            &report(POLR, "dc", name, &[("env", env)]),
        )
        .await
        .expect(201);
    }
    let raw = Req::new(
        &client,
        http::Method::DELETE,
        &format!("{}?labelSelector=env%3Ddev", POLR.collection(Some("dc"))),
    )
    .send()
    .await
    .expect(200)
    .json();
    assert_eq!(raw["kind"], "PolicyReportList", "{raw}");
    assert_eq!(raw["apiVersion"], POLR.api_version());
    assert!(
        raw["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{raw}"
    );
    let names: Vec<&str> = raw["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "c"]);

    // kube-rs sees the list side of its `Either`.
    let deleted = api(&client, POLR, "dc")
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete_collection");
    let list = deleted.left().expect("a list, not a Status");
    let names: Vec<String> = list.items.into_iter().filter_map(|o| o.metadata.name).collect();
    assert_eq!(names, ["b"]);
    let left = get(&client, &POLR.collection(Some("dc")))
        .await
        .expect(200)
        .json();
    assert_eq!(left["items"], json!([]));
}

/// An update of a missing object is 404 whether or not it carries a resourceVersion: the
/// CRD strategy does not create on update (`AllowCreateOnUpdate` is false in
/// k8s.io/apiextensions-apiserver/pkg/registry/customresource/strategy.go).
#[tokio::test]
async fn update_of_a_missing_object_is_not_found() {
    let server = TestServer::start();
    let client = server.client().await;
    let body = report(POLR, "up", "ghost", &[]);
    put(&client, &POLR.item(Some("up"), "ghost"), &body)
        .await
        .expect_status(404, "NotFound");
    let mut pinned = body.clone();
    pinned["metadata"]["resourceVersion"] = json!("5");
    put(&client, &POLR.item(Some("up"), "ghost"), &pinned)
        .await
        .expect_status(404, "NotFound");
    let file = server.write_file("ghost.json", &manifest(&[body]));
    let err = server.kubectl_err(&["replace", "-f", file.to_str().unwrap()]);
    assert!(
        err.contains("NotFound") && err.contains("\"ghost\" not found"),
        "{err}"
    );
    // An existing object without a resourceVersion is still 422.
    post(
        &client,
        &POLR.collection(Some("up")),
        &report(POLR, "up", "real", &[]),
    )
    .await
    .expect(201);
    put(
        &client,
        &POLR.item(Some("up"), "real"),
        &report(POLR, "up", "real", &[]),
    )
    .await
    .expect_status(422, "Invalid");
}

/// A create carrying a resourceVersion is refused by the storage layer
/// (`ErrResourceVersionSetOnCreate`, k8s.io/apiserver/pkg/storage/etcd3/store.go), which kube
/// answers as a 500 with the error's text and no reason; "0" and dry runs pass.
#[tokio::test]
async fn create_with_a_resource_version_is_refused() {
    let server = TestServer::start();
    let client = server.client().await;
    let coll = POLR.collection(Some("cr"));
    let mut body = report(POLR, "cr", "r1", &[]);
    body["metadata"]["resourceVersion"] = json!("12");
    let raw = post(&client, &coll, &body).await.expect(500);
    let status = raw.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(
        status["message"],
        "resourceVersion should not be set on objects to be created"
    );
    assert!(status.get("reason").is_none(), "{status}");
    get(&client, &POLR.item(Some("cr"), "r1"))
        .await
        .expect_status(404, "NotFound");
    post(&client, &format!("{coll}?dryRun=All"), &body)
        .await
        .expect(201);

    // kubectl clears the resourceVersion before creating (`Helper.CreateWithOptions` of
    // k8s.io/cli-runtime/pkg/resource/helper.go), so the same manifest creates through it.
    let mut by_kubectl = body.clone();
    by_kubectl["metadata"]["name"] = json!("by-kubectl");
    let file = server.write_file("rv.json", &manifest(&[by_kubectl]));
    server.kubectl_ok(&["create", "-f", file.to_str().unwrap()]);

    body["metadata"]["resourceVersion"] = json!("0");
    post(&client, &coll, &body).await.expect(201);
}

const DUPLICATED: &str = r#"{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport",
  "metadata":{"name":"dup","name":"dup","namespace":"dk"},
  "summary":{"pass":1,"pass":2},"results":[{"policy":"p","policy":"q","result":"fail"}]}"#;

fn send_duplicated<'a>(client: &'a kube::Client, query: &str) -> Req<'a> {
    Req::new(
        client,
        http::Method::POST,
        &format!("{}{query}", POLR.collection(Some("dk"))),
    )
    .body_with("application/json", DUPLICATED.as_bytes().to_vec())
}

fn warnings(raw: &crate::common::http::Raw) -> Vec<String> {
    raw.headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

/// Duplicate JSON keys: refused under `fieldValidation=Strict` with the strict decoder's
/// `duplicate field "…"` errors, a Warning each under Warn (the default), nothing under Ignore
/// (k8s.io/kubernetes test/integration/apiserver/field_validation_test.go).
#[tokio::test]
async fn duplicate_json_keys_follow_field_validation() {
    let server = TestServer::start();
    let client = server.client().await;
    let status = send_duplicated(&client, "?fieldValidation=Strict")
        .send()
        .await
        .expect_status(400, "BadRequest");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.ends_with(
            "strict decoding error: duplicate field \"metadata.name\", duplicate field \"summary.pass\", duplicate field \"results[0].policy\""
        ),
        "{message}"
    );
    get(&client, &POLR.item(Some("dk"), "dup"))
        .await
        .expect_status(404, "NotFound");

    let ignored = send_duplicated(&client, "?fieldValidation=Ignore&dryRun=All")
        .send()
        .await
        .expect(201);
    assert!(warnings(&ignored).is_empty(), "{:?}", warnings(&ignored));

    let warned = send_duplicated(&client, "").send().await.expect(201);
    let w = warnings(&warned);
    assert_eq!(w.len(), 3, "{w:?}");
    assert_eq!(w[0], r#"299 - "duplicate field \"metadata.name\"""#, "{w:?}");
    let stored: Value = warned.json();
    assert_eq!(stored["summary"]["pass"], 2, "the last value wins");

    // An update with duplicates under Strict is refused too.
    let mut body = String::from(DUPLICATED);
    body = body.replace(
        "\"namespace\":\"dk\"}",
        &format!(
            "\"namespace\":\"dk\",\"resourceVersion\":\"{}\"}}",
            stored["metadata"]["resourceVersion"].as_str().unwrap()
        ),
    );
    Req::new(
        &client,
        http::Method::PUT,
        &format!("{}?fieldValidation=Strict", POLR.item(Some("dk"), "dup")),
    )
    .body_with("application/json", body.into_bytes())
    .send()
    .await
    .expect_status(400, "BadRequest");
}

/// `sendInitialEvents=true` without `allowWatchBookmarks`: kube-apiserver's ListOptions
/// validation does not require bookmarks (`validateWatchOptions` of
/// k8s.io/apimachinery/pkg/apis/meta/internalversion/validation/validation.go checks only
/// resourceVersionMatch and the WatchList gate); the watch sends the initial events and,
/// without bookmarks, no `initial-events-end` bookmark (k8s.io/apiserver/pkg/storage/cacher/
/// cacher.go sends it only when `AllowWatchBookmarks`). prext does the same.
#[tokio::test]
async fn send_initial_events_without_bookmarks_follows_upstream() {
    let server = TestServer::start();
    let client = server.client().await;
    post(
        &client,
        &POLR.collection(Some("si")),
        &report(POLR, "si", "r1", &[]),
    )
    .await
    .expect(201);
    let res = get(
        &client,
        &format!(
            "{}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
            POLR.collection(Some("si"))
        ),
    )
    .await
    .expect(200);
    let events = events(&res.text());
    assert_eq!(typed_names(&events), [("ADDED".to_string(), "r1".to_string())]);
    assert!(events.iter().all(|e| e["type"] != "BOOKMARK"), "{events:?}");
    // What upstream does refuse: sendInitialEvents without resourceVersionMatch=NotOlderThan.
    let status = get(
        &client,
        &format!("{}?watch=1&sendInitialEvents=true", POLR.collection(Some("si"))),
    )
    .await
    .expect_status(422, "Invalid");
    assert_eq!(
        status["details"]["causes"][0]["field"], "resourceVersionMatch",
        "{status}"
    );
}
