//! The pure half of `prext migrate`: which kinds to copy, and how one report read from a
//! Kubernetes API becomes the object prext stores.
//!
//! A migrated object goes through the same admission as a `POST` to prext (the registry's
//! [`strategy`](prext_server::registry::strategy): metadata and schema validation, pruning,
//! defaults, and the same store write), so the store never holds anything the server itself
//! would have refused. What is kept and what is new:
//!
//! - kept: `apiVersion`, `kind`, everything outside `metadata`, and `metadata.name`,
//!   `namespace`, `generateName`, `labels`, `annotations`, `finalizers`,
//!   `ownerReferences` and `creationTimestamp` (so `AGE` does not restart);
//! - new: `uid`, `resourceVersion` and `generation` (1), as for any create;
//! - dropped: `managedFields` (prext does not implement server-side apply) and `selfLink`.
//!
//! Objects already being deleted (`deletionTimestamp` set, waiting on finalizers) are not
//! copied: in the source they are about to disappear.

use jiff::Timestamp;
use prext_api::meta;
use prext_api::{ResourceDef, RESOURCES};
use prext_server::registry::strategy;
use prext_store::{ObjectKey, ObjectWrite};
use serde_json::Value;

/// Metadata a source object carries that prext assigns itself (or does not serve).
const DROPPED_METADATA: [&str; 6] = [
    "uid",
    "resourceVersion",
    "generation",
    "managedFields",
    "selfLink",
    "deletionGracePeriodSeconds",
];

/// Metadata ignored when deciding whether the stored copy is up to date: prext owns it, so
/// it differs between the source and the copy even when nothing changed.
const SERVER_OWNED: [&str; 6] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
];

/// Why an object read from the source is not copied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not an object of the listed kind (wrong or missing `apiVersion`/`kind`, not a map).
    #[error("malformed: {0}")]
    Malformed(String),
    /// The source object is being deleted; it would only be deleted again.
    #[error("being deleted in the source (deletionTimestamp is set)")]
    BeingDeleted,
    /// prext's validation refused it; one `field: message` per cause.
    #[error("invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The copy in prext is being deleted; it is left to its finalizers.
    #[error("the copy in prext is being deleted")]
    TargetDeleting,
}

/// A source object admitted for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Where it goes.
    pub key: ObjectKey,
    /// The object as prext will serve it (a fresh `uid`; no `resourceVersion` yet).
    pub object: Value,
    /// Fields the schema does not know, pruned as the CRD would have pruned them.
    pub pruned: Vec<String>,
}

/// The kinds named on the command line, in the served order; every served kind when none is
/// named. A name is `plural.group`, `plural.version.group`, or a plural, singular, kind or
/// short name (case-insensitive); a bare name matches that kind in every group serving it.
pub fn select_kinds(names: &[String]) -> Result<Vec<&'static ResourceDef>, String> {
    if names.is_empty() {
        return Ok(RESOURCES.iter().collect());
    }
    let mut wanted = vec![false; RESOURCES.len()];
    for name in names {
        let name = name.trim().to_ascii_lowercase();
        let mut found = false;
        for (i, def) in RESOURCES.iter().enumerate() {
            if kind_matches(def, &name) {
                wanted[i] = true;
                found = true;
            }
        }
        if !found {
            let known: Vec<String> = RESOURCES.iter().map(|d| d.group_resource()).collect();
            return Err(format!(
                "unknown kind {name:?}; served kinds: {}",
                known.join(", ")
            ));
        }
    }
    Ok(RESOURCES
        .iter()
        .zip(wanted)
        .filter_map(|(def, w)| w.then_some(def))
        .collect())
}

fn kind_matches(def: &ResourceDef, name: &str) -> bool {
    name == def.group_resource()
        || name == format!("{}.{}.{}", def.plural, def.version, def.group)
        || name == def.plural
        || name == def.singular
        || name == def.kind.to_ascii_lowercase()
        || def.short_names.contains(&name)
}

/// The served kind of an `ownerReferences` entry, if it is one of prext's.
pub fn served_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|d| d.kind == kind && d.api_version() == api_version)
}

/// Admits a source object of kind `def` for the store. `now` stands in for a missing or
/// unreadable `creationTimestamp`.
pub fn prepare(def: &'static ResourceDef, source: &Value, now: Timestamp) -> Result<Prepared, Rejection> {
    let mut obj = source.clone();
    let root = obj
        .as_object_mut()
        .ok_or_else(|| Rejection::Malformed("not a JSON object".into()))?;
    // List items normally carry their type; fill it in when a server leaves it out.
    root.entry("apiVersion")
        .or_insert_with(|| Value::String(def.api_version()));
    root.entry("kind")
        .or_insert_with(|| Value::String(def.kind.to_string()));
    meta::check_type(def, &obj).map_err(|s| Rejection::Malformed(s.message))?;
    if meta::meta_str(&obj, "deletionTimestamp").is_some() {
        return Err(Rejection::BeingDeleted);
    }
    let created = meta::meta_str(&obj, "creationTimestamp")
        .and_then(|t| t.parse::<Timestamp>().ok())
        .unwrap_or(now);
    let namespace = meta::meta_str(&obj, "namespace").map(str::to_string);
    {
        let metadata = meta::metadata_mut(&mut obj).map_err(|s| Rejection::Malformed(s.message))?;
        for field in DROPPED_METADATA {
            metadata.remove(field);
        }
    }
    meta::ensure_namespace(def, &mut obj, namespace.as_deref())
        .map_err(|s| Rejection::Malformed(s.message))?;
    meta::prepare_create(&mut obj, created).map_err(|s| Rejection::Malformed(s.message))?;

    let validation = strategy::validate(def, &mut obj);
    if !validation.causes.is_empty() {
        let causes = validation
            .causes
            .into_iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        return Err(Rejection::Invalid(causes));
    }
    let key = ObjectKey::new(
        def.group_resource(),
        meta::meta_str(&obj, "namespace").unwrap_or(""),
        meta::meta_str(&obj, "name").unwrap_or(""),
    );
    Ok(Prepared {
        key,
        object: obj,
        pruned: validation.unknown_fields,
    })
}

/// What the store needs to write `obj` (the server's own store write).
pub fn object_write(def: &'static ResourceDef, key: &ObjectKey, obj: Value) -> ObjectWrite {
    strategy::object_write(def, key, obj)
}

/// True when `stored` already holds what `prepared` carries: equal apart from the metadata
/// prext assigns itself.
pub fn same_content(stored: &Value, prepared: &Value) -> bool {
    without_server_fields(stored) == without_server_fields(prepared)
}

fn without_server_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(metadata) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_OWNED {
            metadata.remove(field);
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(plural: &str, group: &str) -> &'static ResourceDef {
        RESOURCES
            .iter()
            .find(|d| d.plural == plural && d.group == group)
            .expect("served kind")
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid timestamp")
    }

    /// A PolicyReport as a Kubernetes API serves it, system fields included.
    fn exported() -> Value {
        json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "PolicyReport",
            "metadata": {
                "name": "pod-nginx",
                "namespace": "team-a",
                "uid": "0b1f6a7e-6a2c-4b57-9a8e-3f1c0e0d9e11",
                "resourceVersion": "81234",
                "generation": 7,
                "creationTimestamp": "2024-05-01T10:00:00Z",
                "labels": {"app.kubernetes.io/managed-by": "kyverno"},
                "annotations": {"note": "kept"},
                "finalizers": ["example.com/keep"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "nginx",
                                     "uid": "6c737f35-260c-4e4f-8516-61a125c9fb78"}],
                "managedFields": [{"manager": "kyverno", "operation": "Update"}]
            },
            "scope": {"apiVersion": "v1", "kind": "Pod", "name": "nginx", "namespace": "team-a"},
            "summary": {"pass": 1, "fail": 0, "warn": 0, "error": 0, "skip": 0},
            "results": [{"policy": "require-labels", "result": "pass", "source": "kyverno"}]
        })
    }

    #[test]
    fn keeps_identity_and_relations_and_renews_system_fields() {
        let d = def("policyreports", "wgpolicyk8s.io");
        let p = prepare(d, &exported(), now()).expect("admitted");
        let m = &p.object["metadata"];
        assert_eq!(
            p.key,
            ObjectKey::new("policyreports.wgpolicyk8s.io", "team-a", "pod-nginx")
        );
        assert_eq!(m["labels"], exported()["metadata"]["labels"]);
        assert_eq!(m["annotations"], json!({"note": "kept"}));
        assert_eq!(m["finalizers"], json!(["example.com/keep"]));
        assert_eq!(m["ownerReferences"], exported()["metadata"]["ownerReferences"]);
        assert_eq!(m["creationTimestamp"], "2024-05-01T10:00:00Z");
        assert_ne!(m["uid"], exported()["metadata"]["uid"]);
        assert_eq!(m["uid"].as_str().map(str::len), Some(36));
        assert_eq!(m["generation"], 1);
        assert!(m.get("resourceVersion").is_none());
        assert!(m.get("managedFields").is_none());
        assert_eq!(p.object["results"], exported()["results"]);
    }

    #[test]
    fn missing_type_is_filled_in_and_bad_timestamps_fall_back_to_now() {
        let d = def("clusterpolicyreports", "wgpolicyk8s.io");
        let src = json!({"metadata": {"name": "cluster", "namespace": "ignored",
                                      "creationTimestamp": "yesterday"}});
        let p = prepare(d, &src, now()).expect("admitted");
        assert_eq!(p.object["kind"], "ClusterPolicyReport");
        assert_eq!(p.object["metadata"]["creationTimestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(p.key.namespace, "", "cluster-scoped kinds have no namespace");
        assert!(p.object["metadata"].get("namespace").is_none());
    }

    #[test]
    fn rejections_name_the_reason() {
        let d = def("policyreports", "wgpolicyk8s.io");
        let mut deleting = exported();
        deleting["metadata"]["deletionTimestamp"] = json!("2024-05-02T00:00:00Z");
        assert_eq!(prepare(d, &deleting, now()), Err(Rejection::BeingDeleted));

        let mut wrong_kind = exported();
        wrong_kind["kind"] = json!("ClusterPolicyReport");
        assert!(matches!(
            prepare(d, &wrong_kind, now()),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            prepare(d, &json!([1]), now()),
            Err(Rejection::Malformed(_))
        ));

        let mut bad = exported();
        bad["metadata"]["name"] = json!("Not_A_Name");
        bad["results"][0]["result"] = json!("maybe");
        let Err(Rejection::Invalid(causes)) = prepare(d, &bad, now()) else {
            panic!("expected an invalid rejection");
        };
        assert!(
            causes.iter().any(|c| c.starts_with("metadata.name:")),
            "{causes:?}"
        );
        assert!(
            causes.iter().any(|c| c.contains("results[0].result")),
            "{causes:?}"
        );
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported() {
        let d = def("policyreports", "wgpolicyk8s.io");
        let mut src = exported();
        src["extra"] = json!({"x": 1});
        let p = prepare(d, &src, now()).expect("admitted");
        assert!(p.object.get("extra").is_none());
        assert_eq!(p.pruned, vec!["extra".to_string()]);
    }

    #[test]
    fn content_comparison_ignores_only_server_owned_metadata() {
        let d = def("policyreports", "wgpolicyk8s.io");
        let a = prepare(d, &exported(), now()).expect("admitted").object;
        let mut stored = prepare(d, &exported(), now()).expect("admitted").object;
        stored["metadata"]["resourceVersion"] = json!("12");
        stored["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
        assert_ne!(a["metadata"]["uid"], stored["metadata"]["uid"]);
        assert!(same_content(&stored, &a));
        let mut relabelled = stored.clone();
        relabelled["metadata"]["labels"]["tier"] = json!("gold");
        assert!(!same_content(&relabelled, &a));
        let mut new_result = stored;
        new_result["summary"]["pass"] = json!(2);
        assert!(!same_content(&new_result, &a));
    }

    #[test]
    fn kinds_by_any_name_in_served_order() {
        let all = select_kinds(&[]).expect("all");
        assert_eq!(all.len(), RESOURCES.len());
        let picked = select_kinds(&["cephr".into(), "PolicyReport".into()]).expect("known");
        let names: Vec<String> = picked.iter().map(|d| d.group_resource()).collect();
        assert_eq!(
            names,
            [
                "policyreports.wgpolicyk8s.io",
                "clusterephemeralreports.reports.kyverno.io",
                "policyreports.prext.demo"
            ]
        );
        let exact = select_kinds(&["reports.openreports.io".into()]).expect("known");
        assert_eq!(exact.len(), 1);
        assert!(select_kinds(&["pods".into()])
            .unwrap_err()
            .contains("unknown kind \"pods\""));
    }

    #[test]
    fn owner_kinds_resolve_by_api_version() {
        assert_eq!(
            served_kind("prext.demo/v1alpha1", "PolicyReport").map(|d| d.group),
            Some("prext.demo")
        );
        assert!(served_kind("v1", "Pod").is_none());
    }

    #[test]
    fn object_write_indexes_the_report() {
        let d = def("policyreports", "wgpolicyk8s.io");
        let p = prepare(d, &exported(), now()).expect("admitted");
        let w = object_write(d, &p.key, p.object.clone());
        assert_eq!(
            w.labels.get("app.kubernetes.io/managed-by").map(String::as_str),
            Some("kyverno")
        );
        assert_eq!(w.created, "2024-05-01T10:00:00Z");
        assert_eq!(w.index.summary.pass, 1);
        assert_eq!(w.index.results.len(), 1);
        assert!(!w.deleting);
    }
}
