//! Objects and helpers the checks are written with: realistic PolicyReports (their index
//! extracted by `prext_api::report::index`, as the server does) and list collection.

use std::collections::BTreeMap;

use prext_api::report;
use prext_api::resources;
use serde_json::{json, Value};

use crate::{ListItem, ListOptions, ListStream, ObjectKey, ObjectWrite, Store, StoredObject};

/// `policyreports.wgpolicyk8s.io`: a namespaced resource.
pub const POLR: &str = "policyreports.wgpolicyk8s.io";
/// `clusterpolicyreports.wgpolicyk8s.io`: a cluster-scoped resource.
pub const CPOLR: &str = "clusterpolicyreports.wgpolicyk8s.io";
/// `reports.openreports.io`: another namespaced resource, to check resources do not mix.
pub const REPS: &str = "reports.openreports.io";

/// A PolicyReport at `(resource, namespace, name)` with one passing result.
pub fn report(resource: &str, namespace: &str, name: &str) -> ObjectWrite {
    let mut metadata = json!({
        "name": name,
        "uid": format!("uid-{resource}-{namespace}-{name}"),
        "creationTimestamp": "2024-05-01T10:00:00Z",
    });
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    let body = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": if namespace.is_empty() { "ClusterPolicyReport" } else { "PolicyReport" },
        "metadata": metadata,
        "scope": {"apiVersion": "v1", "kind": "Namespace", "name": namespace},
        "summary": {"pass": 1},
        "results": [],
    });
    let mut w = ObjectWrite {
        key: ObjectKey::new(resource, namespace, name),
        uid: format!("uid-{resource}-{namespace}-{name}"),
        labels: BTreeMap::new(),
        created: "2024-05-01T10:00:00Z".into(),
        deleting: false,
        body,
        index: Default::default(),
    };
    set_results(&mut w, &[("require-labels", "pass")]);
    w
}

/// Sets the labels, in the body and in the write.
pub fn set_labels(w: &mut ObjectWrite, labels: &[(&str, &str)]) {
    w.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    w.body["metadata"]["labels"] = json!(w.labels);
}

/// Replaces the results with `(policy, result)` pairs, each about its own Pod, and
/// re-extracts the index.
pub fn set_results(w: &mut ObjectWrite, results: &[(&str, &str)]) {
    let namespace = w.key.namespace.clone();
    w.body["results"] = results
        .iter()
        .enumerate()
        .map(|(i, (policy, result))| {
            json!({
                "source": "kyverno",
                "policy": policy,
                "rule": "check",
                "result": result,
                "severity": "medium",
                "scored": true,
                "timestamp": {"seconds": 1714557600, "nanos": 0},
                "properties": {"index": i.to_string()},
                "resources": [
                    {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": format!("pod-{i}")}
                ],
            })
        })
        .collect();
    reindex(w);
}

/// A PolicyReport `namespace/name` whose results are the `(policy, result)` pairs (see
/// [`set_results`]), indexed.
pub fn with_results(namespace: &str, name: &str, results: &[(&str, &str)]) -> ObjectWrite {
    let mut w = report(POLR, namespace, name);
    set_results(&mut w, results);
    w
}

/// Recomputes the index from the body, as the server does before writing.
pub fn reindex(w: &mut ObjectWrite) {
    if let Some(def) = resources::find("wgpolicyk8s.io", "v1alpha2", "policyreports") {
        w.index = report::index(def, &w.body);
    }
}

/// The body as JSON.
pub fn body_json(obj: &StoredObject) -> Value {
    serde_json::from_slice(&obj.body)
        .unwrap_or_else(|e| panic!("stored body of {:?} is not JSON: {e}", obj.key))
}

/// `metadata.resourceVersion` of a stored body.
pub fn body_rv(obj: &StoredObject) -> String {
    body_json(obj)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("stored body of {:?} has no string resourceVersion", obj.key))
        .to_owned()
}

/// `body` with `metadata.resourceVersion` set, to compare with what a store returns.
pub fn stamped(body: &Value, revision: i64) -> Value {
    let mut body = body.clone();
    body["metadata"]["resourceVersion"] = json!(revision.to_string());
    body
}

/// Reads a whole list stream: its objects and whether it announced more.
pub async fn collect(mut stream: ListStream) -> (Vec<StoredObject>, bool) {
    let mut objects = Vec::new();
    let mut more = false;
    while let Some(item) = stream.items.recv().await {
        match item.unwrap_or_else(|e| panic!("list stream failed: {e}")) {
            ListItem::Object(obj) => {
                assert!(!more, "an object came after ListItem::More");
                objects.push(obj);
            }
            ListItem::More => {
                assert!(!more, "ListItem::More sent twice");
                more = true;
            }
        }
    }
    (objects, more)
}

/// Lists with `opts` and returns the `(namespace, name)` of every object.
pub async fn list_keys(store: &dyn Store, opts: ListOptions) -> Vec<(String, String)> {
    let stream = store
        .list(opts)
        .await
        .unwrap_or_else(|e| panic!("list failed: {e}"));
    let (objects, _) = collect(stream).await;
    objects
        .into_iter()
        .map(|o| (o.key.namespace, o.key.name))
        .collect()
}

/// `(namespace, name)` pairs from string slices.
pub fn keys(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(ns, n)| ((*ns).to_owned(), (*n).to_owned()))
        .collect()
}

/// Creates `w`, panicking with context on failure.
pub async fn create(store: &dyn Store, w: ObjectWrite) -> StoredObject {
    let key = w.key.clone();
    store
        .create(w)
        .await
        .unwrap_or_else(|e| panic!("create {key:?}: {e}"))
}

/// The store's revision, panicking with context on failure.
pub async fn revision(store: &dyn Store) -> i64 {
    store.revision().await.unwrap_or_else(|e| panic!("revision: {e}"))
}
