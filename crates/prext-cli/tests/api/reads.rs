//! Reads: paging with continue tokens, selectors over HTTP, PartialObjectMetadata(List)
//! and Table responses as kubectl and client-go's metadata client ask for them.

use serde_json::{json, Value};

use crate::common::http::{get, get_as, names, ACCEPT_METADATA, ACCEPT_METADATA_LIST, ACCEPT_TABLE};
use crate::common::samples::{rv, CPOLR, POLR, REPS};
use crate::common::TestServer;
use crate::create;

/// Follows `continue` from `first` to the end; returns every name seen, checking that each
/// page reports the first page's snapshot resourceVersion.
async fn follow(client: &kube::Client, coll: &str, first: &Value) -> Vec<String> {
    let snapshot = rv(first);
    let mut seen = names(first);
    let mut token = first["metadata"]["continue"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    while !token.is_empty() {
        let page = get(client, &format!("{coll}?limit=2&continue={token}"))
            .await
            .expect(200)
            .json();
        assert_eq!(rv(&page), snapshot, "continued pages keep the snapshot RV");
        assert!(page["items"].as_array().is_some_and(|i| i.len() <= 2), "{page}");
        seen.extend(names(&page));
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    seen
}

/// Continued pages keep the first page's resourceVersion (so an informer watching from it
/// replays every change made meanwhile) and read the newest state of the remaining key range,
/// as kube-apiserver's "inconsistent continue" does: objects that exist throughout appear
/// exactly once and in order; objects created or deleted between pages may or may not.
#[tokio::test]
async fn continued_pages_keep_the_first_pages_revision() {
    let server = TestServer::start();
    let client = server.client().await;
    for i in 0..5 {
        create(&client, POLR, "snap", &format!("p{i}"), &[]).await;
    }
    let coll = POLR.collection(Some("snap"));
    let first = get(&client, &format!("{coll}?limit=2")).await.expect(200).json();
    assert_eq!(names(&first), ["p0", "p1"]);
    // Writes between pages: a create that sorts into a later page, and a delete.
    create(&client, POLR, "snap", "p25", &[]).await;
    crate::common::http::delete(&client, &POLR.item(Some("snap"), "p4"), None)
        .await
        .expect(200);
    let seen = follow(&client, &coll, &first).await;
    assert_eq!(
        seen,
        ["p0", "p1", "p2", "p25", "p3"],
        "newest state after the first page, in key order"
    );
}

#[tokio::test]
async fn paging_with_continue_tokens() {
    let server = TestServer::start();
    let client = server.client().await;
    for i in 0..5 {
        create(&client, POLR, "page", &format!("p{i}"), &[]).await;
    }
    let coll = POLR.collection(Some("page"));
    let first = get(&client, &format!("{coll}?limit=2")).await.expect(200).json();
    assert_eq!(names(&first), ["p0", "p1"]);
    assert_eq!(
        follow(&client, &coll, &first).await,
        ["p0", "p1", "p2", "p3", "p4"]
    );
    let all = get(&client, &format!("{coll}?limit=5")).await.expect(200).json();
    assert_eq!(
        all["metadata"]
            .get("continue")
            .and_then(Value::as_str)
            .unwrap_or(""),
        "",
        "{all}"
    );

    let status = get(&client, &format!("{coll}?limit=2&continue=garbage!!"))
        .await
        .expect_status(400, "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("continue"),
        "{status}"
    );
    let forged = "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJ4In0";
    let res = get(&client, &format!("{coll}?limit=2&continue={forged}")).await;
    assert!(
        res.status == 400 || res.status == 410,
        "forged token: {} {}",
        res.status,
        res.text()
    );

    get(&client, &format!("{coll}?labelSelector=env+in+(a"))
        .await
        .expect_status(400, "BadRequest");
    get(&client, &format!("{coll}?fieldSelector=spec.x%3Dy"))
        .await
        .expect_status(400, "BadRequest");
}

#[tokio::test]
async fn partial_object_metadata_for_the_metadata_client() {
    let server = TestServer::start();
    let client = server.client().await;
    create(&client, POLR, "meta", "m1", &[("app", "x")]).await;
    create(&client, POLR, "meta", "m2", &[]).await;

    let res = get_as(&client, &POLR.collection(Some("meta")), ACCEPT_METADATA_LIST)
        .await
        .expect(200);
    assert!(res
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let list = res.json();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert!(rv(&list) > 0);
    assert_eq!(names(&list), ["m1", "m2"]);
    let item = &list["items"][0];
    assert_eq!(item["kind"], "PartialObjectMetadata");
    assert_eq!(item["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(item["metadata"]["labels"], json!({"app": "x"}));
    assert!(item["metadata"]["uid"].is_string());
    assert!(
        item.get("results").is_none() && item.get("summary").is_none(),
        "{item}"
    );

    let one = get_as(&client, &POLR.item(Some("meta"), "m1"), ACCEPT_METADATA)
        .await
        .expect(200)
        .json();
    assert_eq!(one["kind"], "PartialObjectMetadata");
    assert_eq!(one["metadata"]["name"], "m1");
    assert!(one.get("results").is_none());

    // Only the protobuf variant: no JSON fallback offered → 406.
    let res = get_as(
        &client,
        &POLR.collection(Some("meta")),
        "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await;
    res.expect_status(406, "NotAcceptable");
}

#[tokio::test]
async fn table_for_kubectl() {
    let server = TestServer::start();
    let client = server.client().await;
    create(&client, POLR, "tbl", "t1", &[]).await;
    create(&client, POLR, "tbl", "t2", &[]).await;
    let res = get_as(&client, &POLR.collection(Some("tbl")), ACCEPT_TABLE)
        .await
        .expect(200);
    assert!(res
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let table = res.json();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert!(rv(&table) > 0);
    let columns: Vec<(&str, &str, i64)> = table["columnDefinitions"]
        .as_array()
        .expect("columnDefinitions")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["type"].as_str().unwrap_or(""),
                c["priority"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Name", "string", 0),
            ("Kind", "string", 0),
            ("Name", "string", 0),
            ("Pass", "integer", 0),
            ("Fail", "integer", 0),
            ("Warn", "integer", 0),
            ("Error", "integer", 0),
            ("Skip", "integer", 0),
            ("Age", "date", 0)
        ]
    );
    assert_eq!(table["columnDefinitions"][0]["format"], "name");
    let row = &table["rows"][0];
    let cells = row["cells"].as_array().expect("cells");
    assert_eq!(
        cells[..8],
        [
            json!("t1"),
            json!("Pod"),
            json!("nginx"),
            json!(3),
            json!(1),
            json!(0),
            json!(0),
            json!(0)
        ]
    );
    let age = cells[8].as_str().expect("Age is a preformatted string");
    assert!(
        age.ends_with('s') && age[..age.len() - 1].parse::<u32>().is_ok(),
        "Age {age:?} like \"5s\""
    );
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(row["object"]["metadata"]["name"], "t1");
    assert_eq!(row["object"]["metadata"]["namespace"], "tbl");

    let paged = get_as(
        &client,
        &format!("{}?limit=1", POLR.collection(Some("tbl"))),
        ACCEPT_TABLE,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(paged["rows"].as_array().map(Vec::len), Some(1));
    assert!(
        paged["metadata"]["continue"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{paged}"
    );

    let full = get_as(
        &client,
        &format!("{}?includeObject=Object", POLR.item(Some("tbl"), "t2")),
        ACCEPT_TABLE,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(full["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(full["rows"][0]["object"]["kind"], "PolicyReport");
    assert!(full["rows"][0]["object"]["results"].is_array());
    let none = get_as(
        &client,
        &format!("{}?includeObject=None", POLR.collection(Some("tbl"))),
        ACCEPT_TABLE,
    )
    .await
    .expect(200)
    .json();
    assert!(none["rows"][0].get("object").is_none_or(Value::is_null), "{none}");

    // openreports: Kind/Name are priority 1 (wide only); cluster-scoped tables work too.
    create(&client, REPS, "tbl", "r1", &[]).await;
    let reps = get_as(&client, &REPS.collection(Some("tbl")), ACCEPT_TABLE)
        .await
        .expect(200)
        .json();
    assert_eq!(reps["columnDefinitions"][1]["priority"], 1);
    let cpolr = get_as(&client, &CPOLR.collection(None), ACCEPT_TABLE)
        .await
        .expect(200)
        .json();
    assert_eq!(cpolr["rows"], json!([]));
}
