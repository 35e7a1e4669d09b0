//! Standalone-mode PKI: a private CA, a serving certificate and an admin client certificate under a
//! data directory, plus a kubeconfig that lets `kubectl` talk to prext with full TLS verification.
//!
//! Layout (`<dir>/pki/`): `ca.crt`, `ca.key`, `serving.crt`, `serving.key`, `admin.crt`,
//! `admin.key`. Keys are written with mode 0600, every file atomically (temporary file + rename).
//! All keys are ECDSA P-256.
//!
//! Lifecycle ([`ensure`]):
//! * the CA (CN `prext-ca`, 10 years) is created once and **never** regenerated while `ca.crt`
//!   exists; its key is only read when something has to be signed;
//! * the serving certificate (1 year, serverAuth) is reissued when it is missing, unparsable, not
//!   issued by the CA, does not match its key, lacks a requested SAN or expires within 30 days;
//! * the admin certificate (CN `prext-admin`, O `system:masters`, 1 year, clientAuth) is reissued
//!   under the same conditions (except SANs), so a long-running standalone install never locks its
//!   operator out.
//!
//! Reused certificates are checked with the same WebPKI verifier that rustls uses at handshake
//! time, so a certificate kept here is one that clients will actually accept.

use std::fmt;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData as _, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// Common name of the standalone CA.
pub const CA_COMMON_NAME: &str = "prext-ca";
/// User name (CN) of the admin client certificate.
pub const ADMIN_USER: &str = "prext-admin";
/// Group (O) of the admin client certificate; authorization always allows it.
pub const ADMIN_GROUP: &str = "system:masters";

const CA_VALIDITY: Duration = Duration::from_secs(3650 * 86_400);
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Leaf certificates expiring within this window are reissued on start.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);
/// `notBefore` is back-dated by this much to tolerate clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(3600);
/// SANs every serving certificate carries, before the caller's extra SANs.
const DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// PEM material of a standalone PKI, as returned by [`ensure`].
#[derive(Clone)]
pub struct Pki {
    /// The CA certificate (trust anchor for clients and for client certificates).
    pub ca_cert_pem: String,
    /// The serving certificate.
    pub server_cert_pem: String,
    /// The serving certificate's private key (PKCS#8).
    pub server_key_pem: String,
    /// The admin client certificate (`prext-admin`, `system:masters`).
    pub admin_cert_pem: String,
    /// The admin client certificate's private key (PKCS#8).
    pub admin_key_pem: String,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print private keys.
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// Errors from creating or loading the standalone PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An extra SAN is neither an IP address nor a plausible DNS name.
    #[error("invalid subject alternative name {0:?}")]
    InvalidSan(String),
    /// The existing CA (certificate or key) cannot be used to issue certificates.
    #[error("CA in {}: {reason}", path.display())]
    Ca {
        /// The PKI directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Generating a key or a certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// Serializing the kubeconfig failed.
    #[error("kubeconfig serialization: {0}")]
    Kubeconfig(#[from] serde_norway::Error),
}

/// A requested subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum San {
    Dns(String),
    Ip(IpAddr),
}

impl San {
    fn parse(raw: &str) -> Result<Self, PkiError> {
        let s = raw.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let label_ok = |l: &str| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let body = s.strip_prefix("*.").unwrap_or(s);
        if s.len() > 253 || !body.split('.').all(label_ok) {
            return Err(PkiError::InvalidSan(raw.to_owned()));
        }
        Ok(Self::Dns(s.to_ascii_lowercase()))
    }

    fn to_rcgen(&self) -> Result<SanType, PkiError> {
        Ok(match self {
            Self::Ip(ip) => SanType::IpAddress(*ip),
            Self::Dns(d) => SanType::DnsName(d.as_str().try_into()?),
        })
    }
}

/// Creates the PKI under `dir/pki` on first start, or loads and (where needed) renews it; see the
/// module docs.
///
/// `extra_sans` are added to the serving certificate; IP literals become IP SANs, anything else a
/// DNS SAN.
pub fn ensure(dir: &Path, extra_sans: &[String]) -> Result<Pki, PkiError> {
    let pki_dir = dir.join("pki");
    create_private_dir(&pki_dir)?;
    let mut sans = Vec::new();
    for raw in DEFAULT_SANS
        .iter()
        .copied()
        .chain(extra_sans.iter().map(String::as_str))
    {
        let san = San::parse(raw)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }

    let mut ca = Ca::load_or_create(&pki_dir)?;
    let (server_cert_pem, server_key_pem) = ensure_leaf(&mut ca, Leaf::Serving(&sans))?;
    let (admin_cert_pem, admin_key_pem) = ensure_leaf(&mut ca, Leaf::Admin)?;
    Ok(Pki {
        ca_cert_pem: ca.cert_pem,
        server_cert_pem,
        server_key_pem,
        admin_cert_pem,
        admin_key_pem,
    })
}

/// Writes `dir/kubeconfig` (mode 0600, atomically) with cluster `prext` (`server_url`, the CA),
/// user `prext-admin` (the admin client certificate) and the current context `prext`. Returns its
/// path.
pub fn write_kubeconfig(dir: &Path, server_url: &str, pki: &Pki) -> Result<PathBuf, PkiError> {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "prext", "cluster": {
            "server": server_url,
            "certificate-authority-data": b64(&pki.ca_cert_pem),
        }}],
        "users": [{"name": ADMIN_USER, "user": {
            "client-certificate-data": b64(&pki.admin_cert_pem),
            "client-key-data": b64(&pki.admin_key_pem),
        }}],
        "contexts": [{"name": "prext", "context": {"cluster": "prext", "user": ADMIN_USER}}],
        "current-context": "prext",
        "preferences": {},
    });
    let path = dir.join("kubeconfig");
    write_atomic(&path, serde_norway::to_string(&config)?.as_bytes(), 0o600)?;
    Ok(path)
}

/// The CA: its certificate always, its signing key only once something has to be issued.
struct Ca {
    dir: PathBuf,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Option<Issuer<'static, KeyPair>>,
}

impl Ca {
    fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join("ca.crt");
        if let Some(cert_pem) = read_optional(&cert_path)? {
            let cert_der = first_cert_der(&cert_pem).map_err(|reason| ca_error(dir, reason))?;
            return Ok(Self {
                dir: dir.to_owned(),
                cert_pem,
                cert_der,
                issuer: None,
            });
        }
        // Without ca.crt, a new CA is only minted into an empty PKI dir: certificates issued by
        // a lost CA (every kubeconfig handed out) would silently stop working.
        let leftovers = ["ca.key", "serving.crt", "serving.key", "admin.crt", "admin.key"]
            .into_iter()
            .filter(|f| dir.join(f).exists())
            .collect::<Vec<_>>();
        if !leftovers.is_empty() {
            return Err(ca_error(
                dir,
                format!(
                    "ca.crt is missing but {} exist: restore ca.crt (or remove the PKI dir to start \
                     over with a new CA, invalidating every issued kubeconfig)",
                    leftovers.join(", ")
                ),
            ));
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key)?;
        // Key first: an existing ca.crt then always has its key next to it.
        write_atomic(&dir.join("ca.key"), key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
        tracing::info!(dir = %dir.display(), "created standalone CA");
        Ok(Self {
            dir: dir.to_owned(),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Some(Issuer::new(params, key)),
        })
    }

    /// Loads the CA key and rebuilds the issuer (subject and key identifier) from the CA
    /// certificate.
    fn issuer(&mut self) -> Result<&Issuer<'static, KeyPair>, PkiError> {
        if self.issuer.is_none() {
            let key_path = self.dir.join("ca.key");
            let key_pem = read_optional(&key_path)?
                .ok_or_else(|| ca_error(&self.dir, "ca.crt exists but ca.key is missing".into()))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| ca_error(&self.dir, format!("ca.key: {e}")))?;
            let params = issuer_params(&self.cert_der, &key).map_err(|reason| ca_error(&self.dir, reason))?;
            self.issuer = Some(Issuer::new(params, key));
        }
        self.issuer
            .as_ref()
            .ok_or_else(|| ca_error(&self.dir, "CA issuer unavailable".into()))
    }
}

/// Issuer parameters equivalent to the CA certificate: its exact subject and its subject key
/// identifier.
fn issuer_params(ca_der: &[u8], key: &KeyPair) -> Result<CertificateParams, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| format!("ca.crt: {e}"))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err("ca.key does not match ca.crt".into());
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    for rdn in cert.subject().iter() {
        let [attr] = rdn.iter().collect::<Vec<_>>()[..] else {
            return Err("multi-valued RDNs in the CA subject are not supported".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("CA subject has an oversized OID")?
            .collect();
        let value = attr.as_str().map_err(|e| format!("CA subject attribute: {e}"))?;
        params.distinguished_name.push(DnType::from_oid(&oid), value);
    }
    if let Ok(Some(ski)) =
        cert.get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
    {
        if let x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) = ski.parsed_extension() {
            params.key_identifier_method = KeyIdMethod::PreSpecified(id.0.to_vec());
        }
    }
    Ok(params)
}

/// The two leaf certificates this module manages.
#[derive(Clone, Copy)]
enum Leaf<'a> {
    Serving(&'a [San]),
    Admin,
}

impl Leaf<'_> {
    fn name(self) -> &'static str {
        match self {
            Self::Serving(_) => "serving",
            Self::Admin => "admin",
        }
    }

    fn params(self) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        match self {
            Self::Serving(sans) => {
                params
                    .distinguished_name
                    .push(DnType::CommonName, "prext-serving");
                params.subject_alt_names = sans.iter().map(San::to_rcgen).collect::<Result<_, _>>()?;
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            Self::Admin => {
                params
                    .distinguished_name
                    .push(DnType::OrganizationName, ADMIN_GROUP);
                params.distinguished_name.push(DnType::CommonName, ADMIN_USER);
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, LEAF_VALIDITY);
        Ok(params)
    }

    /// Why an existing certificate cannot be reused, or `Ok` if it can.
    fn check(self, ca_der: &CertificateDer<'_>, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        let der = first_cert_der(cert_pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("key: {e}"))?;
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err("certificate does not match its key".into());
        }
        let renew_at = unix_now().saturating_add(RENEW_BEFORE.as_secs());
        if cert.validity().not_after.timestamp() < i64::try_from(renew_at).unwrap_or(i64::MAX) {
            return Err("expires within 30 days".into());
        }
        verify_chain(self, ca_der, &der)?;
        match self {
            Self::Serving(sans) => match sans.iter().find(|san| !cert_has_san(&cert, san)) {
                Some(missing) => Err(format!("lacks SAN {missing:?}")),
                None => Ok(()),
            },
            Self::Admin => {
                let cn = cert
                    .subject()
                    .iter_common_name()
                    .filter_map(|a| a.as_str().ok())
                    .last();
                let orgs: Vec<_> = cert
                    .subject()
                    .iter_organization()
                    .filter_map(|a| a.as_str().ok())
                    .collect();
                if cn == Some(ADMIN_USER) && orgs == [ADMIN_GROUP] {
                    Ok(())
                } else {
                    Err(format!("unexpected subject {}", cert.subject()))
                }
            }
        }
    }
}

/// Verifies `der` against the CA as a TLS peer would (signature, validity, extended key usage).
fn verify_chain(leaf: Leaf<'_>, ca_der: &CertificateDer<'_>, der: &CertificateDer<'_>) -> Result<(), String> {
    let roots = std::slice::from_ref(ca_der);
    match leaf {
        Leaf::Serving(_) => crate::tls::verify_server_chain(roots, der, &[]),
        Leaf::Admin => crate::tls::verify_client_chain(roots, der, &[]),
    }
    .map_err(|e| format!("does not verify against the CA: {e}"))
}

fn cert_has_san(cert: &X509Certificate<'_>, san: &San) -> bool {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return false;
    };
    ext.value.general_names.iter().any(|name| match (name, san) {
        (GeneralName::DNSName(dns), San::Dns(want)) => dns.eq_ignore_ascii_case(want),
        (GeneralName::IPAddress(bytes), San::Ip(IpAddr::V4(ip))) => *bytes == ip.octets(),
        (GeneralName::IPAddress(bytes), San::Ip(IpAddr::V6(ip))) => *bytes == ip.octets(),
        _ => false,
    })
}

/// Returns the PEM certificate and key for `leaf`, reusing the files when [`Leaf::check`] passes.
fn ensure_leaf(ca: &mut Ca, leaf: Leaf<'_>) -> Result<(String, String), PkiError> {
    let cert_path = ca.dir.join(format!("{}.crt", leaf.name()));
    let key_path = ca.dir.join(format!("{}.key", leaf.name()));
    if let (Some(cert), Some(key)) = (read_optional(&cert_path)?, read_optional(&key_path)?) {
        match leaf.check(&ca.cert_der, &cert, &key) {
            Ok(()) => return Ok((cert, key)),
            Err(reason) => {
                tracing::info!(certificate = leaf.name(), %reason, "reissuing certificate")
            }
        }
    }
    let key = KeyPair::generate()?;
    let mut params = leaf.params()?;
    params.serial_number = Some(random_serial());
    let cert = params.signed_by(&key, ca.issuer()?)?;
    // A CA we reloaded but cannot reproduce exactly would issue certificates nobody accepts: fail
    // loudly.
    verify_chain(leaf, &ca.cert_der, cert.der()).map_err(|reason| ca_error(&ca.dir, reason))?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
    Ok((cert_pem, key_pem))
}

fn ca_error(dir: &Path, reason: String) -> PkiError {
    PkiError::Ca {
        path: dir.to_owned(),
        reason,
    }
}

fn first_cert_der(pem: &str) -> Result<CertificateDer<'static>, String> {
    match rustls_pemfile::certs(&mut pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(e)) => Err(format!("invalid PEM: {e}")),
        None => Err("no certificate in PEM".into()),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(unix_now());
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
}

/// A random positive 128-bit serial number (RFC 5280 §4.1.2.2).
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn create_private_dir(path: &Path) -> Result<(), PkiError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(io_error(path))
}

/// Writes `contents` to a temporary file next to `path` (created with `mode`), syncs it and renames
/// it over `path`.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let result = options
        .open(&tmp)
        .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_error(path))
}

#[cfg(test)]
mod tests;
