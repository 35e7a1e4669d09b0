//! The server's error type and the single place where every failure becomes a `Status`
//! response (the `storeerr.Interpret*` pattern of the generic apiserver).

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use prext_api::status::Status;
use prext_api::ResourceDef;

/// The reason of the 507 answers (quota exceeded, disk full). kube-apiserver has no reason
/// for them: it passes etcd's "mvcc: database space exceeded" through as a 500 InternalError;
/// prext answers 507 Insufficient Storage (RFC 4918), which is neither a server bug nor a
/// transient outage to retry (see the README, "Store quota and a full disk").
pub const INSUFFICIENT_STORAGE: &str = "InsufficientStorage";

/// An error answered to the client as a `metav1.Status`.
#[derive(Debug)]
pub struct ApiError(pub Box<Status>);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        ApiError(Box::new(s))
    }
}

impl From<crate::registry::Error> for ApiError {
    fn from(err: crate::registry::Error) -> Self {
        use crate::registry::Error as E;
        let status = match err {
            E::NotFound { def, name } => Status::not_found(def, &name),
            E::Modified { def, name } => Status::conflict_modified(def, &name),
            E::Precondition { def, name, failed } => Status::conflict(def, &name, conflict_message(&failed)),
            E::NameGeneration { def } => {
                let mut s = Status::already_exists(def, "", false);
                s.message = "failed to generate a unique name; try again".into();
                if let Some(d) = s.details.as_mut() {
                    d.retry_after_seconds = Some(1);
                }
                s
            }
            E::Rejected(status) => return ApiError(status),
            E::InvalidContinue(why) => Status::bad_request(format!("invalid continue token: {why}")),
            E::ContinueExpired => Status::expired(
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter.",
            ),
            E::TooOldRevision { requested, current } => {
                Status::expired(format!("too old resource version: {requested} ({current})"))
            }
            E::TooLargeRevision { requested } => too_large_revision(requested),
            E::Store { def, name, source } => return Self::store(def, &name, source),
            E::Storage(source) => return Self::storage(source),
        };
        status.into()
    }
}

/// The Kubernetes wording of a failed precondition (`storage.NewInvalidObjError` texts of
/// `k8s.io/apiserver/pkg/storage/interfaces.go` `Preconditions.Check`).
pub fn conflict_message(conflict: &prext_store::Conflict) -> String {
    use prext_store::Conflict as C;
    match conflict {
        C::Uid { expected, actual } => {
            format!("Precondition failed: UID in precondition: {expected}, UID in object meta: {actual}")
        }
        C::ResourceVersion { expected, actual } => format!(
            "Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {actual}"
        ),
        C::Modified { .. } => {
            "the object has been modified; please apply your changes to the latest version and try again"
                .to_string()
        }
    }
}

/// 504 for a resourceVersion the store has not reached (`NewTooLargeResourceVersionError`).
pub fn too_large_revision(n: i64) -> Status {
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
    s
}

impl ApiError {
    /// Interprets a storage error for an operation on `def`/`name`.
    pub fn store(def: &ResourceDef, name: &str, err: prext_store::Error) -> Self {
        use prext_store::Error as E;
        let status = match err {
            E::NotFound => Status::not_found(def, name),
            E::AlreadyExists { being_deleted } => Status::already_exists(def, name, being_deleted),
            E::Conflict(conflict) => Status::conflict(def, name, conflict_message(&conflict)),
            E::Compacted { requested, oldest } => {
                Status::expired(format!("too old resource version: {requested} ({oldest})"))
            }
            other => return Self::storage(other),
        };
        status.into()
    }

    /// Interprets a storage error that concerns no single object.
    pub fn storage(err: prext_store::Error) -> Self {
        use prext_store::Error as E;
        match err {
            E::Unavailable(why) => {
                tracing::warn!(error = %why, "storage unavailable");
                Status::unavailable("the report store is unavailable, try again later").into()
            }
            E::Compacted { requested, oldest } => {
                Status::expired(format!("too old resource version: {requested} ({oldest})")).into()
            }
            E::QuotaExceeded { size, quota } => Status::failure(
                507,
                INSUFFICIENT_STORAGE,
                format!(
                    "the report store is over its quota: {size} bytes in use, --store-quota-bytes is \
                     {quota}; delete reports (or let history compaction run) to free space"
                ),
            )
            .into(),
            E::DiskFull(why) => {
                tracing::error!(error = %why, "the disk holding the report store is full");
                Status::failure(
                    507,
                    INSUFFICIENT_STORAGE,
                    "the disk holding the report store is full; delete reports or free disk space",
                )
                .into()
            }
            E::IndexBehind { requested, current } => {
                // Findings are indexed off the write path: a read that must see a write the
                // indexer has not applied yet gets kube's answer for a watch cache that cannot
                // catch up in time, never a stale page.
                tracing::warn!(requested, current, "the findings index is behind");
                Status::too_large_resource_version(requested, current, 1).into()
            }
            E::Internal(why) => {
                tracing::error!(error = %why, "storage failure");
                Status::internal("an internal error occurred in the report store").into()
            }
            other => {
                tracing::error!(error = %other, "unexpected storage error");
                Status::internal("an internal error occurred in the report store").into()
            }
        }
    }
}

/// Serializes a `Status` as the response body with its code.
pub fn status_response(status: &Status) -> Response {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(status).unwrap_or_default();
    let mut resp = (code, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(secs) = status.details.as_ref().and_then(|d| d.retry_after_seconds) {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        status_response(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A findings read that outwaits the indexer: 504 Timeout with Retry-After, as kube's
    /// watch cache answers a resourceVersion it cannot reach in time
    /// (staging/src/k8s.io/apiserver/pkg/storage/errors.go, NewTooLargeResourceVersionError).
    #[test]
    fn an_index_behind_is_a_timeout_to_retry() {
        let ApiError(status) = ApiError::storage(prext_store::Error::IndexBehind {
            requested: 12,
            current: 9,
        });
        assert_eq!((status.code, status.reason.as_str()), (504, "Timeout"));
        assert_eq!(
            status.message,
            "Timeout: Too large resource version: 12, current: 9"
        );
        let details = status.details.as_ref().expect("details");
        assert_eq!(details.retry_after_seconds, Some(1));
        assert_eq!(details.causes[0].reason, "ResourceVersionTooLarge");
        let resp = status_response(&status);
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }
}
