//! Opening a store from its URL: the URL is parsed once, here, and its scheme picks the
//! backend (`sqlite:PATH`, or `postgres://USER@HOST:PORT/DB?sslmode=…`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::postgres::{PostgresOptions, PostgresStore, PostgresUrl};
use crate::sqlite::{SqliteOptions, SqliteStore};
use crate::{Error, Store};

/// A parsed store URL.
#[derive(Debug, Clone)]
pub enum StoreUrl {
    /// `sqlite:PATH` (or `sqlite://PATH`).
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(Box<PostgresUrl>),
}

/// How to open a store: each backend's options (only the chosen one's are used).
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub sqlite: SqliteOptions,
    pub postgres: PostgresOptions,
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL names no backend prext has.
    #[error("unsupported store URL {url:?}: expected sqlite:PATH or postgres://…")]
    UnsupportedUrl { url: String },
    /// A cluster name was given for a backend that serves one cluster.
    #[error("--cluster-name needs a PostgreSQL store: an SQLite file serves one cluster")]
    ClusterNeedsPostgres,
    /// The SQLite database could not be opened.
    #[error("opening SQLite store {}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: Error,
    },
    /// The PostgreSQL URL is invalid or the database could not be reached or migrated.
    #[error("connecting to PostgreSQL {url}")]
    Postgres {
        /// The URL without its password.
        url: String,
        #[source]
        source: Error,
    },
}

impl StoreUrl {
    /// Parses a store URL.
    pub fn parse(url: &str) -> Result<Self, OpenError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return PostgresUrl::parse(url)
                .map(|u| StoreUrl::Postgres(Box::new(u)))
                .map_err(|source| OpenError::Postgres {
                    url: redact(url),
                    source,
                });
        }
        Err(OpenError::UnsupportedUrl { url: redact(url) })
    }

    /// The database file, for an SQLite URL.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            StoreUrl::Sqlite(path) => Some(path),
            StoreUrl::Postgres(_) => None,
        }
    }
}

/// Opens the store `url` names (creating an SQLite database that does not exist yet).
pub async fn open(url: &str, options: OpenOptions) -> Result<Arc<dyn Store>, OpenError> {
    open_url(StoreUrl::parse(url)?, options).await
}

/// Opens the store of a parsed URL.
pub async fn open_url(url: StoreUrl, options: OpenOptions) -> Result<Arc<dyn Store>, OpenError> {
    match url {
        StoreUrl::Sqlite(path) => {
            if !options.postgres.cluster.is_empty() {
                return Err(OpenError::ClusterNeedsPostgres);
            }
            let opened = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || SqliteStore::open(&path, options.sqlite))
                    .await
                    .map_err(|e| Error::internal(format!("the opening task failed: {e}")))
                    .and_then(|r| r)
            };
            let store = opened.map_err(|source| OpenError::Sqlite { path, source })?;
            Ok(Arc::new(store))
        }
        StoreUrl::Postgres(url) => {
            let redacted = url.redacted().to_string();
            let store = PostgresStore::connect_url(*url, options.postgres)
                .await
                .map_err(|source| OpenError::Postgres {
                    url: redacted,
                    source,
                })?;
            Ok(Arc::new(store))
        }
    }
}

/// A store URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        assert_eq!(
            StoreUrl::parse("sqlite:/data/prext.db")
                .ok()
                .and_then(|u| u.sqlite_path().map(Path::to_path_buf)),
            Some(PathBuf::from("/data/prext.db"))
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///data/prext.db")
                .ok()
                .and_then(|u| u.sqlite_path().map(Path::to_path_buf)),
            Some(PathBuf::from("/data/prext.db"))
        );
        assert!(matches!(
            StoreUrl::parse("postgres://prext@db:5432/prext?sslmode=disable"),
            Ok(StoreUrl::Postgres(_))
        ));
        assert!(matches!(
            StoreUrl::parse("mysql://u:secret@db/x"),
            Err(OpenError::UnsupportedUrl { url }) if url == "mysql://u@db/x"
        ));
    }

    #[test]
    fn a_bad_postgres_url_is_refused_without_its_password() {
        let err = StoreUrl::parse("postgres://u:secret@db/x?sslmode=bogus").expect_err("bad sslmode");
        assert!(matches!(&err, OpenError::Postgres { url, .. } if url == "postgres://u@db/x?sslmode=bogus"));
        assert!(!format!("{err:#}").contains("secret"));
    }

    #[tokio::test]
    async fn a_cluster_name_needs_postgres() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut options = OpenOptions::default();
        options.postgres.cluster = "east".into();
        let url = format!("sqlite:{}", dir.path().join("prext.db").display());
        assert!(matches!(
            open(&url, options).await,
            Err(OpenError::ClusterNeedsPostgres)
        ));
        let store = open(&url, OpenOptions::default()).await.expect("opened");
        assert_eq!(store.revision().await.expect("revision"), 0);
        store.close().await;
    }
}
