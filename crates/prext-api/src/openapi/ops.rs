//! The REST operations of a kind, as apiextensions-apiserver's OpenAPI builder
//! (`apiextensions-apiserver/pkg/controller/openapi/builder`) describes them: one neutral
//! model, rendered as OpenAPI 3.0 by `v3` and Swagger 2.0 by `v2`.

use crate::resources::ResourceDef;

/// Prefix of the apimachinery meta types' schema names.
pub(super) const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";

/// The media types a PATCH accepts: the CRD set (no strategic merge patch, so that
/// `kubectl apply` falls back to a JSON merge patch).
pub(super) const PATCH_TYPES: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum In {
    Path,
    Query,
}

/// One operation parameter.
#[derive(Debug, Clone)]
pub(super) struct Param {
    pub name: &'static str,
    pub location: In,
    /// `string`, `integer` or `boolean`.
    pub ty: &'static str,
    pub description: String,
}

/// A request body: the schema it is read as, and the media types accepted.
#[derive(Debug, Clone)]
pub(super) struct Body {
    pub schema: String,
    pub content_types: &'static [&'static str],
    pub required: bool,
}

/// One documented response.
#[derive(Debug, Clone)]
pub(super) struct Response {
    pub code: &'static str,
    pub description: &'static str,
    pub schema: String,
}

/// One operation (HTTP method on a path).
#[derive(Debug, Clone)]
pub(super) struct Operation {
    /// Lower-case HTTP method.
    pub method: &'static str,
    pub id: String,
    pub tag: String,
    pub description: String,
    /// `x-kubernetes-action`.
    pub action: &'static str,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    pub responses: Vec<Response>,
    /// `x-kubernetes-group-version-kind`: group, version, kind.
    pub gvk: (&'static str, &'static str, &'static str),
}

/// One path with its shared parameters and its operations.
#[derive(Debug, Clone)]
pub(super) struct PathItem {
    pub path: String,
    pub params: Vec<Param>,
    pub operations: Vec<Operation>,
}

/// `io.openreports` for `openreports.io`: the reverse-domain prefix of definition names.
fn reverse_domain(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

/// The kind's schema name, as apiextensions names it (`io.wgpolicyk8s.v1alpha2.PolicyReport`).
pub(super) fn kind_schema_name(def: &ResourceDef) -> String {
    format!("{}.{}.{}", reverse_domain(def.group), def.version, def.kind)
}

/// The kind's list schema name (`io.wgpolicyk8s.v1alpha2.PolicyReportList`).
pub(super) fn list_schema_name(def: &ResourceDef) -> String {
    format!("{}.{}.{}", reverse_domain(def.group), def.version, def.list_kind)
}

/// apiserver's `ToValidOperationID`: drop non-identifier characters, capitalizing the
/// letter that follows each dropped run.
fn to_operation_id(s: &str, capitalize_first: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut capitalize = capitalize_first;
    for (i, c) in s.chars().enumerate() {
        if c.is_alphabetic() || c == '_' || (i != 0 && c.is_ascii_digit()) {
            if capitalize {
                out.extend(c.to_uppercase());
                capitalize = false;
            } else {
                out.push(c);
            }
        } else {
            capitalize = true;
        }
    }
    out
}

/// The operation tag of a group version (`wgpolicyk8sIo_v1alpha2`).
pub(super) fn tag(def: &ResourceDef) -> String {
    let group = def.group.trim_end_matches(".k8s.io");
    format!(
        "{}_{}",
        to_operation_id(group, false),
        to_operation_id(def.version, false)
    )
}

/// `endpoints.GetArticleForNoun(kind, " ")`.
fn article(kind: &str) -> &'static str {
    if kind.ends_with('s') && !kind.ends_with("ss") {
        " "
    } else if kind
        .chars()
        .next()
        .is_some_and(|c| "aeiou".contains(c.to_ascii_lowercase()))
    {
        " an "
    } else {
        " a "
    }
}

const DRY_RUN: &str = "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed";
const FIELD_MANAGER: &str = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.";
const FIELD_VALIDATION: &str = "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.";
const FORCE: &str = "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.";
const ALLOW_WATCH_BOOKMARKS: &str = "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session.";
const CONTINUE: &str = "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize. If the specified continue value is no longer valid, the server will respond with a 410 ResourceExpired error.";
const FIELD_SELECTOR: &str =
    "A selector to restrict the list of returned objects by their fields. Defaults to everything.";
const LABEL_SELECTOR: &str =
    "A selector to restrict the list of returned objects by their labels. Defaults to everything.";
const LIMIT: &str = "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.";
const RESOURCE_VERSION: &str = "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details. Defaults to unset";
const RESOURCE_VERSION_MATCH: &str = "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details. Defaults to unset";
const SEND_INITIAL_EVENTS: &str = "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event will be sent. The bookmark will report the ResourceVersion (RV) corresponding to the set of objects, and be marked with `\"k8s.io/initial-events-end\": \"true\"` annotation.";
const TIMEOUT_SECONDS: &str = "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.";
const WATCH: &str = "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.";
const GRACE_PERIOD_SECONDS: &str = "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.";
const ORPHAN_DEPENDENTS: &str = "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.";
const PROPAGATION_POLICY: &str = "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.";
const PRETTY: &str = "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).";
const NAMESPACE: &str = "object name and auth scope, such as for teams and projects";

fn query(name: &'static str, ty: &'static str, description: &str) -> Param {
    Param {
        name,
        location: In::Query,
        ty,
        description: description.to_string(),
    }
}

fn write_params(patch: bool) -> Vec<Param> {
    let mut params = vec![
        query("dryRun", "string", DRY_RUN),
        query("fieldManager", "string", FIELD_MANAGER),
        query("fieldValidation", "string", FIELD_VALIDATION),
    ];
    if patch {
        params.push(query("force", "boolean", FORCE));
    }
    params
}

fn list_params() -> Vec<Param> {
    vec![
        query("allowWatchBookmarks", "boolean", ALLOW_WATCH_BOOKMARKS),
        query("continue", "string", CONTINUE),
        query("fieldSelector", "string", FIELD_SELECTOR),
        query("labelSelector", "string", LABEL_SELECTOR),
        query("limit", "integer", LIMIT),
        query("resourceVersion", "string", RESOURCE_VERSION),
        query("resourceVersionMatch", "string", RESOURCE_VERSION_MATCH),
        query("sendInitialEvents", "boolean", SEND_INITIAL_EVENTS),
        query("timeoutSeconds", "integer", TIMEOUT_SECONDS),
        query("watch", "boolean", WATCH),
    ]
}

fn delete_params() -> Vec<Param> {
    vec![
        query("dryRun", "string", DRY_RUN),
        query("gracePeriodSeconds", "integer", GRACE_PERIOD_SECONDS),
        query("orphanDependents", "boolean", ORPHAN_DEPENDENTS),
        query("propagationPolicy", "string", PROPAGATION_POLICY),
    ]
}

fn delete_collection_params() -> Vec<Param> {
    let mut params = list_params();
    params.retain(|p| !matches!(p.name, "allowWatchBookmarks" | "watch"));
    params.extend(delete_params());
    params.sort_by_key(|p| p.name);
    params
}

fn responses(codes: &[(&'static str, &'static str)], schema: &str) -> Vec<Response> {
    codes
        .iter()
        .map(|&(code, description)| Response {
            code,
            description,
            schema: schema.to_string(),
        })
        .collect()
}

/// Every path of `def`, with its operations, in apiextensions' order.
pub(super) fn paths(def: &'static ResourceDef) -> Vec<PathItem> {
    let kind_ref = kind_schema_name(def);
    let list_ref = list_schema_name(def);
    let status_ref = format!("{META}Status");
    let delete_ref = format!("{META}DeleteOptions");
    let gv_id = format!(
        "{}{}",
        to_operation_id(def.group.trim_end_matches(".k8s.io"), true),
        to_operation_id(def.version, true)
    );
    let scope = if def.namespaced { "Namespaced" } else { "" };
    let kind = def.kind;
    let op = |method, verb: &str, suffix: &str, description: String, action| Operation {
        method,
        id: format!("{verb}{gv_id}{suffix}{scope}{kind}"),
        tag: tag(def),
        description,
        action,
        params: Vec::new(),
        body: None,
        responses: Vec::new(),
        gvk: (def.group, def.version, def.kind),
    };
    let ok = [("200", "OK")];

    let mut list = op("get", "list", "", format!("list objects of kind {kind}"), "list");
    list.params = list_params();
    list.responses = responses(&ok, &list_ref);

    let mut create = op(
        "post",
        "create",
        "",
        format!("create{}{kind}", article(kind)),
        "post",
    );
    create.params = write_params(false);
    create.body = Some(Body {
        schema: kind_ref.clone(),
        content_types: &["*/*"],
        required: true,
    });
    create.responses = responses(
        &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
        &kind_ref,
    );

    let mut delete_all = op(
        "delete",
        "delete",
        "Collection",
        format!("delete collection of {kind}"),
        "deletecollection",
    );
    delete_all.params = delete_collection_params();
    delete_all.body = Some(Body {
        schema: delete_ref.clone(),
        content_types: &["*/*"],
        required: false,
    });
    delete_all.responses = responses(&ok, &status_ref);

    let mut read = op("get", "read", "", format!("read the specified {kind}"), "get");
    read.responses = responses(&ok, &kind_ref);

    let mut replace = op(
        "put",
        "replace",
        "",
        format!("replace the specified {kind}"),
        "put",
    );
    replace.params = write_params(false);
    replace.body = Some(Body {
        schema: kind_ref.clone(),
        content_types: &["*/*"],
        required: true,
    });
    replace.responses = responses(&[("200", "OK"), ("201", "Created")], &kind_ref);

    let mut delete = op(
        "delete",
        "delete",
        "",
        format!("delete{}{kind}", article(kind)),
        "delete",
    );
    delete.params = delete_params();
    delete.body = Some(Body {
        schema: delete_ref,
        content_types: &["*/*"],
        required: false,
    });
    delete.responses = responses(&[("200", "OK"), ("202", "Accepted")], &status_ref);

    let mut patch = op(
        "patch",
        "patch",
        "",
        format!("partially update the specified {kind}"),
        "patch",
    );
    patch.params = write_params(true);
    patch.body = Some(Body {
        schema: format!("{META}Patch"),
        content_types: &PATCH_TYPES,
        required: true,
    });
    patch.responses = responses(&[("200", "OK"), ("201", "Created")], &kind_ref);

    let pretty = query("pretty", "string", PRETTY);
    let namespace = Param {
        name: "namespace",
        location: In::Path,
        ty: "string",
        description: NAMESPACE.into(),
    };
    let name = Param {
        name: "name",
        location: In::Path,
        ty: "string",
        description: format!("name of the {kind}"),
    };
    let base = format!("/apis/{}/{}", def.group, def.version);
    let (collection, mut scope_params) = if def.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", def.plural),
            vec![namespace],
        )
    } else {
        (format!("{base}/{}", def.plural), Vec::new())
    };
    scope_params.push(pretty.clone());
    let mut item_params = vec![name];
    item_params.extend(scope_params.iter().cloned());

    let mut out = vec![
        PathItem {
            path: collection.clone(),
            params: scope_params,
            operations: vec![list.clone(), create, delete_all],
        },
        PathItem {
            path: format!("{collection}/{{name}}"),
            params: item_params,
            operations: vec![read, replace, delete, patch],
        },
    ];
    if def.namespaced {
        let mut all = list;
        all.id = format!("list{gv_id}{kind}ForAllNamespaces");
        out.push(PathItem {
            path: format!("{base}/{}", def.plural),
            params: vec![pretty],
            operations: vec![all],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn names_follow_apiextensions() {
        let ephr = find("reports.kyverno.io", "v1", "ephemeralreports").expect("served");
        assert_eq!(kind_schema_name(ephr), "io.kyverno.reports.v1.EphemeralReport");
        assert_eq!(
            list_schema_name(ephr),
            "io.kyverno.reports.v1.EphemeralReportList"
        );
        assert_eq!(tag(ephr), "reportsKyvernoIo_v1");
        let ids: Vec<_> = paths(ephr)
            .iter()
            .flat_map(|p| p.operations.iter().map(|o| o.id.clone()))
            .collect();
        assert_eq!(
            ids,
            [
                "listReportsKyvernoIoV1NamespacedEphemeralReport",
                "createReportsKyvernoIoV1NamespacedEphemeralReport",
                "deleteReportsKyvernoIoV1CollectionNamespacedEphemeralReport",
                "readReportsKyvernoIoV1NamespacedEphemeralReport",
                "replaceReportsKyvernoIoV1NamespacedEphemeralReport",
                "deleteReportsKyvernoIoV1NamespacedEphemeralReport",
                "patchReportsKyvernoIoV1NamespacedEphemeralReport",
                "listReportsKyvernoIoV1EphemeralReportForAllNamespaces",
            ]
        );
        let demo = find("prext.demo", "v1alpha1", "clusterpolicyreports").expect("served");
        assert_eq!(kind_schema_name(demo), "demo.prext.v1alpha1.ClusterPolicyReport");
        assert_eq!(
            paths(demo)[0].operations[2].id,
            "deletePrextDemoV1alpha1CollectionClusterPolicyReport"
        );
    }

    #[test]
    fn descriptions_use_articles_like_kubernetes() {
        assert_eq!(article("EphemeralReport"), " an ");
        assert_eq!(article("PolicyReport"), " a ");
        assert_eq!(article("Endpoints"), " ");
        assert_eq!(article("Class"), " a ");
        assert_eq!(to_operation_id("wgpolicyk8s.io", true), "Wgpolicyk8sIo");
        assert_eq!(to_operation_id("8x.y", false), "XY");
    }
}
