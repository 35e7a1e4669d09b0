//! The checkpointer thread: copies the WAL back into the database file off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` of whichever connection crosses the
//! threshold, which is always the single writer: every few hundred batches one commit also
//! copied thousands of pages and fsynced the database file while every queued write waited.
//! This thread, on a connection of its own, runs a `PASSIVE` checkpoint (which never blocks
//! the writer) whenever new revisions were committed since its last look, at most every
//! [`INTERVAL`], so that pages are copied back while the writer goes on.
//!
//! A passive checkpoint cannot reset a WAL that the writer keeps appending to (the WAL starts
//! over only when a write begins with every frame copied back), and a blocking checkpoint from
//! here would starve behind a busy writer. So the writer keeps its automatic checkpoint (see
//! `schema.rs`): when the WAL reaches that size, the writer's own checkpoint finds most frames
//! already copied by this thread, copies the rest with nothing appended meanwhile, and the
//! next write resets the WAL. The WAL stays bounded as before, at a fraction of the writer's
//! old cost.
//!
//! On a full disk the writer holds the checkpoints ([`Checkpointer::hold`]) until a write
//! commits again: a checkpoint grows the database file by the pages it copies back, and run
//! right after the disk reserve was released (`prext_server::disk_reserve`) it took the
//! space the deletes that free room need for their WAL frames.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::watch;

/// How often the thread looks for new commits.
const INTERVAL: Duration = Duration::from_millis(100);

/// A running checkpointer; [`Checkpointer::stop`] ends it.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread on `conn` (a read-write connection to the database), watching
    /// the writer's published revisions.
    pub(crate) fn start(conn: Connection, published: watch::Receiver<i64>) -> std::io::Result<Checkpointer> {
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicBool::new(false));
        let (flag, hold) = (Arc::clone(&stop), Arc::clone(&held));
        let thread = std::thread::Builder::new()
            .name("prext-sqlite-checkpointer".into())
            .spawn(move || run(&conn, &published, &flag, &hold))?;
        Ok(Checkpointer { stop, held, thread })
    }

    /// Holds the checkpoints (`true`: a write found the disk full) or lets them run again
    /// (`false`: a write committed); the commits seen meanwhile are checkpointed then.
    pub(crate) fn hold(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }

    /// Stops the thread and waits for it (a checkpoint in progress completes first).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

fn run(conn: &Connection, published: &watch::Receiver<i64>, stop: &AtomicBool, held: &AtomicBool) {
    let mut seen = *published.borrow();
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(INTERVAL);
        let newest = *published.borrow();
        if newest == seen || stop.load(Ordering::Relaxed) || held.load(Ordering::Relaxed) {
            continue;
        }
        seen = newest;
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}
