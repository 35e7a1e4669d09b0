//! The served kinds as test data, the shared real-world samples, and helpers that adapt a
//! sample to a served kind the way a user would (new apiVersion/kind/name/namespace, with
//! the server-populated metadata of the exported object removed).

use std::path::PathBuf;

use serde_json::{json, Map, Value};

/// One served kind, with what tests need to address it.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// The kubectl short name, or the fully qualified resource when there is none.
    pub short: &'static str,
    pub namespaced: bool,
    /// `results`/`summary` live under `spec` (reports.kyverno.io).
    pub spec_layout: bool,
}

/// wgpolicyk8s.io/v1alpha2 PolicyReport.
pub const POLR: Kind = Kind {
    group: "wgpolicyk8s.io",
    version: "v1alpha2",
    kind: "PolicyReport",
    plural: "policyreports",
    short: "polr",
    namespaced: true,
    spec_layout: false,
};
/// wgpolicyk8s.io/v1alpha2 ClusterPolicyReport.
pub const CPOLR: Kind = Kind {
    group: "wgpolicyk8s.io",
    version: "v1alpha2",
    kind: "ClusterPolicyReport",
    plural: "clusterpolicyreports",
    short: "cpolr",
    namespaced: false,
    spec_layout: false,
};
/// openreports.io/v1alpha1 Report.
pub const REPS: Kind = Kind {
    group: "openreports.io",
    version: "v1alpha1",
    kind: "Report",
    plural: "reports",
    short: "reps",
    namespaced: true,
    spec_layout: false,
};
/// openreports.io/v1alpha1 ClusterReport.
pub const CREPS: Kind = Kind {
    group: "openreports.io",
    version: "v1alpha1",
    kind: "ClusterReport",
    plural: "clusterreports",
    short: "creps",
    namespaced: false,
    spec_layout: false,
};
/// reports.kyverno.io/v1 EphemeralReport.
pub const EPHR: Kind = Kind {
    group: "reports.kyverno.io",
    version: "v1",
    kind: "EphemeralReport",
    plural: "ephemeralreports",
    short: "ephr",
    namespaced: true,
    spec_layout: true,
};
/// reports.kyverno.io/v1 ClusterEphemeralReport.
pub const CEPHR: Kind = Kind {
    group: "reports.kyverno.io",
    version: "v1",
    kind: "ClusterEphemeralReport",
    plural: "clusterephemeralreports",
    short: "cephr",
    namespaced: false,
    spec_layout: true,
};
/// prext.demo/v1alpha1 PolicyReport (the original prototype's group).
pub const DEMO_POLR: Kind = Kind {
    group: "prext.demo",
    version: "v1alpha1",
    kind: "PolicyReport",
    plural: "policyreports",
    short: "policyreports.v1alpha1.prext.demo",
    namespaced: true,
    spec_layout: false,
};
/// prext.demo/v1alpha1 ClusterPolicyReport.
pub const DEMO_CPOLR: Kind = Kind {
    group: "prext.demo",
    version: "v1alpha1",
    kind: "ClusterPolicyReport",
    plural: "clusterpolicyreports",
    short: "clusterpolicyreports.v1alpha1.prext.demo",
    namespaced: false,
    spec_layout: false,
};

/// Every served kind.
pub const ALL_KINDS: [Kind; 8] = [POLR, CPOLR, REPS, CREPS, EPHR, CEPHR, DEMO_POLR, DEMO_CPOLR];

impl Kind {
    /// `group/version`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// `plural.group`, as in error messages.
    pub fn group_resource(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    /// The collection path: namespaced when `ns` is given, all namespaces otherwise.
    pub fn collection(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) if self.namespaced => {
                format!(
                    "/apis/{}/{}/namespaces/{ns}/{}",
                    self.group, self.version, self.plural
                )
            }
            _ => format!("/apis/{}/{}/{}", self.group, self.version, self.plural),
        }
    }

    /// The path of one object.
    pub fn item(&self, ns: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.collection(ns))
    }
}

/// The shared samples directory (`<repo>/../shared/reference/samples`).
pub fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/samples")
}

/// The path of one sample file.
pub fn sample(name: &str) -> PathBuf {
    let path = samples_dir().join(name);
    assert!(path.is_file(), "sample {} not found", path.display());
    path
}

/// The raw text of a sample (BOM included).
pub fn sample_text(name: &str) -> String {
    std::fs::read_to_string(sample(name)).expect("read sample")
}

/// Every object of a sample: documents split, `kind: List` flattened, BOM ignored.
pub fn load_sample(name: &str) -> Vec<Value> {
    let text = sample_text(name);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("parse sample YAML");
        if value.is_null() {
            continue;
        }
        if value["kind"] == "List" {
            out.extend(value["items"].as_array().cloned().unwrap_or_default());
        } else {
            out.push(value);
        }
    }
    out
}

/// Metadata fields the server owns; an exported object carries them, a new one must not.
const SYSTEM_FIELDS: [&str; 7] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
];

/// Turns a sample object into a new object of `kind` named `name` (in `ns` when namespaced).
pub fn adapt(obj: &Value, kind: Kind, ns: &str, name: &str) -> Value {
    let mut obj = obj.clone();
    let root = obj.as_object_mut().expect("sample object is a map");
    root.insert("apiVersion".into(), json!(kind.api_version()));
    root.insert("kind".into(), json!(kind.kind));
    let meta = root
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("metadata is a map");
    for f in SYSTEM_FIELDS {
        meta.remove(f);
    }
    meta.insert("name".into(), json!(name));
    if kind.namespaced {
        meta.insert("namespace".into(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    if kind.spec_layout {
        let mut spec = Map::new();
        for f in ["results", "summary"] {
            if let Some(v) = root.remove(f) {
                spec.insert(f.into(), v);
            }
        }
        root.remove("scope");
        root.remove("scopeSelector");
        spec.insert("owner".into(), owner());
        root.insert("spec".into(), Value::Object(spec));
    }
    obj
}

fn owner() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "name": "nginx", "uid": "6c737f35-260c-4e4f-8516-61a125c9fb78"})
}

/// A small valid report of `kind`: one failing result, a summary, a Pod scope, `labels`.
pub fn report(kind: Kind, ns: &str, name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: Map<String, Value> = labels.iter().map(|(k, v)| ((*k).into(), json!(v))).collect();
    let results = json!([{
        "policy": "require-labels",
        "rule": "check-team",
        "result": "fail",
        "source": "kyverno",
        "message": "label team is required",
        "scored": true,
        "timestamp": {"seconds": 1_700_000_000, "nanos": 0}
    }]);
    let summary = json!({"pass": 3, "fail": 1, "warn": 0, "error": 0, "skip": 0});
    let mut obj = json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind,
        "metadata": {"name": name, "labels": labels},
    });
    if kind.namespaced {
        obj["metadata"]["namespace"] = json!(ns);
    }
    if kind.spec_layout {
        obj["spec"] = json!({"owner": owner(), "results": results, "summary": summary});
    } else {
        obj["scope"] = json!({"apiVersion": "v1", "kind": "Pod", "name": "nginx", "namespace": ns});
        obj["results"] = results;
        obj["summary"] = summary;
    }
    obj
}

/// A manifest of `objs` for `kubectl create/apply -f`: a stream of indented JSON objects.
///
/// JSON rather than YAML because kubectl reads YAML 1.1, where an unquoted `yes`, `no`,
/// `on` or `off` written by a YAML 1.2 emitter would turn into a boolean.
pub fn manifest(objs: &[Value]) -> String {
    objs.iter()
        .map(|o| serde_json::to_string_pretty(o).expect("serialize JSON") + "\n")
        .collect()
}

/// `metadata.resourceVersion` as a number (panics with the object if absent or malformed).
pub fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion in {obj}"))
}
