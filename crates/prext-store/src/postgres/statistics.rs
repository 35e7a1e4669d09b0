//! Planner statistics kept in step with a growing database: the writer starts an `ANALYZE` of
//! the tables result queries read, with a `VACUUM` of `results`, each time the rows of the
//! store (report rows and result rows) have doubled since the last one, on a pooled connection
//! beside the writes (it takes no lock that writes wait for), one at a time. Autovacuum
//! analyzes too, but only after 10 % of a table changed and up to a minute later: a freshly
//! loaded cluster would be planned on the statistics of an almost empty one. The `VACUUM` sets
//! the visibility map of the rows written since, which index-only scans of the result indexes
//! need.
//!
//! Growth is counted, not revisions: the rows a create adds (its report row and its result
//! rows, [`super::ops::Write::grown`]), from the size of `objects` and `results` when the
//! store was opened (`pg_class.reltuples`, no table read). Updates and deletes add no rows;
//! what they churn is left to autovacuum. (Until session 10 the refresh followed the revision,
//! doubling from 1,000: a store whose reports were updated ran the most expensive refresh of
//! all, over every result row, without a row added.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use deadpool_postgres::Pool;

/// Rows added before the first refresh of a store opened (nearly) empty: about 1,000 reports
/// of 20 results.
const FIRST: u64 = 20_000;

/// When the next refresh is due: a pure schedule, in rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// The store's rows at the last refresh (or at open).
    size: u64,
    /// Rows added since.
    added: u64,
}

impl Schedule {
    /// For a store of `size` rows.
    pub(crate) fn new(size: u64) -> Schedule {
        Schedule { size, added: 0 }
    }

    /// Counts `rows` added; true when a refresh is due (the rows added since the last one are
    /// at least the store's size then, and at least [`FIRST`]).
    pub(crate) fn grew(&mut self, rows: u64) -> bool {
        self.added = self.added.saturating_add(rows);
        self.added >= self.size.max(FIRST)
    }

    /// A refresh started: the next is due when the store has doubled again.
    pub(crate) fn refreshed(&mut self) {
        self.size = self.size.saturating_add(self.added);
        self.added = 0;
    }
}

/// The rows of `objects` and `results` as the planner last estimated them (`reltuples`, -1
/// for a table never analyzed nor vacuumed, counted as 0).
pub(crate) async fn table_rows(client: &tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(greatest(reltuples, 0)), 0)::float8 FROM pg_class \
             WHERE oid IN ('objects'::regclass, 'results'::regclass)",
            &[],
        )
        .await?;
    let rows: f64 = row.try_get(0)?;
    Ok(rows as u64)
}

/// When the writer refreshes the statistics next.
#[derive(Debug)]
pub(crate) struct Statistics {
    schedule: Schedule,
    running: Arc<AtomicBool>,
}

impl Statistics {
    /// For a store of `size` rows (see [`table_rows`]).
    pub(crate) fn new(size: u64) -> Statistics {
        Statistics {
            schedule: Schedule::new(size),
            running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// After commits that added the rows counted in `grown` (taken): starts an `ANALYZE` when
    /// one is due and none is running.
    pub(crate) fn committed(&mut self, pool: &Pool, grown: &AtomicU64) {
        let rows = grown.swap(0, Ordering::AcqRel);
        if !self.schedule.grew(rows) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.schedule.refreshed();
        let size = self.schedule.size;
        let (pool, running) = (pool.clone(), Arc::clone(&self.running));
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = match pool.get().await {
                // `VACUUM` (its own statement: it cannot run in a transaction block) also
                // sets the visibility map of the new result rows, which index-only scans of
                // the result indexes need (summaries, docs/postgres.md).
                Ok(client) => match client.batch_execute("VACUUM (ANALYZE) results").await {
                    Ok(()) => client
                        .batch_execute("ANALYZE objects, result_counts, result_numbers")
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => {
                    tracing::debug!(rows = size, elapsed = ?started.elapsed(), "planner statistics refreshed")
                }
                Err(e) => tracing::warn!(error = %e, "refreshing the planner statistics failed"),
            }
            running.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `steps` of added rows; returns the totals (rows added since open) at which a
    /// refresh started.
    fn refreshes(size: u64, steps: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let (mut s, mut total, mut at) = (Schedule::new(size), 0, Vec::new());
        for rows in steps {
            total += rows;
            if s.grew(rows) {
                s.refreshed();
                at.push(total);
            }
        }
        at
    }

    #[test]
    fn an_empty_store_refreshes_after_first_rows_then_each_doubling() {
        // 18 rows per create (a report and 17 results), 3,000 creates.
        let at = refreshes(0, std::iter::repeat_n(18, 3_000));
        assert_eq!(at, vec![20_016, 40_032]);
        // Ten more creates at a time: the third refresh once 80,064 rows are there.
        let at = refreshes(0, std::iter::repeat_n(180, 500));
        assert_eq!(at, vec![20_160, 40_320, 80_640]);
    }

    #[test]
    fn updates_and_deletes_add_nothing_so_never_refresh() {
        // The benchmark: 3,000 creates, then 3,000 updates and deletes (0 rows each).
        let creates = std::iter::repeat_n(18, 3_000);
        let at = refreshes(0, creates.chain(std::iter::repeat_n(0, 100_000)));
        assert_eq!(at, vec![20_016, 40_032]);
    }

    #[test]
    fn a_large_store_waits_for_its_own_size() {
        // Opened at 1,050,000 rows: nothing until as many more are added.
        let at = refreshes(1_050_000, std::iter::repeat_n(1_000, 2_200));
        assert_eq!(at, vec![1_050_000]);
        // A small store counts from FIRST.
        let at = refreshes(5_000, std::iter::repeat_n(1_000, 60));
        assert_eq!(at, vec![20_000, 45_000]);
    }

    #[test]
    fn a_refresh_not_started_stays_due() {
        // While one is running the writer does not call `refreshed`: the next commit tries again.
        let mut s = Schedule::new(0);
        assert!(s.grew(FIRST));
        assert!(s.grew(0));
        s.refreshed();
        assert!(!s.grew(0));
        assert!(!s.grew(FIRST - 1));
        assert!(s.grew(FIRST + 1));
    }

    #[test]
    fn counts_saturate() {
        let mut s = Schedule::new(u64::MAX);
        assert!(!s.grew(u64::MAX - 1));
        assert!(s.grew(u64::MAX));
        s.refreshed();
        assert_eq!(s, Schedule::new(u64::MAX));
    }
}
