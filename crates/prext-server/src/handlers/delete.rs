//! delete and deletecollection, with `DeleteOptions` from the body or the query,
//! preconditions, finalizers (a delete of an object with finalizers only marks it) and
//! dry runs.

use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use prext_api::meta;
use prext_api::status::{Status, StatusCause, StatusDetails};
use prext_store::{ListItem, ListOptions, ObjectKey, Preconditions, StoredObject};
use serde_json::Value;

use super::read::object_key;
use super::resource::Ctx;
use super::write::{parse_stored, to_write, RETRIES};
use crate::error::{ApiError, ApiResult};
use crate::render;
use crate::request::{parse_dry_run, parse_revision, ListParams};

/// `DeleteOptions` as prext uses them.
#[derive(Debug, Default)]
struct DeleteOptions {
    dry_run: bool,
    preconditions: Preconditions,
}

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

fn check_preconditions(ctx: &Ctx, pre: &Preconditions, current: &StoredObject, name: &str) -> ApiResult<()> {
    let def = ctx.path.def;
    if let Some(uid) = &pre.uid {
        if *uid != current.uid {
            return Err(Status::conflict(
                def,
                name,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    current.uid
                ),
            )
            .into());
        }
    }
    if let Some(rv) = pre.resource_version {
        if rv != current.revision {
            return Err(Status::conflict(
                def,
                name,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    current.revision
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// What a single delete did.
enum Deleted {
    /// Removed; the Status to answer.
    Gone(StoredObject),
    /// Marked for deletion (finalizers pending); the object to answer.
    Marked(Bytes),
}

/// Deletes one object, honouring preconditions and finalizers, retrying lost races when the
/// client pinned no resourceVersion.
async fn delete_one(ctx: &Ctx, key: &ObjectKey, opts: &DeleteOptions) -> ApiResult<Deleted> {
    let def = ctx.path.def;
    let store = &ctx.state.store;
    for _attempt in 0..RETRIES {
        let current = store
            .get(key)
            .await
            .map_err(|e| ApiError::store(def, &key.name, e))?
            .ok_or_else(|| Status::not_found(def, &key.name))?;
        check_preconditions(ctx, &opts.preconditions, &current, &key.name)?;
        let obj = parse_stored(&current)?;
        if !meta::finalizers(&obj).is_empty() {
            if meta::meta_str(&obj, "deletionTimestamp").is_some() || opts.dry_run {
                return Ok(Deleted::Marked(current.body));
            }
            let mut marked = obj;
            let m = meta::metadata_mut(&mut marked)?;
            m.insert(
                "deletionTimestamp".into(),
                Value::String(meta::format_time(jiff::Timestamp::now())),
            );
            m.insert("deletionGracePeriodSeconds".into(), Value::from(0));
            m.remove("resourceVersion");
            match store.update(to_write(def, ctx, marked), current.revision).await {
                Ok(stored) => return Ok(Deleted::Marked(stored.body)),
                Err(prext_store::Error::Conflict(_)) if opts.preconditions.resource_version.is_none() => {
                    continue
                }
                Err(e) => return Err(ApiError::store(def, &key.name, e)),
            }
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(current));
        }
        let pre = Preconditions {
            uid: Some(current.uid.clone()),
            resource_version: Some(current.revision),
        };
        match store.delete(key, pre).await {
            Ok(gone) => return Ok(Deleted::Gone(gone)),
            Err(prext_store::Error::Conflict(_)) if opts.preconditions.resource_version.is_none() => continue,
            Err(prext_store::Error::NotFound) => return Err(Status::not_found(def, &key.name).into()),
            Err(e) => return Err(ApiError::store(def, &key.name, e)),
        }
    }
    Err(Status::conflict_modified(def, &key.name).into())
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
    let key = object_key(&ctx);
    match delete_one(&ctx, &key, &opts).await? {
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
    let mut stream = ctx
        .state
        .store
        .list(ListOptions {
            resource: def.group_resource(),
            namespace: ctx.path.namespace.clone(),
            labels: params.labels,
            fields: params.fields,
            limit: None,
            after: None,
        })
        .await
        .map_err(ApiError::storage)?;
    let revision = stream.revision;
    let mut keys = Vec::new();
    let mut listed = Vec::new();
    while let Some(item) = stream.items.recv().await {
        if let ListItem::Object(o) = item.map_err(ApiError::storage)? {
            keys.push(o.key);
            listed.push(o.body);
        }
    }
    let ctx = &ctx;
    let opts = &opts;
    let results: Vec<ApiResult<Deleted>> = futures::stream::iter(keys)
        .map(|key| async move { delete_one(ctx, &key, opts).await })
        .buffer_unordered(64)
        .collect()
        .await;
    for r in results {
        match r {
            Ok(_) => {}
            // Deleted concurrently by someone else: that is the goal anyway.
            Err(e) if e.0.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(render::json_bytes(
        StatusCode::OK,
        render::deleted_list(def, revision, &listed),
    ))
}
