//! The result-API test data: the repository's `testdata/` reports (kube-bench, trivy, Falco,
//! Kyverno) created through kubectl as several report kinds, and the oracle: every result as a
//! [`Row`], computed from the objects sent, against which the API's answers are compared.

#![allow(dead_code)] // each test target uses a different subset

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::common::samples::{adapt, load_testdata, manifest, Kind, CPOLR, EPHR, POLR, REPS};
use crate::common::TestServer;

/// One result as the oracle sees it.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub namespace: String,
    pub report: String,
    pub index: usize,
    pub report_kind: String,
    pub policy: String,
    pub result: String,
    pub severity: String,
    pub category: String,
    pub message: String,
    pub subject_kind: String,
    pub score: Option<f64>,
}

/// The created reports and their results.
pub struct Loaded {
    pub rows: Vec<Row>,
}

/// `critical` 5 … `info` 1, else 0.
pub fn rank(severity: Option<&str>) -> u8 {
    match severity {
        Some("critical") => 5,
        Some("high") => 4,
        Some("medium") => 3,
        Some("low") => 2,
        Some("info") => 1,
        _ => 0,
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The test data objects, adapted: `(kind, namespace, name, object)`.
pub fn objects() -> Vec<(Kind, &'static str, &'static str, Value)> {
    let bench = load_testdata("kube-bench-list.yaml").remove(0);
    let trivy_json = load_testdata("trivy-vulnerability.json").remove(0);
    let trivy = load_testdata("trivy-vulnerability.yaml").remove(0);
    let mut falco = load_testdata("falco.yaml");
    let falco_cluster = falco.remove(1);
    let falco_ns = falco.remove(0);
    let pss = load_testdata("kyverno-ephemeral.yaml").remove(0);
    vec![
        (
            POLR,
            "bench",
            "kube-bench",
            adapt(&bench, POLR, "bench", "kube-bench"),
        ),
        (
            REPS,
            "team-a",
            "trivy-zipkin",
            adapt(&trivy_json, REPS, "team-a", "trivy-zipkin"),
        ),
        (
            POLR,
            "team-a",
            "trivy-vuln-redis",
            adapt(&trivy, POLR, "team-a", "trivy-vuln-redis"),
        ),
        (POLR, "team-b", "falco", adapt(&falco_ns, POLR, "team-b", "falco")),
        (
            CPOLR,
            "",
            "falco-cluster",
            adapt(&falco_cluster, CPOLR, "", "falco-cluster"),
        ),
        (
            EPHR,
            "kyverno-pss",
            "pss-pod",
            adapt(&pss, EPHR, "kyverno-pss", "pss-pod"),
        ),
    ]
}

/// The oracle rows of created objects.
pub fn rows(objects: &[(Kind, &str, &str, Value)]) -> Vec<Row> {
    let mut out = Vec::new();
    for (kind, ns, name, obj) in objects {
        let parent = if kind.spec_layout { &obj["spec"] } else { obj };
        let scope_kind = if kind.spec_layout {
            &parent["owner"]["kind"]
        } else {
            &parent["scope"]["kind"]
        };
        for (index, r) in parent["results"].as_array().into_iter().flatten().enumerate() {
            let subject = match r["resources"].as_array().and_then(|a| a.first()) {
                Some(first) => text(&first["kind"]),
                None => text(scope_kind),
            };
            out.push(Row {
                name: format!("{}.{name}.{index}", kind.short),
                namespace: ns.to_string(),
                report: name.to_string(),
                index,
                report_kind: kind.kind.to_owned(),
                policy: text(&r["policy"]),
                result: text(&r["result"]),
                severity: text(&r["severity"]),
                category: text(&r["category"]),
                message: text(&r["message"]),
                subject_kind: subject,
                score: r["properties"]["score"].as_str().and_then(|s| s.parse().ok()),
            });
        }
    }
    out
}

impl Loaded {
    /// Creates every object with `kubectl create -f -`.
    pub fn create(server: &TestServer) -> Loaded {
        let objects = objects();
        let values: Vec<Value> = objects.iter().map(|(_, _, _, o)| o.clone()).collect();
        let out = server.kubectl_stdin_ok(&["create", "-f", "-"], &manifest(&values));
        assert_eq!(out.lines().count(), objects.len(), "{out}");
        Loaded { rows: rows(&objects) }
    }

    /// The names of the rows `keep` keeps.
    pub fn names(&self, keep: impl Fn(&Row) -> bool) -> BTreeSet<String> {
        self.rows
            .iter()
            .filter(|r| keep(r))
            .map(|r| r.name.clone())
            .collect()
    }
}

/// A data dir whose SQLite store already holds the objects (for a server started in
/// delegated mode, where creating through the API would need a namespace-serving cluster).
pub struct Preloaded {
    pub dir: tempfile::TempDir,
    pub rows: Vec<Row>,
    pub total: usize,
}

impl Preloaded {
    /// The result names of one namespace.
    pub fn names_in(&self, ns: &str) -> BTreeSet<String> {
        self.rows
            .iter()
            .filter(|r| r.namespace == ns)
            .map(|r| r.name.clone())
            .collect()
    }
}

/// Writes the objects straight into `<dir>/data/prext.db`.
pub async fn preload_store() -> Preloaded {
    use prext_store::{ObjectKey, ObjectWrite, Store};
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let db = data.join("prext.db");
    let store =
        tokio::task::spawn_blocking(move || prext_store::sqlite::SqliteStore::open(&db, Default::default()))
            .await
            .expect("open task")
            .expect("open store");
    let objects = objects();
    for (i, (kind, ns, name, obj)) in objects.iter().enumerate() {
        let def = prext_api::resources::find(kind.group, kind.version, kind.plural).expect("served kind");
        let mut body = obj.clone();
        let uid = format!("00000000-0000-4000-8000-{i:012}");
        body["metadata"]["uid"] = json!(uid);
        body["metadata"]["creationTimestamp"] = json!("2024-05-01T10:00:00Z");
        let write = ObjectWrite {
            key: ObjectKey::new(def.group_resource(), *ns, *name),
            uid,
            labels: Default::default(),
            created: "2024-05-01T10:00:00Z".into(),
            deleting: false,
            index: prext_api::report::index(def, &body),
            body,
        };
        store.create(write).await.expect("create");
    }
    store.close().await;
    let rows = rows(&objects);
    Preloaded {
        dir,
        total: rows.len(),
        rows,
    }
}
