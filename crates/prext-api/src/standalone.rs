//! The documents of standalone mode, where prext is the whole API a developer's kubectl sees
//! (no kube-apiserver in front to answer them): `/version`, the core group's namespaces and
//! events, `authorization.k8s.io` (SelfSubjectAccessReview, SelfSubjectRulesReview),
//! `authentication.k8s.io` (SelfSubjectReview) and `events.k8s.io`, with their discovery.
//! Behind the aggregation layer kube-apiserver serves all of these itself.

use std::sync::LazyLock;

use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::discovery;

/// The Kubernetes minor version `/version` reports when the client is not kubectl.
pub const DEFAULT_MINOR: u32 = 35;

/// The minor version of a kubectl `User-Agent` (`kubectl/v1.32.4 (linux/amd64) kubernetes/…`).
fn kubectl_minor(user_agent: &str) -> Option<u32> {
    let version = user_agent
        .split_whitespace()
        .next()?
        .strip_prefix("kubectl/v1.")?;
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `GET /version`. kubectl warns when the server's `gitVersion` is more than one minor
/// version away from its own (`kubectl/pkg/cmd/version/skew_warning.go`) and fails when it is
/// not semantic; prext implements the API of every recent Kubernetes, so it reports kubectl's
/// own minor version (else [`DEFAULT_MINOR`]) and keeps its own version in the build metadata
/// of `gitVersion` and in `prextVersion`.
pub fn version_info(user_agent: Option<&str>) -> Value {
    let minor = user_agent.and_then(kubectl_minor).unwrap_or(DEFAULT_MINOR);
    let prext = env!("CARGO_PKG_VERSION");
    json!({
        "major": "1",
        "minor": minor.to_string(),
        "emulationMajor": "1",
        "emulationMinor": minor.to_string(),
        "gitVersion": format!("v1.{minor}.0+prext.{prext}"),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        "prextVersion": prext,
    })
}

/// A served standalone resource: (group, version, plural, singular, kind, namespaced, verbs,
/// short names).
struct Extra {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    short: &'static [&'static str],
}

const EXTRAS: &[Extra] = &[
    Extra {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        kind: "SelfSubjectReview",
        namespaced: false,
        verbs: &["create"],
        short: &[],
    },
    Extra {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        verbs: &["create"],
        short: &[],
    },
    Extra {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
        verbs: &["create"],
        short: &[],
    },
    Extra {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        verbs: &["list"],
        short: &["ev"],
    },
];

/// The named groups of standalone mode, in discovery order.
pub const GROUPS: &[&str] = &["authentication.k8s.io", "authorization.k8s.io", "events.k8s.io"];

fn group_versions(group: &str) -> Value {
    json!({"groupVersion": format!("{group}/v1"), "version": "v1"})
}

fn api_group(group: &str) -> Value {
    json!({"name": group, "versions": [group_versions(group)], "preferredVersion": group_versions(group)})
}

/// `GET /apis` listing prext's groups, then [`GROUPS`]. Not routed: `/apis` keeps listing
/// prext's own groups only (what earlier clients and tests rely on); the standalone groups
/// are found at `/apis/{group}` and `/apis/{group}/v1`.
pub fn api_group_list() -> Value {
    let mut doc = discovery::api_group_list();
    if let Some(groups) = doc["groups"].as_array_mut() {
        groups.extend(GROUPS.iter().map(|g| api_group(g)));
    }
    doc
}

/// `GET /apis/{group}` of a standalone group.
pub fn api_group_doc(group: &str) -> Option<Value> {
    GROUPS.contains(&group).then(|| {
        let mut doc = api_group(group);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        doc
    })
}

/// `GET /apis/{group}/v1` of a standalone group.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = EXTRAS
        .iter()
        .filter(|e| e.group == group && e.version == version)
        .map(|e| {
            let mut r = json!({
                "name": e.plural, "singularName": e.singular, "namespaced": e.namespaced,
                "kind": e.kind, "verbs": e.verbs,
            });
            if !e.short.is_empty() {
                r["shortNames"] = json!(e.short);
            }
            r
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let group_version = format!("{group}/{version}");
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// Aggregated discovery v2 of prext's groups, then [`GROUPS`] (not routed, see
/// [`api_group_list`]).
pub fn aggregated() -> &'static discovery::AggregatedDiscovery {
    static DOC: LazyLock<discovery::AggregatedDiscovery> = LazyLock::new(|| {
        let mut doc: Value = serde_json::from_slice(&discovery::aggregated().json).unwrap_or_default();
        if let Some(items) = doc["items"].as_array_mut() {
            for group in GROUPS {
                let resources: Vec<Value> = EXTRAS
                    .iter()
                    .filter(|e| e.group == *group)
                    .map(|e| {
                        let mut r = json!({
                            "resource": e.plural,
                            "responseKind": {"group": e.group, "version": e.version, "kind": e.kind},
                            "scope": if e.namespaced { "Namespaced" } else { "Cluster" },
                            "singularResource": e.singular,
                            "verbs": e.verbs,
                        });
                        if !e.short.is_empty() {
                            r["shortNames"] = json!(e.short);
                        }
                        r
                    })
                    .collect();
                items.push(json!({
                    "metadata": {"name": group},
                    "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
                }));
            }
        }
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        let etag = format!("\"{}\"", hex::encode(Sha512::digest(&json)));
        discovery::AggregatedDiscovery { json, etag }
    });
    &DOC
}

/// Who the caller is, for the review answers.
#[derive(Debug, Clone, Default)]
pub struct Caller<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    pub groups: &'a [String],
}

/// The answer to a `SelfSubjectAccessReview`: standalone prext allows every authenticated
/// client everything, so the review is allowed; the request's spec is echoed as kube does.
pub fn access_review(request: &Value) -> Value {
    json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": request.get("spec").cloned().unwrap_or_else(|| json!({})),
        "status": {
            "allowed": true,
            "reason": "prext standalone mode allows every authenticated client",
        },
    })
}

/// The answer to a `SelfSubjectRulesReview`: every verb on everything.
pub fn rules_review(request: &Value) -> Value {
    json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": request.get("spec").cloned().unwrap_or_else(|| json!({})),
        "status": {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        },
    })
}

/// The answer to a `SelfSubjectReview`: the client certificate's identity.
pub fn subject_review(caller: &Caller<'_>) -> Value {
    let mut user = json!({"username": caller.name, "groups": caller.groups});
    if !caller.uid.is_empty() {
        user["uid"] = json!(caller.uid);
    }
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user},
    })
}

/// A namespace as standalone prext shows it: Active, with no other state.
pub fn namespace(name: &str) -> Value {
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// `GET /api/v1/namespaces`: the namespaces that hold reports.
pub fn namespace_list(names: &[String], revision: i64) -> Value {
    json!({
        "kind": "NamespaceList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "items": names.iter().map(|n| namespace(n)).collect::<Vec<_>>(),
    })
}

/// The namespaces as a `meta.k8s.io` Table with kube-apiserver's columns (NAME, STATUS, AGE;
/// `pkg/printers/internalversion/printers.go`). The age is unknown: prext keeps no
/// namespace objects.
pub fn namespace_table(names: &[String], revision: &str, table_api_version: &str) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": table_api_version,
        "metadata": {"resourceVersion": revision},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0},
            {"name": "Status", "type": "string", "format": "", "description": "The status of the namespace", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0},
        ],
        "rows": names.iter().map(|n| json!({
            "cells": [n, "Active", "<unknown>"],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": table_api_version, "metadata": {"name": n}},
        })).collect::<Vec<_>>(),
    })
}

/// An empty event list (`v1` or `events.k8s.io/v1`): prext records no events.
pub fn event_list(api_version: &str, revision: i64) -> Value {
    json!({
        "kind": "EventList",
        "apiVersion": api_version,
        "metadata": {"resourceVersion": revision.to_string()},
        "items": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_follows_kubectl() {
        let v = version_info(Some("kubectl/v1.32.4 (linux/amd64) kubernetes/59526cd"));
        assert_eq!(
            v["gitVersion"],
            format!("v1.32.0+prext.{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(v["minor"], "32");
        let v = version_info(Some("OpenAPI-Generator/31.0.0/python"));
        assert_eq!(v["minor"], DEFAULT_MINOR.to_string());
        assert_eq!(v["prextVersion"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn discovery_lists_what_is_served() {
        assert!(
            api_resource_list("", "v1").is_none(),
            "the core group is discovery.rs's"
        );
        let authz = api_resource_list("authorization.k8s.io", "v1").unwrap();
        assert_eq!(authz["resources"].as_array().unwrap().len(), 2);
        assert!(api_resource_list("authorization.k8s.io", "v1beta1").is_none());
        let groups = api_group_list();
        assert!(groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "events.k8s.io"));
        let agg: Value = serde_json::from_slice(&aggregated().json).unwrap();
        let names: Vec<&str> = agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .collect();
        assert!(names.ends_with(GROUPS), "{names:?}");
        assert_ne!(aggregated().etag, discovery::aggregated().etag);
    }
}
