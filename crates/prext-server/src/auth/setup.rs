//! Builds the serving certificate, the client trust, the authenticator, the authorizer and the
//! namespace lifecycle from [`AuthConfig`], and starts what keeps them current.
//!
//! Where each setting comes from, as in upstream's delegated options:
//! * client CA: `--client-ca-file`; else, in delegated mode, the ConfigMap's `client-ca-file`;
//!   else (standalone mode) the generated CA;
//! * front proxy: `--requestheader-client-ca-file` with the `--requestheader-*` flags; else, in
//!   delegated mode, the ConfigMap's `requestheader-*` keys;
//! * the ConfigMap is read (and then watched) only with `--authentication-kubeconfig`, without
//!   `--authentication-skip-lookup`, and when a flag leaves something to it;
//! * CA files and the serving certificate files are polled and reloaded when they change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kube::config::{KubeConfigOptions, Kubeconfig};
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use super::authn::{Authenticator, TokenReviewer};
use super::authz::{Authorizer, AuthorizerOptions};
use super::extension_config::{self, ExtensionAuthentication, ExtensionConfigError};
use super::namespaces::NamespaceLifecycle;
use super::trust::{parse_ca_bundle, ClientTrust, RequestHeaderConfig, TrustConfig, TrustError};
use super::Auth;
use crate::config::AuthConfig;
use crate::pki::Pki;
use crate::reload::{self, ReloadError, ServingCertificate};

/// Everything the server needs for TLS, authentication, authorization and admission.
#[derive(Debug)]
pub struct Security {
    /// The request middleware's state.
    pub auth: Arc<Auth>,
    /// The client-certificate trust (handshake verifier and per-request classifier).
    pub trust: Arc<ClientTrust>,
    /// The serving certificate.
    pub serving: Arc<ServingCertificate>,
    /// Namespace lifecycle admission, in delegated mode.
    pub namespaces: Option<Arc<NamespaceLifecycle>>,
    /// Whether the generated CA is the client CA, so that the generated admin kubeconfig
    /// works.
    pub generated_client_ca: bool,
}

/// Why the security settings could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Only one of the serving certificate and key was given.
    #[error("--tls-cert-file and --tls-private-key-file must be given together")]
    HalfServingPair,
    /// The serving certificate did not load.
    #[error(transparent)]
    Serving(#[from] ReloadError),
    /// A CA file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// A CA bundle did not parse.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// A kubeconfig did not load.
    #[error("kubeconfig {}: {message}", path.display())]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The authentication ConfigMap could not be read.
    #[error(transparent)]
    ExtensionConfig(#[from] ExtensionConfigError),
}

/// Where the trust settings come from; merged into a [`TrustConfig`] after every change.
#[derive(Debug, Default)]
struct Sources {
    /// `--client-ca-file` (or the generated CA in standalone mode).
    client_ca: Option<Vec<CertificateDer<'static>>>,
    /// `--requestheader-client-ca-file` and the `--requestheader-*` flags.
    requestheader: Option<RequestHeaderConfig>,
    /// The authentication ConfigMap.
    cluster: Option<ExtensionAuthentication>,
}

impl Sources {
    fn merged(&self) -> TrustConfig {
        TrustConfig {
            client_ca: self
                .client_ca
                .clone()
                .or_else(|| self.cluster.as_ref().map(|c| c.client_ca.clone()))
                .unwrap_or_default(),
            requestheader: self
                .requestheader
                .clone()
                .or_else(|| self.cluster.as_ref().and_then(|c| c.requestheader.clone())),
        }
    }
}

/// Applies a change of one source to the trust.
fn refresh(sources: &Mutex<Sources>, trust: &ClientTrust, change: impl FnOnce(&mut Sources)) {
    let merged = {
        let mut sources = sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut sources);
        sources.merged()
    };
    match trust.update(merged) {
        Ok(true) => tracing::info!("client certificate authorities updated"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "refusing new client certificate authorities"),
    }
}

/// Builds the security settings and starts their watchers (which stop on `shutdown`).
pub async fn setup(
    config: &AuthConfig,
    pki: &Pki,
    shutdown: &CancellationToken,
) -> Result<Security, SetupError> {
    let interval = config.reload_interval;
    let serving = match (&config.tls_cert_file, &config.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            let serving = ServingCertificate::from_files(cert, key)?;
            serving.watch(cert.clone(), key.clone(), interval, shutdown.clone());
            serving
        }
        (None, None) => {
            ServingCertificate::from_pem(pki.server_cert_pem.as_bytes(), pki.server_key_pem.as_bytes())?
        }
        _ => return Err(SetupError::HalfServingPair),
    };

    let delegated = config.delegated();
    let authn_client = match &config.authentication_kubeconfig {
        Some(path) => Some(client(path).await?),
        None => None,
    };
    let authz_client = match &config.authorization_kubeconfig {
        Some(path) => Some(client(path).await?),
        None => None,
    };

    let mut sources = Sources::default();
    let generated_client_ca = !delegated && config.client_ca_file.is_none();
    if let Some(path) = &config.client_ca_file {
        sources.client_ca = Some(read_bundle(path, "client CA")?);
    } else if generated_client_ca {
        sources.client_ca = Some(parse_ca_bundle(&pki.ca_cert_pem, "generated CA")?);
    }
    let rh = &config.requestheader;
    if let Some(path) = &rh.client_ca_file {
        sources.requestheader = Some(RequestHeaderConfig {
            ca: read_bundle(path, "requestheader client CA")?,
            allowed_names: rh.allowed_names.clone(),
            username_headers: rh.username_headers.clone(),
            uid_headers: rh.uid_headers.clone(),
            group_headers: rh.group_headers.clone(),
            extra_headers_prefix: rh.extra_headers_prefix.clone(),
        });
    }
    let lookup = match &authn_client {
        Some(client) if !config.authentication_skip_lookup => {
            (sources.client_ca.is_none() || sources.requestheader.is_none()).then_some(client)
        }
        _ => None,
    };
    if let Some(client) = lookup {
        sources.cluster = extension_config::fetch(client.clone()).await?;
        if sources.cluster.is_none() {
            tracing::warn!(
                "configmap {}/{} not found: no front proxy or client CA from the cluster",
                extension_config::NAMESPACE,
                extension_config::NAME
            );
        }
    }

    let trust = ClientTrust::new(sources.merged())?;
    let sources = Arc::new(Mutex::new(sources));
    if let Some(client) = lookup {
        let (sources, trust) = (sources.clone(), trust.clone());
        tokio::spawn(extension_config::follow(
            client.clone(),
            shutdown.clone(),
            move |cluster| refresh(&sources, &trust, |s| s.cluster = cluster),
        ));
    }
    if let Some(path) = &config.client_ca_file {
        watch_bundle(path, &sources, &trust, interval, shutdown, |s, ca| {
            s.client_ca = Some(ca)
        });
    }
    if let Some(path) = &rh.client_ca_file {
        watch_bundle(path, &sources, &trust, interval, shutdown, |s, ca| {
            if let Some(rh) = &mut s.requestheader {
                rh.ca = ca;
            }
        });
    }

    let tokens = authn_client
        .clone()
        .map(|c| TokenReviewer::new(c, config.authentication_cache_ttl));
    let authorizer = match &authz_client {
        Some(client) => Authorizer::delegated(
            client.clone(),
            AuthorizerOptions {
                always_allow_paths: config.always_allow_paths.clone(),
                always_allow_groups: config.always_allow_groups.clone(),
                allow_ttl: config.authorization_allow_ttl,
                deny_ttl: config.authorization_deny_ttl,
            },
        ),
        None => Authorizer::allow_all(),
    };
    let namespaces = authz_client
        .or(authn_client)
        .map(|c| NamespaceLifecycle::start(c, shutdown.clone()));
    let auth = Arc::new(Auth::new(Authenticator::new(trust.clone(), tokens), authorizer));
    Ok(Security {
        auth,
        trust,
        serving,
        namespaces,
        generated_client_ca,
    })
}

/// The kubeconfig value that means "the pod's service account" (kube-rs `Config::incluster`).
pub const IN_CLUSTER: &str = "in-cluster";

/// A kube-rs client from a kubeconfig file, or from the pod's service account for
/// [`IN_CLUSTER`].
async fn client(path: &Path) -> Result<kube::Client, SetupError> {
    let error = |message: String| SetupError::Kubeconfig {
        path: path.to_owned(),
        message,
    };
    let config = if path == Path::new(IN_CLUSTER) {
        kube::Config::incluster().map_err(|e| error(e.to_string()))?
    } else {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| error(e.to_string()))?
    };
    kube::Client::try_from(config).map_err(|e| error(e.to_string()))
}

fn read_bundle(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let pem = std::fs::read_to_string(path).map_err(|source| SetupError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_ca_bundle(&pem, what)?)
}

/// Reloads a CA bundle file into `sources` when it changes.
fn watch_bundle(
    path: &Path,
    sources: &Arc<Mutex<Sources>>,
    trust: &Arc<ClientTrust>,
    interval: std::time::Duration,
    shutdown: &CancellationToken,
    set: fn(&mut Sources, Vec<CertificateDer<'static>>),
) {
    let (sources, trust, shown) = (sources.clone(), trust.clone(), path.display().to_string());
    reload::watch_files(
        vec![path.to_owned()],
        interval,
        shutdown.clone(),
        move |contents| {
            let parsed = std::str::from_utf8(&contents[0])
                .map_err(|e| e.to_string())
                .and_then(|pem| parse_ca_bundle(pem, "CA file").map_err(|e| e.to_string()));
            match parsed {
                Ok(ca) => refresh(&sources, &trust, |s| set(s, ca)),
                Err(e) => tracing::warn!(file = %shown, error = %e, "CA file changed but does not load"),
            }
        },
    );
}
