//! `Accept: application/yaml`: kube-apiserver serves objects, lists, Tables and `Status`
//! errors as YAML (`sigs.k8s.io/yaml`, the same document as the JSON one). prext renders JSON
//! everywhere, so this layer re-encodes a JSON answer as YAML when the client prefers YAML.
//! Watches are never re-encoded: [`crate::negotiate`] refuses YAML for them (406), as
//! kube-apiserver has no YAML stream framing.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{header, HeaderValue};
use http_body_util::BodyExt as _;

/// The YAML media type.
pub const YAML: &str = "application/yaml";

/// Whether the first media range of `Accept` that prext can serve is YAML.
pub fn prefers_yaml(accept: &str) -> bool {
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            YAML => return true,
            "application/json" | "application/*" | "*/*" => return false,
            _ => {}
        }
    }
    false
}

/// Whether the request is a watch (its answer is a stream, never re-encoded).
fn is_watch(req: &Request) -> bool {
    let query = crate::request::Query::parse(req.uri().query());
    query.flag("watch") || req.uri().path().contains("/watch/")
}

/// Middleware: re-encodes `application/json` answers as YAML for clients that prefer it.
pub async fn encode(req: Request, next: Next) -> Response {
    let wants = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(prefers_yaml)
        && !is_watch(&req);
    let resp = next.run(req).await;
    if !wants {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct == "application/json");
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "response body failed while encoding it as YAML");
            return Response::from_parts(parts, Body::empty());
        }
    };
    match prext_api::meta::json_to_yaml(&bytes) {
        Some(yaml) => {
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(YAML));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(yaml))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_servable_range_decides() {
        assert!(prefers_yaml("application/yaml"));
        assert!(prefers_yaml(
            "application/vnd.kubernetes.protobuf, application/yaml, application/json"
        ));
        assert!(!prefers_yaml("application/json, application/yaml"));
        assert!(!prefers_yaml("*/*"));
        assert!(prefers_yaml("application/yaml;as=Table;v=v1;g=meta.k8s.io"));
    }
}
