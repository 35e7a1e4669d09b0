//! Planner statistics kept in step with a growing database: the writer starts an `ANALYZE` of
//! the tables result queries read each time the revision has doubled since the last one (from
//! 1,000 revisions on), on a pooled connection beside the writes (it takes no lock that writes
//! wait for), one at a time. Autovacuum analyzes too, but only after 10 % of a table changed
//! and up to a minute later: a freshly loaded cluster would be planned on the statistics of an
//! almost empty one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deadpool_postgres::Pool;

/// Revisions before the first refresh.
const FIRST: i64 = 1_000;

/// When the writer refreshes the statistics next.
#[derive(Debug)]
pub(crate) struct Statistics {
    next: i64,
    running: Arc<AtomicBool>,
}

impl Statistics {
    /// For a writer that starts at `revision`.
    pub(crate) fn new(revision: i64) -> Statistics {
        Statistics {
            next: next_after(revision),
            running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// After a commit that reached `revision`: starts an `ANALYZE` when it is due.
    pub(crate) fn committed(&mut self, pool: &Pool, revision: i64) {
        if revision < self.next || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.next = next_after(revision);
        let (pool, running) = (pool.clone(), Arc::clone(&self.running));
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = match pool.get().await {
                Ok(client) => client
                    .batch_execute("ANALYZE objects, results, result_counts, result_numbers")
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => {
                    tracing::debug!(revision, elapsed = ?started.elapsed(), "planner statistics refreshed")
                }
                Err(e) => tracing::warn!(error = %e, "refreshing the planner statistics failed"),
            }
            running.store(false, Ordering::Release);
        });
    }
}

fn next_after(revision: i64) -> i64 {
    revision.saturating_mul(2).max(FIRST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_double_the_revision() {
        assert_eq!(next_after(0), FIRST);
        assert_eq!(next_after(700), 1_400);
        assert_eq!(next_after(i64::MAX), i64::MAX);
    }
}
