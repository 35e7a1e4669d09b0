//! The result query API, `results.prext.io/v1alpha1`: two namespaced, read-only, virtual
//! resources computed from the result rows of every stored report (see
//! `docs/results-api.md`).
//!
//! * `policyresults` (kind `PolicyResult`, verbs `get`, `list`): one item per result of a
//!   report, filtered by field and label selectors over the result's fields, by properties
//!   (numerically with `>`, `>=`, `<`, `<=`) and by message text; sortable, paginated, with
//!   an optional count;
//! * `resultsummaries` (kind `ResultSummary`, verbs `get`, `list`): counts of the same results by
//!   result × severity, grouped by namespace, policy, source, report kind, ….
//!
//! Paths follow the report kinds': `/apis/results.prext.io/v1alpha1/namespaces/{ns}/{plural}`
//! lists the results of the reports in `{ns}`, `/apis/results.prext.io/v1alpha1/{plural}`
//! those of every report (cluster-scoped ones included), so RBAC grants them per namespace
//! like any namespaced resource.
//!
//! Submodules: [`query`] (the query vocabulary the store shares), [`filter`] (query
//! parameters → a filter), [`object`] (items, names, Table rows), [`summary`] (summary
//! items), [`token`] (continue tokens).

pub mod filter;
pub mod findings;
pub mod history;
pub mod object;
pub mod query;
pub mod rank;
pub mod summary;
pub mod token;

use serde_json::{json, Value};

/// The API group.
pub const GROUP: &str = "results.prext.io";
/// The served version.
pub const VERSION: &str = "v1alpha1";
/// `group/version`.
pub const API_VERSION: &str = "results.prext.io/v1alpha1";

/// One virtual resource of the group.
#[derive(Debug, PartialEq, Eq)]
pub struct VirtualResource {
    /// The resource name in URLs.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    pub short_names: &'static [&'static str],
    /// The verbs served (and advertised in discovery).
    pub verbs: &'static [&'static str],
}

/// `policyresults`: the results themselves.
pub static POLICY_RESULTS: VirtualResource = VirtualResource {
    plural: "policyresults",
    singular: "policyresult",
    kind: "PolicyResult",
    list_kind: "PolicyResultList",
    short_names: &["pres"],
    verbs: &["get", "list"],
};

/// `resultsummaries`: counts of results by result × severity, grouped.
pub static RESULT_SUMMARIES: VirtualResource = VirtualResource {
    plural: "resultsummaries",
    singular: "resultsummary",
    kind: "ResultSummary",
    list_kind: "ResultSummaryList",
    short_names: &["rsum"],
    verbs: &["get", "list"],
};

/// `findings`: failing results over time (first seen, last seen, resolved).
pub static FINDINGS: VirtualResource = VirtualResource {
    plural: "findings",
    singular: "finding",
    kind: "Finding",
    list_kind: "FindingList",
    short_names: &["fnd"],
    verbs: &["list"],
};

/// `resulttrends`: open findings per day or hour, grouped.
pub static RESULT_TRENDS: VirtualResource = VirtualResource {
    plural: "resulttrends",
    singular: "resulttrend",
    kind: "ResultTrend",
    list_kind: "ResultTrendList",
    short_names: &["rtrend"],
    verbs: &["list"],
};

/// Every resource of the group, in discovery order.
pub static VIRTUAL: [&VirtualResource; 4] = [&POLICY_RESULTS, &RESULT_SUMMARIES, &FINDINGS, &RESULT_TRENDS];

/// What a request path under the group addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsPath {
    pub resource: &'static VirtualResource,
    /// Set for `/namespaces/{ns}/...` paths.
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The deprecated `/watch/` prefix was used.
    pub watch_prefix: bool,
}

/// Whether a request path belongs to this group's resources (below the discovery document).
pub fn is_results_path(path: &str) -> bool {
    path.strip_prefix("/apis/")
        .and_then(|p| p.strip_prefix(GROUP))
        .and_then(|p| p.strip_prefix('/'))
        .and_then(|p| p.strip_prefix(VERSION))
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

/// Parses `/apis/results.prext.io/v1alpha1/[watch/][namespaces/{ns}/]{plural}[/{name}]`;
/// `None` for anything else (answered 404).
pub fn parse_path(path: &str) -> Option<ResultsPath> {
    let rest = path
        .strip_prefix("/apis/")?
        .strip_prefix(GROUP)?
        .strip_prefix('/')?
        .strip_prefix(VERSION)?
        .strip_prefix('/')?;
    let mut segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let watch_prefix = segs.first() == Some(&"watch");
    if watch_prefix {
        segs.remove(0);
    }
    let mut namespace = None;
    if segs.first() == Some(&"namespaces") && segs.len() >= 3 {
        namespace = Some(decode(segs[1])?);
        segs.drain(..2);
    }
    let resource = *VIRTUAL.iter().find(|r| Some(&r.plural) == segs.first())?;
    let name = match segs.get(1) {
        Some(n) => Some(decode(n)?),
        None => None,
    };
    if segs.len() > 2 || (name.is_some() && namespace.is_none()) {
        return None;
    }
    Some(ResultsPath {
        resource,
        namespace,
        name,
        watch_prefix,
    })
}

fn decode(seg: &str) -> Option<String> {
    let s = percent_decode(seg)?;
    (!s.is_empty()).then_some(s)
}

/// Percent-decodes a path segment into UTF-8.
fn percent_decode(seg: &str) -> Option<String> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = seg.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn group_version() -> Value {
    json!({"groupVersion": API_VERSION, "version": VERSION})
}

/// The group's entry of `GET /apis` (`APIGroup` without kind and apiVersion).
pub fn api_group() -> Value {
    json!({"name": GROUP, "versions": [group_version()], "preferredVersion": group_version()})
}

/// `GET /apis/results.prext.io/v1alpha1` (`APIResourceList`).
pub fn api_resource_list() -> Value {
    let resources: Vec<Value> = VIRTUAL
        .iter()
        .map(|r| {
            json!({
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": true,
                "kind": r.kind,
                "verbs": r.verbs,
                "shortNames": r.short_names,
            })
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION, "resources": resources})
}

/// The group's item of aggregated discovery v2 (`APIGroupDiscovery`).
pub fn aggregated_group() -> Value {
    let resources: Vec<Value> = VIRTUAL
        .iter()
        .map(|r| {
            json!({
                "resource": r.plural,
                "responseKind": {"group": GROUP, "version": VERSION, "kind": r.kind},
                "scope": "Namespaced",
                "singularResource": r.singular,
                "shortNames": r.short_names,
                "verbs": r.verbs,
            })
        })
        .collect();
    json!({
        "metadata": {"name": GROUP},
        "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = parse_path("/apis/results.prext.io/v1alpha1/namespaces/ns/policyresults").expect("path");
        assert_eq!(
            (p.resource.kind, p.namespace.as_deref(), p.name),
            ("PolicyResult", Some("ns"), None)
        );
        let p = parse_path("/apis/results.prext.io/v1alpha1/resultsummaries").expect("path");
        assert_eq!((p.resource.kind, p.namespace), ("ResultSummary", None));
        let p = parse_path("/apis/results.prext.io/v1alpha1/namespaces/a%20b/policyresults/polr.x.1")
            .expect("path");
        assert_eq!(
            (p.namespace.as_deref(), p.name.as_deref()),
            (Some("a b"), Some("polr.x.1"))
        );
        assert!(
            parse_path("/apis/results.prext.io/v1alpha1/watch/policyresults").is_some_and(|p| p.watch_prefix)
        );
        for bad in [
            "/apis/results.prext.io/v1alpha1/policyresults/x",
            "/apis/results.prext.io/v1alpha1/namespaces/ns/policyresults/x/status",
            "/apis/results.prext.io/v1alpha1/things",
            "/apis/results.prext.io/v1/policyresults",
            "/apis/wgpolicyk8s.io/v1alpha2/policyreports",
        ] {
            assert!(parse_path(bad).is_none(), "{bad}");
        }
        assert!(is_results_path("/apis/results.prext.io/v1alpha1/policyresults"));
        assert!(!is_results_path("/apis/results.prext.io/v1alpha1"));
        assert!(!is_results_path("/apis/results.prext.io/v1alpha10/x"));
        assert!(!is_results_path("/apis/results.prext.iox/v1alpha1/x"));
    }

    #[test]
    fn discovery_documents() {
        let list = api_resource_list();
        assert_eq!(list["resources"][0]["name"], "policyresults");
        assert_eq!(list["resources"][0]["verbs"], json!(["get", "list"]));
        assert_eq!(list["resources"][1]["verbs"], json!(["get", "list"]));
        let agg = aggregated_group();
        assert_eq!(
            agg["versions"][0]["resources"][1]["responseKind"]["kind"],
            "ResultSummary"
        );
        assert_eq!(api_group()["preferredVersion"]["groupVersion"], API_VERSION);
    }
}
