//! Page caches emptied on request ([`crate::Store::release_memory`], while the server is
//! idle): each SQLite connection keeps up to 2 MB of pages (SQLite's default `cache_size`)
//! in the C heap after a burst of writes. A connection belongs to one thread, so the threads
//! that own one (the writer, the findings indexer) are asked through an [`Asker`] and empty
//! their cache between their own work, while they wait for it; the pooled readers are
//! emptied by whoever holds the pool's lock.

use std::future::Future;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

/// Asks one thread to empty its connection's cache.
#[derive(Debug)]
pub(crate) struct Asker {
    tx: mpsc::Sender<oneshot::Sender<()>>,
}

/// The thread's side: asks received while it waits.
#[derive(Debug)]
pub(crate) struct Asked {
    rx: mpsc::Receiver<oneshot::Sender<()>>,
}

/// A pair for one thread.
pub(crate) fn channel() -> (Asker, Asked) {
    let (tx, rx) = mpsc::channel(1);
    (Asker { tx }, Asked { rx })
}

impl Asker {
    /// Asks, and waits until the thread has done it (at once if an ask is already pending,
    /// or the thread has stopped).
    pub(crate) async fn ask(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.try_send(done).is_ok() {
            let _ = wait.await;
        }
    }
}

impl Asked {
    /// Blocks the thread until `until` is ready, emptying `conn`'s cache for every ask that
    /// comes first.
    pub(crate) fn wait<F: Future>(&mut self, conn: &Connection, until: F) -> F::Output {
        let mut until = std::pin::pin!(until);
        futures::executor::block_on(async {
            loop {
                tokio::select! {
                    biased;
                    out = &mut until => return out,
                    Some(done) = self.rx.recv() => {
                        shrink(conn);
                        let _ = done.send(());
                    }
                }
            }
        })
    }
}

/// Frees the connection's unused cache pages (`sqlite3_db_release_memory`); the next
/// statements read them again from the file (from the kernel's page cache, as a rule).
pub(crate) fn shrink(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA shrink_memory") {
        tracing::warn!(error = %e, "emptying a SQLite page cache failed");
    }
}
