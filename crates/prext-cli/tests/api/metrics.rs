//! `/metrics`: request counts by verb/resource/code, latency histograms, open watches and
//! storage operation metrics, in the Prometheus text format.

use std::time::Duration;

use crate::common::http::get;
use crate::common::samples::POLR;
use crate::common::TestServer;
use crate::create;

fn sample_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn request_store_and_watch_metrics() {
    let server = TestServer::start();
    let client = server.client().await;
    create(&client, POLR, "m", "one", &[]).await;
    create(&client, POLR, "m", "two", &[]).await;
    get(&client, &POLR.item(Some("m"), "missing")).await.expect(404);

    // An open watch shows as a long-running request while it lasts.
    let watch_client = server.client().await;
    let req = http::Request::get(format!("{}?watch=1", POLR.collection(Some("m"))))
        .body(kube::client::Body::empty())
        .expect("request");
    let watch = watch_client.send(req).await.expect("watch");
    assert_eq!(watch.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let text = get(&client, "/metrics").await.expect(200).text();
    let created = sample_value(
        &text,
        "apiserver_request_total{verb=\"create\",group=\"wgpolicyk8s.io\",resource=\"policyreports\",code=\"201\"}",
    );
    assert_eq!(created, Some(2.0), "{text}");
    let missing = sample_value(
        &text,
        "apiserver_request_total{verb=\"get\",group=\"wgpolicyk8s.io\",resource=\"policyreports\",code=\"404\"}",
    );
    assert_eq!(missing, Some(1.0), "{text}");
    assert!(
        text.contains("apiserver_request_duration_seconds_bucket{le=")
            || text.contains("apiserver_request_duration_seconds_bucket{verb=\"create\""),
        "{text}"
    );
    let watches = sample_value(
        &text,
        "apiserver_longrunning_requests{verb=\"watch\",group=\"wgpolicyk8s.io\",resource=\"policyreports\"}",
    );
    assert_eq!(watches, Some(1.0), "{text}");
    let creates = sample_value(
        &text,
        "prext_store_operation_duration_seconds_count{operation=\"create\"}",
    );
    assert_eq!(creates, Some(2.0), "{text}");
    let objects = sample_value(&text, "prext_objects{resource=\"policyreports.wgpolicyk8s.io\"}");
    assert_eq!(objects, Some(2.0), "{text}");

    drop(watch);
    // The gauge goes back down once the watch ends.
    let mut open = Some(1.0);
    for _ in 0..50 {
        let text = get(&client, "/metrics").await.expect(200).text();
        open = sample_value(
            &text,
            "apiserver_longrunning_requests{verb=\"watch\",group=\"wgpolicyk8s.io\",resource=\"policyreports\"}",
        );
        if open == Some(0.0) {
            break;
        }
        // A dropped client is noticed when the next event or bookmark is written, or at once
        // when the connection closes.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, Some(0.0));
}

/// Once no request has started for `--idle-memory-release-seconds`, the server empties the
/// store's page caches and returns the allocator's free pages (timed as the store operation
/// `release_memory`), then serves as before.
#[tokio::test]
async fn memory_is_released_when_idle_and_the_server_keeps_serving() {
    let server = TestServer::start_with(&["--idle-memory-release-seconds", "1"]);
    let client = server.client().await;
    create(&client, POLR, "idle", "one", &[]).await;
    let released = "prext_store_operation_duration_seconds_count{operation=\"release_memory\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        // A scrape is a request too: the pause between two is the idle time (over twice
        // the idle period, so that one whole period passes without a request).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let text = get(&client, "/metrics").await.expect(200).text();
        if sample_value(&text, released).is_some_and(|n| n >= 1.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no release while idle: {text}"
        );
    }
    create(&client, POLR, "idle", "two", &[]).await;
    let one = get(&client, &POLR.item(Some("idle"), "one"))
        .await
        .expect(200)
        .json();
    assert_eq!(one["metadata"]["name"], "one");
    let list = get(&client, &POLR.collection(Some("idle")))
        .await
        .expect(200)
        .json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["metadata"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["one", "two"]);
}
