//! The change fan-out: one task per process tails the store's change log and broadcasts
//! every change to the watchers, so that a hundred watchers cost one log reader, not a
//! hundred.
//!
//! The persisted log stays the source of truth. A watcher subscribes first, then catches up
//! from the log by its own cursor, then follows the broadcast, skipping what it has already
//! sent; when it lags behind the bounded broadcast buffer it catches up from the log again.
//! Writers never wait for watchers.

use std::sync::Arc;
use std::time::Duration;

use prext_store::{Change, Store};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Changes kept in the broadcast buffer before slow watchers fall back to the log.
const CAPACITY: usize = 4096;
/// Changes read per query.
const BATCH: usize = 1024;
/// How often the log is polled without a wake-up (a lost notification costs at most this).
const POLL: Duration = Duration::from_secs(1);

/// The process-wide change broadcaster.
pub struct Fanout {
    tx: broadcast::Sender<Arc<Change>>,
}

impl Fanout {
    /// Starts tailing the store's log from its current revision.
    pub fn start(store: Arc<dyn Store>, shutdown: CancellationToken) -> Arc<Self> {
        let (tx, _) = broadcast::channel(CAPACITY);
        let fanout = Arc::new(Fanout { tx: tx.clone() });
        tokio::spawn(tail(store, tx, shutdown));
        fanout
    }

    /// A receiver of every change broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }
}

async fn tail(store: Arc<dyn Store>, tx: broadcast::Sender<Arc<Change>>, shutdown: CancellationToken) {
    let mut wake = store.subscribe();
    let mut cursor = loop {
        match store.revision().await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(error = %e, "change fan-out cannot read the revision; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    };
    loop {
        loop {
            if let Some(revision) = unwatched(&*store, &tx).await {
                cursor = cursor.max(revision);
                break;
            }
            match store.changes(cursor, BATCH).await {
                Ok(changes) => {
                    let n = changes.len();
                    for c in changes {
                        cursor = c.revision;
                        // No receivers is fine: nobody is watching.
                        let _ = tx.send(Arc::new(c));
                    }
                    if n < BATCH {
                        break;
                    }
                }
                Err(prext_store::Error::Compacted { oldest, .. }) => {
                    // The tail fell behind compaction; watchers detect the jump through
                    // their own log reads (and get 410 if they need the lost part).
                    tracing::warn!(cursor, oldest, "change fan-out fell behind compaction");
                    cursor = oldest;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change fan-out cannot read the log; retrying");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = wake.changed() => {
                if changed.is_err() {
                    return; // store closed
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// With no watcher subscribed there is no one to send changes to: the store's revision, to
/// move the cursor to without reading (and allocating) every change's body. The revision is
/// read before the receivers are counted, so a watcher that subscribes after the count reads
/// everything up to that revision from the log in its own catch-up, and gets the rest from
/// here.
async fn unwatched(store: &dyn Store, tx: &broadcast::Sender<Arc<Change>>) -> Option<i64> {
    if tx.receiver_count() > 0 {
        return None;
    }
    let revision = store.revision().await.ok()?;
    (tx.receiver_count() == 0).then_some(revision)
}
