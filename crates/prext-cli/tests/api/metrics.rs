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
