//! Benchmark payloads: real report samples from `../shared/reference/samples`, turned into
//! served kinds with distinct names.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

/// The shared samples folder, next to the repository.
pub fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/samples")
}

/// A report template: a PolicyReport body whose name is replaced per object.
pub struct Payload {
    pub label: &'static str,
    pub template: Value,
}

impl Payload {
    /// The object `i`, in namespace `ns`; `updated` adds a label (what the update benchmarks write).
    fn value(&self, ns: &str, i: usize, updated: bool) -> Value {
        let mut v = self.template.clone();
        v["metadata"] = serde_json::json!({"name": format!("bench-{i:07}"), "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "prext-bench", "bench/index": (i % 100).to_string()}});
        if updated {
            v["metadata"]["labels"]["bench/updated"] = Value::from("true");
        }
        v
    }

    /// The object `i`, in namespace `ns`, as JSON bytes.
    pub fn object(&self, ns: &str, i: usize) -> Vec<u8> {
        serde_json::to_vec(&self.value(ns, i, false)).unwrap_or_default()
    }

    /// The object `i` of namespace `bench` with one more label, as JSON bytes.
    pub fn updated(&self, i: usize) -> Vec<u8> {
        serde_json::to_vec(&self.value("bench", i, true)).unwrap_or_default()
    }

    /// [`Self::updated`] based on `resource_version` (the body of a PUT).
    pub fn updated_at(&self, i: usize, resource_version: &str) -> Vec<u8> {
        let mut v = self.value("bench", i, true);
        v["metadata"]["resourceVersion"] = Value::from(resource_version);
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Size of one object in bytes.
    pub fn size(&self) -> usize {
        self.object("bench", 0).len()
    }
}

fn load_first_doc(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let text = text.trim_start_matches('\u{feff}');
    let doc: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text)?
    } else {
        let first = text.split("\n---").next().unwrap_or(text);
        serde_norway::from_str(first)?
    };
    // Lists (kube-bench, kubearmor) hold the report as their first item.
    Ok(
        match doc.get("items").and_then(Value::as_array).and_then(|a| a.first()) {
            Some(item) => item.clone(),
            None => doc,
        },
    )
}

/// Turns any report sample into a wgpolicyk8s.io/v1alpha2 PolicyReport template.
fn as_policy_report(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.insert("apiVersion".into(), Value::from("wgpolicyk8s.io/v1alpha2"));
        map.insert("kind".into(), Value::from("PolicyReport"));
        if let Some(spec) = map.remove("spec") {
            // Old Kyverno report kinds keep results/summary under spec.
            if let Some(s) = spec.as_object() {
                for (k, val) in s {
                    map.insert(k.clone(), val.clone());
                }
            }
        }
        map.remove("status");
    }
    v
}

/// The three sizes the benchmarks use: about 0.5 KB, 7 KB and 197 KB.
pub fn load(which: &str) -> anyhow::Result<Payload> {
    let dir = samples_dir();
    let (label, file) = match which {
        "small" => ("0.5 KB", "reports-server_testdata_report-3.yaml"),
        "medium" => (
            "7 KB",
            "kyverno_docs-dev-reports_BackgroundScanReport_pod_PSS-restricted.yaml",
        ),
        "large" => ("197 KB", "wgpp_kube-bench-adapter_policy-report-list.yaml"),
        other => anyhow::bail!("unknown payload {other:?}: small, medium or large"),
    };
    let template = as_policy_report(load_first_doc(&dir.join(file))?);
    Ok(Payload { label, template })
}
