//! Authorization attributes of a request: upstream's `RequestInfoFactory.NewRequestInfo`
//! (`apiserver/pkg/endpoints/request/requestinfo.go`), computed from the method, the path and
//! the query alone.
//!
//! The parse is generic, like upstream's: any `/apis/{group}/{version}/...` (or
//! `/api/{version}/...`) path with at least a resource is a resource request, served or not, so
//! a caller without permission gets 403 rather than learning what exists. Everything else
//! (discovery, OpenAPI, `/version`, health) is a non-resource request whose verb is the
//! lower-cased method.
//!
//! Verbs (`requestinfo.go:205-273`): GET/HEAD on a name → `get`, on a collection → `list`, or
//! `watch` when `?watch` is truthy or the deprecated `/watch/` prefix is used; POST → `create`;
//! PUT → `update`; PATCH → `patch`; DELETE → `delete`, on a collection → `deletecollection`. A
//! list or watch whose `fieldSelector` pins `metadata.name` carries that name, so RBAC
//! `resourceNames` apply.

use http::Method;
use prext_api::fields::FieldSelector;

use crate::request::Query;

/// What a request asks to do, as SubjectAccessReview describes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// A request on a resource (`resourceAttributes`).
    Resource(ResourceAttributes),
    /// Any other path (`nonResourceAttributes`).
    NonResource {
        /// The request path.
        path: String,
        /// The lower-cased HTTP method.
        verb: String,
    },
}

/// `resourceAttributes` of a SubjectAccessReview; empty strings are unset fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourceAttributes {
    /// The namespace; empty for cluster-scoped and all-namespace requests.
    pub namespace: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or
    /// empty for methods with no verb.
    pub verb: String,
    /// The API group; empty for the core group.
    pub group: String,
    /// The API version.
    pub version: String,
    /// The resource (plural).
    pub resource: String,
    /// The subresource, if the path names one.
    pub subresource: String,
    /// The object name, from the path or a `metadata.name` field selector.
    pub name: String,
}

impl Attributes {
    /// The verb (`get`, `list`, ... for resources; the lower-cased method otherwise).
    pub fn verb(&self) -> &str {
        match self {
            Attributes::Resource(r) => &r.verb,
            Attributes::NonResource { verb, .. } => verb,
        }
    }

    /// The attributes of a request.
    pub fn of(method: &Method, path: &str, query: Option<&str>) -> Self {
        let non_resource = || Attributes::NonResource {
            path: path.to_owned(),
            verb: method.as_str().to_ascii_lowercase(),
        };
        let trimmed = path.trim_matches('/');
        let parts: Vec<String> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').map(decode).collect()
        };
        if parts.len() < 3 {
            return non_resource();
        }
        let mut rest: &[String] = &parts[1..];
        let group = match parts[0].as_str() {
            "api" => String::new(),
            "apis" if rest.len() >= 3 => {
                let group = rest[0].clone();
                rest = &rest[1..];
                group
            }
            _ => return non_resource(),
        };
        let version = rest[0].clone();
        rest = &rest[1..];

        let mut verb = match rest.first().map(String::as_str) {
            Some(special @ ("watch" | "proxy")) => {
                if rest.len() < 2 {
                    // Upstream answers 500 ("unable to determine kind and namespace");
                    // authorizing the path as a non-resource request is the safe reading.
                    return non_resource();
                }
                rest = &rest[1..];
                special.to_owned()
            }
            _ => method_verb(method).to_owned(),
        };

        let mut namespace = String::new();
        if rest.first().map(String::as_str) == Some("namespaces") {
            if let Some(ns) = rest.get(1) {
                namespace = ns.clone();
                if rest.len() > 2 && !matches!(rest[2].as_str(), "status" | "finalize") {
                    rest = &rest[2..];
                }
            }
        }

        let mut attrs = ResourceAttributes {
            namespace,
            group,
            version,
            resource: rest.first().cloned().unwrap_or_default(),
            name: rest.get(1).cloned().unwrap_or_default(),
            subresource: if verb == "proxy" {
                String::new()
            } else {
                rest.get(2).cloned().unwrap_or_default()
            },
            verb: String::new(),
        };

        if attrs.name.is_empty() && verb == "get" {
            let query = Query::parse(query);
            verb = if query.flag("watch") { "watch" } else { "list" }.to_owned();
            if let Some(name) = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))
                .ok()
                .as_ref()
                .and_then(FieldSelector::pinned_name)
                .filter(|n| valid_path_segment_name(n))
            {
                attrs.name = name.to_owned();
            }
        }
        if attrs.name.is_empty() && verb == "delete" {
            verb = "deletecollection".to_owned();
        }
        attrs.verb = verb;
        Attributes::Resource(attrs)
    }
}

fn method_verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// Percent-decodes a path segment (upstream splits the decoded path); a segment that does not
/// decode to UTF-8 is kept as written.
fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_or_else(|_| segment.to_owned(), |s| s.into_owned())
}

/// `path.IsValidPathSegmentName`.
fn valid_path_segment_name(name: &str) -> bool {
    !matches!(name, "." | "..") && !name.contains(['/', '%'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn resource(method: Method, path: &str, query: Option<&str>) -> ResourceAttributes {
        match Attributes::of(&method, path, query) {
            Attributes::Resource(r) => r,
            other => panic!("{path}: expected a resource request, got {other:?}"),
        }
    }

    const G: &str = "/apis/wgpolicyk8s.io/v1alpha2";

    #[test]
    fn verbs_follow_requestinfo() {
        let cases = [
            (Method::GET, "/namespaces/ns/policyreports/x", None, "get"),
            (Method::HEAD, "/namespaces/ns/policyreports/x", None, "get"),
            (Method::GET, "/namespaces/ns/policyreports", None, "list"),
            (Method::GET, "/policyreports", Some("watch=1"), "watch"),
            (Method::GET, "/policyreports", Some("watch=false"), "list"),
            (Method::GET, "/policyreports", Some("watch="), "watch"),
            (Method::GET, "/watch/namespaces/ns/policyreports", None, "watch"),
            (Method::POST, "/namespaces/ns/policyreports", None, "create"),
            (Method::PUT, "/namespaces/ns/policyreports/x", None, "update"),
            (Method::PATCH, "/namespaces/ns/policyreports/x", None, "patch"),
            (Method::DELETE, "/namespaces/ns/policyreports/x", None, "delete"),
            (
                Method::DELETE,
                "/namespaces/ns/policyreports",
                None,
                "deletecollection",
            ),
            (Method::OPTIONS, "/namespaces/ns/policyreports/x", None, ""),
        ];
        for (method, path, query, verb) in cases {
            let r = resource(method.clone(), &format!("{G}{path}"), query);
            assert_eq!(r.verb, verb, "{method} {path} {query:?}");
        }
    }

    #[test]
    fn fields_of_namespaced_and_cluster_paths() {
        let r = resource(Method::GET, &format!("{G}/namespaces/ns/policyreports/x"), None);
        assert_eq!(
            r,
            ResourceAttributes {
                namespace: "ns".into(),
                verb: "get".into(),
                group: "wgpolicyk8s.io".into(),
                version: "v1alpha2".into(),
                resource: "policyreports".into(),
                subresource: String::new(),
                name: "x".into(),
            }
        );
        let r = resource(Method::PUT, &format!("{G}/clusterpolicyreports/c/status"), None);
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("", "c"));
        assert_eq!(r.subresource, "status");
        let r = resource(Method::GET, "/api/v1/namespaces/ns/pods/p/log", None);
        assert_eq!((r.group.as_str(), r.version.as_str()), ("", "v1"));
        assert_eq!((r.resource.as_str(), r.subresource.as_str()), ("pods", "log"));
        let r = resource(Method::GET, "/api/v1/namespaces/ns", None);
        assert_eq!((r.resource.as_str(), r.name.as_str()), ("namespaces", "ns"));
        let r = resource(Method::PUT, "/api/v1/namespaces/ns/finalize", None);
        assert_eq!((r.name.as_str(), r.subresource.as_str()), ("ns", "finalize"));
        let r = resource(Method::GET, &format!("{G}/namespaces/a%20b/policyreports"), None);
        assert_eq!(r.namespace, "a b");
    }

    #[test]
    fn field_selector_pins_the_name_of_lists_and_watches() {
        let path = format!("{G}/namespaces/ns/policyreports");
        let r = resource(
            Method::GET,
            &path,
            Some("fieldSelector=metadata.name%3Dx&watch=1"),
        );
        assert_eq!((r.verb.as_str(), r.name.as_str()), ("watch", "x"));
        let r = resource(Method::GET, &path, Some("fieldSelector=metadata.name%3D%3Dx"));
        assert_eq!((r.verb.as_str(), r.name.as_str()), ("list", "x"));
        for unpinned in [
            "metadata.name!%3Dx",
            "metadata.namespace%3Dns",
            "metadata.name%3D..",
        ] {
            let r = resource(Method::GET, &path, Some(&format!("fieldSelector={unpinned}")));
            assert_eq!(r.name, "", "{unpinned}");
        }
        let r = resource(Method::DELETE, &path, Some("fieldSelector=metadata.name%3Dx"));
        assert_eq!((r.verb.as_str(), r.name.as_str()), ("deletecollection", ""));
    }

    #[test]
    fn everything_else_is_a_non_resource_request() {
        for path in [
            "/",
            "/apis",
            "/apis/wgpolicyk8s.io",
            "/apis/wgpolicyk8s.io/v1alpha2",
            "/api/v1",
            "/openapi/v2",
            "/openapi/v3/apis/wgpolicyk8s.io/v1alpha2",
            "/version",
            "/healthz",
            "/apis/wgpolicyk8s.io/v1alpha2/watch",
        ] {
            assert_eq!(
                Attributes::of(&Method::GET, path, None),
                Attributes::NonResource {
                    path: path.into(),
                    verb: "get".into()
                },
                "{path}"
            );
        }
        assert_eq!(Attributes::of(&Method::POST, "/version", None).verb(), "post");
    }

    proptest! {
        #[test]
        fn built_paths_parse_back(
            ns in "[a-z0-9-]{1,12}",
            name in "[a-z0-9.-]{1,12}",
            resource in "[a-z]{1,12}",
            group in "[a-z]{1,8}\\.[a-z]{2,4}",
        ) {
            prop_assume!(!matches!(resource.as_str(), "namespaces" | "watch" | "proxy"));
            let path = format!("/apis/{group}/v1/namespaces/{ns}/{resource}/{name}");
            let r = resource_of(&path);
            prop_assert_eq!(r.namespace, ns);
            prop_assert_eq!(r.name, name);
            prop_assert_eq!(r.resource, resource);
            prop_assert_eq!(r.group, group);
            prop_assert_eq!(r.verb, "get");
        }

        #[test]
        fn never_panics(path in "(/[a-z%0-9.]{0,6}){0,8}/?", query in "[a-z=&%0-9.]{0,20}") {
            for method in [Method::GET, Method::POST, Method::DELETE, Method::OPTIONS] {
                let _ = Attributes::of(&method, &path, Some(&query));
            }
        }
    }

    fn resource_of(path: &str) -> ResourceAttributes {
        resource(Method::GET, path, None)
    }
}
