//! `/openapi/v2` and `/openapi/v3` (root and per group/version, with kube-openapi's hash
//! redirects and caching headers).

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Redirect, Response};
use http::{header, HeaderValue};
use prext_api::openapi;
use prext_api::status::Status;

use crate::error::ApiError;

pub async fn v2() -> Response {
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

pub async fn v3_group_version(Path((group, version)): Path<(String, String)>, RawQuery(q): RawQuery) -> Response {
    let Some(doc) = openapi::v3_group_version(&group, &version) else {
        return ApiError::from(Status::path_not_found(&format!("/openapi/v3/apis/{group}/{version}")))
            .into_response();
    };
    let hash = q
        .as_deref()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "hash").map(|(_, v)| v.into_owned()));
    let etag = HeaderValue::from_str(&format!("\"{}\"", doc.hash)).unwrap_or(HeaderValue::from_static("\"\""));
    match hash {
        Some(h) if h != doc.hash => {
            Redirect::permanent(&format!("/openapi/v3/apis/{group}/{version}?hash={}", doc.hash)).into_response()
        }
        Some(_) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::ETAG, etag),
                (header::VARY, HeaderValue::from_static("Accept")),
                (header::CACHE_CONTROL, HeaderValue::from_static("public, immutable")),
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
