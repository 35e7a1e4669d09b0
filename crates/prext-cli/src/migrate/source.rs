//! Where `prext migrate` reads reports from: one page of one kind at a time, from the
//! Kubernetes API named by a kubeconfig (the [`Source`] trait lets the engine's tests use an
//! in-memory source instead).
//!
//! Pages are plain `GET /apis/<group>/<version>/<plural>?limit=N&continue=T` requests across
//! all namespaces, read as raw JSON so that no field is lost to a typed model.

use std::future::Future;
use std::path::Path;

use prext_api::ResourceDef;
use serde_json::Value;

/// One page of a list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The objects, in the server's order.
    pub items: Vec<Value>,
    /// The token of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Why a page could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// 404: the kind is not served there (its CRD is not installed).
    #[error("not served by the source (is the CRD installed?)")]
    NotServed,
    /// 410: the continue token expired (the source compacted its history). `fresh` is the
    /// token Kubernetes offers to go on from a newer snapshot, when it offers one.
    #[error("the continue token expired")]
    Expired { fresh: Option<String> },
    /// Any other answer with a status code.
    #[error("the source answered {code}: {message}")]
    Api { code: u16, message: String },
    /// The request did not get an answer (connection, TLS, timeout, undecodable body).
    #[error("cannot reach the source: {0}")]
    Transport(String),
}

impl SourceError {
    /// Worth retrying the same request after a pause.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Transport(_) => true,
            SourceError::Api { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
            SourceError::NotServed | SourceError::Expired { .. } => false,
        }
    }
}

/// A place reports can be listed from, a page at a time.
pub trait Source {
    /// The page of `def` after `continue_token` (the first page when `None`).
    fn page(
        &self,
        def: &'static ResourceDef,
        limit: u32,
        continue_token: Option<&str>,
    ) -> impl Future<Output = Result<Page, SourceError>>;
}

/// A Kubernetes API reached with a kubeconfig.
pub struct KubeSource {
    client: kube::Client,
    identity: String,
}

impl KubeSource {
    /// Connects with the kubeconfig at `path`, using `context` or its current context.
    pub async fn connect(path: &Path, context: Option<&str>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?;
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .with_context(|| format!("loading kubeconfig {}", path.display()))?;
        let identity = match context {
            Some(c) => format!("{} (context {c})", config.cluster_url),
            None => config.cluster_url.to_string(),
        };
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
        Ok(Self { client, identity })
    }

    /// The API server URL (and context), which the checkpoint is bound to.
    pub fn identity(&self) -> &str {
        &self.identity
    }
}

/// The list URL of one page.
pub fn page_url(def: &ResourceDef, limit: u32, continue_token: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &limit.to_string());
    if let Some(token) = continue_token {
        query.append_pair("continue", token);
    }
    format!(
        "/apis/{}/{}/{}?{}",
        def.group,
        def.version,
        def.plural,
        query.finish()
    )
}

/// Reads a list response: its `items` and `metadata.continue`.
pub fn parse_page(list: Value) -> Result<Page, SourceError> {
    let Value::Object(mut list) = list else {
        return Err(SourceError::Transport(
            "the list response is not a JSON object".into(),
        ));
    };
    let next = list
        .get("metadata")
        .and_then(|m| m.get("continue"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let items = match list.remove("items") {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(SourceError::Transport("the list's items are not an array".into())),
    };
    Ok(Page { items, next })
}

/// Classifies a kube-rs error.
fn classify(err: kube::Error) -> SourceError {
    match err {
        kube::Error::Api(status) => match status.code {
            404 => SourceError::NotServed,
            410 => SourceError::Expired {
                fresh: status
                    .metadata
                    .and_then(|m| m.continue_)
                    .filter(|t| !t.is_empty()),
            },
            code => SourceError::Api {
                code,
                message: status.message,
            },
        },
        other => SourceError::Transport(other.to_string()),
    }
}

impl Source for KubeSource {
    async fn page(
        &self,
        def: &'static ResourceDef,
        limit: u32,
        continue_token: Option<&str>,
    ) -> Result<Page, SourceError> {
        let request = http::Request::get(page_url(def, limit, continue_token))
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| SourceError::Transport(format!("building the request: {e}")))?;
        let list: Value = self.client.request(request).await.map_err(classify)?;
        parse_page(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prext_api::RESOURCES;
    use serde_json::json;

    #[test]
    fn page_urls_escape_the_token() {
        let polr = &RESOURCES[0];
        assert_eq!(
            page_url(polr, 500, None),
            "/apis/wgpolicyk8s.io/v1alpha2/policyreports?limit=500"
        );
        assert_eq!(
            page_url(polr, 2, Some("eyJ2Ijo+/x==")),
            "/apis/wgpolicyk8s.io/v1alpha2/policyreports?limit=2&continue=eyJ2Ijo%2B%2Fx%3D%3D"
        );
    }

    #[test]
    fn pages_read_items_and_the_next_token() {
        let page = parse_page(json!({"metadata": {"continue": "abc"}, "items": [{"a": 1}]})).expect("page");
        assert_eq!(
            page,
            Page {
                items: vec![json!({"a": 1})],
                next: Some("abc".into())
            }
        );
        let last = parse_page(json!({"metadata": {"continue": ""}, "items": null})).expect("page");
        assert_eq!(last, Page::default());
        assert!(parse_page(json!({"items": {}})).is_err());
        assert!(parse_page(json!([])).is_err());
    }

    #[test]
    fn errors_are_classified_by_status_code() {
        let status = |code: u16, cont: Option<&str>| {
            let mut s = kube::core::Status::failure("m", "R").with_code(code);
            s.metadata = cont.map(|c| k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta {
                continue_: Some(c.to_string()),
                ..Default::default()
            });
            kube::Error::Api(s.boxed())
        };
        assert_eq!(classify(status(404, None)), SourceError::NotServed);
        assert_eq!(
            classify(status(410, Some("fresh"))),
            SourceError::Expired {
                fresh: Some("fresh".into())
            }
        );
        assert_eq!(classify(status(410, None)), SourceError::Expired { fresh: None });
        let forbidden = classify(status(403, None));
        assert_eq!(
            forbidden,
            SourceError::Api {
                code: 403,
                message: "m".into()
            }
        );
        assert!(!forbidden.is_transient());
        assert!(classify(status(503, None)).is_transient());
        assert!(SourceError::Transport("reset".into()).is_transient());
    }
}
