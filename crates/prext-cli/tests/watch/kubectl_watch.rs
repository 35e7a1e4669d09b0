//! kubectl watching: `get -w` as a Table stream, `get -w -o json`, and `wait --for=delete`.

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::samples::POLR;
use crate::common::TestServer;
use crate::{api, dynamic, EVENT_TIMEOUT};

fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[tokio::test]
async fn kubectl_get_watch_table_sees_create_update_delete() {
    let server = TestServer::start();
    let client = server.client().await;
    let api = api(&client, POLR, "kw");
    let pp = PostParams::default();
    api.create(&pp, &dynamic(POLR, "kw", "first", &[]))
        .await
        .expect("create first");

    let mut watch = server.kubectl_background(&["get", "polr", "-n", "kw", "-w", "--output-watch-events"]);
    let header = watch.next_line(EVENT_TIMEOUT);
    assert_eq!(
        cells(&header),
        ["EVENT", "NAME", "KIND", "NAME", "PASS", "FAIL", "WARN", "ERROR", "SKIP", "AGE"]
    );
    let line = watch.expect_line(EVENT_TIMEOUT, "ADDED first", |l| l.contains("first"));
    assert_eq!(cells(&line)[..5], ["ADDED", "first", "Pod", "nginx", "3"]);

    api.create(&pp, &dynamic(POLR, "kw", "second", &[]))
        .await
        .expect("create second");
    let line = watch.expect_line(EVENT_TIMEOUT, "ADDED second", |l| l.contains("second"));
    assert_eq!(cells(&line)[..2], ["ADDED", "second"]);

    let patch = Patch::Merge(json!({"summary": {"pass": 77}}));
    api.patch("second", &PatchParams::default(), &patch)
        .await
        .expect("patch");
    let line = watch.expect_line(EVENT_TIMEOUT, "MODIFIED second", |l| l.contains("second"));
    assert_eq!(cells(&line)[..5], ["MODIFIED", "second", "Pod", "nginx", "77"]);

    api.delete("second", &DeleteParams::default())
        .await
        .expect("delete");
    let line = watch.expect_line(EVENT_TIMEOUT, "DELETED second", |l| l.contains("second"));
    assert_eq!(cells(&line)[..2], ["DELETED", "second"]);
}

#[tokio::test]
async fn kubectl_get_watch_json_sees_create_update_delete() {
    let server = TestServer::start();
    let client = server.client().await;
    let api = api(&client, POLR, "kj");
    let mut watch = server.kubectl_background(&[
        "get",
        "polr",
        "-n",
        "kj",
        "-w",
        "-o",
        "json",
        "--output-watch-events",
    ]);
    // kubectl lists, then watches from the list RV: whether the create lands before the list
    // or after it, it is reported once as ADDED.
    let pp = PostParams::default();
    api.create(&pp, &dynamic(POLR, "kj", "x", &[]))
        .await
        .expect("create");
    let added = watch.next_json(EVENT_TIMEOUT);
    assert_eq!(added["type"], "ADDED", "{added}");
    assert_eq!(added["object"]["kind"], "PolicyReport");
    assert_eq!(added["object"]["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(added["object"]["metadata"]["name"], "x");
    assert_eq!(
        added["object"]["results"][0]["policy"], "require-labels",
        "full objects, not rows"
    );

    let patch = Patch::Merge(json!({"summary": {"warn": 4}}));
    api.patch("x", &PatchParams::default(), &patch)
        .await
        .expect("patch");
    let modified = watch.next_json(EVENT_TIMEOUT);
    assert_eq!(modified["type"], "MODIFIED", "{modified}");
    assert_eq!(modified["object"]["summary"]["warn"], 4);

    api.delete("x", &DeleteParams::default()).await.expect("delete");
    let deleted = watch.next_json(EVENT_TIMEOUT);
    assert_eq!(deleted["type"], "DELETED", "{deleted}");
    assert_eq!(deleted["object"]["metadata"]["name"], "x");
    let rv = |v: &serde_json::Value| {
        v["object"]["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .expect("numeric RV")
    };
    assert!(
        rv(&deleted) > rv(&modified),
        "DELETED carries the deletion revision"
    );
}

#[tokio::test]
async fn kubectl_wait_for_delete() {
    let server = TestServer::start();
    let client = server.client().await;
    let api = api(&client, POLR, "wait");
    api.create(&PostParams::default(), &dynamic(POLR, "wait", "doomed", &[]))
        .await
        .expect("create");
    let mut wait = server.kubectl_background(&[
        "wait",
        "--for=delete",
        "polr/doomed",
        "-n",
        "wait",
        "--timeout=60s",
        "-v=6",
    ]);
    // Delete only once kubectl is watching, so the watch path (not a GET) sees it.
    wait.expect_stderr(EVENT_TIMEOUT, "kubectl's watch request", |l| {
        l.contains("watch=true") || l.contains("watch=1")
    });
    api.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete");
    let status = wait.wait(EVENT_TIMEOUT);
    let out = wait.remaining_stdout();
    assert!(status.success(), "kubectl wait failed: {out}");
    assert!(
        out.contains("policyreport.wgpolicyk8s.io/doomed condition met"),
        "{out}"
    );
}
