//! Authorization, in upstream's `DelegatingAuthorizerConfig` order: members of an always-allowed
//! group (default `system:masters`) and non-resource requests to an always-allowed path (default
//! `/healthz`, `/readyz`, `/livez`; a trailing `*` matches a prefix) pass; everything else is a
//! `SubjectAccessReview` (authorization.k8s.io/v1) sent to kube-apiserver.
//!
//! Answers are cached, allowed and denied alike (10 s each by default, bounded). A review that
//! fails is an error, never an allow. Without a cluster (standalone mode) every authenticated
//! request is allowed.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes as SarResourceAttributes, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::Api;
use prext_api::names::go_quote as q;
use prext_api::status::{reason, Status, StatusDetails};

use super::attributes::Attributes;
use super::cache::TtlCache;
use super::UserInfo;

/// How long a SubjectAccessReview call may take (upstream's webhook timeout).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many answers are cached.
const CACHE_CAPACITY: usize = 8192;

/// An authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed.
    Allow,
    /// The request is refused, with the reviewer's reason (possibly empty).
    Deny(String),
}

/// Why no decision could be made (answered 500).
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// The SubjectAccessReview call failed.
    #[error("subject access review failed: {0}")]
    Review(String),
}

/// Settings of a delegated [`Authorizer`].
#[derive(Clone, Debug)]
pub struct AuthorizerOptions {
    /// Paths allowed without review (exact, or a prefix when ending in `*`).
    pub always_allow_paths: Vec<String>,
    /// Groups allowed without review.
    pub always_allow_groups: Vec<String>,
    /// How long allowed answers are cached.
    pub allow_ttl: Duration,
    /// How long denied answers are cached.
    pub deny_ttl: Duration,
}

/// Decides whether a user may do what a request asks.
pub struct Authorizer {
    options: AuthorizerOptions,
    /// `None`: allow everything (standalone mode).
    reviews: Option<Api<SubjectAccessReview>>,
    cache: TtlCache<String, Decision>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("options", &self.options)
            .field("delegated", &self.reviews.is_some())
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    /// Allows every request (standalone mode).
    pub fn allow_all() -> Self {
        Self {
            options: AuthorizerOptions {
                always_allow_paths: Vec::new(),
                always_allow_groups: Vec::new(),
                allow_ttl: Duration::ZERO,
                deny_ttl: Duration::ZERO,
            },
            reviews: None,
            cache: TtlCache::new(1),
        }
    }

    /// Reviews requests with `client`'s cluster.
    pub fn delegated(client: kube::Client, options: AuthorizerOptions) -> Self {
        Self {
            options,
            reviews: Some(Api::all(client)),
            cache: TtlCache::new(CACHE_CAPACITY),
        }
    }

    /// Decides on `attributes` requested by `user`.
    pub async fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Result<Decision, AuthzError> {
        let Some(reviews) = &self.reviews else {
            return Ok(Decision::Allow);
        };
        if user
            .groups
            .iter()
            .any(|g| self.options.always_allow_groups.contains(g))
        {
            return Ok(Decision::Allow);
        }
        if let Attributes::NonResource { path, .. } = attributes {
            if path_always_allowed(&self.options.always_allow_paths, path) {
                return Ok(Decision::Allow);
            }
        }
        let spec = review_spec(user, attributes);
        let key = serde_json::to_string(&spec).map_err(|e| AuthzError::Review(e.to_string()))?;
        if let Some(decision) = self.cache.get(&key) {
            return Ok(decision);
        }
        let review = SubjectAccessReview {
            spec,
            ..SubjectAccessReview::default()
        };
        let params = PostParams::default();
        let answer = tokio::time::timeout(REVIEW_TIMEOUT, reviews.create(&params, &review))
            .await
            .map_err(|_| AuthzError::Review("timed out".to_owned()))?
            .map_err(|e| AuthzError::Review(e.to_string()))?;
        let status = answer.status.unwrap_or_default();
        let reason = status.reason.unwrap_or_default();
        let (decision, ttl) = if status.allowed && status.denied != Some(true) {
            (Decision::Allow, self.options.allow_ttl)
        } else {
            (Decision::Deny(reason), self.options.deny_ttl)
        };
        self.cache.insert(key, decision.clone(), ttl);
        Ok(decision)
    }
}

/// upstream's `path.NewAuthorizer`: exact matches, or prefixes for entries ending in `*`;
/// leading slashes are ignored on both sides.
pub fn path_always_allowed(allowed: &[String], path: &str) -> bool {
    let path = path.trim_start_matches('/');
    allowed.iter().any(|entry| {
        let entry = entry.trim_start_matches('/');
        match entry.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == entry,
        }
    })
}

/// The SubjectAccessReview spec of a request (empty strings are left out, as Go does).
pub fn review_spec(user: &UserInfo, attributes: &Attributes) -> SubjectAccessReviewSpec {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let (resource_attributes, non_resource_attributes) = match attributes {
        Attributes::Resource(r) => (
            Some(SarResourceAttributes {
                namespace: opt(&r.namespace),
                verb: opt(&r.verb),
                group: opt(&r.group),
                version: opt(&r.version),
                resource: opt(&r.resource),
                subresource: opt(&r.subresource),
                name: opt(&r.name),
                ..SarResourceAttributes::default()
            }),
            None,
        ),
        Attributes::NonResource { path, verb } => (
            None,
            Some(NonResourceAttributes {
                path: opt(path),
                verb: opt(verb),
            }),
        ),
    };
    SubjectAccessReviewSpec {
        user: opt(&user.name),
        uid: opt(&user.uid),
        groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
        resource_attributes,
        non_resource_attributes,
    }
}

/// The 403 of a denied request (`responsewriters.Forbidden`): `<resource>.<group> "<name>" is
/// forbidden: User "<user>" cannot <verb> resource "<resource>" in API group "<group>" in the
/// namespace "<ns>"`, followed by `: <reason>` when the reviewer gave one.
pub fn forbidden(user: &str, attributes: &Attributes, why: &str) -> Status {
    let mut message = match attributes {
        Attributes::NonResource { path, verb } => {
            format!("User {} cannot {verb} path {}", q(user), q(path))
        }
        Attributes::Resource(r) => {
            let mut resource = r.resource.clone();
            if !r.subresource.is_empty() {
                resource = format!("{resource}/{}", r.subresource);
            }
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_owned()
            } else {
                format!("in the namespace {}", q(&r.namespace))
            };
            format!(
                "User {} cannot {} resource {} in API group {} {scope}",
                q(user),
                r.verb,
                q(&resource),
                q(&r.group)
            )
        }
    };
    if !why.is_empty() {
        message = format!("{message}: {why}");
    }
    let (group, resource, name) = match attributes {
        Attributes::Resource(r) => (r.group.as_str(), r.resource.as_str(), r.name.as_str()),
        Attributes::NonResource { .. } => ("", "", ""),
    };
    // apierrors.NewForbidden: the qualified resource is `resource.group` (or `resource` for the
    // core group), and details.kind holds the resource.
    let qualified = match (resource, group) {
        ("", _) => String::new(),
        (r, "") => r.to_owned(),
        (r, g) => format!("{r}.{g}"),
    };
    let full = match (qualified.as_str(), name) {
        ("", _) => format!("forbidden: {message}"),
        (qualified, "") => format!("{qualified} is forbidden: {message}"),
        (qualified, n) => format!("{qualified} {} is forbidden: {message}", q(n)),
    };
    Status::failure(403, reason::FORBIDDEN, full).with_details(StatusDetails {
        name: name.to_owned(),
        group: group.to_owned(),
        kind: resource.to_owned(),
        ..StatusDetails::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn attrs(method: Method, path: &str) -> Attributes {
        Attributes::of(&method, path, None)
    }

    #[test]
    fn forbidden_messages_match_upstream() {
        let get = attrs(
            Method::GET,
            "/apis/wgpolicyk8s.io/v1alpha2/namespaces/ns/policyreports/x",
        );
        let s = forbidden("u", &get, "");
        assert_eq!(s.code, 403);
        assert_eq!(s.reason, "Forbidden");
        assert_eq!(
            s.message,
            "policyreports.wgpolicyk8s.io \"x\" is forbidden: User \"u\" cannot get resource \
             \"policyreports\" in API group \"wgpolicyk8s.io\" in the namespace \"ns\""
        );
        let details = s.details.expect("details");
        assert_eq!(
            (
                details.name.as_str(),
                details.group.as_str(),
                details.kind.as_str()
            ),
            ("x", "wgpolicyk8s.io", "policyreports")
        );
        let list = attrs(Method::GET, "/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports");
        assert_eq!(
            forbidden("u", &list, "no RBAC policy matched").message,
            "clusterpolicyreports.wgpolicyk8s.io is forbidden: User \"u\" cannot list resource \
             \"clusterpolicyreports\" in API group \"wgpolicyk8s.io\" at the cluster scope: \
             no RBAC policy matched"
        );
        assert_eq!(
            forbidden("u", &attrs(Method::GET, "/apis"), "").message,
            "forbidden: User \"u\" cannot get path \"/apis\""
        );
        let pods = attrs(Method::GET, "/api/v1/namespaces/ns/pods/p/log");
        assert_eq!(
            forbidden("u", &pods, "").message,
            "pods \"p\" is forbidden: User \"u\" cannot get resource \"pods/log\" in API group \
             \"\" in the namespace \"ns\""
        );
    }

    #[test]
    fn always_allowed_paths() {
        let allowed: Vec<String> = ["/healthz", "/readyz", "/livez", "/metrics*"]
            .map(String::from)
            .to_vec();
        assert!(path_always_allowed(&allowed, "/healthz"));
        assert!(!path_always_allowed(&allowed, "/healthz/ping"));
        assert!(path_always_allowed(&allowed, "/metrics/slis"));
        assert!(!path_always_allowed(&allowed, "/apis"));
    }

    #[test]
    fn review_specs_leave_empty_fields_out() {
        let user = UserInfo {
            name: "alice".into(),
            groups: vec!["g".into()],
            ..UserInfo::default()
        };
        let spec = review_spec(
            &user,
            &attrs(Method::GET, "/apis/wgpolicyk8s.io/v1alpha2/policyreports"),
        );
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "user": "alice",
                "groups": ["g"],
                "resourceAttributes": {
                    "verb": "list",
                    "group": "wgpolicyk8s.io",
                    "version": "v1alpha2",
                    "resource": "policyreports"
                }
            })
        );
        let spec = review_spec(&user, &attrs(Method::GET, "/openapi/v2"));
        assert_eq!(
            serde_json::to_value(&spec).expect("json")["nonResourceAttributes"],
            serde_json::json!({"path": "/openapi/v2", "verb": "get"})
        );
    }

    #[tokio::test]
    async fn standalone_allows_everything() {
        let authz = Authorizer::allow_all();
        let user = UserInfo::default();
        let decision = authz
            .authorize(&user, &attrs(Method::DELETE, "/apis/g.io/v1/things"))
            .await
            .expect("decision");
        assert_eq!(decision, Decision::Allow);
    }
}
