//! The watch wire protocol over raw HTTP: framing, `timeoutSeconds`, synthetic ADDED,
//! `sendInitialEvents` with its closing bookmark, and 410 Expired for compacted history.

use std::time::{Duration, Instant};

use crate::common::http::{get, post};
use crate::common::samples::{report, rv, CPOLR, POLR};
use crate::common::TestServer;
use crate::events;

#[tokio::test]
async fn watch_without_rv_replays_state_and_honours_timeout() {
    let server = TestServer::start();
    let client = server.client().await;
    for name in ["a", "b"] {
        post(
            &client,
            &POLR.collection(Some("w")),
            &report(POLR, "w", name, &[]),
        )
        .await
        .expect(201);
    }
    let started = Instant::now();
    let res = get(
        &client,
        &format!("{}?watch=1&timeoutSeconds=1", POLR.collection(Some("w"))),
    )
    .await
    .expect(200);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "timeoutSeconds=1 ends the stream"
    );
    assert!(res
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let events = events(&res.text());
    let added: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        added,
        ["a", "b"],
        "synthetic ADDED for the current state: {events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["type"] == "ADDED" || e["type"] == "BOOKMARK"),
        "{events:?}"
    );
    assert_eq!(events[0]["object"]["kind"], "PolicyReport");
}

#[tokio::test]
async fn send_initial_events_ends_with_an_annotated_bookmark() {
    let server = TestServer::start();
    let client = server.client().await;
    for name in ["a", "b", "c"] {
        post(
            &client,
            &POLR.collection(Some("si")),
            &report(POLR, "si", name, &[]),
        )
        .await
        .expect(201);
    }
    post(
        &client,
        &CPOLR.collection(None),
        &report(CPOLR, "", "newest", &[]),
    )
    .await
    .expect(201);
    let list = get(&client, &POLR.collection(Some("si")))
        .await
        .expect(200)
        .json();

    let coll = POLR.collection(Some("si"));
    let query =
        "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2";
    let res = get(&client, &format!("{coll}?{query}")).await.expect(200);
    let events = events(&res.text());
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(&types[..4], ["ADDED", "ADDED", "ADDED", "BOOKMARK"], "{events:?}");
    let bookmark = &events[3]["object"];
    assert_eq!(
        bookmark["kind"], "PolicyReport",
        "bookmarks carry kind: {bookmark}"
    );
    assert_eq!(bookmark["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(
        bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(
        rv(bookmark),
        rv(&list),
        "the bookmark carries the snapshot revision"
    );

    let status = get(
        &client,
        &format!("{coll}?watch=1&sendInitialEvents=true&timeoutSeconds=1"),
    )
    .await
    .expect_status(422, "Invalid");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("resourceVersionMatch"),
        "{status}"
    );
    get(&client, &format!("{coll}?sendInitialEvents=true"))
        .await
        .expect_status(422, "Invalid");
}

#[tokio::test]
async fn watch_from_compacted_revision_gets_410_expired() {
    let server = TestServer::start_with(&[
        "--history-revisions",
        "5",
        "--history-age-seconds",
        "0",
        "--compaction-interval-seconds",
        "1",
    ]);
    let client = server.client().await;
    let coll = POLR.collection(Some("old"));
    for i in 0..20 {
        post(&client, &coll, &report(POLR, "old", &format!("o{i}"), &[]))
            .await
            .expect(201);
    }
    // Compaction runs every second; poll until it has dropped revision 1.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let res = get(
            &client,
            &format!("{coll}?watch=1&resourceVersion=1&timeoutSeconds=1"),
        )
        .await;
        assert_eq!(
            res.status,
            200,
            "errors after the watch starts go in-band: {}",
            res.text()
        );
        let events = events(&res.text());
        if events.first().is_some_and(|e| e["type"] == "ERROR") {
            break events[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "history was never compacted: {events:?}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = &first["object"];
    assert_eq!(status["kind"], "Status", "{first}");
    assert_eq!(status["code"], 410);
    assert_eq!(status["reason"], "Expired");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too old resource version"),
        "{status}"
    );

    // A watch from a retained revision still works.
    let list = get(&client, &coll).await.expect(200).json();
    let res = get(
        &client,
        &format!("{coll}?watch=1&resourceVersion={}&timeoutSeconds=1", rv(&list)),
    )
    .await
    .expect(200);
    assert!(
        events(&res.text()).iter().all(|e| e["type"] != "ERROR"),
        "{}",
        res.text()
    );
}

#[tokio::test]
async fn a_resource_version_not_yet_reached_waits_then_504s() {
    // As kube-apiserver's watch cache: a request for a revision the store has not published
    // waits for it a few seconds (another replica's write may be on its way), then answers
    // 504 Timeout with the ResourceVersionTooLarge cause.
    let server = TestServer::start();
    let client = server.client().await;
    let created = post(
        &client,
        &POLR.collection(Some("fut")),
        &report(POLR, "fut", "first", &[]),
    )
    .await
    .expect(201)
    .json();
    let current = rv(&created);

    let far = current + 1_000;
    for path in [
        format!("{}?resourceVersion={far}", POLR.collection(Some("fut"))),
        format!("{}?watch=1&resourceVersion={far}", POLR.collection(Some("fut"))),
    ] {
        let status = get(&client, &path).await.expect_status(504, "Timeout");
        assert_eq!(
            status["details"]["causes"][0]["reason"], "ResourceVersionTooLarge",
            "{path}: {status}"
        );
    }

    // The next revision arrives while the watch waits for it: the watch starts there and
    // sees what follows.
    let next = current + 1;
    let watch_path = format!(
        "{}?watch=1&resourceVersion={next}&timeoutSeconds=2",
        POLR.collection(Some("fut"))
    );
    let watching = {
        let client = client.clone();
        tokio::spawn(async move { get(&client, &watch_path).await.expect(200).text() })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["second", "third"] {
        post(
            &client,
            &POLR.collection(Some("fut")),
            &report(POLR, "fut", name, &[]),
        )
        .await
        .expect(201);
    }
    let stream = watching.await.expect("watch task");
    let names: Vec<_> = events(&stream)
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .map(|e| {
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["third"], "events after the revision waited for: {stream}");
}
