//! Validation of manifest objects against the Kubernetes 1.32 API, offline: each object is
//! deserialized into the 1.32 type of its kind (k8s-openapi built for v1_32; a wrong type or
//! a wrong apiVersion/kind fails there) and serialized back, and the two must be equal. The
//! typed structs drop fields they do not know, so any field that is not in the 1.32 schema
//! (a typo, a misplaced key, a field of a later release) shows up as a difference.

use k8s_openapi_v1_32 as k8s;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use k8s::api::apps::v1 as apps;
use k8s::api::core::v1 as core;
use k8s::api::policy::v1 as policy;
use k8s::api::rbac::v1 as rbac;
use k8s::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;

/// Checks one object; the error names what is wrong and where.
pub fn validate(obj: &Value) -> Result<(), String> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("apps/v1", "StatefulSet") => round_trip::<apps::StatefulSet>(obj),
        ("apps/v1", "Deployment") => round_trip::<apps::Deployment>(obj),
        ("v1", "Service") => round_trip::<core::Service>(obj),
        ("v1", "ServiceAccount") => round_trip::<core::ServiceAccount>(obj),
        ("v1", "Secret") => round_trip::<core::Secret>(obj),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<policy::PodDisruptionBudget>(obj),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<rbac::ClusterRole>(obj),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => round_trip::<rbac::ClusterRoleBinding>(obj),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<rbac::RoleBinding>(obj),
        ("apiregistration.k8s.io/v1", "APIService") => round_trip::<apiregistration::APIService>(obj),
        _ => Err(format!("{api_version} {kind} is not a kind these checks know")),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    diff("", obj, &back, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The paths where `given` and what the typed object kept differ.
fn diff(path: &str, given: &Value, kept: &Value, out: &mut Vec<String>) {
    match (given, kept) {
        (Value::Object(g), Value::Object(k)) => {
            for (key, gv) in g {
                let p = format!("{path}.{key}");
                match k.get(key) {
                    Some(kv) => diff(&p, gv, kv, out),
                    None => out.push(format!("{p}: unknown field")),
                }
            }
            // Embedded resources (a StatefulSet's PersistentVolumeClaim templates) serialize
            // their apiVersion and kind; anything else added would be a default to notice.
            let added = k
                .keys()
                .filter(|key| !g.contains_key(*key) && !matches!(key.as_str(), "apiVersion" | "kind"));
            for key in added {
                out.push(format!("{path}.{key}: added by the type"));
            }
        }
        (Value::Array(g), Value::Array(k)) if g.len() == k.len() => {
            for (i, (gv, kv)) in g.iter().zip(k).enumerate() {
                diff(&format!("{path}[{i}]"), gv, kv, out);
            }
        }
        _ if given == kept => {}
        _ => out.push(format!("{path}: {given} reads back as {kept}")),
    }
}

#[test]
fn the_validator_rejects_unknown_fields_wrong_types_and_wrong_kinds() {
    let good = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "x"},
        "spec": {
            "replicas": 1,
            "serviceName": "x",
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
                         "spec": {"containers": [{"name": "c", "image": "i",
                                                  "ports": [{"containerPort": 1, "name": "p"}]}]}},
        }
    });
    validate(&good).expect("a valid StatefulSet");
    let mut unknown = good.clone();
    unknown["spec"]["replicaz"] = 1.into();
    assert!(validate(&unknown)
        .expect_err("unknown")
        .contains(".spec.replicaz: unknown field"));
    let mut nested = good.clone();
    nested["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = serde_json::json!([]);
    assert!(validate(&nested)
        .expect_err("misplaced")
        .contains("volumeMount: unknown field"));
    let mut wrong_type = good.clone();
    wrong_type["spec"]["replicas"] = "one".into();
    assert!(validate(&wrong_type).is_err());
    let mut wrong_group = good.clone();
    wrong_group["apiVersion"] = "apps/v1beta1".into();
    assert!(validate(&wrong_group).is_err());
    let mut wrong_kind_field = good;
    wrong_kind_field["kind"] = "Deployment".into();
    assert!(
        validate(&wrong_kind_field).is_err(),
        "a StatefulSet's fields are not a Deployment's"
    );
}
