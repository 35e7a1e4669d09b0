//! The two storage backends prext is measured on, each with its raw reference: SQLite (a file in
//! the data dir, raw rusqlite beside it) and PostgreSQL (a throwaway cluster started for the
//! run, a fresh database per prext server, raw tokio-postgres on another database of the same
//! cluster).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prext_store::testsuite::TempPostgres;

use crate::payload::Payload;
use crate::raw;
use crate::raw_pg::{self, RawPostgres};
use crate::server::Prext;

/// A backend of a run.
pub enum Backend {
    Sqlite,
    /// The cluster lives as long as the run.
    Postgres(TempPostgres),
}

/// Where a prext server keeps its objects.
pub enum Stored {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Backend {
    /// Starts what the backend needs (for PostgreSQL: the throwaway cluster).
    pub async fn new(name: &str) -> anyhow::Result<Backend> {
        match name {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" => Ok(Backend::Postgres(TempPostgres::new().await)),
            other => anyhow::bail!("unknown backend {other:?}: sqlite, postgres or both"),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// CPU time the database's own processes have used so far (PostgreSQL: the postmaster and
    /// its backends; SQLite runs inside its client, so nothing).
    pub fn database_cpu(&self) -> Duration {
        match self {
            Backend::Sqlite => Duration::ZERO,
            Backend::Postgres(pg) => std::fs::read_to_string(pg.data_dir().join("postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().next()?.trim().parse().ok())
                .map_or(Duration::ZERO, crate::cpu::tree),
        }
    }

    /// Starts a prext server on an empty store, with `dir` as its data dir.
    pub async fn prext(&self, binary: &Path, dir: &Path) -> anyhow::Result<(Prext, Stored)> {
        std::fs::create_dir_all(dir)?;
        match self {
            Backend::Sqlite => {
                let prext = Prext::start(binary, dir, &[]).await?;
                Ok((prext, Stored::Sqlite(dir.join("prext.db"))))
            }
            Backend::Postgres(pg) => {
                let db = pg.create_database().await;
                let args = [
                    "--store".to_owned(),
                    pg.url(&db),
                    "--store-password-file".to_owned(),
                    pg.password_file().to_string_lossy().into_owned(),
                ];
                let prext = Prext::start(binary, dir, &args).await?;
                Ok((prext, Stored::Postgres(db)))
            }
        }
    }

    /// An empty reference store (`dir` holds the SQLite file).
    pub async fn reference(&self, dir: &Path) -> anyhow::Result<Reference<'_>> {
        std::fs::create_dir_all(dir)?;
        Ok(match self {
            Backend::Sqlite => Reference::Sqlite(dir.join("raw.db")),
            Backend::Postgres(pg) => Reference::Postgres(RawPostgres {
                pg,
                database: pg.create_database().await,
            }),
        })
    }

    /// Bytes prext's store takes on disk: the SQLite file with its WAL after a checkpoint, or
    /// every table of the PostgreSQL database with indexes and TOAST.
    pub async fn stored_bytes(&self, stored: &Stored) -> anyhow::Result<u64> {
        match (self, stored) {
            (_, Stored::Sqlite(path)) => {
                let path = path.clone();
                // A passive checkpoint may leave WAL frames behind while the server reads:
                // they count, as they are on disk.
                blocking(move || Ok(raw::size(&path).unwrap_or_else(|_| raw::file_sizes(&path)))).await
            }
            (Backend::Postgres(pg), Stored::Postgres(db)) => raw_pg::database_bytes(pg, db).await,
            (Backend::Sqlite, Stored::Postgres(_)) => {
                anyhow::bail!("a PostgreSQL store on the SQLite backend")
            }
        }
    }
}

/// A raw reference store holding the same payloads as a prext server.
pub enum Reference<'a> {
    Sqlite(PathBuf),
    Postgres(RawPostgres<'a>),
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

impl Reference<'_> {
    /// Inserts objects `0..n` with `clients` concurrent writers. Returns objects/s.
    pub async fn inserts(&self, payload: &Arc<Payload>, n: usize, clients: usize) -> anyhow::Result<f64> {
        match self {
            Reference::Sqlite(path) => {
                let (path, payload) = (path.clone(), payload.clone());
                blocking(move || raw::inserts(&path, &payload, n, clients)).await
            }
            Reference::Postgres(pg) => pg.inserts(payload, n, clients).await,
        }
    }

    /// Updates objects `0..n` with `clients` concurrent writers. Returns objects/s.
    pub async fn updates(&self, payload: &Arc<Payload>, n: usize, clients: usize) -> anyhow::Result<f64> {
        match self {
            Reference::Sqlite(path) => {
                let (path, payload) = (path.clone(), payload.clone());
                blocking(move || raw::updates(&path, &payload, n, clients)).await
            }
            Reference::Postgres(pg) => pg.updates(payload, n, clients).await,
        }
    }

    /// Reads every body. Returns (seconds, bytes).
    pub async fn full_scan(&self) -> anyhow::Result<(f64, usize)> {
        match self {
            Reference::Sqlite(path) => {
                let path = path.clone();
                blocking(move || raw::full_scan(&path)).await
            }
            Reference::Postgres(pg) => pg.full_scan().await,
        }
    }

    /// Point reads of `indices`, one at a time.
    pub async fn gets(&self, indices: &[usize]) -> anyhow::Result<Vec<Duration>> {
        match self {
            Reference::Sqlite(path) => {
                let (path, indices) = (path.clone(), indices.to_vec());
                blocking(move || raw::gets(&path, &indices)).await
            }
            Reference::Postgres(pg) => pg.gets(indices).await,
        }
    }

    /// Keyset pages of `limit`, the whole table `walks` times.
    pub async fn pages(&self, limit: usize, walks: usize) -> anyhow::Result<Vec<Duration>> {
        match self {
            Reference::Sqlite(path) => {
                let path = path.clone();
                blocking(move || raw::pages(&path, limit, walks)).await
            }
            Reference::Postgres(pg) => pg.pages(limit, walks).await,
        }
    }

    /// Bytes on disk.
    pub async fn bytes(&self) -> anyhow::Result<u64> {
        match self {
            Reference::Sqlite(path) => {
                let path = path.clone();
                blocking(move || raw::size(&path)).await
            }
            Reference::Postgres(pg) => raw_pg::database_bytes(pg.pg, &pg.database).await,
        }
    }
}
