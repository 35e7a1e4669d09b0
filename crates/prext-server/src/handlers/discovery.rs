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

/// `/api`: aggregated servers answer 404, which discovery clients tolerate.
pub async fn core_api() -> Response {
    ApiError::from(Status::path_not_found("/api")).into_response()
}

/// `/apis`: aggregated discovery v2 when asked for, with ETag and 304; else `APIGroupList`.
pub async fn apis(headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
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
        [(header::CONTENT_TYPE, HeaderValue::from_static(discovery::AGGREGATED_V2))],
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
