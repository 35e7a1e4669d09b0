//! The route table: health, version, discovery, OpenAPI, and the resource paths.

use axum::routing::{get, post};
use axum::Router;

use crate::handlers::{discovery, health, openapi, resource, standalone};
use crate::server::AppState;

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
        .fallback(resource::dispatch)
        .layer(axum::middleware::from_fn(crate::yaml::encode))
        .layer(axum::middleware::from_fn(crate::auth::authenticate))
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
