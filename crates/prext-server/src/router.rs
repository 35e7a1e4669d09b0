//! The route table: health, version, discovery, OpenAPI, and the resource paths, whose
//! method and path shape pick the verb's handler.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderMap, Method};
use http_body_util::BodyExt as _;
use prext_api::meta::MAX_BODY_BYTES;
use prext_api::status::Status;

use crate::error::{ApiError, ApiResult};
use crate::handlers::{
    delete, discovery, health, openapi, read, results, standalone, watch, watch_one, write,
};
use crate::request::{parse_path, Ctx, ListParams, Query, ResourcePath};
use crate::state::AppState;

/// Builds the application router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/version", get(standalone::version))
        // The Python client asks for `/version/`; kube-apiserver serves both.
        .route("/version/", get(standalone::version))
        .route("/api", get(discovery::core_api))
        .route("/api/v1", get(discovery::core_v1))
        .route("/api/v1/namespaces", get(standalone::namespaces))
        .route("/api/v1/namespaces/{name}", get(discovery::namespace))
        .route("/api/v1/events", get(standalone::core_events))
        .route("/api/v1/namespaces/{name}/events", get(standalone::core_events))
        .route("/apis", get(discovery::apis))
        .merge(standalone_routes())
        .route("/apis/{group}", get(discovery::group))
        .route("/apis/{group}/{version}", get(discovery::group_version))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::v3_root))
        .route(
            "/openapi/v3/apis/{group}/{version}",
            get(openapi::v3_group_version),
        )
        .fallback(dispatch)
        .layer(axum::middleware::from_fn(crate::yaml::encode))
        .layer(axum::middleware::from_fn(crate::auth::authenticate))
        .layer(axum::middleware::from_fn(crate::head_limit::check))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::requests::track,
        ))
        .layer(axum::middleware::from_fn(crate::panic::recover))
        .with_state(state)
}

/// The groups kube-apiserver serves that standalone prext answers itself
/// ([`standalone`]); their handlers answer 404 in delegated mode.
fn standalone_routes() -> Router<AppState> {
    let mut router = Router::new();
    for group in prext_api::standalone::GROUPS {
        router = router
            .route(&format!("/apis/{group}"), get(standalone::group))
            .route(&format!("/apis/{group}/v1"), get(standalone::group_version));
    }
    router
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            post(standalone::access_review),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            post(standalone::rules_review),
        )
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            post(standalone::subject_review),
        )
        .route("/apis/events.k8s.io/v1/events", get(standalone::events_v1))
        .route(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            get(standalone::events_v1),
        )
}

/// Entry point for every path under `/apis/{group}/{version}/...`: decodes the path
/// (`RequestInfo`) into a row of the resource table, refuses the verbs the row does not
/// serve, and hands over to the verb family's handler (a computed resource's to the result
/// query handler).
async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(path) = parse_path(parts.uri.path()) else {
        return ApiError::from(Status::path_not_found(parts.uri.path())).into_response();
    };
    let query = Query::parse(parts.uri.query());
    if let Err(refused) = served(&parts.method, &path, &query) {
        return ApiError::from(refused).into_response();
    }
    if path.def.computed().is_some() {
        return results::handle(state, path, query, parts.headers)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    let mut ctx = Ctx {
        state,
        path,
        query,
        headers: parts.headers,
    };
    let has_name = ctx.path.name.is_some();
    let result = match (&parts.method, has_name) {
        // A watch of one object: a watch of the collection restricted to its name.
        (&Method::GET, true) if ctx.path.watch_prefix || ctx.query.flag("watch") => {
            match watch_one::params(&mut ctx) {
                Ok(params) => watch::watch(ctx, params).await,
                Err(e) => Err(e.into()),
            }
        }
        (&Method::GET, true) => read::get(ctx).await,
        (&Method::GET, false) => match ListParams::parse(&ctx.query) {
            Ok(mut params) if params.watch || ctx.path.watch_prefix => {
                params.watch = true;
                watch::watch(ctx, params).await
            }
            Ok(params) => read::list(ctx, params).await,
            Err(e) => Err(e.into()),
        },
        (&Method::POST, false) if collection_writable(&ctx.path) => match read_body(&ctx.headers, body).await
        {
            Ok((b, _in_flight)) => write::create(ctx, b).await,
            Err(e) => Err(e),
        },
        (&Method::PUT, true) => match read_body(&ctx.headers, body).await {
            Ok((b, _in_flight)) => write::update(ctx, b).await,
            Err(e) => Err(e),
        },
        (&Method::PATCH, true) => match read_body(&ctx.headers, body).await {
            Ok((b, _in_flight)) => write::patch(ctx, b).await,
            Err(e) => Err(e),
        },
        (&Method::DELETE, true) => match read_body(&ctx.headers, body).await {
            Ok((b, _in_flight)) => delete::delete(ctx, b).await,
            Err(e) => Err(e),
        },
        (&Method::DELETE, false) if collection_writable(&ctx.path) => {
            match read_body(&ctx.headers, body).await {
                Ok((b, _in_flight)) => delete::delete_collection(ctx, b).await,
                Err(e) => Err(e),
            }
        }
        (m, _) => Err(Status::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))
        .into()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Refuses what the resource's row does not serve: any method but GET on a read-only
/// resource, a watch of a resource that serves no `watch`.
fn served(method: &Method, path: &ResourcePath, query: &Query) -> Result<(), Status> {
    let def = path.def;
    if def.read_only() && method != Method::GET {
        return Err(Status::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method}): {} is read-only",
            def.plural
        )));
    }
    if !def.serves("watch") && (path.watch_prefix || query.flag("watch")) {
        return Err(Status::method_not_allowed(format!(
            "watch is not supported on {}: list it again instead",
            def.group_resource()
        )));
    }
    Ok(())
}

/// Create and deletecollection of a namespaced kind need a namespace in the path.
fn collection_writable(path: &ResourcePath) -> bool {
    !path.def.namespaced || path.namespace.is_some()
}

/// How much of an oversized body is read and discarded before answering 413, so that a
/// client still sending gets the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Bytes of request bodies that may be in the hands of handlers at once, across all requests.
///
/// A write holds several times its body's size while it is decoded, validated, indexed and
/// stored (the JSON tree, the stored text, the result rows, the response), so sixteen
/// clients sending 197 KB reports at once would pile up tens of MB that the two cores could
/// not process any faster. Requests beyond the budget wait for their turn once their body is
/// read (a few hundred KB each), before it is decoded. 7 KB reports pass 150 at a time (no client of the benchmark ever waits); a body
/// larger than the budget (up to [`MAX_BODY_BYTES`]) takes all of it and runs alone.
const IN_FLIGHT_BODY_BYTES: usize = 1024 * 1024;

static IN_FLIGHT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(IN_FLIGHT_BODY_BYTES);

/// A request body's share of [`IN_FLIGHT_BODY_BYTES`], given back when dropped.
async fn in_flight(bytes: usize) -> Option<tokio::sync::SemaphorePermit<'static>> {
    let share = u32::try_from(bytes.clamp(1, IN_FLIGHT_BODY_BYTES)).unwrap_or(u32::MAX);
    // The semaphore is never closed.
    IN_FLIGHT.acquire_many(share).await.ok()
}

/// Reads a request body, refusing more than [`MAX_BODY_BYTES`] with a 413. Returns it with
/// its share of the in-flight budget, to be held until the request is answered. The share is
/// taken once the body is read, so that a client sending slowly holds none of it.
async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
) -> ApiResult<(bytes::Bytes, Option<tokio::sync::SemaphorePermit<'static>>)> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // One allocation of the announced size rather than a doubling buffer.
    let mut buf = bytes::BytesMut::with_capacity(announced.unwrap_or(0).min(MAX_BODY_BYTES));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Status::bad_request(format!("failed to read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen <= MAX_BODY_BYTES {
            buf.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(Status::too_large(MAX_BODY_BYTES).into());
    }
    let permit = in_flight(seen).await;
    Ok((buf.freeze(), permit))
}
