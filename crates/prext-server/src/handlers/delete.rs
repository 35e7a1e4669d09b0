//! delete and deletecollection: decode `DeleteOptions` (from the body or the query), call the
//! registry (preconditions, finalizers, dry runs live there), render the answer.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use prext_api::status::{Status, StatusCause, StatusDetails};
use prext_store::{Preconditions, StoredObject};
use serde_json::Value;

use crate::error::ApiResult;
use crate::registry::delete::{CollectionRequest, Deleted};
use crate::registry::DeleteOptions;
use crate::render;
use crate::request::{parse_dry_run, parse_revision, Ctx, ListParams};

fn parse_options(ctx: &Ctx, body: &[u8]) -> ApiResult<DeleteOptions> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let doc: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Status::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(kind) = doc.get("kind").and_then(Value::as_str) {
        if kind != "DeleteOptions" {
            return Err(
                Status::bad_request(format!("expected DeleteOptions in the body, got {kind}")).into(),
            );
        }
    }
    let mut dry: Vec<String> = doc
        .get("dryRun")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    dry.extend(ctx.query.all("dryRun").into_iter().map(str::to_string));
    let dry_run = parse_dry_run(&dry.iter().map(String::as_str).collect::<Vec<_>>())?;
    let policy = doc
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| ctx.query.get("propagationPolicy"))
        .unwrap_or("");
    if !matches!(policy, "" | "Orphan" | "Background" | "Foreground") {
        return Err(Status::invalid_kind(
            "DeleteOptions",
            "meta.k8s.io",
            "",
            vec![StatusCause::new(
                "FieldValueNotSupported",
                format!("Unsupported value: \"{policy}\": supported values: \"Background\", \"Foreground\", \"Orphan\""),
                "propagationPolicy",
            )],
        )
        .into());
    }
    let pre = doc.get("preconditions");
    let uid = pre
        .and_then(|p| p.get("uid"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let rv = match pre.and_then(|p| p.get("resourceVersion")).and_then(Value::as_str) {
        Some(s) => parse_revision(s)?,
        None => None,
    };
    Ok(DeleteOptions {
        dry_run,
        preconditions: Preconditions {
            uid,
            resource_version: rv,
        },
    })
}

fn success(ctx: &Ctx, gone: &StoredObject) -> Response {
    let def = ctx.path.def;
    let status = Status::success(StatusDetails {
        name: gone.key.name.clone(),
        group: def.group.into(),
        kind: def.plural.into(),
        uid: gone.uid.clone(),
        ..Default::default()
    });
    render::json_bytes(StatusCode::OK, serde_json::to_vec(&status).unwrap_or_default())
}

/// DELETE of one object.
pub async fn delete(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let opts = parse_options(&ctx, &body)?;
    match ctx.state.registry.delete(&ctx.object_ref(), &opts).await? {
        Deleted::Gone(gone) => Ok(success(&ctx, &gone)),
        Deleted::Marked(body) => Ok(render::json_bytes(StatusCode::OK, body)),
    }
}

/// DELETE of a collection: every object matching the selectors, synchronously, as the
/// namespace controller expects (it re-lists right after and needs nothing left). The answer
/// is the list of what was deleted, as listed before deleting (`DeleteCollection` of
/// k8s.io/apiserver/pkg/registry/generic/registry/store.go).
pub async fn delete_collection(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let def = ctx.path.def;
    let opts = parse_options(&ctx, &body)?;
    let params = ListParams::parse(&ctx.query)?;
    let request = CollectionRequest {
        namespace: ctx.path.namespace.clone(),
        labels: params.labels,
        fields: params.fields,
    };
    let deleted = ctx.state.registry.delete_collection(def, request, &opts).await?;
    Ok(render::json_bytes(
        StatusCode::OK,
        render::deleted_list(def, deleted.revision, &deleted.items),
    ))
}
