//! `/openapi/v2` and `/openapi/v3` (root and per group/version, with kube-openapi's hash
//! redirects and caching headers).

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use prext_api::openapi;
use prext_api::status::Status;

use crate::error::ApiError;

/// The protobuf media type of OpenAPI v2 (gnostic's `openapi_v2.Document`).
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// `/openapi/v2` as JSON, the form kube-apiserver's aggregator downloads and merges.
///
/// A client that accepts only protobuf is kubectl's client-side validator talking to prext
/// directly (standalone mode). prext does not encode gnostic protobuf; it answers an empty
/// document (a valid encoding of an empty `Document` message), which makes kubectl skip its
/// client-side schema check. Validation still happens: the server validates every write
/// against the schema, strictly when kubectl asks for `fieldValidation=Strict`.
pub async fn v2(headers: http::HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains(V2_PROTOBUF) && !accept.contains("json") && !accept.contains("*/*") {
        return (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            Vec::<u8>::new(),
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        openapi::v2().to_vec(),
    )
        .into_response()
}

pub async fn v3_root() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        serde_json::to_vec(&openapi::v3_root()).unwrap_or_default(),
    )
        .into_response()
}

pub async fn v3_group_version(
    Path((group, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(doc) = openapi::v3_group_version(&group, &version) else {
        return ApiError::from(Status::path_not_found(&format!(
            "/openapi/v3/apis/{group}/{version}"
        )))
        .into_response();
    };
    let hash = q.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "hash")
            .map(|(_, v)| v.into_owned())
    });
    let etag =
        HeaderValue::from_str(&format!("\"{}\"", doc.hash)).unwrap_or(HeaderValue::from_static("\"\""));
    match hash {
        // kube-openapi answers a stale hash with 301 to the current one.
        Some(h) if h != doc.hash => (
            StatusCode::MOVED_PERMANENTLY,
            [(
                header::LOCATION,
                format!("/openapi/v3/apis/{group}/{version}?hash={}", doc.hash),
            )],
        )
            .into_response(),
        Some(_) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::ETAG, etag),
                (header::VARY, HeaderValue::from_static("Accept")),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, immutable"),
                ),
            ],
            doc.json.clone(),
        )
            .into_response(),
        None => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::ETAG, etag),
                (header::VARY, HeaderValue::from_static("Accept")),
            ],
            doc.json.clone(),
        )
            .into_response(),
    }
}
