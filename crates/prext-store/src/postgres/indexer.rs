//! The findings indexer task of a PostgreSQL replica (see [`crate::findings_index`]).
//!
//! Every replica runs one; at any moment at most one per cluster indexes (the one whose step
//! holds the cursor row's lock, see [`super::findings`]). It wakes on every revision the
//! replica learns of (its own writes and, through the change feed, other replicas'), and at
//! least every second in case the replica that was indexing stopped mid-step. The cursor it
//! reaches is published on `indexed`; findings reads on replicas that are not indexing read the
//! persisted cursor while they wait.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::findings::{step, Step};

/// How often an idle indexer looks again, whatever it was told.
const RECHECK: Duration = Duration::from_secs(1);

/// Starts the task.
pub(crate) fn spawn(
    pool: Pool,
    cluster: String,
    published: &Arc<watch::Sender<i64>>,
    indexed: watch::Sender<i64>,
) -> JoinHandle<()> {
    let mut published = published.subscribe();
    tokio::spawn(async move {
        loop {
            published.borrow_and_update();
            match step(&pool, &cluster).await {
                Ok(Step::Indexed(cursor, done)) => {
                    super::publish(&indexed, cursor);
                    if !done {
                        continue;
                    }
                }
                Ok(Step::Busy) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the findings indexer failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            if let Ok(Err(_)) = tokio::time::timeout(RECHECK, published.changed()).await {
                return;
            }
        }
    })
}
