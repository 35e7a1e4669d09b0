//! Prometheus metrics on `/metrics` (text exposition format).
//!
//! * [`reports`]: the contents of the stored reports, as policy-reporter exposes them
//!   (`policy_report_result`, `cluster_policy_report_result`), computed from SQL at scrape
//!   time with a configurable label set.
//!
//! * [`requests`]: requests by verb, group, resource and code, latency, open watches.
//! * [`store`]: storage operation latency and errors.

pub mod reports;
pub mod requests;
pub mod store;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::state::AppState;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`. `?labels=namespace,severity` overrides the report metrics' label set for
/// one scrape (Prometheus sends it from a scrape config's `params`).
pub async fn metrics(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let labels = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "labels")
        .map(|(_, v)| v.into_owned());
    let labels = match labels {
        Some(text) => reports::LabelSet::parse(&text),
        None => Ok(reports::LabelSet::from_env()),
    };
    let labels = match labels {
        Ok(l) => l,
        Err(e) => {
            return ApiError::from(prext_api::status::Status::bad_request(e.to_string())).into_response()
        }
    };
    let mut registry = Registry::default();
    state.metrics.register(&mut registry);
    state.store_metrics.register(&mut registry);
    if let Err(e) = store::register_object_counts(&*state.store, &mut registry).await {
        return ApiError::storage(e).into_response();
    }
    if let Err(e) = reports::register(&*state.store, &labels, &mut registry).await {
        return ApiError::storage(e).into_response();
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        return ApiError::from(prext_api::status::Status::internal(format!(
            "encoding metrics: {e}"
        )))
        .into_response();
    }
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}
