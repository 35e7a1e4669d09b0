//! `Accept: application/yaml`: kube-apiserver serves objects, lists and Status errors as
//! YAML (its YAML serializer, k8s.io/apimachinery/pkg/runtime/serializer/json, offered by
//! k8s.io/apiserver/pkg/endpoints/handlers/negotiation), and answers 406 for a watch (no
//! stream framing for YAML) and for protobuf on custom resources.

use serde_json::Value;

use crate::common::http::{get, get_as, post};
use crate::common::samples::{report, POLR};
use crate::common::TestServer;

const YAML: &str = "application/yaml";

fn yaml_body(raw: &crate::common::http::Raw) -> Value {
    assert_eq!(
        raw.header("content-type").as_deref(),
        Some(YAML),
        "{}",
        raw.text()
    );
    serde_norway::from_str(&raw.text()).unwrap_or_else(|e| panic!("not YAML ({e}): {}", raw.text()))
}

#[tokio::test]
async fn objects_lists_and_errors_in_yaml() {
    let server = TestServer::start();
    let client = server.client().await;
    post(
        &client,
        &POLR.collection(Some("y")),
        &report(POLR, "y", "r1", &[("app", "web")]),
    )
    .await
    .expect(201);

    let item = POLR.item(Some("y"), "r1");
    let as_json = get(&client, &item).await.expect(200).json();
    let as_yaml = yaml_body(&get_as(&client, &item, YAML).await.expect(200));
    assert_eq!(as_yaml, as_json, "the same document");

    let list = yaml_body(
        &get_as(&client, &POLR.collection(Some("y")), YAML)
            .await
            .expect(200),
    );
    assert_eq!(list["kind"], "PolicyReportList");
    assert_eq!(list["items"][0]["metadata"]["name"], "r1");
    assert!(list["metadata"]["resourceVersion"].is_string(), "{list:?}");

    // A client listing YAML first, JSON second gets YAML; JSON first, JSON.
    let both = get_as(&client, &item, "application/yaml, application/json")
        .await
        .expect(200);
    assert_eq!(yaml_body(&both)["metadata"]["name"], "r1");
    let json_first = get_as(&client, &item, "application/json, application/yaml")
        .await
        .expect(200);
    assert_eq!(json_first.json()["metadata"]["name"], "r1");

    let missing = get_as(&client, &POLR.item(Some("y"), "nope"), YAML)
        .await
        .expect(404);
    let status = yaml_body(&missing);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["code"], 404);

    // A Table in YAML, as `application/yaml;as=Table` asks.
    let table = get_as(
        &client,
        &POLR.collection(Some("y")),
        "application/yaml;as=Table;v=v1;g=meta.k8s.io",
    )
    .await
    .expect(200);
    assert_eq!(yaml_body(&table)["kind"], "Table");
}

#[tokio::test]
async fn watches_and_protobuf_stay_not_acceptable() {
    let server = TestServer::start();
    let client = server.client().await;
    get_as(
        &client,
        &format!("{}?watch=1&timeoutSeconds=1", POLR.collection(Some("y"))),
        YAML,
    )
    .await
    .expect(406);
    get_as(
        &client,
        &POLR.collection(Some("y")),
        "application/vnd.kubernetes.protobuf",
    )
    .await
    .expect_status(406, "NotAcceptable");
}
