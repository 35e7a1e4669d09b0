//! Body checks of create and update that kube-apiserver makes outside validation: duplicate
//! JSON keys reported by the strict decoder, and a resourceVersion sent on create.

use prext_api::meta::BodyFormat;
use prext_api::status::Status;
use prext_api::{schema, ResourceDef};
use serde_json::Value;

use super::write::admit;
use crate::error::ApiResult;
use crate::request::{FieldValidation, WriteParams};

/// The `duplicate field "…"` messages of a JSON body, when `fieldValidation` wants them
/// (Strict refuses them, Warn warns; Ignore and YAML bodies skip the scan).
pub fn duplicates(params: &WriteParams, format: BodyFormat, body: &[u8]) -> Vec<String> {
    if params.field_validation == FieldValidation::Ignore || format != BodyFormat::Json {
        return Vec::new();
    }
    prext_api::duplicates::duplicate_fields(body)
}

/// Whether a body to create carries a resourceVersion that the storage layer refuses: one
/// that parses as a non-zero unsigned integer (`ObjectResourceVersion` of the etcd3 store,
/// k8s.io/apiserver/pkg/storage/etcd3/store.go `Create`); anything else is dropped silently.
pub fn resource_version_set(obj: &serde_json::Value) -> bool {
    prext_api::meta::meta_str(obj, "resourceVersion")
        .and_then(|rv| rv.parse::<u64>().ok())
        .is_some_and(|n| n != 0)
}

/// [`admit`] for a decoded body whose strict decoding found `duplicates` (the
/// `duplicate field "…"` messages of [`duplicates`]): refused first under
/// `fieldValidation=Strict`, together with the unknown fields, as kube-apiserver's strict
/// decoder refuses them before validation; sent as warnings, before the unknown fields',
/// under `Warn`.
pub fn admit_decoded(
    def: &'static ResourceDef,
    obj: &mut Value,
    params: &WriteParams,
    duplicates: &[String],
) -> ApiResult<Vec<String>> {
    if duplicates.is_empty() {
        return admit(def, obj, params);
    }
    if params.field_validation == FieldValidation::Strict {
        let unknown = schema::for_resource(def).validate(obj).unknown_fields;
        let mut errors = duplicates.to_vec();
        errors.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
        return Err(Status::strict_decoding(def, &errors).into());
    }
    let mut warnings = admit(def, obj, params)?;
    if params.field_validation == FieldValidation::Warn {
        warnings.splice(0..0, duplicates.iter().cloned());
    }
    Ok(warnings)
}
