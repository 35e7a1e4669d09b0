//! `--store-quota-bytes` (etcd's `--quota-backend-bytes`): past the quota, writes that grow the
//! store are refused with a 507 Status naming the quota, deletes still work, and once enough
//! is deleted (and the change history compacted) writes work again, without a restart.

use serde_json::{json, Value};

use crate::common::http::{delete, get, patch, post};
use crate::common::samples::{report, POLR};
use crate::common::TestServer;

const QUOTA: u64 = 3_000_000;

/// A report of about 100 KB: 200 results with 400-byte messages.
pub fn fat_report(ns: &str, name: &str) -> Value {
    let mut obj = report(POLR, ns, name, &[]);
    let one = obj["results"][0].clone();
    let results: Vec<Value> = (0..200)
        .map(|i| {
            let mut r = one.clone();
            r["rule"] = json!(format!("rule-{i}"));
            r["message"] = json!(format!("{i:04}{}", "x".repeat(400)));
            r
        })
        .collect();
    obj["results"] = json!(results);
    obj
}

#[tokio::test]
async fn past_the_quota_writes_are_refused_deletes_work_and_writes_come_back() {
    let quota = QUOTA.to_string();
    let server = TestServer::start_with(&[
        "--store-quota-bytes",
        &quota,
        "--history-revisions",
        "1",
        "--history-age-seconds",
        "0",
        "--compaction-interval-seconds",
        "1",
    ]);
    let client = server.client().await;
    let collection = POLR.collection(Some("q"));

    let mut kept = report(POLR, "q", "kept", &[]);
    kept["metadata"]["finalizers"] = json!(["example.com/keep"]);
    post(&client, &collection, &kept).await.expect(201);

    let mut created = Vec::new();
    let refused = loop {
        assert!(
            created.len() < 200,
            "3 MB quota never reached after 200 reports of 100 KB"
        );
        let name = format!("r-{}", created.len());
        let resp = post(&client, &collection, &fat_report("q", &name)).await;
        if resp.status == 201 {
            created.push(name);
        } else {
            break resp;
        }
    };
    assert!(created.len() >= 5, "refused too early: {} created", created.len());
    // The refusal names the quota, and is neither a transient 503 nor a bug's 500.
    let status = refused.expect_status(507, "InsufficientStorage");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("--store-quota-bytes"), "{status}");
    assert!(message.contains(&quota), "{status}");
    assert!(
        server.logs().contains("past 80% of --store-quota-bytes"),
        "{}",
        server.logs()
    );

    // A patch grows the store too: refused, and it changed nothing.
    let item = POLR.item(Some("q"), &created[0]);
    patch(
        &client,
        &item,
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"grown": "yes"}}}),
    )
    .await
    .expect_status(507, "InsufficientStorage");
    let stored = get(&client, &item).await.expect(200).json();
    assert!(stored["metadata"]["labels"].get("grown").is_none(), "{stored}");

    // The quota gauges are published.
    let metrics = get(&client, "/metrics").await.expect(200).text();
    let ratio = metrics
        .lines()
        .find_map(|l| l.strip_prefix("prext_store_quota_used_ratio "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no quota ratio in:\n{metrics}"));
    assert!(ratio >= 1.0, "ratio {ratio} after a refusal");

    // A delete of a report with finalizers marks it, and removing them deletes it: both are
    // updates, and both pass the quota since they lead to freeing space.
    let kept = POLR.item(Some("q"), "kept");
    let marked = delete(&client, &kept, None).await.expect(200).json();
    assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
    patch(
        &client,
        &kept,
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": null}}),
    )
    .await
    .expect(200);
    get(&client, &kept).await.expect_status(404, "NotFound");

    // Deletes work past the quota and free space through the API.
    for name in &created {
        delete(&client, &POLR.item(Some("q"), name), None)
            .await
            .expect(200);
    }
    // Writes come back once the deleted reports' history is compacted (every second here).
    let mut attempts = 0;
    loop {
        let resp = post(&client, &collection, &fat_report("q", "after")).await;
        if resp.status == 201 {
            break;
        }
        resp.expect_status(507, "InsufficientStorage");
        attempts += 1;
        assert!(
            attempts < 60,
            "writes did not come back after deleting every report"
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    get(&client, &POLR.item(Some("q"), "after")).await.expect(200);
}
