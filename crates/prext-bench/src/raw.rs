//! The reference: raw SQLite with the same payloads and the same durability as prext's store
//! (WAL, `synchronous=FULL`, one row per transaction), measured in the same process.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::payload::Payload;

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(c)
}

/// Inserts `n` objects with `writers` threads, one row per transaction. Returns objects/s.
pub fn inserts(dir: &Path, payload: &Payload, n: usize, writers: usize) -> anyhow::Result<f64> {
    let path = dir.join(format!("raw-{writers}.db"));
    let c = open(&path)?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS objects(namespace TEXT, name TEXT, body TEXT, PRIMARY KEY(namespace, name))",
    )?;
    drop(c);
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..n)
            .map(|i| String::from_utf8(payload.object("bench", i)).unwrap_or_default())
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let (bodies, next, path) = (bodies.clone(), next.clone(), path.clone());
            std::thread::spawn(move || -> rusqlite::Result<()> {
                let c = open(&path)?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= bodies.len() {
                        return Ok(());
                    }
                    c.execute(
                        "INSERT INTO objects(namespace, name, body) VALUES ('bench', ?1, ?2)",
                        rusqlite::params![format!("bench-{i:07}"), bodies[i]],
                    )?;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Reads every body of the table written by `inserts(.., 1)`. Returns (seconds, bytes).
pub fn full_scan(dir: &Path) -> anyhow::Result<(f64, usize)> {
    let c = open(&dir.join("raw-1.db"))?;
    let start = Instant::now();
    let mut stmt = c.prepare("SELECT body FROM objects ORDER BY namespace, name")?;
    let mut rows = stmt.query([])?;
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        bytes += row.get_ref(0)?.as_str()?.len();
    }
    Ok((start.elapsed().as_secs_f64(), bytes))
}
