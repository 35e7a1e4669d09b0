//! Server-side apply (`application/apply-patch+yaml`): the applied configuration is merged
//! into the live object by field ownership (`prext_api::apply`), then written through the same
//! admission and compare-and-swap path as every other write.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use prext_api::meta;
use prext_api::status::{Status, StatusCause};
use prext_api::{apply, schema};
use serde_json::Value;

use super::read::object_key;
use super::resource::Ctx;
use super::write::{admit, parse_stored, replace, respond, to_write, Updated, RETRIES};
use crate::error::{ApiError, ApiResult};
use crate::request::{FieldValidation, WriteParams};

/// Server-side apply (`application/apply-patch+yaml`): merges the applied configuration into
/// the live object by field ownership, creating the object when it does not exist.
pub async fn server_side_apply(ctx: Ctx, params: WriteParams, mut applied: Value) -> ApiResult<Response> {
    let def = ctx.path.def;
    let name = ctx.path.name.clone().unwrap_or_default();
    let Some(manager) = params.field_manager.clone() else {
        return Err(Status::invalid_kind(
            "PatchOptions",
            "meta.k8s.io",
            "",
            vec![StatusCause::new(
                "FieldValueRequired",
                "Required value: is required for apply patch",
                "fieldManager",
            )],
        )
        .into());
    };
    let force = params.force.unwrap_or(false);
    meta::check_type(def, &applied)?;
    meta::ensure_namespace(def, &mut applied, ctx.path.namespace.as_deref())?;
    match meta::meta_str(&applied, "name") {
        Some(n) if n == name => {}
        Some(n) => {
            return Err(Status::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            ))
            .into())
        }
        None => {
            meta::metadata_mut(&mut applied)?.insert("name".into(), Value::String(name.clone()));
        }
    }
    // Prune unknown fields first, so the manager never owns a field validation would drop;
    // the merged object is validated as a whole below.
    let unknown = schema::for_resource(def)
        .validate(&mut applied.clone())
        .unknown_fields;
    if !unknown.is_empty() && params.field_validation == FieldValidation::Strict {
        let list = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Status::bad_request(format!("strict decoding error: {list}")).into());
    }
    let _ = schema::for_resource(def).validate(&mut applied);
    for _attempt in 0..RETRIES {
        let now = jiff::Timestamp::now();
        let stamp = meta::format_time(now);
        let current = ctx
            .state
            .store
            .get(&object_key(&ctx))
            .await
            .map_err(|e| ApiError::store(def, &name, e))?;
        let Some(current) = current else {
            super::write::admit_namespace(&ctx).await?;
            let mut obj = apply::apply(def, None, &applied, &manager, force, &stamp).map_err(Status::from)?;
            meta::prepare_create(&mut obj, now)?;
            let warnings = admit(def, &mut obj, &params)?;
            if params.dry_run {
                let body = Bytes::from(serde_json::to_vec(&obj).unwrap_or_default());
                return respond(&ctx, body, StatusCode::CREATED, &warnings);
            }
            match ctx.state.store.create(to_write(def, &ctx, obj)).await {
                Ok(stored) => return respond(&ctx, stored.body, StatusCode::CREATED, &warnings),
                Err(prext_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(ApiError::store(def, &name, e)),
            }
        };
        let live = parse_stored(&current)?;
        let merged =
            apply::apply(def, Some(&live), &applied, &manager, force, &stamp).map_err(Status::from)?;
        if meta::meta_str(&merged, "resourceVersion").is_some_and(|rv| rv != current.revision.to_string()) {
            return Err(Status::conflict_modified(def, &name).into());
        }
        match replace(&ctx, &params, &current, merged, None).await? {
            Updated::Done(resp) => return Ok(resp),
            Updated::Raced => continue,
        }
    }
    Err(Status::conflict_modified(def, &name).into())
}
