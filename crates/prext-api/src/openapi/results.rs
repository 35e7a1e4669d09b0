//! The OpenAPI of the computed resources (`results.prext.io/v1alpha1`, see
//! [`crate::results`]): their v3 document and their part of the Swagger 2.0 one, from the
//! rows of the resource table they are given (paths per row, from its plural, kind and
//! verbs; schemas per computed resource). `kubectl explain policyresults` reads the v3 document: the
//! list and read operations carry the kinds' GVK, and the schemas describe every field.

use serde_json::{json, Map, Value};

use super::{meta, render};
use crate::resources::{Computed, ResourceDef};
use crate::results::{resource, API_VERSION, GROUP, VERSION};

const PREFIX: &str = "io.prext.results.v1alpha1.";

pub(super) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{PREFIX}{name}")})
}

pub(super) fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

pub(super) fn integer(description: &str) -> Value {
    json!({"type": "integer", "format": "int64", "description": description})
}

pub(super) fn gvk(kind: &str) -> Value {
    json!([{"group": GROUP, "kind": kind, "version": VERSION}])
}

pub(super) fn type_meta(kind: &str) -> [(&'static str, Value); 2] {
    [
        ("apiVersion", string(&format!("Always {API_VERSION}."))),
        ("kind", string(&format!("Always {kind}."))),
    ]
}

pub(super) fn object(description: &str, properties: Vec<(&str, Value)>) -> Value {
    let props: Map<String, Value> = properties.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    json!({"type": "object", "description": description, "properties": props})
}

pub(super) fn reference(description: &str) -> Value {
    object(
        description,
        vec![
            ("apiVersion", string("API version of the referent.")),
            ("kind", string("Kind of the referent.")),
            ("namespace", string("Namespace of the referent.")),
            ("name", string("Name of the referent.")),
            ("uid", string("UID of the referent.")),
        ],
    )
}

fn policy_result() -> Value {
    let mut props: Vec<(&str, Value)> = type_meta(resource(Computed::PolicyResults).kind).into();
    props.extend([
        ("metadata", meta::meta_property("ObjectMeta", "name is <report kind>.<report name>.<index>; namespace and resourceVersion are the report's.")),
        ("report", {
            let mut r = reference("The report holding the result.");
            r["properties"]["resourceVersion"] = string("The report's resourceVersion.");
            r
        }),
        ("index", integer("Position of the result in the report's results.")),
        ("policy", string("The policy that produced the result.")),
        ("rule", string("The rule of the policy.")),
        ("result", json!({"type": "string", "description": "The outcome: pass, fail, warn, error or skip.", "enum": ["pass", "fail", "warn", "error", "skip"]})),
        ("severity", string("critical, high, medium, low or info.")),
        ("category", string("The result's category.")),
        ("source", string("The tool that produced the result.")),
        ("scored", json!({"type": "boolean", "description": "Whether the result counts towards a score."})),
        ("message", string("The result's message.")),
        ("timestamp", object("When the result was produced.", vec![
            ("seconds", integer("Seconds since the Unix epoch.")),
            ("nanos", json!({"type": "integer", "format": "int32", "description": "Always 0: prext keeps seconds."})),
        ])),
        ("properties", json!({"type": "object", "description": "The result's properties; filter them with ?property=key>=8.", "additionalProperties": {"type": "string"}})),
        ("resources", json!({"type": "array", "description": "The objects the result is about, as written.", "items": reference("An object the result is about.")})),
        ("subject", reference("What the result is about: its first resource, else the report's scope.")),
    ]);
    let mut s = object(
        "One result of a policy report (read-only, computed from the stored reports).",
        props,
    );
    s["x-kubernetes-group-version-kind"] = gvk(resource(Computed::PolicyResults).kind);
    s
}

fn result_summary() -> Value {
    let mut props: Vec<(&str, Value)> = type_meta(resource(Computed::ResultSummaries).kind).into();
    let counts = ["pass", "fail", "warn", "error", "skip"]
        .map(|r| (r, integer(&format!("Results with result {r}."))))
        .to_vec();
    props.extend([
        ("metadata", meta::meta_property("ObjectMeta", "name is the group's value.")),
        ("groupBy", string("What the results are grouped by: namespace, policy, rule, category, source, report.kind or subject.kind.")),
        ("group", string("The group's value (empty for a missing value; for namespaces, cluster-scoped reports).")),
        ("total", integer("Every result of the group.")),
        ("results", object("Results of the group by result.", counts)),
        ("counts", json!({"type": "array", "description": "Results of the group by result and severity (non-zero cells).",
            "items": object("One cell.", vec![
                ("result", string("The result.")),
                ("severity", string("The severity (empty when missing).")),
                ("count", integer("How many results.")),
            ])})),
    ]);
    let mut s = object(
        "Counts of policy results by result and severity for one group.",
        props,
    );
    s["x-kubernetes-group-version-kind"] = gvk(resource(Computed::ResultSummaries).kind);
    s
}

pub(super) fn list(kind: &str, list_kind: &str, extra: Vec<(&str, Value)>) -> Value {
    let mut props: Vec<(&str, Value)> = type_meta(list_kind).into();
    props.push(("items", json!({"type": "array", "items": schema_ref(kind)})));
    props.push((
        "metadata",
        meta::meta_property("ListMeta", "Standard list metadata."),
    ));
    props.extend(extra);
    let mut s = object(&format!("{list_kind} is a list of {kind}."), props);
    s["required"] = json!(["items"]);
    s["x-kubernetes-group-version-kind"] = gvk(list_kind);
    s
}

pub(super) fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

pub(super) fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn list_params(summaries: bool) -> Vec<Value> {
    let mut params = vec![
        query("continue", "string", "The continue token of the previous page."),
        query("fieldSelector", "string", "Equality on result fields: result=fail,severity=high,policy=x,report.kind=PolicyReport,subject.kind=Pod,properties.k=v (see docs/results-api.md)."),
        query("labelSelector", "string", "Set expressions on the same fields: severity in (high,critical),result!=pass,properties.score>7."),
        query("limit", "integer", "Page size (at most 10000)."),
        query("message", "string", "Keep results whose message contains this text (ASCII case ignored)."),
        query("property", "string", "A property test: key>=8, key<4, key=text, key!=text, key, !key. Repeatable."),
        query("resourceVersion", "string", "Accepted for compatibility; results are always read from the latest state."),
    ];
    if summaries {
        params.push(query(
            "groupBy",
            "string",
            "namespace (default), policy, rule, category, source, report.kind or subject.kind.",
        ));
    } else {
        params.push(query(
            "count",
            "boolean",
            "Also return the number of matching results (all pages) in `total`.",
        ));
        params.push(query(
            "order",
            "string",
            "asc or desc (default) for sort=severity|timestamp.",
        ));
        params.push(query(
            "sort",
            "string",
            "report (default), severity (most severe first) or timestamp (newest first).",
        ));
    }
    params
}

pub(super) fn operation(
    id: &str,
    action: &str,
    kind: &str,
    schema: &str,
    params: Vec<Value>,
    description: &str,
) -> Value {
    let content: Map<String, Value> = ["application/json", "application/yaml"]
        .iter()
        .map(|ct| (ct.to_string(), json!({"schema": schema_ref(schema)})))
        .collect();
    json!({
        "tags": ["resultsPrextIo_v1alpha1"],
        "description": description,
        "operationId": id,
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": content}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": GROUP, "kind": kind, "version": VERSION},
    })
}

/// The query parameters of a computed resource's list.
fn params_of(what: Computed) -> Vec<Value> {
    match what {
        Computed::PolicyResults => list_params(false),
        Computed::ResultSummaries => list_params(true),
        Computed::Findings => super::history::params(false),
        Computed::ResultTrends => super::history::params(true),
    }
}

/// Adds the paths of one computed resource: its lists (namespaced and across namespaces)
/// and, when it serves `get`, its read.
fn resource_paths(out: &mut Map<String, Value>, def: &ResourceDef, what: Computed) {
    let base = format!("/apis/{}/{}", def.group, def.version);
    let namespace = path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    );
    let kind = def.kind;
    let list_op = |id: String| {
        operation(
            &id,
            "list",
            kind,
            def.list_kind,
            params_of(what),
            &format!("list objects of kind {kind}"),
        )
    };
    out.insert(
        format!("{base}/namespaces/{{namespace}}/{}", def.plural),
        json!({"get": list_op(format!("listResultsPrextIoV1alpha1Namespaced{kind}")), "parameters": [namespace]}),
    );
    out.insert(
        format!("{base}/{}", def.plural),
        json!({"get": list_op(format!("listResultsPrextIoV1alpha1{kind}ForAllNamespaces")), "parameters": []}),
    );
    if def.serves("get") {
        let read = operation(
            &format!("readResultsPrextIoV1alpha1Namespaced{kind}"),
            "get",
            kind,
            kind,
            Vec::new(),
            &format!("read the specified {kind}"),
        );
        out.insert(
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", def.plural),
            json!({"get": read, "parameters": [path_param("name", &format!("name of the {kind}")), namespace]}),
        );
    }
}

/// Whether a computed resource reads the findings history (`findings`, `resulttrends`).
fn is_history(what: Computed) -> bool {
    matches!(what, Computed::Findings | Computed::ResultTrends)
}

/// The paths of the computed resources. The history resources come first: the order in
/// which the document was first published (its hash is the `?hash=` clients cache by).
fn paths(rows: &[(&ResourceDef, Computed)]) -> Map<String, Value> {
    let mut out = Map::new();
    let (history, results): (Vec<_>, Vec<_>) = rows.iter().partition(|(_, what)| is_history(*what));
    for (def, what) in history.into_iter().chain(results) {
        resource_paths(&mut out, def, what);
    }
    out
}

/// The schema of a computed resource's items and of its list.
fn resource_schemas(what: Computed) -> [(String, Value); 2] {
    let total = |of: &str| {
        vec![(
            "total",
            integer(&format!("With ?count=true: every matching {of}, all pages.")),
        )]
    };
    let (kind, list_kind) = (resource(what).kind, resource(what).list_kind);
    let (item, extra) = match what {
        Computed::PolicyResults => (policy_result(), total("result")),
        Computed::ResultSummaries => (result_summary(), Vec::new()),
        Computed::Findings => (super::history::finding(), total("finding")),
        Computed::ResultTrends => (super::history::trend(), Vec::new()),
    };
    [
        (format!("{PREFIX}{kind}"), item),
        (format!("{PREFIX}{list_kind}"), list(kind, list_kind, extra)),
    ]
}

/// The schemas of the computed resources and their lists, then the meta types.
fn schemas(rows: &[(&ResourceDef, Computed)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (_, what) in rows {
        out.extend(resource_schemas(*what));
    }
    for (name, schema) in meta::schemas() {
        out.insert(format!("{}{name}", super::ops::META), schema);
    }
    out
}

/// The computed resources among `rows`, with what each computes.
fn computed(rows: &[&'static ResourceDef]) -> Vec<(&'static ResourceDef, Computed)> {
    rows.iter()
        .filter_map(|def| def.computed().map(|what| (*def, what)))
        .collect()
}

/// The OpenAPI 3.0 document of computed resources (one group/version).
pub(super) fn v3(rows: &[&'static ResourceDef]) -> Value {
    let rows = computed(rows);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "prext", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths(&rows),
        "components": {"schemas": schemas(&rows)},
    })
}

/// Adds the paths and definitions of computed resources to a Swagger 2.0 document (the
/// ones it already has are kept).
pub(super) fn add_to_v2(doc: &mut Value, rows: &[&'static ResourceDef]) {
    let rows = computed(rows);
    let mut paths = paths(&rows);
    for item in paths.values_mut() {
        swagger_params(&mut item["parameters"]);
        let op = &mut item["get"];
        swagger_params(&mut op["parameters"]);
        let schema = op["responses"]["200"]["content"]["application/json"]["schema"].take();
        op["responses"]["200"] = json!({"description": "OK", "schema": schema});
        if let Some(o) = op.as_object_mut() {
            o.insert("produces".into(), json!(["application/json", "application/yaml"]));
            o.insert("schemes".into(), json!(["https"]));
        }
    }
    let mut ours = json!({"paths": paths, "definitions": schemas(&rows)});
    render::to_v2_schema(&mut ours);
    for section in ["paths", "definitions"] {
        if let (Some(into), Some(from)) = (doc[section].as_object_mut(), ours[section].as_object()) {
            for (k, v) in from {
                into.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

/// Swagger 2.0 parameters carry their type inline rather than in a `schema`.
fn swagger_params(params: &mut Value) {
    for p in params.as_array_mut().into_iter().flatten() {
        if let Some(o) = p.as_object_mut() {
            if let Some(ty) = o.remove("schema").and_then(|s| s.get("type").cloned()) {
                o.insert("type".into(), ty);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3() -> &'static super::super::OpenApiDoc {
        super::super::v3_group_version(GROUP, VERSION).expect("served")
    }

    fn doc() -> Value {
        serde_json::from_slice(&v3().json).expect("json")
    }

    /// What `kubectl explain policyresults.subject` needs: the GVK on the path's operation and
    /// a schema carrying it, with every `$ref` resolving inside the document.
    #[test]
    fn explain_finds_the_kinds_and_refs_resolve() {
        let d = doc();
        for (plural, kind) in [
            ("policyresults", "PolicyResult"),
            ("resultsummaries", "ResultSummary"),
        ] {
            let op = &d["paths"][format!("/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{plural}")]["get"];
            assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], kind);
            let schema = &d["components"]["schemas"][format!("{PREFIX}{kind}")];
            assert_eq!(schema["x-kubernetes-group-version-kind"][0]["kind"], kind);
        }
        let text = String::from_utf8(v3().json.clone()).expect("utf8");
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap_or_default();
            assert!(
                d["components"]["schemas"].get(name).is_some(),
                "unresolved {name}"
            );
        }
        assert!(
            d["components"]["schemas"][format!("{PREFIX}PolicyResult")]["properties"]["subject"]
                ["properties"]["kind"]
                .is_object()
        );
    }

    #[test]
    fn root_and_v2_include_the_group() {
        let root = super::super::v3_root();
        let url = root["paths"]["apis/results.prext.io/v1alpha1"]["serverRelativeURL"]
            .as_str()
            .expect("url");
        assert!(url.ends_with(&v3().hash));
        assert!(root["paths"]["apis/wgpolicyk8s.io/v1alpha2"].is_object());
        assert!(super::super::v3_group_version("wgpolicyk8s.io", "v1alpha2").is_some());
        let v2: Value = serde_json::from_slice(super::super::v2()).expect("v2");
        let defs = &v2["definitions"];
        assert!(defs[format!("{PREFIX}PolicyResult")].is_object());
        assert!(defs["io.wgpolicyk8s.v1alpha2.PolicyReport"].is_object());
        let list = &v2["paths"]["/apis/results.prext.io/v1alpha1/policyresults"]["get"];
        assert_eq!(list["x-kubernetes-action"], "list");
        assert_eq!(
            list["responses"]["200"]["schema"]["$ref"],
            format!("#/definitions/{PREFIX}PolicyResultList")
        );
        assert_eq!(list["parameters"][0]["type"], "string");
        assert!(!serde_json::to_string(&v2)
            .expect("json")
            .contains("#/components/"));
    }
}
