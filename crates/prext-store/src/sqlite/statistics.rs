//! Planner statistics (`sqlite_stat1`) kept in step with the data, so that a query combining
//! filters starts from its most selective index: without them SQLite takes any equality on an
//! indexed column (`result = 'fail'`) for a handful of rows and may scan a fifth of the result
//! rows where a range of `result_numbers` holds a few hundred.
//!
//! The writer refreshes them with a full `ANALYZE` of the tables result queries read each time
//! the revision has doubled since the last refresh (from 1,000 revisions on), so a growing
//! database is analyzed a logarithmic number of times, about twice its final size in all;
//! opening a database runs `PRAGMA optimize`, which analyzes tables that were never analyzed.

use rusqlite::Connection;

/// Revisions before the first refresh.
const FIRST: i64 = 1_000;
/// The tables whose statistics the result queries depend on.
const ANALYZE: &str = "PRAGMA analysis_limit = 0; ANALYZE objects; ANALYZE results; \
     ANALYZE result_numbers; ANALYZE result_counts;";

/// A full `ANALYZE` of the tables result queries read.
pub(crate) fn analyze(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(ANALYZE)
}

/// When the writer refreshes the statistics next.
#[derive(Debug)]
pub(crate) struct Statistics {
    next: i64,
}

impl Statistics {
    /// After opening a database at `revision`: analyzes what was never analyzed.
    pub(crate) fn open(conn: &Connection, revision: i64) -> Statistics {
        if let Err(e) = conn.execute_batch("PRAGMA optimize = 0x10002;") {
            tracing::warn!(error = %e, "PRAGMA optimize on open failed");
        }
        Statistics {
            next: revision.saturating_mul(2).max(FIRST),
        }
    }

    /// After a commit that reached `revision` (outside any transaction).
    pub(crate) fn committed(&mut self, conn: &Connection, revision: i64) {
        if revision < self.next {
            return;
        }
        self.next = revision.saturating_mul(2);
        let started = std::time::Instant::now();
        match analyze(conn) {
            Ok(()) => tracing::debug!(revision, elapsed = ?started.elapsed(), "planner statistics refreshed"),
            Err(e) => tracing::warn!(error = %e, "refreshing the planner statistics failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_when_the_revision_doubles() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE objects (id INTEGER PRIMARY KEY, namespace TEXT);
             CREATE INDEX objects_ns ON objects (namespace);
             CREATE TABLE results (object_id INTEGER, idx INTEGER);
             CREATE TABLE result_numbers (object_id INTEGER);
             CREATE TABLE result_counts (object_id INTEGER);
             INSERT INTO objects (namespace) VALUES ('a'), ('a'), ('b');",
        )
        .expect("schema");
        let stat = |conn: &Connection| -> String {
            conn.query_row(
                "SELECT stat FROM sqlite_stat1 WHERE idx = 'objects_ns'",
                [],
                |r| r.get(0),
            )
            .unwrap_or_default()
        };
        // Opening analyzes the tables never analyzed.
        let mut s = Statistics::open(&conn, 10);
        assert_eq!(s.next, FIRST);
        assert_eq!(stat(&conn), "3 2");
        conn.execute_batch("INSERT INTO objects (namespace) VALUES ('c'), ('c'), ('c');")
            .expect("insert");
        s.committed(&conn, 999);
        assert_eq!(stat(&conn), "3 2", "not yet");
        s.committed(&conn, 1_000);
        assert_eq!(stat(&conn), "6 2");
        assert_eq!(s.next, 2_000);
    }
}
