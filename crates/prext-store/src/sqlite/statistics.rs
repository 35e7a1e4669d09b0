//! Planner statistics (`sqlite_stat1`) kept in step with the data, so that a query combining
//! filters starts from its most selective index: without them SQLite takes any equality on an
//! indexed column (`result = 'fail'`) for a handful of rows and may scan a fifth of the result
//! rows where a range of `result_numbers` holds a few hundred.
//!
//! The writer refreshes them with a full `ANALYZE` of the tables result queries read each time
//! it has written (inserted, updated or deleted) as many rows since the last refresh as
//! `results` then held (from 20,000 rows on), so a growing database is analyzed a logarithmic
//! number of times, about twice its final size in all. Counting rows rather than revisions
//! keeps the refresh where the data changes: updates that leave a report's results as they
//! were write three or four rows each and add nothing the statistics would show, so a run of
//! them (the benchmark's update phase) no longer stops the writer for an `ANALYZE` of every
//! result row; updates that rewrite results, and deletes, count their rows. Opening a database
//! runs `PRAGMA optimize`, which analyzes tables that were never analyzed.

use rusqlite::Connection;

/// Rows written before the first refresh, and at least between two.
const FIRST: u64 = 20_000;
/// The tables whose statistics the result queries depend on.
const ANALYZE: &str = "PRAGMA analysis_limit = 0; ANALYZE objects; ANALYZE results; \
     ANALYZE result_numbers; ANALYZE result_counts;";

/// A full `ANALYZE` of the tables result queries read.
pub(crate) fn analyze(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(ANALYZE)
}

/// The result rows the statistics last counted (0 if they never did).
fn analyzed_rows(conn: &Connection) -> u64 {
    conn.query_row(
        "SELECT coalesce(max(CAST(stat AS INTEGER)), 0) FROM sqlite_stat1 WHERE tbl = 'results'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

/// When the writer refreshes the statistics next.
#[derive(Debug)]
pub(crate) struct Statistics {
    /// The connection's count of rows written at which the next refresh is due.
    next: u64,
}

impl Statistics {
    /// After opening a database (on the writer's connection): analyzes what was never analyzed.
    pub(crate) fn open(conn: &Connection) -> Statistics {
        if let Err(e) = conn.execute_batch("PRAGMA optimize = 0x10002;") {
            tracing::warn!(error = %e, "PRAGMA optimize on open failed");
        }
        Statistics { next: due(conn) }
    }

    /// After a commit that reached `revision` (outside any transaction).
    pub(crate) fn committed(&mut self, conn: &Connection, revision: i64) {
        if conn.total_changes() < self.next {
            return;
        }
        let started = std::time::Instant::now();
        match analyze(conn) {
            Ok(()) => tracing::debug!(revision, elapsed = ?started.elapsed(), "planner statistics refreshed"),
            Err(e) => tracing::warn!(error = %e, "refreshing the planner statistics failed"),
        }
        self.next = due(conn);
    }
}

/// The count of rows written at which the next refresh is due: as many more as `results` held
/// at the last one, and at least [`FIRST`].
fn due(conn: &Connection) -> u64 {
    conn.total_changes()
        .saturating_add(analyzed_rows(conn).max(FIRST))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts `n` rows into `results`.
    fn add_results(conn: &Connection, n: u64) {
        conn.execute(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1)
             INSERT INTO results (object_id, idx) SELECT 1, i FROM k",
            [i64::try_from(n).expect("small")],
        )
        .expect("insert results");
    }

    #[test]
    fn refreshes_when_as_many_rows_were_written_as_results_held() {
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
        let stat = |conn: &Connection, idx: &str| -> String {
            conn.query_row("SELECT stat FROM sqlite_stat1 WHERE idx = ?1", [idx], |r| {
                r.get(0)
            })
            .unwrap_or_default()
        };
        // Opening analyzes the tables never analyzed.
        let mut s = Statistics::open(&conn);
        assert_eq!(stat(&conn, "objects_ns"), "3 2");
        assert_eq!(
            s.next,
            conn.total_changes() + FIRST,
            "no result rows yet: the minimum"
        );
        add_results(&conn, FIRST - 4);
        conn.execute_batch("INSERT INTO objects (namespace) VALUES ('c'), ('c'), ('c');")
            .expect("insert");
        s.committed(&conn, 1);
        assert_eq!(stat(&conn, "objects_ns"), "3 2", "one row short");
        conn.execute_batch("UPDATE objects SET namespace = 'c' WHERE id = 1")
            .expect("update");
        s.committed(&conn, 2);
        assert_eq!(stat(&conn, "objects_ns"), "6 2", "refreshed");
        assert_eq!(analyzed_rows(&conn), FIRST - 4);
        let after_first = s.next;
        assert_eq!(
            after_first,
            conn.total_changes() + FIRST,
            "results held fewer than the minimum"
        );

        // Rows rewritten in place count like new ones; the next refresh waits for as many
        // rows as `results` then held.
        add_results(&conn, 30_000);
        conn.execute_batch("UPDATE results SET idx = idx + 1 WHERE rowid <= 100")
            .expect("update");
        s.committed(&conn, 3);
        assert_eq!(analyzed_rows(&conn), FIRST - 4 + 30_000);
        assert_eq!(s.next, conn.total_changes() + FIRST - 4 + 30_000);
        conn.execute_batch("UPDATE objects SET namespace = namespace")
            .expect("no-op rewrite");
        s.committed(&conn, 4);
        assert_eq!(
            analyzed_rows(&conn),
            FIRST - 4 + 30_000,
            "six rows are not a refresh"
        );
    }
}
