//! kube-rs clients: `runtime::watcher` in both modes, `Api::watch` from a list RV (across a
//! restart), and label-selector transitions.

use futures::StreamExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, watcher, Event};
use serde_json::json;

use crate::common::samples::{POLR, REPS};
use crate::common::TestServer;
use crate::{api, dynamic, name_of, next};

/// Starts a watcher on two existing objects, then creates, modifies and deletes, and
/// checks the events are exactly those, in order.
async fn watcher_sees_exactly_the_writes(config: watcher::Config) {
    let server = TestServer::start();
    let client = server.client().await;
    let api = api(&client, POLR, "kw");
    let pp = PostParams::default();
    api.create(&pp, &dynamic(POLR, "kw", "a", &[]))
        .await
        .expect("create a");
    api.create(&pp, &dynamic(POLR, "kw", "b", &[]))
        .await
        .expect("create b");

    let mut stream = watcher(api.clone(), config).boxed();
    assert!(matches!(next(&mut stream, "Init").await, Ok(Event::Init)));
    let mut initial = Vec::new();
    loop {
        match next(&mut stream, "initial objects").await.expect("watcher event") {
            Event::InitApply(obj) => initial.push(name_of(&obj)),
            Event::InitDone => break,
            other => panic!("unexpected event during init: {other:?}"),
        }
    }
    initial.sort();
    assert_eq!(initial, ["a", "b"]);

    api.create(&pp, &dynamic(POLR, "kw", "c", &[]))
        .await
        .expect("create c");
    let patch = Patch::Merge(json!({"summary": {"pass": 11}}));
    api.patch("a", &PatchParams::default(), &patch)
        .await
        .expect("patch a");
    api.delete("b", &DeleteParams::default()).await.expect("delete b");

    match next(&mut stream, "Apply(c)").await.expect("event") {
        Event::Apply(obj) => assert_eq!(name_of(&obj), "c"),
        other => panic!("expected Apply(c), got {other:?}"),
    }
    match next(&mut stream, "Apply(a)").await.expect("event") {
        Event::Apply(obj) => {
            assert_eq!(name_of(&obj), "a");
            assert_eq!(obj.data["summary"]["pass"], 11);
        }
        other => panic!("expected Apply(a), got {other:?}"),
    }
    match next(&mut stream, "Delete(b)").await.expect("event") {
        Event::Delete(obj) => assert_eq!(name_of(&obj), "b"),
        other => panic!("expected Delete(b), got {other:?}"),
    }
    let extra = tokio::time::timeout(std::time::Duration::from_millis(500), stream.next()).await;
    assert!(extra.is_err(), "no further events: {extra:?}");
}

#[tokio::test]
async fn kube_watcher_list_then_watch() {
    watcher_sees_exactly_the_writes(watcher::Config::default()).await;
}

#[tokio::test]
async fn kube_watcher_streaming_lists() {
    watcher_sees_exactly_the_writes(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test]
async fn watch_from_list_rv_resumes_after_restart() {
    let mut server = TestServer::start();
    let client = server.client().await;
    let api_before = api(&client, POLR, "resume");
    let pp = PostParams::default();
    for name in ["a", "b"] {
        api_before
            .create(&pp, &dynamic(POLR, "resume", name, &[]))
            .await
            .expect("create");
    }
    let list = api_before.list(&ListParams::default()).await.expect("list");
    let list_rv = list.metadata.resource_version.clone().expect("list RV");
    api_before
        .create(&pp, &dynamic(POLR, "resume", "c", &[]))
        .await
        .expect("create c");

    server.restart();
    let client = server.client().await;
    let api = api(&client, POLR, "resume");
    let patch = Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}}));
    api.patch("a", &PatchParams::default(), &patch)
        .await
        .expect("patch a");
    api.delete("b", &DeleteParams::default()).await.expect("delete b");

    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &list_rv)
        .await
        .expect("watch from list RV")
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut stream, "resumed events").await.expect("watch event") {
            WatchEvent::Added(o) => seen.push(("ADDED", name_of(&o))),
            WatchEvent::Modified(o) => {
                assert_eq!(
                    o.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("touched"))
                        .map(String::as_str),
                    Some("yes")
                );
                seen.push(("MODIFIED", name_of(&o)));
            }
            WatchEvent::Deleted(o) => seen.push(("DELETED", name_of(&o))),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            ("ADDED", "c".to_string()),
            ("MODIFIED", "a".to_string()),
            ("DELETED", "b".to_string())
        ],
        "exactly the changes after the list RV, in order"
    );
}

#[tokio::test]
async fn label_selector_transitions_are_added_and_deleted() {
    let server = TestServer::start();
    let client = server.client().await;
    let api = api(&client, REPS, "sel");
    let pp = PostParams::default();
    api.create(&pp, &dynamic(REPS, "sel", "a", &[("env", "prod")]))
        .await
        .expect("create a");
    let list = api
        .list(&ListParams::default().labels("env=prod"))
        .await
        .expect("list");
    let list_rv = list.metadata.resource_version.clone().expect("list RV");
    let mut stream = api
        .watch(&WatchParams::default().labels("env=prod").timeout(30), &list_rv)
        .await
        .expect("watch")
        .boxed();

    let relabel = |env: &'static str| Patch::Merge(json!({"metadata": {"labels": {"env": env}}}));
    let out = api
        .patch("a", &PatchParams::default(), &relabel("dev"))
        .await
        .expect("relabel out");
    api.patch("a", &PatchParams::default(), &relabel("prod"))
        .await
        .expect("relabel in");
    api.create(&pp, &dynamic(REPS, "sel", "b", &[("env", "dev")]))
        .await
        .expect("create b");
    let touch = Patch::Merge(json!({"summary": {"pass": 5}}));
    api.patch("b", &PatchParams::default(), &touch)
        .await
        .expect("patch b");
    api.create(&pp, &dynamic(REPS, "sel", "c", &[("env", "prod")]))
        .await
        .expect("create c");

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut stream, "selector events").await.expect("watch event") {
            WatchEvent::Added(o) => seen.push(("ADDED", name_of(&o))),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", name_of(&o))),
            WatchEvent::Deleted(o) => {
                assert_eq!(
                    o.metadata.resource_version, out.metadata.resource_version,
                    "DELETED carries the revision of the change that left the selector"
                );
                seen.push(("DELETED", name_of(&o)))
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            ("DELETED", "a".to_string()),
            ("ADDED", "a".to_string()),
            ("ADDED", "c".to_string())
        ],
        "b never matched the selector and is never seen"
    );
}
