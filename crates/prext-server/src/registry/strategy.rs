//! The rules every write of a report shares, pure (no store, no HTTP): validation of
//! metadata and schema with pruning and defaults, `fieldValidation`, the finalizer rule of
//! updates, and the store write an admitted object becomes. The server's writes and
//! `prext migrate` both admit objects through here.

use prext_api::meta;
use prext_api::status::{Status, StatusCause};
use prext_api::{report, schema, ResourceDef};
use prext_store::{ObjectKey, ObjectWrite};
use serde_json::Value;

use super::FieldValidation;

/// What validation found in an object (already pruned and defaulted in place).
#[derive(Debug, Default)]
pub struct Validation {
    /// Metadata and schema violations.
    pub causes: Vec<StatusCause>,
    /// Fields the schema does not know, removed from the object.
    pub unknown_fields: Vec<String>,
}

/// Validates metadata and the schema, prunes unknown fields and applies defaults.
pub fn validate(def: &'static ResourceDef, obj: &mut Value) -> Validation {
    let mut causes = meta::validate_metadata(def, obj);
    let validation = schema::for_resource(def).validate(obj);
    causes.extend(validation.causes);
    Validation {
        causes,
        unknown_fields: validation.unknown_fields,
    }
}

/// `fieldValidation=Strict` refuses unknown fields of an applied configuration with this error.
pub fn strict_decoding_error(unknown: &[String]) -> Status {
    let list = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Status::bad_request(format!("strict decoding error: {list}"))
}

/// Admits an object for a write: [`validate`], then `fieldValidation` of the unknown fields
/// and of the `duplicates` the strict decoding of its body found (refused first under
/// `Strict`, with the unknown fields, as kube-apiserver's decoder refuses them before
/// validation; warned about before the unknown fields under `Warn`). Returns the warnings to
/// send.
pub fn admit(
    def: &'static ResourceDef,
    obj: &mut Value,
    field_validation: FieldValidation,
    duplicates: &[String],
) -> Result<Vec<String>, Status> {
    if field_validation == FieldValidation::Strict && !duplicates.is_empty() {
        let unknown = schema::for_resource(def).validate(obj).unknown_fields;
        let mut errors = duplicates.to_vec();
        errors.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
        return Err(Status::strict_decoding(def, &errors));
    }
    let name = meta::meta_str(obj, "name").unwrap_or("").to_string();
    let validation = validate(def, obj);
    if !validation.causes.is_empty() {
        return Err(Status::invalid(def, &name, validation.causes));
    }
    let mut warnings = Vec::new();
    if field_validation == FieldValidation::Warn {
        warnings.extend_from_slice(duplicates);
    }
    if validation.unknown_fields.is_empty() {
        return Ok(warnings);
    }
    let unknown = validation
        .unknown_fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""));
    match field_validation {
        FieldValidation::Strict => Err(Status::strict_decoding(def, &unknown.collect::<Vec<_>>())),
        FieldValidation::Warn => {
            warnings.extend(unknown);
            Ok(warnings)
        }
        FieldValidation::Ignore => Ok(warnings),
    }
}

/// Whether a body to create carries a resourceVersion that the storage layer refuses: one
/// that parses as a non-zero unsigned integer (`ObjectResourceVersion` of the etcd3 store,
/// k8s.io/apiserver/pkg/storage/etcd3/store.go `Create`); anything else is dropped silently.
pub fn resource_version_set(obj: &Value) -> bool {
    meta::meta_str(obj, "resourceVersion")
        .and_then(|rv| rv.parse::<u64>().ok())
        .is_some_and(|n| n != 0)
}

/// What the store needs to write `obj` at `key` (whose name `metadata.name` overrides).
pub fn object_write(def: &'static ResourceDef, key: &ObjectKey, obj: Value) -> ObjectWrite {
    let mut key = key.clone();
    if let Some(name) = meta::meta_str(&obj, "name") {
        if name != key.name {
            key.name = name.to_string();
        }
    }
    ObjectWrite {
        key,
        uid: meta::meta_str(&obj, "uid").unwrap_or("").to_string(),
        labels: meta::labels(&obj),
        created: meta::meta_str(&obj, "creationTimestamp")
            .unwrap_or("")
            .to_string(),
        deleting: meta::meta_str(&obj, "deletionTimestamp").is_some(),
        index: report::index(def, &obj),
        body: obj,
    }
}

/// Once deletion has started, no finalizer may be added.
pub fn check_finalizers(def: &'static ResourceDef, old: &Value, new: &Value) -> Result<(), Status> {
    if meta::meta_str(old, "deletionTimestamp").is_none() {
        return Ok(());
    }
    let before = meta::finalizers(old);
    let added: Vec<String> = meta::finalizers(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    let name = meta::meta_str(old, "name").unwrap_or("");
    Err(Status::invalid(
        def,
        name,
        vec![StatusCause::new(
            "FieldValueForbidden",
            format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
            "metadata.finalizers",
        )],
    ))
}

/// The type, namespace and name of a body written to `name`: the type must be the kind's,
/// the namespace that of the path, and the name, when set, the one on the URL.
pub fn check_identity(
    def: &'static ResourceDef,
    obj: &mut Value,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), Status> {
    meta::check_type(def, obj)?;
    meta::ensure_namespace(def, obj, namespace)?;
    match meta::meta_str(obj, "name") {
        Some(n) if n != name => Err(Status::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => {
            meta::metadata_mut(obj)?.insert("name".into(), Value::String(name.to_string()));
            Ok(())
        }
    }
}

/// The stored object parsed as JSON.
pub fn parse_stored(stored: &prext_store::StoredObject) -> Result<Value, Status> {
    serde_json::from_slice(&stored.body)
        .map_err(|e| Status::internal(format!("stored object is corrupt: {e}")))
}

/// An object serialized as the answer of a dry run.
pub fn dry_run_body(obj: &Value) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(obj).unwrap_or_default())
}
