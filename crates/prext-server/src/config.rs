//! Server configuration, as given on the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `prext serve` needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the PKI, the kubeconfig and (by default) the SQLite database live.
    pub data_dir: PathBuf,
    /// The address to listen on; port 0 binds a free port.
    pub listen: SocketAddr,
    /// The store URL: `sqlite:PATH` (default `sqlite:DATA_DIR/prext.db`).
    pub store: Option<String>,
    /// Store connection settings (PostgreSQL).
    pub store_settings: StoreSettings,
    /// Extra DNS names or IPs for the generated serving certificate.
    pub extra_sans: Vec<String>,
    /// How many of the newest revisions the change log keeps (watch history).
    pub history_revisions: i64,
    /// The change log also keeps every change younger than this (zero: count bound only).
    pub history_age: Duration,
    /// How often the change log is compacted.
    pub compaction_interval: Duration,
    /// Days resolved findings are kept (findings and trends cover that many days).
    pub history_days: u32,
    /// How long in-flight requests get to finish on SIGTERM.
    pub shutdown_grace: Duration,
    /// Connections without a request in flight are closed after this long.
    pub idle_connection_timeout: Duration,
    /// The connection cap (`None`: derived from the open-file limit).
    pub max_connections: Option<usize>,
    /// `--store-quota-bytes`: growing writes are refused at or over this size (0: no quota).
    pub store_quota_bytes: u64,
    /// `--store-disk-reserve-bytes`: the SQLite store's disk reserve (0: none).
    pub store_disk_reserve_bytes: u64,
    /// Serving certificate, authentication and authorization (kube's delegated-auth flags).
    pub auth: AuthConfig,
    /// Memory released once the server is idle ([`crate::idle`]).
    pub idle: crate::idle::IdleSettings,
}

impl Config {
    /// A configuration with the documented defaults for a data dir and listen address.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            store: None,
            store_settings: StoreSettings::default(),
            extra_sans: Vec::new(),
            history_revisions: 100_000,
            history_age: Duration::from_secs(300),
            compaction_interval: Duration::from_secs(60),
            history_days: 90,
            shutdown_grace: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(90),
            max_connections: None,
            store_quota_bytes: 0,
            store_disk_reserve_bytes: crate::disk_reserve::DEFAULT_BYTES,
            auth: AuthConfig::default(),
            idle: crate::idle::IdleSettings::default(),
        }
    }

    /// The store URL in effect.
    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("prext.db").display()))
    }
}

/// Serving certificate, authentication and authorization settings, named after kube's
/// `DelegatingAuthenticationOptions`/`DelegatingAuthorizationOptions` flags.
///
/// The default is standalone mode: the generated PKI serves and its CA is the client CA, and
/// every authenticated request is allowed.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `--tls-cert-file`: a PEM serving certificate (chain), reloaded when the file changes.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-private-key-file`: the serving certificate's PEM private key.
    pub tls_private_key_file: Option<PathBuf>,
    /// `--client-ca-file`: CAs whose client certificates authenticate their subject (CN = user,
    /// O = groups). Default: the ConfigMap's `client-ca-file` in delegated mode, the generated CA
    /// in standalone mode.
    pub client_ca_file: Option<PathBuf>,
    /// The front proxy (`--requestheader-*`).
    pub requestheader: RequestHeaderOptions,
    /// `--authentication-kubeconfig`: the cluster used for TokenReview and for reading
    /// `kube-system/extension-apiserver-authentication`; the value `in-cluster` means the pod's
    /// service account. Setting it (or `authorization_kubeconfig`) turns on delegated mode.
    pub authentication_kubeconfig: Option<PathBuf>,
    /// `--authentication-skip-lookup`: do not read the authentication ConfigMap.
    pub authentication_skip_lookup: bool,
    /// `--authentication-token-webhook-cache-ttl`: how long TokenReview answers are cached.
    pub authentication_cache_ttl: Duration,
    /// `--authorization-kubeconfig`: the cluster used for SubjectAccessReview (`in-cluster`: the
    /// pod's service account). Without it every authenticated request is allowed.
    pub authorization_kubeconfig: Option<PathBuf>,
    /// `--authorization-always-allow-paths`: paths allowed without SubjectAccessReview (a
    /// trailing `*` matches a prefix).
    pub always_allow_paths: Vec<String>,
    /// `--authorization-always-allow-groups`: groups allowed without SubjectAccessReview.
    pub always_allow_groups: Vec<String>,
    /// `--authorization-webhook-cache-authorized-ttl`.
    pub authorization_allow_ttl: Duration,
    /// `--authorization-webhook-cache-unauthorized-ttl`.
    pub authorization_deny_ttl: Duration,
    /// How often certificate and CA files are checked for changes.
    pub reload_interval: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            requestheader: RequestHeaderOptions::default(),
            authentication_kubeconfig: None,
            authentication_skip_lookup: false,
            authentication_cache_ttl: Duration::from_secs(10),
            authorization_kubeconfig: None,
            always_allow_paths: ["/healthz", "/readyz", "/livez"].map(String::from).to_vec(),
            always_allow_groups: vec!["system:masters".to_owned()],
            authorization_allow_ttl: Duration::from_secs(10),
            authorization_deny_ttl: Duration::from_secs(10),
            reload_interval: crate::reload::DEFAULT_POLL_INTERVAL,
        }
    }
}

impl AuthConfig {
    /// Whether authentication and authorization are delegated to a cluster.
    pub fn delegated(&self) -> bool {
        self.authentication_kubeconfig.is_some() || self.authorization_kubeconfig.is_some()
    }
}

/// The front proxy's settings (`--requestheader-*`). When `client_ca_file` is unset and an
/// authentication kubeconfig is given, all of them come from the authentication ConfigMap.
#[derive(Debug, Clone)]
pub struct RequestHeaderOptions {
    /// `--requestheader-client-ca-file`: CAs of the front proxy's client certificate.
    pub client_ca_file: Option<PathBuf>,
    /// `--requestheader-allowed-names`: the proxy certificate common names accepted (empty: any).
    pub allowed_names: Vec<String>,
    /// `--requestheader-username-headers`: the first non-empty one names the user.
    pub username_headers: Vec<String>,
    /// `--requestheader-uid-headers`: the first non-empty one is the user's UID.
    pub uid_headers: Vec<String>,
    /// `--requestheader-group-headers`: every value of each is a group.
    pub group_headers: Vec<String>,
    /// `--requestheader-extra-headers-prefix`: headers carrying extra user attributes.
    pub extra_headers_prefix: Vec<String>,
}

impl Default for RequestHeaderOptions {
    fn default() -> Self {
        Self {
            client_ca_file: None,
            allowed_names: Vec::new(),
            username_headers: vec!["X-Remote-User".to_owned()],
            uid_headers: Vec::new(),
            group_headers: vec!["X-Remote-Group".to_owned()],
            extra_headers_prefix: vec!["X-Remote-Extra-".to_owned()],
        }
    }
}

/// Parses a Go `time.Duration` string as kube's flags take it: a sequence of decimal numbers
/// with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` (`10s`, `1m30s`, `1.5h`), or `0`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {s:?}: expected e.g. 10s, 1m30s, 500ms");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s: &str| parse_go_duration(s);
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        for bad in ["", "10", "s", "10x", "-1s", "1..5s"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }
}

/// How to reach the store, beyond its URL.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The cluster this server serves when several share one PostgreSQL database.
    pub cluster_name: String,
    /// A file holding the PostgreSQL password (else `PREXT_STORE_PASSWORD`, else the URL).
    pub password_file: Option<PathBuf>,
    /// PostgreSQL connections per replica.
    pub pool_size: usize,
    /// How long connecting to PostgreSQL may take.
    pub connect_timeout: Duration,
    /// How long one PostgreSQL statement may run.
    pub statement_timeout: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            cluster_name: String::new(),
            password_file: None,
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}
