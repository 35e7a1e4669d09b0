//! Object metadata rules of the generic registry: decoding request bodies, checking
//! apiVersion/kind/namespace against the URL, validating `ObjectMeta`, and setting the
//! system fields on create and update (`rest.BeforeCreate`, `rest.BeforeUpdate`).

use serde_json::{Map, Value};

use crate::names;
use crate::resources::ResourceDef;
use crate::status::{Status, StatusCause};

/// The largest object prext accepts, in bytes of the request body (413 above).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The format of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
}

/// Decodes a JSON or YAML body into a JSON value. A UTF-8 byte-order mark is accepted and
/// dropped; anything that is not a single object is a 400.
pub fn decode_body(bytes: &[u8], format: BodyFormat) -> Result<Value, Status> {
    decode_body_checked(bytes, format, false).map(|(value, _)| value)
}

/// [`decode_body`], with the `duplicate field "…"` messages of a JSON body's repeated keys
/// when `find_duplicates` is set ([`crate::duplicates`]; none for YAML), found in the same
/// parse.
pub fn decode_body_checked(
    bytes: &[u8],
    format: BodyFormat,
    find_duplicates: bool,
) -> Result<(Value, Vec<String>), Status> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut duplicates = Vec::new();
    let value: Value = match format {
        BodyFormat::Json => {
            let (value, found) = crate::duplicates::decode(bytes, find_duplicates)
                .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?;
            duplicates = found;
            value
        }
        BodyFormat::Yaml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Status::bad_request("the request body is not valid UTF-8"))?;
            crate::limits::yaml::check_depth(text, crate::limits::yaml::MAX_YAML_DEPTH)
                .map_err(|e| Status::bad_request(format!("the request body is not valid YAML: {e}")))?;
            serde_norway::from_str(text)
                .map_err(|e| Status::bad_request(format!("the request body is not valid YAML: {e}")))?
        }
    };
    if !value.is_object() {
        return Err(Status::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    Ok((value, duplicates))
}

/// A JSON document re-encoded as YAML (the `Accept: application/yaml` answers);
/// `None` when `json` is not a JSON document.
pub fn json_to_yaml(json: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(json).ok()?;
    serde_norway::to_string(&value).ok()
}

/// Checks that the body's apiVersion and kind are the URL's (400 otherwise).
pub fn check_type(def: &ResourceDef, obj: &Value) -> Result<(), Status> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(Status::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    if api_version.is_empty() {
        return Err(Status::bad_request(
            "Object 'apiVersion' is missing in the request body",
        ));
    }
    let expected = def.api_version();
    if api_version != expected || kind != def.kind {
        return Err(Status::bad_request(format!(
            "the API version in the data ({api_version}) and kind ({kind}) do not match the request: expected {expected}, {}",
            def.kind
        )));
    }
    Ok(())
}

/// The `metadata` object, created if missing (a non-object metadata is a 400).
pub fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, Status> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| Status::bad_request("the request body must be an object"))?;
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
        .ok_or_else(|| Status::bad_request("metadata must be an object"))
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Reconciles the namespace of the body with the namespace of the URL.
pub fn ensure_namespace(def: &ResourceDef, obj: &mut Value, path_ns: Option<&str>) -> Result<(), Status> {
    let meta = metadata_mut(obj)?;
    if !def.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let path_ns = path_ns.unwrap_or("");
    match meta.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("namespace".into(), Value::String(path_ns.to_string()));
            Ok(())
        }
        Some(ns) if ns == path_ns => Ok(()),
        Some(_) => Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
}

/// Validates `ObjectMeta` (name, namespace, labels, annotations, field types).
pub fn validate_metadata(def: &ResourceDef, obj: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let Some(meta) = obj.get("metadata").and_then(Value::as_object) else {
        causes.push(StatusCause::new(
            "FieldValueRequired",
            "Required value",
            "metadata",
        ));
        return causes;
    };
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        causes.push(StatusCause::new(
            "FieldValueRequired",
            "Required value: name or generateName is required",
            "metadata.name",
        ));
    } else {
        for msg in names::validate_name(name) {
            causes.push(StatusCause::new(
                "FieldValueInvalid",
                format!("Invalid value: \"{name}\": {msg}"),
                "metadata.name",
            ));
        }
    }
    if def.namespaced {
        let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if ns.is_empty() {
            causes.push(StatusCause::new(
                "FieldValueRequired",
                "Required value",
                "metadata.namespace",
            ));
        } else {
            for msg in names::validate_namespace(ns) {
                causes.push(StatusCause::new(
                    "FieldValueInvalid",
                    format!("Invalid value: \"{ns}\": {msg}"),
                    "metadata.namespace",
                ));
            }
        }
    }
    for (field, kind) in [("labels", "labels"), ("annotations", "annotations")] {
        match meta.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                let found = if kind == "labels" {
                    names::validate_labels(m)
                } else {
                    names::validate_annotations(m)
                };
                for (path, msg) in found {
                    causes.push(StatusCause::new("FieldValueInvalid", msg, path));
                }
            }
            Some(_) => causes.push(StatusCause::new(
                "FieldValueTypeInvalid",
                "Invalid value: must be a map of strings",
                format!("metadata.{field}"),
            )),
        }
    }
    for (field, want_array) in [("finalizers", true), ("ownerReferences", true)] {
        match meta.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if want_array => {
                if field == "finalizers" {
                    for (i, f) in items.iter().enumerate() {
                        if f.as_str().is_none_or(str::is_empty) {
                            causes.push(StatusCause::new(
                                "FieldValueInvalid",
                                "Invalid value: finalizers must be non-empty strings",
                                format!("metadata.finalizers[{i}]"),
                            ));
                        }
                    }
                }
            }
            Some(_) => causes.push(StatusCause::new(
                "FieldValueTypeInvalid",
                "Invalid value: must be a list",
                format!("metadata.{field}"),
            )),
        }
    }
    causes
}

/// The labels of an object as a map of strings (non-string values are skipped; validation
/// has rejected them before a write).
pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The finalizers of an object.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// RFC 3339 with whole seconds, as Kubernetes writes `metav1.Time`.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Sets the system fields of a new object (`BeforeCreate` + `FillObjectMetaSystemFields`):
/// resolves `generateName`, assigns uid, creationTimestamp and generation 1, and wipes the
/// fields clients may not set.
pub fn prepare_create(obj: &mut Value, now: jiff::Timestamp) -> Result<(), Status> {
    let meta = metadata_mut(obj)?;
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_name {
        if let Some(base) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let generated = names::generate_name(base);
            meta.insert("name".into(), Value::String(generated));
        }
    }
    meta.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), Value::String(format_time(now)));
    meta.insert("generation".into(), Value::from(1));
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(f);
    }
    Ok(())
}

/// Whether a top-level key is part of the content whose change bumps `generation`
/// (everything but `metadata` and the type fields).
fn is_content(key: &str) -> bool {
    !matches!(key, "metadata" | "apiVersion" | "kind")
}

/// Whether `old` and `new` have the same content outside `metadata` and the type fields:
/// what bumps `generation` when it changes. Compared in place (key order does not matter,
/// as for JSON object equality).
fn same_content(old: &Value, new: &Value) -> bool {
    let empty = Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let count = |m: &Map<String, Value>| m.keys().filter(|k| is_content(k)).count();
    count(old) == count(new)
        && old
            .iter()
            .filter(|(k, _)| is_content(k))
            .all(|(k, v)| new.get(k).is_some_and(|w| crate::equal::equal(v, w)))
}

/// Why an update cannot replace the stored object. The server words it (a uid mismatch is
/// the 409 of a failed uid precondition, as `BeforeUpdate` makes it).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The update carries a uid that is not the stored object's.
    #[error("uid {new} of the update is not the stored object's {stored}")]
    UidMismatch { new: String, stored: String },
    /// The update is not an object with a metadata object.
    #[error("{}", .0.message)]
    Invalid(Box<Status>),
}

impl From<Status> for UpdateError {
    fn from(s: Status) -> Self {
        UpdateError::Invalid(Box::new(s))
    }
}

/// Carries the immutable and server-owned fields of `old` into `new` (`BeforeUpdate`):
/// uid, creationTimestamp, deletion fields and generation, bumping the generation when
/// anything outside `metadata` changed. A uid in `new` that differs from `old` is refused.
pub fn prepare_update(old: &Value, new: &mut Value) -> Result<(), UpdateError> {
    let empty = Map::new();
    let old_meta = old.get("metadata").and_then(Value::as_object).unwrap_or(&empty);
    let changed = !same_content(old, new);
    let meta = metadata_mut(new)?;
    if let (Some(Value::String(new_uid)), Some(Value::String(old_uid))) =
        (meta.get("uid"), old_meta.get("uid"))
    {
        if !new_uid.is_empty() && new_uid != old_uid {
            return Err(UpdateError::UidMismatch {
                new: new_uid.clone(),
                stored: old_uid.clone(),
            });
        }
    }
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old_meta.get(f) {
            Some(v) => {
                if meta.get(f) != Some(v) {
                    meta.insert(f.into(), v.clone());
                }
            }
            None => {
                meta.remove(f);
            }
        }
    }
    meta.remove("selfLink");
    let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
    meta.insert(
        "generation".into(),
        Value::from(if changed { generation + 1 } else { generation }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;
    use serde_json::json;

    #[test]
    fn bom_and_yaml_bodies() {
        let v = decode_body(b"\xEF\xBB\xBF{\"a\":1}", BodyFormat::Json).unwrap();
        assert_eq!(v, json!({"a":1}));
        let v = decode_body(b"\xEF\xBB\xBFa: 1\nb: [x]\n", BodyFormat::Yaml).unwrap();
        assert_eq!(v, json!({"a":1,"b":["x"]}));
        assert_eq!(decode_body(b"[1]", BodyFormat::Json).unwrap_err().code, 400);
        assert_eq!(decode_body(b"{", BodyFormat::Json).unwrap_err().code, 400);
    }

    #[test]
    fn type_and_namespace_checks() {
        let def = &RESOURCES[0];
        let mut obj =
            json!({"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{"name":"a"}});
        check_type(def, &obj).unwrap();
        ensure_namespace(def, &mut obj, Some("ns")).unwrap();
        assert_eq!(meta_str(&obj, "namespace"), Some("ns"));
        assert_eq!(
            ensure_namespace(def, &mut obj, Some("other")).unwrap_err().code,
            400
        );
        let wrong = json!({"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"ClusterPolicyReport"});
        assert_eq!(check_type(def, &wrong).unwrap_err().code, 400);
    }

    #[test]
    fn update_bumps_generation_only_for_content() {
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let mut old = json!({"metadata":{"name":"a"},"summary":{"pass":1}});
        prepare_create(&mut old, now).unwrap();
        let mut same = json!({"metadata":{"name":"a","labels":{"x":"y"}},"summary":{"pass":1}});
        prepare_update(&old, &mut same).unwrap();
        assert_eq!(same["metadata"]["generation"], 1);
        assert_eq!(same["metadata"]["uid"], old["metadata"]["uid"]);
        assert_eq!(same["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        let mut changed = json!({"metadata":{"name":"a"},"summary":{"pass":2}});
        prepare_update(&old, &mut changed).unwrap();
        assert_eq!(changed["metadata"]["generation"], 2);
        let mut other_uid = json!({"metadata":{"name":"a","uid":"x"}});
        assert!(matches!(
            prepare_update(&old, &mut other_uid),
            Err(UpdateError::UidMismatch { ref new, .. }) if new == "x"
        ));
    }
}
