//! HTTP-level contract checks against a real `prext serve`, through kube-rs's raw
//! `Client::send` so that status codes, headers and `Status` bodies are seen exactly as sent.
//!
//! `discovery`: authentication, health, discovery documents and OpenAPI. `writes`: create
//! and update semantics and their errors. `lifecycle`: dry runs, finalizers, delete
//! preconditions and deletecollection. `reads`: paging, PartialObjectMetadata and Table.

#[path = "../common/mod.rs"]
mod common;

mod discovery;
mod lifecycle;
mod metrics;
mod reads;
mod writes;

use common::http::{create, get, Raw};
use common::samples::Kind;
use serde_json::Value;

/// GETs one object; the raw response, for asserting 404s too.
async fn fetch(client: &kube::Client, kind: Kind, ns: &str, name: &str) -> Raw {
    get(client, &kind.item(Some(ns), name)).await
}

/// The `details.causes[].field` values of a Status.
fn cause_fields(status: &Value) -> Vec<String> {
    status["details"]["causes"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
