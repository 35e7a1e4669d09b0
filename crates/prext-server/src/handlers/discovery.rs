//! Discovery and version endpoints, served from the resource table only.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use prext_api::discovery;
use prext_api::status::Status;
use serde_json::Value;

use crate::error::ApiError;

fn json(v: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

pub async fn version() -> Response {
    json(&discovery::version_info())
}

/// `/api`. Behind kube-apiserver this path is never proxied to prext; served directly
/// (standalone mode), it announces a minimal core group so that kubectl can resolve namespaces
/// and `kind: List` documents.
pub async fn core_api() -> Response {
    json(&serde_json::json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}))
}

/// `/api/v1`: only `namespaces`, read-only (see [`namespace`]).
pub async fn core_v1() -> Response {
    json(&serde_json::json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": [{
            "name": "namespaces", "singularName": "namespace", "namespaced": false,
            "kind": "Namespace", "verbs": ["get"], "shortNames": ["ns"],
        }],
    }))
}

/// `/api/v1/namespaces/{name}`: standalone prext has no namespace objects; every valid
/// namespace name exists and is Active, which is what kubectl checks before reporting a
/// missing report.
pub async fn namespace(Path(name): Path<String>) -> Response {
    if !prext_api::names::validate_namespace(&name).is_empty() {
        let mut status = Status::path_not_found(&format!("/api/v1/namespaces/{name}"));
        status.message = format!("namespaces \"{name}\" not found");
        return ApiError::from(status).into_response();
    }
    json(&serde_json::json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }))
}

/// `/apis`: aggregated discovery v2 when asked for, with ETag and 304; else `APIGroupList`.
pub async fn apis(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !discovery::wants_aggregated(accept) {
        return json(&discovery::api_group_list());
    }
    let doc = discovery::aggregated();
    let etag = HeaderValue::from_str(&doc.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let common = [
        (header::ETAG, etag),
        (header::VARY, HeaderValue::from_static("Accept")),
        (header::CACHE_CONTROL, HeaderValue::from_static("public")),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == doc.etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(discovery::AGGREGATED_V2),
        )],
        doc.json.clone(),
    )
        .into_response()
}

pub async fn group(Path(group): Path<String>) -> Response {
    match discovery::api_group_doc(&group) {
        Some(doc) => json(&doc),
        None => ApiError::from(Status::path_not_found(&format!("/apis/{group}"))).into_response(),
    }
}

pub async fn group_version(Path((group, version)): Path<(String, String)>) -> Response {
    match discovery::api_resource_list(&group, &version) {
        Some(doc) => json(&doc),
        None => ApiError::from(Status::path_not_found(&format!("/apis/{group}/{version}"))).into_response(),
    }
}
