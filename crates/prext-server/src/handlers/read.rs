//! get and list (a list with `watch` set is served by the watch handler, which the router
//! picks): decode, call the registry, render.

use axum::response::Response;
use http::{header, StatusCode};

use crate::error::ApiResult;
use crate::negotiate::{negotiate, Target};
use crate::render;
use crate::request::{parse_revision, Ctx, ListParams};

/// GET of one object.
pub async fn get(ctx: Ctx) -> ApiResult<Response> {
    let def = ctx.path.def;
    let output = negotiate(
        ctx.header(header::ACCEPT),
        Target::Object,
        ctx.query.get("includeObject"),
    )?;
    parse_revision(ctx.query.get("resourceVersion").unwrap_or(""))?;
    let stored = ctx.state.registry.get(&ctx.object_ref()).await?;
    Ok(render::object(def, output, stored.body, StatusCode::OK)?)
}

/// GET of a collection without `watch`: a list.
pub async fn list(ctx: Ctx, params: ListParams) -> ApiResult<Response> {
    let def = ctx.path.def;
    let output = negotiate(
        ctx.header(header::ACCEPT),
        Target::Collection,
        ctx.query.get("includeObject"),
    )?;
    let request = params.list_request(ctx.path.namespace.clone())?;
    let listed = ctx.state.registry.list(def, request).await?;
    Ok(render::list(
        def,
        output,
        listed.stream,
        render::Paging {
            revision: listed.revision,
            limited: params.limit.is_some(),
        },
    ))
}
