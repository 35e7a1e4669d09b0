//! HTTPS serving: rustls configuration, the accept loop, client-certificate identity and graceful
//! shutdown.
//!
//! Like kube-apiserver (`tls.RequestClientCert`), the server *requests* but does not require a
//! client certificate: kubelet probes, Prometheus and callers with bearer tokens send none. A
//! certificate that *is* presented must chain to a trusted CA, otherwise rustls aborts the
//! handshake (with TLS 1.3 the client sees the alert on its first read). The verified leaf is
//! turned into a [`ClientIdentity`] (user = subject CN, groups = subject O values, as upstream's
//! x509 authenticator does). With a front proxy two CAs are trusted (the client CA and the
//! requestheader CA, both replaceable at run time): a [`ClientClassifier`] then tells per request
//! which one vouches for the chain ([`Verifier`]).
//!
//! Every request served by [`serve`] carries two extensions:
//! * `Option<ClientIdentity>`: the connection's verified client certificate identity, `None`
//!   without one (extract with `axum::Extension<Option<ClientIdentity>>`); it is always present, so
//!   its absence means the request did not come through this module;
//! * [`axum::extract::ConnectInfo<SocketAddr>`]: the peer address.
//!
//! Connections are served by hyper-util's `auto::Builder` (HTTP/1.1 and HTTP/2, with upgrades),
//! each in its own task, the model of axum's `low-level-rustls` example.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::connections::{ConnectionLimits, Tracker};

/// The trust anchor that verified a client certificate chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verifier {
    /// The client CA (`client-ca-file`, or the standalone CA): the certificate's subject is the
    /// user.
    ClientCa,
    /// The front-proxy CA (`requestheader-client-ca-file`), with a common name in the allowed
    /// names: the certificate's subject is the proxy, the user is in the `X-Remote-*` headers.
    RequestHeader,
}

/// Decides which trust anchor vouches for a client certificate chain, for servers whose client
/// CAs change at run time (see [`ServeOptions::client_classifier`]).
///
/// The handshake only checks that a chain verifies against *some* trusted CA; the classifier is
/// asked again whenever its [`generation`](Self::generation) changes, so a CA removed from the
/// trust set stops vouching for open connections too.
pub trait ClientClassifier: std::fmt::Debug + Send + Sync {
    /// A number that changes whenever [`classify`](Self::classify) may answer differently for
    /// the same chain.
    fn generation(&self) -> u64;
    /// The identity asserted by a chain (leaf first), or `None` when no current trust anchor
    /// vouches for it.
    fn classify(&self, chain: &[CertificateDer<'static>]) -> Option<ClientIdentity>;
}

/// The identity asserted by a verified TLS client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject common name (the last CN attribute, as Go's `pkix.Name` does).
    pub user: String,
    /// The subject organization (O) values, in order.
    pub groups: Vec<String>,
    /// Which CA verified the chain.
    pub verified_by: Verifier,
}

/// Errors building the TLS server configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input could not be read.
    #[error("{what}: invalid PEM: {source}")]
    Pem {
        /// Which input (serving certificate, key, client CA).
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM input holds no certificate or key.
    #[error("{0}: no PEM item found")]
    Empty(&'static str),
    /// rustls rejected the certificate, key or client CA.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built.
    #[error("client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Tunables of [`serve_with`]; [`Default`] gives the values [`serve`] uses.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How long a client gets to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long in-flight requests may run after shutdown starts before their connections are
    /// dropped.
    pub shutdown_grace: Duration,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` (informers multiplex many watches on one
    /// connection).
    pub h2_max_concurrent_streams: u32,
    /// Classifies client certificate chains per request; `None` means every chain that passed
    /// the handshake was verified by the client CA (a [`server_config`] with a fixed CA).
    pub client_classifier: Option<Arc<dyn ClientClassifier>>,
    /// Idle timeout and connection cap ([`crate::connections`]).
    pub connections: ConnectionLimits,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            h2_max_concurrent_streams: 250,
            client_classifier: None,
            connections: ConnectionLimits::default(),
        }
    }
}

/// Builds a rustls server configuration: TLS 1.2 and 1.3 (ring provider), ALPN `h2` then
/// `http/1.1`, and client certificates requested but optional, verified against `client_ca_pem`
/// (one or more PEM certificates).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = pem_certs(cert_pem, "serving certificate")?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|source| TlsError::Pem {
            what: "serving key",
            source,
        })?
        .ok_or(TlsError::Empty("serving key"))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certs(client_ca_pem, "client CA")? {
        roots.add(ca)?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Builds a rustls server configuration whose serving certificate and client-certificate
/// verification can change at run time: TLS 1.2 and 1.3 (ring provider), ALPN `h2` then
/// `http/1.1`. Pair it with a [`ServeOptions::client_classifier`] that agrees with `verifier`.
pub fn dynamic_server_config(
    certificates: Arc<dyn rustls::server::ResolvesServerCert>,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::Empty(what));
    }
    Ok(certs)
}

/// Verifies `leaf` (plus `intermediates`) against `roots` for TLS client authentication, exactly as
/// the handshake does: signature chain, validity period and the clientAuth extended key usage.
pub fn verify_client_chain(
    roots: &[CertificateDer<'_>],
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(root_store(roots)?, provider)
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map(|_| ())
}

/// Verifies `leaf` (plus `intermediates`) against `roots` for TLS server authentication: signature
/// chain, validity period and the serverAuth extended key usage. The host name is not checked.
pub fn verify_server_chain(
    roots: &[CertificateDer<'_>],
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(), rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    let parsed = rustls::server::ParsedCertificate::try_from(leaf)?;
    let algorithms = provider.signature_verification_algorithms.all;
    let roots = root_store(roots)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        intermediates,
        UnixTime::now(),
        algorithms,
    )
}

fn root_store(roots: &[CertificateDer<'_>]) -> Result<Arc<rustls::RootCertStore>, rustls::Error> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone().into_owned())?;
    }
    Ok(Arc::new(store))
}

/// Extracts the identity from a leaf certificate that rustls has already verified against the
/// client CA.
///
/// Returns `None` when the certificate cannot be parsed or has no (or an empty) common name:
/// upstream's `CommonNameUserConversion` does not authenticate such a certificate either.
pub fn client_identity(leaf: &CertificateDer<'_>, verified_by: Verifier) -> Option<ClientIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()?;
    if user.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_owned)
        .collect();
    Some(ClientIdentity {
        user: user.to_owned(),
        groups,
        verified_by,
    })
}

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled, with
/// [`ServeOptions::default`].
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(listener, tls, app, shutdown, ServeOptions::default()).await
}

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled.
///
/// On shutdown the listener is closed at once, every connection is asked to shut down gracefully
/// (HTTP/1.1: close after the current response; HTTP/2: GOAWAY), in-flight requests get
/// `options.shutdown_grace` to finish, and connections still open after that (typically watches)
/// are dropped. Returns when all connection tasks have ended.
///
/// Accept errors are logged and retried (after 1 s unless they concern a single connection), so
/// this currently always returns `Ok`; the `Result` is kept for fatal listener errors.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: CancellationToken,
    options: ServeOptions,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Heads up to `head_limit::MAX_HEAD_BYTES` are served or refused with a Status by prext's
    // own layer; hyper's limits sit a little above it (see `head_limit.rs`).
    let head = crate::head_limit::HYPER_HEAD_BYTES;
    builder.http1().timer(TokioTimer::new()).max_buf_size(head);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(head).unwrap_or(u32::MAX));
    let ctx = Arc::new(ConnContext {
        acceptor,
        builder,
        app,
        shutdown: shutdown.clone(),
        tracker: Tracker::new(options.connections.clone()),
        options,
    });
    let mut connections = JoinSet::new();

    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    match ctx.tracker.admit_patiently(Duration::from_millis(250)).await {
                        Some(conn) => {
                            connections.spawn(serve_connection(ctx.clone(), stream, remote, conn));
                        }
                        None => drop(stream),
                    }
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning, as hyper and axum do.
                    tracing::error!(error = %e, "accept failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            },
        }
    }
    drop(listener);

    let open = connections.len();
    tracing::info!(
        connections = open,
        "shutting down: waiting for in-flight requests"
    );
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(ctx.options.shutdown_grace, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "shutdown grace period over: dropping connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// What every connection task needs.
struct ConnContext {
    acceptor: TlsAcceptor,
    builder: auto::Builder<TokioExecutor>,
    app: axum::Router,
    shutdown: CancellationToken,
    tracker: Arc<Tracker>,
    options: ServeOptions,
}

async fn serve_connection(
    ctx: Arc<ConnContext>,
    stream: TcpStream,
    remote: SocketAddr,
    conn: Arc<crate::connections::Connection>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%remote, error = %e, "cannot set TCP_NODELAY");
    }
    let handshake = tokio::time::timeout(ctx.options.handshake_timeout, ctx.acceptor.accept(stream));
    let tls = tokio::select! {
        () = ctx.shutdown.cancelled() => return,
        () = conn.closable() => return,
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, "TLS handshake timed out");
                return;
            }
        },
    };
    // rustls only exposes peer certificates that passed the handshake's verifier.
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    let identity = ConnectionIdentity::new(chain, ctx.options.client_classifier.clone());

    let app = ctx.app.clone();
    let requests = conn.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(identity.current());
        request.extensions_mut().insert(ConnectInfo(remote));
        // In flight until the response body has been sent (a watch is never idle).
        let in_flight = requests.begin();
        let response = app.clone().oneshot(request);
        async move {
            let response = response.await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
                    let _ = &in_flight;
                    frame
                }))
            }))
        }
    });
    let connection = ctx
        .builder
        .serve_connection_with_upgrades(TokioIo::new(crate::bare_errors::StatusBodies::new(tls)), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = ctx.shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = conn.closable() => {
            tracing::debug!(%remote, "closing an idle connection");
            connection.as_mut().graceful_shutdown();
            // A client that does not answer the close within the grace period is dropped.
            tokio::time::timeout(ctx.options.shutdown_grace, connection).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

/// A connection's client certificate identity, re-classified whenever the trusted CAs change.
struct ConnectionIdentity {
    chain: Vec<CertificateDer<'static>>,
    classifier: Option<Arc<dyn ClientClassifier>>,
    /// The last answer and the classifier generation it was computed at.
    cached: std::sync::Mutex<(u64, Option<ClientIdentity>)>,
}

impl ConnectionIdentity {
    fn new(chain: Vec<CertificateDer<'static>>, classifier: Option<Arc<dyn ClientClassifier>>) -> Self {
        let (generation, identity) = match &classifier {
            Some(c) => (c.generation(), c.classify(&chain)),
            None => (
                0,
                chain
                    .first()
                    .and_then(|leaf| client_identity(leaf, Verifier::ClientCa)),
            ),
        };
        Self {
            chain,
            classifier,
            cached: std::sync::Mutex::new((generation, identity)),
        }
    }

    /// The identity under the current trust anchors.
    fn current(&self) -> Option<ClientIdentity> {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(classifier) = &self.classifier {
            let generation = classifier.generation();
            if generation != cached.0 {
                *cached = (generation, classifier.classify(&self.chain));
            }
        }
        cached.1.clone()
    }
}

/// Per-connection accept errors that say nothing about the listener's health.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert_with_subject(entries: &[(DnType, &str)]) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in entries {
            params.distinguished_name.push(ty.clone(), *value);
        }
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().clone()
    }

    #[test]
    fn identity_takes_cn_as_user_and_every_o_as_group() {
        // rcgen keys its DN by type, so a second O needs the raw OID (2.5.4.10).
        let der = cert_with_subject(&[
            (DnType::OrganizationName, "system:masters"),
            (DnType::CustomDnType(vec![2, 5, 4, 10]), "team-a"),
            (DnType::CommonName, "alice"),
        ]);
        let identity = client_identity(&der, Verifier::ClientCa).expect("identity");
        assert_eq!(identity.user, "alice");
        assert_eq!(identity.groups, ["system:masters", "team-a"]);
        assert_eq!(identity.verified_by, Verifier::ClientCa);
    }

    #[test]
    fn identity_requires_a_non_empty_common_name() {
        assert_eq!(
            client_identity(
                &cert_with_subject(&[(DnType::OrganizationName, "g")]),
                Verifier::ClientCa
            ),
            None
        );
        let empty_cn = cert_with_subject(&[(DnType::CommonName, "")]);
        assert_eq!(client_identity(&empty_cn, Verifier::ClientCa), None);
        assert_eq!(
            client_identity(&CertificateDer::from(vec![1, 2, 3]), Verifier::ClientCa),
            None
        );
    }

    #[test]
    fn server_config_rejects_bad_inputs() {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert").pem();
        let key_pem = key.serialize_pem();
        assert!(server_config(&cert, &key_pem, &cert).is_ok());
        assert!(matches!(
            server_config("", &key_pem, &cert),
            Err(TlsError::Empty("serving certificate"))
        ));
        assert!(matches!(
            server_config(&cert, "", &cert),
            Err(TlsError::Empty("serving key"))
        ));
        assert!(matches!(
            server_config(&cert, &key_pem, ""),
            Err(TlsError::Empty("client CA"))
        ));
        let config = server_config(&cert, &key_pem, &cert).expect("config");
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    }
}
