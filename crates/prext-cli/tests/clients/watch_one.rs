//! Watch of one object by its path. kube-apiserver serves the deprecated
//! `/apis/G/V/watch/[namespaces/NS/]PLURAL/NAME` (what Ruby kubeclient's `watch_*(name:)`
//! requests) as a watch restricted to that name (`listOpts` of
//! k8s.io/apiserver/pkg/endpoints/handlers/get.go adds the `metadata.name` field selector);
//! prext does the same for `GET …/NAME?watch=true`.

use crate::common::http::{get, patch, post};
use crate::common::samples::{report, rv, Kind, CEPHR, CPOLR, CREPS, EPHR, POLR, REPS};
use crate::common::TestServer;
use crate::{events, typed_names};

const KINDS: [Kind; 6] = [POLR, CPOLR, REPS, CREPS, EPHR, CEPHR];

/// `/apis/G/V/watch/…` for the item path of `kind`.
fn legacy_watch(kind: Kind, ns: &str, name: &str) -> String {
    let item = kind.item(Some(ns), name);
    let prefix = format!("/apis/{}/{}/", kind.group, kind.version);
    let rest = item
        .strip_prefix(&prefix)
        .expect("item path under its group/version");
    format!("{prefix}watch/{rest}")
}

fn legacy_watch_collection(kind: Kind, ns: &str) -> String {
    let coll = kind.collection(Some(ns));
    let prefix = format!("/apis/{}/{}/", kind.group, kind.version);
    format!(
        "{prefix}watch/{}",
        coll.strip_prefix(&prefix).expect("collection path")
    )
}

async fn label(client: &kube::Client, kind: Kind, ns: &str, name: &str, value: &str) -> u64 {
    let body = serde_json::json!({"metadata": {"labels": {"step": value}}});
    rv(&patch(
        client,
        &kind.item(Some(ns), name),
        "application/merge-patch+json",
        &body,
    )
    .await
    .expect(200)
    .json())
}

#[tokio::test]
async fn watch_of_one_object_by_path_for_every_kind() {
    let server = TestServer::start();
    let client = server.client().await;
    for kind in KINDS {
        let ns = "w1";
        let mut start = 0;
        for name in ["a", "b"] {
            start = rv(
                &post(&client, &kind.collection(Some(ns)), &report(kind, ns, name, &[]))
                    .await
                    .expect(201)
                    .json(),
            );
        }
        label(&client, kind, ns, "b", "1").await;
        label(&client, kind, ns, "a", "1").await;
        label(&client, kind, ns, "b", "2").await;

        // Ruby kubeclient: the legacy watch path with the name, with and without a version.
        for path in [
            legacy_watch(kind, ns, "a"),
            format!("{}?watch=true", kind.item(Some(ns), "a")),
        ] {
            let from_start = get(
                &client,
                &format!("{path}{}resourceVersion={start}&timeoutSeconds=1", sep(&path)),
            )
            .await
            .expect(200);
            assert!(from_start
                .header("content-type")
                .unwrap_or_default()
                .starts_with("application/json"));
            assert_eq!(
                typed_names(&events(&from_start.text())),
                [("MODIFIED".to_string(), "a".to_string())],
                "{} {path}",
                kind.kind
            );
            let current = get(&client, &format!("{path}{}timeoutSeconds=1", sep(&path)))
                .await
                .expect(200);
            assert_eq!(
                typed_names(&events(&current.text())),
                [("ADDED".to_string(), "a".to_string())],
                "{} {path}: the current state of that object only",
                kind.kind
            );
        }
        // A field selector naming another object is refused, as upstream refuses it.
        get(
            &client,
            &format!(
                "{}?fieldSelector=metadata.name%3Db&timeoutSeconds=1",
                legacy_watch(kind, ns, "a")
            ),
        )
        .await
        .expect_status(400, "BadRequest");
        // The legacy collection path is a watch of the whole collection.
        let all = get(
            &client,
            &format!("{}?timeoutSeconds=1", legacy_watch_collection(kind, ns)),
        )
        .await
        .expect(200);
        let mut names: Vec<String> = typed_names(&events(&all.text()))
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"], "{}", kind.kind);
    }
    // Without the watch parameter the path is an ordinary get.
    let got = get(&client, &POLR.item(Some("w1"), "a")).await.expect(200).json();
    assert_eq!(got["kind"], "PolicyReport");
}

fn sep(path: &str) -> &'static str {
    if path.contains('?') {
        "&"
    } else {
        "?"
    }
}

/// kubectl `get NAME -w` and kube-rs watch one object through the collection with a field
/// selector; both see that object's changes only.
#[tokio::test]
async fn kubectl_and_kube_rs_watch_one_object() {
    use futures::TryStreamExt;
    use kube::api::{Api, DynamicObject, WatchEvent, WatchParams};
    use kube::discovery::ApiResource;

    let server = TestServer::start();
    let client = server.client().await;
    for name in ["a", "b"] {
        post(
            &client,
            &POLR.collection(Some("w2")),
            &report(POLR, "w2", name, &[]),
        )
        .await
        .expect(201);
    }
    let mut watch = server.kubectl_background(&["get", "polr", "a", "-n", "w2", "-w", "-o", "name"]);
    let wait = std::time::Duration::from_secs(20);
    let is_a = |l: &str| l.trim() == "policyreport.wgpolicyk8s.io/a";
    watch.expect_line(wait, "the object itself", is_a);
    label(&client, POLR, "w2", "b", "1").await;
    label(&client, POLR, "w2", "a", "1").await;
    let next = watch.next_line(wait);
    assert!(is_a(&next), "only a's changes reach the watch: {next:?}");

    let resource = ApiResource {
        group: POLR.group.into(),
        version: POLR.version.into(),
        api_version: POLR.api_version(),
        kind: POLR.kind.into(),
        plural: POLR.plural.into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "w2", &resource);
    let params = WatchParams::default().fields("metadata.name=a").timeout(1);
    let seen: Vec<String> = api
        .watch(&params, "0")
        .await
        .expect("watch")
        .try_collect::<Vec<_>>()
        .await
        .expect("events")
        .into_iter()
        .filter_map(|e| match e {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => o.metadata.name,
            _ => None,
        })
        .collect();
    assert_eq!(seen, ["a"]);
}
