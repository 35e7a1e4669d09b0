//! Connection settings of the PostgreSQL backend: the store URL, the libpq-style `sslmode`,
//! and where the password comes from.
//!
//! The URL is a libpq URL, `postgres://USER@HOST:PORT/DB?sslmode=verify-full&sslrootcert=FILE`.
//! `sslmode` and `sslrootcert` are handled here (tokio-postgres knows only `disable`, `prefer`
//! and `require`); every other parameter (`connect_timeout`, `target_session_attrs`, several
//! comma-separated hosts, ...) goes to tokio-postgres unchanged. The password is never needed
//! in the URL: it comes from [`PostgresOptions::password`], the file
//! [`PostgresOptions::password_file`] or the environment variable [`PASSWORD_ENV`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::{Error, Result};

/// The environment variable holding the database password.
pub const PASSWORD_ENV: &str = "PREXT_STORE_PASSWORD";

/// Tuning and credentials of a [`PostgresStore`](super::PostgresStore). The defaults suit a
/// replica of a few thousand writes per second.
#[derive(Clone)]
pub struct PostgresOptions {
    /// The cluster this store serves. Every table is keyed by it, so a fleet of Kubernetes
    /// clusters can share one database, each seeing only its own reports. Default `""`.
    pub cluster: String,
    /// The password. When `None`, it is read from [`Self::password_file`], else from the
    /// [`PASSWORD_ENV`] environment variable, else taken from the URL (if any).
    pub password: Option<String>,
    /// A file holding the password (a trailing newline is ignored), e.g. a mounted Secret.
    pub password_file: Option<PathBuf>,
    /// Connections for short operations (the writer, point reads, polling).
    pub pool_size: usize,
    /// Concurrent list streams; each holds its own connection (and snapshot) until its consumer
    /// has read it all.
    pub max_lists: usize,
    /// Rows fetched from the server per round trip of a list (the list's buffer is as large).
    pub list_fetch: usize,
    /// Time limit of one connection attempt (TCP, TLS and authentication).
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout` of every statement; operations waiting longer on the
    /// server fail as unavailable.
    pub statement_timeout: Duration,
    /// Time limit of the schema migrations at start (including waiting for another replica's).
    pub migration_timeout: Duration,
    /// The safety net of change notifications: the counter is read at least this often.
    pub poll_interval: Duration,
    /// Writes waiting for the writer task; further writers wait for room.
    pub queue: usize,
    /// Most writes committed in one transaction.
    pub batch_ops: usize,
    /// Most body bytes written in one transaction.
    pub batch_bytes: usize,
    /// Change rows dropped per compaction transaction.
    pub compact_batch: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            cluster: String::new(),
            password: None,
            password_file: None,
            pool_size: 8,
            max_lists: 16,
            list_fetch: 64,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            migration_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
            queue: 1024,
            batch_ops: 256,
            batch_bytes: 16 * 1024 * 1024,
            compact_batch: 1000,
        }
    }
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("cluster", &self.cluster)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("pool_size", &self.pool_size)
            .field("max_lists", &self.max_lists)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("batch_ops", &self.batch_ops)
            .finish_non_exhaustive()
    }
}

/// libpq's `sslmode`, as far as prext supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS, certificate not verified (verified against `sslrootcert` when one is given, as
    /// libpq does).
    Require,
    /// TLS, certificate chain verified against `sslrootcert`, host name not checked.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(invalid(format!(
                "sslmode {other:?} is not supported (use disable, prefer, require, verify-ca or verify-full)"
            )))
            }
        })
    }
}

/// A parsed store URL.
#[derive(Debug, Clone)]
pub(crate) struct StoreUrl {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) ssl_mode: SslMode,
    pub(crate) root_cert: Option<PathBuf>,
}

/// A parsed PostgreSQL store URL (see [`crate::StoreUrl`]).
#[derive(Debug, Clone)]
pub struct PostgresUrl {
    pub(crate) parsed: StoreUrl,
    redacted: String,
}

impl PostgresUrl {
    /// Parses `postgres://USER@HOST:PORT/DB?sslmode=…&sslrootcert=FILE`.
    pub fn parse(url: &str) -> Result<Self> {
        Ok(PostgresUrl {
            parsed: parse_url(url)?,
            redacted: crate::open::redact(url),
        })
    }

    /// The URL without its password, for messages.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

fn invalid(message: String) -> Error {
    Error::internal(format!("invalid PostgreSQL store configuration: {message}"))
}

/// Parses `url`, taking `sslmode` and `sslrootcert` out of its query.
pub(crate) fn parse_url(url: &str) -> Result<StoreUrl> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(
            "the store URL must start with postgres:// or postgresql://".into(),
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut ssl_mode = SslMode::Prefer;
    let mut root_cert = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => ssl_mode = decode(value)?.parse()?,
            "sslrootcert" => root_cert = Some(PathBuf::from(decode(value)?)),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                return Err(invalid(format!("{key} is not supported")))
            }
            _ => rest.push(pair),
        }
    }
    let rebuilt = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    // tokio-postgres' messages never echo the URL, so a password in it does not leak.
    let mut pg = tokio_postgres::Config::from_str(&rebuilt)
        .map_err(|e| invalid(format!("cannot parse the store URL: {e}")))?;
    if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
        return Err(invalid(format!(
            "sslmode={} needs sslrootcert=FILE (the CA certificates to trust)",
            if ssl_mode == SslMode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            }
        )));
    }
    pg.ssl_mode(match ssl_mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    if pg.get_user().is_none() {
        return Err(invalid(
            "the store URL names no user (postgres://USER@HOST/DB)".into(),
        ));
    }
    if pg.get_dbname().is_none() {
        return Err(invalid(
            "the store URL names no database (postgres://USER@HOST/DB)".into(),
        ));
    }
    Ok(StoreUrl {
        pg,
        ssl_mode,
        root_cert,
    })
}

/// Percent-decodes a query value (`%2F` → `/`, `+` stays `+`, as libpq does).
fn decode(value: &str) -> Result<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(format!("bad percent-encoding in {value:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("{value:?} is not UTF-8 once decoded")))
}

/// The password to use: explicit, else from the file, else from the environment (looked up
/// with `env`), else `None` (the URL's, or none for trust/peer authentication).
pub(crate) fn resolve_password(
    opts: &PostgresOptions,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>> {
    if let Some(p) = &opts.password {
        return Ok(Some(p.clone()));
    }
    if let Some(path) = &opts.password_file {
        return read_password_file(path).map(Some);
    }
    Ok(env(PASSWORD_ENV).filter(|p| !p.is_empty()))
}

fn read_password_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read the password file {}: {e}", path.display())))?;
    let password = text
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(invalid(format!("the password file {} is empty", path.display())));
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_ssl_parameters() {
        let u = parse_url(
            "postgres://prext@db.example.com:6432/reports?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .expect("parse");
        assert_eq!(u.ssl_mode, SslMode::VerifyFull);
        assert_eq!(u.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(u.pg.get_user(), Some("prext"));
        assert_eq!(u.pg.get_dbname(), Some("reports"));
        assert_eq!(u.pg.get_ports(), [6432]);
        assert_eq!(u.pg.get_application_name(), Some("x"));
        assert_eq!(u.pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
    }

    #[test]
    fn url_defaults_and_failures() {
        let u = parse_url("postgresql://u@h/d").expect("parse");
        assert_eq!(u.ssl_mode, SslMode::Prefer, "libpq's default");
        assert!(u.root_cert.is_none());
        let u = parse_url("postgres://u@h1,h2/d?sslmode=disable&target_session_attrs=read-write")
            .expect("several hosts");
        assert_eq!(u.pg.get_hosts().len(), 2);
        assert_eq!(u.pg.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        for (url, want) in [
            ("mysql://u@h/d", "must start with"),
            ("postgres://u@h/d?sslmode=allow", "not supported"),
            ("postgres://u@h/d?sslmode=verify-ca", "needs sslrootcert"),
            ("postgres://u@h/d?sslcert=/c.pem", "sslcert is not supported"),
            ("postgres://h/d", "names no user"),
            ("postgres://u@h", "names no database"),
            ("postgres://u@h/d?sslrootcert=%zz", "percent-encoding"),
            ("postgres://u@h/d?nonsense=1", "cannot parse"),
        ] {
            let err = parse_url(url).expect_err(url).to_string();
            assert!(err.contains(want), "{url}: {err}");
        }
    }

    #[test]
    fn password_sources_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\r\n").expect("write");
        let env = |name: &str| (name == PASSWORD_ENV).then(|| "from-env".to_owned());
        let none = |_: &str| None;

        let mut opts = PostgresOptions {
            password: Some("explicit".into()),
            password_file: Some(file.clone()),
            ..PostgresOptions::default()
        };
        assert_eq!(
            resolve_password(&opts, env).expect("explicit").as_deref(),
            Some("explicit")
        );
        opts.password = None;
        assert_eq!(
            resolve_password(&opts, env).expect("file").as_deref(),
            Some("from-file")
        );
        opts.password_file = None;
        assert_eq!(
            resolve_password(&opts, env).expect("env").as_deref(),
            Some("from-env")
        );
        assert_eq!(resolve_password(&opts, none).expect("none"), None);

        opts.password_file = Some(dir.path().join("missing"));
        assert!(
            resolve_password(&opts, env).is_err(),
            "a configured file must exist"
        );
        std::fs::write(&file, "\n").expect("write");
        opts.password_file = Some(file);
        assert!(
            resolve_password(&opts, env).is_err(),
            "an empty password file is refused"
        );
    }

    #[test]
    fn debug_redacts_the_password() {
        let opts = PostgresOptions {
            password: Some("hunter2".into()),
            ..PostgresOptions::default()
        };
        assert!(!format!("{opts:?}").contains("hunter2"));
    }
}
