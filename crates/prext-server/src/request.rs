//! Request decoding: which resource a path names (the generic apiserver's `RequestInfo`) and
//! the typed query parameters of each verb family, validated as apimachinery validates them.

use http::{header, HeaderMap};
use prext_api::fields::FieldSelector;
use prext_api::labels::LabelSelector;
use prext_api::resources::{self, ResourceDef};
use prext_api::status::{Status, StatusCause};

pub use crate::registry::{FieldValidation, VersionMatch};
use crate::registry::{ObjectRef, WriteOptions};
use crate::state::AppState;

/// A decoded resource request as handlers see it.
pub struct Ctx {
    pub state: AppState,
    pub path: ResourcePath,
    pub query: Query,
    pub headers: HeaderMap,
}

impl Ctx {
    /// A request header as text.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The object the path names (its name empty on collection paths).
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            def: self.path.def,
            namespace: self.path.namespace.clone(),
            name: self.path.name.clone().unwrap_or_default(),
        }
    }

    /// The field manager when the client names none: its program name from the user agent,
    /// as kube-apiserver defaults it.
    pub fn default_manager(&self) -> String {
        let agent = self.header(header::USER_AGENT).unwrap_or("unknown");
        let program = agent.split('/').next().unwrap_or(agent).trim();
        let program = if program.is_empty() { "unknown" } else { program };
        program.chars().take(128).collect()
    }

    /// The registry's options of a create, update, patch or apply.
    pub fn write_options(&self) -> Result<WriteOptions, Status> {
        let params = WriteParams::parse(&self.query)?;
        Ok(WriteOptions {
            dry_run: params.dry_run,
            field_validation: params.field_validation,
            field_manager: params.field_manager,
            default_manager: self.default_manager(),
            force: params.force,
            duplicates: Vec::new(),
        })
    }
}

/// The resource a request addresses.
#[derive(Debug, Clone)]
pub struct ResourcePath {
    pub def: &'static ResourceDef,
    /// Set for namespaced paths (`/namespaces/{ns}/...`).
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The deprecated `/apis/g/v/watch/...` prefix was used.
    pub watch_prefix: bool,
}

/// Parses `/apis/{group}/{version}/[watch/][namespaces/{ns}/]{plural}[/{name}]`.
/// Returns `None` for paths that name no served resource.
pub fn parse_path(path: &str) -> Option<ResourcePath> {
    let rest = path.strip_prefix("/apis/")?;
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if segs.len() < 3 {
        return None;
    }
    let (group, version) = (segs[0], segs[1]);
    let mut i = 2;
    let watch_prefix = segs.get(i) == Some(&"watch");
    if watch_prefix {
        i += 1;
    }
    let mut namespace = None;
    if segs.get(i) == Some(&"namespaces") && segs.len() >= i + 3 {
        namespace = Some(decode(segs[i + 1])?);
        i += 2;
    }
    let plural = *segs.get(i)?;
    let def = resources::find(group, version, plural)?;
    let name = match segs.get(i + 1) {
        Some(n) => Some(decode(n)?),
        None => None,
    };
    if segs.len() > i + 2 {
        return None; // subresources are not served
    }
    if namespace.is_some() && !def.namespaced {
        return None;
    }
    if !def.namespaced || namespace.is_some() || name.is_none() {
        Some(ResourcePath {
            def,
            namespace,
            name,
            watch_prefix,
        })
    } else {
        // A namespaced kind addressed by name without a namespace.
        None
    }
}

fn decode(seg: &str) -> Option<String> {
    let s = percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!s.is_empty()).then_some(s)
}

/// The raw query string as ordered pairs (keys may repeat).
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// apimachinery's bool conversion: absent → false; "0"/"false" → false; anything else,
    /// the empty string included, → true.
    pub fn flag(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) => !(v == "0" || v.eq_ignore_ascii_case("false")),
        }
    }
}

fn list_options_invalid(field: &str, message: String) -> Status {
    Status::invalid_kind(
        "ListOptions",
        "meta.k8s.io",
        "",
        vec![StatusCause::new("FieldValueInvalid", message, field)],
    )
}

/// Parsed and validated ListOptions (list, watch and deletecollection).
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// `resourceVersion`, kept as sent ("" when absent).
    pub resource_version: String,
    pub version_match: Option<VersionMatch>,
    pub watch: bool,
    pub allow_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout_seconds: Option<u64>,
}

impl ListParams {
    /// The registry's request of a list with these parameters.
    pub fn list_request(&self, namespace: Option<String>) -> Result<crate::registry::ListRequest, Status> {
        Ok(crate::registry::ListRequest {
            namespace,
            labels: self.labels.clone(),
            fields: self.fields.clone(),
            limit: self.limit,
            continue_token: self.continue_token.clone(),
            revision: self.revision()?,
            version_match: self.version_match,
        })
    }

    pub fn parse(q: &Query) -> Result<Self, Status> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| Status::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(|e| Status::bad_request(e.to_string()))?;
        let limit = match q.get("limit").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let n: i64 = s.parse().map_err(|_| {
                    Status::bad_request(format!("limit: invalid value {s:?}: must be an integer"))
                })?;
                (n > 0).then_some(n as usize)
            }
        };
        let continue_token = q.get("continue").filter(|s| !s.is_empty()).map(str::to_string);
        let resource_version = q.get("resourceVersion").unwrap_or("").to_string();
        let version_match = match q.get("resourceVersionMatch").unwrap_or("") {
            "" => None,
            "Exact" => Some(VersionMatch::Exact),
            "NotOlderThan" => Some(VersionMatch::NotOlderThan),
            other => {
                return Err(list_options_invalid(
                    "resourceVersionMatch",
                    format!("Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""),
                ))
            }
        };
        let watch = q.flag("watch");
        let send_initial_events = q.get("sendInitialEvents").map(|_| q.flag("sendInitialEvents"));
        let timeout_seconds = match q.get("timeoutSeconds").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(s.parse::<u64>().map_err(|_| {
                Status::bad_request(format!(
                    "timeoutSeconds: invalid value {s:?}: must be a non-negative integer"
                ))
            })?),
        };
        let p = ListParams {
            labels,
            fields,
            limit,
            continue_token,
            resource_version,
            version_match,
            watch,
            allow_bookmarks: q.flag("allowWatchBookmarks"),
            send_initial_events,
            timeout_seconds,
        };
        p.validate()?;
        Ok(p)
    }

    /// `ValidateListOptions` of apimachinery.
    fn validate(&self) -> Result<(), Status> {
        if let Some(m) = self.version_match {
            if self.watch && self.send_initial_events.is_none() {
                return Err(list_options_invalid(
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
                        .into(),
                ));
            }
            if self.resource_version.is_empty() && !(self.watch && self.send_initial_events == Some(true)) {
                return Err(list_options_invalid(
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
                ));
            }
            if self.continue_token.is_some() {
                return Err(list_options_invalid(
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden when continue is provided".into(),
                ));
            }
            if m == VersionMatch::Exact && self.resource_version == "0" {
                return Err(list_options_invalid(
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into(),
                ));
            }
        }
        if self.send_initial_events.is_some() {
            if !self.watch {
                return Err(list_options_invalid(
                    "sendInitialEvents",
                    "Forbidden: sendInitialEvents is forbidden for list".into(),
                ));
            }
            if self.version_match != Some(VersionMatch::NotOlderThan) {
                return Err(list_options_invalid(
                    "resourceVersionMatch",
                    "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
                        .into(),
                ));
            }
        }
        if self.continue_token.is_some() && !self.resource_version.is_empty() && self.resource_version != "0"
        {
            return Err(Status::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        Ok(())
    }

    /// The resourceVersion as a revision; `None` when unset or "0".
    pub fn revision(&self) -> Result<Option<i64>, Status> {
        parse_revision(&self.resource_version)
    }
}

/// Parses a resourceVersion: "" and "0" mean "any"; anything else must be a positive integer.
pub fn parse_revision(rv: &str) -> Result<Option<i64>, Status> {
    match rv {
        "" | "0" => Ok(None),
        s => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| Status::bad_request(format!("invalid resource version: {s:?}"))),
    }
}

/// Parameters of create, update and patch.
#[derive(Debug, Clone)]
pub struct WriteParams {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    pub force: Option<bool>,
}

impl WriteParams {
    pub fn parse(q: &Query) -> Result<Self, Status> {
        let dry_run = parse_dry_run(&q.all("dryRun"))?;
        let field_manager = q
            .get("fieldManager")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if let Some(m) = &field_manager {
            if m.len() > 128 || m.chars().any(|c| c.is_control()) {
                return Err(Status::invalid_kind(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    vec![StatusCause::new(
                        "FieldValueInvalid",
                        "fieldManager must be at most 128 printable characters",
                        "fieldManager",
                    )],
                ));
            }
        }
        let field_validation = match q.get("fieldValidation").unwrap_or("") {
            "" | "Warn" => FieldValidation::Warn,
            "Ignore" => FieldValidation::Ignore,
            "Strict" => FieldValidation::Strict,
            other => {
                return Err(Status::bad_request(format!(
                    "fieldValidation: unsupported value \"{other}\": supported values: \"Ignore\", \"Warn\", \"Strict\""
                )))
            }
        };
        let force = q.get("force").map(|_| q.flag("force"));
        Ok(WriteParams {
            dry_run,
            field_manager,
            field_validation,
            force,
        })
    }
}

/// `dryRun` may repeat; only `All` is valid.
pub fn parse_dry_run(values: &[&str]) -> Result<bool, Status> {
    for v in values {
        if *v != "All" {
            return Err(Status::invalid_kind(
                "CreateOptions",
                "meta.k8s.io",
                "",
                vec![StatusCause::new(
                    "FieldValueNotSupported",
                    format!("Unsupported value: \"{v}\": supported values: \"All\""),
                    "dryRun",
                )],
            ));
        }
    }
    Ok(!values.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = parse_path("/apis/wgpolicyk8s.io/v1alpha2/namespaces/ns1/policyreports/r1").unwrap();
        assert_eq!(p.def.kind, "PolicyReport");
        assert_eq!(p.namespace.as_deref(), Some("ns1"));
        assert_eq!(p.name.as_deref(), Some("r1"));
        let p = parse_path("/apis/wgpolicyk8s.io/v1alpha2/policyreports").unwrap();
        assert!(p.namespace.is_none() && p.name.is_none());
        let p = parse_path("/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/c").unwrap();
        assert_eq!(p.name.as_deref(), Some("c"));
        let p = parse_path("/apis/wgpolicyk8s.io/v1alpha2/watch/namespaces/a/policyreports").unwrap();
        assert!(p.watch_prefix);
        assert!(parse_path("/apis/wgpolicyk8s.io/v1alpha2/policyreports/x").is_none());
        assert!(parse_path("/apis/wgpolicyk8s.io/v1alpha2/namespaces/a/clusterpolicyreports").is_none());
        assert!(parse_path("/apis/wgpolicyk8s.io/v1alpha2/namespaces/a/policyreports/x/status").is_none());
        assert!(parse_path("/apis/nope/v1/things").is_none());
    }

    /// The computed resources of results.prext.io are rows of the same table, their paths
    /// decoded by the same rules (moved from prext-api's former results path parser).
    #[test]
    fn results_paths() {
        let p = parse_path("/apis/results.prext.io/v1alpha1/namespaces/ns/policyresults").expect("path");
        assert_eq!(
            (p.def.kind, p.namespace.as_deref(), p.name),
            ("PolicyResult", Some("ns"), None)
        );
        let p = parse_path("/apis/results.prext.io/v1alpha1/resultsummaries").expect("path");
        assert_eq!((p.def.kind, p.namespace), ("ResultSummary", None));
        let p = parse_path("/apis/results.prext.io/v1alpha1/namespaces/a%20b/policyresults/polr.x.1")
            .expect("path");
        assert_eq!(
            (p.namespace.as_deref(), p.name.as_deref()),
            (Some("a b"), Some("polr.x.1"))
        );
        assert!(
            parse_path("/apis/results.prext.io/v1alpha1/watch/policyresults").is_some_and(|p| p.watch_prefix)
        );
        for bad in [
            "/apis/results.prext.io/v1alpha1/policyresults/x",
            "/apis/results.prext.io/v1alpha1/namespaces/ns/policyresults/x/status",
            "/apis/results.prext.io/v1alpha1/things",
            "/apis/results.prext.io/v1/policyresults",
            "/apis/results.prext.io/v1alpha1",
            "/apis/results.prext.io/v1alpha1/",
            "/apis/results.prext.io/v1alpha10/policyresults",
            "/apis/results.prext.iox/v1alpha1/policyresults",
        ] {
            assert!(parse_path(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn flags_follow_apimachinery() {
        let q = Query::parse(Some("watch=&a=0&b=False&c=yes&dryRun=All&dryRun=All"));
        assert!(q.flag("watch"));
        assert!(!q.flag("a") && !q.flag("b") && q.flag("c") && !q.flag("missing"));
        assert_eq!(q.all("dryRun").len(), 2);
    }

    #[test]
    fn list_option_validation() {
        let bad = |s: &str| ListParams::parse(&Query::parse(Some(s))).unwrap_err().code;
        assert_eq!(bad("resourceVersionMatch=Exact"), 422);
        assert_eq!(bad("resourceVersion=0&resourceVersionMatch=Exact"), 422);
        assert_eq!(bad("sendInitialEvents=true"), 422);
        assert_eq!(bad("watch=1&sendInitialEvents=true"), 422);
        assert_eq!(bad("resourceVersion=5&continue=abc"), 400);
        assert_eq!(bad("limit=x"), 400);
        let ok = ListParams::parse(&Query::parse(Some(
            "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        )))
        .unwrap();
        assert!(ok.watch && ok.allow_bookmarks && ok.send_initial_events == Some(true));
        assert_eq!(parse_revision("12").unwrap(), Some(12));
        assert!(parse_revision("abc").is_err());
    }

    #[test]
    fn dry_run_values() {
        assert!(parse_dry_run(&["All"]).unwrap());
        assert!(!parse_dry_run(&[]).unwrap());
        assert_eq!(parse_dry_run(&["Some"]).unwrap_err().code, 422);
    }
}
