//! The `kube-system/extension-apiserver-authentication` ConfigMap, which kube-apiserver writes
//! for aggregated API servers: the client CA and the front proxy's CA, allowed names and header
//! names.
//!
//! Each `requestheader-*` list is a JSON array inside a string (`'["front-proxy-client"]'`);
//! the CAs are PEM bundles. [`parse`] reads the data the way upstream's
//! `DynamicRequestHeaderController` and `ConfigMapCAController` do: a missing or empty
//! `requestheader-client-ca-file` means no front proxy, a missing list means an empty list.
//! [`fetch`] reads it once at startup; [`follow`] watches it and reports every change, so CA
//! rotations take effect without a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::Api;
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use super::trust::{parse_ca_bundle, RequestHeaderConfig, TrustError};

/// The ConfigMap's namespace.
pub const NAMESPACE: &str = "kube-system";
/// The ConfigMap's name.
pub const NAME: &str = "extension-apiserver-authentication";

/// How long the startup read may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// What the ConfigMap says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtensionAuthentication {
    /// `client-ca-file` (empty when absent).
    pub client_ca: Vec<CertificateDer<'static>>,
    /// The front proxy, when `requestheader-client-ca-file` holds a CA.
    pub requestheader: Option<RequestHeaderConfig>,
}

/// Why the ConfigMap could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionConfigError {
    /// A CA bundle did not parse.
    #[error("configmap {NAMESPACE}/{NAME}: {0}")]
    Ca(#[from] TrustError),
    /// A `requestheader-*` list is not a JSON array of strings.
    #[error("configmap {NAMESPACE}/{NAME}: key {key}: not a JSON array of strings: {source}")]
    List {
        /// The key.
        key: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// kube-apiserver refused to show the ConfigMap.
    #[error(
        "unable to get configmap/{NAME} in {NAMESPACE}: forbidden. Usually fixed by \
         'kubectl create rolebinding -n {NAMESPACE} ROLEBINDING_NAME \
         --role=extension-apiserver-authentication-reader --serviceaccount=YOUR_NS:YOUR_SA'"
    )]
    Forbidden,
    /// Any other API failure.
    #[error("unable to get configmap/{NAME} in {NAMESPACE}: {0}")]
    Api(#[from] kube::Error),
    /// The startup read did not finish in time.
    #[error("unable to get configmap/{NAME} in {NAMESPACE}: timed out")]
    Timeout,
}

/// Parses the ConfigMap's `data`.
pub fn parse(data: &BTreeMap<String, String>) -> Result<ExtensionAuthentication, ExtensionConfigError> {
    let text = |key: &str| data.get(key).map(String::as_str).unwrap_or("");
    let list = |key: &'static str| -> Result<Vec<String>, ExtensionConfigError> {
        match text(key).trim() {
            "" => Ok(Vec::new()),
            json => serde_json::from_str(json).map_err(|source| ExtensionConfigError::List { key, source }),
        }
    };
    let client_ca = parse_ca_bundle(text("client-ca-file"), "client-ca-file")?;
    let proxy_ca = parse_ca_bundle(
        text("requestheader-client-ca-file"),
        "requestheader-client-ca-file",
    )?;
    let requestheader = if proxy_ca.is_empty() {
        None
    } else {
        Some(RequestHeaderConfig {
            ca: proxy_ca,
            allowed_names: list("requestheader-allowed-names")?,
            username_headers: list("requestheader-username-headers")?,
            uid_headers: list("requestheader-uid-headers")?,
            group_headers: list("requestheader-group-headers")?,
            extra_headers_prefix: list("requestheader-extra-headers-prefix")?,
        })
    };
    Ok(ExtensionAuthentication {
        client_ca,
        requestheader,
    })
}

fn api(client: kube::Client) -> Api<ConfigMap> {
    Api::namespaced(client, NAMESPACE)
}

/// Reads the ConfigMap once. `Ok(None)` when it does not exist (a cluster without front proxy
/// or client CA), as upstream tolerates.
pub async fn fetch(client: kube::Client) -> Result<Option<ExtensionAuthentication>, ExtensionConfigError> {
    let got = tokio::time::timeout(FETCH_TIMEOUT, api(client).get_opt(NAME))
        .await
        .map_err(|_| ExtensionConfigError::Timeout)?;
    match got {
        Ok(Some(cm)) => Ok(Some(parse(&cm.data.unwrap_or_default())?)),
        Ok(None) => Ok(None),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(ExtensionConfigError::Forbidden),
        Err(e) => Err(e.into()),
    }
}

/// Watches the ConfigMap until `shutdown` and calls `on_change` with its parsed contents
/// (`None` once deleted) after every change, including the first state seen. Watch failures
/// are retried with backoff; a ConfigMap that does not parse is reported in the log and
/// skipped, so the previous settings stay in effect.
pub async fn follow<F>(client: kube::Client, shutdown: CancellationToken, mut on_change: F)
where
    F: FnMut(Option<ExtensionAuthentication>) + Send,
{
    let stream = watcher::watch_object(api(client), NAME).default_backoff();
    futures::pin_mut!(stream);
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            None => return,
            Some(Ok(Some(cm))) => match parse(&cm.data.unwrap_or_default()) {
                Ok(parsed) => on_change(Some(parsed)),
                Err(e) => tracing::warn!(error = %e, "ignoring an update of the authentication configmap"),
            },
            Some(Ok(None)) => on_change(None),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "watching the authentication configmap failed; retrying")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("ca").pem()
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_what_kube_apiserver_writes() {
        let (client, proxy) = (ca_pem(), ca_pem());
        let parsed = parse(&data(&[
            ("client-ca-file", &client),
            ("requestheader-client-ca-file", &proxy),
            ("requestheader-allowed-names", "[\"front-proxy-client\"]"),
            ("requestheader-username-headers", "[\"X-Remote-User\"]"),
            ("requestheader-group-headers", "[\"X-Remote-Group\"]"),
            ("requestheader-extra-headers-prefix", "[\"X-Remote-Extra-\"]"),
            ("requestheader-uid-headers", "[]"),
        ]))
        .expect("parses");
        assert_eq!(parsed.client_ca.len(), 1);
        let rh = parsed.requestheader.expect("front proxy");
        assert_eq!(rh.ca.len(), 1);
        assert_eq!(rh.allowed_names, ["front-proxy-client"]);
        assert_eq!(rh.username_headers, ["X-Remote-User"]);
        assert_eq!(rh.group_headers, ["X-Remote-Group"]);
        assert_eq!(rh.extra_headers_prefix, ["X-Remote-Extra-"]);
        assert!(rh.uid_headers.is_empty());
    }

    #[test]
    fn missing_keys_mean_nothing_configured() {
        let parsed = parse(&BTreeMap::new()).expect("empty is valid");
        assert_eq!(parsed, ExtensionAuthentication::default());
        let no_proxy_ca =
            parse(&data(&[("requestheader-allowed-names", "[\"x\"]")])).expect("lists without a CA");
        assert_eq!(no_proxy_ca.requestheader, None);
    }

    #[test]
    fn malformed_values_are_refused() {
        let proxy = ca_pem();
        let err = parse(&data(&[
            ("requestheader-client-ca-file", &proxy),
            ("requestheader-allowed-names", "front-proxy-client"),
        ]))
        .expect_err("a bare string is not a JSON array");
        assert!(matches!(
            err,
            ExtensionConfigError::List {
                key: "requestheader-allowed-names",
                ..
            }
        ));
        let bad_pem = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(parse(&data(&[("client-ca-file", bad_pem)])).is_err());
    }
}
