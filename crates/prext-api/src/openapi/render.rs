//! Rendering of the operation model and schemas as OpenAPI 3.0 and Swagger 2.0.

use serde_json::{json, Map, Value};

use super::ops::{self, In, Operation, Param, PathItem};
use crate::resources::ResourceDef;

const V3_PREFIX: &str = "#/components/schemas/";
const V2_PREFIX: &str = "#/definitions/";
const PRODUCES: [&str; 2] = ["application/json", "application/yaml"];

fn gvk_object(op: &Operation) -> Value {
    let (group, version, kind) = op.gvk;
    json!({ "group": group, "kind": kind, "version": version })
}

fn location(p: &Param) -> &'static str {
    match p.location {
        In::Path => "path",
        In::Query => "query",
    }
}

fn param_v3(p: &Param) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": location(p),
        "description": p.description,
        "schema": { "type": p.ty, "uniqueItems": true }
    });
    if p.location == In::Path {
        v["required"] = Value::Bool(true);
    }
    v
}

fn param_v2(p: &Param) -> Value {
    let mut v = json!({
        "uniqueItems": true,
        "type": p.ty,
        "description": p.description,
        "name": p.name,
        "in": location(p)
    });
    if p.location == In::Path {
        v["required"] = Value::Bool(true);
    }
    v
}

fn operation_v3(op: &Operation) -> Value {
    let mut o = Map::new();
    o.insert("tags".into(), json!([op.tag]));
    o.insert("description".into(), json!(op.description));
    o.insert("operationId".into(), json!(op.id));
    if !op.params.is_empty() {
        o.insert("parameters".into(), op.params.iter().map(param_v3).collect());
    }
    if let Some(body) = &op.body {
        let schema = json!({ "$ref": format!("{V3_PREFIX}{}", body.schema) });
        let content: Map<String, Value> = body
            .content_types
            .iter()
            .map(|ct| (ct.to_string(), json!({ "schema": schema })))
            .collect();
        o.insert(
            "requestBody".into(),
            json!({ "content": content, "required": body.required }),
        );
    }
    let mut responses = Map::new();
    for r in &op.responses {
        let schema = json!({ "$ref": format!("{V3_PREFIX}{}", r.schema) });
        let content: Map<String, Value> = PRODUCES
            .iter()
            .map(|ct| (ct.to_string(), json!({ "schema": schema })))
            .collect();
        responses.insert(
            r.code.into(),
            json!({ "description": r.description, "content": content }),
        );
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    o.insert("responses".into(), Value::Object(responses));
    o.insert("x-kubernetes-action".into(), json!(op.action));
    o.insert("x-kubernetes-group-version-kind".into(), gvk_object(op));
    Value::Object(o)
}

fn operation_v2(op: &Operation) -> Value {
    let mut o = Map::new();
    o.insert("description".into(), json!(op.description));
    let consumes = op.body.as_ref().map_or(&["*/*"][..], |b| b.content_types);
    o.insert("consumes".into(), json!(consumes));
    o.insert("produces".into(), json!(PRODUCES));
    o.insert("schemes".into(), json!(["https"]));
    o.insert("tags".into(), json!([op.tag]));
    o.insert("operationId".into(), json!(op.id));
    let mut params: Vec<Value> = Vec::new();
    if let Some(body) = &op.body {
        params.push(json!({
            "name": "body",
            "in": "body",
            "required": body.required,
            "schema": { "$ref": format!("{V2_PREFIX}{}", body.schema) }
        }));
    }
    params.extend(op.params.iter().map(param_v2));
    if !params.is_empty() {
        o.insert("parameters".into(), Value::Array(params));
    }
    let mut responses = Map::new();
    for r in &op.responses {
        responses.insert(
            r.code.into(),
            json!({ "description": r.description, "schema": { "$ref": format!("{V2_PREFIX}{}", r.schema) } }),
        );
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    o.insert("responses".into(), Value::Object(responses));
    o.insert("x-kubernetes-action".into(), json!(op.action));
    o.insert("x-kubernetes-group-version-kind".into(), gvk_object(op));
    Value::Object(o)
}

fn paths(
    kinds: &[&'static ResourceDef],
    param: fn(&Param) -> Value,
    operation: fn(&Operation) -> Value,
) -> Map<String, Value> {
    let items: Vec<PathItem> = kinds.iter().flat_map(|&def| ops::paths(def)).collect();
    items
        .into_iter()
        .map(|item| {
            let mut p = Map::new();
            for op in &item.operations {
                p.insert(op.method.into(), operation(op));
            }
            p.insert("parameters".into(), item.params.iter().map(param).collect());
            (item.path, Value::Object(p))
        })
        .collect()
}

fn info() -> Value {
    json!({ "title": "prext", "version": env!("CARGO_PKG_VERSION") })
}

/// The OpenAPI 3.0 document of these kinds (one group/version).
pub(super) fn v3(kinds: &[&'static ResourceDef]) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths(kinds, param_v3, operation_v3),
        "components": { "schemas": super::schemas(kinds) }
    })
}

/// The Swagger 2.0 document of these kinds.
pub(super) fn v2(kinds: &[&'static ResourceDef]) -> Value {
    let definitions: Map<String, Value> = super::schemas(kinds)
        .into_iter()
        .map(|(name, mut schema)| {
            to_v2_schema(&mut schema);
            (name, schema)
        })
        .collect();
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths(kinds, param_v2, operation_v2),
        "definitions": definitions
    })
}

/// Converts a v3 schema to Swagger 2.0 in place: references point into `definitions`, a
/// single-reference `allOf` becomes a plain `$ref` (Swagger 2.0 keeps its siblings), and
/// `nullable`, which 2.0 lacks, is dropped along with the `type` it qualified (as
/// apiextensions' `ToStructuralOpenAPIV2` does).
pub(super) fn to_v2_schema(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            let single_ref = match obj.get("allOf") {
                Some(Value::Array(all)) if all.len() == 1 && all[0].get("$ref").is_some() => {
                    all[0].get("$ref").cloned()
                }
                _ => None,
            };
            if let Some(r) = single_ref {
                obj.remove("allOf");
                obj.insert("$ref".into(), r);
            }
            if let Some(Value::String(r)) = obj.get_mut("$ref") {
                if let Some(name) = r.strip_prefix(V3_PREFIX) {
                    *r = format!("{V2_PREFIX}{name}");
                }
            }
            // Only the keyword (a boolean), never a property that happens to be named so.
            match obj.get("nullable") {
                Some(Value::Bool(true)) => {
                    obj.remove("nullable");
                    obj.remove("type");
                }
                Some(Value::Bool(false)) => {
                    obj.remove("nullable");
                }
                _ => {}
            }
            for child in obj.values_mut() {
                to_v2_schema(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_v2_schema),
        _ => {}
    }
}
