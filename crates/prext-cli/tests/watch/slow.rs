//! Slow consumers: a watcher whose client never reads must not hold up writers or other
//! watchers (every watcher has bounded buffers and its own cursor on the change log).

use std::time::Duration;

use futures::StreamExt;
use kube::api::{WatchEvent, WatchParams};

use crate::common::http::{get, post};
use crate::common::samples::{adapt, load_testdata, rv, POLR};
use crate::common::TestServer;
use crate::{api, next};

/// 60 writes of the large kube-bench report (about 120 KB as JSON): about 7 MB through each watch.
const WRITES: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_watcher_slows_neither_writers_nor_other_watchers() {
    let server = TestServer::start();
    let client = server.client().await;
    let big = load_testdata("kube-bench-list.yaml")
        .into_iter()
        .next()
        .expect("kube-bench report");
    let coll = POLR.collection(Some("slow"));
    let from = rv(&get(&client, &coll).await.expect(200).json()).to_string();

    // The stalled watcher: its own connection, response headers received, body never read.
    let stalled_client = server.client().await;
    let req = http::Request::get(format!("{coll}?watch=1&resourceVersion={from}"))
        .body(kube::client::Body::empty())
        .expect("request");
    let stalled = stalled_client.send(req).await.expect("stalled watch");
    assert_eq!(stalled.status(), 200);

    // A healthy watcher on another connection.
    let mut healthy = api(&client, POLR, "slow")
        .watch(&WatchParams::default().timeout(120), &from)
        .await
        .expect("healthy watch")
        .boxed();

    // Writers finish (bounded by a hang detector, not a performance threshold).
    let writes = futures::stream::iter(0..WRITES)
        .map(|i| {
            let client = client.clone();
            let coll = coll.clone();
            let obj = adapt(&big, POLR, "slow", &format!("big-{i:03}"));
            async move { post(&client, &coll, &obj).await.expect(201) }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>();
    tokio::time::timeout(Duration::from_secs(300), writes)
        .await
        .expect("writes completed while a watcher was stalled");

    let mut names = Vec::new();
    while names.len() < WRITES {
        match next(&mut healthy, "an ADDED event on the healthy watch").await {
            Ok(WatchEvent::Added(o)) => names.push(o.metadata.name.unwrap_or_default()),
            Ok(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected event: {other:?}"),
        }
    }
    names.sort();
    let expected: Vec<String> = (0..WRITES).map(|i| format!("big-{i:03}")).collect();
    assert_eq!(names, expected, "the healthy watcher saw every write");
    drop(stalled);
}
