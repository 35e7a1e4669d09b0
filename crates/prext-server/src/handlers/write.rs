//! create (POST), update (PUT) and patch (PATCH, server-side apply included): decode the
//! body and options, call the registry, render what it wrote.

use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use prext_api::meta::BodyFormat;
use prext_api::status::Status;
use serde_json::Value;

use crate::error::ApiResult;
use crate::negotiate::{negotiate, Target};
use crate::registry::{Patch, Written};
use crate::render;
use crate::request::Ctx;

/// The body format named by `Content-Type` for create and update.
fn body_format(ctx: &Ctx) -> ApiResult<BodyFormat> {
    let ct = ctx.header(header::CONTENT_TYPE).unwrap_or("application/json");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyFormat::Yaml),
        other => Err(Status::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other})"
        ))
        .into()),
    }
}

/// Renders what a write answered.
fn respond(ctx: &Ctx, written: Written) -> ApiResult<Response> {
    let code = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let output = negotiate(
        ctx.header(header::ACCEPT),
        Target::Object,
        ctx.query.get("includeObject"),
    )?;
    Ok(with_warnings(
        render::object(ctx.path.def, output, written.body, code)?,
        &written.warnings,
    ))
}

/// A response carrying `Warning` headers.
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        // `NewWarningHeader` of k8s.io/apimachinery/pkg/util/net/http.go: `"` and `\` escaped.
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// POST: create.
pub async fn create(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let mut opts = ctx.write_options()?;
    let format = body_format(&ctx)?;
    let decoded = crate::decode::checked(body, format, opts.field_validation).await?;
    opts.duplicates = decoded.duplicates;
    let obj = decoded.value;
    let written = ctx
        .state
        .registry
        .create(ctx.path.def, ctx.path.namespace.as_deref(), obj, &opts)
        .await?;
    respond(&ctx, written)
}

/// PUT: update. The body must carry the resourceVersion it was based on.
pub async fn update(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let mut opts = ctx.write_options()?;
    let format = body_format(&ctx)?;
    let decoded = crate::decode::checked(body, format, opts.field_validation).await?;
    opts.duplicates = decoded.duplicates;
    let new = decoded.value;
    let written = ctx.state.registry.update(&ctx.object_ref(), new, &opts).await?;
    respond(&ctx, written)
}

/// A PATCH body: a patch to apply to the live object, or a server-side apply configuration.
enum PatchBody {
    Patch(Patch),
    Apply(Value),
}

async fn patch_body(ctx: &Ctx, body: Bytes) -> ApiResult<PatchBody> {
    let ct = ctx.header(header::CONTENT_TYPE).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let bom = if body.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let body = body.slice(bom..);
    match media.as_str() {
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_slice(&body)
                .map_err(|e| Status::bad_request(format!("invalid JSON patch: {e}")))?;
            prext_api::limits::patch::check_operation_count(p.0.len())?;
            Ok(PatchBody::Patch(Patch::Json(p)))
        }
        "application/merge-patch+json" => serde_json::from_slice(&body)
            .map(|p| PatchBody::Patch(Patch::Merge(p)))
            .map_err(|e| Status::bad_request(format!("invalid merge patch: {e}")).into()),
        "application/apply-patch+yaml" => Ok(PatchBody::Apply(
            crate::decode::body(body, BodyFormat::Yaml).await?,
        )),
        other => Err(Status::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
        ))
        .into()),
    }
}

/// PATCH: a JSON patch or merge patch, or a server-side apply.
pub async fn patch(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let opts = ctx.write_options()?;
    let target = ctx.object_ref();
    let registry = &ctx.state.registry;
    let written = match patch_body(&ctx, body).await? {
        PatchBody::Apply(applied) => registry.apply(&target, applied, &opts).await?,
        PatchBody::Patch(patch) => registry.patch(&target, &patch, &opts).await?,
    };
    respond(&ctx, written)
}
