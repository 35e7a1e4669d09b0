//! get and list (watch joins in its own module).

use axum::response::Response;
use http::{header, StatusCode};
use prext_api::continue_token::ContinueToken;
use prext_api::status::Status;
use prext_store::{ListOptions, ObjectKey};

use super::resource::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{negotiate, Target};
use crate::render;
use crate::request::{parse_revision, ListParams, VersionMatch};

/// The storage key of the addressed object.
pub fn object_key(ctx: &Ctx) -> ObjectKey {
    ObjectKey::new(
        ctx.path.def.group_resource(),
        ctx.path.namespace.clone().unwrap_or_default(),
        ctx.path.name.clone().unwrap_or_default(),
    )
}

/// GET of one object.
pub async fn get(ctx: Ctx) -> ApiResult<Response> {
    if ctx.path.watch_prefix || ctx.query.flag("watch") {
        return super::watch_one::watch_one(ctx).await;
    }
    let def = ctx.path.def;
    let name = ctx.path.name.clone().unwrap_or_default();
    let output = negotiate(
        ctx.header(header::ACCEPT),
        Target::Object,
        ctx.query.get("includeObject"),
    )?;
    parse_revision(ctx.query.get("resourceVersion").unwrap_or(""))?;
    let key = object_key(&ctx);
    let stored = ctx
        .state
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::store(def, &name, e))?
        .ok_or_else(|| Status::not_found(def, &name))?;
    Ok(render::object(def, output, stored.body, StatusCode::OK)?)
}

/// GET of a collection: a list, or a watch when `watch` is set.
pub async fn list(ctx: Ctx) -> ApiResult<Response> {
    let def = ctx.path.def;
    let mut params = ListParams::parse(&ctx.query)?;
    if params.watch || ctx.path.watch_prefix {
        params.watch = true;
        return super::watch::watch(ctx, params).await;
    }
    let output = negotiate(
        ctx.header(header::ACCEPT),
        Target::Collection,
        ctx.query.get("includeObject"),
    )?;
    let store = &ctx.state.store;

    let mut opts = ListOptions {
        resource: def.group_resource(),
        namespace: ctx.path.namespace.clone(),
        labels: params.labels.clone(),
        fields: params.fields.clone(),
        limit: params.limit,
        after: None,
    };
    // The revision every page reports: the first page's snapshot.
    let mut pinned: Option<i64> = None;
    if let Some(token) = &params.continue_token {
        let token = ContinueToken::decode(token)
            .map_err(|e| Status::bad_request(format!("invalid continue token: {e}")))?;
        let oldest = store.oldest_revision().await.map_err(ApiError::storage)?;
        if token.revision < oldest {
            return Err(Status::expired(
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter.",
            )
            .into());
        }
        opts.after = Some((token.namespace, token.name));
        pinned = Some(token.revision);
    }
    let requested = params.revision()?;
    let exact = match (params.version_match, params.limit, &params.continue_token) {
        (Some(VersionMatch::Exact), _, _) => true,
        (None, Some(_), None) => requested.is_some(),
        _ => false,
    };

    let mut stream = store.list(opts.clone()).await.map_err(ApiError::storage)?;
    if let Some(n) = requested {
        if n > stream.revision {
            // A replica that has not yet seen a write another one acknowledged catches up
            // within moments: wait for it, then list again.
            drop(stream);
            wait_until_fresh(&**store, n).await?;
            stream = store.list(opts).await.map_err(ApiError::storage)?;
        }
        if exact && n != stream.revision {
            return Err(
                Status::expired(format!("too old resource version: {n} ({})", stream.revision)).into(),
            );
        }
    }
    let revision = pinned.unwrap_or(stream.revision);
    Ok(render::list(
        def,
        output,
        stream,
        render::Paging {
            revision,
            limited: params.limit.is_some(),
        },
    ))
}

/// How long a request for a resourceVersion the store has not reached waits for it before the
/// 504, as the kube-apiserver's watch cache does (`waitUntilFreshAndBlock`, 3 s).
pub const FRESHNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits until the store has published revision `n` (another replica's write, or one still
/// being committed), at most [`FRESHNESS_WAIT`]; then the 504 of [`too_large_revision`].
pub async fn wait_until_fresh(store: &dyn prext_store::Store, n: i64) -> ApiResult<()> {
    let mut published = store.subscribe();
    let reached = tokio::time::timeout(FRESHNESS_WAIT, published.wait_for(|r| *r >= n)).await;
    match reached {
        Ok(Ok(_)) => Ok(()),
        _ => Err(too_large_revision(n)),
    }
}

/// 504 for a resourceVersion the store has not reached (`NewTooLargeResourceVersionError`).
pub fn too_large_revision(n: i64) -> ApiError {
    let mut s = Status::failure(
        504,
        prext_api::status::reason::TIMEOUT,
        format!("Too large resource version: {n}, current: unknown"),
    );
    s.details = Some(prext_api::status::StatusDetails {
        causes: vec![prext_api::status::StatusCause::new(
            "ResourceVersionTooLarge",
            "Too large resource version",
            "",
        )],
        retry_after_seconds: Some(1),
        ..Default::default()
    });
    s.into()
}
