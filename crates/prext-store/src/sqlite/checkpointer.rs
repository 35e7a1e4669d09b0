//! The checkpointer thread: copies the WAL back into the database file off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` of whichever connection crosses the
//! threshold, which is always the single writer: every few hundred batches one commit also
//! copied thousands of pages and fsynced the database file while every queued write waited.
//! Instead, the writer runs with `wal_autocheckpoint=0`, and this thread, on a connection of
//! its own, runs a `PASSIVE` checkpoint (which never blocks the writer) whenever new
//! revisions were committed since its last look, at most every [`INTERVAL`]. Should the WAL
//! still pass [`HARD_LIMIT`] frames (a passive checkpoint cannot reset a WAL the writer keeps
//! appending to), it runs a `RESTART` checkpoint, which waits for the writer's current batch
//! and lets the next one start the WAL over: the WAL stays bounded under continuous writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::watch;

/// How often the thread looks for new commits.
const INTERVAL: Duration = Duration::from_millis(100);
/// WAL frames (pages) beyond which the checkpoint waits for the writer.
const HARD_LIMIT: i64 = 4096;

/// A running checkpointer; [`Checkpointer::stop`] ends it.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread on `conn` (a read-write connection to the database), watching
    /// the writer's published revisions.
    pub(crate) fn start(conn: Connection, published: watch::Receiver<i64>) -> std::io::Result<Checkpointer> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("prext-sqlite-checkpointer".into())
            .spawn(move || run(&conn, &published, &flag))?;
        Ok(Checkpointer { stop, thread })
    }

    /// Stops the thread and waits for it (a checkpoint in progress completes first).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

fn run(conn: &Connection, published: &watch::Receiver<i64>, stop: &AtomicBool) {
    let mut seen = *published.borrow();
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(INTERVAL);
        let newest = *published.borrow();
        if newest == seen || stop.load(Ordering::Relaxed) {
            continue;
        }
        seen = newest;
        match checkpoint(conn, "PASSIVE") {
            Ok(frames) if frames > HARD_LIMIT => {
                if let Err(e) = checkpoint(conn, "RESTART") {
                    tracing::warn!(error = %e, frames, "WAL restart checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// Runs one checkpoint; returns the WAL's size in frames before it.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(1))
}
