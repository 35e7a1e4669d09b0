//! The route table: health, version, discovery, OpenAPI, and the resource paths.

use axum::routing::get;
use axum::Router;

use crate::handlers::{discovery, health, openapi, resource};
use crate::server::AppState;

/// Builds the application router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_api))
        .route("/api/v1", get(discovery::core_v1))
        .route("/api/v1/namespaces/{name}", get(discovery::namespace))
        .route("/apis", get(discovery::apis))
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
        .layer(axum::middleware::from_fn(crate::auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::requests::track,
        ))
        .layer(axum::middleware::from_fn(crate::panic::recover))
        .with_state(state)
}
