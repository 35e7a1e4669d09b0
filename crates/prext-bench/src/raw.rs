//! The SQLite reference: raw SQLite with the same payloads and the same durability as prext's
//! store (WAL, `synchronous=FULL`, one row per transaction), measured in the same process.
//! Every function is blocking; [`crate::reference`] runs them on the blocking pool.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::payload::Payload;

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.busy_timeout(Duration::from_secs(30))?;
    Ok(c)
}

/// Runs `sql` (parameters: name, body) for objects `0..n` from `writers` threads, one row per
/// transaction. Returns objects/s.
fn write_all(path: &Path, sql: &'static str, bodies: Vec<String>, writers: usize) -> anyhow::Result<f64> {
    let n = bodies.len();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..writers.max(1))
        .map(|_| {
            let (bodies, next, path) = (bodies.clone(), next.clone(), path.to_owned());
            std::thread::spawn(move || -> rusqlite::Result<()> {
                let c = open(&path)?;
                let mut stmt = c.prepare(sql)?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= bodies.len() {
                        return Ok(());
                    }
                    stmt.execute(rusqlite::params![format!("bench-{i:07}"), bodies[i]])?;
                }
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn bodies(payload: &Payload, n: usize, updated: bool) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = if updated {
                payload.updated(i)
            } else {
                payload.object("bench", i)
            };
            String::from_utf8(body).unwrap_or_default()
        })
        .collect()
}

/// Creates the table in a new database at `path` and inserts `n` objects with `writers`
/// threads. Returns objects/s.
pub fn inserts(path: &Path, payload: &Payload, n: usize, writers: usize) -> anyhow::Result<f64> {
    open(path)?.execute_batch(
        "CREATE TABLE IF NOT EXISTS objects(namespace TEXT, name TEXT, body TEXT, PRIMARY KEY(namespace, name))",
    )?;
    let sql = "INSERT INTO objects(namespace, name, body) VALUES ('bench', ?1, ?2)";
    write_all(path, sql, bodies(payload, n, false), writers)
}

/// Replaces the body of each of the `n` objects written by [`inserts`]. Returns objects/s.
pub fn updates(path: &Path, payload: &Payload, n: usize, writers: usize) -> anyhow::Result<f64> {
    let sql = "UPDATE objects SET body = ?2 WHERE namespace = 'bench' AND name = ?1";
    write_all(path, sql, bodies(payload, n, true), writers)
}

/// Reads every body in key order. Returns (seconds, bytes).
pub fn full_scan(path: &Path) -> anyhow::Result<(f64, usize)> {
    let c = open(path)?;
    let start = Instant::now();
    let mut stmt = c.prepare("SELECT body FROM objects ORDER BY namespace, name")?;
    let mut rows = stmt.query([])?;
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        bytes += row.get_ref(0)?.as_str()?.len();
    }
    Ok((start.elapsed().as_secs_f64(), bytes))
}

/// Point reads of the given object indices, one at a time. Returns each read's latency.
pub fn gets(path: &Path, indices: &[usize]) -> anyhow::Result<Vec<Duration>> {
    let c = open(path)?;
    let mut stmt = c.prepare("SELECT body FROM objects WHERE namespace = 'bench' AND name = ?1")?;
    let mut out = Vec::with_capacity(indices.len());
    for i in indices {
        let start = Instant::now();
        let body: String = stmt.query_row([format!("bench-{i:07}")], |r| r.get(0))?;
        anyhow::ensure!(!body.is_empty(), "empty body");
        out.push(start.elapsed());
    }
    Ok(out)
}

/// Walks the table in keyset pages of `limit`, `walks` times. Returns each page's latency.
pub fn pages(path: &Path, limit: usize, walks: usize) -> anyhow::Result<Vec<Duration>> {
    let c = open(path)?;
    let mut stmt = c.prepare(
        "SELECT name, body FROM objects WHERE namespace = 'bench' AND name > ?1 ORDER BY name LIMIT ?2",
    )?;
    let mut out = Vec::new();
    for _ in 0..walks {
        let mut after = String::new();
        loop {
            let start = Instant::now();
            let mut rows = stmt.query(rusqlite::params![after, limit as i64])?;
            let mut count = 0;
            while let Some(row) = rows.next()? {
                after = row.get(0)?;
                count += row.get_ref(1)?.as_str()?.len().min(1);
            }
            out.push(start.elapsed());
            if count < limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Bytes of a database on disk: the file plus its WAL, after a checkpoint.
pub fn size(path: &Path) -> anyhow::Result<u64> {
    open(path)?.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(file_sizes(path))
}

/// The size of an SQLite database file plus its `-wal` and `-shm` files.
pub fn file_sizes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| {
            let mut p = path.as_os_str().to_owned();
            p.push(s);
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        })
        .sum()
}
