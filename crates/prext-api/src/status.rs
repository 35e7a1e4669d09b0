//! `metav1.Status`: the one shape every failure takes on the wire, with constructors named
//! after apimachinery's `errors.New*` functions so that Go references map one-to-one.

use serde::{Deserialize, Serialize};

use crate::resources::ResourceDef;

/// Reasons used by prext (`metav1.StatusReason`).
pub mod reason {
    pub const NOT_FOUND: &str = "NotFound";
    pub const ALREADY_EXISTS: &str = "AlreadyExists";
    pub const CONFLICT: &str = "Conflict";
    pub const INVALID: &str = "Invalid";
    pub const BAD_REQUEST: &str = "BadRequest";
    pub const UNAUTHORIZED: &str = "Unauthorized";
    pub const FORBIDDEN: &str = "Forbidden";
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    pub const NOT_ACCEPTABLE: &str = "NotAcceptable";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    pub const EXPIRED: &str = "Expired";
    pub const TIMEOUT: &str = "Timeout";
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    pub const INTERNAL_ERROR: &str = "InternalError";
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
}

/// One cause of a failure (`metav1.StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl StatusCause {
    pub fn new(reason: &str, message: impl Into<String>, field: impl Into<String>) -> Self {
        Self {
            reason: reason.to_string(),
            message: message.into(),
            field: field.into(),
        }
    }
}

/// `metav1.StatusDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

/// `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: String,
    pub api_version: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    pub code: u16,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for Status {}

impl Status {
    /// A failure with a code, a reason and a message.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: Default::default(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code,
        }
    }

    /// `Status{status: Success}` as returned by a delete.
    pub fn success(details: StatusDetails) -> Self {
        Self {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: Default::default(),
            status: "Success".into(),
            message: String::new(),
            reason: String::new(),
            details: Some(details),
            code: 200,
        }
    }

    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    fn resource_details(def: &ResourceDef, name: &str) -> StatusDetails {
        // Quirk kept from apimachinery: details.kind holds the resource, not the Kind.
        StatusDetails {
            name: name.into(),
            group: def.group.into(),
            kind: def.plural.into(),
            ..Default::default()
        }
    }

    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::failure(
            404,
            reason::NOT_FOUND,
            format!("{} \"{}\" not found", def.group_resource(), name),
        )
        .with_details(Self::resource_details(def, name))
    }

    pub fn already_exists(def: &ResourceDef, name: &str, being_deleted: bool) -> Self {
        let prefix = if being_deleted {
            "object is being deleted: "
        } else {
            ""
        };
        Self::failure(
            409,
            reason::ALREADY_EXISTS,
            format!("{prefix}{} \"{}\" already exists", def.group_resource(), name),
        )
        .with_details(Self::resource_details(def, name))
    }

    /// The optimistic-lock failure (`OptimisticLockErrorMsg`).
    pub fn conflict_modified(def: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict(def: &ResourceDef, name: &str, why: impl std::fmt::Display) -> Self {
        Self::failure(
            409,
            reason::CONFLICT,
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                def.group_resource(),
                name,
                why
            ),
        )
        .with_details(Self::resource_details(def, name))
    }

    /// 422 Invalid with field causes: `<Kind>.<group> "<name>" is invalid: <causes>`.
    pub fn invalid(def: &ResourceDef, name: &str, causes: Vec<StatusCause>) -> Self {
        Self::invalid_kind(def.kind, def.group, name, causes)
    }

    /// 422 Invalid for any kind (also `ListOptions` in group `meta.k8s.io`). At most
    /// [`MAX_CAUSES`](crate::limits::MAX_CAUSES) causes are listed, the last one saying how many
    /// were left out.
    pub fn invalid_kind(kind: &str, group: &str, name: &str, causes: Vec<StatusCause>) -> Self {
        let causes = crate::limits::cap_causes(causes);
        let summary = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect::<Vec<_>>();
        let summary = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        Self::failure(
            422,
            reason::INVALID,
            format!("{qualified} \"{name}\" is invalid: {summary}"),
        )
        .with_details(StatusDetails {
            name: name.into(),
            group: group.into(),
            kind: kind.into(),
            causes,
            ..Default::default()
        })
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::failure(400, reason::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::failure(401, reason::UNAUTHORIZED, message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::failure(405, reason::METHOD_NOT_ALLOWED, message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::failure(406, reason::NOT_ACCEPTABLE, message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::failure(415, reason::UNSUPPORTED_MEDIA_TYPE, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::failure(
            413,
            reason::REQUEST_ENTITY_TOO_LARGE,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 431: the request line and header fields are larger than `limit` bytes. kube-apiserver
    /// (Go's net/http with `MaxHeaderBytes: 1 << 20`, `k8s.io/apiserver/pkg/server/
    /// secure_serving.go`) answers the same request 431 with a text body; prext answers a
    /// Status, with no reason of Kubernetes' own for this code (`StatusReasonUnknown`, "").
    pub fn header_fields_too_large(size: usize, limit: usize) -> Self {
        Self::failure(
            431,
            "",
            format!(
                "the request's URI and header fields take {size} bytes, more than the limit of {limit} bytes"
            ),
        )
    }

    /// 414: an HTTP/1.1 request line whose URI is longer than `limit` bytes, the most the
    /// server's HTTP parser reads. kube-apiserver (Go) would read up to 1 MiB of head; prext's
    /// parser stops at 65,534 bytes of URI. No reason of Kubernetes' own exists for this code.
    pub fn uri_too_long(limit: usize) -> Self {
        Self::failure(
            414,
            "",
            format!(
                "the request URI is longer than {limit} bytes, the most this server reads; \
                 send long selectors in several requests"
            ),
        )
    }

    /// 431 answered by the HTTP parser itself: the request head is over `limit` bytes or has
    /// more than `fields` header fields.
    pub fn head_too_large(limit: usize, fields: usize) -> Self {
        Self::failure(
            431,
            "",
            format!(
                "the request's URI and header fields are larger than {limit} bytes, or more than {fields} header fields"
            ),
        )
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::failure(410, reason::EXPIRED, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::failure(500, reason::INTERNAL_ERROR, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::failure(503, reason::SERVICE_UNAVAILABLE, message).with_details(StatusDetails {
            retry_after_seconds: Some(1),
            ..Default::default()
        })
    }

    /// 504 for a read that must see a revision its index has not reached yet (the findings
    /// indexer): kube's `storage.NewTooLargeResourceVersionError`
    /// (staging/src/k8s.io/apiserver/pkg/storage/errors.go), which the watch cache answers when
    /// it cannot catch up with a requested resourceVersion in time, built on
    /// `errors.NewTimeoutError` (message `Timeout: ...`, `retryAfterSeconds`).
    pub fn too_large_resource_version(requested: i64, current: i64, retry_after_seconds: u32) -> Self {
        Self::failure(
            504,
            reason::TIMEOUT,
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        )
        .with_details(StatusDetails {
            causes: vec![StatusCause::new(
                "ResourceVersionTooLarge",
                "Too large resource version",
                "",
            )],
            retry_after_seconds: Some(retry_after_seconds),
            ..Default::default()
        })
    }

    /// 404 for a path that names no served resource.
    pub fn path_not_found(path: &str) -> Self {
        Self::failure(
            404,
            reason::NOT_FOUND,
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 400 for a body refused by `fieldValidation=Strict`: duplicate and unknown fields, as the
    /// create and update handlers word it (`transformDecodeError` of
    /// k8s.io/apiserver/pkg/endpoints/handlers/create.go over the strict decoder's errors).
    pub fn strict_decoding(def: &ResourceDef, errors: &[String]) -> Self {
        Self::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            errors.join(", "),
            kind = def.kind,
            version = def.version,
        ))
    }

    /// A create whose body carries a resourceVersion: the storage layer's
    /// `ErrResourceVersionSetOnCreate` (k8s.io/apiserver/pkg/storage/etcd3/store.go), which no
    /// layer converts to an API error, so kube-apiserver answers it as a 500 without a reason.
    pub fn resource_version_set_on_create() -> Self {
        Self::failure(
            500,
            "",
            "resourceVersion should not be set on objects to be created",
        )
    }

    /// 400 for a watch of one object whose `fieldSelector` names another
    /// (`listOpts` of k8s.io/apiserver/pkg/endpoints/handlers/get.go).
    pub fn name_selector_mismatch() -> Self {
        Self::bad_request("fieldSelector metadata.name doesn't match requested name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;

    #[test]
    fn not_found_matches_apimachinery() {
        let s = Status::not_found(&RESOURCES[0], "x");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"policyreports.wgpolicyk8s.io \"x\" not found","reason":"NotFound",
            "details":{"name":"x","group":"wgpolicyk8s.io","kind":"policyreports"},"code":404})
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let s = Status::invalid(
            &RESOURCES[0],
            "r",
            vec![StatusCause::new(
                "FieldValueRequired",
                "Required value",
                "metadata.name",
            )],
        );
        assert_eq!(s.code, 422);
        assert_eq!(
            s.message,
            "PolicyReport.wgpolicyk8s.io \"r\" is invalid: metadata.name: Required value"
        );
    }
}
