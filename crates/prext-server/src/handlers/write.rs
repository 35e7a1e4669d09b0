//! create (POST), update (PUT) and patch (PATCH): decode, admit (metadata rules, schema
//! validation and pruning), then a compare-and-swap write in the store.

use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use prext_api::meta::{self, BodyFormat};
use prext_api::status::{Status, StatusCause};
use prext_api::{apply, report, schema, ResourceDef};
use prext_store::{ObjectWrite, StoredObject};
use serde_json::Value;

use super::read::object_key;
use super::resource::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{negotiate, Target};
use crate::render;
use crate::request::{FieldValidation, WriteParams};

/// How many times a write that lost an optimistic-concurrency race is retried when the
/// client did not pin a resourceVersion (patch, delete).
pub const RETRIES: usize = 5;

/// The field manager of a write: `fieldManager`, else the client's program name from its
/// user agent, as kube-apiserver defaults it.
pub fn manager(ctx: &Ctx, params: &WriteParams) -> String {
    if let Some(m) = &params.field_manager {
        return m.clone();
    }
    let agent = ctx.header(header::USER_AGENT).unwrap_or("unknown");
    let program = agent.split('/').next().unwrap_or(agent).trim();
    let program = if program.is_empty() { "unknown" } else { program };
    program.chars().take(128).collect()
}

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

/// Validates metadata and the schema, prunes unknown fields and applies defaults.
/// Returns the warnings to send (`fieldValidation=Warn`).
pub fn admit(def: &'static ResourceDef, obj: &mut Value, params: &WriteParams) -> ApiResult<Vec<String>> {
    let name = meta::meta_str(obj, "name").unwrap_or("").to_string();
    let mut causes = meta::validate_metadata(def, obj);
    let validation = schema::for_resource(def).validate(obj);
    causes.extend(validation.causes);
    if !causes.is_empty() {
        return Err(Status::invalid(def, &name, causes).into());
    }
    let mut warnings = Vec::new();
    if !validation.unknown_fields.is_empty() {
        match params.field_validation {
            FieldValidation::Strict => {
                let errors: Vec<String> = validation
                    .unknown_fields
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(Status::strict_decoding(def, &errors).into());
            }
            FieldValidation::Warn => {
                warnings.extend(
                    validation
                        .unknown_fields
                        .iter()
                        .map(|f| format!("unknown field \"{f}\"")),
                );
            }
            FieldValidation::Ignore => {}
        }
    }
    Ok(warnings)
}

/// What the store needs to write `obj`.
pub fn to_write(def: &'static ResourceDef, ctx: &Ctx, obj: Value) -> ObjectWrite {
    let mut key = object_key(ctx);
    if let Some(name) = meta::meta_str(&obj, "name") {
        key.name = name.to_string();
    }
    ObjectWrite {
        key,
        uid: meta::meta_str(&obj, "uid").unwrap_or("").to_string(),
        labels: meta::labels(&obj),
        created: meta::meta_str(&obj, "creationTimestamp")
            .unwrap_or("")
            .to_string(),
        deleting: meta::meta_str(&obj, "deletionTimestamp").is_some(),
        index: report::index(def, &obj),
        body: obj,
    }
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

pub(super) fn respond(ctx: &Ctx, body: Bytes, code: StatusCode, warnings: &[String]) -> ApiResult<Response> {
    let output = negotiate(
        ctx.header(header::ACCEPT),
        Target::Object,
        ctx.query.get("includeObject"),
    )?;
    Ok(with_warnings(
        render::object(ctx.path.def, output, body, code)?,
        warnings,
    ))
}

/// Namespace lifecycle admission (in-cluster mode): creates go only into namespaces that
/// exist and are not terminating. kube-apiserver runs no admission for aggregated APIs.
pub async fn admit_namespace(ctx: &Ctx) -> ApiResult<()> {
    if let (Some(lifecycle), Some(ns)) = (&ctx.state.namespaces, ctx.path.namespace.as_deref()) {
        lifecycle.admit_create(ns).await?;
    }
    Ok(())
}

/// POST: create.
pub async fn create(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let def = ctx.path.def;
    let params = WriteParams::parse(&ctx.query)?;
    let format = body_format(&ctx)?;
    let mut obj = meta::decode_body(&body, format)?;
    let duplicates = super::write_rules::duplicates(&params, format, &body);
    let version_set = super::write_rules::resource_version_set(&obj);
    meta::check_type(def, &obj)?;
    meta::ensure_namespace(def, &mut obj, ctx.path.namespace.as_deref())?;
    admit_namespace(&ctx).await?;
    let generated = meta::meta_str(&obj, "name").is_none_or(str::is_empty);
    // Only a generated name can collide and be retried: only then is a copy kept.
    let original = generated.then(|| obj.clone());
    let mut first = Some(obj);
    for _attempt in 0..RETRIES {
        let Some(mut obj) = first.take().or_else(|| original.clone()) else {
            break;
        };
        let now = jiff::Timestamp::now();
        meta::prepare_create(&mut obj, now)?;
        let warnings = super::write_rules::admit_decoded(def, &mut obj, &params, &duplicates)?;
        apply::record_update(
            def,
            None,
            &mut obj,
            &manager(&ctx, &params),
            &meta::format_time(now),
        );
        let name = meta::meta_str(&obj, "name").unwrap_or("").to_string();
        if params.dry_run {
            let body = Bytes::from(serde_json::to_vec(&obj).unwrap_or_default());
            return respond(&ctx, body, StatusCode::CREATED, &warnings);
        }
        if version_set {
            return Err(Status::resource_version_set_on_create().into());
        }
        match ctx.state.store.create(to_write(def, &ctx, obj)).await {
            Ok(stored) => return respond(&ctx, stored.body, StatusCode::CREATED, &warnings),
            Err(prext_store::Error::AlreadyExists { .. }) if generated => continue,
            Err(e) => return Err(ApiError::store(def, &name, e)),
        }
    }
    let mut s = Status::already_exists(def, "", false);
    s.message = "failed to generate a unique name; try again".into();
    if let Some(d) = s.details.as_mut() {
        d.retry_after_seconds = Some(1);
    }
    Err(s.into())
}

/// The stored object parsed as JSON.
pub fn parse_stored(stored: &StoredObject) -> ApiResult<Value> {
    serde_json::from_slice(&stored.body)
        .map_err(|e| Status::internal(format!("stored object is corrupt: {e}")).into())
}

/// The outcome of an update attempt.
pub enum Updated {
    Done(Response),
    /// Lost a race with another writer; retry if the client did not pin a version.
    Raced,
}

/// The shared tail of PUT, PATCH and apply: `new` replaces `current` if `current` is still
/// the stored revision. `record` names the manager of a non-apply write, whose changed fields
/// it then owns (apply has set `managedFields` itself).
pub async fn replace(
    ctx: &Ctx,
    params: &WriteParams,
    current: &StoredObject,
    new: Value,
    record: Option<&str>,
) -> ApiResult<Updated> {
    replace_decoded(ctx, params, current, new, record, &[]).await
}

/// [`replace`] of a body whose strict decoding found `duplicates`
/// (see [`super::write_rules::admit_decoded`]).
pub async fn replace_decoded(
    ctx: &Ctx,
    params: &WriteParams,
    current: &StoredObject,
    mut new: Value,
    record: Option<&str>,
    duplicates: &[String],
) -> ApiResult<Updated> {
    let def = ctx.path.def;
    let name = ctx.path.name.clone().unwrap_or_default();
    meta::check_type(def, &new)?;
    meta::ensure_namespace(def, &mut new, ctx.path.namespace.as_deref())?;
    if meta::meta_str(&new, "name").is_some_and(|n| n != name) {
        return Err(Status::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta::meta_str(&new, "name").unwrap_or("")
        ))
        .into());
    }
    meta::metadata_mut(&mut new)?.insert("name".into(), Value::String(name.clone()));
    let old = parse_stored(current)?;
    meta::prepare_update(def, &old, &mut new)?;
    let warnings = super::write_rules::admit_decoded(def, &mut new, params, duplicates)?;
    if let Some(manager) = record {
        apply::record_update(
            def,
            Some(&old),
            &mut new,
            manager,
            &meta::format_time(jiff::Timestamp::now()),
        );
    }
    if let Some(err) = finalizer_rules(def, &old, &new) {
        return Err(err.into());
    }
    meta::metadata_mut(&mut new)?.insert(
        "resourceVersion".into(),
        Value::String(current.revision.to_string()),
    );
    if new == old {
        // A no-op update writes nothing and keeps the resourceVersion.
        return respond(ctx, current.body.clone(), StatusCode::OK, &warnings).map(Updated::Done);
    }
    let deleting = meta::meta_str(&new, "deletionTimestamp").is_some();
    if params.dry_run {
        let body = Bytes::from(serde_json::to_vec(&new).unwrap_or_default());
        return respond(ctx, body, StatusCode::OK, &warnings).map(Updated::Done);
    }
    let store = &ctx.state.store;
    if deleting && meta::finalizers(&new).is_empty() {
        // The last finalizer is gone from an object being deleted: it goes now.
        let pre = prext_store::Preconditions {
            uid: None,
            resource_version: Some(current.revision),
        };
        return match store.delete(&object_key(ctx), pre).await {
            Ok(deleted) => respond(ctx, deleted.body, StatusCode::OK, &warnings).map(Updated::Done),
            Err(prext_store::Error::Conflict(_)) => Ok(Updated::Raced),
            Err(e) => Err(ApiError::store(def, &name, e)),
        };
    }
    match store.update(to_write(def, ctx, new), current.revision).await {
        Ok(stored) => respond(ctx, stored.body, StatusCode::OK, &warnings).map(Updated::Done),
        Err(prext_store::Error::Conflict(_)) => Ok(Updated::Raced),
        Err(e) => Err(ApiError::store(def, &name, e)),
    }
}

/// Once deletion has started, no finalizer may be added.
fn finalizer_rules(def: &'static ResourceDef, old: &Value, new: &Value) -> Option<Status> {
    meta::meta_str(old, "deletionTimestamp")?;
    let before = meta::finalizers(old);
    let added: Vec<String> = meta::finalizers(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return None;
    }
    let name = meta::meta_str(old, "name").unwrap_or("");
    Some(Status::invalid(
        def,
        name,
        vec![StatusCause::new(
            "FieldValueForbidden",
            format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
            "metadata.finalizers",
        )],
    ))
}

/// PUT: update. The body must carry the resourceVersion it was based on.
pub async fn update(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let def = ctx.path.def;
    let name = ctx.path.name.clone().unwrap_or_default();
    let params = WriteParams::parse(&ctx.query)?;
    let format = body_format(&ctx)?;
    let new = meta::decode_body(&body, format)?;
    let duplicates = super::write_rules::duplicates(&params, format, &body);
    let rv = meta::meta_str(&new, "resourceVersion").unwrap_or("").to_string();
    // A missing object is 404 before anything else: the CRD store does not create on update
    // (`AllowCreateOnUpdate` is false in apiextensions-apiserver's customresource strategy).
    let current = ctx
        .state
        .store
        .get(&object_key(&ctx))
        .await
        .map_err(|e| ApiError::store(def, &name, e))?
        .ok_or_else(|| Status::not_found(def, &name))?;
    if rv.is_empty() {
        return Err(Status::invalid(
            def,
            &name,
            vec![StatusCause::new(
                "FieldValueInvalid",
                "Invalid value: 0x0: must be specified for an update",
                "metadata.resourceVersion",
            )],
        )
        .into());
    }
    if rv != current.revision.to_string() {
        return Err(Status::conflict_modified(def, &name).into());
    }
    let manager = manager(&ctx, &params);
    match replace_decoded(&ctx, &params, &current, new, Some(&manager), &duplicates).await? {
        Updated::Done(resp) => Ok(resp),
        Updated::Raced => Err(Status::conflict_modified(def, &name).into()),
    }
}

/// The patch formats prext applies.
enum PatchKind {
    Json(json_patch::Patch),
    Merge(Value),
}

/// A PATCH body: a patch to apply to the live object, or a server-side apply configuration.
enum PatchBody {
    Patch(PatchKind),
    Apply(Value),
}

fn patch_body(ctx: &Ctx, body: &[u8]) -> ApiResult<PatchBody> {
    let ct = ctx.header(header::CONTENT_TYPE).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match media.as_str() {
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| Status::bad_request(format!("invalid JSON patch: {e}")))?;
            prext_api::limits::patch::check_operation_count(p.0.len())?;
            Ok(PatchBody::Patch(PatchKind::Json(p)))
        }
        "application/merge-patch+json" => serde_json::from_slice(body)
            .map(|p| PatchBody::Patch(PatchKind::Merge(p)))
            .map_err(|e| Status::bad_request(format!("invalid merge patch: {e}")).into()),
        "application/apply-patch+yaml" => Ok(PatchBody::Apply(meta::decode_body(body, BodyFormat::Yaml)?)),
        other => Err(Status::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
        ))
        .into()),
    }
}

/// PATCH: JSON patch or merge patch applied to the current object, then the update path.
/// Retried on a lost race unless the patch pins a resourceVersion.
pub async fn patch(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let def = ctx.path.def;
    let name = ctx.path.name.clone().unwrap_or_default();
    let params = WriteParams::parse(&ctx.query)?;
    let kind = match patch_body(&ctx, &body)? {
        PatchBody::Apply(applied) => return super::apply::server_side_apply(ctx, params, applied).await,
        PatchBody::Patch(kind) => kind,
    };
    if params.force.is_some() {
        return Err(Status::invalid_kind(
            "PatchOptions",
            "meta.k8s.io",
            "",
            vec![StatusCause::new(
                "FieldValueForbidden",
                "Forbidden: may not be specified for non-apply patch",
                "force",
            )],
        )
        .into());
    }
    let manager = manager(&ctx, &params);
    for _attempt in 0..RETRIES {
        let current = ctx
            .state
            .store
            .get(&object_key(&ctx))
            .await
            .map_err(|e| ApiError::store(def, &name, e))?
            .ok_or_else(|| Status::not_found(def, &name))?;
        let mut obj = parse_stored(&current)?;
        match &kind {
            PatchKind::Json(p) => {
                prext_api::limits::patch::apply_json_patch(&mut obj, p, meta::MAX_BODY_BYTES)?
            }
            PatchKind::Merge(p) => json_patch::merge(&mut obj, p),
        }
        if !obj.is_object() {
            return Err(Status::bad_request("the patched object is not an object").into());
        }
        let pinned = meta::meta_str(&obj, "resourceVersion").map(str::to_string);
        let current_rv = current.revision.to_string();
        if pinned.as_deref().is_some_and(|rv| rv != current_rv) {
            return Err(Status::conflict_modified(def, &name).into());
        }
        let pinned_by_client = match &kind {
            PatchKind::Merge(p) => p.pointer("/metadata/resourceVersion").is_some(),
            PatchKind::Json(_) => false,
        };
        match replace(&ctx, &params, &current, obj, Some(&manager)).await? {
            Updated::Done(resp) => return Ok(resp),
            Updated::Raced if pinned_by_client => return Err(Status::conflict_modified(def, &name).into()),
            Updated::Raced => continue,
        }
    }
    Err(Status::conflict_modified(def, &name).into())
}
