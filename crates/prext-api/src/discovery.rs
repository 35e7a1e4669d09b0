//! Discovery documents, built from the resource table ([`TABLE`]) only (never from storage, so that a
//! database outage cannot break namespace deletion in the whole cluster): `/apis`,
//! `/apis/{group}`, `/apis/{group}/{version}` and aggregated discovery v2.

use std::sync::LazyLock;

use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::resources::{self, ResourceDef, TABLE};

/// The media type of aggregated discovery v2 (request `Accept` and response `Content-Type`).
pub const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn group_version(group: &str, version: &str) -> Value {
    json!({"groupVersion": format!("{group}/{version}"), "version": version})
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    json!({
        "name": group,
        "versions": versions.iter().map(|v| group_version(group, v)).collect::<Vec<_>>(),
        "preferredVersion": group_version(group, versions[0]),
    })
}

/// `GET /apis` (legacy `APIGroupList`).
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = resources::groups_of(TABLE)
        .iter()
        .map(|(g, versions)| api_group(g, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`.
pub fn api_group_doc(group: &str) -> Option<Value> {
    let groups = resources::groups_of(TABLE);
    let (g, versions) = groups.iter().find(|(g, _)| *g == group)?;
    let mut doc = api_group(g, versions);
    let map = doc.as_object_mut()?;
    map.insert("kind".into(), json!("APIGroup"));
    map.insert("apiVersion".into(), json!("v1"));
    Some(doc)
}

fn api_resource(def: &ResourceDef) -> Value {
    let mut r = json!({
        "name": def.plural,
        "singularName": def.singular,
        "namespaced": def.namespaced,
        "kind": def.kind,
        "verbs": def.verbs(),
    });
    if !def.short_names.is_empty() {
        r["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        r["categories"] = json!(def.categories);
    }
    r
}

/// `GET /apis/{group}/{version}` (`APIResourceList`): the availability probe of the
/// aggregator, so it is static and always fast.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = resources::served_in(TABLE, group, version)
        .map(api_resource)
        .collect();
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"),
        "resources": resources,
    }))
}

/// One resource of aggregated discovery v2 (`APIResourceDiscovery`, its fields in the order
/// of the Go type in k8s.io/api/apidiscovery/v2/types.go).
fn aggregated_resource(def: &ResourceDef) -> Value {
    let mut r = json!({
        "resource": def.plural,
        "responseKind": {"group": def.group, "version": def.version, "kind": def.kind},
        "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": def.singular,
        "verbs": def.verbs(),
    });
    if !def.short_names.is_empty() {
        r["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        r["categories"] = json!(def.categories);
    }
    r
}

/// The aggregated discovery v2 document, serialized, with its ETag.
pub struct AggregatedDiscovery {
    pub json: Vec<u8>,
    /// Quoted, as sent in the `ETag` header.
    pub etag: String,
}

/// `GET /apis` with the v2 Accept header.
pub fn aggregated() -> &'static AggregatedDiscovery {
    static DOC: LazyLock<AggregatedDiscovery> = LazyLock::new(|| {
        let items: Vec<Value> = resources::groups_of(TABLE)
            .iter()
            .map(|(group, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|version| {
                        let resources: Vec<Value> = resources::served_in(TABLE, group, version)
                            .map(aggregated_resource)
                            .collect();
                        json!({"version": version, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": group}, "versions": versions})
            })
            .collect();
        let doc = json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        });
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        let etag = format!("\"{}\"", hex::encode(Sha512::digest(&json)));
        AggregatedDiscovery { json, etag }
    });
    &DOC
}

/// Whether an `Accept` header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if media != "application/json" {
            return false;
        }
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let has = |k: &str, v: &str| params.iter().any(|(pk, pv)| pk.trim() == k && pv.trim() == v);
        has("g", "apidiscovery.k8s.io") && has("v", "v2") && has("as", "APIGroupDiscoveryList")
    })
}

/// `GET /version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "gitVersion": concat!("v", env!("CARGO_PKG_VERSION"), "-prext"),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_list_shape() {
        let doc = api_resource_list("wgpolicyk8s.io", "v1alpha2").unwrap();
        assert_eq!(doc["resources"][0]["name"], "policyreports");
        assert_eq!(doc["resources"][0]["shortNames"], json!(["polr"]));
        assert_eq!(doc["resources"][1]["namespaced"], false);
        assert!(api_resource_list("wgpolicyk8s.io", "v1").is_none());
    }

    #[test]
    fn group_list_has_every_group() {
        let doc = api_group_list();
        let names: Vec<_> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].clone())
            .collect();
        assert_eq!(
            names,
            vec![
                "wgpolicyk8s.io",
                "openreports.io",
                "reports.kyverno.io",
                "prext.demo",
                "results.prext.io"
            ]
        );
        assert_eq!(api_group_doc("openreports.io").unwrap()["kind"], "APIGroup");
        let results = api_group_doc("results.prext.io").unwrap();
        assert_eq!(
            results["preferredVersion"]["groupVersion"],
            "results.prext.io/v1alpha1"
        );
    }

    /// The read-only resources of results.prext.io come from the same table: their verbs and
    /// short names are data of their rows.
    #[test]
    fn results_group_documents() {
        let list = api_resource_list("results.prext.io", "v1alpha1").unwrap();
        assert_eq!(list["resources"][0]["name"], "policyresults");
        assert_eq!(list["resources"][0]["verbs"], json!(["get", "list"]));
        assert_eq!(list["resources"][1]["verbs"], json!(["get", "list"]));
        assert_eq!(list["resources"][2]["verbs"], json!(["list"]));
        assert_eq!(list["resources"][3]["shortNames"], json!(["rtrend"]));
        let agg: Value = serde_json::from_slice(&aggregated().json).unwrap();
        let results = &agg["items"][4];
        assert_eq!(results["metadata"]["name"], "results.prext.io");
        assert_eq!(
            results["versions"][0]["resources"][1]["responseKind"]["kind"],
            "ResultSummary"
        );
        assert_eq!(results["versions"][0]["resources"][1]["scope"], "Namespaced");
    }

    #[test]
    fn aggregated_negotiation_and_etag() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        ));
        let a = aggregated();
        assert!(a.etag.starts_with('"') && a.etag.len() == 130);
        let v: Value = serde_json::from_slice(&a.json).unwrap();
        assert_eq!(
            v["items"][2]["versions"][0]["resources"][0]["categories"],
            json!(["kyverno"])
        );
    }
}
