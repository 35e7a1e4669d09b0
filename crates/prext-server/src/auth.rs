//! Authentication: who is calling. Standalone mode trusts client certificates signed by the
//! server's own CA (verified during the TLS handshake); every request to the API without
//! one is answered 401. Health endpoints are open. In-cluster modes (front proxy,
//! TokenReview, SubjectAccessReview) plug in here.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prext_api::status::Status;

use crate::error::ApiError;
use crate::tls::ClientIdentity;

/// The authenticated caller, available to handlers as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

/// Paths served without authentication.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// Middleware: resolves the caller or answers 401.
pub async fn authenticate(mut req: Request, next: Next) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let user = req
        .extensions()
        .get::<Option<ClientIdentity>>()
        .cloned()
        .flatten()
        .map(|id| UserInfo { name: id.user, groups: id.groups });
    match user {
        Some(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        None => ApiError::from(Status::unauthorized("Unauthorized")).into_response(),
    }
}
