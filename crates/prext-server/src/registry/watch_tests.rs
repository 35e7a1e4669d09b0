//! The watch rules on a real SQLite store (no HTTP): initial events and their bookmark,
//! selector transitions, resuming after a resourceVersion. Upstream:
//! `k8s.io/apiserver/pkg/storage/cacher/cacher_whitebox_test.go` (selector transitions) and
//! `watch_cache_interval` (initial events).

use std::sync::Arc;
use std::time::Duration;

use prext_api::labels::LabelSelector;
use prext_api::ResourceDef;
use prext_store::Store;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::watch::{Watch, WatchEvent, WatchRequest, WatchSource};
use super::*;

fn def() -> &'static ResourceDef {
    prext_api::resources::find("wgpolicyk8s.io", "v1alpha2", "policyreports").expect("served")
}

struct Fixture {
    registry: Registry,
    source: WatchSource,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = prext_store::sqlite::SqliteStore::open(&dir.path().join("prext.db"), Default::default())
        .expect("open sqlite");
    let store: Arc<dyn Store> = Arc::new(store);
    let shutdown = CancellationToken::new();
    Fixture {
        registry: Registry::new(store.clone(), None),
        source: WatchSource {
            fanout: crate::fanout::Fanout::start(store, shutdown.clone()),
            shutdown,
        },
        _dir: dir,
    }
}

fn opts() -> WriteOptions {
    WriteOptions {
        dry_run: false,
        field_validation: FieldValidation::Warn,
        field_manager: None,
        default_manager: "test".into(),
        force: None,
        duplicates: Vec::new(),
    }
}

fn report(name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": "team-a", "labels": {"app": app}},
        "results": []
    })
}

async fn create(f: &Fixture, name: &str, app: &str) -> Value {
    let w = f
        .registry
        .create(def(), Some("team-a"), report(name, app), &opts())
        .await
        .expect("created");
    serde_json::from_slice(&w.body).expect("json")
}

/// Relabels a stored object (an update based on its current resourceVersion).
async fn relabel(f: &Fixture, current: &Value, app: &str) -> Value {
    let mut new = current.clone();
    new["metadata"]["labels"]["app"] = json!(app);
    let target = ObjectRef {
        def: def(),
        namespace: Some("team-a".into()),
        name: current["metadata"]["name"].as_str().expect("name").into(),
    };
    let w = f.registry.update(&target, new, &opts()).await.expect("updated");
    serde_json::from_slice(&w.body).expect("json")
}

/// The next event as (type, name) or (BOOKMARK, revision), waiting as long as it takes on a
/// loaded machine (the deadline only turns a hang into a failure).
async fn next(w: &mut Watch) -> (String, String) {
    let event = tokio::time::timeout(Duration::from_secs(60), w.next())
        .await
        .expect("an event before the deadline")
        .expect("the watch goes on");
    let name = |body: &bytes::Bytes| {
        let v: Value = serde_json::from_slice(body).expect("json");
        v["metadata"]["name"].as_str().expect("name").to_owned()
    };
    match event {
        WatchEvent::Added(b) => ("ADDED".into(), name(&b)),
        WatchEvent::Modified(b) => ("MODIFIED".into(), name(&b)),
        WatchEvent::Deleted(b) => ("DELETED".into(), name(&b)),
        WatchEvent::Bookmark {
            revision,
            initial_events_end,
        } => (
            format!("BOOKMARK{}", if initial_events_end { " end" } else { "" }),
            revision.to_string(),
        ),
        WatchEvent::Error(e) => panic!("watch error: {e}"),
    }
}

fn pair(kind: &str, name: &str) -> (String, String) {
    (kind.into(), name.into())
}

#[tokio::test]
async fn initial_events_end_with_a_bookmark_then_selector_transitions() {
    let f = fixture();
    create(&f, "web-1", "web").await;
    create(&f, "db-1", "db").await;
    let request = WatchRequest {
        namespace: Some("team-a".into()),
        labels: LabelSelector::parse("app=web").expect("selector"),
        allow_bookmarks: true,
        send_initial_events: Some(true),
        ..WatchRequest::default()
    };
    let mut w = f
        .registry
        .watch(def(), request, f.source.clone())
        .await
        .expect("watch");
    assert_eq!(next(&mut w).await, pair("ADDED", "web-1"));
    let (kind, _) = next(&mut w).await;
    assert_eq!(kind, "BOOKMARK end");
    let db = create(&f, "db-2", "db").await;
    let web2 = create(&f, "web-2", "web").await;
    assert_eq!(next(&mut w).await, pair("ADDED", "web-2"), "db-2 is not selected");
    // Leaving the selector is a DELETED, entering it an ADDED, staying in it a MODIFIED.
    let web2 = relabel(&f, &web2, "db").await;
    assert_eq!(next(&mut w).await, pair("DELETED", "web-2"));
    relabel(&f, &db, "web").await;
    assert_eq!(next(&mut w).await, pair("ADDED", "db-2"));
    relabel(&f, &web2, "web").await;
    assert_eq!(next(&mut w).await, pair("ADDED", "web-2"));
}

#[tokio::test]
async fn a_resource_version_resumes_after_it_without_initial_events() {
    let f = fixture();
    let first = create(&f, "r1", "web").await;
    let rv: i64 = first["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("resourceVersion");
    create(&f, "r2", "web").await;
    let request = WatchRequest {
        revision: Some(rv),
        ..WatchRequest::default()
    };
    let mut w = f
        .registry
        .watch(def(), request, f.source.clone())
        .await
        .expect("watch");
    assert_eq!(next(&mut w).await, pair("ADDED", "r2"));
    relabel(&f, &first, "db").await;
    assert_eq!(next(&mut w).await, pair("MODIFIED", "r1"));
}
