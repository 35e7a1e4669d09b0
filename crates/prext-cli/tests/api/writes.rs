//! Create and update semantics: server-set metadata, generateName, generation, the
//! resourceVersion sequence, optimistic concurrency, validation and every 4xx of a write.

use serde_json::{json, Value};

use crate::common::http::{get, patch, post, put, Req};
use crate::common::samples::{report, rv, CPOLR, EPHR, POLR};
use crate::common::TestServer;
use crate::{cause_fields, create, fetch};

#[tokio::test]
async fn create_sets_system_metadata_and_rejects_duplicates() {
    let server = TestServer::start();
    let client = server.client().await;
    let mut body = report(POLR, "w", "dup", &[]);
    body["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    body["metadata"]["generation"] = json!(7);
    body["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    let created = post(&client, &POLR.collection(Some("w")), &body)
        .await
        .expect(201)
        .json();
    let meta = &created["metadata"];
    assert_ne!(
        meta["uid"], "00000000-0000-0000-0000-000000000000",
        "server sets uid"
    );
    assert_eq!(meta["uid"].as_str().map(str::len), Some(36));
    assert_eq!(meta["generation"], 1);
    assert!(
        meta.get("deletionTimestamp").is_none(),
        "client deletionTimestamp wiped: {meta}"
    );
    let ts = meta["creationTimestamp"].as_str().expect("creationTimestamp");
    assert!(
        ts.ends_with('Z') && ts.len() == 20,
        "RFC 3339, whole seconds: {ts}"
    );
    assert!(rv(&created) > 0);

    let status = post(
        &client,
        &POLR.collection(Some("w")),
        &report(POLR, "w", "dup", &[]),
    )
    .await
    .expect_status(409, "AlreadyExists");
    assert_eq!(
        status["message"],
        r#"policyreports.wgpolicyk8s.io "dup" already exists"#
    );
    assert_eq!(status["details"]["name"], "dup");
    assert_eq!(status["details"]["group"], "wgpolicyk8s.io");
    assert_eq!(status["details"]["kind"], "policyreports");

    let mut nameless = report(POLR, "w", "x", &[]);
    nameless["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("name");
    post(&client, &POLR.collection(Some("w")), &nameless)
        .await
        .expect_status(422, "Invalid");
}

#[tokio::test]
async fn generate_name_makes_unique_names() {
    let server = TestServer::start();
    let client = server.client().await;
    let mut body = report(EPHR, "g", "x", &[]);
    body["metadata"] = json!({"generateName": "ephr-", "namespace": "g"});
    let mut names = Vec::new();
    for _ in 0..3 {
        let created = post(&client, &EPHR.collection(Some("g")), &body)
            .await
            .expect(201)
            .json();
        let name = created["metadata"]["name"]
            .as_str()
            .expect("generated name")
            .to_string();
        assert_eq!(created["metadata"]["generateName"], "ephr-");
        assert_eq!(name.len(), "ephr-".len() + 5, "{name}");
        let suffix = &name["ephr-".len()..];
        assert!(
            suffix.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{name}"
        );
        names.push(name);
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3);
    fetch(&client, EPHR, "g", &names[0]).await.expect(200);
}

#[tokio::test]
async fn update_requires_current_resource_version() {
    let server = TestServer::start();
    let client = server.client().await;
    let created = create(&client, POLR, "u", "obj", &[]).await;
    let path = POLR.item(Some("u"), "obj");

    let mut no_rv = created.clone();
    no_rv["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("resourceVersion");
    let status = put(&client, &path, &no_rv).await.expect_status(422, "Invalid");
    assert!(
        cause_fields(&status).contains(&"metadata.resourceVersion".to_string()),
        "{status}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("must be specified for an update"),
        "{status}"
    );

    let mut changed = created.clone();
    changed["summary"]["pass"] = json!(4);
    let updated = put(&client, &path, &changed).await.expect(200).json();
    assert!(rv(&updated) > rv(&created));

    let status = put(&client, &path, &changed).await.expect_status(409, "Conflict");
    assert_eq!(
        status["message"],
        r#"Operation cannot be fulfilled on policyreports.wgpolicyk8s.io "obj": the object has been modified; please apply your changes to the latest version and try again"#
    );
    assert_eq!(status["details"]["kind"], "policyreports");

    let mut missing = changed.clone();
    missing["metadata"]["name"] = json!("missing");
    put(&client, &POLR.item(Some("u"), "missing"), &missing)
        .await
        .expect_status(404, "NotFound");

    // A resourceVersion inside a merge patch is a precondition too.
    let stale = json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "summary": {"pass": 9}});
    patch(&client, &path, "application/merge-patch+json", &stale)
        .await
        .expect_status(409, "Conflict");
}

#[tokio::test]
async fn generation_bumps_only_on_non_metadata_changes() {
    let server = TestServer::start();
    let client = server.client().await;
    let path = POLR.item(Some("gen"), "g");
    let obj = create(&client, POLR, "gen", "g", &[]).await;
    assert_eq!(obj["metadata"]["generation"], 1);

    let merge = "application/merge-patch+json";
    let obj = patch(
        &client,
        &path,
        merge,
        &json!({"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}}}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(
        obj["metadata"]["generation"], 1,
        "labels/annotations keep the generation"
    );

    let obj = patch(&client, &path, merge, &json!({"summary": {"fail": 2}}))
        .await
        .expect(200)
        .json();
    assert_eq!(obj["metadata"]["generation"], 2);

    let mut body = obj.clone();
    body["metadata"]["generation"] = json!(50);
    let obj = put(&client, &path, &body).await.expect(200).json();
    assert_eq!(
        obj["metadata"]["generation"], 2,
        "clients cannot set the generation"
    );

    let ops = json!([{"op": "replace", "path": "/results/0/result", "value": "pass"}]);
    let obj = patch(&client, &path, "application/json-patch+json", &ops)
        .await
        .expect(200)
        .json();
    assert_eq!(obj["metadata"]["generation"], 3);
    assert_eq!(obj["results"][0]["result"], "pass");

    let status = patch(
        &client,
        &path,
        "application/strategic-merge-patch+json",
        &json!({"summary": {}}),
    )
    .await
    .expect_status(415, "UnsupportedMediaType");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("application/merge-patch+json"),
        "{status}"
    );
}

#[tokio::test]
async fn resource_versions_increase_and_list_reports_the_newest() {
    let server = TestServer::start();
    let client = server.client().await;
    let mut last = 0;
    for i in 0..5 {
        let obj = create(&client, POLR, "rv", &format!("o{i}"), &[]).await;
        assert!(rv(&obj) > last, "resourceVersion strictly increases");
        last = rv(&obj);
    }
    let cluster = post(&client, &CPOLR.collection(None), &report(CPOLR, "", "c", &[]))
        .await
        .expect(201)
        .json();
    assert!(rv(&cluster) > last);
    let updated = patch(
        &client,
        &POLR.item(Some("rv"), "o1"),
        "application/merge-patch+json",
        &json!({"summary": {"warn": 1}}),
    )
    .await
    .expect(200)
    .json();
    assert!(rv(&updated) > rv(&cluster));
    let list = get(&client, &POLR.collection(Some("rv")))
        .await
        .expect(200)
        .json();
    assert_eq!(list["kind"], "PolicyReportList");
    assert_eq!(list["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(rv(&list), rv(&updated), "list RV is the newest revision");
    let item_max = list["items"].as_array().expect("items").iter().map(rv).max();
    assert_eq!(item_max, Some(rv(&updated)));

    let empty = get(&client, &POLR.collection(Some("nothing-here")))
        .await
        .expect(200)
        .json();
    assert_eq!(empty["items"], json!([]), "empty list has items: [] (not null)");
    assert_eq!(rv(&empty), rv(&updated));
}

#[tokio::test]
async fn invalid_bodies_are_rejected_with_status() {
    let server = TestServer::start();
    let client = server.client().await;
    let coll = POLR.collection(Some("bad"));

    let mut bad_enum = report(POLR, "bad", "enum", &[]);
    bad_enum["results"][0]["result"] = json!("maybe");
    let status = post(&client, &coll, &bad_enum)
        .await
        .expect_status(422, "Invalid");
    assert_eq!(status["details"]["kind"], "PolicyReport");
    assert_eq!(status["details"]["group"], "wgpolicyk8s.io");
    assert_eq!(status["details"]["name"], "enum");
    assert!(
        cause_fields(&status).contains(&"results[0].result".to_string()),
        "{status}"
    );
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(r#"PolicyReport.wgpolicyk8s.io "enum" is invalid: "#),
        "{message}"
    );

    let mut wrong_kind = report(POLR, "bad", "kind", &[]);
    wrong_kind["kind"] = json!("ClusterPolicyReport");
    post(&client, &coll, &wrong_kind)
        .await
        .expect_status(400, "BadRequest");
    let mut wrong_version = report(POLR, "bad", "ver", &[]);
    wrong_version["apiVersion"] = json!("wgpolicyk8s.io/v1beta1");
    post(&client, &coll, &wrong_version)
        .await
        .expect_status(400, "BadRequest");

    let other_ns = report(POLR, "elsewhere", "ns", &[]);
    let status = post(&client, &coll, &other_ns)
        .await
        .expect_status(400, "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not match the namespace sent on the request"),
        "{status}"
    );
    let mut no_ns = report(POLR, "bad", "filled", &[]);
    no_ns["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("namespace");
    let filled = post(&client, &coll, &no_ns).await.expect(201).json();
    assert_eq!(
        filled["metadata"]["namespace"], "bad",
        "namespace filled from the URL"
    );

    let malformed = Req::new(&client, http::Method::POST, &coll)
        .body_with(
            "application/json",
            br#"{"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "#.to_vec(),
        )
        .send()
        .await;
    malformed.expect_status(400, "BadRequest");
}

/// A report of about 4 MiB (four results with 1 MiB messages), over the 3 MiB body limit.
fn huge_report(name: &str) -> Value {
    let mut huge = report(POLR, "big", name, &[]);
    let blob = "x".repeat(1024 * 1024);
    huge["results"] = Value::Array(
        (0..4)
            .map(|i| json!({"policy": format!("p{i}"), "result": "pass", "message": blob}))
            .collect(),
    );
    huge
}

#[tokio::test]
async fn oversized_body_gets_413_status() {
    let server = TestServer::start();
    let client = server.client().await;
    let coll = POLR.collection(Some("big"));
    // The client is still sending when the limit is hit: the 413 must still reach it
    // (e.g. the server drains the rest), not a connection reset.
    for name in ["huge-1", "huge-2"] {
        post(&client, &coll, &huge_report(name))
            .await
            .expect_status(413, "RequestEntityTooLarge");
        fetch(&client, POLR, "big", name).await.expect(404);
    }
    let file = server.write_file("huge.json", &huge_report("huge-3").to_string());
    let err = server.kubectl_err(&["create", "-f", file.to_str().expect("utf-8 path")]);
    assert!(
        err.contains("RequestEntityTooLarge") || err.contains("too large"),
        "{err}"
    );
    fetch(&client, POLR, "big", "huge-3").await.expect(404);
}

/// Bodies larger than the server's in-flight budget for request bodies (1 MiB) take it whole
/// and wait for each other; sent at once with small ones, every write is still answered.
#[tokio::test]
async fn concurrent_large_bodies_all_succeed() {
    let server = TestServer::start();
    let client = server.client().await;
    let coll = POLR.collection(Some("big"));
    let blob = "y".repeat(600 * 1024);
    let large = |i: usize| {
        let mut r = report(POLR, "big", &format!("large-{i}"), &[]);
        r["results"] = Value::Array(
            (0..2)
                .map(|j| json!({"policy": format!("p{j}"), "result": "pass", "message": blob}))
                .collect(),
        );
        r
    };
    let bodies: Vec<Value> = (0..6)
        .map(large)
        .chain((0..6).map(|i| report(POLR, "big", &format!("small-{i}"), &[])))
        .collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| post(&client, &coll, b))).await;
    for (answer, body) in answers.into_iter().zip(&bodies) {
        let name = body["metadata"]["name"].as_str().expect("name");
        answer.expect(201);
        let stored = fetch(&client, POLR, "big", name).await.expect(200).json();
        assert_eq!(stored["results"], body["results"], "{name}");
    }
}

#[tokio::test]
async fn unknown_fields_strict_and_default() {
    let server = TestServer::start();
    let client = server.client().await;
    let coll = POLR.collection(Some("fv"));
    let mut body = report(POLR, "fv", "strict", &[]);
    body["bogus"] = json!(1);
    body["results"][0]["alsoBogus"] = json!("x");

    let status = post(&client, &format!("{coll}?fieldValidation=Strict"), &body)
        .await
        .expect_status(400, "BadRequest");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("strict decoding error"), "{message}");
    assert!(message.contains(r#"unknown field "bogus""#), "{message}");
    fetch(&client, POLR, "fv", "strict").await.expect(404);

    let res = post(&client, &coll, &body).await.expect(201);
    let warning = res
        .header("warning")
        .expect("a Warning header for unknown fields");
    assert!(warning.starts_with("299 - "), "{warning}");
    assert!(
        warning.contains("unknown field") && warning.contains("bogus"),
        "{warning}"
    );
    let stored = fetch(&client, POLR, "fv", "strict").await.expect(200).json();
    assert!(stored.get("bogus").is_none(), "unknown field pruned: {stored}");
    assert!(
        stored["results"][0].get("alsoBogus").is_none(),
        "nested unknown field pruned: {stored}"
    );
    assert_eq!(stored["results"][0]["policy"], "require-labels");

    // `properties` is a free-form string map and keeps arbitrary keys.
    let mut props = report(POLR, "fv", "props", &[]);
    props["results"][0]["properties"] = json!({"any.key/here": "v"});
    let stored = post(&client, &format!("{coll}?fieldValidation=Strict"), &props)
        .await
        .expect(201)
        .json();
    assert_eq!(stored["results"][0]["properties"]["any.key/here"], "v");
}
