//! Standalone mode: prext is the whole API a developer's kubectl sees, so it answers what
//! kube-apiserver would: `kubectl auth can-i` (SelfSubjectAccessReview), `kubectl auth whoami`
//! (SelfSubjectReview), `kubectl get ns`, `kubectl describe` (its events request) and
//! `kubectl version` (no skew warning: kubectl/pkg/cmd/version/skew_warning.go).

use serde_json::Value;

use crate::common::http::post;
use crate::common::samples::{report, CPOLR, POLR};
use crate::common::TestServer;

async fn seed(server: &TestServer) {
    let client = server.client().await;
    for (ns, name) in [("team-b", "r1"), ("team-a", "r1"), ("team-a", "r2")] {
        post(&client, &POLR.collection(Some(ns)), &report(POLR, ns, name, &[]))
            .await
            .expect(201);
    }
    post(&client, &CPOLR.collection(None), &report(CPOLR, "", "c1", &[]))
        .await
        .expect(201);
}

#[tokio::test]
async fn kubectl_auth_can_i_and_whoami() {
    let server = TestServer::start();
    assert_eq!(
        server
            .kubectl_ok(&["auth", "can-i", "create", "policyreports", "-n", "team-a"])
            .trim(),
        "yes"
    );
    assert_eq!(
        server
            .kubectl_ok(&["auth", "can-i", "delete", "clusterpolicyreports"])
            .trim(),
        "yes"
    );
    let list = server.kubectl_ok(&["auth", "can-i", "--list"]);
    assert!(list.contains("*.*"), "{list}");

    let whoami: Value =
        serde_json::from_str(&server.kubectl_ok(&["auth", "whoami", "-o", "json"])).expect("whoami JSON");
    assert_eq!(whoami["kind"], "SelfSubjectReview");
    assert_eq!(whoami["apiVersion"], "authentication.k8s.io/v1");
    // The admin client certificate: CN prext-admin, O system:masters.
    assert_eq!(
        whoami["status"]["userInfo"]["username"], "prext-admin",
        "{whoami}"
    );
    let groups = whoami["status"]["userInfo"]["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g == "system:masters"), "{whoami}");
    assert!(groups.iter().any(|g| g == "system:authenticated"), "{whoami}");
    let table = server.kubectl_ok(&["auth", "whoami"]);
    assert!(table.contains("prext-admin"), "{table}");

    // The raw request of a client (Python's `create_self_subject_access_review`).
    let client = server.client().await;
    let review = post(
        &client,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &serde_json::json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"group": "wgpolicyk8s.io", "resource": "policyreports", "verb": "list", "namespace": "x"}}
        }),
    )
    .await
    .expect(201)
    .json();
    assert_eq!(review["status"]["allowed"], true);
    assert_eq!(review["spec"]["resourceAttributes"]["resource"], "policyreports");
}

#[tokio::test]
async fn kubectl_get_ns_lists_the_namespaces_holding_reports() {
    let server = TestServer::start();
    seed(&server).await;
    let out = server.kubectl_ok(&["get", "ns"]);
    let all_rows = crate::common::table_rows(&out);
    let rows = &all_rows[1..];
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["team-a", "team-b"], "{out}");
    assert_eq!(
        crate::common::table_header(&out)[..2],
        ["NAME", "STATUS"],
        "{out}"
    );
    assert_eq!(rows[0][1], "Active");
    let json: Value = serde_json::from_str(&server.kubectl_ok(&["get", "namespaces", "-o", "json"])).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(
        server.kubectl_ok(&["get", "ns", "team-a", "-o", "name"]).trim(),
        "namespace/team-a"
    );
}

#[tokio::test]
async fn kubectl_describe_and_events() {
    let server = TestServer::start();
    seed(&server).await;
    let out = server.kubectl(&["describe", "polr", "r1", "-n", "team-a"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Name:") && stdout.contains("r1"), "{stdout}");
    assert!(stdout.contains("Events:"), "{stdout}");
    assert!(
        !stderr.contains("404") && !stderr.contains("the server could not find"),
        "{stderr}"
    );
    let client = server.client().await;
    for path in [
        "/api/v1/namespaces/team-a/events?fieldSelector=involvedObject.name%3Dr1&limit=500",
        "/apis/events.k8s.io/v1/namespaces/team-a/events",
        "/apis/events.k8s.io/v1/events",
    ] {
        let list = crate::common::http::get(&client, path).await.expect(200).json();
        assert_eq!(list["kind"], "EventList", "{path}");
        assert_eq!(list["items"], serde_json::json!([]), "{path}");
    }
}

#[tokio::test]
async fn kubectl_version_has_no_skew_warning() {
    let server = TestServer::start();
    let out = server.kubectl(&["version"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.to_lowercase().contains("warning"), "{stderr}");
    let server_line = stdout
        .lines()
        .find(|l| l.starts_with("Server Version:"))
        .expect("server version");
    assert!(
        server_line.ends_with(&format!("+prext.{}", env!("CARGO_PKG_VERSION"))),
        "prext's own version stays visible: {server_line}"
    );
    let client = server.client().await;
    let version = crate::common::http::get(&client, "/version")
        .await
        .expect(200)
        .json();
    assert_eq!(version["prextVersion"], env!("CARGO_PKG_VERSION"));
    let info = client.apiserver_version().await.expect("kube-rs reads /version");
    assert_eq!(info.major, "1");

    let own = std::process::Command::new(env!("CARGO_BIN_EXE_prext"))
        .arg("--version")
        .output()
        .expect("prext --version");
    assert_eq!(
        String::from_utf8_lossy(&own.stdout).trim(),
        format!("prext {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn discovery_lists_the_standalone_resources() {
    let server = TestServer::start();
    let out = server.kubectl_ok(&["api-resources", "-o", "name"]);
    for resource in ["namespaces", "policyreports.wgpolicyk8s.io"] {
        assert!(out.lines().any(|l| l == resource), "{resource} missing:\n{out}");
    }
    // The standalone groups are served at their own discovery paths; `/apis` and `/api/v1`
    // keep their earlier documents (what earlier clients and tests rely on).
    let client = server.client().await;
    for (group, resources) in [
        ("authentication.k8s.io", &["selfsubjectreviews"][..]),
        (
            "authorization.k8s.io",
            &["selfsubjectaccessreviews", "selfsubjectrulesreviews"][..],
        ),
        ("events.k8s.io", &["events"][..]),
    ] {
        let doc = crate::common::http::get(&client, &format!("/apis/{group}"))
            .await
            .expect(200)
            .json();
        assert_eq!(doc["preferredVersion"]["groupVersion"], format!("{group}/v1"));
        let list = crate::common::http::get(&client, &format!("/apis/{group}/v1"))
            .await
            .expect(200)
            .json();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(names, resources, "{list}");
    }
}
