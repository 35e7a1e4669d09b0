//! The PostgreSQL reference: raw tokio-postgres with the same payloads, on the same throwaway
//! cluster prext uses (`fsync` and `synchronous_commit` on), one row per transaction (each
//! statement autocommits), one connection per concurrent client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prext_store::testsuite::TempPostgres;
use tokio_postgres::Client;

use crate::payload::Payload;

/// A database of the throwaway cluster holding the reference table.
pub struct RawPostgres<'a> {
    pub pg: &'a TempPostgres,
    pub database: String,
}

impl RawPostgres<'_> {
    async fn client(&self) -> Client {
        self.pg.client(&self.database).await
    }

    /// Runs `sql` (parameters: name, body) for every body with `clients` connections.
    async fn write_all(&self, sql: &'static str, bodies: Vec<String>, clients: usize) -> anyhow::Result<f64> {
        let n = bodies.len();
        let bodies = Arc::new(bodies);
        let next = Arc::new(AtomicUsize::new(0));
        let mut conns = Vec::new();
        for _ in 0..clients.max(1) {
            conns.push(self.client().await);
        }
        let start = Instant::now();
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|c| {
                let (bodies, next) = (bodies.clone(), next.clone());
                tokio::spawn(async move {
                    let stmt = c.prepare(sql).await?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= bodies.len() {
                            return Ok::<_, tokio_postgres::Error>(());
                        }
                        c.execute(&stmt, &[&format!("bench-{i:07}"), &bodies[i]]).await?;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    /// Creates the table and inserts `n` objects with `clients` connections. Returns objects/s.
    pub async fn inserts(&self, payload: &Payload, n: usize, clients: usize) -> anyhow::Result<f64> {
        self.client()
            .await
            .batch_execute(
                "CREATE TABLE objects(namespace text COLLATE \"C\", name text COLLATE \"C\", body text NOT NULL, \
                 PRIMARY KEY(namespace, name))",
            )
            .await?;
        let bodies = (0..n)
            .map(|i| String::from_utf8(payload.object("bench", i)).unwrap_or_default())
            .collect();
        self.write_all(
            "INSERT INTO objects(namespace, name, body) VALUES ('bench', $1, $2)",
            bodies,
            clients,
        )
        .await
    }

    /// Replaces the body of each object written by [`Self::inserts`]. Returns objects/s.
    pub async fn updates(&self, payload: &Payload, n: usize, clients: usize) -> anyhow::Result<f64> {
        let bodies = (0..n)
            .map(|i| String::from_utf8(payload.updated(i)).unwrap_or_default())
            .collect();
        self.write_all(
            "UPDATE objects SET body = $2 WHERE namespace = 'bench' AND name = $1",
            bodies,
            clients,
        )
        .await
    }

    /// Reads every body in key order (streamed). Returns (seconds, bytes).
    pub async fn full_scan(&self) -> anyhow::Result<(f64, usize)> {
        use futures::TryStreamExt;
        let c = self.client().await;
        let start = Instant::now();
        let no_params = std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>();
        let rows = c
            .query_raw("SELECT body FROM objects ORDER BY namespace, name", no_params)
            .await?;
        futures::pin_mut!(rows);
        let mut bytes = 0;
        while let Some(row) = rows.try_next().await? {
            bytes += row.try_get::<_, &str>(0)?.len();
        }
        Ok((start.elapsed().as_secs_f64(), bytes))
    }

    /// Point reads of the given object indices, one at a time.
    pub async fn gets(&self, indices: &[usize]) -> anyhow::Result<Vec<Duration>> {
        let c = self.client().await;
        let stmt = c
            .prepare("SELECT body FROM objects WHERE namespace = 'bench' AND name = $1")
            .await?;
        let mut out = Vec::with_capacity(indices.len());
        for i in indices {
            let start = Instant::now();
            let row = c.query_one(&stmt, &[&format!("bench-{i:07}")]).await?;
            anyhow::ensure!(!row.try_get::<_, &str>(0)?.is_empty(), "empty body");
            out.push(start.elapsed());
        }
        Ok(out)
    }

    /// Walks the table in keyset pages of `limit`, `walks` times.
    pub async fn pages(&self, limit: usize, walks: usize) -> anyhow::Result<Vec<Duration>> {
        let c = self.client().await;
        let stmt = c
            .prepare("SELECT name, body FROM objects WHERE namespace = 'bench' AND name > $1 ORDER BY name LIMIT $2")
            .await?;
        let mut out = Vec::new();
        for _ in 0..walks {
            let mut after = String::new();
            loop {
                let start = Instant::now();
                let rows = c.query(&stmt, &[&after, &(limit as i64)]).await?;
                out.push(start.elapsed());
                if let Some(last) = rows.last() {
                    after = last.try_get(0)?;
                }
                if rows.len() < limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Bytes of every user table of `database`, with indexes and TOAST (`pg_total_relation_size`).
pub async fn database_bytes(pg: &TempPostgres, database: &str) -> anyhow::Result<u64> {
    let c = pg.client(database).await;
    let row = c
        .query_one(
            "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await?;
    Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
}
