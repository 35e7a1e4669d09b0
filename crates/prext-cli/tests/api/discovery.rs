//! Authentication, health endpoints, the PKI and kubeconfig, discovery (legacy and
//! aggregated v2) and OpenAPI v3.

use serde_json::{json, Value};

use crate::common::http::{get, get_as, ACCEPT_DISCOVERY_V2};
use crate::common::samples::{ALL_KINDS, POLR};
use crate::common::TestServer;

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

#[tokio::test]
async fn requests_without_client_certificate_get_401_but_health_is_open() {
    let server = TestServer::start();
    let anon = server.anonymous_client().await;
    for path in [
        "/apis",
        "/apis/wgpolicyk8s.io/v1alpha2",
        &POLR.collection(Some("default")),
        "/openapi/v3",
    ] {
        let status = get(&anon, path).await.expect_status(401, "Unauthorized");
        assert_eq!(status["kind"], "Status", "{path}");
    }
    for path in ["/healthz", "/livez", "/readyz"] {
        let res = get(&anon, path).await.expect(200);
        assert_eq!(res.text().trim(), "ok", "{path}");
    }
    let admin = server.client().await;
    get(&admin, "/apis").await.expect(200);
}

#[tokio::test]
async fn first_start_writes_pki_and_a_working_kubeconfig() {
    let server = TestServer::start();
    assert_eq!(server.kubeconfig, server.data_dir().join("kubeconfig"));
    let text = std::fs::read_to_string(&server.kubeconfig).expect("read kubeconfig");
    let kc: Value = serde_norway::from_str(&text).expect("kubeconfig is YAML");
    assert_eq!(kc["clusters"][0]["cluster"]["server"], server.url.as_str());
    assert!(
        kc["clusters"][0]["cluster"]["certificate-authority-data"].is_string(),
        "{kc}"
    );
    assert!(
        kc["users"][0]["user"]["client-certificate-data"].is_string(),
        "{kc}"
    );
    assert!(kc["users"][0]["user"]["client-key-data"].is_string(), "{kc}");
    let files: Vec<String> = std::fs::read_dir(server.data_dir())
        .expect("list data dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(
        files.len() >= 4,
        "CA, serving cert, client cert and kubeconfig in {files:?}"
    );
    // The serving certificate is valid for 127.0.0.1: kubectl verifies it against the CA.
    let out = server.kubectl_ok(&["get", "--raw", "/apis/wgpolicyk8s.io"]);
    let group: Value = serde_json::from_str(&out).expect("APIGroup JSON");
    assert_eq!(group["kind"], "APIGroup");
}

#[tokio::test]
async fn legacy_discovery_documents() {
    let server = TestServer::start();
    let client = server.client().await;
    // Standalone prext announces a minimal core group (read-only namespaces) so that kubectl
    // can resolve namespaces and `kind: List` files.
    let core = get(&client, "/api").await.expect(200).json();
    assert_eq!(core["versions"], serde_json::json!(["v1"]));
    let v1 = get(&client, "/api/v1").await.expect(200).json();
    assert_eq!(v1["resources"][0]["name"], "namespaces");
    assert_eq!(v1["resources"][0]["verbs"], serde_json::json!(["get"]));
    let ns = get(&client, "/api/v1/namespaces/team-x").await.expect(200).json();
    assert_eq!(ns["status"]["phase"], "Active");
    get(&client, "/api/v1/namespaces/Not_Valid")
        .await
        .expect_status(404, "NotFound");
    let version = get(&client, "/version").await.expect(200).json();
    assert!(version["gitVersion"].is_string(), "{version}");

    let apis = get(&client, "/apis").await.expect(200).json();
    assert_eq!(apis["kind"], "APIGroupList");
    assert_eq!(apis["apiVersion"], "v1");
    let names: Vec<&str> = apis["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "wgpolicyk8s.io",
            "openreports.io",
            "reports.kyverno.io",
            "prext.demo",
            "results.prext.io"
        ]
    );
    assert_eq!(
        apis["groups"][0]["preferredVersion"],
        json!({"groupVersion": "wgpolicyk8s.io/v1alpha2", "version": "v1alpha2"})
    );

    let group = get(&client, "/apis/wgpolicyk8s.io").await.expect(200).json();
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(
        group["versions"],
        json!([{"groupVersion": "wgpolicyk8s.io/v1alpha2", "version": "v1alpha2"}])
    );
    get(&client, "/apis/nope.example.com")
        .await
        .expect_status(404, "NotFound");

    let list = get(&client, "/apis/wgpolicyk8s.io/v1alpha2")
        .await
        .expect(200)
        .json();
    assert_eq!(list["kind"], "APIResourceList");
    assert_eq!(list["groupVersion"], "wgpolicyk8s.io/v1alpha2");
    let polr = &list["resources"][0];
    assert_eq!(polr["name"], "policyreports");
    assert_eq!(polr["singularName"], "policyreport");
    assert_eq!(polr["namespaced"], true);
    assert_eq!(polr["kind"], "PolicyReport");
    assert_eq!(polr["verbs"], json!(VERBS));
    assert_eq!(polr["shortNames"], json!(["polr"]));
    assert_eq!(list["resources"][1]["name"], "clusterpolicyreports");
    assert_eq!(list["resources"][1]["namespaced"], false);
    assert_eq!(list["resources"].as_array().map(Vec::len), Some(2));

    let kyverno = get(&client, "/apis/reports.kyverno.io/v1")
        .await
        .expect(200)
        .json();
    for r in kyverno["resources"].as_array().expect("resources") {
        assert_eq!(r["categories"], json!(["kyverno"]), "{r}");
    }
}

#[tokio::test]
async fn aggregated_discovery_v2_with_etag() {
    let server = TestServer::start();
    let client = server.client().await;
    let res = get_as(&client, "/apis", ACCEPT_DISCOVERY_V2).await.expect(200);
    assert_eq!(res.header("content-type").as_deref(), Some(ACCEPT_DISCOVERY_V2));
    assert_eq!(res.header("vary").as_deref(), Some("Accept"));
    let etag = res.header("etag").expect("ETag header");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "quoted ETag {etag}"
    );
    let doc = res.json();
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
    let mut served = 0;
    for group in doc["items"].as_array().expect("items") {
        for version in group["versions"].as_array().expect("versions") {
            assert_eq!(version["freshness"], "Current");
            for r in version["resources"].as_array().expect("resources") {
                if group["metadata"]["name"] == "results.prext.io" {
                    // The read-only result query API (docs/results-api.md).
                    // A summary is readable by name (its group, docs/results-api.md).
                    let want = if r["resource"] == "policyresults" || r["resource"] == "resultsummaries" {
                        json!(["get", "list"])
                    } else {
                        json!(["list"])
                    };
                    assert_eq!(r["verbs"], want, "{r}");
                    continue;
                }
                served += 1;
                assert_eq!(r["responseKind"]["group"], group["metadata"]["name"], "{r}");
                assert!(
                    r["responseKind"]["kind"].is_string(),
                    "responseKind always set: {r}"
                );
                assert_eq!(r["verbs"], json!(VERBS));
                assert!(r["scope"] == "Namespaced" || r["scope"] == "Cluster", "{r}");
            }
        }
    }
    assert_eq!(served, ALL_KINDS.len());

    let again = crate::common::http::Req::new(&client, http::Method::GET, "/apis")
        .header("accept", ACCEPT_DISCOVERY_V2)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect(304);
    assert!(again.body.is_empty());

    // kube-rs's own discovery, aggregated and per group, resolves every kind. The core
    // group "" is excluded: `/api` is kube-apiserver's, and prext answers it 404.
    let aggregated = kube::Discovery::new(client.clone())
        .exclude(&[""])
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    let legacy = kube::Discovery::new(client.clone())
        .exclude(&[""])
        .run()
        .await
        .expect("discovery");
    for discovery in [aggregated, legacy] {
        for kind in ALL_KINDS {
            let (resource, caps) = discovery
                .get(kind.group)
                .and_then(|g| g.recommended_kind(kind.kind))
                .unwrap_or_else(|| panic!("kube discovery misses {}", kind.kind));
            assert_eq!(resource.plural, kind.plural);
            assert_eq!(caps.scope == kube::discovery::Scope::Namespaced, kind.namespaced);
            assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
        }
    }
}

#[tokio::test]
async fn openapi_v3_root_and_group_version_document() {
    let server = TestServer::start();
    let client = server.client().await;
    let root = get(&client, "/openapi/v3").await.expect(200).json();
    let paths = root["paths"].as_object().expect("paths");
    let mut keys: Vec<&String> = paths.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "apis/openreports.io/v1alpha1",
            "apis/prext.demo/v1alpha1",
            "apis/reports.kyverno.io/v1",
            "apis/results.prext.io/v1alpha1",
            "apis/wgpolicyk8s.io/v1alpha2"
        ],
        "only our group versions, nothing kube-apiserver serves itself"
    );
    let url = paths["apis/wgpolicyk8s.io/v1alpha2"]["serverRelativeURL"]
        .as_str()
        .expect("serverRelativeURL");
    assert!(
        url.starts_with("/openapi/v3/apis/wgpolicyk8s.io/v1alpha2?hash="),
        "{url}"
    );

    let res = get(&client, url).await.expect(200);
    assert!(res.header("etag").is_some(), "ETag on the GV document");
    let doc = res.json();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.0")),
        "{}",
        doc["openapi"]
    );
    let gvk = json!({"group": "wgpolicyk8s.io", "version": "v1alpha2", "kind": "PolicyReport"});
    let item = &doc["paths"]["/apis/wgpolicyk8s.io/v1alpha2/namespaces/{namespace}/policyreports/{name}"];
    assert_eq!(item["get"]["x-kubernetes-group-version-kind"], gvk, "{item}");
    let patch = &item["patch"];
    let content: Vec<&String> = patch["requestBody"]["content"]
        .as_object()
        .expect("patch content types")
        .keys()
        .collect();
    assert!(
        content.iter().any(|c| *c == "application/merge-patch+json"),
        "{content:?}"
    );
    assert!(
        content.iter().any(|c| *c == "application/json-patch+json"),
        "{content:?}"
    );
    assert!(
        !content.iter().any(|c| c.contains("strategic-merge")),
        "no SMP, so kubectl apply uses JSON merge patch: {content:?}"
    );
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(item["parameters"].as_array().into_iter().flatten())
        .filter_map(|p| p["name"].as_str().or_else(|| p["$ref"].as_str()))
        .collect();
    assert!(
        params.iter().any(|p| p.contains("fieldValidation")),
        "patch lists fieldValidation: {params:?}"
    );
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let with_gvk = schemas.values().find(|s| {
        s["x-kubernetes-group-version-kind"]
            .as_array()
            .is_some_and(|a| a.contains(&gvk))
    });
    let schema = with_gvk.expect("a schema tagged with the PolicyReport GVK");
    assert!(schema["properties"]["results"].is_object(), "{schema}");

    let stale = get(&client, "/openapi/v3/apis/wgpolicyk8s.io/v1alpha2?hash=0000").await;
    assert_eq!(stale.status, 301, "a stale hash redirects: {}", stale.text());
    assert_eq!(stale.header("location").as_deref(), Some(url));
}
