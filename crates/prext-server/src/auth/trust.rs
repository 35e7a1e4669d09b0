//! Client-certificate trust: the client CA and the front proxy's CA (with its allowed common
//! names and header names), replaceable while the server runs.
//!
//! [`ClientTrust`] is shared by three users:
//! * the TLS handshake, through [`ClientTrust::verifier`]: a certificate is accepted when it
//!   chains to *either* CA (upstream uses `tls.RequestClientCert` and verifies in the
//!   authenticators; rustls needs a verifier, so it checks against the union);
//! * the connection layer, through [`ClientClassifier`]: which CA vouches for the chain, checked
//!   again whenever the CAs change ([`Verifier::RequestHeader`] only when the common name is in
//!   the allowed names, like upstream's `x509request` verifier);
//! * the front-proxy authenticator, through [`ClientTrust::requestheader`]: the header names.
//!
//! Updates swap an immutable snapshot; a bundle that does not parse is refused and the previous
//! snapshot stays, as upstream's dynamic CA controllers do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::tls::{client_identity, ClientClassifier, ClientIdentity, Verifier};

/// The front proxy's trust settings (the `requestheader-*` keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHeaderConfig {
    /// CAs of the proxy's client certificate.
    pub ca: Vec<CertificateDer<'static>>,
    /// Accepted proxy certificate common names; empty accepts any.
    pub allowed_names: Vec<String>,
    /// The first non-empty one names the user.
    pub username_headers: Vec<String>,
    /// The first non-empty one is the user's UID.
    pub uid_headers: Vec<String>,
    /// Every value of each is a group.
    pub group_headers: Vec<String>,
    /// Prefixes of headers carrying extra attributes.
    pub extra_headers_prefix: Vec<String>,
}

/// Everything [`ClientTrust`] holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustConfig {
    /// CAs whose client certificates authenticate their subject; empty disables that.
    pub client_ca: Vec<CertificateDer<'static>>,
    /// The front proxy, if any.
    pub requestheader: Option<RequestHeaderConfig>,
}

/// Why a CA bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The PEM text did not parse.
    #[error("{what}: invalid PEM: {source}")]
    Pem {
        /// Which bundle.
        what: &'static str,
        /// The parse error.
        #[source]
        source: std::io::Error,
    },
    /// rustls refused a certificate as a trust anchor.
    #[error("{what}: {source}")]
    Anchor {
        /// Which bundle.
        what: &'static str,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
}

/// Parses a PEM bundle of CA certificates; an empty bundle is valid and holds none.
pub fn parse_ca_bundle(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TrustError::Pem { what, source })
}

/// One immutable state of the trust anchors.
#[derive(Debug)]
struct Snapshot {
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
    requestheader: Option<(Arc<dyn ClientCertVerifier>, Arc<RequestHeaderConfig>)>,
    /// Either CA: what the handshake accepts.
    any: Option<Arc<dyn ClientCertVerifier>>,
}

impl Snapshot {
    fn build(config: &TrustConfig) -> Result<Self, TrustError> {
        let client_ca = verifier_for(&config.client_ca, "client CA")?;
        let requestheader = match &config.requestheader {
            Some(rh) => verifier_for(&rh.ca, "requestheader client CA")?.map(|v| (v, Arc::new(rh.clone()))),
            None => None,
        };
        let mut all = config.client_ca.clone();
        if let Some(rh) = &config.requestheader {
            all.extend(rh.ca.iter().cloned());
        }
        let any = verifier_for(&all, "client CAs")?;
        Ok(Self {
            client_ca,
            requestheader,
            any,
        })
    }
}

fn verifier_for(
    roots: &[CertificateDer<'static>],
    what: &'static str,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TrustError> {
    if roots.is_empty() {
        return Ok(None);
    }
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store
            .add(root.clone())
            .map_err(|source| TrustError::Anchor { what, source })?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider())
        .build()
        .map(Some)
        .map_err(|e| TrustError::Anchor {
            what,
            source: rustls::Error::General(e.to_string()),
        })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The current client-certificate trust anchors, shared by the handshake and the
/// authenticators.
#[derive(Debug)]
pub struct ClientTrust {
    snapshot: RwLock<Arc<Snapshot>>,
    /// The configuration in effect (to skip no-op updates).
    config: RwLock<TrustConfig>,
    generation: AtomicU64,
}

impl ClientTrust {
    /// Trust anchors from `config`.
    pub fn new(config: TrustConfig) -> Result<Arc<Self>, TrustError> {
        let snapshot = Snapshot::build(&config)?;
        Ok(Arc::new(Self {
            snapshot: RwLock::new(Arc::new(snapshot)),
            config: RwLock::new(config),
            generation: AtomicU64::new(1),
        }))
    }

    /// Replaces the trust anchors. Returns whether anything changed; on error the previous
    /// anchors stay in effect.
    pub fn update(&self, config: TrustConfig) -> Result<bool, TrustError> {
        if *read(&self.config) == config {
            return Ok(false);
        }
        let snapshot = Arc::new(Snapshot::build(&config)?);
        *write(&self.snapshot) = snapshot;
        *write(&self.config) = config;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// The configuration in effect.
    pub fn config(&self) -> TrustConfig {
        read(&self.config).clone()
    }

    /// The front proxy's settings, if a front proxy is configured.
    pub fn requestheader(&self) -> Option<Arc<RequestHeaderConfig>> {
        self.current().requestheader.as_ref().map(|(_, rh)| rh.clone())
    }

    /// A rustls verifier that always checks against the current anchors.
    pub fn verifier(self: &Arc<Self>) -> Arc<dyn ClientCertVerifier> {
        Arc::new(DynamicVerifier {
            trust: self.clone(),
            algorithms: provider().signature_verification_algorithms,
        })
    }

    fn current(&self) -> Arc<Snapshot> {
        read(&self.snapshot).clone()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Writers only swap whole values: a poisoned lock still holds a consistent one.
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClientClassifier for ClientTrust {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn classify(&self, chain: &[CertificateDer<'static>]) -> Option<ClientIdentity> {
        let (leaf, intermediates) = chain.split_first()?;
        let snapshot = self.current();
        let now = UnixTime::now();
        if let Some((verifier, rh)) = &snapshot.requestheader {
            if verifier.verify_client_cert(leaf, intermediates, now).is_ok() {
                let identity = client_identity(leaf, Verifier::RequestHeader);
                let name = identity.as_ref().map_or("", |id| id.user.as_str());
                if rh.allowed_names.is_empty() {
                    // Upstream accepts any subject, even one without a common name.
                    return Some(identity.unwrap_or(ClientIdentity {
                        user: String::new(),
                        groups: Vec::new(),
                        verified_by: Verifier::RequestHeader,
                    }));
                }
                if rh.allowed_names.iter().any(|n| n == name) {
                    return identity;
                }
                tracing::debug!(
                    common_name = name,
                    "front-proxy certificate common name is not in the allowed names"
                );
            }
        }
        if let Some(verifier) = &snapshot.client_ca {
            if verifier.verify_client_cert(leaf, intermediates, now).is_ok() {
                return client_identity(leaf, Verifier::ClientCa);
            }
        }
        None
    }
}

/// The handshake's verifier: accepts chains to any current CA, never requires a certificate,
/// and sends no CA hints (the anchors can change; Go and rustls clients send their
/// certificate without hints).
#[derive(Debug)]
struct DynamicVerifier {
    trust: Arc<ClientTrust>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DynamicVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match &self.trust.current().any {
            Some(verifier) => verifier.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        der: CertificateDer<'static>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).expect("CA").der().clone();
        Ca {
            issuer: Issuer::new(params, key),
            der,
        }
    }

    fn client(ca: &Ca, cn: &str, orgs: &[&str]) -> Vec<CertificateDer<'static>> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        for (i, org) in orgs.iter().enumerate() {
            let ty = if i == 0 {
                DnType::OrganizationName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 10])
            };
            params.distinguished_name.push(ty, *org);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        vec![params.signed_by(&key, &ca.issuer).expect("cert").der().clone()]
    }

    fn front_proxy(ca: &Ca, allowed: &[&str]) -> RequestHeaderConfig {
        RequestHeaderConfig {
            ca: vec![ca.der.clone()],
            allowed_names: allowed.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn classifies_by_the_ca_that_vouches() {
        let (client_ca, proxy_ca, other) = (ca("client"), ca("proxy"), ca("other"));
        let trust = ClientTrust::new(TrustConfig {
            client_ca: vec![client_ca.der.clone()],
            requestheader: Some(front_proxy(&proxy_ca, &["front-proxy-client"])),
        })
        .expect("trust");
        let alice = trust
            .classify(&client(&client_ca, "alice", &["dev"]))
            .expect("alice");
        assert_eq!(
            (alice.user.as_str(), alice.verified_by),
            ("alice", Verifier::ClientCa)
        );
        assert_eq!(alice.groups, ["dev"]);
        let proxy = trust
            .classify(&client(&proxy_ca, "front-proxy-client", &[]))
            .expect("proxy");
        assert_eq!(proxy.verified_by, Verifier::RequestHeader);
        assert_eq!(trust.classify(&client(&proxy_ca, "intruder", &[])), None);
        assert_eq!(trust.classify(&client(&other, "mallory", &[])), None);
        assert_eq!(trust.classify(&[]), None);

        let verifier = trust.verifier();
        let now = UnixTime::now();
        assert!(verifier
            .verify_client_cert(&client(&proxy_ca, "x", &[])[0], &[], now)
            .is_ok());
        assert!(verifier
            .verify_client_cert(&client(&other, "x", &[])[0], &[], now)
            .is_err());
        assert!(!verifier.client_auth_mandatory());
    }

    #[test]
    fn empty_allowed_names_accept_any_proxy_subject() {
        let proxy_ca = ca("proxy");
        let trust = ClientTrust::new(TrustConfig {
            client_ca: Vec::new(),
            requestheader: Some(front_proxy(&proxy_ca, &[])),
        })
        .expect("trust");
        let id = trust
            .classify(&client(&proxy_ca, "anything", &[]))
            .expect("proxy");
        assert_eq!(id.verified_by, Verifier::RequestHeader);
    }

    #[test]
    fn updates_swap_anchors_and_bump_the_generation() {
        let (old, new) = (ca("old"), ca("new"));
        let trust = ClientTrust::new(TrustConfig {
            client_ca: vec![old.der.clone()],
            requestheader: None,
        })
        .expect("trust");
        let g0 = trust.generation();
        let old_cert = client(&old, "a", &[]);
        assert!(trust.classify(&old_cert).is_some());
        let same = trust.config();
        assert!(!trust.update(same).expect("no-op"), "identical config");
        assert_eq!(trust.generation(), g0);
        assert!(trust
            .update(TrustConfig {
                client_ca: vec![new.der.clone()],
                requestheader: None,
            })
            .expect("update"));
        assert!(trust.generation() > g0);
        assert!(trust.classify(&old_cert).is_none());
        assert!(trust.classify(&client(&new, "b", &[])).is_some());

        let bad = TrustConfig {
            client_ca: vec![CertificateDer::from(vec![1, 2, 3])],
            requestheader: None,
        };
        assert!(trust.update(bad).is_err());
        assert!(
            trust.classify(&client(&new, "b", &[])).is_some(),
            "a refused update keeps the previous anchors"
        );
        let none = ClientTrust::new(TrustConfig::default()).expect("empty trust");
        assert!(none
            .verifier()
            .verify_client_cert(&client(&new, "b", &[])[0], &[], UnixTime::now())
            .is_err());
    }

    #[test]
    fn ca_bundles_parse() {
        let a = ca("a");
        let two = format!("{}{}", a.issuer_pem(), ca("b").issuer_pem());
        assert_eq!(parse_ca_bundle(&two, "x").expect("pem").len(), 2);
        assert_eq!(parse_ca_bundle(&a.issuer_pem(), "x").expect("pem").len(), 1);
        assert!(parse_ca_bundle("", "x").expect("empty").is_empty());
    }

    impl Ca {
        fn issuer_pem(&self) -> String {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(self.der.as_ref());
            format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
        }
    }
}
