//! Body checks of create and update that kube-apiserver makes outside validation: duplicate
//! JSON keys reported by the strict decoder, and a resourceVersion sent on create.

use prext_api::meta::BodyFormat;

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
