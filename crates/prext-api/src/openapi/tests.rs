use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use super::*;
use crate::resources::RESOURCES;

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("document is JSON")
}

fn v3_doc(def: &ResourceDef) -> Value {
    parse(&v3_group_version(def.group, def.version).expect("served").json)
}

/// Every `$ref` string in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(obj) => {
            if let Some(Value::String(r)) = obj.get("$ref") {
                out.push(r.clone());
            }
            obj.values().for_each(|c| refs(c, out));
        }
        Value::Array(items) => items.iter().for_each(|c| refs(c, out)),
        _ => {}
    }
}

fn gvk(def: &ResourceDef, kind: &str) -> Value {
    json!({"group": def.group, "kind": kind, "version": def.version})
}

/// Resolves a local reference (`#/components/schemas/X` or `#/definitions/X`).
fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    let pointer = r.strip_prefix('#')?;
    doc.pointer(pointer)
}

#[test]
fn every_ref_resolves_in_every_document() {
    let mut docs: Vec<(Value, &str)> = resources::groups()
        .iter()
        .flat_map(|(g, vs)| vs.iter().map(move |v| (*g, *v)))
        .map(|(g, v)| {
            (
                parse(&v3_group_version(g, v).expect("served").json),
                "#/components/schemas/",
            )
        })
        .collect();
    docs.push((parse(v2()), "#/definitions/"));
    for (doc, prefix) in &docs {
        let mut all = Vec::new();
        refs(doc, &mut all);
        assert!(all.len() > 20);
        for r in all {
            assert!(r.starts_with(prefix), "{r}");
            assert!(resolve(doc, &r).is_some_and(Value::is_object), "unresolved {r}");
        }
    }
}

#[test]
fn operations_and_schemas_carry_the_gvk() {
    let v2doc = parse(v2());
    for def in RESOURCES {
        let doc = v3_doc(def);
        let prefix = format!("/apis/{}/{}/", def.group, def.version);
        let mine: Vec<_> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix) && p.split('/').any(|s| s == def.plural))
            .collect();
        assert_eq!(mine.len(), if def.namespaced { 3 } else { 2 }, "{}", def.kind);
        for (path, item) in mine {
            assert_eq!(
                path.contains("{namespace}"),
                def.namespaced && path.contains("namespaces")
            );
            for (method, op) in item
                .as_object()
                .expect("item")
                .iter()
                .filter(|(m, _)| *m != "parameters")
            {
                assert_eq!(
                    op["x-kubernetes-group-version-kind"],
                    gvk(def, def.kind),
                    "{method} {path}"
                );
                assert!(op["x-kubernetes-action"].is_string());
                let v2op = &v2doc["paths"][path][method];
                assert_eq!(v2op["x-kubernetes-group-version-kind"], gvk(def, def.kind));
            }
        }
        let kind_name = ops::kind_schema_name(def);
        let list_name = ops::list_schema_name(def);
        for (doc, defs) in [(&doc, "/components/schemas"), (&v2doc, "/definitions")] {
            let schemas = doc.pointer(defs).expect("schemas");
            assert_eq!(
                schemas[&kind_name]["x-kubernetes-group-version-kind"],
                json!([gvk(def, def.kind)])
            );
            assert_eq!(
                schemas[&list_name]["x-kubernetes-group-version-kind"],
                json!([gvk(def, def.list_kind)])
            );
        }
    }
}

#[test]
fn cluster_scoped_kinds_have_no_namespace_paths() {
    let def = resources::find("wgpolicyk8s.io", "v1alpha2", "clusterpolicyreports").expect("served");
    let doc = v3_doc(def);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/{name}"));
    assert!(paths
        .keys()
        .all(|p| !(p.contains("namespaces") && p.contains("clusterpolicyreports"))));
    let item = &paths["/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/{name}"];
    let names: Vec<_> = item["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("name"), json!("pretty")]);
}

#[test]
fn patch_accepts_exactly_the_crd_patch_types() {
    let v2doc = parse(v2());
    for def in RESOURCES {
        let doc = v3_doc(def);
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let Some(patch) = item.get("patch") else {
                continue;
            };
            let types: Vec<_> = patch["requestBody"]["content"]
                .as_object()
                .expect("content")
                .keys()
                .cloned()
                .collect();
            assert_eq!(types, ops::PATCH_TYPES, "{path}");
            assert_eq!(v2doc["paths"][path]["patch"]["consumes"], json!(ops::PATCH_TYPES));
            // kubectl's QueryParamVerifierV3 looks for fieldValidation on the PATCH op.
            let params: Vec<_> = patch["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .map(|p| p["name"].as_str().unwrap_or_default())
                .collect();
            assert_eq!(params, ["dryRun", "fieldManager", "fieldValidation", "force"]);
        }
    }
    assert!(!String::from_utf8_lossy(v2()).contains("strategic-merge-patch"));
}

#[test]
fn list_operations_take_list_parameters() {
    let def = resources::find("openreports.io", "v1alpha1", "reports").expect("served");
    let doc = v3_doc(def);
    for path in [
        "/apis/openreports.io/v1alpha1/reports",
        "/apis/openreports.io/v1alpha1/namespaces/{namespace}/reports",
    ] {
        let list = &doc["paths"][path]["get"];
        assert_eq!(list["x-kubernetes-action"], "list");
        let names: Vec<_> = list["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .map(|p| p["name"].as_str().unwrap_or_default())
            .collect();
        for n in [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "resourceVersionMatch",
            "watch",
            "allowWatchBookmarks",
            "sendInitialEvents",
            "timeoutSeconds",
        ] {
            assert!(names.contains(&n), "{path} lacks {n}");
        }
        assert_eq!(
            list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.openreports.v1alpha1.ReportList"
        );
    }
}

#[test]
fn hashes_are_stable_and_listed_in_the_root() {
    let root = v3_root();
    let paths = root["paths"].as_object().expect("paths");
    let served: Vec<_> = resources::groups_of(TABLE)
        .into_iter()
        .flat_map(|(g, vs)| vs.into_iter().map(move |v| format!("apis/{g}/{v}")))
        .collect();
    assert_eq!(paths.keys().cloned().collect::<Vec<_>>(), served);
    assert_eq!(root.as_object().map(|o| o.len()), Some(1));
    for (g, vs) in resources::groups_of(TABLE) {
        for v in vs {
            let doc = v3_group_version(g, v).expect("served");
            assert_eq!(doc.hash, hex::encode_upper(Sha512::digest(&doc.json)));
            assert_eq!(doc.hash.len(), 128);
            assert_eq!(
                paths[&format!("apis/{g}/{v}")]["serverRelativeURL"],
                format!("/openapi/v3/apis/{g}/{v}?hash={}", doc.hash)
            );
            // Rebuilding the document gives the same bytes.
            let rows: Vec<_> = resources::served_in(TABLE, g, v).collect();
            assert_eq!(OpenApiDoc::new(&v3_document(&rows)), *doc);
        }
    }
    assert!(v3_group_version("apps", "v1").is_none());
    assert!(v3_group_version("wgpolicyk8s.io", "v1beta1").is_none());
}

/// What `kubectl explain policyreport.results.result` does with the v3 document: find
/// the GVK on the resource's path, the schema carrying that GVK, then follow the fields.
#[test]
fn explain_can_walk_to_result_descriptions() {
    for def in RESOURCES
        .iter()
        .filter(|d| d.layout() == Some(crate::resources::ReportLayout::TopLevel))
    {
        let doc = v3_doc(def);
        let path = format!("/apis/{}/{}/{}", def.group, def.version, def.plural);
        let want = doc["paths"][&path]["get"]["x-kubernetes-group-version-kind"].clone();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let (_, schema) = schemas
            .iter()
            .find(|(_, s)| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|a| a.contains(&want))
            })
            .expect("a schema with the GVK");
        let result = &schema["properties"]["results"]["items"]["properties"]["result"];
        assert!(result["description"]
            .as_str()
            .is_some_and(|d| d.contains("outcome")));
        let meta = resolve(
            &doc,
            schema["properties"]["metadata"]["allOf"][0]["$ref"]
                .as_str()
                .expect("ref"),
        )
        .expect("ObjectMeta");
        assert!(meta["properties"]["name"]["description"].is_string());
    }
}

#[test]
fn v2_is_swagger_with_unique_operation_ids() {
    let doc = parse(v2());
    assert_eq!(doc["swagger"], "2.0");
    let mut ids: Vec<_> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().into_iter().flatten())
        .filter_map(|(_, op)| op.get("operationId").and_then(Value::as_str))
        .collect();
    let count = ids.len();
    // The computed resources: two lists, and a read when they serve `get`.
    let computed: usize = TABLE
        .iter()
        .filter(|d| d.computed().is_some())
        .map(|d| 2 + usize::from(d.serves("get")))
        .sum();
    assert_eq!(
        count,
        RESOURCES
            .iter()
            .map(|d| if d.namespaced { 8 } else { 7 })
            .sum::<usize>()
            + computed
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count);
    let meta = &doc["definitions"]["io.wgpolicyk8s.v1alpha2.PolicyReport"]["properties"]["metadata"];
    assert_eq!(
        meta["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(meta.get("allOf").is_none());
    let body = &doc["paths"]["/apis/wgpolicyk8s.io/v1alpha2/namespaces/{namespace}/policyreports"]["post"]
        ["parameters"][0];
    assert_eq!(body["in"], "body");
    assert_eq!(
        body["schema"]["$ref"],
        "#/definitions/io.wgpolicyk8s.v1alpha2.PolicyReport"
    );
}

#[test]
fn v2_conversion_handles_nullable_and_refs() {
    let mut s = json!({
        "properties": {
            "nullable": {"type": "string"},
            "a": {"type": "string", "nullable": true},
            "b": {"description": "d", "allOf": [{"$ref": "#/components/schemas/X"}]}
        }
    });
    render::to_v2_schema(&mut s);
    assert_eq!(
        s,
        json!({"properties": {
            "nullable": {"type": "string"},
            "a": {},
            "b": {"description": "d", "$ref": "#/definitions/X"}
        }})
    );
}
